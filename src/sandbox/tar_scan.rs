//! What a tar stream holds, counted as it passes (a checkpoint's /mnt/data on its way from the
//! archive API to the blob store), without buffering it: regular files and their bytes, one
//! name counted apart. Entries up to 8 GiB (sizes in the header, as the archive API writes
//! them; /mnt/data is far smaller).

use std::io;
use std::path::Path;

const BLOCK: usize = 512;

pub(crate) struct TarScan {
    /// Counted apart from the files: whether an entry of this path went by.
    apart: &'static str,
    saw_apart: bool,
    files: usize,
    bytes: u64,
    /// Bytes of the current entry's data and padding still to pass.
    skip: u64,
    /// The header being gathered.
    header: Vec<u8>,
    ended: bool,
}

impl TarScan {
    pub fn new(apart: &'static str) -> TarScan {
        TarScan {
            apart,
            saw_apart: false,
            files: 0,
            bytes: 0,
            skip: 0,
            header: Vec::with_capacity(BLOCK),
            ended: false,
        }
    }

    /// Takes the next bytes of the stream.
    pub fn feed(&mut self, mut chunk: &[u8]) -> io::Result<()> {
        while !chunk.is_empty() && !self.ended {
            if self.skip > 0 {
                let n = self.skip.min(chunk.len() as u64);
                self.skip -= n;
                chunk = &chunk[n as usize..];
                continue;
            }
            let n = (BLOCK - self.header.len()).min(chunk.len());
            self.header.extend_from_slice(&chunk[..n]);
            chunk = &chunk[n..];
            if self.header.len() == BLOCK {
                self.entry()?;
                self.header.clear();
            }
        }
        Ok(())
    }

    fn entry(&mut self) -> io::Result<()> {
        if self.header.iter().all(|b| *b == 0) {
            self.ended = true;
            return Ok(());
        }
        let header = tar::Header::from_byte_slice(&self.header);
        let size = header.entry_size()?;
        if header.entry_type().is_file() {
            if bare(&header.path()?) == bare(Path::new(self.apart)) {
                self.saw_apart = true;
            } else {
                self.files += 1;
                self.bytes += size;
            }
        }
        self.skip = size.div_ceil(BLOCK as u64) * BLOCK as u64;
        Ok(())
    }

    /// Regular files seen, other than the one counted apart.
    pub fn files(&self) -> usize {
        self.files
    }

    /// Their bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn saw_apart(&self) -> bool {
        self.saw_apart
    }

    /// Whether the end-of-archive marker came.
    pub fn ended(&self) -> bool {
        self.ended
    }
}

/// `./x` and `x` alike (the archive API writes the first, the tar crate the second).
fn bare(path: &Path) -> &Path {
    path.strip_prefix(".").unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive() -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut add = |path: &str, bytes: &[u8]| {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            builder.append_data(&mut header, path, bytes).unwrap();
        };
        add("./a.txt", b"hello");
        add("./empty", b"");
        add(&format!("./{}/deep.bin", "d".repeat(150)), &[7; 1_000]);
        add("./.hidden.pkl", &[1; 600]);
        let mut dir = tar::Header::new_gnu();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_size(0);
        builder.append_data(&mut dir, "./sub/", &[][..]).unwrap();
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        builder
            .append_link(&mut link, "./link", "/etc/passwd")
            .unwrap();
        builder.into_inner().unwrap()
    }

    #[test]
    fn files_are_counted_in_any_chunking_with_one_name_apart() {
        let bytes = archive();
        for chunk in [1, 7, 512, 513, 100_000] {
            let mut scan = TarScan::new("./.hidden.pkl");
            for piece in bytes.chunks(chunk) {
                scan.feed(piece).unwrap();
            }
            assert_eq!(
                (scan.files(), scan.bytes(), scan.saw_apart(), scan.ended()),
                (3, 1_005, true, true),
                "chunks of {chunk}"
            );
        }
    }

    #[test]
    fn a_cut_archive_has_no_end() {
        let bytes = archive();
        let mut scan = TarScan::new("./none");
        scan.feed(&bytes[..bytes.len() / 2]).unwrap();
        assert!(!scan.ended());
        assert!(!scan.saw_apart());
    }
}
