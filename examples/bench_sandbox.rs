//! Sandbox benchmark: latency of code executions through `assistd::sandbox::SandboxManager`
//! against a real Docker daemon, next to plain `docker exec` / `docker run` baselines, and the
//! resident memory of an idle session. Started by `bench/sandbox/run.sh` (see bench/README.md).
//!
//! In one run, with its own instance label (so nothing else's containers are touched):
//!
//! 1. **first execution, pool hit**: waits until the warm pool is full (so the pool has a
//!    sandbox ready and nothing else is launching), then times `exec(new_session, "x = 1")`
//!    alone; sessions are kept for step 4;
//! 2. **next execution**: `print(1)` in a session that already ran code, paced (a pause before
//!    each, as a model round trip would leave, so the post-cell sweep has finished) and back to
//!    back (each exec then also waits for the previous cell's sweep);
//! 3. **baselines**: `docker exec <that session's container> python3 -c pass` with the CLI and
//!    through the Engine API (bollard, as the manager talks to Docker), a cold
//!    `docker run --rm <image> python3 -c pass`, and a cold run that also imports what the
//!    driver imports (what a first execution would cost without a warm pool);
//! 4. **memory**: per idle session container (and per idle pooled one), the figure
//!    `docker stats` shows (cgroup usage minus inactive file pages), the anonymous RSS, and each
//!    process's RSS as `ps` shows it;
//!
//! then prints a table against the goals (first execution p50 <= 15 ms, next-execution
//! overhead p50 <= 2 ms, idle session <= 85 MiB: the IPython kernel's budget), shuts the manager down and checks that no
//! container of the instance is left. Exit status 3 when a goal is missed.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters::{
    ContainerArchiveInfoOptionsBuilder, ListContainersOptionsBuilder, StatsOptionsBuilder,
    TopOptionsBuilder,
};
use bollard::Docker;
use clap::Parser;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use assistd::sandbox::{SandboxConfig, SandboxManager};

const GOAL_FIRST_MS: f64 = 15.0;
const GOAL_NEXT_MS: f64 = 2.0;
const GOAL_IDLE_MB: f64 = 85.0;
/// Marks the containers of the benchmark's sessions (the pool's have none).
const SESSION_MARKER: &str = "/mnt/data/.bench-session";

#[derive(Parser, Debug)]
#[command(about = "assistd sandbox benchmark (see bench/README.md)")]
struct Args {
    /// First executions in new sessions (pool hits); each waits for the pool to refill.
    #[arg(long, default_value_t = 25)]
    first_samples: usize,
    /// Next executions of print(1) in a warm session (paced, and as many back to back).
    #[arg(long, default_value_t = 50)]
    next_samples: usize,
    /// Pause before each paced next execution, in ms.
    #[arg(long, default_value_t = 100)]
    gap_ms: u64,
    /// `docker exec` samples (CLI and Engine API each).
    #[arg(long, default_value_t = 30)]
    exec_samples: usize,
    /// Cold `docker run --rm` samples.
    #[arg(long, default_value_t = 10)]
    run_samples: usize,
    /// Cold `docker run --rm` samples that import numpy, pandas and matplotlib.
    #[arg(long, default_value_t = 3)]
    run_import_samples: usize,
    /// Warm pool size.
    #[arg(long, default_value_t = 2)]
    pool_size: usize,
    #[arg(
        long,
        env = "ASSISTD_SANDBOX_IMAGE",
        default_value = "assistd-sandbox:latest"
    )]
    image: String,
    #[arg(
        long,
        env = "ASSISTD_SANDBOX_INSTANCE",
        default_value = "bench-sandbox"
    )]
    instance: String,
    /// Phases stop taking samples once the run is this old (seconds).
    #[arg(long, default_value_t = 240)]
    budget_secs: u64,
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

struct Row {
    name: String,
    samples: Vec<f64>,
}

impl Row {
    fn new(name: &str, samples: Vec<f64>) -> Row {
        Row {
            name: name.into(),
            samples,
        }
    }
    fn p50(&self) -> f64 {
        pct(&self.samples, 50.0)
    }
    fn p95(&self) -> f64 {
        pct(&self.samples, 95.0)
    }
}

