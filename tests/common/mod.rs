//! Test helpers: the real application on port 0, against a fresh migrated database of its
//! own (on the Postgres server in DATABASE_URL) and the real Docker engine.
#![allow(dead_code)]

use std::net::SocketAddr;

use clap::Parser;
use serde_json::Value;
use sqlx::Connection;
use tokio::sync::oneshot;

pub const KEY: &str = "sk-test-a";
pub const KEY_SAME_PROJECT: &str = "sk-test-a2";
pub const OTHER_KEY: &str = "sk-test-b";

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    config: assistd::Config,
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub database_url: String,
    pub data_dir: std::path::PathBuf,
    stop: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// A database of its own for one test, so tests run in parallel without sharing state.
pub async fn fresh_database() -> String {
    let base = std::env::var("DATABASE_URL")
        .expect("DATABASE_URL must point at a Postgres server (make test starts one)");
    let name = format!("test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&base)
        .await
        .expect("connect to DATABASE_URL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create a test database");
    let (server, _) = base
        .rsplit_once('/')
        .expect("DATABASE_URL ends with /dbname");
    format!("{server}/{name}")
}

/// Drops a test database, even with connections still open.
pub async fn drop_database(url: &str) {
    let (server, name) = url.rsplit_once('/').expect("a database url");
    let base = std::env::var("DATABASE_URL").unwrap_or_else(|_| format!("{server}/postgres"));
    if let Ok(mut conn) = sqlx::PgConnection::connect(&base).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await;
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts the app with extra `--flag value` arguments.
pub async fn spawn_app_with(extra: &[&str]) -> TestApp {
    spawn_app_on(&fresh_database().await, extra).await
}

/// Starts the app on an existing database, e.g. a second server beside a first.
pub async fn spawn_app_on(database_url: &str, extra: &[&str]) -> TestApp {
    let database_url = database_url.to_string();
    let data_dir =
        std::env::temp_dir().join(format!("assistd-test-{}", uuid::Uuid::new_v4().simple()));
    let instance = format!("rust-test-{}", uuid::Uuid::new_v4().simple());
    let keys = format!("proj_a:{KEY},proj_a:{KEY_SAME_PROJECT},proj_b:{OTHER_KEY}");
    let mut args = vec![
        "assistd",
        "--database-url",
        &database_url,
        "--addr",
        "127.0.0.1:0",
        "--api-keys",
        &keys,
        "--data-dir",
        data_dir.to_str().expect("utf-8 temp dir"),
        "--max-body-bytes",
        "65536",
        "--max-upload-bytes",
        "2000000",
        "--sandbox-pool-size",
        "0",
        "--sandbox-pool-max",
        "0",
        "--sandbox-instance",
        &instance,
        "--db-max-connections",
        "5",
    ];
    args.extend_from_slice(extra);
    let config = Args::try_parse_from(args)
        .expect("test config parses")
        .config;
    let app = assistd::Application::build(config)
        .await
        .expect("the app starts");
    let addr = app.local_addr();
    let (stop, stopped) = oneshot::channel();
    let served = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        client: reqwest::Client::new(),
        database_url,
        data_dir,
        stop: Some(stop),
        served: Some(served),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.client.get(self.url(path)).bearer_auth(KEY))
            .await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(
            self.client
                .post(self.url(path))
                .bearer_auth(KEY)
                .json(&body),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(self.client.delete(self.url(path)).bearer_auth(KEY))
            .await
    }

    pub async fn upload(&self, filename: &str, bytes: Vec<u8>, purpose: &str) -> (u16, Value) {
        let form = reqwest::multipart::Form::new()
            .text("purpose", purpose.to_string())
            .part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name(filename.to_string()),
            );
        self.send(
            self.client
                .post(self.url("/v1/files"))
                .bearer_auth(KEY)
                .multipart(form),
        )
        .await
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body read");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            served
                .await
                .expect("server task")
                .expect("server stopped cleanly");
        }
    }
}

/// Asserts an OpenAI-shaped error and returns its `error` object.
pub fn assert_error(status: u16, body: &Value, want_status: u16) -> Value {
    assert_eq!(status, want_status, "status of {body}");
    let error = body
        .get("error")
        .unwrap_or_else(|| panic!("no error object in {body}"))
        .clone();
    for field in ["message", "type", "param", "code"] {
        assert!(error.get(field).is_some(), "error lacks {field}: {body}");
    }
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    error
}
