//! How events, replies and errors are worded and timestamped.
//!
//! Everything that came from the network goes through [`clean`] before it reaches the terminal,
//! so another user cannot move the cursor, recolour the screen or forge a line with escape codes.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Local, TimeZone};
use suda_client::{ClientError, Event, ResultCode};

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
             (reload history)"
                .to_owned(),
        ),
        _ => None,
    }
}

/// Whether `event` is about the connection rather than a chat message.
pub(crate) fn is_status(event: &Event) -> bool {
    !matches!(event, Event::Broadcast(_) | Event::Whisper(_))
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
        (Command::Ping, _) => "ping failed".to_owned(),
        (_, false) => "message not sent".to_owned(),
        (_, true) => "message may not have been sent".to_owned(),
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
