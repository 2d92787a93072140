//! Shell-tool benchmark: the server-side time of a hosted `shell` call of `true` in a warm
//! container (`SandboxManager::run_shell`, what the run loop calls for a `shell_call`: the
//! command in a fresh `bash -lc` started by the session's driver, output and /mnt/data changes
//! collected), next to plain `docker exec <that container> true` as the baseline. Started by
//! `bench/shell/run.sh` (see bench/README.md). Exit status 3 when the goal (p50 <= 5 ms) is
//! missed.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bollard::query_parameters::{ContainerArchiveInfoOptionsBuilder, ListContainersOptionsBuilder};
use bollard::Docker;
use clap::Parser;
use tokio_util::sync::CancellationToken;

use assistd::sandbox::shell::ShellRequest;
use assistd::sandbox::{SandboxConfig, SandboxManager};

const GOAL_MS: f64 = 5.0;
const MARKER: &str = "/mnt/data/.bench-shell";

#[derive(Parser, Debug)]
#[command(about = "assistd shell-tool benchmark (see bench/README.md)")]
struct Args {
    /// Shell calls of `true` (paced, and as many back to back).
    #[arg(long, default_value_t = 100)]
    samples: usize,
    /// Pause before each paced call, in ms (a model round trip leaves one).
    #[arg(long, default_value_t = 50)]
    gap_ms: u64,
    /// `docker exec <container> true` samples.
    #[arg(long, default_value_t = 30)]
    exec_samples: usize,
    #[arg(
        long,
        env = "ASSISTD_SANDBOX_IMAGE",
        default_value = "assistd-sandbox:latest"
    )]
    image: String,
    #[arg(long, env = "ASSISTD_SANDBOX_INSTANCE", default_value = "bench-shell")]
    instance: String,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nearest-rank percentile of unsorted samples.
fn pct(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * s.len() as f64).ceil().max(1.0) as usize;
    s[rank.min(s.len()) - 1]
}

async fn shell_true(manager: &SandboxManager, session: &str) -> anyhow::Result<f64> {
    let commands = ["true".to_string()];
    let request = ShellRequest {
        commands: &commands,
        timeout: Some(Duration::from_secs(10)),
        max_chars: 4096,
    };
    let t = Instant::now();
    let out = manager
        .run_shell(session, request, &CancellationToken::new())
        .await?;
    let elapsed = ms(t.elapsed());
    let outcome = &out.commands.first().context("no output")?.outcome;
    if outcome["exit_code"] != 0 {
        bail!("`true` ended with {outcome}");
    }
    Ok(elapsed)
}

async fn docker_exec_true(container: &str) -> anyhow::Result<f64> {
    let t = Instant::now();
    let status = tokio::process::Command::new("docker")
        .args(["exec", "-u", "10001:10001", container, "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await?;
    let elapsed = ms(t.elapsed());
    if !status.success() {
        bail!("docker exec true exited with {status}");
    }
    Ok(elapsed)
}

/// The container of the marked session, among the instance's.
async fn marked_container(docker: &Docker, instance: &str) -> anyhow::Result<String> {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("assistd.instance={instance}")],
    )]);
    let list = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await?;
    for c in list {
        let Some(name) = c.names.and_then(|n| n.into_iter().next()) else {
            continue;
        };
        let name = name.trim_start_matches('/').to_string();
        let options = ContainerArchiveInfoOptionsBuilder::default()
            .path(MARKER)
            .build();
        if docker
            .get_container_archive_info(&name, Some(options))
            .await
            .is_ok()
        {
            return Ok(name);
        }
    }
    bail!("cannot find the session's container")
}

fn row(name: &str, samples: &[f64]) {
    println!(
        "  {name:<46} p50 {:>7.2} ms   p95 {:>7.2} ms   (n={})",
        pct(samples, 50.0),
        pct(samples, 95.0),
        samples.len()
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let cfg = SandboxConfig {
        image: args.image.clone(),
        instance: args.instance.clone(),
        pool_size: 1,
        pool_max: 0,
        exec_timeout_secs: 30,
        ..Default::default()
    };
    let docker = Docker::connect_with_socket_defaults()?
        .negotiate_version()
        .await?;
    let manager = SandboxManager::start(cfg).await?;
    let result = measure(&args, &manager, &docker).await;
    manager.shutdown().await;
    let missed = result?;
    if missed {
        std::process::exit(3);
    }
    Ok(())
}

async fn measure(args: &Args, manager: &SandboxManager, docker: &Docker) -> anyhow::Result<bool> {
    let session = "bench-shell";
    let cancel = CancellationToken::new();
    // Warm: the session's container, its driver, a first shell call.
    manager
        .exec(session, &format!("open({MARKER:?}, 'w').close()"), &cancel)
        .await?;
    for _ in 0..5 {
        shell_true(manager, session).await?;
    }
    let container = marked_container(docker, &args.instance).await?;
    eprintln!(
        "bench-shell: {} shell calls of `true` paced, {} back to back",
        args.samples, args.samples
    );
    let mut paced = Vec::new();
    for _ in 0..args.samples {
        tokio::time::sleep(Duration::from_millis(args.gap_ms)).await;
        paced.push(shell_true(manager, session).await?);
    }
    let mut back_to_back = Vec::new();
    for _ in 0..args.samples {
        back_to_back.push(shell_true(manager, session).await?);
    }
    eprintln!(
        "bench-shell: baseline: docker exec true x{}",
        args.exec_samples
    );
    let mut exec = Vec::new();
    for _ in 0..args.exec_samples {
        exec.push(docker_exec_true(&container).await?);
    }
    println!("shell_call of `true` in a warm container (server side: SandboxManager::run_shell)");
    row("shell_call `true`, paced", &paced);
    row("shell_call `true`, back to back", &back_to_back);
    row("baseline: docker exec <container> true (CLI)", &exec);
    let p50 = pct(&paced, 50.0);
    let met = p50 <= GOAL_MS;
    println!(
        "  goal: paced p50 <= {GOAL_MS} ms: {} ({p50:.2} ms; {:.1}x faster than docker exec)",
        if met { "met" } else { "MISSED" },
        pct(&exec, 50.0) / p50
    );
    Ok(!met)
}
