//! Warm-pool benchmark: new threads arriving at a steady rate, each with one code run, through
//! `assistd::sandbox::SandboxManager` against the real Docker daemon. Started by
//! `bench/sandbox/pool.sh` (`make bench-pool`; see bench/README.md).
//!
//! The same load twice in one run, each on a manager of its own (own instance label): first
//! with a fixed pool of `--floor` warm sandboxes (`pool_max` = floor, as before pool sizing),
//! then with pool sizing on (floor `--floor`, cap `--cap`). Each phase starts with a full pool
//! at the floor, then a new session arrives every 1/`--rate` s for `--secs` s (arrivals are on
//! a clock, not waiting for each other) and runs `print(1)`; its first-code latency is the time
//! from its arrival to the result. Sessions stay live as a thread's would, up to
//! `--max-sessions` (the least recently used is evicted beyond, as the server does). Prints
//! p50/p95/max, pool hits and misses and the largest target per phase, and the goal (sizing on:
//! p95 <= 100 ms). Exit status 3 when the goal is missed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use assistd::sandbox::{SandboxConfig, SandboxManager};

const GOAL_P95_MS: f64 = 100.0;

#[derive(Parser, Debug)]
#[command(about = "assistd warm-pool benchmark (see bench/README.md)")]
struct Args {
    /// New sessions per second.
    #[arg(long, default_value_t = 2.0)]
    rate: f64,
    /// Seconds of arrivals per phase.
    #[arg(long, default_value_t = 60)]
    secs: u64,
    /// ASSISTD_SANDBOX_POOL_SIZE of both phases (the fixed pool's size).
    #[arg(long, default_value_t = 2)]
    floor: usize,
    /// ASSISTD_SANDBOX_POOL_MAX of the sizing phase.
    #[arg(long, default_value_t = 16)]
    cap: usize,
    /// ASSISTD_SANDBOX_MAX_SESSIONS.
    #[arg(long, default_value_t = 32)]
    max_sessions: usize,
    #[arg(
        long,
        env = "ASSISTD_SANDBOX_IMAGE",
        default_value = "assistd-sandbox:latest"
    )]
    image: String,
    /// Instance label prefix (each phase adds its name).
    #[arg(long, default_value = "bench-pool")]
    instance: String,
}

/// Nearest-rank percentile.
fn pct(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * s.len() as f64).ceil().max(1.0) as usize;
    s[rank.min(s.len()) - 1]
}

struct Phase {
    name: &'static str,
    samples: Vec<f64>,
    failures: usize,
    hits: u64,
    misses: u64,
    max_target: usize,
}

async fn phase(args: &Args, name: &'static str, cap: usize) -> anyhow::Result<Phase> {
    let cfg = SandboxConfig {
        image: args.image.clone(),
        instance: format!("{}-{name}", args.instance),
        pool_size: args.floor,
        pool_max: cap,
        max_sessions: args.max_sessions,
        exec_timeout_secs: 60,
        ..Default::default()
    };
    let manager = SandboxManager::start(cfg).await?;
    let ready_by = Instant::now() + Duration::from_secs(120);
    while manager.stats().pooled < args.floor {
        anyhow::ensure!(Instant::now() < ready_by, "the pool never filled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = manager.stats().pool;
    let samples = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let every = Duration::from_secs_f64(1.0 / args.rate);
    let count = (args.secs as f64 * args.rate).round() as usize;
    let started = tokio::time::Instant::now();
    let mut runs = tokio::task::JoinSet::new();
    let mut max_target = before.target;
    for n in 0..count {
        tokio::time::sleep_until(started + every * n as u32).await;
        max_target = max_target.max(manager.stats().pool.target);
        let (manager, samples, failures) = (manager.clone(), samples.clone(), failures.clone());
        runs.spawn(async move {
            let arrived = Instant::now();
            let session = format!("thread_bench_{n}");
            match manager
                .exec(&session, "print(1)", &CancellationToken::new())
                .await
            {
                Ok(out) if out.stdout == "1\n" => {
                    samples
                        .lock()
                        .await
                        .push(arrived.elapsed().as_secs_f64() * 1000.0);
                }
                _ => {
                    failures.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        });
    }
    while runs.join_next().await.is_some() {}
    let after = manager.stats().pool;
    manager.shutdown().await;
    let samples = samples.lock().await.clone();
    Ok(Phase {
        name,
        samples,
        failures: failures.load(std::sync::atomic::Ordering::SeqCst),
        hits: after.hits - before.hits,
        misses: after.misses - before.misses,
        max_target,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    println!(
        "new threads at {}/s for {} s, one print(1) each; floor {}, cap {}, max sessions {}",
        args.rate, args.secs, args.floor, args.cap, args.max_sessions
    );
    let fixed = phase(&args, "fixed", args.floor).await?;
    let sized = phase(&args, "sized", args.cap).await?;
    println!(
        "\n{:<28} {:>6} {:>9} {:>9} {:>9} {:>6} {:>7} {:>8} {:>7}",
        "first code (ms)", "n", "p50", "p95", "max", "hits", "misses", "failures", "target"
    );
    for p in [&fixed, &sized] {
        let label = match p.name {
            "fixed" => format!("fixed pool of {}", args.floor),
            _ => format!("pool sizing {}..{}", args.floor, args.cap),
        };
        println!(
            "{:<28} {:>6} {:>9.1} {:>9.1} {:>9.1} {:>6} {:>7} {:>8} {:>7}",
            label,
            p.samples.len(),
            pct(&p.samples, 50.0),
            pct(&p.samples, 95.0),
            pct(&p.samples, 100.0),
            p.hits,
            p.misses,
            p.failures,
            p.max_target
        );
    }
    let p95 = pct(&sized.samples, 95.0);
    let met = p95 <= GOAL_P95_MS && sized.failures == 0;
    println!(
        "\ngoal: first-code p95 <= {GOAL_P95_MS} ms with pool sizing: {p95:.1} ms ({}; fixed pool: {:.1} ms, {:.1}x)",
        if met { "met" } else { "MISSED" },
        pct(&fixed.samples, 95.0),
        pct(&fixed.samples, 95.0) / p95
    );
    if !met {
        std::process::exit(3);
    }
    Ok(())
}
