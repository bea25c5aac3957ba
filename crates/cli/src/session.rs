//! Connecting, logging in, and carrying out one command.

use std::time::Duration;

use anyhow::{Context as _, bail};
use suda_client::{
    Client, ClientConfig, ClientError, Events, ReconnectPolicy, RoomInfo, UserEntry,
};

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The server accepted the message.
    Sent,
    /// The server answered a ping after this long.
    Pong(Duration),
    /// The command involves no request (`/help`, `/quit`).
    Local,
    /// The server did what was asked; the line says what, for an interactive user.
    Done(String),
    /// What was asked for (`/rooms`, `/who`, `/watch`...): lines to show in every mode.
    Listing(Vec<String>),
}

/// Most entries a listing fetches (in pages of [`PAGE`]), so that `/who` on a huge server
/// neither floods the screen nor takes long.
const MAX_LISTED: usize = 1000;
/// Entries asked for per request: the protocol's most.
const PAGE: u8 = 100;

/// Sends the request `command` stands for and waits for the server's answer.
pub(crate) async fn send(client: &Client, command: &Command) -> Result<Outcome, ClientError> {
    Ok(match command {
        Command::Broadcast(text) => client.broadcast(text).await.map(|_| Outcome::Sent)?,
        Command::Whisper { to, text } => client.whisper(to, text).await.map(|_| Outcome::Sent)?,
        Command::RoomChat { room, text } => {
            client.room_chat(room, text).await.map(|_| Outcome::Sent)?
        }
        Command::Create { room, options } => {
            let created = client.create_room(room, options).await?;
            Outcome::Done(display::created_line(&created, options))
        }
        Command::Join { room, password } => {
            let info = client.join_room(room, password.as_deref()).await?;
            Outcome::Done(display::joined_line(&info))
        }
        Command::Leave(room) => {
            client.leave_room(room).await?;
            Outcome::Done(format!("left #{}", display::clean(room)))
        }
        Command::Rooms => {
            let mut rooms: Vec<RoomInfo> = Vec::new();
            loop {
                let after = rooms.last().map(|last| last.room.as_str());
                let page = client.list_rooms(after, PAGE).await?;
                if add_page(&mut rooms, page) {
                    break;
                }
            }
            Outcome::Listing(display::rooms_listing(&rooms))
        }
        Command::Members(room) => {
            let mut members: Vec<UserEntry> = Vec::new();
            loop {
                let after = members.last().map(|last| last.user.as_str());
                let page = client.room_members(room, after, PAGE).await?;
                if add_page(&mut members, page) {
                    break;
                }
            }
            Outcome::Listing(display::users_listing(Some(room), &members))
        }
        Command::Who => {
            let mut users: Vec<UserEntry> = Vec::new();
            loop {
                let after = users.last().map(|last| last.user.as_str());
                let page = client.user_list(after, PAGE).await?;
                if add_page(&mut users, page) {
                    break;
                }
            }
            Outcome::Listing(display::users_listing(None, &users))
        }
        Command::RoomModerate { room, action } => {
            client.room_moderate(room, action).await?;
            Outcome::Done(display::room_action_line(room, action))
        }
        Command::Status(away) => {
            client.set_status(away.as_deref()).await?;
            Outcome::Done(match away {
                Some(_) => "you are marked away".to_owned(),
                None => "you are marked online".to_owned(),
            })
        }
        Command::Watch(user) => {
            let presence = client.watch(user).await?;
            Outcome::Listing(vec![display::presence_text(&presence)])
        }
        Command::Unwatch(user) => {
            client.unwatch(user).await?;
            Outcome::Done(format!("no longer watching {}", display::clean(user)))
        }
        Command::Moderate(action) => {
            client.moderate(action).await?;
            Outcome::Done(display::moderation_action_line(action))
        }
        Command::Notice(text) => client.system_notice(text).await.map(|_| Outcome::Sent)?,
        Command::Ping => Outcome::Pong(client.ping().await?),
        Command::Help | Command::Quit => Outcome::Local,
    })
}

/// Adds a page of a listing to what came before; `true` when that was the last page to fetch:
/// a short page, or [`MAX_LISTED`] entries. The next page starts after the last name.
fn add_page<T>(all: &mut Vec<T>, page: Vec<T>) -> bool {
    let last_page = page.len() < usize::from(PAGE);
    all.extend(page);
    all.truncate(MAX_LISTED);
    last_page || all.len() >= MAX_LISTED
}

/// `pong in 1.2 ms`
pub(crate) fn pong_line(rtt: Duration) -> String {
    format!("pong in {:.1} ms", rtt.as_secs_f64() * 1000.0)
}
