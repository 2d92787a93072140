//! Blob bytes (uploaded and generated files today, sandbox checkpoints next) in an object store;
//! their metadata lives in Postgres.
//!
//! The store is the local filesystem under `ASSISTD_DATA_DIR` by default, or what
//! `ASSISTD_BLOB_URL` names: `s3://bucket/prefix` for S3-compatible storage (endpoint, region
//! and keys from the usual `AWS_*` variables), so replicas that share no disk share blobs, or
//! `file:///path`. Keys ([`Key`]) are `files/<file_id>` and `checkpoints/<thread_id>` (or
//! `checkpoints/<thread_id>.alt`) under the store's root; `files/` is the data directory's layout from before `object_store`, so existing
//! data keeps working.
//!
//! Small blobs go in one request ([`BlobStore::put`], [`BlobStore::read`]); large ones are written
//! in parts ([`BlobStore::writer`]) and read as a stream ([`BlobStore::stream`]), never whole in
//! memory. A blob becomes visible only once complete, under either backend, so a reader never sees
//! half a blob. A large blob in and out, e.g. a checkpoint from an archive stream:
//!
//! ```ignore
//! let mut out = blobs.writer(&Key::checkpoint(thread_id));
//! while let Some(chunk) = archive.try_next().await? {
//!     out.write(chunk).await?; // waits while earlier parts upload
//! }
//! out.finish().await?; // or drop it / `abort()`: nothing appears
//! let (size, chunks) = blobs.stream(&Key::checkpoint(thread_id)).await?;
//! ```

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{GetResultPayload, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

pub use object_store::Error;
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Bytes of one part of a multipart upload: S3's minimum (except for the last part).
const PART_BYTES: usize = 5 * 1024 * 1024;
/// Parts uploading at once; with the part being filled this bounds a writer's memory.
const PARTS_IN_FLIGHT: usize = 2;
/// Bytes per chunk when a blob is read from the local filesystem as a stream.
const FILE_CHUNK: u64 = 1024 * 1024;
/// How long `/readyz` waits for the store.
const CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Where a blob lives in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key(Path);

impl Key {
    /// The bytes of a file object.
    pub fn file(file_id: &str) -> Self {
        Self(Path::from_iter(["files", file_id]))
    }

    /// The bytes of a file in a container (`cfile_…`), as last uploaded or written.
    pub fn container_file(file_id: &str) -> Self {
        Self(Path::from_iter(["container_files", file_id]))
    }

    /// A skill version's bundle (a zip), immutable.
    pub fn skill_version(version_id: &str) -> Self {
        Self(Path::from_iter(["skills", version_id]))
    }

    /// An inline skill's bundle (a zip), kept with the container it was attached to.
    pub fn container_skill(container_id: &str, key: &str) -> Self {
        Self(Path::from_iter(["container_skills", container_id, key]))
    }

    /// Bytes on their way between two replicas for one request (see `session_files`).
    pub fn transfer(request_id: &str) -> Self {
        Self(Path::from_iter(["transfers", request_id]))
    }

    /// A thread's sandbox checkpoint.
    pub fn checkpoint(thread_id: &str) -> Self {
        Self(Path::from_iter(["checkpoints", thread_id]))
    }

    /// The other key of a thread's checkpoint: the next one is written beside the current one.
    pub fn checkpoint_alternate(thread_id: &str) -> Self {
        Self(Path::from_iter([
            "checkpoints",
            &format!("{thread_id}.alt"),
        ]))
    }

    /// A second blob that belongs with this one (a checkpoint's rest of the box: `.box`).
    pub fn beside(&self, suffix: &str) -> Self {
        Self(Path::from(format!("{}{suffix}", self.0)))
    }

    /// A snapshot of an E2B sandbox (its checkpoint, copied).
    pub fn snapshot(snapshot_id: &str) -> Self {
        Self(Path::from_iter(["snapshots", snapshot_id]))
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Clone, Debug)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    /// What the store is, for logs and errors (`file:///…`, `s3://bucket/prefix`).
    location: String,
}

impl BlobStore {
    /// The store `url` names (`ASSISTD_BLOB_URL`), or the local directory `data_dir` without one.
    pub async fn open(url: Option<&str>, data_dir: &FsPath) -> anyhow::Result<Self> {
        let Some(raw) = url.filter(|u| !u.is_empty()) else {
            return Self::local(data_dir.to_path_buf()).await;
        };
        let url = url::Url::parse(raw).with_context(|| {
            format!("ASSISTD_BLOB_URL {raw:?} is not a URL (expected s3://bucket/prefix or file:///path)")
        })?;
        match url.scheme() {
            "file" => {
                let dir = url
                    .to_file_path()
                    .map_err(|()| anyhow::anyhow!("ASSISTD_BLOB_URL {raw:?}: not a local path"))?;
                Self::local(dir).await
            }
            "s3" => {
                let bucket = url.host_str().unwrap_or_default();
                anyhow::ensure!(
                    !bucket.is_empty(),
                    "ASSISTD_BLOB_URL {raw:?} names no bucket (expected s3://bucket/prefix)"
                );
                let s3 = AmazonS3Builder::from_env()
                    .with_url(format!("s3://{bucket}"))
                    .build()
                    .with_context(|| format!("configuring the S3 store of ASSISTD_BLOB_URL {raw}"))?;
                let prefix = Path::from_url_path(url.path())
                    .with_context(|| format!("ASSISTD_BLOB_URL {raw:?}: invalid prefix"))?;
                let location = format!("s3://{bucket}/{prefix}");
                let store: Arc<dyn ObjectStore> = if prefix.parts_count() == 0 {
                    Arc::new(s3)
                } else {
                    Arc::new(PrefixStore::new(s3, prefix))
                };
                Ok(Self { store, location })
            }
            other => anyhow::bail!(
                "ASSISTD_BLOB_URL {raw:?}: unsupported scheme '{other}' (expected s3://bucket/prefix or file:///path)"
            ),
        }
    }

    async fn local(dir: PathBuf) -> anyhow::Result<Self> {
        tokio::fs::create_dir_all(dir.join("files"))
            .await
            .with_context(|| format!("creating the blob directory {}", dir.display()))?;
        let store = LocalFileSystem::new_with_prefix(&dir)
            .with_context(|| format!("opening the blob directory {}", dir.display()))?;
        Ok(Self {
            store: Arc::new(store),
            location: format!("file://{}", dir.display()),
        })
    }

    /// What the store is, e.g. `s3://bucket/prefix`.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Stores a small blob in one request, replacing any blob of that key.
    pub async fn put(&self, key: &Key, bytes: impl Into<Bytes>) -> Result<()> {
        self.store.put(&key.0, bytes.into().into()).await?;
        Ok(())
    }

    /// A writer for a blob of any size, uploaded in parts as it is written; the blob appears
    /// under `key` at [`BlobWriter::finish`], and not at all if the writer is dropped before.
    pub fn writer(&self, key: &Key) -> BlobWriter {
        BlobWriter {
            store: self.store.clone(),
            key: key.0.clone(),
            head: vec![],
            head_len: 0,
            upload: None,
            written: 0,
        }
    }

    /// A whole blob in memory: for blobs known to be small.
    pub async fn read(&self, key: &Key) -> Result<Bytes> {
        self.store.get(&key.0).await?.bytes().await
    }

    /// A blob as a stream of chunks, with its size.
    pub async fn stream(&self, key: &Key) -> Result<(u64, BoxStream<'static, Result<Bytes>>)> {
        let got = self.store.get(&key.0).await?;
        let size = got.meta.size;
        let chunks = match got.payload {
            // object_store reads a local file 8 KiB at a time, each read a blocking task of
            // its own: a 60 MB checkpoint took 7,000 of them.
            GetResultPayload::File(mut file, _) => {
                use std::io::Seek;
                file.seek(std::io::SeekFrom::Start(got.range.start))
                    .map_err(generic)?;
                file_chunks(file, got.range.end - got.range.start)
            }
            GetResultPayload::Stream(chunks) => chunks,
        };
        Ok((size, chunks))
    }

    /// Copies a blob within the store: server-side where the store can, else streamed through.
    pub async fn copy(&self, from: &Key, to: &Key) -> Result<()> {
        match self.store.copy(&from.0, &to.0).await {
            Err(Error::NotImplemented { .. } | Error::NotSupported { .. }) => {
                let (_, mut chunks) = self.stream(from).await?;
                let mut out = self.writer(to);
                while let Some(chunk) = chunks.next().await {
                    out.write(chunk?).await?;
                }
                out.finish().await.map(|_| ())
            }
            other => other,
        }
    }

    /// Removes a blob; a blob already gone is not an error.
    pub async fn remove(&self, key: &Key) -> Result<()> {
        match self.store.delete(&key.0).await {
            Err(Error::NotFound { .. }) => Ok(()),
            other => other,
        }
    }

    /// Whether the store answers: one metadata request for a key that need not exist, within
    /// [`CHECK_TIMEOUT`] (a store out of reach would otherwise be retried for minutes).
    pub async fn check(&self) -> Result<()> {
        let probe = Path::from("readyz");
        let head = self.store.head(&probe);
        match tokio::time::timeout(CHECK_TIMEOUT, head).await {
            Ok(Ok(_) | Err(Error::NotFound { .. })) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Generic {
                store: "blobs",
                source: format!("{} did not answer within {CHECK_TIMEOUT:?}", self.location).into(),
            }),
        }
    }
}

