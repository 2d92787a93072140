//! File bytes in S3-compatible storage: the real `assistd` binary with `ASSISTD_BLOB_URL=s3://…`
//! against a real S3 server, s3s-fs, which `scripts/s3-server.sh` installs on first use and
//! starts over a directory (so a test can also see what the server stored). Each test has a
//! prefix of its own in the one bucket, so they run in parallel.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{fresh_database, KEY};
use serde_json::Value;

const BUCKET: &str = "assistd-test";

/// The test S3 server, started once for all tests of this binary (and reused across runs).
struct S3 {
    endpoint: String,
    /// Where s3s-fs keeps the objects: `ROOT/BUCKET/KEY`.
    root: PathBuf,
}

fn s3() -> &'static S3 {
    static S3: OnceLock<S3> = OnceLock::new();
    S3.get_or_init(|| {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = repo.join(".tmp/s3-test");
        let out = Command::new(repo.join("scripts/s3-server.sh"))
            .arg("start")
            .arg(&dir)
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/s3-server.sh");
        assert!(out.status.success(), "scripts/s3-server.sh start failed");
        S3 {
            endpoint: String::from_utf8(out.stdout).unwrap().trim().to_string(),
            root: dir.join("data"),
        }
    })
}

/// A blob URL of its own for one test, and where its objects show up on disk.
struct Prefix(String);

impl Prefix {
    fn new() -> Self {
        Self(format!("t-{}", uuid::Uuid::new_v4().simple()))
    }

    fn blob_url(&self) -> String {
        format!("s3://{BUCKET}/{}/blobs", self.0)
    }

    fn object(&self, key: &str) -> PathBuf {
        s3().root.join(BUCKET).join(&self.0).join("blobs").join(key)
    }
}

/// `assistd serve` as a child process, as an operator runs it.
struct Server {
    child: Child,
    base: String,
    log: PathBuf,
    client: reqwest::Client,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The command for a server on `database_url` storing blobs at `blob_url` on the test S3 server
/// (its `AWS_*` settings are overridden by `env`), with a data directory of its own.
fn server_command(database_url: &str, blob_url: &str, env: &[(&str, &str)]) -> (Command, String) {
    let port = free_port();
    let data_dir = std::env::temp_dir().join(format!("assistd-s3-{}", uuid::Uuid::new_v4()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_assistd"));
    cmd.arg("serve")
        .env("DATABASE_URL", database_url)
        .env("ASSISTD_ADDR", format!("127.0.0.1:{port}"))
        .env("ASSISTD_API_KEYS", format!("proj_a:{KEY}"))
        .env("ASSISTD_DATA_DIR", &data_dir)
        .env("ASSISTD_BLOB_URL", blob_url)
        .env("ASSISTD_MAX_UPLOAD_BYTES", "20000000")
        .env("ASSISTD_SANDBOX_POOL_SIZE", "0")
        .env("ASSISTD_SANDBOX_POOL_MAX", "0")
        .env(
            "ASSISTD_SANDBOX_INSTANCE",
            format!("blob-test-{}", uuid::Uuid::new_v4().simple()),
        )
        .env("ASSISTD_DB_MAX_CONNECTIONS", "5")
        .env("AWS_ENDPOINT_URL", &s3().endpoint)
        .env("AWS_ACCESS_KEY_ID", "assistd-test")
        .env("AWS_SECRET_ACCESS_KEY", "assistd-test-secret")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ALLOW_HTTP", "true");
    for (k, v) in env {
        cmd.env(k, v);
    }
    (cmd, format!("http://127.0.0.1:{port}"))
}

impl Server {
    async fn start(database_url: &str, blob_url: &str) -> Self {
        Self::start_with(database_url, blob_url, &[]).await
    }

    async fn start_with(database_url: &str, blob_url: &str, env: &[(&str, &str)]) -> Self {
        let (mut cmd, base) = server_command(database_url, blob_url, env);
        let log = std::env::temp_dir().join(format!("assistd-s3-{}.log", uuid::Uuid::new_v4()));
        let out = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start the assistd binary");
        let server = Self {
            child,
            base,
            log,
            client: reqwest::Client::new(),
        };
        server.wait_healthy().await;
        server
    }

    async fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let health = self.client.get(format!("{}/healthz", self.base)).send();
            if let Ok(r) = health.await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "assistd did not start; log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, as a restart or an upgrade stops it, and waits for it to exit.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    async fn upload(&self, filename: &str, bytes: Vec<u8>) -> (u16, Value) {
        let form = reqwest::multipart::Form::new()
            .text("purpose", "assistants")
            .part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name(filename.to_string()),
            );
        let request = self.client.post(format!("{}/v1/files", self.base));
        json_of(
            request
                .bearer_auth(KEY)
                .multipart(form)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let request = self.client.get(format!("{}{path}", self.base));
        json_of(request.bearer_auth(KEY).send().await.unwrap()).await
    }

    async fn delete(&self, path: &str) -> (u16, Value) {
        let request = self.client.delete(format!("{}{path}", self.base));
        json_of(request.bearer_auth(KEY).send().await.unwrap()).await
    }

    async fn content(&self, id: &str) -> (u16, Vec<u8>) {
        let response = self
            .client
            .get(format!("{}/v1/files/{id}/content", self.base))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.bytes().await.unwrap().to_vec())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Bytes that differ from part to part, so a misordered or dropped part shows.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(31).wrapping_add(seed) % 251) as u8)
        .collect()
}

