//! What one line of input means.

use std::fmt;

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
    /// `/w` without a recipient or without a message.
    WhisperUsage,
    /// A `/word` that is not a command.
    Unknown(String),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WhisperUsage => f.write_str("usage: /w <user> <message>"),
            Self::Unknown(word) => write!(
                f,
                "unknown command {word} (try /help; start a message with // to send a leading /)"
            ),
        }
    }
}

/// The commands, for `/help`.
pub(crate) const HELP: &str = "\
commands:
  <text>                    send <text> to everyone
  /w <user> <text>          whisper <text> to <user> (also /whisper, /msg)
  /ping                     measure the round trip to the server
  /help                     show this list
  /quit                     leave (also /exit, Ctrl-D)
  //text                    send a message that starts with /";

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
                return Err(ParseError::WhisperUsage);
            }
            Command::Whisper {
                to: to.to_owned(),
                text: text.to_owned(),
            }
        }
        "ping" => Command::Ping,
        "help" | "?" => Command::Help,
        "quit" | "exit" | "q" => Command::Quit,
        _ => return Err(ParseError::Unknown(format!("/{word}"))),
    };
    Ok(Some(command))
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
        assert_eq!(parse("/w bob"), Err(ParseError::WhisperUsage));
        assert_eq!(parse("/w bob   "), Err(ParseError::WhisperUsage));
        assert_eq!(parse("/w"), Err(ParseError::WhisperUsage));
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
}
