//! What one line of input means.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use suda_client::{ModerationAction, RoomAction, RoomOptions};

/// A parsed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    /// Send the text to everyone.
    Broadcast(String),
    /// Send the text to one user.
    Whisper {
        /// Recipient's username.
        to: String,
        /// The message.
        text: String,
    },
    /// Send the text to a room's members.
    RoomChat {
        /// The room.
        room: String,
        /// The message.
        text: String,
    },
    /// Create a room (and join it).
    Create {
        /// The room.
        room: String,
        /// How.
        options: RoomOptions,
    },
    /// Join a room.
    Join {
        /// The room.
        room: String,
        /// Its password, if it has one.
        password: Option<String>,
    },
    /// Leave a room.
    Leave(String),
    /// List the server's rooms.
    Rooms,
    /// List a room's members.
    Members(String),
    /// A room owner's or operator's action.
    RoomModerate {
        /// The room.
        room: String,
        /// What to do.
        action: RoomAction,
    },
    /// List the users online.
    Who,
    /// Set this user away (`Some`, with a message) or back online (`None`).
    Status(Option<String>),
    /// Start getting a user's presence changes.
    Watch(String),
    /// Stop getting a user's presence changes.
    Unwatch(String),
    /// A server operator's action.
    Moderate(ModerationAction),
    /// A server operator's notice to everyone.
    Notice(String),
    /// Measure the round trip to the server.
    Ping,
    /// List the commands.
    Help,
    /// Leave.
    Quit,
}

/// A line that looks like a command but is not a valid one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ParseError {
    /// A command without what it needs; the text is its usage.
    Usage(&'static str),
    /// A `/word` that is not a command.
    Unknown(String),
    /// `/create` with a `--flag` it does not know.
    UnknownFlag(String),
    /// `/ipban` or `/unban` of something that is not an IP address where one is needed.
    BadAddress(String),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(usage) => write!(f, "usage: {usage}"),
            Self::Unknown(word) => write!(
                f,
                "unknown command {word} (try /help; start a message with // to send a leading /)"
            ),
            Self::UnknownFlag(flag) => write!(f, "unknown option {flag} (usage: {CREATE_USAGE})"),
            Self::BadAddress(text) => write!(f, "not an IP address: {text}"),
        }
    }
}

const WHISPER_USAGE: &str = "/w <user> <message>";
const ROOM_CHAT_USAGE: &str = "/r <room> <message>";
const CREATE_USAGE: &str =
    "/create <room> [--persistent] [--invite-only] [--password <password>] [topic]";

/// The commands, for `/help`.
pub(crate) const HELP: &str = "\
commands:
  <text>                    send <text> to everyone
  /w <user> <text>          whisper <text> to <user> (also /whisper, /msg)
  /ping                     measure the round trip to the server
  /help                     show this list
  /quit                     leave (also /exit, Ctrl-D)
  //text                    send a message that starts with /
