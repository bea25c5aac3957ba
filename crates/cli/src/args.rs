//! The command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use clap::builder::BoolishValueParser;
use suda_client::TlsOptions;

/// Terminal client for the suda chat server.
///
/// On a terminal it is an interactive chat: a line broadcasts, `/w bob hi` whispers, `/help`
/// lists the commands. When stdin is not a terminal it sends each line read from stdin (same
/// syntax), waits for each answer, prints incoming messages to stdout, and exits when stdin ends:
/// with status 0 if every line was accepted, 1 otherwise.
///
/// A lost connection is reconnected, with backoff, and the session resumed, so messages sent
/// meanwhile arrive late rather than never (--no-reconnect turns this off). Leaving (/quit,
/// Ctrl-D, the end of stdin) logs out, which frees the username at once.
///
/// TLS: --tls connects to a server's TLS port and verifies its certificate against the system's
/// trusted roots, for the host in --server. --tls-ca, --tls-server-name and --insecure each
/// imply --tls, since none of them means anything without it and connecting in the clear when
/// one was asked for would be worse than failing.
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

    /// Connect with TLS; the server must listen for TLS on that port. SUDA_TLS accepts
    /// 1/0, true/false, yes/no, on/off.
    #[arg(long, env = "SUDA_TLS", value_parser = BoolishValueParser::new())]
    pub(crate) tls: bool,

    /// Trust the CA certificate(s) in this PEM file *instead of* the system's roots, so that
    /// only the CA of your own deployment can vouch for the server. Implies --tls.
    #[arg(long, env = "SUDA_TLS_CA", value_name = "FILE")]
    pub(crate) tls_ca: Option<PathBuf>,

    /// Verify the server's certificate for NAME instead of the host in --server (and send it as
    /// SNI), e.g. when connecting by IP address. Implies --tls.
    #[arg(long, value_name = "NAME")]
    pub(crate) tls_server_name: Option<String>,

    /// Do not reconnect when the connection is lost; exit instead. By default suda reconnects
    /// with backoff and resumes the session, so messages sent meanwhile are replayed.
    #[arg(long)]
    pub(crate) no_reconnect: bool,

    /// DEVELOPMENT ONLY: accept any certificate, so that anyone on the network path can read
    /// and change the chat, password included. Warns on every start. Implies --tls. It has no
    /// environment variable on purpose: it must be typed each time.
    #[arg(long, conflicts_with = "tls_ca")]
    pub(crate) insecure: bool,
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

    /// How to use TLS, `None` for plain TCP.
    pub(crate) fn tls(&self) -> Option<TlsOptions> {
        let wanted =
            self.tls || self.tls_ca.is_some() || self.tls_server_name.is_some() || self.insecure;
        if !wanted {
            return None;
        }
        let mut options = TlsOptions::new();
        if let Some(ca) = &self.tls_ca {
            options = options.with_native_roots(false).with_ca_file(ca);
        }
        if let Some(name) = &self.tls_server_name {
            options = options.with_server_name(name);
        }
        if self.insecure {
            options = options.insecure_skip_verify();
        }
        Some(options)
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
        assert!(args.tls().is_none(), "plain TCP unless asked");
        assert!(!args.no_reconnect, "reconnecting is the default");
        assert!(parse(&["--no-reconnect"]).expect("valid").no_reconnect);
    }

    fn parse(extra: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(["suda", "--user", "alice"].iter().chain(extra))
    }

    #[test]
    fn every_tls_flag_implies_tls() {
        let tls = parse(&["--tls"]).expect("valid").tls().expect("TLS");
        assert!(!tls.is_insecure());
        assert_eq!(tls.server_name(), None);

        assert!(
            parse(&["--tls-ca", "ca.pem"])
                .expect("valid")
                .tls()
                .is_some()
        );
        let named = parse(&["--tls-server-name", "chat.example.com"])
            .expect("valid")
            .tls()
            .expect("TLS");
        assert_eq!(named.server_name(), Some("chat.example.com"));
        let insecure = parse(&["--insecure"]).expect("valid").tls().expect("TLS");
        assert!(insecure.is_insecure());
    }

    #[test]
    fn insecure_and_a_ca_contradict_each_other() {
        let error = parse(&["--insecure", "--tls-ca", "ca.pem"]).expect_err("conflict");
        assert_eq!(error.kind(), clap::error::ErrorKind::ArgumentConflict);
    }
}
