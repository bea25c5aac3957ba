//! How events, replies and errors are worded and timestamped.
//!
//! Everything that came from the network goes through [`clean`] before it reaches the terminal,
//! so another user cannot move the cursor, recolour the screen or forge a line with escape codes.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Local, TimeZone};
use suda_client::{
    ClientError, ErrorCode, Event, ModerationAction, ModerationKind, ModerationNotice, Presence,
    ResultCode, Role, RoomAction, RoomEvent, RoomEventKind, RoomInfo, RoomOptions, Status,
    UserEntry,
};

use crate::command::Command;

/// `HH:MM:SS` of a server time in `tz`, or `--:--:--` for a time no calendar can show.
pub(crate) fn time_of_day<Tz>(unix_ms: u64, tz: &Tz) -> String
where
    Tz: TimeZone,
    Tz::Offset: fmt::Display,
{
    i64::try_from(unix_ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .map_or_else(
            || "--:--:--".to_owned(),
            |utc| utc.with_timezone(tz).format("%H:%M:%S").to_string(),
        )
}

/// The current local time of day, for lines about what this user did.
pub(crate) fn now() -> String {
    Local::now().format("%H:%M:%S").to_string()
}

/// `[12:00:00] <alice> hello`
pub(crate) fn broadcast_line(time: &str, from: &str, text: &str) -> String {
    format!("[{time}] <{}> {}", clean(from), clean(text))
}

/// `[12:00:00] *bob* psst`
pub(crate) fn whisper_line(time: &str, from: &str, text: &str) -> String {
    format!("[{time}] *{}* {}", clean(from), clean(text))
}

/// `[12:00:00] -> *bob* psst`, a whisper this user sent.
pub(crate) fn sent_whisper_line(time: &str, to: &str, text: &str) -> String {
    format!("[{time}] -> *{}* {}", clean(to), clean(text))
}

/// `[12:00:00] #lobby <alice> hello`
pub(crate) fn room_line(time: &str, room: &str, from: &str, text: &str) -> String {
    format!(
        "[{time}] #{} <{}> {}",
        clean(room),
        clean(from),
        clean(text)
    )
}

/// `[12:00:00] #lobby * bob joined`, and the like for every room event.
pub(crate) fn room_event_line(event: &RoomEvent) -> String {
    let user = clean(&event.user);
    let by = event
        .actor
        .as_deref()
        .map(|actor| format!(" by {}", clean(actor)))
        .unwrap_or_default();
    let why = if event.text.is_empty() {
        String::new()
    } else {
        format!(": {}", clean(&event.text))
    };
    let what = match event.kind {
        RoomEventKind::Joined => format!("{user} joined"),
        RoomEventKind::Left if event.text == "quit" => format!("{user} quit"),
        RoomEventKind::Left => format!("{user} left"),
        RoomEventKind::Kicked => format!("{user} was kicked{by}{why}"),
        RoomEventKind::Topic if event.text.is_empty() => format!("{user} cleared the topic"),
        RoomEventKind::Topic => format!("{user} set the topic{why}"),
        RoomEventKind::Muted => format!("{user} was muted{by}{why}"),
        RoomEventKind::Unmuted => format!("{user} was unmuted{by}"),
        RoomEventKind::OperatorGranted => format!("{user} is now an operator{}", by),
        RoomEventKind::OperatorRevoked => format!("{user} is no longer an operator{by}"),
        RoomEventKind::Invited => format!("you were invited{by} (/join {})", clean(&event.room)),
        RoomEventKind::Other(kind) => format!("event {kind} for {user}{by}{why}"),
    };
    format!(
        "[{}] #{} * {what}",
        time_of_day(event.sent_at_ms, &Local),
        clean(&event.room)
    )
}

/// `bob is away: lunch`
pub(crate) fn presence_text(presence: &Presence) -> String {
    let user = clean(&presence.user);
    match presence.status {
        Status::Online => format!("{user} is online"),
        Status::Away if presence.text.is_empty() => format!("{user} is away"),
        Status::Away => format!("{user} is away: {}", clean(&presence.text)),
        Status::Offline => format!("{user} is offline"),
        Status::Other(status) => format!("{user} has status {status}"),
    }
}

/// What an operator did to this user, e.g. `root muted you until 12:30:00: calm down`.
pub(crate) fn moderation_line(notice: &ModerationNotice) -> String {
    let actor = clean(&notice.actor);
    let until = notice
        .expires_at_ms
        .map(|at| format!(" until {}", time_of_day(at, &Local)))
        .unwrap_or_default();
    let why = if notice.reason.is_empty() {
        String::new()
    } else {
        format!(": {}", clean(&notice.reason))
    };
    match notice.kind {
        ModerationKind::Kicked => format!("!! {actor} kicked you{why}"),
        ModerationKind::Banned => format!("!! {actor} banned you{until}{why}"),
        ModerationKind::Muted => format!("!! {actor} muted you{until}{why}"),
        ModerationKind::Unmuted => format!("!! {actor} unmuted you{why}"),
        ModerationKind::Other(action) => format!("!! {actor} took action {action} on you{why}"),
    }
}

/// `created #lobby (persistent, invite-only, with a password)`
pub(crate) fn created_line(room: &str, options: &RoomOptions) -> String {
    let mut traits = Vec::new();
    if options.persistent {
        traits.push("persistent");
    }
    if options.invite_only {
        traits.push("invite-only");
    }
    if !options.password.is_empty() {
        traits.push("with a password");
    }
    let traits = if traits.is_empty() {
        String::new()
    } else {
        format!(" ({})", traits.join(", "))
    };
    format!("created #{}{traits}; you are its owner", clean(room))
}

/// `joined #lobby (3 members): the topic`
pub(crate) fn joined_line(info: &RoomInfo) -> String {
    let members = plural(info.members as usize, "member");
    if info.topic.is_empty() {
        format!("joined #{} ({members})", clean(&info.room))
    } else {
        format!(
            "joined #{} ({members}): {}",
            clean(&info.room),
            clean(&info.topic)
        )
    }
}

/// One line per room, after a count.
pub(crate) fn rooms_listing(rooms: &[RoomInfo]) -> Vec<String> {
    let mut lines = vec![format!("{}:", plural(rooms.len(), "room"))];
    lines.extend(rooms.iter().map(|room| {
        let mut marks = String::new();
        if room.persistent {
            marks.push_str(" [persistent]");
        }
        if room.invite_only {
            marks.push_str(" [invite-only]");
        }
        if room.has_password {
            marks.push_str(" [password]");
        }
        let topic = if room.topic.is_empty() {
            String::new()
        } else {
            format!(" - {}", clean(&room.topic))
        };
        format!(
            "  #{} ({}){marks}{topic}",
            clean(&room.room),
            plural(room.members as usize, "member")
        )
    }));
    lines
}

/// One line per user, after a count; in a room, owners are marked `~` and operators `@`.
pub(crate) fn users_listing(room: Option<&str>, users: &[UserEntry]) -> Vec<String> {
    let title = match room {
        Some(room) => format!("{} in #{}:", plural(users.len(), "member"), clean(room)),
        None => format!("{} online:", plural(users.len(), "user")),
    };
    let mut lines = vec![title];
    lines.extend(users.iter().map(|user| {
        let mark = match user.role {
            Role::Owner => "~",
            Role::Operator => "@",
            _ => "",
        };
        let status = match user.status {
            Status::Away if user.text.is_empty() => " (away)".to_owned(),
            Status::Away => format!(" (away: {})", clean(&user.text)),
            _ => String::new(),
        };
        format!("  {mark}{}{status}", clean(&user.user))
    }));
    lines
}

/// What a room action did, once the server accepted it.
pub(crate) fn room_action_line(room: &str, action: &RoomAction) -> String {
    let room = clean(room);
    match action {
        RoomAction::Kick { user, .. } => format!("kicked {} from #{room}", clean(user)),
        RoomAction::SetTopic(topic) if topic.is_empty() => format!("cleared the topic of #{room}"),
        RoomAction::SetTopic(topic) => format!("set the topic of #{room}: {}", clean(topic)),
        RoomAction::Mute { user, duration, .. } => {
            format!(
                "muted {} in #{room}{}",
                clean(user),
                for_how_long(*duration)
            )
        }
        RoomAction::Unmute { user, .. } => format!("unmuted {} in #{room}", clean(user)),
        RoomAction::Invite(user) => format!("invited {} to #{room}", clean(user)),
        RoomAction::Op(user) => format!("{} is now an operator of #{room}", clean(user)),
        RoomAction::Deop(user) => format!("{} is no longer an operator of #{room}", clean(user)),
        // The enum may grow; a new action still gets a line.
        #[allow(unreachable_patterns)]
        _ => format!("done in #{room}"),
    }
}

/// What a server operator's action did, once the server accepted it.
pub(crate) fn moderation_action_line(action: &ModerationAction) -> String {
    match action {
        ModerationAction::Kick { user, .. } => format!("kicked {} off the server", clean(user)),
        ModerationAction::BanUser { user, duration, .. } => {
            format!("banned {}{}", clean(user), for_how_long(*duration))
        }
        ModerationAction::BanIp { addr, duration, .. } => {
            format!("banned address {addr}{}", for_how_long(*duration))
        }
        ModerationAction::UnbanUser { user, .. } => format!("lifted the ban on {}", clean(user)),
        ModerationAction::UnbanIp { addr, .. } => format!("lifted the ban on address {addr}"),
        ModerationAction::Mute { user, duration, .. } => {
            format!(
                "muted {} server-wide{}",
                clean(user),
                for_how_long(*duration)
            )
        }
        ModerationAction::Unmute { user, .. } => format!("unmuted {}", clean(user)),
        #[allow(unreachable_patterns)]
        _ => "done".to_owned(),
    }
}

/// ` for 600 s`, or ` until lifted` for no duration.
fn for_how_long(duration: Option<std::time::Duration>) -> String {
    match duration {
        Some(duration) => format!(" for {} s", duration.as_secs().max(1)),
        None => " until lifted".to_owned(),
    }
}

/// `1 member`, `3 members`
fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// The line to show for an event, `None` for events that need none.
pub(crate) fn event_line(event: &Event) -> Option<String> {
    match event {
        Event::Broadcast(msg) => Some(broadcast_line(
            &time_of_day(msg.sent_at_ms, &Local),
            &msg.from,
            &msg.text,
        )),
        Event::Whisper(msg) => Some(whisper_line(
            &time_of_day(msg.sent_at_ms, &Local),
            &msg.from,
            &msg.text,
        )),
        Event::RoomChat(room) => Some(room_line(
            &time_of_day(room.message.sent_at_ms, &Local),
            &room.room,
            &room.message.from,
            &room.message.text,
        )),
        Event::RoomEvent(event) => Some(room_event_line(event)),
        Event::Presence(presence) => Some(format!("[{}] * {}", now(), presence_text(presence))),
        Event::SystemNotice(notice) => Some(format!(
            "[{}] !! notice from {}: {}",
            time_of_day(notice.sent_at_ms, &Local),
            clean(&notice.from),
            clean(&notice.text)
        )),
        Event::Moderation(notice) => Some(format!("[{}] {}", now(), moderation_line(notice))),
        Event::ServerClosing {
            code: ErrorCode::KICKED,
            reason,
        } => Some(format!("you were kicked off the server: {}", clean(reason))),
        Event::ServerClosing {
            code: ErrorCode::BANNED,
            reason,
        } => Some(format!("you are banned from the server: {}", clean(reason))),
        Event::ServerClosing { code, reason } => Some(format!(
            "the server is closing the connection: {} ({code})",
            clean(reason)
        )),
        // Closed: this user left. ServerClosed: `ServerClosing` already said why.
        Event::Disconnected(ClientError::Closed | ClientError::ServerClosed { .. }) => None,
        Event::Disconnected(error) => Some(format!("disconnected: {}", reason(error))),
        Event::ConnectionLost(ClientError::ServerClosed { .. }) => {
            Some("connection lost (the server closed it)".to_owned())
        }
        Event::ConnectionLost(error) => Some(format!("connection lost: {}", reason(error))),
        Event::Reconnecting { attempt, .. } => Some(format!("reconnecting (attempt {attempt})…")),
        Event::Resumed { replayed: 0 } => Some("resumed, no messages missed".to_owned()),
        Event::Resumed { replayed: 1 } => Some("resumed, 1 missed message replayed".to_owned()),
        Event::Resumed { replayed } => {
            Some(format!("resumed, {replayed} missed messages replayed"))
        }
        Event::ResumedWithGap { .. } => {
            Some("resumed, but some messages were missed (reload history)".to_owned())
        }
        Event::Reconnected { .. } => Some(
            "reconnected as a new session: messages sent while disconnected were missed \
             (reload history), and you are in no room and watch nobody (/join and /watch again)"
                .to_owned(),
        ),
        _ => None,
    }
}

/// Whether `event` is about the connection rather than the chat (messages, room events,
/// presence, notices).
pub(crate) fn is_status(event: &Event) -> bool {
    !matches!(
        event,
        Event::Broadcast(_)
            | Event::Whisper(_)
            | Event::RoomChat(_)
            | Event::RoomEvent(_)
            | Event::Presence(_)
            | Event::SystemNotice(_)
            | Event::Moderation(_)
    )
}

/// A result code in words.
pub(crate) fn describe(result: ResultCode) -> Cow<'static, str> {
    Cow::Borrowed(match result {
        ResultCode::INVALID_CREDENTIALS => "wrong username or password",
        ResultCode::ALREADY_AUTHENTICATED => "already logged in",
        ResultCode::INVALID_USERNAME => "invalid username (1-32 characters of A-Z a-z 0-9 _ -)",
        ResultCode::NOT_AUTHENTICATED => "not logged in",
        ResultCode::USER_NOT_FOUND => "no such user online",
        ResultCode::RATE_LIMITED => "sending too fast, slow down",
        ResultCode::INVALID_MESSAGE => "message empty, too long, or not valid UTF-8",
        ResultCode::SERVER_BUSY => "the server is busy, try again later",
        ResultCode::NAME_IN_USE => "that name is already online",
        ResultCode::NOT_AVAILABLE => "not available on this server",
        ResultCode::ROOM_NOT_FOUND => "no such room",
        ResultCode::NOT_PERMITTED => "not permitted",
        ResultCode::BANNED => "banned",
        ResultCode::MUTED => "you are muted",
        ResultCode::ROOM_EXISTS => "that room already exists",
        ResultCode::INVALID_ROOM_NAME => "invalid room name (1-32 of A-Z a-z 0-9 _ - .)",
        ResultCode::ROOM_FULL => "the room is full",
        ResultCode::TOO_MANY_ROOMS => "too many rooms",
        ResultCode::NOT_IN_ROOM => "not in that room",
        ResultCode::ALREADY_IN_ROOM => "already in that room",
        ResultCode::BAD_ROOM_PASSWORD => "wrong room password",
        ResultCode::INVITE_ONLY => "the room is invite-only",
        ResultCode::INVALID_REQUEST => "invalid request",
        other => return Cow::Owned(format!("refused with code {}", other.0)),
    })
}

