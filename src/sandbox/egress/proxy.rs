//! The egress proxy: one Unix socket per claimed sandbox (which container a connection comes
//! from is which socket it reached), HTTP/1.1 parsed by hyper. `CONNECT host:port` opens a
//! tunnel, an absolute-form `http://` request is forwarded; both only to names the container's
//! policy allows, resolved here with the host's resolver, and never to an internal address
//! unless the operator allows its range. A refusal is `403` with `x-proxy-error` and a one-line
//! text body the code in the sandbox can read.
//!
//! A sandbox's relay hands its accepted connections over (`handoff.rs`), so the proxy serves the
//! sandbox's client socket itself, and a tunnel's bytes go from socket to socket by `splice`
//! (`splice.rs`); the relay's byte copy through `proxy.sock` is the fallback.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use super::handoff::{self, HANDOFF_SOCKET};
use super::intercept::{intercept, Interceptor};
use super::policy::{is_internal, Cidr, EgressPolicy};
use super::splice;

/// How long resolving and connecting to a target may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) type Body = BoxBody<Bytes, hyper::Error>;

/// The proxy's settings; attaches sandboxes to it. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Egress {
    inner: Arc<Settings>,
}

#[derive(Debug)]
struct Settings {
    dir: PathBuf,
    allow_internal: Vec<Cidr>,
    /// Terminates TLS for hosts with a domain secret (see `intercept.rs`).
    tls: Option<Arc<Interceptor>>,
}

/// A sandbox's place at the proxy: its socket answers with its policy until this is dropped.
#[derive(Debug)]
pub struct EgressLease {
    stop: CancellationToken,
    paths: [PathBuf; 2],
}

impl Drop for EgressLease {
    fn drop(&mut self) {
        self.stop.cancel();
        for path in &self.paths {
            let _ = std::fs::remove_file(path);
        }
    }
}

struct Ctx {
    container: String,
    /// The session's policy, which may change while the sandbox is attached.
    policy: Arc<RwLock<EgressPolicy>>,
    allow_internal: Vec<Cidr>,
    tls: Option<Arc<Interceptor>>,
}

impl Ctx {
    fn policy(&self) -> EgressPolicy {
        self.policy
            .read()
            .map(|p| p.clone())
            .unwrap_or(EgressPolicy::Disabled)
    }
}

impl Egress {
    pub fn new(dir: PathBuf, allow_internal: Vec<Cidr>) -> Egress {
        Egress {
            inner: Arc::new(Settings {
                dir,
                allow_internal,
                tls: None,
            }),
        }
    }

    /// The same proxy, intercepting `CONNECT`s to hosts with a domain secret through `tls`.
    pub fn intercepting(self, tls: Arc<Interceptor>) -> Egress {
        Egress {
            inner: Arc::new(Settings {
                dir: self.inner.dir.clone(),
                allow_internal: self.inner.allow_internal.clone(),
                tls: Some(tls),
            }),
        }
    }

    /// The host directory mounted into container `name`, holding its socket.
    pub fn dir_of(&self, name: &str) -> PathBuf {
        self.inner.dir.join(name)
    }

    /// Starts answering container `name`'s connections with `policy`.
    pub fn attach(
        &self,
        name: &str,
        policy: Arc<RwLock<EgressPolicy>>,
    ) -> std::io::Result<EgressLease> {
        let dir = self.dir_of(name);
        std::fs::create_dir_all(&dir)?;
        let paths = [dir.join(SOCKET), dir.join(HANDOFF_SOCKET)];
        let mut listeners = Vec::new();
        for path in &paths {
            let _ = std::fs::remove_file(path);
            listeners.push(UnixListener::bind(path)?);
            // The sandbox's processes run as another user than ours.
            set_mode(path, 0o666)?;
        }
        let stop = CancellationToken::new();
        let ctx = Arc::new(Ctx {
            container: name.to_string(),
            policy,
            allow_internal: self.inner.allow_internal.clone(),
            tls: self.inner.tls.clone(),
        });
        let handoffs = listeners.pop().expect("two listeners");
        tokio::spawn(accept(
            listeners.remove(0),
            ctx.clone(),
            stop.clone(),
            false,
        ));
        tokio::spawn(accept(handoffs, ctx, stop.clone(), true));
        Ok(EgressLease { stop, paths })
    }
}

/// The socket's name in the container's directory (the relay in the container connects here).
pub const SOCKET: &str = "proxy.sock";

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Serves the connections made to `listener`: each a client of the proxy, or with `handoffs`, a
/// relay handing clients' sockets over.
async fn accept(listener: UnixListener, ctx: Arc<Ctx>, stop: CancellationToken, handoffs: bool) {
    loop {
        let stream = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(container = %ctx.container, error = %e, "egress accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        if handoffs {
            let (ctx, stop) = (ctx.clone(), stop.clone());
            tokio::spawn(async move {
                let until = stop.clone();
                let received = handoff::receive(stream, |tcp| spawn_serve(tcp, &ctx, &stop));
                tokio::select! {
                    _ = until.cancelled() => {}
                    _ = received => {}
                }
            });
        } else {
            spawn_serve(stream, &ctx, &stop);
        }
    }
}