async fn wait_pool_full(manager: &SandboxManager, size: usize, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while manager.stats().pooled < size {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

async fn timed_exec(manager: &SandboxManager, session: &str, code: &str) -> anyhow::Result<f64> {
    let cancel = CancellationToken::new();
    let t = Instant::now();
    let out = manager.exec(session, code, &cancel).await?;
    let elapsed = ms(t.elapsed());
    if let Some(e) = out.error {
        bail!("{code:?} failed in {session}: {} {}", e.ename, e.evalue);
    }
    Ok(elapsed)
}

async fn command_ms(program: &str, args: &[&str]) -> anyhow::Result<f64> {
    let t = Instant::now();
    let status = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .with_context(|| format!("running {program}"))?;
    let elapsed = ms(t.elapsed());
    if !status.success() {
        bail!("{program} {args:?} exited with {status}");
    }
    Ok(elapsed)
}

/// `python3 -c pass` through the Engine API: create, start attached, read to the end, inspect.
async fn api_exec_ms(docker: &Docker, container: &str) -> anyhow::Result<f64> {
    let t = Instant::now();
    let exec = docker
        .create_exec(
            container,
            CreateExecOptions {
                cmd: Some(vec!["python3", "-c", "pass"]),
                user: Some("10001:10001"),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await?;
    if let StartExecResults::Attached { mut output, .. } = docker
        .start_exec(&exec.id, None::<StartExecOptions>)
        .await?
    {
        while output.next().await.is_some() {}
    }
    let code = docker.inspect_exec(&exec.id).await?.exit_code;
    let elapsed = ms(t.elapsed());
    if code != Some(0) {
        bail!("api exec exited with {code:?}");
    }
    Ok(elapsed)
}

/// Containers of the instance: (name, is a benchmark session).
async fn instance_containers(
    docker: &Docker,
    instance: &str,
) -> anyhow::Result<Vec<(String, bool)>> {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("assistd.instance={instance}")],
    )]);
    let list = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await?;
    let mut out = Vec::new();
    for c in list {
        let Some(name) = c.names.and_then(|n| n.into_iter().next()) else {
            continue;
        };
        let name = name.trim_start_matches('/').to_string();
        let options = ContainerArchiveInfoOptionsBuilder::default()
            .path(SESSION_MARKER)
            .build();
        let session = docker
            .get_container_archive_info(&name, Some(options))
            .await
            .is_ok();
        out.push((name, session));
    }
    Ok(out)
}

#[derive(Default, Clone, Copy)]
struct Mem {
    /// What `docker stats` shows: usage minus inactive file pages.
    stats_mb: f64,
    /// Anonymous memory (cgroup v1 total_rss, v2 anon).
    anon_mb: f64,
    /// Page cache and tmpfs charged to the container.
    file_mb: f64,
}

async fn memory(docker: &Docker, container: &str) -> anyhow::Result<Mem> {
    let options = StatsOptionsBuilder::default()
        .stream(false)
        .one_shot(true)
        .build();
    let mut stream = docker.stats(container, Some(options));
    let stats = stream
        .next()
        .await
        .context("no stats")??
        .memory_stats
        .context("no memory stats")?;
    let usage = stats.usage.unwrap_or(0) as f64;
    let map = stats.stats.unwrap_or_default();
    let get = |keys: &[&str]| keys.iter().find_map(|k| map.get(*k)).copied().unwrap_or(0) as f64;
    let inactive = get(&["total_inactive_file", "inactive_file"]);
    let mb = |b: f64| b / (1024.0 * 1024.0);
    Ok(Mem {
        stats_mb: mb(usage - inactive),
        anon_mb: mb(get(&["total_rss", "anon"])),
        file_mb: mb(get(&["total_cache", "file"])),
    })
}

