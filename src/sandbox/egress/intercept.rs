//! TLS interception, for the one reason to do it: `domain_secrets` over HTTPS.
//!
//! A `CONNECT` to a host the session's policy holds a secret for is answered by the proxy
//! itself: it accepts TLS with a certificate for that host signed by the deployment's egress CA
//! (which sandboxes trust besides the system's, see [`TrustFiles`]), serves HTTP/1.1 on it,
//! puts the secrets in place of their placeholders in each request's headers, and sends the
//! request on over TLS to the real host, verified against the server's own trust store
//! (`SSL_CERT_FILE` on the server process replaces it). Every other tunnel stays end to end.
//!
//! The CA is made once and kept in `ASSISTD_SANDBOX_EGRESS_CA_DIR` (key and certificate in one
//! file, readable by this process's user only); that directory is never mounted into a sandbox,
//! only the certificate is.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use anyhow::Context;
use base64::Engine;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::policy::EgressPolicy;
use super::proxy::{prepare, refusal, Body};

/// The file in the CA directory holding the CA's key and certificate (PEM, one after the other).
const CA_FILE: &str = "egress-ca.pem";

/// Leaf certificates kept at most; past it the cache starts over.
const MAX_LEAVES: usize = 1024;

/// The names of the trust files in each sandbox's socket directory (mounted read-only at
/// [`super::MOUNT`]).
pub(crate) const CA_CERT: &str = "ca.pem";
pub(crate) const CA_BUNDLE: &str = "ca-bundle.pem";

/// The egress CA, the leaf certificates it made, and the client side towards real hosts.
pub struct Interceptor {
    issuer: Issuer<'static, KeyPair>,
    /// One key for every leaf: the CA's signature is what binds it to a host.
    leaf_key: KeyPair,
    leaves: Mutex<HashMap<String, Arc<ServerConfig>>>,
    upstream: Arc<ClientConfig>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl std::fmt::Debug for Interceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interceptor").finish_non_exhaustive()
    }
}

/// The CA's certificate and the bundle (the server's trusted roots plus the CA) sandboxes are
/// given, as files in the proxy's directory, linked into each sandbox's. No bundle when the
/// server has no roots: it would make sandboxes distrust every other host.
#[derive(Debug, Clone)]
pub struct TrustFiles {
    pub ca: PathBuf,
    pub bundle: Option<PathBuf>,
}

