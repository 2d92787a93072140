//! Building the application from its config and running it until a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState};
use crate::auth::ApiKeys;
use crate::blobs::BlobStore;
use crate::cache::{self, ReadCache};
use crate::config::Config;
use crate::db;
use crate::domain::containers::Containers;
use crate::executor::model::ModelClient;
use crate::executor::upstreams::Upstreams;
use crate::executor::{Executor, ExecutorSettings};
use crate::retrieval::{Embedder, Reranker, Retrieval, Rewriter};
use crate::sandbox::{Checkpoints, SandboxManager};

/// The embedding model's client, on the upstream that serves it (routed like chat models);
/// none when `ASSISTD_EMBEDDING_MODEL` is empty or no upstream serves it.
fn embedder(config: &Config, upstreams: &Upstreams) -> anyhow::Result<Option<Embedder>> {
    let model = config.embedding_model.trim();
    if model.is_empty() {
        return Ok(None);
    }
    let Some(upstream) = upstreams.pick(model) else {
        return Ok(None);
    };
    let endpoint = upstream
        .endpoint(model, "embeddings")
        .context("ASSISTD_EMBEDDING_MODEL's upstream")?;
    Ok(Some(Embedder::new(
        upstreams.http().clone(),
        endpoint,
        model.to_string(),
        config.embedding_dimensions,
    )))
}

/// The chat model `rewrite_query` asks, on the upstream that serves it.
fn rewriter(config: &Config, upstreams: &Upstreams) -> anyhow::Result<Option<Rewriter>> {
    let model = config.rewrite_model.trim();
    let Some(upstream) = upstreams.pick(model).filter(|_| !model.is_empty()) else {
        return Ok(None);
    };
    let endpoint = upstream
        .endpoint(model, "chat/completions")
        .context("ASSISTD_REWRITE_MODEL's upstream")?;
    Ok(Some(Rewriter::new(
        upstreams.http().clone(),
        endpoint,
        model.to_string(),
    )))
}

/// The reranking model's client: on `ASSISTD_RERANK_BASE_URL` when set, else on the upstream
/// serving the model (routed like chat models); none when `ASSISTD_RERANK_MODEL` is empty.
fn reranker(config: &Config, upstreams: &Upstreams) -> anyhow::Result<Option<Reranker>> {
    use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
    let model = config.rerank_model.trim();
    if model.is_empty() {
        return Ok(None);
    }
    let base = config.rerank_base_url.trim().trim_end_matches('/');
    let endpoint = if base.is_empty() {
        let Some(upstream) = upstreams.pick(model) else {
            anyhow::bail!("ASSISTD_RERANK_MODEL {model:?}: no upstream serves it");
        };
        upstream
            .endpoint(model, "rerank")
            .context("ASSISTD_RERANK_MODEL's upstream")?
    } else {
        anyhow::ensure!(
            reqwest::Url::parse(base).is_ok_and(|u| matches!(u.scheme(), "http" | "https")),
            "ASSISTD_RERANK_BASE_URL {base:?} is not an http:// or https:// URL"
        );
        let key = config.rerank_api_key.trim();
        let mut headers = HeaderMap::new();
        if !key.is_empty() {
            headers.insert(
                AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {key}"))
                    .context("ASSISTD_RERANK_API_KEY")?,
            );
        }
        crate::retrieval::embed::Endpoint {
            url: format!("{base}/rerank"),
            headers,
            secret: key.to_string(),
            upstream: "ASSISTD_RERANK_BASE_URL".into(),
        }
    };
    Ok(Some(Reranker::new(
        upstreams.http().clone(),
        endpoint,
        model.to_string(),
        config.rerank_candidates,
    )))
}

pub struct Application {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    state: AppState,
    router: axum::Router,
    /// The key generated when none was configured, so the caller can print it.
    pub generated_key: Option<String>,
}

