//! Non-interactive mode, for pipes and scripts: commands from stdin, incoming messages to stdout,
//! problems to stderr.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use suda_client::{ClientError, Event, Events};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::task::JoinHandle;

use crate::command::{self, Command};
use crate::display;
use crate::session::{self, Outcome, Session};

/// Sends each line of stdin, waiting for its answer, then prints incoming messages for `linger`
/// more (unless a line said `/quit`), and logs out. Fails if the connection is lost for good (with
/// reconnecting on, a lost connection is got back, and only the lines it swallowed fail); exits
/// with status 1 if any line was refused or lost.
pub(crate) async fn run(session: Session, linger: Duration) -> anyhow::Result<ExitCode> {
    let Session { client, events, .. } = session;
    // Events are consumed all along, so an answer never waits behind unread notifications.
    let mut printer = tokio::spawn(print_events(events));
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut failed = 0_usize;
    let mut quit = false;
    loop {
        let line = tokio::select! {
            line = lines.next_line() => line.context("cannot read standard input")?,
            reason = &mut printer => return Err(lost(reason.ok())),
        };
        let Some(line) = line else { break };
        let command = match command::parse(&line) {
            Ok(Some(command)) => command,
            Ok(None) => continue,
            Err(error) => {
                eprintln!("suda: {error}");
                failed += 1;
                continue;
            }
        };
        match command {
            Command::Quit => {
                quit = true;
                break;
            }
            Command::Help => print(command::HELP),
            command => match session::send(&client, &command).await {
                Ok(Outcome::Pong(rtt)) => print(&session::pong_line(rtt)),
                // Asked for, so it is output; a confirmation is not (as with a sent message).
                Ok(Outcome::Listing(lines)) => lines.iter().for_each(|line| print(line)),
                Ok(Outcome::Sent | Outcome::Local | Outcome::Done(_)) => {}
                Err(error) if error.ends_connection() => {
                    // Let the messages received before the end reach stdout first.
                    return Err(lost(printer.await.ok()));
                }
                Err(error) => {
                    eprintln!("suda: {}", display::failure(&command, &error));
                    failed += 1;
                }
            },
        }
    }

    // `/quit` means leave now; only the end of input lingers.
    if !quit && !linger.is_zero() {
        if let Ok(reason) = tokio::time::timeout(linger, &mut printer).await {
            return Err(lost(reason.ok()));
        }
    }
    session::leave(&client).await;
    finish(printer).await;
    if failed > 0 {
        eprintln!("suda: {failed} line(s) were not sent");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Waits for the printer to print what arrived before the connection closed.
async fn finish(printer: JoinHandle<ClientError>) {
    let _ = printer.await;
}

fn lost(reason: Option<ClientError>) -> anyhow::Error {
    let reason = reason.unwrap_or(ClientError::Closed);
    anyhow!("connection lost: {}", display::reason(&reason))
}

/// Prints chat messages to stdout, and news about the connection (lost, reconnecting, resumed)
/// to stderr, until the client ends; returns why it ended.
async fn print_events(mut events: Events) -> ClientError {
    while let Some(event) = events.next().await {
        if let Event::Disconnected(reason) = event {
            // The reason reaches the user through the error `run` returns.
            return reason;
        }
        let Some(line) = display::event_line(&event) else {
            continue;
        };
        if display::is_status(&event) {
            eprintln!("suda: {line}");
        } else {
            print(&line);
        }
    }
    ClientError::Closed
}

/// Writes a line to stdout. A closed stdout (`suda ... | head -1`) is not worth failing over:
/// the messages are dropped and the sends go on.
fn print(line: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}