/// `len` bytes of a local file from where it stands, in chunks of [`FILE_CHUNK`].
fn file_chunks(file: std::fs::File, len: u64) -> BoxStream<'static, Result<Bytes>> {
    futures::stream::try_unfold((file, len), |(mut file, left)| async move {
        if left == 0 {
            return Ok(None);
        }
        let read = tokio::task::spawn_blocking(move || {
            let mut chunk = Vec::with_capacity(left.min(FILE_CHUNK) as usize);
            std::io::Read::read_to_end(&mut std::io::Read::take(&mut file, FILE_CHUNK), &mut chunk)
                .map(|_| (chunk, file))
        })
        .await;
        let (chunk, file) = match read {
            Ok(Ok(read)) => read,
            Ok(Err(e)) => return Err(generic(e)),
            Err(e) => return Err(generic(e)),
        };
        if chunk.is_empty() {
            return Err(generic("the file ended early"));
        }
        let left = left.saturating_sub(chunk.len() as u64);
        Ok(Some((Bytes::from(chunk), (file, left))))
    })
    .boxed()
}

fn generic(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
    Error::Generic {
        store: "blobs",
        source: e.into(),
    }
}

/// A blob being written (see [`BlobStore::writer`]). A blob smaller than one part is stored in
/// one request at [`finish`](Self::finish); a larger one is uploaded in parts as it is written,
/// and [`write`](Self::write) waits while earlier parts are still uploading, so memory stays
/// bounded by a few parts.
pub struct BlobWriter {
    store: Arc<dyn ObjectStore>,
    key: Path,
    /// Bytes written before the first part filled.
    head: Vec<Bytes>,
    head_len: usize,
    /// The multipart upload, once there is more than one part; `None` again once finished.
    upload: Option<WriteMultipart>,
    written: u64,
}

