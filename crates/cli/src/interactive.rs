//! The interactive chat on a terminal.
//!
//! `rustyline-async` owns the terminal: it edits the input line, and everything printed through
//! its `SharedWriter` appears above that line without garbling what the user is typing. Three
//! tasks share the screen that way: this loop reads input, a printer shows events, and a sender
//! carries out commands in the order they were typed (so pasted lines stay in order) and reports
//! each result, while the input line stays responsive.

use std::process::ExitCode;

use anyhow::Context as _;
use futures_util::AsyncWriteExt as _;
use rustyline_async::{Readline, ReadlineEvent, SharedWriter};
use suda_client::{Client, ClientError, Event, Events};
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinHandle};

use crate::command::{self, Command};
use crate::display;
use crate::session::{self, Outcome, Session};

/// Work for the sender task.
enum Job {
    Run(Command),
    Say(String),
}

enum Ending {
    Quit,
    Lost,
    Terminal(rustyline_async::ReadlineError),
}

/// Runs the chat until the user leaves or the client ends (with reconnecting on, a lost
/// connection does not end it: the printer shows it being got back).
pub(crate) async fn run(session: Session) -> anyhow::Result<ExitCode> {
    let Session {
        client,
        events,
        user,
        server,
    } = session;
    let (mut readline, mut out) =
        Readline::new(format!("{user}> ")).context("cannot set up the terminal")?;
    // Sent lines are erased and printed back once the server accepts them, timestamped like
    // everything else, so the screen reads as a transcript.
    readline.should_print_line_on(false, false);

    let mut printer = tokio::spawn(print_events(events, out.clone()));
    // Unbounded is fine here: it is fed by one person typing, not by the network.
    let (jobs, queue) = mpsc::unbounded_channel();
    let mut sender = tokio::spawn(send_commands(
        client.clone(),
        queue,
        out.clone(),
        user.clone(),
    ));
    print(
        &mut out,
        &format!("connected to {server} as {user}; /help lists the commands"),
    )
    .await;

    let ending = loop {
        tokio::select! {
            _ = &mut printer => break Ending::Lost,
            input = readline.readline() => match input {
                Ok(ReadlineEvent::Line(line)) => {
                    let parsed = command::parse(&line);
                    if !matches!(parsed, Ok(None)) {
                        readline.add_history_entry(line);
                    }
                    let job = match parsed {
                        Ok(None) => continue,
                        Ok(Some(Command::Quit)) => break Ending::Quit,
                        Ok(Some(command)) => Job::Run(command),
                        Err(error) => Job::Say(format!("! {error}")),
                    };
                    let _ = jobs.send(job);
                }
                Ok(ReadlineEvent::Eof | ReadlineEvent::Interrupted) => break Ending::Quit,
                Err(error) => break Ending::Terminal(error),
            },
        }
    };

    // Messages already typed still go out (or fail at once if the connection is gone).
    drop(jobs);
    let _ = pump(&mut readline, &mut sender).await;
    // Logging out frees the name at once; otherwise the server would keep the session for a
    // resume that will never come.
    let leaving = session::leave(&client);
    tokio::pin!(leaving);
    loop {
        tokio::select! {
            () = &mut leaving => break,
            // Keep drawing what the printer writes meanwhile.
            input = readline.readline() => if input.is_err() {
                leaving.as_mut().await;
                break;
            },
        }
    }
    if !matches!(ending, Ending::Lost) {
        let _ = pump(&mut readline, &mut printer).await;
    }
    readline.flush().context("cannot write to the terminal")?;
    // Dropping it takes the terminal out of raw mode.
    drop(readline);

    match ending {
        Ending::Quit => Ok(ExitCode::SUCCESS),
        // The printer has already shown why.
        Ending::Lost => Ok(ExitCode::FAILURE),
        Ending::Terminal(error) => Err(error).context("cannot read the terminal"),
    }
}

/// Waits for `task` while its output keeps reaching the screen: `SharedWriter` lines are only
/// drawn while `Readline` is polled. Input typed meanwhile is ignored.
async fn pump<T>(readline: &mut Readline, task: &mut JoinHandle<T>) -> Result<T, JoinError> {
    loop {
        tokio::select! {
            done = &mut *task => return done,
            input = readline.readline() => {
                if input.is_err() {
                    return task.await;
                }
            }
        }
    }
}

/// Shows events until the connection ends, and returns why it ended.
async fn print_events(mut events: Events, mut out: SharedWriter) -> ClientError {
    while let Some(event) = events.next().await {
        if let Some(line) = display::event_line(&event) {
            print(&mut out, &line).await;
        }
        if let Event::Disconnected(reason) = event {
            return reason;
        }
    }
    ClientError::Closed
}

/// Carries out commands one at a time, in the order typed, and reports each result.
async fn send_commands(
    client: Client,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    mut out: SharedWriter,
    user: String,
) {
    while let Some(job) = jobs.recv().await {
        let line = match job {
            Job::Say(text) => text,
            Job::Run(Command::Help) => command::HELP.to_owned(),
            Job::Run(command) => match session::send(&client, &command).await {
                Ok(Outcome::Pong(rtt)) => session::pong_line(rtt),
                Ok(Outcome::Sent | Outcome::Local) => echo(&command, &user),
                Ok(Outcome::Done(line)) => line,
                Ok(Outcome::Listing(lines)) => lines.join("\n"),
                Err(error) => format!("! {}", display::failure(&command, &error)),
            },
        };
        print(&mut out, &line).await;
    }
}

/// This user's own message, as it now stands in the chat.
fn echo(command: &Command, user: &str) -> String {
    match command {
        Command::Broadcast(text) => display::broadcast_line(&display::now(), user, text),
        Command::Whisper { to, text } => display::sent_whisper_line(&display::now(), to, text),
        Command::RoomChat { room, text } => display::room_line(&display::now(), room, user, text),
        // The notice comes back as an event, like everyone else's.
        _ => String::new(),
    }
}

async fn print(out: &mut SharedWriter, line: &str) {
    // The writer only fails once the terminal is gone, when there is nobody to tell.
    let _ = out.write_all(format!("{line}\n").as_bytes()).await;
}