/// Why something failed, in words.
pub(crate) fn reason(error: &ClientError) -> String {
    match error {
        ClientError::Rejected { result, .. } => format!("{} ({result})", describe(*result)),
        ClientError::TooLarge { size, max, .. } => {
            format!("message too long ({size} bytes with headers, the limit is {max})")
        }
        ClientError::ServerClosed { code, reason } => format!(
            "the server closed the connection: {} ({code})",
            clean(reason)
        ),
        // The error's own text leaves the detail to its source.
        ClientError::Io(io) => format!("I/O error: {io}"),
        ClientError::ConnectionLost(lost) => format!(
            "the connection was lost before the server answered ({}); reconnecting",
            reason(lost)
        ),
        ClientError::ReconnectTimeout { after, .. } => format!(
            "no connection to the server for {} s; still reconnecting",
            after.as_secs()
        ),
        ClientError::ReconnectFailed { attempts, last } => format!(
            "gave up reconnecting after {attempts} attempt{}: {}",
            if *attempts == 1 { "" } else { "s" },
            reason(last)
        ),
        other => other.to_string(),
    }
}

/// The line reporting that `command` failed.
pub(crate) fn failure(command: &Command, error: &ClientError) -> String {
    // Lost in flight: it may have gone out, so "not sent" would be a guess.
    let unknown = matches!(error, ClientError::ConnectionLost(_));
    let what = match (command, unknown) {
        (Command::Whisper { to, .. }, false) => format!("whisper to {} not sent", clean(to)),
        (Command::Whisper { to, .. }, true) => {
            format!("whisper to {} may not have been sent", clean(to))
        }
        (Command::RoomChat { room, .. }, false) => format!("message to #{} not sent", clean(room)),
        (Command::RoomChat { room, .. }, true) => {
            format!("message to #{} may not have been sent", clean(room))
        }
        (Command::Ping, _) => "ping failed".to_owned(),
        (Command::Broadcast(_), false) => "message not sent".to_owned(),
        (Command::Broadcast(_), true) => "message may not have been sent".to_owned(),
        (Command::Notice(_), false) => "notice not sent".to_owned(),
        (Command::Notice(_), true) => "notice may not have been sent".to_owned(),
        (Command::Create { room, .. }, _) => format!("cannot create #{}", clean(room)),
        (Command::Join { room, .. }, _) => format!("cannot join #{}", clean(room)),
        (Command::Leave(room), _) => format!("cannot leave #{}", clean(room)),
        (Command::Members(room), _) => format!("cannot list the members of #{}", clean(room)),
        (Command::Rooms, _) => "cannot list the rooms".to_owned(),
        (Command::Who, _) => "cannot list the users".to_owned(),
        (Command::Watch(user), _) => format!("cannot watch {}", clean(user)),
        (Command::Unwatch(user), _) => format!("cannot unwatch {}", clean(user)),
        (Command::Status(_), _) => "cannot set your status".to_owned(),
        (Command::RoomModerate { room, .. }, _) => format!("not done in #{}", clean(room)),
        (Command::Moderate(_), _) => "not done".to_owned(),
        (Command::Help | Command::Quit, _) => "failed".to_owned(),
    };
    format!("{what}: {}", reason(error))
}