rooms (a room may be written #room):
  /r <room> <text>          send <text> to a room you are in
  /create <room> [--persistent] [--invite-only] [--password <pw>] [topic]
                            create a room and join it as its owner
  /join <room> [password]   join a room
  /leave <room>             leave a room (also /part)
  /rooms                    list the rooms, with members and topics
  /members <room>           list a room's members (also /names)
room owners and operators:
  /topic <room> [text]      set (or clear) the topic
  /kick <room> <user> [reason]
  /mute <room> <user> [duration] [reason]   duration: 30, 30s, 10m, 2h, 7d (none: until unmuted)
  /unmute <room> <user>
  /invite <room> <user>     let <user> into an invite-only room
  /op <room> <user>         make <user> a room operator (owner only; /deop to undo)
presence:
  /who                      list the users online
  /away [message]           mark yourself away
  /back                     mark yourself online again
  /watch <user>             show when <user> comes, goes or changes status
  /unwatch <user>           stop watching <user>
server operators:
  /skick <user> [reason]    end <user>'s session
  /ban <user> [duration] [reason]     keep <user> out (no duration: for ever)
  /ipban <address> [duration] [reason]
  /unban <user or address> [reason]
  /smute <user> [duration] [reason]   mute <user> everywhere (/sunmute to undo)
  /notice <text>            send a notice to everyone";

/// Parses one line; `Ok(None)` for a blank line, which means nothing.
pub(crate) fn parse(line: &str) -> Result<Option<Command>, ParseError> {
    // Piped input may come from a file with Windows line endings.
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Ok(None);
    }
    if let Some(literal) = line.strip_prefix("//") {
        return Ok(Some(Command::Broadcast(format!("/{literal}"))));
    }
    let Some(rest) = line.strip_prefix('/') else {
        return Ok(Some(Command::Broadcast(line.to_owned())));
    };
    let (word, args) = split_word(rest);
    let command = match word {
        "w" | "whisper" | "msg" => {
            let (to, text) = split_word(args);
            if to.is_empty() || text.trim().is_empty() {
                return Err(ParseError::Usage(WHISPER_USAGE));
            }
            Command::Whisper {
                to: to.to_owned(),
                text: text.to_owned(),
            }
        }
        "r" | "room" => {
            let (room, text) = split_word(args);
            if room.is_empty() || text.trim().is_empty() {
                return Err(ParseError::Usage(ROOM_CHAT_USAGE));
            }
            Command::RoomChat {
                room: room_name(room),
                text: text.to_owned(),
            }
        }
        "create" => parse_create(args)?,
        "join" => {
            let (room, password) = split_word(args);
            let room = required(room, "/join <room> [password]")?;
            Command::Join {
                room: room_name(room),
                password: (!password.is_empty()).then(|| password.to_owned()),
            }
        }
        "leave" | "part" => Command::Leave(room_name(only(args, "/leave <room>")?)),
        "rooms" | "list" => Command::Rooms,
        "members" | "names" => Command::Members(room_name(only(args, "/members <room>")?)),
        "topic" => {
            let (room, topic) = split_word(args);
            let room = required(room, "/topic <room> [text]")?;
            room_action(room, RoomAction::SetTopic(topic.trim_end().to_owned()))
        }
        "kick" => {
            let (room, user, reason) = room_and_user(args, "/kick <room> <user> [reason]")?;
            room_action(
                room,
                RoomAction::Kick {
                    user,
                    reason: reason.to_owned(),
                },
            )
        }
        "mute" => {
            let (room, user, rest) =
                room_and_user(args, "/mute <room> <user> [duration] [reason]")?;
            let (duration, reason) = duration_and_reason(rest);
            room_action(
                room,
                RoomAction::Mute {
                    user,
                    duration,
                    reason,
                },
            )
        }
        "unmute" => {
            let (room, user, reason) = room_and_user(args, "/unmute <room> <user> [reason]")?;
            room_action(
                room,
                RoomAction::Unmute {
                    user,
                    reason: reason.to_owned(),
                },
            )
        }
        "invite" => {
            let (room, user, _) = room_and_user(args, "/invite <room> <user>")?;
            room_action(room, RoomAction::Invite(user))
        }
        "op" => {
            let (room, user, _) = room_and_user(args, "/op <room> <user>")?;
            room_action(room, RoomAction::Op(user))
        }
        "deop" => {
            let (room, user, _) = room_and_user(args, "/deop <room> <user>")?;
            room_action(room, RoomAction::Deop(user))
        }
        "who" | "users" => Command::Who,
        "away" => Command::Status(Some(args.trim_end().to_owned())),
        "back" => Command::Status(None),
        "watch" => Command::Watch(only(args, "/watch <user>")?.to_owned()),
        "unwatch" => Command::Unwatch(only(args, "/unwatch <user>")?.to_owned()),
        "skick" => {
            let (user, reason) = split_word(args);
            let user = required(user, "/skick <user> [reason]")?.to_owned();
            Command::Moderate(ModerationAction::Kick {
                user,
                reason: reason.to_owned(),
            })
        }
        "ban" => {
            let (user, rest) = split_word(args);
            let user = required(user, "/ban <user> [duration] [reason]")?.to_owned();
            let (duration, reason) = duration_and_reason(rest);
            Command::Moderate(ModerationAction::BanUser {
                user,
                duration,
                reason,
            })
        }
        "ipban" => {
            let (addr, rest) = split_word(args);
            let addr = address(required(addr, "/ipban <address> [duration] [reason]")?)?;
            let (duration, reason) = duration_and_reason(rest);
            Command::Moderate(ModerationAction::BanIp {
                addr,
                duration,
                reason,
            })
        }
        "unban" => {
            let (target, reason) = split_word(args);
            let target = required(target, "/unban <user or address> [reason]")?;
            let reason = reason.to_owned();
            // Usernames never contain `.` or `:`, so anything that parses as an address is one.
            Command::Moderate(match target.parse::<IpAddr>() {
                Ok(addr) => ModerationAction::UnbanIp { addr, reason },
                Err(_) => ModerationAction::UnbanUser {
                    user: target.to_owned(),
                    reason,
                },
            })
        }
        "smute" => {
            let (user, rest) = split_word(args);
            let user = required(user, "/smute <user> [duration] [reason]")?.to_owned();
            let (duration, reason) = duration_and_reason(rest);
            Command::Moderate(ModerationAction::Mute {
                user,
                duration,
                reason,
            })
        }
        "sunmute" => {
            let (user, reason) = split_word(args);
            let user = required(user, "/sunmute <user> [reason]")?.to_owned();
            Command::Moderate(ModerationAction::Unmute {
                user,
                reason: reason.to_owned(),
            })
        }
        "notice" => {
            if args.trim().is_empty() {
                return Err(ParseError::Usage("/notice <text>"));
            }
            Command::Notice(args.to_owned())
        }
        "ping" => Command::Ping,
        "help" | "?" => Command::Help,
        "quit" | "exit" | "q" => Command::Quit,
        _ => return Err(ParseError::Unknown(format!("/{word}"))),
    };
    Ok(Some(command))
}