/// (pid, rss MB, command) of each process in the container, as `ps` on the host sees them.
async fn processes(docker: &Docker, container: &str) -> anyhow::Result<Vec<(String, f64, String)>> {
    let options = TopOptionsBuilder::default()
        .ps_args("-o pid,rss,args")
        .build();
    let top = docker.top_processes(container, Some(options)).await?;
    let titles = top.titles.unwrap_or_default();
    let col = |n: &str| titles.iter().position(|t| t == n);
    let (Some(pid), Some(rss), Some(cmd)) = (col("PID"), col("RSS"), col("COMMAND")) else {
        bail!("unexpected ps columns {titles:?}");
    };
    Ok(top
        .processes
        .unwrap_or_default()
        .into_iter()
        .map(|row| {
            let kb: f64 = row.get(rss).and_then(|r| r.parse().ok()).unwrap_or(0.0);
            let mut command = row.get(cmd).cloned().unwrap_or_default();
            if command.chars().count() > 60 {
                command = format!("{}…", command.chars().take(60).collect::<String>());
            }
            (
                row.get(pid).cloned().unwrap_or_default(),
                kb / 1024.0,
                command,
            )
        })
        .collect())
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
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
    let started = Instant::now();
    let budget = Duration::from_secs(args.budget_secs);
    let over = || started.elapsed() > budget;

    let cfg = SandboxConfig {
        image: args.image.clone(),
        instance: args.instance.clone(),
        pool_size: args.pool_size.max(1),
        pool_max: 0,
        max_sessions: args.first_samples + args.pool_size + 16,
        exec_timeout_secs: 30,
        ..Default::default()
    };
    let docker = Docker::connect_with_socket_defaults()?
        .negotiate_version()
        .await?;
    let manager = SandboxManager::start(cfg.clone()).await?;
    let result = measure(&args, &cfg, &manager, &docker, &over).await;
    eprintln!("bench-sandbox: shutting the manager down");
    manager.shutdown().await;
    let left = instance_containers(&docker, &args.instance).await?;
    if !left.is_empty() {
        eprintln!(
            "bench-sandbox: {} containers of {} left behind!",
            left.len(),
            args.instance
        );
    }
    let missed = result?;
    eprintln!(
        "bench-sandbox: done in {:.0} s, no containers left: {}",
        started.elapsed().as_secs_f64(),
        left.is_empty()
    );
    if missed {
        std::process::exit(3);
    }
    Ok(())
}