/// Serves one client connection until it ends or the sandbox is detached.
fn spawn_serve<S>(stream: S, ctx: &Arc<Ctx>, stop: &CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ctx = ctx.clone();
    let stop = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = serve(stream, ctx, stop.clone()) => {}
        }
    });
}

async fn serve<S>(stream: S, ctx: Arc<Ctx>, stop: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let ctx = ctx.clone();
        let stop = stop.clone();
        async move { Ok::<_, hyper::Error>(handle(req, &ctx, stop).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .preserve_header_case(true)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
}

async fn handle(req: Request<Incoming>, ctx: &Ctx, stop: CancellationToken) -> Response<Body> {
    let target = match target_of(&req) {
        Ok(t) => t,
        Err(message) => return refusal(StatusCode::BAD_REQUEST, "bad-request", &message),
    };
    let policy = ctx.policy();
    let tcp = match open(ctx, &policy, &target).await {
        Ok(tcp) => tcp,
        Err(Refused(status, code, message)) => return refusal(status, code, &message),
    };
    // A tunnel to a host with a domain secret is answered here (see `intercept.rs`).
    if let Some(tls) = ctx.tls.as_ref().filter(|_| req.method() == Method::CONNECT) {
        if policy.secrets_for(&target.host).next().is_some() {
            let (container, cell) = (ctx.container.clone(), ctx.policy.clone());
            return intercept(tls.clone(), req, tcp, target.host, container, cell).await;
        }
    }
    if req.method() == Method::CONNECT {
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tunnel(req, tcp) => {}
            }
        });
        return Response::new(empty());
    }
    match forward(req, tcp, &policy, &target.host).await {
        Ok(response) => response,
        Err(e) => refusal(
            StatusCode::BAD_GATEWAY,
            "upstream-failed",
            &format!("request to '{}' failed: {e}", target.host),
        ),
    }
}

/// Carries a `CONNECT` tunnel's bytes once its `200` is sent: by `splice` between the sockets
/// when the client's socket is at hand (it always is), else copied.
async fn tunnel(req: Request<Incoming>, mut tcp: TcpStream) {
    let upgraded = match hyper::upgrade::on(req).await {
        Ok(upgraded) => upgraded,
        Err(e) => return tracing::debug!(error = %e, "egress upgrade"),
    };
    let upgraded = match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => return spliced(parts.io.into_inner(), parts.read_buf, tcp).await,
        Err(upgraded) => upgraded,
    };
    let upgraded = match upgraded.downcast::<TokioIo<UnixStream>>() {
        Ok(parts) => return spliced(parts.io.into_inner(), parts.read_buf, tcp).await,
        Err(upgraded) => upgraded,
    };
    let _ = tokio::io::copy_bidirectional_with_sizes(
        &mut TokioIo::new(upgraded),
        &mut tcp,
        256 * 1024,
        256 * 1024,
    )
    .await;
}

/// The tunnel between `client` and `server`, after the bytes the client sent behind its
/// `CONNECT` (already read by the HTTP parser); copied when no pipe can be had.
async fn spliced<S>(mut client: S, early: Bytes, mut server: TcpStream)
where
    S: splice::Socket + AsyncRead + AsyncWrite + Unpin,
{
    if !early.is_empty() && server.write_all(&early).await.is_err() {
        return;
    }
    let moved = match splice::pipes() {
        Ok(pipes) => splice::bidirectional(&client, &server, pipes).await,
        Err(e) => {
            tracing::warn!(error = %e, "egress tunnel: no pipe for splice, copying");
            tokio::io::copy_bidirectional(&mut client, &mut server).await
        }
    };
    if let Err(e) = moved {
        tracing::debug!(error = %e, "egress tunnel");
    }
}

struct Target {
    host: String,
    port: u16,
}

/// The host and port a request is for: `CONNECT host:port` or an absolute `http://` URI.
fn target_of(req: &Request<Incoming>) -> Result<Target, String> {
    let uri = req.uri();
    let (host, default_port) = if req.method() == Method::CONNECT {
        (uri.host(), 443)
    } else {
        match uri.scheme_str() {
            Some("http") => (uri.host(), 80),
            Some(other) => {
                return Err(format!(
                    "the proxy forwards http:// requests and CONNECT tunnels, not '{other}://'"
                ))
            }
            None => return Err("a proxy request needs an absolute http:// URL".into()),
        }
    };
    let host = host
        .ok_or("the request names no host")?
        .trim_end_matches('.')
        .trim_matches(['[', ']'])
        .to_ascii_lowercase();
    Ok(Target {
        port: uri.port_u16().unwrap_or(default_port),
        host,
    })
}

