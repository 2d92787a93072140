//! A skill bundle: one folder of files with a `SKILL.md`, as uploaded (multipart parts whose
//! filenames carry their paths, or one zip) and checked before anything is stored: safe paths
//! under one top-level folder, exactly one `SKILL.md` with valid front matter, bounded file
//! count and sizes, and no zip bombs (every entry's real uncompressed bytes are counted while
//! reading, against a total cap and a compression-ratio cap, whatever its header claims).
//!
//! A valid bundle is stored as a zip we write ourselves ([`Bundle::to_zip`]) and mounted from
//! a tar we write ourselves ([`Bundle::to_tar`]): nothing of the uploaded archive but the file
//! bytes and paths survives.

use std::io::{Cursor, Read, Write};

use serde::Deserialize;

use crate::error::ApiError;

/// The most a zip upload may weigh (OpenAI: 50 MB).
pub const MAX_ZIP_BYTES: u64 = 50 * 1024 * 1024;
/// The most files one version may hold (OpenAI: 500).
pub const MAX_FILES: usize = 500;
/// The most a version's files may weigh uncompressed, all together (OpenAI: 25 MB).
pub const MAX_TOTAL_BYTES: u64 = 25 * 1024 * 1024;
/// Past this size an entry may be at most this many times smaller compressed than out.
const RATIO_FLOOR_BYTES: u64 = 1024 * 1024;
const MAX_RATIO: u64 = 200;
/// `SKILL.md` front matter limits (the Agent Skills specification).
const MAX_NAME: usize = 64;
const MAX_DESCRIPTION: usize = 1024;
const MAX_PATH: usize = 512;

/// A checked skill folder.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The uploaded top-level folder's name.
    pub folder: String,
    /// From `SKILL.md`'s front matter.
    pub name: String,
    pub description: String,
    /// Paths relative to the folder, with their bytes and whether they are executable.
    pub files: Vec<BundleFile>,
}

#[derive(Debug, Clone)]
pub struct BundleFile {
    pub path: String,
    pub bytes: Vec<u8>,
    pub executable: bool,
}

impl Bundle {
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes.len() as u64).sum()
    }

    /// The files under `<folder>/`, deflated.
    pub fn to_zip(&self) -> anyhow::Result<Vec<u8>> {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for file in &self.files {
            let mode = if file.executable { 0o755 } else { 0o644 };
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated)
                .unix_permissions(mode);
            zip.start_file(format!("{}/{}", self.folder, file.path), options)?;
            zip.write_all(&file.bytes)?;
        }
        Ok(zip.finish()?.into_inner())
    }

    /// The files under `<dir>/` as a tar owned by root: directories 0755, files 0644 (0755 when
    /// executable), so the sandbox user can read and run them but not change them.
    pub fn to_tar(&self, dir: &str) -> std::io::Result<Vec<u8>> {
        let mut tar = tar::Builder::new(Vec::with_capacity(self.total_bytes() as usize + 4096));
        let mut dirs = std::collections::BTreeSet::new();
        dirs.insert(dir.to_string());
        for file in &self.files {
            let mut parts: Vec<&str> = file.path.split('/').collect();
            parts.pop();
            let mut at = dir.to_string();
            for part in parts {
                at = format!("{at}/{part}");
                dirs.insert(at.clone());
            }
        }
        for d in &dirs {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_uid(0);
            header.set_gid(0);
            header.set_size(0);
            tar.append_data(&mut header, format!("{d}/"), std::io::empty())?;
        }
        for file in &self.files {
            let mut header = tar::Header::new_gnu();
            header.set_size(file.bytes.len() as u64);
            header.set_mode(if file.executable { 0o755 } else { 0o644 });
            header.set_uid(0);
            header.set_gid(0);
            tar.append_data(
                &mut header,
                format!("{dir}/{}", file.path),
                file.bytes.as_slice(),
            )?;
        }
        tar.into_inner()
    }
}

/// A 400 about the upload, naming `files`.
pub fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::invalid_code("files", "invalid_skill", message)
}

/// One multipart part: its filename (with its path) and bytes.
pub struct Part {
    pub filename: String,
    pub bytes: Vec<u8>,
}

/// Whether a lone part is a zip: by its name or its first bytes.
fn is_zip(part: &Part) -> bool {
    part.filename.to_ascii_lowercase().ends_with(".zip") || part.bytes.starts_with(b"PK\x03\x04")
}