/// Returns whether a goal was missed.
async fn measure(
    args: &Args,
    cfg: &SandboxConfig,
    manager: &SandboxManager,
    docker: &Docker,
    over: &dyn Fn() -> bool,
) -> anyhow::Result<bool> {
    let pool = cfg.pool_size;
    let refill = Duration::from_secs(120);
    eprintln!("bench-sandbox: warming a pool of {pool}");
    let t = Instant::now();
    if !wait_pool_full(manager, pool, refill).await {
        bail!("the pool did not fill within {refill:?} (see RUST_LOG=warn output)");
    }
    eprintln!(
        "bench-sandbox: pool full after {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // Untimed warm-up: the first take of the process; it then serves as the warm session.
    let warm = "bench-warm";
    timed_exec(manager, warm, "x = 1").await?;

    // ---------------------------------------------------------------- first execution
    eprintln!(
        "bench-sandbox: first executions (pool hits), {} samples",
        args.first_samples
    );
    let mut first = Vec::new();
    let mut refill_s = Vec::new();
    let mut sessions = Vec::new();
    let mut misses = 0;
    for i in 0..args.first_samples {
        if over() {
            eprintln!("bench-sandbox: time budget reached after {i} first-execution samples");
            break;
        }
        let t = Instant::now();
        if !wait_pool_full(manager, pool, refill).await {
            bail!("the pool did not refill within {refill:?}");
        }
        refill_s.push(t.elapsed().as_secs_f64());
        // Let the previous sample's post-cell sweep and container start settle.
        tokio::time::sleep(Duration::from_millis(200)).await;
        if manager.stats().pooled < pool {
            misses += 1;
        }
        let session = format!("bench-first-{i}");
        first.push(timed_exec(manager, &session, "x = 1").await?);
        sessions.push(session);
    }

    // ---------------------------------------------------------------- next execution
    wait_pool_full(manager, pool, refill).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    eprintln!(
        "bench-sandbox: next executions, {} paced + {} back to back",
        args.next_samples, args.next_samples
    );
    timed_exec(manager, warm, "print(1)").await?;
    let mut paced = Vec::new();
    for _ in 0..args.next_samples {
        tokio::time::sleep(Duration::from_millis(args.gap_ms)).await;
        paced.push(timed_exec(manager, warm, "print(1)").await?);
    }
    let mut back_to_back = Vec::new();
    for _ in 0..args.next_samples {
        back_to_back.push(timed_exec(manager, warm, "print(1)").await?);
    }
    // Mark session containers (untimed) so the pool's can be told apart.
    let mark = format!("open({SESSION_MARKER:?}, 'w').close()");
    timed_exec(
        manager,
        warm,
        &format!("{mark}\nopen('/mnt/data/.bench-warm', 'w').close()"),
    )
    .await?;
    for s in &sessions {
        timed_exec(manager, s, &mark).await?;
    }
    let containers = instance_containers(docker, &args.instance).await?;
    let mut warm_container = None;
    for (name, session) in &containers {
        let options = ContainerArchiveInfoOptionsBuilder::default()
            .path("/mnt/data/.bench-warm")
            .build();
        if *session
            && docker
                .get_container_archive_info(name, Some(options))
                .await
                .is_ok()
        {
            warm_container = Some(name.clone());
        }
    }
    let warm_container = warm_container.context("cannot find the warm session's container")?;

    // ---------------------------------------------------------------- baselines
    eprintln!("bench-sandbox: baselines: docker exec x{} (CLI and API), docker run x{} (+{} with imports)", args.exec_samples, args.run_samples, args.run_import_samples);
    let mut cli_exec = Vec::new();
    let mut api_exec = Vec::new();
    for _ in 0..args.exec_samples {
        if over() {
            break;
        }
        cli_exec.push(
            command_ms(
                "docker",
                &[
                    "exec",
                    "-u",
                    "10001:10001",
                    &warm_container,
                    "python3",
                    "-c",
                    "pass",
                ],
            )
            .await?,
        );
        api_exec.push(api_exec_ms(docker, &warm_container).await?);
    }
    // What the manager asks the daemon after every cell (its post-cell process check): the
    // next execution on the thread waits for it when it follows at once.
    let mut top = Vec::new();
    for _ in 0..args.exec_samples {
        let options = TopOptionsBuilder::default()
            .ps_args("-o uid,pid,stat")
            .build();
        let t = Instant::now();
        docker.top_processes(&warm_container, Some(options)).await?;
        top.push(ms(t.elapsed()));
    }
    let mut cold_run = Vec::new();
    for _ in 0..args.run_samples {
        if over() {
            break;
        }
        cold_run.push(
            command_ms(
                "docker",
                &["run", "--rm", &args.image, "python3", "-c", "pass"],
            )
            .await?,
        );
    }
    let mut cold_import = Vec::new();
    for _ in 0..args.run_import_samples {
        if over() {
            break;
        }
        cold_import.push(
            command_ms(
                "docker",
                &[
                    "run",
                    "--rm",
                    "-e",
                    "MPLBACKEND=Agg",
                    "-e",
                    "MPLCONFIGDIR=/tmp/mpl",
                    &args.image,
                    "python3",
                    "-c",
                    "import numpy, pandas, matplotlib.pyplot",
                ],
            )
            .await?,
        );
    }

    // ---------------------------------------------------------------- memory
    wait_pool_full(manager, pool, refill).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    eprintln!("bench-sandbox: memory of idle containers");
    let mut session_mem = Vec::new();
    let mut pool_mem = Vec::new();
    let mut example_session = None;
    let mut example_pool = None;
    for (name, session) in instance_containers(docker, &args.instance).await? {
        let m = memory(docker, &name).await?;
        if session {
            session_mem.push(m);
            example_session.get_or_insert(name);
        } else {
            pool_mem.push(m);
            example_pool.get_or_insert(name);
        }
    }

    // ---------------------------------------------------------------- report
    let rows = [
        Row::new("first exec, new session, pool hit (x = 1)", first.clone()),
        Row::new("next exec print(1), paced", paced.clone()),
        Row::new("next exec print(1), back to back", back_to_back.clone()),
        Row::new(
            "baseline: docker exec python3 -c pass (CLI)",
            cli_exec.clone(),
        ),
        Row::new(
            "baseline: exec python3 -c pass (Engine API)",
            api_exec.clone(),
        ),
        Row::new(
            "post-cell process check (docker top, Engine API)",
            top.clone(),
        ),
        Row::new(
            "baseline: docker run --rm python3 -c pass",
            cold_run.clone(),
        ),
        Row::new(
            "baseline: docker run --rm, import numpy+pandas+mpl",
            cold_import.clone(),
        ),
    ];
    println!();
    println!(
        "{:<52} {:>4} {:>9} {:>9}",
        "latency (ms)", "n", "p50", "p95"
    );
    for r in &rows {
        println!(
            "{:<52} {:>4} {:>9.1} {:>9.1}",
            r.name,
            r.samples.len(),
            r.p50(),
            r.p95()
        );
    }
    println!(
        "(pool refill between first-exec samples: p50 {:.2} s; samples where the pool was not full: {misses})",
        pct(&refill_s, 50.0)
    );

    let col = |f: fn(&Mem) -> f64, v: &[Mem]| v.iter().map(f).collect::<Vec<f64>>();
    let s_stats = col(|m| m.stats_mb, &session_mem);
    let s_anon = col(|m| m.anon_mb, &session_mem);
    let s_file = col(|m| m.file_mb, &session_mem);
    let p_stats = col(|m| m.stats_mb, &pool_mem);
    let p_anon = col(|m| m.anon_mb, &pool_mem);
    println!();
    println!(
        "{:<52} {:>4} {:>9} {:>9} {:>9}",
        "memory per idle container (MiB)", "n", "mean", "min", "max"
    );
    let mem_row = |name: &str, v: &[f64]| {
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        println!(
            "{:<52} {:>4} {:>9.1} {:>9.1} {:>9.1}",
            name,
            v.len(),
            mean(v),
            min,
            max
        );
    };
    mem_row("session: docker stats (usage - inactive file)", &s_stats);
    mem_row("session: anonymous (rss)", &s_anon);
    mem_row("session: page cache + tmpfs charged", &s_file);
    mem_row("pooled, never used: docker stats", &p_stats);
    mem_row("pooled, never used: anonymous (rss)", &p_anon);
    for (what, name) in [("session", &example_session), ("pooled", &example_pool)] {
        if let Some(name) = name {
            println!("processes of one {what} container (ps rss, shared pages counted in each):");
            for (pid, rss, cmd) in processes(docker, name).await? {
                println!("    pid {pid:>8}  {rss:>7.1} MiB  {cmd}");
            }
        }
    }

    let first_p50 = pct(&first, 50.0);
    let next_p50 = pct(&paced, 50.0);
    let idle = mean(&s_stats);
    println!();
    println!("ratios:");
    println!(
        "  first exec p50 / cold docker run p50            {:>6.3}  ({:.1} vs {:.1} ms)",
        first_p50 / pct(&cold_run, 50.0),
        first_p50,
        pct(&cold_run, 50.0)
    );
    println!(
        "  first exec p50 / cold run with imports p50      {:>6.3}",
        first_p50 / pct(&cold_import, 50.0)
    );
    println!(
        "  next exec p50 / docker exec (CLI) p50           {:>6.3}  ({:.1} vs {:.1} ms)",
        next_p50 / pct(&cli_exec, 50.0),
        next_p50,
        pct(&cli_exec, 50.0)
    );
    println!(
        "  next exec p50 / exec via Engine API p50         {:>6.3}  ({:.1} vs {:.1} ms)",
        next_p50 / pct(&api_exec, 50.0),
        next_p50,
        pct(&api_exec, 50.0)
    );
    let goals = [
        (
            "first execution p50 (pool hit)",
            first_p50,
            GOAL_FIRST_MS,
            "ms",
        ),
        (
            "next-execution overhead p50 (print(1), paced)",
            next_p50,
            GOAL_NEXT_MS,
            "ms",
        ),
        (
            "idle session memory (docker stats, mean)",
            idle,
            GOAL_IDLE_MB,
            "MiB",
        ),
    ];
    println!();
    println!("{:<52} {:>9} {:>9}", "goal", "measured", "goal");
    let mut missed = false;
    for (name, value, goal, unit) in goals {
        let ok = value.is_finite() && value <= goal;
        missed |= !ok;
        println!(
            "{name:<52} {value:>9.1} {:>9}  {}",
            format!("<= {goal} {unit}"),
            met(ok)
        );
    }
    Ok(missed)
}
