use clap::{Parser, Subcommand};

use assistd::{startup, telemetry, Application, Config};

// Requests allocate many small buffers (JSON, headers); mimalloc serves them faster than glibc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// assistd: a self-hosted OpenAI Assistants API v2 server with a real code interpreter.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply migrations and serve the API.
    Serve(Config),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Cli {
        command: Command::Serve(config),
    } = Cli::parse();
    telemetry::init(&config.log_format);
    tracing::info!(?config, "starting");
    let app = Application::build(config).await?;
    if let Some(key) = &app.generated_key {
        eprintln!(
            "ASSISTD_API_KEYS is not set: serving on loopback only with a generated key.\n  Authorization: Bearer {key}"
        );
    }
    tracing::info!(addr = %app.local_addr(), "listening");
    app.run_until(startup::shutdown_signal()).await
}