impl BlobWriter {
    pub async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.written += chunk.len() as u64;
        if let Some(upload) = self.upload.as_mut() {
            upload.wait_for_capacity(PARTS_IN_FLIGHT).await?;
            upload.put(chunk);
            return Ok(());
        }
        self.head_len += chunk.len();
        self.head.push(chunk);
        if self.head_len >= PART_BYTES {
            let multipart = self.store.put_multipart(&self.key).await?;
            let mut upload = WriteMultipart::new_with_chunk_size(multipart, PART_BYTES);
            for chunk in std::mem::take(&mut self.head) {
                upload.put(chunk);
            }
            self.head_len = 0;
            self.upload = Some(upload);
        }
        Ok(())
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Stores what is left and makes the blob visible; returns its size.
    pub async fn finish(mut self) -> Result<u64> {
        match self.upload.take() {
            Some(upload) => {
                upload.finish().await?;
            }
            None => {
                let payload: PutPayload = std::mem::take(&mut self.head).into_iter().collect();
                self.store.put(&self.key, payload).await?;
            }
        }
        Ok(self.written)
    }

    /// Drops the parts uploaded so far; nothing appears under the key.
    pub async fn abort(mut self) -> Result<()> {
        match self.upload.take() {
            Some(upload) => upload.abort().await,
            None => Ok(()),
        }
    }
}