impl Application {
    /// Connects to Postgres and Docker, applies migrations and binds the listener
    /// (port 0 picks a free one).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let (keys, generated_key) = api_keys(&config)?;
        // Checked before anything connects: a bad setting stops the server at once.
        let upstreams = Upstreams::build(
            &config.upstreams,
            &config.upstream_base_url,
            &config.upstream_api_key,
            config.upstream_max_retries,
        )?;
        let advertised = config.advertise_url.trim();
        anyhow::ensure!(
            advertised.is_empty()
                || reqwest::Url::parse(advertised)
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https")),
            "ASSISTD_ADVERTISE_URL {advertised:?} is not an http:// or https:// URL"
        );
        let db = db::connect(&config.database_url, config.db_max_connections)
            .await
            .context("connecting to DATABASE_URL")?;
        db::migrate(&db).await.context("applying migrations")?;
        let blobs = BlobStore::open(config.blob_url.as_deref(), &config.data_dir).await?;
        tracing::info!(store = blobs.location(), "blob store");
        let checkpoints = Checkpoints::new(db.clone(), blobs.clone(), config.sandbox.retain());
        let sandbox =
            SandboxManager::start_for_deployment(config.sandbox.clone(), &db, Some(checkpoints))
                .await
                .context("starting the sandbox manager (is the Docker engine running?)")?;
        let model = ModelClient::new(
            upstreams.clone(),
            Duration::from_millis(config.upstream_retry_base_ms),
        );
        let cache = ReadCache::new(config.read_cache_mb);
        let retrieval = Retrieval::new(
            db.clone(),
            blobs.clone(),
            sandbox.clone(),
            embedder(&config, &upstreams)?,
            rewriter(&config, &upstreams)?,
        )
        .with_reranker(reranker(&config, &upstreams)?)
        .with_max_results(config.search_max_results);
        let listener = TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("binding {}", config.addr))?;
        let advertise_url = advertise_url(&config.advertise_url, listener.local_addr()?);
        tracing::info!(%advertise_url, "this replica is reached by its siblings at");
        let executor = Executor::new(
            db.clone(),
            cache.clone(),
            blobs.clone(),
            sandbox.clone(),
            retrieval.clone(),
            model,
            ExecutorSettings {
                max_concurrent_runs: config.max_concurrent_runs,
                max_tool_rounds: config.max_tool_rounds,
                image_input: config.upstream_image_input,
                context_tokens: (config.upstream_context_tokens > 0)
                    .then_some(config.upstream_context_tokens),
                advertise_url,
            },
        );
        let metrics_listener = match config.metrics_addr {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding ASSISTD_METRICS_ADDR {addr}"))?,
            ),
            None => None,
        };
        let containers = Containers::new(
            db.clone(),
            blobs.clone(),
            sandbox.clone(),
            executor.clone(),
            config.container_max_memory,
        );
        let state = AppState {
            db,
            cache,
            blobs,
            config: Arc::new(config),
            executor,
            containers,
            sandbox,
            retrieval,
            upstreams,
            metrics: crate::metrics::install(),
        };
        Ok(Self {
            listener,
            metrics_listener,
            router: api::router(state.clone(), keys),
            state,
            generated_key,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves, then drains: no new connections, in-flight requests
    /// and runs get the grace period, sandboxes of this process are removed.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop = CancellationToken::new();
        let queue = tokio::spawn(self.state.executor.clone().run_queue(stop.clone()));
        let feed = tokio::spawn(cache::feed::follow(
            self.state.db.clone(),
            self.state.cache.clone(),
            stop.clone(),
        ));
        if let Some(listener) = self.metrics_listener {
            let router = axum::Router::new()
                .route("/metrics", axum::routing::get(api::render_metrics))
                .with_state(self.state.clone());
            let stop = stop.clone();
            tokio::spawn(async move {
                let _ = axum::serve(listener.tap_io(no_delay), router)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await;
            });
        }

        let grace = Duration::from_secs(self.state.config.shutdown_grace_secs);
        let signalled = CancellationToken::new();
        let http_stop = signalled.clone();
        tokio::spawn(async move {
            shutdown.await;
            http_stop.cancel();
        });
        let server = axum::serve(self.listener.tap_io(no_delay), self.router)
            .with_graceful_shutdown(signalled.clone().cancelled_owned());
        let served = tokio::spawn(async move { server.await });
        signalled.cancelled().await;
        tracing::info!("shutting down: draining requests and runs");
        // Streams of running runs hold connections open: stop the runs, then the server.
        self.state.executor.shutdown(grace).await;
        stop.cancel();
        match tokio::time::timeout(grace, served).await {
            Ok(result) => result??,
            Err(_) => tracing::warn!("requests still open after the grace period; closing"),
        }
        let _ = queue.await;
        let _ = feed.await;
        self.state.sandbox.shutdown().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Streamed runs write many small events; with Nagle's algorithm each would wait for the
/// client's delayed ACK (40 ms on Linux).
fn no_delay(stream: &mut tokio::net::TcpStream) {
    let _ = stream.set_nodelay(true);
}

/// `ASSISTD_ADVERTISE_URL` without a trailing slash, else `http://` and the bound address, with
/// loopback for an unspecified IP (siblings on the same host reach it there).
fn advertise_url(configured: &str, bound: std::net::SocketAddr) -> String {
    let configured = configured.trim().trim_end_matches('/');
    if !configured.is_empty() {
        return configured.to_string();
    }
    let mut addr = bound;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{addr}")
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

#[cfg(test)]
mod tests {
    use super::advertise_url;

    #[test]
    fn the_advertised_url_is_the_setting_else_the_reachable_listen_address() {
        let bound = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(advertise_url("", bound), "http://127.0.0.1:8080");
        assert_eq!(
            advertise_url("", "[::]:81".parse().unwrap()),
            "http://[::1]:81"
        );
        assert_eq!(
            advertise_url("", "10.1.2.3:9".parse().unwrap()),
            "http://10.1.2.3:9"
        );
        assert_eq!(advertise_url(" http://a:8080/ ", bound), "http://a:8080");
    }
}
