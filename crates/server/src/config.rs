//! Server configuration: defaults, a TOML file, environment variables and command-line flags.
//!
//! Precedence, highest first: command-line flag, environment variable (`SUDA_*`), config file
//! (`--config`), built-in default. Every setting exists in all four places under one name
//! (`max_packet` in the file is `--max-packet` and `SUDA_MAX_PACKET`), because the same
//! [`Settings`] struct is parsed by clap and by serde.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Deserialize;
use suda_protocol::{DEFAULT_MAX_PACKET, DEFAULT_MAX_TEXT, MAX_PACKET_LIMIT, MAX_USERNAME_LEN};
use thiserror::Error;

use crate::ids::MAX_NODE_ID;

/// How logins are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Any valid name that is not online logs in; the password is ignored.
    #[default]
    Open,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// Every setting, each optional so that sources can be layered. See [`Config`] for meanings and
/// defaults.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address to accept plaintext connections on [default: 127.0.0.1:7000]
    #[arg(long, env = "SUDA_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Worker threads, each owning its share of the connections [default: one per CPU]
    #[arg(long, env = "SUDA_WORKERS")]
    pub workers: Option<usize>,
    /// This node's id (0-1023), part of every message and session id [default: 0]
    #[arg(long, env = "SUDA_NODE_ID")]
    pub node_id: Option<u16>,
    /// Most connections open at once; more are told SERVER_BUSY [default: 10000]
    #[arg(long, env = "SUDA_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Largest packet accepted, header included, at most 65535 [default: 8192]
    #[arg(long, env = "SUDA_MAX_PACKET")]
    pub max_packet: Option<usize>,
    /// Longest chat text in bytes of UTF-8 [default: 4096]
    #[arg(long, env = "SUDA_MAX_TEXT")]
    pub max_text: Option<usize>,
    /// Bytes a session may have waiting to be sent before it is cut off as a slow consumer
    /// [default: 1048576]
    #[arg(long, env = "SUDA_SEND_QUEUE_LIMIT")]
    pub send_queue_limit: Option<usize>,
    /// How long a new connection has to log in, e.g. "10s" [default: 10s]
    #[arg(long, env = "SUDA_LOGIN_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub login_timeout: Option<Duration>,
    /// How long a connection may send nothing (clients keep alive with PING) [default: 60s]
    #[arg(long, env = "SUDA_IDLE_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub idle_timeout: Option<Duration>,
    /// How long queued output may make no progress before the peer is cut off [default: 10s]
    #[arg(long, env = "SUDA_WRITE_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub write_timeout: Option<Duration>,
    /// How long a graceful shutdown may spend flushing queued output [default: 5s]
    #[arg(long, env = "SUDA_SHUTDOWN_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub shutdown_timeout: Option<Duration>,
    /// How logins are checked [default: open]
    #[arg(long, env = "SUDA_AUTH", value_enum)]
    pub auth: Option<AuthMode>,
    /// Log line format [default: human]
    #[arg(long, env = "SUDA_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. "info" or "suda_server=debug"; RUST_LOG is used when unset
    /// [default: info]
    #[arg(long, env = "SUDA_LOG")]
    pub log: Option<String>,
}

impl Settings {
    /// Reads settings from a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.display().to_string(),
            source: Box::new(source),
        })
    }

    /// Fills every setting `self` leaves unset from `lower`.
    pub fn or(self, lower: Settings) -> Settings {
        Settings {
            listen: self.listen.or(lower.listen),
            workers: self.workers.or(lower.workers),
            node_id: self.node_id.or(lower.node_id),
            max_connections: self.max_connections.or(lower.max_connections),
            max_packet: self.max_packet.or(lower.max_packet),
            max_text: self.max_text.or(lower.max_text),
            send_queue_limit: self.send_queue_limit.or(lower.send_queue_limit),
            login_timeout: self.login_timeout.or(lower.login_timeout),
            idle_timeout: self.idle_timeout.or(lower.idle_timeout),
            write_timeout: self.write_timeout.or(lower.write_timeout),
            shutdown_timeout: self.shutdown_timeout.or(lower.shutdown_timeout),
            auth: self.auth.or(lower.auth),
            log_format: self.log_format.or(lower.log_format),
            log: self.log.or(lower.log),
        }
    }

    /// Applies defaults to whatever is unset and checks the result.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let d = Config::default();
        let config = Config {
            listen: self.listen.unwrap_or(d.listen),
            workers: self.workers.unwrap_or(d.workers),
            node_id: self.node_id.unwrap_or(d.node_id),
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            max_packet: self.max_packet.unwrap_or(d.max_packet),
            max_text: self.max_text.unwrap_or(d.max_text),
            send_queue_limit: self.send_queue_limit.unwrap_or(d.send_queue_limit),
            login_timeout: self.login_timeout.unwrap_or(d.login_timeout),
            idle_timeout: self.idle_timeout.unwrap_or(d.idle_timeout),
            write_timeout: self.write_timeout.unwrap_or(d.write_timeout),
            shutdown_timeout: self.shutdown_timeout.unwrap_or(d.shutdown_timeout),
            auth: self.auth.unwrap_or(d.auth),
            log_format: self.log_format.unwrap_or(d.log_format),
            log: self.log.unwrap_or(d.log),
        };
        config.validate()?;
        Ok(config)
    }
}

