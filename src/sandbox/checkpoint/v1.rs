//! Checkpoints of the first format, taken before the current one and still restored: one tar
//! of `manifest.json`, `namespace.pkl` (absent when the namespace was not saved) and
//! `data.tar` (/mnt/data as the archive API gives it, entries under `data/`). They are turned
//! into an archive of the current shape, pickle included, and put back like one.

use std::io::{self, Read};

pub const FORMAT: u32 = 1;

/// The archive to extract into /mnt/data for a first-format checkpoint blob (entries `./...`,
/// the pickle as `pickle_entry`), and whether it holds a pickle.
pub fn for_upload(blob: &[u8], pickle_entry: &str) -> io::Result<(Vec<u8>, bool)> {
    let (mut pickle, mut data) = (None, None);
    for entry in tar::Archive::new(blob).entries()? {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut bytes)?;
        match name.as_str() {
            "namespace.pkl" => pickle = Some(bytes),
            "data.tar" => data = Some(bytes),
            _ => {}
        }
    }
    let data = data.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no data.tar"))?;
    let mut out = tar::Builder::new(Vec::with_capacity(
        data.len() + pickle.as_ref().map_or(0, Vec::len) + 1024,
    ));
    for entry in tar::Archive::new(&data[..]).entries()? {
        let entry = entry?;
        let path = entry.path()?.into_owned();
        let Ok(inner) = path.strip_prefix("data") else {
            continue;
        };
        if inner.as_os_str().is_empty() {
            continue;
        }
        let mut header = entry.header().clone();
        out.append_data(&mut header, std::path::Path::new(".").join(inner), entry)?;
    }
    if let Some(pickle) = &pickle {
        let mut header = tar::Header::new_gnu();
        header.set_size(pickle.len() as u64);
        header.set_mode(0o600);
        header.set_uid(10001);
        header.set_gid(10001);
        out.append_data(&mut header, pickle_entry, &pickle[..])?;
    }
    Ok((out.into_inner()?, pickle.is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, bytes) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            builder.append_data(&mut header, name, *bytes).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn names_and_bytes(tar: &[u8]) -> Vec<(String, Vec<u8>)> {
        tar::Archive::new(tar)
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut bytes = vec![];
                e.read_to_end(&mut bytes).unwrap();
                (e.path().unwrap().to_string_lossy().into_owned(), bytes)
            })
            .collect()
    }

    #[test]
    fn a_first_format_checkpoint_becomes_an_archive_for_mnt_data_with_its_pickle() {
        let data = tar_of(&[("data/a.txt", b"A"), ("data/sub/b.txt", b"BB")]);
        let blob = tar_of(&[
            ("manifest.json", b"{}"),
            ("namespace.pkl", b"pickle"),
            ("data.tar", &data),
        ]);
        let (tar, pickled) = for_upload(&blob, "./.p.pkl").unwrap();
        assert!(pickled);
        assert_eq!(
            names_and_bytes(&tar),
            vec![
                ("a.txt".to_string(), b"A".to_vec()),
                ("sub/b.txt".to_string(), b"BB".to_vec()),
                (".p.pkl".to_string(), b"pickle".to_vec()),
            ]
        );
        let blob = tar_of(&[("manifest.json", b"{}"), ("data.tar", &data)]);
        assert!(!for_upload(&blob, "./.p.pkl").unwrap().1);
        assert!(for_upload(&tar_of(&[("manifest.json", b"{}")]), "./.p.pkl").is_err());
    }
}