/// The bundle in an upload: one zip, or the folder's files one per part.
pub fn from_parts(parts: Vec<Part>) -> Result<Bundle, ApiError> {
    if parts.is_empty() {
        return Err(ApiError::invalid_code(
            "files",
            "missing_required_parameter",
            "Missing required parameter: 'files'.",
        ));
    }
    if parts.len() == 1 && is_zip(&parts[0]) {
        let part = parts.into_iter().next().expect("one part");
        return from_zip(&part.bytes);
    }
    if parts.len() > MAX_FILES {
        return Err(invalid(format!(
            "A skill may have at most {MAX_FILES} files; got {}.",
            parts.len()
        )));
    }
    let mut total = 0u64;
    let mut entries = Vec::with_capacity(parts.len());
    for part in parts {
        total += part.bytes.len() as u64;
        if total > MAX_TOTAL_BYTES {
            return Err(too_large());
        }
        let executable = part.bytes.starts_with(b"#!");
        entries.push((part.filename, part.bytes, executable));
    }
    assemble(entries)
}

/// The bundle in a zip holding one top-level folder.
pub fn from_zip(bytes: &[u8]) -> Result<Bundle, ApiError> {
    if bytes.len() as u64 > MAX_ZIP_BYTES {
        return Err(invalid(format!(
            "The skill zip is {} bytes; at most {MAX_ZIP_BYTES} are allowed.",
            bytes.len()
        )));
    }
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| invalid(format!("The skill upload is not a readable zip file: {e}.")))?;
    if archive.len() > MAX_FILES * 4 {
        return Err(invalid(format!(
            "A skill may have at most {MAX_FILES} files; the zip has {} entries.",
            archive.len()
        )));
    }
    let mut total = 0u64;
    let mut entries = Vec::new();
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| invalid(format!("The skill zip could not be read: {e}.")))?;
        let name = entry
            .name()
            .map_err(|e| invalid(format!("The skill zip has an unreadable entry name: {e}.")))?
            .to_string();
        if entry.is_dir() {
            check_path(&name)?;
            continue;
        }
        if entry.is_symlink() {
            return Err(invalid(format!(
                "'{name}' is a symbolic link; skills may hold only regular files."
            )));
        }
        if ignored(&name) {
            continue;
        }
        if entry.encrypted() {
            return Err(invalid(format!("'{name}' is encrypted.")));
        }
        let compressed = entry.compressed_size().max(1);
        let executable = entry.unix_mode().is_some_and(|m| m & 0o111 != 0);
        // The header's size is a claim; the bytes read are the truth.
        let room = MAX_TOTAL_BYTES - total;
        let mut data = Vec::new();
        (&mut entry)
            .take(room + 1)
            .read_to_end(&mut data)
            .map_err(|e| invalid(format!("'{name}' could not be decompressed: {e}.")))?;
        let size = data.len() as u64;
        if size > room {
            return Err(too_large());
        }
        if size > RATIO_FLOOR_BYTES && size / compressed > MAX_RATIO {
            return Err(invalid(format!(
                "'{name}' expands {}-fold; at most {MAX_RATIO}-fold is allowed (a zip bomb?).",
                size / compressed
            )));
        }
        total += size;
        entries.push((name, data, executable));
        if entries.len() > MAX_FILES {
            return Err(invalid(format!(
                "A skill may have at most {MAX_FILES} files."
            )));
        }
    }
    assemble(entries)
}

fn too_large() -> ApiError {
    invalid(format!(
        "The skill's files come to more than {MAX_TOTAL_BYTES} bytes uncompressed; at most \
         {MAX_TOTAL_BYTES} are allowed."
    ))
}

/// Archive litter that is never part of a skill (macOS zips add both).
fn ignored(path: &str) -> bool {
    path.starts_with("__MACOSX/") || path.rsplit('/').next() == Some(".DS_Store")
}

/// The path's segments: relative, no `..` or `.`, no backslashes or control characters.
fn check_path(path: &str) -> Result<Vec<&str>, ApiError> {
    let unsafe_path = || {
        invalid(format!(
            "Unsafe path '{}' in the skill: paths must be relative, inside the skill's folder, \
             without '..'.",
            path.escape_default()
        ))
    };
    if path.is_empty()
        || path.len() > MAX_PATH
        || path.starts_with('/')
        || path.contains('\\')
        || path.chars().any(char::is_control)
        || path.split('/').next().is_some_and(|s| s.contains(':'))
    {
        return Err(unsafe_path());
    }
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    if segments
        .iter()
        .any(|s| s.is_empty() || *s == "." || *s == "..")
    {
        return Err(unsafe_path());
    }
    Ok(segments)
}