/// The CA's subject: what a leaf's issuer names (the same whether made now or loaded).
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "assistd egress proxy CA");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "assistd");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// Loads the CA from `dir`, or makes it there; returns its key and certificate (PEM).
fn load_or_create_ca(dir: &Path) -> anyhow::Result<(KeyPair, String)> {
    let path = dir.join(CA_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let cert_at = text
            .find("-----BEGIN CERTIFICATE-----")
            .context("the egress CA file holds no certificate")?;
        let key = KeyPair::from_pem(&text[..cert_at]).context("the egress CA's key")?;
        return Ok((key, text[cert_at..].to_string()));
    }
    std::fs::create_dir_all(dir)?;
    set_mode(dir, 0o700)?;
    let key = KeyPair::generate()?;
    let cert = ca_params().self_signed(&key)?.pem();
    // Written whole under another name, then renamed: a second replica making its own at the
    // same time loses the race cleanly, and the one that stays is read back.
    let tmp = dir.join(format!(".{CA_FILE}.{}", std::process::id()));
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(key.serialize_pem().as_bytes())?;
        f.write_all(cert.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    tracing::info!(path = %path.display(), "egress CA created");
    let text = std::fs::read_to_string(&path)?;
    let cert_at = text
        .find("-----BEGIN CERTIFICATE-----")
        .context("the egress CA file holds no certificate")?;
    Ok((KeyPair::from_pem(&text[..cert_at])?, text[cert_at..].into()))
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

fn pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Writes `text` to `path` whole (another name, then renamed), readable by everyone.
fn write_public(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, text)?;
    set_mode(&tmp, 0o644)?;
    std::fs::rename(&tmp, path)
}

impl Interceptor {
    /// Loads or makes the CA in `ca_dir`, and writes the sandboxes' trust files into `public`
    /// (the proxy's directory, whose sandbox subdirectories are mounted into sandboxes).
    pub fn new(ca_dir: &Path, public: &Path) -> anyhow::Result<(Interceptor, TrustFiles)> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let (key, ca_pem) = load_or_create_ca(ca_dir)
            .with_context(|| format!("egress CA in {}", ca_dir.display()))?;
        let issuer = Issuer::new(ca_params(), key);

        let native = rustls_native_certs::load_native_certs();
        for e in &native.errors {
            tracing::warn!(error = %e, "egress proxy: loading the system's trusted roots");
        }
        let mut roots = RootCertStore::empty();
        let (added, _) = roots.add_parsable_certificates(native.certs.iter().cloned());
        if added == 0 {
            // Not fatal: only intercepted hosts need them, and their refusal says why.
            tracing::warn!(
                "the egress proxy found no trusted root certificates on this host (install \
                 ca-certificates, or set SSL_CERT_FILE): HTTPS to hosts with a domain secret \
                 fails, and sandboxes get no trust bundle (only NODE_EXTRA_CA_CERTS)"
            );
        }
        let mut upstream = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        upstream.alpn_protocols = vec![b"http/1.1".to_vec()];

        let mut bundle = String::new();
        for cert in &native.certs {
            bundle.push_str(&pem(cert));
        }
        bundle.push_str(&ca_pem);
        let files = TrustFiles {
            ca: public.join(CA_CERT),
            bundle: (added > 0).then(|| public.join(CA_BUNDLE)),
        };
        write_public(&files.ca, &ca_pem)?;
        if let Some(path) = &files.bundle {
            write_public(path, &bundle)?;
        }

        Ok((
            Interceptor {
                issuer,
                leaf_key: KeyPair::generate()?,
                leaves: Mutex::new(HashMap::new()),
                upstream: Arc::new(upstream),
                provider,
            },
            files,
        ))
    }

    /// The TLS server side for `host`: a leaf certificate made on first use and kept.
    fn server_config(&self, host: &str) -> anyhow::Result<Arc<ServerConfig>> {
        if let Some(config) = self.leaves.lock().ok().and_then(|l| l.get(host).cloned()) {
            return Ok(config);
        }
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.leaf_key.serialize_der()));
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![self.leaf(host)?], key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);
        if let Ok(mut leaves) = self.leaves.lock() {
            if leaves.len() >= MAX_LEAVES {
                leaves.clear();
            }
            leaves.insert(host.to_string(), config.clone());
        }
        Ok(config)
    }

    /// A certificate for `host`, signed by the CA.
    fn leaf(&self, host: &str) -> anyhow::Result<CertificateDer<'static>> {
        let mut params = CertificateParams::new(vec![host.to_string()])?;
        params.distinguished_name.push(DnType::CommonName, host);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        // Python's strict verification (3.13's default) wants the issuer's key named.
        params.use_authority_key_identifier_extension = true;
        let now = std::time::SystemTime::now();
        params.not_before = (now - std::time::Duration::from_secs(86_400)).into();
        params.not_after = (now + std::time::Duration::from_secs(365 * 86_400)).into();
        let leaf = params.signed_by(&self.leaf_key, &self.issuer)?;
        Ok(CertificateDer::from(leaf.der().to_vec()))
    }

    /// TLS to the real `host` over `tcp`, verified against the server's trust store.
    async fn connect(&self, tcp: TcpStream, host: &str) -> std::io::Result<TlsStream<TcpStream>> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        TlsConnector::from(self.upstream.clone())
            .connect(name, tcp)
            .await
    }
}

