//! Building the application from its config and running it until a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::api::{self, AppState};
use crate::auth::ApiKeys;
use crate::blobs::BlobStore;
use crate::config::Config;
use crate::db;

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    /// The key generated when none was configured, so the caller can print it.
    pub generated_key: Option<String>,
}

impl Application {
    /// Connects to Postgres, applies migrations and binds the listener (port 0 picks a free one).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let (keys, generated_key) = api_keys(&config)?;
        let db = db::connect(&config.database_url, config.db_max_connections)
            .await
            .context("connecting to DATABASE_URL")?;
        db::migrate(&db).await.context("applying migrations")?;
        let blobs = BlobStore::open(&config.data_dir)
            .await
            .with_context(|| format!("opening ASSISTD_DATA_DIR {}", config.data_dir.display()))?;
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("binding {}", config.addr))?;
        let state = AppState {
            db,
            blobs,
            config: Arc::new(config),
        };
        Ok(Self {
            listener,
            router: api::router(state, keys),
            generated_key,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(())
    }
}

/// Without configured keys the server must not be open to the network by accident: it only
/// listens on loopback, with a freshly generated key.
fn api_keys(config: &Config) -> anyhow::Result<(ApiKeys, Option<String>)> {
    let keys = ApiKeys::parse(&config.api_keys)?;
    if !keys.is_empty() {
        return Ok((keys, None));
    }
    if !config.addr.ip().is_loopback() {
        anyhow::bail!(
            "ASSISTD_API_KEYS is empty: refusing to listen on non-loopback address {}. Set ASSISTD_API_KEYS.",
            config.addr
        );
    }
    let (keys, key) = ApiKeys::generated();
    Ok((keys, Some(key)))
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received");
}