/// `/create <room> [--persistent] [--invite-only] [--password P] [topic...]`: the options come
/// before the topic, so a topic may contain `--`.
fn parse_create(args: &str) -> Result<Command, ParseError> {
    let (room, mut rest) = split_word(args);
    let room = required(room, CREATE_USAGE)?;
    let mut options = RoomOptions::default();
    loop {
        let (word, after) = split_word(rest);
        match word {
            "--persistent" => options = options.with_persistent(true),
            "--invite-only" => options = options.with_invite_only(true),
            "--password" => {
                let (password, after) = split_word(after);
                options = options.with_password(required(password, CREATE_USAGE)?);
                rest = after;
                continue;
            }
            flag if flag.starts_with("--") => return Err(ParseError::UnknownFlag(flag.to_owned())),
            _ => break,
        }
        rest = after;
    }
    Ok(Command::Create {
        room: room_name(room),
        options: options.with_topic(rest.trim_end()),
    })
}

fn room_action(room: &str, action: RoomAction) -> Command {
    Command::RoomModerate {
        room: room_name(room),
        action,
    }
}

/// `<room> <user> rest...`
fn room_and_user<'a>(
    args: &'a str,
    usage: &'static str,
) -> Result<(&'a str, String, &'a str), ParseError> {
    let (room, rest) = split_word(args);
    let (user, rest) = split_word(rest);
    if room.is_empty() || user.is_empty() {
        return Err(ParseError::Usage(usage));
    }
    Ok((room, user.to_owned(), rest))
}

/// `[duration] [reason]`: a first word like `30`, `30s`, `10m`, `2h` or `7d` is the duration.
fn duration_and_reason(rest: &str) -> (Option<Duration>, String) {
    let (first, after) = split_word(rest);
    match duration(first) {
        Some(duration) => (Some(duration), after.to_owned()),
        None => (None, rest.to_owned()),
    }
}

