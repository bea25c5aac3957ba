//! `suda-server`: runs the suda chat server.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use suda_server::config::LogFormat;
use suda_server::tls::TlsSetup;
use suda_server::{Config, Server, Settings};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// The suda chat server.
///
/// Settings come from, highest precedence first: command-line flags, SUDA_* environment
/// variables, the TOML file given with --config, built-in defaults. Run with no arguments to
/// serve on 127.0.0.1:7000.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    /// TOML config file; keys are the flag names with '_' for '-', e.g. max_packet = 8192
    #[arg(long, env = "SUDA_CONFIG")]
    config: Option<PathBuf>,

    #[command(flatten)]
    settings: Settings,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let file = match &cli.config {
        Some(path) => Settings::from_file(path)?,
        None => Settings::default(),
    };
    let config = cli.settings.or(file).resolve()?;
    init_logging(&config)?;

    // The workers run on their own threads; this runtime only waits for signals.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async move {
        let server = Server::bind(config)?;
        let shutdown = CancellationToken::new();
        let signals = tokio::spawn(handle_signals(shutdown.clone(), server.tls()));
        let result = server.run(shutdown).await;
        signals.abort();
        result.context("server failed")
    })
}

fn init_logging(config: &Config) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() && config.log == "info" => {
            EnvFilter::try_new(directives)
        }
        _ => EnvFilter::try_new(&config.log),
    }
    .context("invalid log filter")?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match config.log_format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

/// Cancels `shutdown` on SIGINT or SIGTERM; reloads the TLS certificate on SIGHUP.
async fn handle_signals(
    shutdown: CancellationToken,
    tls: Option<Arc<TlsSetup>>,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut hangup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    loop {
        tokio::select! {
            _ = terminate.recv() => {
                tracing::info!("SIGTERM received");
                break;
            }
            _ = interrupt.recv() => {
                tracing::info!("SIGINT received");
                break;
            }
            _ = hangup.recv() => match &tls {
                Some(tls) => match tls.reload() {
                    Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                    Err(err) => tracing::error!(%err, "SIGHUP: TLS reload failed; keeping the old certificate"),
                },
                None => tracing::info!("SIGHUP: nothing to reload"),
            },
        }
    }
    shutdown.cancel();
    Ok(())
}