/// Answers a `CONNECT` to `host` whose policy holds a secret for it: TLS to the real host first
/// (so a failure is still a readable refusal), then `200` and the intercepted connection.
pub(super) async fn intercept(
    tls: Arc<Interceptor>,
    req: Request<Incoming>,
    tcp: TcpStream,
    host: String,
    container: String,
    policy: Arc<RwLock<EgressPolicy>>,
) -> Response<Body> {
    let server = match tls.server_config(&host) {
        Ok(config) => config,
        Err(e) => {
            tracing::warn!(host = %host, error = %e, "egress leaf certificate");
            return refusal(
                StatusCode::BAD_GATEWAY,
                "interception-failed",
                &format!("cannot make a certificate for '{host}'"),
            );
        }
    };
    let upstream = match tls.connect(tcp, &host).await {
        Ok(stream) => stream,
        Err(e) => {
            tracing::info!(container = %container, host = %host, error = %e, "egress upstream TLS failed");
            return refusal(
                StatusCode::BAD_GATEWAY,
                "upstream-tls-failed",
                &format!("TLS with '{host}' failed: {e}"),
            );
        }
    };
    tracing::info!(container = %container, host = %host, "egress intercepted for a domain secret");
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(e) => return tracing::debug!(error = %e, "egress upgrade"),
        };
        let client = match TlsAcceptor::from(server)
            .accept(TokioIo::new(upgraded))
            .await
        {
            Ok(s) => s,
            Err(e) => {
                return tracing::info!(container = %container, host = %host, error = %e,
                    "egress: the sandbox refused the proxy's TLS (is the egress CA trusted?)")
            }
        };
        let (sender, conn) = match hyper::client::conn::http1::Builder::new()
            .preserve_header_case(true)
            .handshake(TokioIo::new(upstream))
            .await
        {
            Ok(pair) => pair,
            Err(e) => return tracing::debug!(error = %e, "egress upstream handshake"),
        };
        let (closed_tx, closed) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = conn.await;
            let _ = closed_tx.send(());
        });
        let sender = Arc::new(tokio::sync::Mutex::new(sender));
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let sender = sender.clone();
            let policy = policy.clone();
            let host = host.clone();
            async move {
                let (mut parts, body) = req.into_parts();
                let current = policy
                    .read()
                    .map(|p| p.clone())
                    .unwrap_or(EgressPolicy::Disabled);
                if !current.allows(&host) {
                    return Ok::<_, hyper::Error>(refusal(
                        StatusCode::FORBIDDEN,
                        "blocked-by-allowlist",
                        &format!("'{host}' is no longer in this container's network allowlist"),
                    ));
                }
                prepare(&mut parts, &current, &host);
                let mut sender = sender.lock().await;
                let sent = match sender.ready().await {
                    Ok(()) => sender.send_request(Request::from_parts(parts, body)).await,
                    Err(e) => Err(e),
                };
                Ok(match sent {
                    Ok(response) => response.map(http_body_util::BodyExt::boxed),
                    Err(e) => refusal(
                        StatusCode::BAD_GATEWAY,
                        "upstream-failed",
                        &format!("request to '{host}' failed: {e}"),
                    ),
                })
            }
        });
        let serving = hyper::server::conn::http1::Builder::new()
            .preserve_header_case(true)
            .serve_connection(TokioIo::new(client), service);
        tokio::pin!(serving);
        tokio::select! {
            _ = serving.as_mut() => {}
            // The server closed its side (an idle keep-alive ending): close the sandbox's too once
            // the request under way is answered, so its client reconnects rather than get a 502.
            _ = closed => {
                serving.as_mut().graceful_shutdown();
                let _ = serving.await;
            }
        }
    });
    Response::new(super::proxy::empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_made_once_and_its_key_stays_out_of_the_sandboxes_files() {
        let base = std::env::temp_dir().join(format!("assistd-ca-test-{}", std::process::id()));
        let (ca_dir, public) = (base.join("ca"), base.join("public"));
        std::fs::create_dir_all(&public).unwrap();
        let (first, files) = Interceptor::new(&ca_dir, &public).unwrap();
        let ca = std::fs::read_to_string(&files.ca).unwrap();
        let (_, again) = Interceptor::new(&ca_dir, &public).unwrap();
        assert_eq!(std::fs::read_to_string(&again.ca).unwrap(), ca);
        let bundle = match &files.bundle {
            Some(path) => std::fs::read_to_string(path).unwrap(),
            None => ca.clone(),
        };
        assert!(bundle.ends_with(&ca));
        for text in [&ca, &bundle] {
            assert!(!text.contains("PRIVATE KEY"));
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&ca_dir.join(CA_FILE)), 0o600);
        assert_eq!(mode(&ca_dir), 0o700);

        // A leaf for a host verifies against the CA, for that name only.
        let config = first.server_config("api.example.test").unwrap();
        assert!(Arc::ptr_eq(
            &config,
            &first.server_config("api.example.test").unwrap()
        ));
        let mut roots = RootCertStore::empty();
        let der = rustls::pki_types::pem::PemObject::from_pem_slice(ca.as_bytes()).unwrap();
        roots.add(der).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            first.provider.clone(),
        )
        .build()
        .unwrap();
        let leaf = first.leaf("api.example.test").unwrap();
        let check = |name: &str| {
            use rustls::client::danger::ServerCertVerifier;
            verifier.verify_server_cert(
                &leaf,
                &[],
                &ServerName::try_from(name.to_string()).unwrap(),
                &[],
                rustls::pki_types::UnixTime::now(),
            )
        };
        assert!(check("api.example.test").is_ok());
        assert!(check("other.example.test").is_err());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
