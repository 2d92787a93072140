//! Settings for the code_interpreter sandboxes, read from flags or `ASSISTD_SANDBOX_*`.

use std::time::Duration;

use super::egress::{Ceiling, Cidr, DomainPattern};

/// How sandboxes are created, limited and recycled.
#[derive(clap::Args, Clone, Debug, PartialEq)]
pub struct SandboxConfig {
    /// Docker image holding Python and the driver package at /opt/assistd/driver.
    #[arg(
        long = "sandbox-image",
        env = "ASSISTD_SANDBOX_IMAGE",
        default_value = "assistd-sandbox:latest"
    )]
    pub image: String,

    /// Seconds one code execution may run before it is interrupted.
    #[arg(
        long = "sandbox-exec-timeout",
        env = "ASSISTD_SANDBOX_EXEC_TIMEOUT",
        default_value_t = 120
    )]
    pub exec_timeout_secs: u64,

    /// Warm containers kept started with the driver loaded, so a new thread's first run is fast.
    #[arg(
        long = "sandbox-pool-size",
        env = "ASSISTD_SANDBOX_POOL_SIZE",
        default_value_t = 2
    )]
    pub pool_size: usize,

    /// Most warm containers: the pool grows from `pool_size` towards this while new sessions
    /// keep coming (sized from their rate) and shrinks back when they stop. At or below
    /// `pool_size`, the pool stays at `pool_size`.
    #[arg(
        long = "sandbox-pool-max",
        env = "ASSISTD_SANDBOX_POOL_MAX",
        default_value_t = 16
    )]
    pub pool_max: usize,

    /// Seconds a thread's sandbox may sit unused before it is removed (variables and files are lost).
    #[arg(
        long = "sandbox-idle-timeout",
        env = "ASSISTD_SANDBOX_IDLE_TIMEOUT",
        default_value_t = 3600
    )]
    pub idle_timeout_secs: u64,

    /// Most sandboxes alive at once; beyond it the least recently used idle one is removed.
    #[arg(
        long = "sandbox-max-sessions",
        env = "ASSISTD_SANDBOX_MAX_SESSIONS",
        default_value_t = 32
    )]
    pub max_sessions: usize,

    /// Memory limit per sandbox in MiB (swap is not allowed beyond it).
    #[arg(
        long = "sandbox-memory-mb",
        env = "ASSISTD_SANDBOX_MEMORY_MB",
        default_value_t = 1024
    )]
    pub memory_mb: u64,

    /// CPU share per sandbox, in CPUs (fractions allowed).
    #[arg(
        long = "sandbox-cpus",
        env = "ASSISTD_SANDBOX_CPUS",
        default_value_t = 1.0
    )]
    pub cpus: f64,

    /// Most processes and threads per sandbox (contains fork bombs).
    #[arg(
        long = "sandbox-pids-limit",
        env = "ASSISTD_SANDBOX_PIDS_LIMIT",
        default_value_t = 256
    )]
    pub pids_limit: i64,

    /// Size in MiB of /mnt/data, the in-memory volume holding uploaded and generated files.
    #[arg(
        long = "sandbox-data-size-mb",
        env = "ASSISTD_SANDBOX_DATA_SIZE_MB",
        default_value_t = 512
    )]
    pub data_size_mb: u64,

    /// Most MiB an E2B sandbox (a writable box) may write to its root filesystem, the
    /// container's own layer on the host's disk (/workspace and whatever root installs).
    /// Docker's overlay2 on ext4 has no per-container quota, so it is checked every few seconds:
    /// past it, the box's commands are stopped (the Python process is spared).
    #[arg(
        long = "sandbox-disk-mb",
        env = "ASSISTD_SANDBOX_DISK_MB",
        default_value_t = 2048
    )]
    pub disk_mb: u64,

    /// Warm writable boxes kept for E2B sandboxes (they grow towards `pool_max` with demand,
    /// as the code-interpreter pool does).
    #[arg(
        long = "sandbox-box-pool-size",
        env = "ASSISTD_SANDBOX_BOX_POOL_SIZE",
        default_value_t = 1
    )]
    pub box_pool_size: usize,

    /// Size in MiB of the sandbox's /tmp (an in-memory filesystem).
    #[arg(
        long = "sandbox-tmp-size-mb",
        env = "ASSISTD_SANDBOX_TMP_SIZE_MB",
        default_value_t = 256
    )]
    pub tmp_size_mb: u64,

    /// Most bytes of stdout+stderr kept from one execution; the rest is cut with a visible note.
    #[arg(
        long = "sandbox-max-output",
        env = "ASSISTD_SANDBOX_MAX_OUTPUT",
        default_value_t = 64 * 1024
    )]
    pub max_output: u64,

    /// Sandboxes' network: "none" (no network at all), "proxy" (each container reaches only
    /// what its network policy allows, within `ASSISTD_SANDBOX_ALLOWED_DOMAINS`, through the
    /// egress proxy), or a Docker network mode such as "bridge" (unfiltered; only a `disabled`
    /// policy narrows it).
    #[arg(
        long = "sandbox-network",
        env = "ASSISTD_SANDBOX_NETWORK",
        default_value = "none"
    )]
    pub network: String,

    /// With `ASSISTD_SANDBOX_NETWORK=proxy`: the domains sandboxes may reach at most, comma
    /// separated (`example.com`, `*.example.com` for subdomains, `**.example.com` for both, `*`
    /// for any name). Network policies in requests may only narrow it.
    #[arg(
        long = "sandbox-allowed-domains",
        env = "ASSISTD_SANDBOX_ALLOWED_DOMAINS",
        default_value = "*"
    )]
    pub allowed_domains: String,

    /// Internal address ranges (CIDRs, comma separated) the egress proxy may connect to although
    /// they are loopback, private or link-local; none by default, so no allowed name can lead
    /// to the host, the Docker network, another sandbox or a cloud metadata service.
    #[arg(
        long = "sandbox-egress-allow-internal",
        env = "ASSISTD_SANDBOX_EGRESS_ALLOW_INTERNAL",
        default_value = ""
    )]
    pub egress_allow_internal: String,

    /// Host directory for the egress proxy's per-sandbox sockets (bind-mounted into sandboxes;
    /// when assistd itself runs in a container, mount it at the same path there).
    #[arg(
        long = "sandbox-egress-dir",
        env = "ASSISTD_SANDBOX_EGRESS_DIR",
        default_value = "/tmp/assistd-egress"
    )]
    pub egress_dir: String,

    /// Directory holding the egress proxy's CA (key and certificate, made on first start,
    /// readable by this user only), which signs the certificates of the hosts it intercepts for
    /// domain secrets; never mounted into sandboxes. Default: `<ASSISTD_SANDBOX_EGRESS_DIR>-ca`.
    /// Replicas on one host may share it; each host may have its own.
    #[arg(long = "sandbox-egress-ca-dir", env = "ASSISTD_SANDBOX_EGRESS_CA_DIR")]
    pub egress_ca_dir: Option<String>,

    /// OCI runtime for sandboxes (e.g. "runsc" for gVisor); Docker's default when unset.
    #[arg(long = "sandbox-runtime", env = "ASSISTD_SANDBOX_RUNTIME")]
    pub runtime: Option<String>,

    /// Seconds between checkpoints of a session in use (its /mnt/data and variables, to the blob
    /// store), taken only when code ran or files arrived since the last one; 0 = only when the
    /// session ends. What a crash loses is what happened since the last checkpoint.
    #[arg(
        long = "sandbox-checkpoint-secs",
        env = "ASSISTD_SANDBOX_CHECKPOINT_SECS",
        default_value_t = 300
    )]
    pub checkpoint_secs: u64,

    /// Seconds a thread's checkpoint is kept after its last use (then the thread's next run
    /// starts with an empty sandbox).
    #[arg(
        long = "sandbox-retain-secs",
        env = "ASSISTD_SANDBOX_RETAIN_SECS",
        default_value_t = 3600
    )]
    pub retain_secs: u64,

    /// Label naming this set of sandbox containers, beside the deployment id (from the
    /// database) and the owning worker. Replicas of one deployment share it (the default does)
    /// to clean up after each other's crashes; a different value fences a set off, e.g. for a
    /// copy of the database (which carries the original's deployment id).
    #[arg(
        long = "sandbox-instance",
        env = "ASSISTD_SANDBOX_INSTANCE",
        default_value = "assistd"
    )]
    pub instance: String,

    /// Set at start when the Docker engine sees this host's skill directory (see `skills.rs`):
    /// sandboxes then bind-mount their skills from it.
    #[arg(skip)]
    pub skills_host_dir: Option<std::path::PathBuf>,
}