/// The resolved configuration the server runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Address to accept plaintext connections on.
    pub listen: SocketAddr,
    /// Worker threads (shards); each owns the connections it accepted.
    pub workers: usize,
    /// This node's id, 0–1023.
    pub node_id: u16,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Largest packet accepted, header included.
    pub max_packet: usize,
    /// Longest chat text in bytes.
    pub max_text: usize,
    /// Byte cap of each session's send queue (slow-consumer limit).
    pub send_queue_limit: usize,
    /// Deadline for logging in after connecting.
    pub login_timeout: Duration,
    /// Longest silence from a client before it is disconnected.
    pub idle_timeout: Duration,
    /// Longest time queued output may make no progress.
    pub write_timeout: Duration,
    /// Time a graceful shutdown may spend flushing.
    pub shutdown_timeout: Duration,
    /// How logins are checked.
    pub auth: AuthMode,
    /// Log line format.
    pub log_format: LogFormat,
    /// Log filter directive.
    pub log: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7000)),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            node_id: 0,
            max_connections: 10_000,
            max_packet: DEFAULT_MAX_PACKET,
            max_text: DEFAULT_MAX_TEXT,
            send_queue_limit: 1024 * 1024,
            login_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(5),
            auth: AuthMode::Open,
            log_format: LogFormat::Human,
            log: "info".to_owned(),
        }
    }
}

/// Bytes a `WHISPER_REQ` needs besides its text: header, longest name, both length prefixes.
const WHISPER_REQ_OVERHEAD: usize = 4 + 1 + MAX_USERNAME_LEN + 2;
/// Bytes a `*_NOTIFY` carries besides its text.
const NOTIFY_OVERHEAD: usize = 4 + 8 + 8 + 1 + MAX_USERNAME_LEN + 2;

impl Config {
    /// Checks that the settings make sense together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |what: String| Err(ConfigError::Invalid(what));
        if self.workers == 0 || self.workers > 1024 {
            return invalid(format!("workers must be 1..=1024, not {}", self.workers));
        }
        if self.node_id > MAX_NODE_ID {
            return invalid(format!(
                "node_id must be 0..={MAX_NODE_ID}, not {}",
                self.node_id
            ));
        }
        if self.max_connections == 0 {
            return invalid("max_connections must be at least 1".into());
        }
        if !(64..=MAX_PACKET_LIMIT).contains(&self.max_packet) {
            return invalid(format!(
                "max_packet must be 64..={MAX_PACKET_LIMIT}, not {}",
                self.max_packet
            ));
        }
        if self.max_text == 0 || self.max_text + WHISPER_REQ_OVERHEAD > self.max_packet {
            return invalid(format!(
                "max_text must be 1..={} so that a whisper of that length fits max_packet {}",
                self.max_packet.saturating_sub(WHISPER_REQ_OVERHEAD),
                self.max_packet
            ));
        }
        if self.max_text + NOTIFY_OVERHEAD > MAX_PACKET_LIMIT {
            return invalid(format!(
                "max_text must leave room for the notification header ({NOTIFY_OVERHEAD} bytes)"
            ));
        }
        if self.send_queue_limit < 2 * MAX_PACKET_LIMIT {
            return invalid(format!(
                "send_queue_limit must be at least {} bytes",
                2 * MAX_PACKET_LIMIT
            ));
        }
        for (name, value) in [
            ("login_timeout", self.login_timeout),
            ("idle_timeout", self.idle_timeout),
            ("write_timeout", self.write_timeout),
        ] {
            if value.is_zero() {
                return invalid(format!("{name} must be more than zero"));
            }
        }
        Ok(())
    }
}

/// A configuration that cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML for these settings.
    #[error("invalid config file {path}")]
    Parse {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A setting is out of range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Settings::default().resolve().expect("defaults validate");
    }

    #[test]
    fn higher_sources_win_field_by_field() {
        let file: Settings = toml::from_str(
            "max_text = 100\nidle_timeout = \"90s\"\nlisten = \"0.0.0.0:9000\"\nauth = \"open\"",
        )
        .expect("valid toml");
        let flags = Settings {
            max_text: Some(200),
            ..Settings::default()
        };
        let config = flags.or(file).resolve().expect("valid");
        assert_eq!(config.max_text, 200);
        assert_eq!(config.idle_timeout, Duration::from_secs(90));
        assert_eq!(config.listen, "0.0.0.0:9000".parse().expect("addr"));
        assert_eq!(config.max_packet, DEFAULT_MAX_PACKET);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_clear_errors() {
        assert!(toml::from_str::<Settings>("max_txet = 5").is_err());
        let bad = Settings {
            max_packet: Some(100_000),
            ..Settings::default()
        };
        let err = bad.resolve().expect_err("too large").to_string();
        assert!(err.contains("max_packet"), "{err}");
        let bad = Settings {
            max_text: Some(8192),
            ..Settings::default()
        };
        assert!(
            bad.resolve()
                .expect_err("does not fit")
                .to_string()
                .contains("max_text")
        );
    }
}
