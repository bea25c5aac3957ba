//! Connecting, logging in, and carrying out one command.

use std::time::Duration;

use anyhow::{Context as _, bail};
use suda_client::{Client, ClientConfig, ClientError, Events, ReconnectPolicy};

use crate::args::Args;
use crate::command::Command;
use crate::display;

/// A logged-in connection.
pub(crate) struct Session {
    pub(crate) client: Client,
    pub(crate) events: Events,
    pub(crate) user: String,
    pub(crate) server: String,
}

impl Session {
    /// Connects to the server and logs in.
    pub(crate) async fn start(args: &Args) -> anyhow::Result<Self> {
        let mut config = ClientConfig::default().with_request_timeout(args.timeout());
        if !args.no_reconnect {
            // 100 ms, doubling, at most 10 s, with full jitter, for as long as it takes: the
            // user leaves with /quit, and in script mode each line still gives up after the
            // request timeout.
            config = config.with_reconnect(ReconnectPolicy::default());
        }
        if let Some(tls) = args.tls() {
            config = config.with_tls(tls);
        }
        let (client, events) = Client::connect(args.server.as_str(), config)
            .await
            .with_context(|| format!("cannot connect to {}", args.server))?;
        match client.login(&args.user, &args.password).await {
            Ok(_session_id) => {}
            Err(error @ ClientError::Rejected { .. }) => {
                bail!(
                    "cannot log in as {}: {}",
                    args.user,
                    display::reason(&error)
                )
            }
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("cannot log in as {} at {}", args.user, args.server));
            }
        }
        Ok(Self {
            client,
            events,
            user: args.user.clone(),
            server: args.server.clone(),
        })
    }
}

/// Longest wait for the server to confirm a logout when leaving.
const LOGOUT_WITHIN: Duration = Duration::from_secs(5);

/// Leaves: logs out, so the server frees the name at once instead of keeping the session for a
/// resume, then closes the connection. Skips the logout while reconnecting (it would wait for the
/// connection to come back), and never waits long for its answer.
pub(crate) async fn leave(client: &Client) {
    if client.is_connected() {
        let _ = tokio::time::timeout(LOGOUT_WITHIN, client.logout()).await;
    }
    client.close().await;
}

/// What a command achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The server accepted the message.
    Sent,
    /// The server answered a ping after this long.
    Pong(Duration),
    /// The command involves no request (`/help`, `/quit`).
    Local,
}

/// Sends the request `command` stands for and waits for the server's answer.
pub(crate) async fn send(client: &Client, command: &Command) -> Result<Outcome, ClientError> {
    Ok(match command {
        Command::Broadcast(text) => client.broadcast(text).await.map(|_| Outcome::Sent)?,
        Command::Whisper { to, text } => client.whisper(to, text).await.map(|_| Outcome::Sent)?,
        Command::Ping => Outcome::Pong(client.ping().await?),
        Command::Help | Command::Quit => Outcome::Local,
    })
}

/// `pong in 1.2 ms`
pub(crate) fn pong_line(rtt: Duration) -> String {
    format!("pong in {:.1} ms", rtt.as_secs_f64() * 1000.0)
}
