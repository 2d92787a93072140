//! File bytes on the local filesystem under `ASSISTD_DATA_DIR`; metadata lives in Postgres.
//! Uploads stream into a temp file and are renamed into place once complete.

use std::io;
use std::path::{Path, PathBuf};

use tokio::fs;

#[derive(Clone, Debug)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    pub async fn open(root: &Path) -> io::Result<Self> {
        fs::create_dir_all(root.join("files")).await?;
        // Sandbox checkpoints are kept under keys `checkpoints/<thread_id>`.
        fs::create_dir_all(root.join("files").join("checkpoints")).await?;
        fs::create_dir_all(root.join("tmp")).await?;
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    pub fn path(&self, id: &str) -> PathBuf {
        self.root.join("files").join(id)
    }

    /// A fresh temp file in the store's own filesystem, so `commit` is a rename.
    pub async fn temp_file(&self) -> io::Result<(PathBuf, fs::File)> {
        let path = self.root.join("tmp").join(uuid::Uuid::new_v4().to_string());
        let file = fs::File::create(&path).await?;
        Ok((path, file))
    }

    pub async fn commit(&self, temp: &Path, id: &str) -> io::Result<()> {
        fs::rename(temp, self.path(id)).await
    }

    pub async fn put(&self, id: &str, bytes: &[u8]) -> io::Result<()> {
        let (temp, _) = self.temp_file().await?;
        fs::write(&temp, bytes).await?;
        self.commit(&temp, id).await
    }

    pub async fn read(&self, id: &str) -> io::Result<Vec<u8>> {
        fs::read(self.path(id)).await
    }

    pub async fn open_file(&self, id: &str) -> io::Result<fs::File> {
        fs::File::open(self.path(id)).await
    }

    /// Removes a blob; a blob already gone is not an error.
    pub async fn remove(&self, id: &str) -> io::Result<()> {
        match fs::remove_file(self.path(id)).await {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}
