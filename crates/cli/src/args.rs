//! The command line.

use std::time::Duration;

use clap::Parser;

/// Terminal client for the suda chat server.
///
/// On a terminal it is an interactive chat: a line broadcasts, `/w bob hi` whispers, `/help`
/// lists the commands. When stdin is not a terminal it sends each line read from stdin (same
/// syntax), waits for each answer, prints incoming messages to stdout, and exits when stdin ends:
/// with status 0 if every line was accepted, 1 otherwise.
#[derive(Debug, Parser)]
#[command(name = "suda", version)]
pub(crate) struct Args {
    /// Server address, HOST:PORT.
    #[arg(long, short, env = "SUDA_SERVER", default_value = "127.0.0.1:7000")]
    pub(crate) server: String,

    /// Username to log in as: 1-32 of A-Z a-z 0-9 _ -.
    #[arg(long, short, env = "SUDA_USER")]
    pub(crate) user: String,

    /// Password; prefer SUDA_PASSWORD, since arguments are visible to other local users.
    /// Servers in open mode ignore it.
    #[arg(
        long,
        env = "SUDA_PASSWORD",
        hide_env_values = true,
        default_value = ""
    )]
    pub(crate) password: String,

    /// Without a terminal: after stdin ends, keep printing incoming messages for this many
    /// seconds before leaving.
    #[arg(
        long,
        visible_alias = "linger",
        value_name = "SECS",
        default_value_t = 0
    )]
    pub(crate) wait_secs: u64,

    /// Seconds to wait for the server to answer a request before giving up on the connection.
    #[arg(long, value_name = "SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) timeout_secs: u64,
}

impl Args {
    /// How long to linger after stdin ends.
    pub(crate) fn wait(&self) -> Duration {
        Duration::from_secs(self.wait_secs)
    }

    /// The request timeout.
    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn flags_parse() {
        let args = Args::try_parse_from([
            "suda",
            "--server",
            "10.0.0.1:9",
            "--user",
            "alice",
            "--linger",
            "5",
        ])
        .expect("valid");
        assert_eq!(args.server, "10.0.0.1:9");
        assert_eq!(args.user, "alice");
        assert_eq!(args.wait(), Duration::from_secs(5));
        assert_eq!(args.timeout(), Duration::from_secs(30));
    }
}