/// Puts checked entries `(path, bytes, executable)` together into a bundle.
fn assemble(entries: Vec<(String, Vec<u8>, bool)>) -> Result<Bundle, ApiError> {
    let mut folder: Option<String> = None;
    let mut files = Vec::with_capacity(entries.len());
    for (path, bytes, executable) in entries {
        let segments = check_path(&path)?;
        if segments.len() < 2 {
            return Err(invalid(format!(
                "'{path}' is not inside a folder: a skill's files must all sit in one top-level \
                 folder (e.g. my-skill/SKILL.md)."
            )));
        }
        match &folder {
            None => folder = Some(segments[0].to_string()),
            Some(f) if f != segments[0] => {
                return Err(invalid(format!(
                    "The skill has more than one top-level folder ('{f}' and '{}'); put all its \
                     files in one folder.",
                    segments[0]
                )))
            }
            Some(_) => {}
        }
        let rel = segments[1..].join("/");
        if files.iter().any(|f: &BundleFile| f.path == rel) {
            return Err(invalid(format!("'{path}' appears twice in the skill.")));
        }
        files.push(BundleFile {
            path: rel,
            bytes,
            executable,
        });
    }
    let folder = folder.ok_or_else(|| invalid("The skill has no files."))?;
    let manifests: Vec<&BundleFile> = files
        .iter()
        .filter(|f| {
            f.path
                .rsplit('/')
                .next()
                .is_some_and(|n| n.eq_ignore_ascii_case("skill.md"))
        })
        .collect();
    let manifest = match manifests.as_slice() {
        [] => return Err(invalid("The skill has no SKILL.md file.")),
        [one] => *one,
        [..] => {
            return Err(invalid(format!(
                "The skill has {} SKILL.md files; exactly one is allowed.",
                manifests.len()
            )))
        }
    };
    if manifest.path.contains('/') {
        return Err(invalid(format!(
            "SKILL.md must sit at the top of the skill's folder ('{folder}/SKILL.md'), not at \
             '{folder}/{}'.",
            manifest.path
        )));
    }
    let (name, description) = front_matter(&manifest.bytes)?;
    Ok(Bundle {
        folder,
        name,
        description,
        files,
    })
}

#[derive(Deserialize)]
struct FrontMatter {
    name: Option<serde_norway::Value>,
    description: Option<serde_norway::Value>,
}