/// `s` with every character that could steer the terminal replaced: control characters
/// (escape, carriage return, newline...) and the bidirectional overrides that reorder text.
/// Tabs become spaces.
pub(crate) fn clean(s: &str) -> Cow<'_, str> {
    fn unsafe_char(c: char) -> bool {
        c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    }
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| match c {
                '\t' => ' ',
                c if unsafe_char(c) => '\u{FFFD}',
                c => c,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{FixedOffset, Utc};
    use suda_client::{ChatMessage, ErrorCode, PacketType};

    #[test]
    fn times_are_shown_in_the_given_zone_and_never_panic() {
        assert_eq!(time_of_day(3_723_000, &Utc), "01:02:03");
        let plus_two = FixedOffset::east_opt(2 * 3600).expect("valid offset");
        assert_eq!(time_of_day(3_723_999, &plus_two), "03:02:03");
        assert_eq!(time_of_day(u64::MAX, &Utc), "--:--:--");
        assert_eq!(time_of_day(i64::MAX as u64, &Local), "--:--:--");
    }

    #[test]
    fn broadcasts_and_whispers_look_different() {
        assert_eq!(
            broadcast_line("12:00:00", "alice", "hi"),
            "[12:00:00] <alice> hi"
        );
        assert_eq!(
            whisper_line("12:00:00", "bob", "psst"),
            "[12:00:00] *bob* psst"
        );
        assert_eq!(
            sent_whisper_line("12:00:00", "bob", "psst"),
            "[12:00:00] -> *bob* psst"
        );
    }

    #[test]
    fn terminal_control_sequences_from_peers_are_defused() {
        assert_eq!(
            clean("\u{1b}[2Jgotcha\r\n[00:00:00] <admin> x\u{202E}"),
            "\u{FFFD}[2Jgotcha\u{FFFD}\u{FFFD}[00:00:00] <admin> x\u{FFFD}"
        );
        assert_eq!(clean("a\tb"), "a b");
        assert!(matches!(clean("plain text é"), Cow::Borrowed(_)));
    }

    #[test]
    fn errors_read_as_sentences() {
        let rejected = ClientError::Rejected {
            request: PacketType::WhisperReq,
            result: ResultCode::USER_NOT_FOUND,
        };
        let whisper = Command::Whisper {
            to: "bob".into(),
            text: "hi".into(),
        };
        assert_eq!(
            failure(&whisper, &rejected),
            "whisper to bob not sent: no such user online (USER_NOT_FOUND)"
        );
        assert_eq!(describe(ResultCode(99)), "refused with code 99");
        assert_eq!(
            event_line(&Event::ServerClosing {
                code: ErrorCode::SERVER_SHUTDOWN,
                reason: "bye".into()
            })
            .as_deref(),
            Some("the server is closing the connection: bye (SERVER_SHUTDOWN)")
        );
        assert_eq!(event_line(&Event::Disconnected(ClientError::Closed)), None);
        assert_eq!(
            event_line(&Event::Disconnected(ClientError::Eof)).as_deref(),
            Some("disconnected: the server closed the connection")
        );
        let msg = ChatMessage {
            message_id: 1,
            sent_at_ms: 0,
            from: "bob".into(),
            text: "yo".into(),
        };
        let line = event_line(&Event::Whisper(msg)).expect("a line");
        assert!(line.ends_with("] *bob* yo"), "{line}");
    }

    #[test]
    fn reconnecting_reads_as_sentences() {
        let line = |event: Event| event_line(&event).expect("a line");
        assert_eq!(
            line(Event::ConnectionLost(ClientError::Eof)),
            "connection lost: the server closed the connection"
        );
        assert_eq!(
            line(Event::Reconnecting {
                attempt: 3,
                delay: std::time::Duration::from_millis(400)
            }),
            "reconnecting (attempt 3)…"
        );
        assert_eq!(
            line(Event::Resumed { replayed: 5 }),
            "resumed, 5 missed messages replayed"
        );
        assert_eq!(
            line(Event::Resumed { replayed: 1 }),
            "resumed, 1 missed message replayed"
        );
        assert_eq!(
            line(Event::ResumedWithGap { replayed: 2 }),
            "resumed, but some messages were missed (reload history)"
        );
        assert!(line(Event::Reconnected { session_id: 3 }).contains("new session"));
        let gave_up = ClientError::ReconnectFailed {
            attempts: 4,
            last: Box::new(ClientError::from(std::io::Error::from(
                std::io::ErrorKind::ConnectionRefused,
            ))),
        };
        assert_eq!(
            line(Event::Disconnected(gave_up)),
            "disconnected: gave up reconnecting after 4 attempts: I/O error: connection refused"
        );
        let lost = ClientError::ConnectionLost(Box::new(ClientError::Eof));
        assert_eq!(
            failure(&Command::Broadcast("hi".into()), &lost),
            "message may not have been sent: the connection was lost before the server \
             answered (the server closed the connection); reconnecting"
        );
        assert!(is_status(&Event::Resumed { replayed: 0 }));
    }
}
