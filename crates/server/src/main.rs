//! `suda-server`: runs the suda chat server, or administers its accounts (`suda-server user …`).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use suda_server::admin::{self, UserCommand};
use suda_server::config::LogFormat;
use suda_server::tls::TlsSetup;
use suda_server::{Config, Server, Settings};
use suda_store::Store;
use suda_store::password::Hasher;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

// The allocator is the binary's choice, made at build time; see the features in Cargo.toml.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage accounts in the server's store (the same --store, --data-dir and --database-url
    /// as the server's)
    #[command(subcommand)]
    User(UserCommand),
}

/// The settings that choose the store: accepted after `user …` too, so that
/// `suda-server user list --data-dir DIR` works as well as `suda-server --data-dir DIR user list`.
const STORE_ARGS: [&str; 4] = ["config", "store", "data_dir", "database_url"];

fn main() -> anyhow::Result<ExitCode> {
    let command = STORE_ARGS.iter().fold(Cli::command(), |command, id| {
        command.mut_arg(id, |arg| arg.global(true))
    });
    let cli = Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit());
    let file = match &cli.config {
        Some(path) => Settings::from_file(path)?,
        None => Settings::default(),
    };
    let config = cli.settings.or(file).resolve()?;
    match cli.command {
        None => serve(config).map(|()| ExitCode::SUCCESS),
        Some(Command::User(command)) => match administer(&config, &command) {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(err) => {
                // An operator's mistake ("user alice already exists"), not a crash: one line.
                eprintln!("suda-server: {}", one_line(&err));
                Ok(ExitCode::FAILURE)
            }
        },
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
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

/// Runs a `user` command on the store the server would use. New passwords come from standard
/// input when it is not a terminal (first line), else from a prompt without echo.
fn administer(config: &Config, command: &UserCommand) -> anyhow::Result<()> {
    let store_config = admin::store_config(config)?;
    let mut password = |name: &str| {
        if std::io::stdin().is_terminal() {
            admin::prompt_password(name)
        } else {
            admin::read_password_line(&mut std::io::stdin().lock())
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async move {
        let store = Store::open(store_config).await?;
        let result = admin::run(
            command,
            &store,
            &Hasher::with_defaults(),
            &mut password,
            i64::try_from(suda_server::ids::unix_time_ms()).unwrap_or(i64::MAX),
            &mut std::io::stdout().lock(),
        )
        .await;
        store.close().await;
        Ok(result?)
    })
}

/// `err` and its causes on one line, leaving out a cause whose text its parent already quotes
/// (the store's errors include their driver error in their own message).
fn one_line(err: &anyhow::Error) -> String {
    let mut line = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line
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