/// Why a connection was not made: the status, `x-proxy-error` and message of the answer.
struct Refused(StatusCode, &'static str, String);

/// Checks the target against the policy and connects to an address it may reach.
async fn open(ctx: &Ctx, policy: &EgressPolicy, target: &Target) -> Result<TcpStream, Refused> {
    let host = &target.host;
    let deny = |status, code, message: String| {
        tracing::info!(container = %ctx.container, host = %host, port = target.port, reason = code, "egress refused");
        Err(Refused(status, code, message))
    };
    if matches!(policy, EgressPolicy::Disabled) {
        return deny(
            StatusCode::FORBIDDEN,
            "network-disabled",
            format!("network access is disabled for this container (request to '{host}')"),
        );
    }
    if host.parse::<IpAddr>().is_ok() {
        return deny(
            StatusCode::FORBIDDEN,
            "blocked-ip-address",
            format!(
                "'{host}' is an IP address; this container may reach allowed domain names only"
            ),
        );
    }
    if !policy.allows(host) {
        return deny(
            StatusCode::FORBIDDEN,
            "blocked-by-allowlist",
            format!(
                "'{host}' is not in this container's network allowlist ({})",
                policy.domain_entries().join(", ")
            ),
        );
    }
    let resolved = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::lookup_host((host.as_str(), target.port)),
    )
    .await;
    let addrs: Vec<SocketAddr> = match resolved {
        Ok(Ok(addrs)) => addrs.collect(),
        Ok(Err(e)) => {
            return deny(
                StatusCode::BAD_GATEWAY,
                "dns-failed",
                format!("cannot resolve '{host}': {e}"),
            )
        }
        Err(_) => {
            return deny(
                StatusCode::GATEWAY_TIMEOUT,
                "dns-failed",
                format!("resolving '{host}' timed out"),
            )
        }
    };
    let reachable: Vec<SocketAddr> = addrs
        .iter()
        .copied()
        .filter(|a| !is_internal(a.ip()) || ctx.allow_internal.iter().any(|c| c.contains(a.ip())))
        .collect();
    if reachable.is_empty() {
        let first = addrs
            .first()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        return deny(
            StatusCode::FORBIDDEN,
            "blocked-internal-address",
            format!(
                "'{host}' resolves to the internal address {first}, which sandboxes may not reach"
            ),
        );
    }
    let mut last = None;
    for addr in reachable {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => {
                let _ = tcp.set_nodelay(true);
                tracing::info!(container = %ctx.container, host = %host, port = target.port, "egress allowed");
                return Ok(tcp);
            }
            Ok(Err(e)) => last = Some(e.to_string()),
            Err(_) => last = Some("timed out".into()),
        }
    }
    deny(
        StatusCode::BAD_GATEWAY,
        "connect-failed",
        format!(
            "cannot connect to '{host}:{}': {}",
            target.port,
            last.unwrap_or_default()
        ),
    )
}

/// Headers that concern the hop to the proxy, not the request.
const HOP_HEADERS: [&str; 4] = [
    "proxy-connection",
    "proxy-authorization",
    "keep-alive",
    "connection",
];

/// Sends a plain HTTP request on to its server over `tcp`, with the container's secrets for
/// `host` put in place of their placeholders in the headers.
async fn forward(
    req: Request<Incoming>,
    tcp: TcpStream,
    policy: &EgressPolicy,
    host: &str,
) -> Result<Response<Body>, hyper::Error> {
    let (mut parts, body) = req.into_parts();
    prepare(&mut parts, policy, host);
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .preserve_header_case(true)
        .handshake(TokioIo::new(tcp))
        .await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let response = sender
        .send_request(Request::from_parts(parts, body))
        .await?;
    Ok(response.map(|b| b.boxed()))
}

/// Readies a request for its server: origin-form URI, no hop headers, and the container's
/// secrets for `host` put in place of their placeholders in the headers.
pub(super) fn prepare(parts: &mut hyper::http::request::Parts, policy: &EgressPolicy, host: &str) {
    parts.uri = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/")
        .parse()
        .unwrap_or_else(|_| hyper::Uri::from_static("/"));
    for name in HOP_HEADERS {
        parts.headers.remove(name);
    }
    let secrets: Vec<_> = policy.secrets_for(host).collect();
    if !secrets.is_empty() {
        let names: Vec<HeaderName> = parts.headers.keys().cloned().collect();
        for name in names {
            let values: Vec<HeaderValue> = parts
                .headers
                .get_all(&name)
                .iter()
                .map(|v| substitute(v, &secrets))
                .collect();
            parts.headers.remove(&name);
            for v in values {
                parts.headers.append(name.clone(), v);
            }
        }
    }
}

fn substitute(value: &HeaderValue, secrets: &[&super::policy::DomainSecret]) -> HeaderValue {
    let Ok(text) = value.to_str() else {
        return value.clone();
    };
    let mut text = text.to_string();
    for secret in secrets {
        text = text.replace(&secret.placeholder(), &secret.value);
    }
    HeaderValue::from_str(&text).unwrap_or_else(|_| value.clone())
}

pub(super) fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

pub(super) fn refusal(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = format!("assistd egress proxy: {message}\n");
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .header("x-proxy-error", code)
        .body(
            Full::new(Bytes::from(body))
                .map_err(|never| match never {})
                .boxed(),
        )
        .unwrap_or_else(|_| Response::new(empty()))
}