impl SandboxConfig {
    pub fn exec_timeout(&self) -> Duration {
        Duration::from_secs(self.exec_timeout_secs)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    /// None when periodic checkpoints are off.
    pub fn checkpoint_every(&self) -> Option<Duration> {
        (self.checkpoint_secs > 0).then(|| Duration::from_secs(self.checkpoint_secs))
    }

    pub fn retain(&self) -> Duration {
        Duration::from_secs(self.retain_secs)
    }

    /// The operator's network setting as a ceiling over per-container policies.
    pub fn ceiling(&self) -> Result<Ceiling, String> {
        match self.network.as_str() {
            "none" => Ok(Ceiling::Off),
            "proxy" => {
                let domains = self
                    .allowed_domains
                    .split(',')
                    .filter(|d| !d.trim().is_empty())
                    .map(|d| DomainPattern::parse(d, true))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("ASSISTD_SANDBOX_ALLOWED_DOMAINS: {e}"))?;
                if domains.is_empty() {
                    return Err(
                        "ASSISTD_SANDBOX_ALLOWED_DOMAINS is empty; with no domain to \
                         allow, set ASSISTD_SANDBOX_NETWORK=none"
                            .into(),
                    );
                }
                Ok(Ceiling::Proxy(domains))
            }
            mode => Ok(Ceiling::Direct(mode.to_string())),
        }
    }