/// `name` and `description` from the YAML between the leading `---` lines.
pub fn front_matter(manifest: &[u8]) -> Result<(String, String), ApiError> {
    let text = std::str::from_utf8(manifest)
        .map_err(|_| invalid("SKILL.md is not UTF-8 text."))?
        .trim_start_matches('\u{feff}');
    let no_front_matter = || {
        invalid(
            "SKILL.md must begin with YAML front matter between '---' lines, with 'name' and \
             'description'.",
        )
    };
    let mut lines = text.lines();
    if lines.next().map(str::trim_end) != Some("---") {
        return Err(no_front_matter());
    }
    let mut yaml = Vec::new();
    let mut closed = false;
    for line in lines {
        if line.trim_end() == "---" {
            closed = true;
            break;
        }
        yaml.push(line);
    }
    if !closed {
        return Err(no_front_matter());
    }
    let parsed: FrontMatter = serde_norway::from_str(&yaml.join("\n"))
        .map_err(|e| invalid(format!("SKILL.md front matter is not valid YAML: {e}.")))?;
    let text_field = |value: Option<serde_norway::Value>, field: &str| match value {
        Some(serde_norway::Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Some(serde_norway::Value::String(_)) | None => Err(invalid(format!(
            "SKILL.md front matter is missing '{field}'."
        ))),
        Some(_) => Err(invalid(format!(
            "SKILL.md front matter '{field}' must be a string."
        ))),
    };
    let name = text_field(parsed.name, "name")?;
    let description = text_field(parsed.description, "description")?;
    check_name(&name)?;
    if description.chars().count() > MAX_DESCRIPTION {
        return Err(invalid(format!(
            "SKILL.md 'description' is longer than {MAX_DESCRIPTION} characters."
        )));
    }
    Ok((name, description))
}

/// 1–64 of `a-z`, `0-9` and `-`, with no leading, trailing or doubled `-`.
pub fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--");
    if ok {
        return Ok(());
    }
    Err(invalid(format!(
        "Invalid skill name '{}': use 1 to {MAX_NAME} lowercase letters, digits and single \
         hyphens (not at the start or end).",
        name.escape_default()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &[u8] =
        b"---\nname: csv-insights\ndescription: Summarize CSV files.\n---\n# Use\n";

    fn part(name: &str, bytes: &[u8]) -> Part {
        Part {
            filename: name.into(),
            bytes: bytes.to_vec(),
        }
    }

    fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, bytes) in files {
            zip.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    fn message(e: ApiError) -> String {
        e.body()["error"]["message"].as_str().unwrap().to_string()
    }

    #[test]
    fn a_folder_of_parts_becomes_a_bundle_named_by_its_front_matter() {
        let bundle = from_parts(vec![
            part("csv/SKILL.md", MANIFEST),
            part("csv/scripts/run.py", b"#!/usr/bin/env python3\nprint(1)\n"),
        ])
        .unwrap();
        assert_eq!(bundle.folder, "csv");
        assert_eq!(bundle.name, "csv-insights");
        assert_eq!(bundle.description, "Summarize CSV files.");
        assert!(bundle.files[1].executable);
        let again = from_zip(&bundle.to_zip().unwrap()).unwrap();
        assert_eq!(again.files.len(), 2);
        assert_eq!(again.name, "csv-insights");
    }

    #[test]
    fn unsafe_paths_two_folders_and_missing_or_doubled_manifests_are_refused() {
        for (files, needle) in [
            (vec![part("csv/../SKILL.md", MANIFEST)], "Unsafe path"),
            (vec![part("/csv/SKILL.md", MANIFEST)], "Unsafe path"),
            (vec![part("SKILL.md", MANIFEST)], "not inside a folder"),
            (
                vec![part("a/SKILL.md", MANIFEST), part("b/x.txt", b"x")],
                "more than one top-level folder",
            ),
            (vec![part("a/x.txt", b"x")], "no SKILL.md"),
            (
                vec![
                    part("a/SKILL.md", MANIFEST),
                    part("a/sub/skill.md", MANIFEST),
                ],
                "2 SKILL.md files",
            ),
            (vec![part("a/SKILL.md", b"no front matter")], "front matter"),
            (
                vec![part(
                    "a/SKILL.md",
                    b"---\nname: Bad_Name\ndescription: x\n---\n",
                )],
                "Invalid skill name",
            ),
            (
                vec![part("a/SKILL.md", b"---\nname: ok\n---\n")],
                "missing 'description'",
            ),
        ] {
            let e = from_parts(files).unwrap_err();
            assert!(message(e).contains(needle), "{needle}");
        }
    }

    #[test]
    fn a_zip_bomb_is_refused_by_the_bytes_it_really_expands_to() {
        let zeros = vec![0u8; 8 * 1024 * 1024];
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let deflated = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("a/SKILL.md", deflated).unwrap();
        zip.write_all(MANIFEST).unwrap();
        zip.start_file("a/zeros.bin", deflated).unwrap();
        zip.write_all(&zeros).unwrap();
        let bytes = zip.finish().unwrap().into_inner();
        assert!(message(from_zip(&bytes).unwrap_err()).contains("zip bomb"));
        let big = vec![7u8; (MAX_TOTAL_BYTES + 1) as usize];
        let stored = zip_of(&[("a/SKILL.md", MANIFEST), ("a/big.bin", &big)]);
        assert!(message(from_zip(&stored).unwrap_err()).contains("uncompressed"));
    }

    #[test]
    fn macos_litter_is_ignored_and_a_tar_is_root_owned() {
        let bytes = zip_of(&[
            ("a/SKILL.md", MANIFEST),
            ("__MACOSX/a/._SKILL.md", b"x"),
            ("a/.DS_Store", b"x"),
        ]);
        let bundle = from_zip(&bytes).unwrap();
        assert_eq!(bundle.files.len(), 1);
        let tar = bundle.to_tar("csv-insights").unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            assert_eq!(entry.header().uid().unwrap(), 0);
            assert!(entry.path().unwrap().starts_with("csv-insights"));
        }
    }
}