/// A writer dropped unfinished (a client that went away mid-upload) still cleans up its parts,
/// which S3 would otherwise keep, unseen and billed.
impl Drop for BlobWriter {
    fn drop(&mut self) {
        if let Some(upload) = self.upload.take() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    if let Err(e) = upload.abort().await {
                        tracing::warn!(error = %e, "aborting an unfinished blob upload");
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt;

    use super::*;

    fn temp_dir() -> PathBuf {
        std::env::temp_dir().join(format!("assistd-blobs-{}", uuid::Uuid::new_v4().simple()))
    }

    /// Bytes that differ from part to part, so a misordered part shows.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    async fn write_in_chunks(store: &BlobStore, key: &Key, bytes: &[u8]) -> BlobWriter {
        let mut writer = store.writer(key);
        for chunk in bytes.chunks(64 * 1024 + 7) {
            writer.write(Bytes::copy_from_slice(chunk)).await.unwrap();
        }
        writer
    }

    #[tokio::test]
    async fn the_local_store_keeps_the_data_directory_layout() {
        let dir = temp_dir();
        let store = BlobStore::open(None, &dir).await.unwrap();
        store
            .put(&Key::file("file-abc"), b"hello".to_vec())
            .await
            .unwrap();
        assert_eq!(std::fs::read(dir.join("files/file-abc")).unwrap(), b"hello");
        // A blob written by an earlier release, straight into the directory, reads back.
        std::fs::write(dir.join("files/file-old"), b"from before").unwrap();
        assert_eq!(
            store.read(&Key::file("file-old")).await.unwrap(),
            "from before"
        );
        store.remove(&Key::file("file-old")).await.unwrap();
        store.remove(&Key::file("file-old")).await.unwrap();
        assert!(!dir.join("files/file-old").exists());
        store.check().await.unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_writer_stores_small_and_multi_part_blobs_and_streams_them_back() {
        let dir = temp_dir();
        let store = BlobStore::open(Some(&format!("file://{}", dir.display())), &temp_dir())
            .await
            .unwrap();
        for len in [0, 10, PART_BYTES, 3 * PART_BYTES + 12_345] {
            let bytes = pattern(len);
            let key = Key::checkpoint(&format!("thread_{len}"));
            let writer = write_in_chunks(&store, &key, &bytes).await;
            assert_eq!(writer.finish().await.unwrap(), len as u64);
            let (size, stream) = store.stream(&key).await.unwrap();
            let back: Vec<Bytes> = stream.try_collect().await.unwrap();
            assert_eq!(size, len as u64);
            assert!(back.concat() == bytes, "{len} bytes came back different");
        }
        assert!(dir
            .join(format!("checkpoints/thread_{PART_BYTES}"))
            .exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn an_aborted_or_dropped_writer_leaves_nothing() {
        let dir = temp_dir();
        let store = BlobStore::open(None, &dir).await.unwrap();
        let key = Key::file("file-partial");
        let writer = write_in_chunks(&store, &key, &pattern(2 * PART_BYTES)).await;
        writer.abort().await.unwrap();
        let dropped = write_in_chunks(&store, &key, &pattern(2 * PART_BYTES)).await;
        drop(dropped);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::fs::read_dir(dir.join("files")).unwrap().count() > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "a partial upload was left behind"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(matches!(
            store.read(&key).await,
            Err(Error::NotFound { .. })
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_blob_url_of_an_unknown_scheme_is_refused_by_name() {
        for (url, says) in [
            ("gs://bucket/x", "unsupported scheme 'gs'"),
            ("bucket/x", "is not a URL"),
            ("s3:///x", "names no bucket"),
        ] {
            let err = BlobStore::open(Some(url), &temp_dir()).await.unwrap_err();
            let message = format!("{err:#}");
            assert!(message.contains("ASSISTD_BLOB_URL"), "{message}");
            assert!(message.contains(says), "{url}: {message}");
        }
    }

    #[tokio::test]
    async fn an_s3_url_gives_bucket_and_prefix() {
        let store = BlobStore::open(Some("s3://some-bucket/a/b"), &temp_dir())
            .await
            .unwrap();
        assert_eq!(store.location(), "s3://some-bucket/a/b");
        let store = BlobStore::open(Some("s3://some-bucket"), &temp_dir())
            .await
            .unwrap();
        assert_eq!(store.location(), "s3://some-bucket/");
    }
}
