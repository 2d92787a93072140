//! Per-sandbox network policies, enforced by an egress proxy inside this process.
//!
//! With `ASSISTD_SANDBOX_NETWORK=proxy` a sandbox has no network of its own (Docker's `none`
//! mode: no route, no DNS, no address to reach the host, the Docker bridge, another sandbox or
//! the cloud's metadata service by). Its guardian runs a relay on 127.0.0.1:3128, where
//! `HTTP_PROXY`/`HTTPS_PROXY` point, which hands each connection over a Unix socket mounted from
//! the host (`handoff.rs`) to the proxy (`proxy.rs`), which applies the policy of the session that
//! holds the container (`policy.rs`) and carries tunnels by `splice` (`splice.rs`). A sandbox is
//! attached when a session takes it from the pool and detached when it goes.
//! `CONNECT`s to hosts with a domain secret are intercepted (`intercept.rs`); sandboxes trust
//! the egress CA through the files [`provide_trust`] puts beside their socket.

mod handoff;
mod intercept;
mod policy;
mod proxy;
mod splice;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

pub use intercept::{Interceptor, TrustFiles};
pub use policy::{
    is_internal, placeholder, Ceiling, Cidr, DomainPattern, DomainSecret, EgressPolicy,
};
pub use proxy::{Egress, EgressLease, SOCKET};

/// Python run by the guardian before it settles down: the relay (see the module's comment).
pub(crate) const RELAY: &str = include_str!("relay.py");

/// Where the container's socket directory is mounted.
pub(crate) const MOUNT: &str = "/run/assistd-egress";

/// Where the proxy listens inside the sandbox (the relay).
pub(crate) const PROXY_URL: &str = "http://127.0.0.1:3128";

/// The environment that steers pip, requests, curl, npm and the like to the relay.
pub(crate) fn proxy_env() -> Vec<String> {
    let mut env = Vec::new();
    for name in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
        env.push(format!("{name}={PROXY_URL}"));
    }
    for name in ["NO_PROXY", "no_proxy"] {
        env.push(format!("{name}=localhost,127.0.0.1,::1"));
    }
    if let Some(trust) = TRUST.get() {
        // The bundle (the server's trusted roots plus the egress CA) for OpenSSL (curl, Python's
        // ssl and urllib, pip's truststore), requests, curl and pip; Node adds the CA to its own.
        if trust.bundle.is_some() {
            let bundle = format!("{MOUNT}/{}", intercept::CA_BUNDLE);
            for name in [
                "SSL_CERT_FILE",
                "REQUESTS_CA_BUNDLE",
                "CURL_CA_BUNDLE",
                "PIP_CERT",
            ] {
                env.push(format!("{name}={bundle}"));
            }
        }
        env.push(format!(
            "NODE_EXTRA_CA_CERTS={MOUNT}/{}",
            intercept::CA_CERT
        ));
    }
    env
}

/// The trust files sandboxes get, once the manager made them.
static TRUST: OnceLock<TrustFiles> = OnceLock::new();

pub(crate) fn set_trust(files: TrustFiles) {
    let _ = TRUST.set(files);
}

/// Puts the trust files into a sandbox's socket directory `dir` (linked: same file system).
pub(crate) fn provide_trust(dir: &Path) -> std::io::Result<()> {
    let Some(files) = TRUST.get() else {
        return Ok(());
    };
    for (from, name) in [
        (Some(&files.ca), intercept::CA_CERT),
        (files.bundle.as_ref(), intercept::CA_BUNDLE),
    ] {
        let Some(from) = from else { continue };
        let to = dir.join(name);
        let _ = std::fs::remove_file(&to);
        if std::fs::hard_link(from, &to).is_err() {
            std::fs::copy(from, &to)?;
        }
    }
    Ok(())
}

/// The directory holding every sandbox's socket directory, once the manager set it; container
/// removal clears a sandbox's directory from here.
static ROOT: OnceLock<PathBuf> = OnceLock::new();

pub(crate) fn set_root(dir: &Path) {
    let _ = ROOT.set(dir.to_path_buf());
}

/// The sandboxes attached to the proxy, by container name.
static LEASES: OnceLock<Mutex<HashMap<String, EgressLease>>> = OnceLock::new();

fn leases() -> &'static Mutex<HashMap<String, EgressLease>> {
    LEASES.get_or_init(Default::default)
}

/// Attaches container `name` to `egress` with the session's policy `cell`, until [`detach`].
pub(crate) fn attach(
    egress: &Egress,
    name: &str,
    cell: Arc<RwLock<EgressPolicy>>,
) -> std::io::Result<()> {
    let lease = egress.attach(name, cell)?;
    if let Ok(mut leases) = leases().lock() {
        leases.insert(name.to_owned(), lease);
    }
    Ok(())
}

/// Stops serving container `name` and removes its socket directory (Docker made it for the
/// bind mount); called whenever a sandbox container is removed.
pub(crate) fn detach(name: &str) {
    if let Ok(mut leases) = leases().lock() {
        leases.remove(name);
    }
    if let Some(root) = ROOT.get() {
        let _ = std::fs::remove_dir_all(root.join(name));
    }
}

/// Each session's policy, shared with the proxy while a sandbox of the session is attached,
/// so a change reaches connections opened afterwards. Sessions not listed get the operator's
/// widest policy.
#[derive(Default)]
pub(crate) struct Policies {
    cells: RwLock<HashMap<String, Arc<RwLock<EgressPolicy>>>>,
}

impl Policies {
    /// Sets `session`'s policy; None forgets it (the operator's default applies again).
    pub fn set(&self, session: &str, policy: Option<EgressPolicy>) {
        let Ok(mut cells) = self.cells.write() else {
            return;
        };
        match policy {
            None => {
                if let Some(cell) = cells.remove(session) {
                    if let Ok(mut p) = cell.write() {
                        *p = EgressPolicy::Disabled;
                    }
                }
            }
            Some(policy) => match cells.get(session) {
                Some(cell) => {
                    if let Ok(mut p) = cell.write() {
                        *p = policy;
                    }
                }
                None => {
                    cells.insert(session.to_owned(), Arc::new(RwLock::new(policy)));
                }
            },
        }
    }

    /// `session`'s policy cell, made with `default` when it has none.
    pub fn cell(&self, session: &str, default: EgressPolicy) -> Arc<RwLock<EgressPolicy>> {
        if let Ok(cells) = self.cells.read() {
            if let Some(cell) = cells.get(session) {
                return cell.clone();
            }
        }
        Arc::new(RwLock::new(default))
    }

    /// The explicit policy of `session`, if any.
    pub fn get(&self, session: &str) -> Option<EgressPolicy> {
        let cells = self.cells.read().ok()?;
        let cell = cells.get(session)?;
        let policy = cell.read().ok()?.clone();
        Some(policy)
    }
}