    /// The internal ranges the egress proxy may reach.
    pub fn egress_allow_internal(&self) -> Result<Vec<Cidr>, String> {
        self.egress_allow_internal
            .split(',')
            .filter(|c| !c.trim().is_empty())
            .map(|c| c.parse::<Cidr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("ASSISTD_SANDBOX_EGRESS_ALLOW_INTERNAL: {e}"))
    }

    /// Where the egress CA is kept.
    pub fn egress_ca_dir(&self) -> std::path::PathBuf {
        match &self.egress_ca_dir {
            Some(dir) if !dir.is_empty() => dir.into(),
            _ => format!("{}-ca", self.egress_dir.trim_end_matches('/')).into(),
        }
    }

    /// Whether sandboxes sit behind the egress proxy.
    pub fn proxied(&self) -> bool {
        self.network == "proxy"
    }
}

impl Default for SandboxConfig {
    /// The documented defaults, as if no flag or variable were set.
    fn default() -> Self {
        SandboxConfig {
            image: "assistd-sandbox:latest".into(),
            exec_timeout_secs: 120,
            pool_size: 2,
            pool_max: 16,
            idle_timeout_secs: 3600,
            max_sessions: 32,
            memory_mb: 1024,
            cpus: 1.0,
            pids_limit: 256,
            data_size_mb: 512,
            disk_mb: 2048,
            box_pool_size: 1,
            tmp_size_mb: 256,
            max_output: 64 * 1024,
            network: "none".into(),
            allowed_domains: "*".into(),
            egress_allow_internal: String::new(),
            egress_dir: "/tmp/assistd-egress".into(),
            egress_ca_dir: None,
            runtime: None,
            checkpoint_secs: 300,
            retain_secs: 3600,
            instance: "assistd".into(),
            skills_host_dir: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sandbox: SandboxConfig,
    }

    #[test]
    fn default_matches_what_clap_parses_without_flags() {
        if std::env::vars().any(|(k, _)| k.starts_with("ASSISTD_SANDBOX_")) {
            return; // the environment overrides defaults; nothing to compare
        }
        assert_eq!(
            Cli::parse_from(["assistd"]).sandbox,
            SandboxConfig::default()
        );
    }

    #[test]
    fn flags_override_defaults() {
        let cli = Cli::parse_from([
            "assistd",
            "--sandbox-network",
            "bridge",
            "--sandbox-runtime",
            "runsc",
            "--sandbox-cpus",
            "0.5",
        ]);
        assert_eq!(cli.sandbox.network, "bridge");
        assert_eq!(cli.sandbox.runtime.as_deref(), Some("runsc"));
        assert_eq!(cli.sandbox.cpus, 0.5);
    }
}