#[tokio::test]
async fn files_round_trip_through_s3_and_delete_removes_their_objects() {
    let (db, prefix) = (fresh_database().await, Prefix::new());
    let server = Server::start(&db, &prefix.blob_url()).await;
    // One under a part (a single request) and one of three parts (a multipart upload).
    let small = pattern(1_000, 1);
    let large = pattern(12 * 1024 * 1024 + 12_345, 2);
    let mut ids = vec![];
    for (name, bytes) in [("small.csv", &small), ("large.bin", &large)] {
        let (status, file) = server.upload(name, bytes.clone()).await;
        assert_eq!(status, 200, "{file}");
        assert_eq!(file["bytes"], bytes.len());
        let id = file["id"].as_str().unwrap().to_string();
        let stored = std::fs::read(prefix.object(&format!("files/{id}"))).unwrap();
        assert!(stored == *bytes, "{name}: S3 holds other bytes");
        let (status, back) = server.content(&id).await;
        assert_eq!(status, 200);
        assert!(back == *bytes, "{name} came back different");
        ids.push(id);
    }
    let (_, list) = server.get("/v1/files?order=asc").await;
    let listed: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ids);

    for id in &ids {
        let (status, deleted) = server.delete(&format!("/v1/files/{id}")).await;
        assert_eq!((status, &deleted["deleted"]), (200, &Value::Bool(true)));
        assert!(
            !prefix.object(&format!("files/{id}")).exists(),
            "{id} is still in S3"
        );
        let (status, _) = server.content(id).await;
        assert_eq!(status, 404);
    }
    let (_, ready) = server.get("/readyz").await;
    assert_eq!(ready["blobs"], "ok", "{ready}");
    server.stop();
}

#[tokio::test]
async fn files_in_s3_stay_readable_across_a_restart_on_another_data_directory() {
    let (db, prefix) = (fresh_database().await, Prefix::new());
    let server = Server::start(&db, &prefix.blob_url()).await;
    let bytes = pattern(6 * 1024 * 1024, 3);
    let (status, file) = server.upload("kept.bin", bytes.clone()).await;
    assert_eq!(status, 200, "{file}");
    let id = file["id"].as_str().unwrap().to_string();
    server.stop();

    // Nothing of the first process is left but Postgres and S3: the new one has its own disk.
    let server = Server::start(&db, &prefix.blob_url()).await;
    let (status, back) = server.content(&id).await;
    assert_eq!(status, 200);
    assert!(
        back == bytes,
        "the file came back different after the restart"
    );
    server.stop();
}

#[tokio::test]
async fn an_upload_over_the_limit_leaves_no_object_in_s3() {
    let (db, prefix) = (fresh_database().await, Prefix::new());
    let server = Server::start_with(
        &db,
        &prefix.blob_url(),
        &[("ASSISTD_MAX_UPLOAD_BYTES", "7000000")],
    )
    .await;
    // Past the first part, so a multipart upload was under way when the limit hit.
    let (status, body) = server.upload("big.bin", pattern(7_100_000, 4)).await;
    assert_eq!(status, 413, "{body}");
    let (_, list) = server.get("/v1/files").await;
    assert_eq!(list["data"], Value::Array(vec![]));
    let left = std::fs::read_dir(prefix.object("files"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(left, 0, "a partial upload became an object");
    server.stop();
}

#[tokio::test]
async fn readyz_says_when_the_blob_store_is_out_of_reach() {
    let db = fresh_database().await;
    let closed = format!("http://127.0.0.1:{}", free_port());
    let server = Server::start_with(
        &db,
        &Prefix::new().blob_url(),
        &[("AWS_ENDPOINT_URL", &closed)],
    )
    .await;
    let (status, ready) = server.get("/readyz").await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["postgres"], "ok");
    assert_ne!(ready["blobs"], "ok");
    server.stop();
}

#[tokio::test]
async fn a_blob_url_of_an_unknown_scheme_stops_the_server_at_start_and_says_why() {
    let db = fresh_database().await;
    let (mut cmd, _) = server_command(&db, "ftp://files.example/assistd", &[]);
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await
    .expect("the server exits instead of serving")
    .unwrap()
    .unwrap();
    assert!(!out.status.success());
    let said =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("ASSISTD_BLOB_URL") && said.contains("unsupported scheme 'ftp'"),
        "{said}"
    );
}
