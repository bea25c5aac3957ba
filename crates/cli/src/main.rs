//! `suda`, the terminal client for the suda chat server.
//!
//! Modules:
//! - `args`: the command line (flags and their environment variables).
//! - `command`: what a typed or piped line means (`/w bob hi` → a whisper).
//! - `display`: how events, replies and errors are worded and timestamped.
//! - `session`: connecting, logging in, and carrying out one command.
//! - `interactive`: the terminal chat, with incoming messages printed above the input line.
//! - `script`: the non-interactive mode used when stdin is not a terminal.

mod args;
mod command;
mod display;
mod interactive;
mod script;
mod session;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = args::Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("suda: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(run(args)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("suda: {error:#}");
            ExitCode::FAILURE
        }
    };
    // Stdin is read by a blocking thread that no one can interrupt; waiting for it would hang
    // the exit until the next line arrives (e.g. `tail -f log | suda` after a disconnect).
    runtime.shutdown_background();
    code
}

async fn run(args: args::Args) -> anyhow::Result<ExitCode> {
    if args.insecure {
        eprintln!(
            "suda: warning: --insecure: the server's certificate is not verified; anyone on the \
             network path can read and change this chat, password included. For development only."
        );
    }
    let session = session::Session::start(&args).await?;
    // Line editing needs a terminal on both ends; anything else (pipes, files, CI) is a script.
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        interactive::run(session).await
    } else {
        script::run(session, args.wait()).await
    }
}