/// `30` or `30s` seconds, `10m`, `2h`, `7d`; `None` for anything else.
pub(crate) fn duration(word: &str) -> Option<Duration> {
    let (digits, unit) = match word.char_indices().last()? {
        (at, 's' | 'm' | 'h' | 'd') => word.split_at(at),
        _ => (word, "s"),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let count: u64 = digits.parse().ok()?;
    let unit = match unit {
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 1,
    };
    Some(Duration::from_secs(count.saturating_mul(unit)))
}

fn address(text: &str) -> Result<IpAddr, ParseError> {
    text.parse()
        .map_err(|_| ParseError::BadAddress(text.to_owned()))
}

/// A room as typed, without the `#` people put in front of room names out of habit (the naming
/// rules leave it out, so it is never part of a name).
fn room_name(word: &str) -> String {
    word.strip_prefix('#').unwrap_or(word).to_owned()
}

/// `word`, which the command needs.
fn required<'a>(word: &'a str, usage: &'static str) -> Result<&'a str, ParseError> {
    if word.is_empty() {
        Err(ParseError::Usage(usage))
    } else {
        Ok(word)
    }
}

/// The one word the command takes.
fn only<'a>(args: &'a str, usage: &'static str) -> Result<&'a str, ParseError> {
    let (word, rest) = split_word(args);
    if word.is_empty() || !rest.is_empty() {
        return Err(ParseError::Usage(usage));
    }
    Ok(word)
}

/// Splits off the first whitespace-separated word; the rest keeps its inner spacing.
fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim_start()),
        None => (s, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whisper(to: &str, text: &str) -> Command {
        Command::Whisper {
            to: to.into(),
            text: text.into(),
        }
    }

    #[test]
    fn plain_lines_broadcast_as_typed() {
        assert_eq!(
            parse("hello  there "),
            Ok(Some(Command::Broadcast("hello  there ".into())))
        );
        assert_eq!(parse("hi\r\n"), Ok(Some(Command::Broadcast("hi".into()))));
        assert_eq!(parse("  "), Ok(None));
        assert_eq!(parse(""), Ok(None));
    }

    #[test]
    fn whispers_take_a_user_and_keep_the_text_spacing() {
        assert_eq!(
            parse("/w bob hi there"),
            Ok(Some(whisper("bob", "hi there")))
        );
        assert_eq!(
            parse("/whisper   bob   a  b"),
            Ok(Some(whisper("bob", "a  b")))
        );
        assert_eq!(parse("/msg bob\tyo"), Ok(Some(whisper("bob", "yo"))));
        assert_eq!(parse("/w bob"), Err(ParseError::Usage(WHISPER_USAGE)));
        assert_eq!(parse("/w bob   "), Err(ParseError::Usage(WHISPER_USAGE)));
        assert_eq!(parse("/w"), Err(ParseError::Usage(WHISPER_USAGE)));
    }

    #[test]
    fn other_commands_and_escapes() {
        assert_eq!(parse("/quit"), Ok(Some(Command::Quit)));
        assert_eq!(parse("/exit"), Ok(Some(Command::Quit)));
        assert_eq!(parse("/help"), Ok(Some(Command::Help)));
        assert_eq!(parse("/ping"), Ok(Some(Command::Ping)));
        assert_eq!(
            parse("//shrug"),
            Ok(Some(Command::Broadcast("/shrug".into())))
        );
        assert_eq!(
            parse("/dance now"),
            Err(ParseError::Unknown("/dance".into()))
        );
        assert_eq!(parse("/"), Err(ParseError::Unknown("/".into())));
    }

    #[test]
    fn room_commands_take_a_room_with_or_without_its_hash() {
        assert_eq!(
            parse("/r #lobby hi  all"),
            Ok(Some(Command::RoomChat {
                room: "lobby".into(),
                text: "hi  all".into()
            }))
        );
        assert_eq!(parse("/r lobby"), Err(ParseError::Usage(ROOM_CHAT_USAGE)));
        assert_eq!(
            parse("/join lobby secret"),
            Ok(Some(Command::Join {
                room: "lobby".into(),
                password: Some("secret".into())
            }))
        );
        assert_eq!(
            parse("/join #lobby"),
            Ok(Some(Command::Join {
                room: "lobby".into(),
                password: None
            }))
        );
        assert_eq!(
            parse("/leave lobby"),
            Ok(Some(Command::Leave("lobby".into())))
        );
        assert!(matches!(parse("/leave"), Err(ParseError::Usage(_))));
        assert_eq!(parse("/rooms"), Ok(Some(Command::Rooms)));
        assert_eq!(parse("/members #x"), Ok(Some(Command::Members("x".into()))));
        assert_eq!(
            parse("/create dev --persistent --password pw the -- topic"),
            Ok(Some(Command::Create {
                room: "dev".into(),
                options: RoomOptions::default()
                    .with_persistent(true)
                    .with_password("pw")
                    .with_topic("the -- topic")
            }))
        );
        assert_eq!(
            parse("/create dev --invite-only"),
            Ok(Some(Command::Create {
                room: "dev".into(),
                options: RoomOptions::default().with_invite_only(true)
            }))
        );
        assert_eq!(
            parse("/create dev --secret"),
            Err(ParseError::UnknownFlag("--secret".into()))
        );
        assert!(matches!(
            parse("/create dev --password"),
            Err(ParseError::Usage(_))
        ));
    }

    #[test]
    fn moderation_commands_take_an_optional_duration_before_the_reason() {
        let room = |action| {
            Ok(Some(Command::RoomModerate {
                room: "lobby".into(),
                action,
            }))
        };
        assert_eq!(
            parse("/mute lobby bob 10m stop it"),
            room(RoomAction::Mute {
                user: "bob".into(),
                duration: Some(Duration::from_secs(600)),
                reason: "stop it".into()
            })
        );
        assert_eq!(
            parse("/mute lobby bob 3 strikes"),
            room(RoomAction::Mute {
                user: "bob".into(),
                duration: Some(Duration::from_secs(3)),
                reason: "strikes".into()
            })
        );
        assert_eq!(
            parse("/mute lobby bob"),
            room(RoomAction::Mute {
                user: "bob".into(),
                duration: None,
                reason: String::new()
            })
        );
        assert_eq!(
            parse("/kick #lobby bob bye now"),
            room(RoomAction::Kick {
                user: "bob".into(),
                reason: "bye now".into()
            })
        );
        assert_eq!(
            parse("/topic lobby new topic"),
            room(RoomAction::SetTopic("new topic".into()))
        );
        assert_eq!(
            parse("/topic lobby"),
            room(RoomAction::SetTopic(String::new()))
        );
        assert_eq!(parse("/op lobby bob"), room(RoomAction::Op("bob".into())));
        assert_eq!(
            parse("/deop lobby bob"),
            room(RoomAction::Deop("bob".into()))
        );
        assert_eq!(
            parse("/invite lobby bob"),
            room(RoomAction::Invite("bob".into()))
        );
        assert!(matches!(parse("/kick lobby"), Err(ParseError::Usage(_))));

        let server = |action| Ok(Some(Command::Moderate(action)));
        assert_eq!(
            parse("/ban bob 7d spam"),
            server(ModerationAction::BanUser {
                user: "bob".into(),
                duration: Some(Duration::from_secs(7 * 86_400)),
                reason: "spam".into()
            })
        );
        assert_eq!(
            parse("/ipban ::1"),
            server(ModerationAction::BanIp {
                addr: "::1".parse().expect("address"),
                duration: None,
                reason: String::new()
            })
        );
        assert_eq!(
            parse("/ipban bob"),
            Err(ParseError::BadAddress("bob".into()))
        );
        assert_eq!(
            parse("/unban 10.0.0.1"),
            server(ModerationAction::UnbanIp {
                addr: "10.0.0.1".parse().expect("address"),
                reason: String::new()
            })
        );
        assert_eq!(
            parse("/unban bob appeal accepted"),
            server(ModerationAction::UnbanUser {
                user: "bob".into(),
                reason: "appeal accepted".into()
            })
        );
        assert_eq!(
            parse("/skick bob flood"),
            server(ModerationAction::Kick {
                user: "bob".into(),
                reason: "flood".into()
            })
        );
        assert_eq!(
            parse("/smute bob 1h"),
            server(ModerationAction::Mute {
                user: "bob".into(),
                duration: Some(Duration::from_secs(3600)),
                reason: String::new()
            })
        );
        assert_eq!(
            parse("/sunmute bob"),
            server(ModerationAction::Unmute {
                user: "bob".into(),
                reason: String::new()
            })
        );
        assert_eq!(
            parse("/notice back soon"),
            Ok(Some(Command::Notice("back soon".into())))
        );
        assert!(matches!(parse("/notice"), Err(ParseError::Usage(_))));
    }

    #[test]
    fn presence_commands() {
        assert_eq!(parse("/who"), Ok(Some(Command::Who)));
        assert_eq!(
            parse("/away at lunch"),
            Ok(Some(Command::Status(Some("at lunch".into()))))
        );
        assert_eq!(
            parse("/away"),
            Ok(Some(Command::Status(Some(String::new()))))
        );
        assert_eq!(parse("/back"), Ok(Some(Command::Status(None))));
        assert_eq!(parse("/watch bob"), Ok(Some(Command::Watch("bob".into()))));
        assert_eq!(
            parse("/unwatch bob"),
            Ok(Some(Command::Unwatch("bob".into())))
        );
        assert!(matches!(parse("/watch"), Err(ParseError::Usage(_))));
    }

    #[test]
    fn durations() {
        assert_eq!(duration("45"), Some(Duration::from_secs(45)));
        assert_eq!(duration("45s"), Some(Duration::from_secs(45)));
        assert_eq!(duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(duration("h"), None);
        assert_eq!(duration("1x"), None);
        assert_eq!(duration("-1"), None);
        assert_eq!(duration(""), None);
        assert_eq!(duration("99999999999999999999d"), None);
    }
}
