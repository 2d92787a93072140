//! Fidelity bench: cells written the way models write them, per library, run in sandboxes the
//! manager starts with the server's limits. Prints the pass rate per library and each failure's
//! cause; exits with status 3 when a cell fails. See bench/README.md ("Fidelity").
//!
//! Cells live in bench/fidelity/cells/<library>.py, separated by `# %% <name>` lines; the cells
//! of one file run in order in one session (as a conversation's would). A cell passes when it
//! raises nothing and does not time out; cells assert on what they compute.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;

use assistd::sandbox::{SandboxConfig, SandboxManager};

#[derive(Parser, Debug)]
#[command(about = "assistd sandbox fidelity bench (see bench/README.md)")]
struct Args {
    /// Directory of <library>.py cell files.
    #[arg(long, default_value = "bench/fidelity/cells")]
    cells: PathBuf,
    /// Only the libraries whose file name contains this.
    #[arg(long, default_value = "")]
    only: String,
    /// Seconds one cell may run.
    #[arg(long, default_value_t = 180)]
    timeout: u64,
}

struct Cell {
    name: String,
    code: String,
}

fn cells_of(path: &Path) -> anyhow::Result<Vec<Cell>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let mut cells: Vec<Cell> = vec![];
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("# %% ") {
            cells.push(Cell {
                name: name.trim().to_string(),
                code: String::new(),
            });
        } else if let Some(cell) = cells.last_mut() {
            cell.code.push_str(line);
            cell.code.push('\n');
        }
    }
    Ok(cells)
}

/// The last line of what went wrong, for the report.
fn cause(output: &assistd::sandbox::ExecOutput) -> Option<String> {
    if output.timed_out {
        return Some("timed out".into());
    }
    if output.state_reset {
        return Some("the sandbox restarted (out of memory?)".into());
    }
    output
        .error
        .as_ref()
        .map(|e| format!("{}: {}", e.ename, e.evalue.lines().last().unwrap_or("")))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut cfg = SandboxConfig {
        instance: std::env::var("ASSISTD_SANDBOX_INSTANCE")
            .unwrap_or_else(|_| "bench-fidelity".into()),
        pool_size: 0,
        exec_timeout_secs: args.timeout,
        ..Default::default()
    };
    if let Ok(image) = std::env::var("ASSISTD_SANDBOX_IMAGE") {
        cfg.image = image;
    }
    println!(
        "image {}, memory {} MiB, {} CPU, network {}",
        cfg.image, cfg.memory_mb, cfg.cpus, cfg.network
    );
    let manager = SandboxManager::start(cfg).await?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&args.cells)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "py"))
        .filter(|p| p.to_string_lossy().contains(&args.only))
        .collect();
    files.sort();

    let started = Instant::now();
    let (mut passed_all, mut total_all) = (0, 0);
    let mut failures = vec![];
    println!(
        "{:<16} {:>6} {:>6}  {:>7}",
        "library", "passed", "cells", "seconds"
    );
    for file in &files {
        let library = file.file_stem().unwrap_or_default().to_string_lossy();
        let cells = cells_of(file)?;
        let session = format!("fidelity-{library}");
        let begun = Instant::now();
        let mut passed = 0;
        for cell in &cells {
            let why = match manager
                .exec(&session, &cell.code, &CancellationToken::new())
                .await
            {
                Ok(output) => cause(&output),
                Err(e) => Some(format!("sandbox error: {e}")),
            };
            match why {
                None => passed += 1,
                Some(why) => failures.push(format!("{library} / {}: {why}", cell.name)),
            }
        }
        manager.drop_session(&session).await;
        println!(
            "{:<16} {:>6} {:>6}  {:>7.1}",
            library,
            passed,
            cells.len(),
            begun.elapsed().as_secs_f64()
        );
        passed_all += passed;
        total_all += cells.len();
    }
    manager.shutdown().await;
    println!(
        "{:<16} {:>6} {:>6}  {:>7.1}   ({:.1} % pass)",
        "all",
        passed_all,
        total_all,
        started.elapsed().as_secs_f64(),
        100.0 * passed_all as f64 / total_all.max(1) as f64
    );
    for failure in &failures {
        println!("FAIL {failure}");
    }
    if !failures.is_empty() {
        std::process::exit(3);
    }
    Ok(())
}
