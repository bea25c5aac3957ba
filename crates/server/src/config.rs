//! Server configuration: defaults, a TOML file, environment variables and command-line flags.
//!
//! Precedence, highest first: command-line flag, environment variable (`SUDA_*`), config file
//! (`--config`), built-in default. Every setting exists in all four places under one name
//! (`max_packet` in the file is `--max-packet` and `SUDA_MAX_PACKET`), because the same
//! [`Settings`] struct is parsed by clap and by serde.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use ipnet::IpNet;
use serde::Deserialize;
use suda_protocol::{DEFAULT_MAX_PACKET, DEFAULT_MAX_TEXT, MAX_PACKET_LIMIT, MAX_USERNAME_LEN};
use thiserror::Error;

use crate::ids::MAX_NODE_ID;

/// How logins are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Any valid name that is not online logs in; a name with an account needs its password.
    #[default]
    Open,
    /// Only accounts log in, with their password.
    Registered,
    /// The password field carries a JWT from the application's own backend (`sub` = username).
    Token,
}

/// Where accounts and history are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// An SQLite file in `data_dir`.
    #[default]
    Sqlite,
    /// The PostgreSQL server at `database_url`.
    Postgres,
    /// Nothing is stored: no accounts, no history.
    None,
}

/// When a broadcast or whisper is acknowledged, relative to storing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// `*_RES OK` only after the message's batch has committed: acknowledged means stored.
    #[default]
    Strict,
    /// Acknowledged at once; stored within the writer's interval (100 ms).
    Batched,
}

/// What a whisper to an offline user does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OfflineWhispers {
    /// `USER_NOT_FOUND`, as the original server.
    #[default]
    Reject,
    /// Kept for registered users and delivered, in order, at their next login.
    Store,
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
    /// Address to accept TLS connections on; needs --tls-cert and --tls-key [default: none]
    #[arg(long, env = "SUDA_TLS_LISTEN")]
    pub tls_listen: Option<SocketAddr>,
    /// PEM file with the TLS certificate chain, leaf first (reloaded on SIGHUP)
    #[arg(long, env = "SUDA_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM file with the TLS private key (reloaded on SIGHUP)
    #[arg(long, env = "SUDA_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Serve TLS only: do not open the plaintext listener [default: false]
    #[arg(long, env = "SUDA_TLS_ONLY", num_args = 0..=1, default_missing_value = "true")]
    pub tls_only: Option<bool>,
    /// Address to serve Prometheus metrics on, at /metrics [default: off]
    #[arg(long, env = "SUDA_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
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
    /// How long a logged-in session may be quiet before it hibernates: its task ends and its
    /// socket waits in the worker's own poller, so an idle connection costs less memory (up to
    /// 64 times longer for a session whose hibernations keep ending soon); "0s" keeps every
    /// session awake [default: 20ms]
    #[arg(long, env = "SUDA_HIBERNATE_AFTER", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub hibernate_after: Option<Duration>,
    /// How long a graceful shutdown may spend flushing queued output [default: 5s]
    #[arg(long, env = "SUDA_SHUTDOWN_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub shutdown_timeout: Option<Duration>,
    /// Chat messages (broadcasts and whispers) a session may send per second; 0 = unlimited
    /// [default: 20]
    #[arg(long, env = "SUDA_MESSAGE_RATE")]
    pub message_rate: Option<f64>,
    /// Chat messages a session may send in a burst above the rate [default: 40]
    #[arg(long, env = "SUDA_MESSAGE_BURST")]
    pub message_burst: Option<f64>,
    /// Bytes of chat text a session may send per second; 0 = unlimited [default: 32768]
    #[arg(long, env = "SUDA_BYTE_RATE")]
    pub byte_rate: Option<f64>,
    /// Bytes of chat text a session may send in a burst, at least max_text [default: 131072]
    #[arg(long, env = "SUDA_BYTE_BURST")]
    pub byte_burst: Option<f64>,
    /// Requests refused as RATE_LIMITED that a session may pile up (they drain at message_rate)
    /// before it is disconnected for flooding [default: 50]
    #[arg(long, env = "SUDA_FLOOD_STRIKES")]
    pub flood_strikes: Option<u32>,
    /// Connections open at once from one IP address; 0 = unlimited [default: 64]
    #[arg(long, env = "SUDA_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<u32>,
    /// New connections per second from one IP address (bursts of twice that); 0 = unlimited
    /// [default: 20]
    #[arg(long, env = "SUDA_CONNECTION_RATE_PER_IP")]
    pub connection_rate_per_ip: Option<f64>,
    /// Networks exempt from the per-IP limits, comma-separated, or "none"
    /// [default: 127.0.0.0/8,::1/128]
    #[arg(long, env = "SUDA_PER_IP_EXEMPT")]
    pub per_ip_exempt: Option<IpNetList>,
    /// How long a packet may take to arrive completely once it has started [default: 10s]
    #[arg(long, env = "SUDA_PACKET_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub packet_timeout: Option<Duration>,
    /// Delay before answering a login after one failed attempt from the same address or for the
    /// same account; doubles with each further failure; 0 disables [default: 250ms]
    #[arg(long, env = "SUDA_LOGIN_BACKOFF", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub login_backoff: Option<Duration>,
    /// Longest login delay after repeated failures [default: 8s]
    #[arg(long, env = "SUDA_LOGIN_BACKOFF_MAX", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub login_backoff_max: Option<Duration>,
    /// How long a session that took a resume token survives a lost connection; 0 turns resume
    /// off [default: 60s]
    #[arg(long, env = "SUDA_RESUME_GRACE", value_parser = humantime::parse_duration)]
    #[serde(default, with = "humantime_serde")]
    pub resume_grace: Option<Duration>,
    /// Notifications a resumable session keeps for replay [default: 1000]
    #[arg(long, env = "SUDA_REPLAY_LOG_MESSAGES")]
    pub replay_log_messages: Option<usize>,
    /// Bytes of notifications a resumable session keeps for replay [default: 1048576]
    #[arg(long, env = "SUDA_REPLAY_LOG_BYTES")]
    pub replay_log_bytes: Option<usize>,
    /// Most notifications replayed by one resume; more is answered as a gap [default: 1000]
    #[arg(long, env = "SUDA_MAX_REPLAY")]
    pub max_replay: Option<usize>,
    /// Most sessions detached (waiting for a resume) at once [default: 10000]
    #[arg(long, env = "SUDA_MAX_DETACHED")]
    pub max_detached: Option<usize>,
    /// Most rooms on the server at once, temporary and persistent [default: 10000]
    #[arg(long, env = "SUDA_MAX_ROOMS")]
    pub max_rooms: Option<usize>,
    /// Most rooms one user may be in at once [default: 50]
    #[arg(long, env = "SUDA_MAX_ROOMS_PER_USER")]
    pub max_rooms_per_user: Option<usize>,
    /// Most members of one room [default: 10000]
    #[arg(long, env = "SUDA_MAX_ROOM_MEMBERS")]
    pub max_room_members: Option<usize>,
    /// Most names one session may watch for presence changes [default: 100]
    #[arg(long, env = "SUDA_MAX_WATCH")]
    pub max_watch: Option<usize>,
    /// Server operators: account names, comma-separated (or "none"); their rights need a login
    /// that proves the account [default: none]
    #[arg(long, env = "SUDA_OPERATORS")]
    pub operators: Option<NameList>,
    /// How logins are checked: open, registered or token [default: open]
    #[arg(long, env = "SUDA_AUTH", value_enum)]
    pub auth: Option<AuthMode>,
    /// Whether clients may create accounts with REGISTER_REQ [default: true]
    #[arg(long, env = "SUDA_REGISTRATION", num_args = 0..=1, default_missing_value = "true")]
    pub registration: Option<bool>,
    /// Token mode: the HS256 secret that signs login tokens
    #[arg(long, env = "SUDA_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Token mode: PEM public key (RSA for RS256, Ed25519 for EdDSA) that verifies login tokens
    #[arg(long, env = "SUDA_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<PathBuf>,
    /// Where accounts and history are kept: sqlite, postgres or none [default: sqlite]
    #[arg(long, env = "SUDA_STORE", value_enum)]
    pub store: Option<StoreKind>,
    /// Directory of the SQLite database, created on first start [default: suda-data]
    #[arg(long, env = "SUDA_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL URL (postgres://user:password@host/db); implies --store postgres
    #[arg(long, env = "SUDA_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// strict: acknowledge messages after they are stored; batched: at once [default: strict]
    #[arg(long, env = "SUDA_DURABILITY", value_enum)]
    pub durability: Option<Durability>,
    /// Whispers to offline users: reject, or store for registered users [default: reject]
    #[arg(long, env = "SUDA_OFFLINE_WHISPERS", value_enum)]
    pub offline_whispers: Option<OfflineWhispers>,
    /// Delete stored messages older than this many days; 0 keeps them [default: 0]
    #[arg(long, env = "SUDA_RETENTION_DAYS")]
    pub retention_days: Option<u32>,
    /// Keep at most this many stored messages; 0 for no limit [default: 0]
    #[arg(long, env = "SUDA_RETENTION_MESSAGES")]
    pub retention_messages: Option<u64>,
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
            tls_listen: self.tls_listen.or(lower.tls_listen),
            tls_cert: self.tls_cert.or(lower.tls_cert),
            tls_key: self.tls_key.or(lower.tls_key),
            tls_only: self.tls_only.or(lower.tls_only),
            metrics_listen: self.metrics_listen.or(lower.metrics_listen),
            workers: self.workers.or(lower.workers),
            node_id: self.node_id.or(lower.node_id),
            max_connections: self.max_connections.or(lower.max_connections),
            max_packet: self.max_packet.or(lower.max_packet),
            max_text: self.max_text.or(lower.max_text),
            send_queue_limit: self.send_queue_limit.or(lower.send_queue_limit),
            login_timeout: self.login_timeout.or(lower.login_timeout),
            idle_timeout: self.idle_timeout.or(lower.idle_timeout),
            write_timeout: self.write_timeout.or(lower.write_timeout),
            hibernate_after: self.hibernate_after.or(lower.hibernate_after),
            shutdown_timeout: self.shutdown_timeout.or(lower.shutdown_timeout),
            message_rate: self.message_rate.or(lower.message_rate),
            message_burst: self.message_burst.or(lower.message_burst),
            byte_rate: self.byte_rate.or(lower.byte_rate),
            byte_burst: self.byte_burst.or(lower.byte_burst),
            flood_strikes: self.flood_strikes.or(lower.flood_strikes),
            max_connections_per_ip: self.max_connections_per_ip.or(lower.max_connections_per_ip),
            connection_rate_per_ip: self.connection_rate_per_ip.or(lower.connection_rate_per_ip),
            per_ip_exempt: self.per_ip_exempt.or(lower.per_ip_exempt),
            packet_timeout: self.packet_timeout.or(lower.packet_timeout),
            login_backoff: self.login_backoff.or(lower.login_backoff),
            login_backoff_max: self.login_backoff_max.or(lower.login_backoff_max),
            resume_grace: self.resume_grace.or(lower.resume_grace),
            replay_log_messages: self.replay_log_messages.or(lower.replay_log_messages),
            replay_log_bytes: self.replay_log_bytes.or(lower.replay_log_bytes),
            max_replay: self.max_replay.or(lower.max_replay),
            max_detached: self.max_detached.or(lower.max_detached),
            max_rooms: self.max_rooms.or(lower.max_rooms),
            max_rooms_per_user: self.max_rooms_per_user.or(lower.max_rooms_per_user),
            max_room_members: self.max_room_members.or(lower.max_room_members),
            max_watch: self.max_watch.or(lower.max_watch),
            operators: self.operators.or(lower.operators),
            auth: self.auth.or(lower.auth),
            registration: self.registration.or(lower.registration),
            jwt_secret: self.jwt_secret.or(lower.jwt_secret),
            jwt_public_key: self.jwt_public_key.or(lower.jwt_public_key),
            store: self.store.or(lower.store),
            data_dir: self.data_dir.or(lower.data_dir),
            database_url: self.database_url.or(lower.database_url),
            durability: self.durability.or(lower.durability),
            offline_whispers: self.offline_whispers.or(lower.offline_whispers),
            retention_days: self.retention_days.or(lower.retention_days),
            retention_messages: self.retention_messages.or(lower.retention_messages),
            log_format: self.log_format.or(lower.log_format),
            log: self.log.or(lower.log),
        }
    }

    /// Applies defaults to whatever is unset and checks the result.
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let d = Config::default();
        let config = Config {
            listen: self.listen.unwrap_or(d.listen),
            tls_listen: self.tls_listen.or(d.tls_listen),
            tls_cert: self.tls_cert.or(d.tls_cert),
            tls_key: self.tls_key.or(d.tls_key),
            tls_only: self.tls_only.unwrap_or(d.tls_only),
            metrics_listen: self.metrics_listen.or(d.metrics_listen),
            workers: self.workers.unwrap_or(d.workers),
            node_id: self.node_id.unwrap_or(d.node_id),
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            max_packet: self.max_packet.unwrap_or(d.max_packet),
            max_text: self.max_text.unwrap_or(d.max_text),
            send_queue_limit: self.send_queue_limit.unwrap_or(d.send_queue_limit),
            login_timeout: self.login_timeout.unwrap_or(d.login_timeout),
            idle_timeout: self.idle_timeout.unwrap_or(d.idle_timeout),
            write_timeout: self.write_timeout.unwrap_or(d.write_timeout),
            hibernate_after: self.hibernate_after.unwrap_or(d.hibernate_after),
            shutdown_timeout: self.shutdown_timeout.unwrap_or(d.shutdown_timeout),
            message_rate: self.message_rate.unwrap_or(d.message_rate),
            message_burst: self.message_burst.unwrap_or(d.message_burst),
            byte_rate: self.byte_rate.unwrap_or(d.byte_rate),
            byte_burst: self.byte_burst.unwrap_or(d.byte_burst),
            flood_strikes: self.flood_strikes.unwrap_or(d.flood_strikes),
            max_connections_per_ip: self
                .max_connections_per_ip
                .unwrap_or(d.max_connections_per_ip),
            connection_rate_per_ip: self
                .connection_rate_per_ip
                .unwrap_or(d.connection_rate_per_ip),
            per_ip_exempt: self.per_ip_exempt.map_or(d.per_ip_exempt, |l| l.0),
            packet_timeout: self.packet_timeout.unwrap_or(d.packet_timeout),
            login_backoff: self.login_backoff.unwrap_or(d.login_backoff),
            login_backoff_max: self.login_backoff_max.unwrap_or(d.login_backoff_max),
            resume_grace: self.resume_grace.unwrap_or(d.resume_grace),
            replay_log_messages: self.replay_log_messages.unwrap_or(d.replay_log_messages),
            replay_log_bytes: self.replay_log_bytes.unwrap_or(d.replay_log_bytes),
            max_replay: self.max_replay.unwrap_or(d.max_replay),
            max_detached: self.max_detached.unwrap_or(d.max_detached),
            max_rooms: self.max_rooms.unwrap_or(d.max_rooms),
            max_rooms_per_user: self.max_rooms_per_user.unwrap_or(d.max_rooms_per_user),
            max_room_members: self.max_room_members.unwrap_or(d.max_room_members),
            max_watch: self.max_watch.unwrap_or(d.max_watch),
            operators: self.operators.map_or(d.operators, |l| l.0),
            auth: self.auth.unwrap_or(d.auth),
            registration: self.registration.unwrap_or(d.registration),
            jwt_secret: self.jwt_secret.or(d.jwt_secret),
            jwt_public_key: self.jwt_public_key.or(d.jwt_public_key),
            store: match (self.store, &self.database_url) {
                (Some(kind), _) => kind,
                (None, Some(_)) => StoreKind::Postgres,
                (None, None) => d.store,
            },
            data_dir: self.data_dir.unwrap_or(d.data_dir),
            database_url: self.database_url.or(d.database_url),
            durability: self.durability.unwrap_or(d.durability),
            offline_whispers: self.offline_whispers.unwrap_or(d.offline_whispers),
            retention_days: self.retention_days.unwrap_or(d.retention_days),
            retention_messages: self.retention_messages.unwrap_or(d.retention_messages),
            log_format: self.log_format.unwrap_or(d.log_format),
            log: self.log.unwrap_or(d.log),
        };
        config.validate()?;
        Ok(config)
    }
}

/// The resolved configuration the server runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Address to accept plaintext connections on (unless `tls_only`).
    pub listen: SocketAddr,
    /// Address to accept TLS connections on.
    pub tls_listen: Option<SocketAddr>,
    /// PEM certificate chain for TLS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    pub tls_key: Option<PathBuf>,
    /// Whether only the TLS listener is opened.
    pub tls_only: bool,
    /// Address of the Prometheus endpoint, if any.
    pub metrics_listen: Option<SocketAddr>,
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
    /// Quiet time after which a logged-in session hibernates (zero: never).
    pub hibernate_after: Duration,
    /// Time a graceful shutdown may spend flushing.
    pub shutdown_timeout: Duration,
    /// Chat messages per second per session (0: unlimited).
    pub message_rate: f64,
    /// Chat messages a session may burst above the rate.
    pub message_burst: f64,
    /// Bytes of chat text per second per session (0: unlimited).
    pub byte_rate: f64,
    /// Bytes of chat text a session may burst above the rate.
    pub byte_burst: f64,
    /// Refused requests tolerated before a session is disconnected for flooding.
    pub flood_strikes: u32,
    /// Connections open at once per IP address (0: unlimited).
    pub max_connections_per_ip: u32,
    /// New connections per second per IP address (0: unlimited).
    pub connection_rate_per_ip: f64,
    /// Networks exempt from the per-IP limits.
    pub per_ip_exempt: Vec<IpNet>,
    /// Longest time for one packet to arrive once started.
    pub packet_timeout: Duration,
    /// First login delay after a failure (0: no throttling).
    pub login_backoff: Duration,
    /// Longest login delay.
    pub login_backoff_max: Duration,
    /// Grace period of a detached resumable session (0: resume off).
    pub resume_grace: Duration,
    /// Notifications kept per resumable session for replay.
    pub replay_log_messages: usize,
    /// Bytes kept per resumable session for replay.
    pub replay_log_bytes: usize,
    /// Most notifications replayed by one resume. With storage on, also how many ids of
    /// messages evicted from its replay log a resumable session remembers, to fetch them from
    /// history.
    pub max_replay: usize,
    /// Most detached sessions at once.
    pub max_detached: usize,
    /// Most rooms at once.
    pub max_rooms: usize,
    /// Most rooms per user.
    pub max_rooms_per_user: usize,
    /// Most members per room.
    pub max_room_members: usize,
    /// Most watched names per session.
    pub max_watch: usize,
    /// Server operators' account names, folded.
    pub operators: Vec<String>,
    /// How logins are checked.
    pub auth: AuthMode,
    /// Whether clients may register accounts themselves.
    pub registration: bool,
    /// HS256 secret for token mode.
    pub jwt_secret: Option<String>,
    /// Public key file for token mode.
    pub jwt_public_key: Option<PathBuf>,
    /// Where accounts and history are kept.
    pub store: StoreKind,
    /// Directory of the SQLite database.
    pub data_dir: PathBuf,
    /// PostgreSQL URL.
    pub database_url: Option<String>,
    /// When messages are acknowledged relative to storing them.
    pub durability: Durability,
    /// What a whisper to an offline user does.
    pub offline_whispers: OfflineWhispers,
    /// Age limit of stored messages in days (0: none).
    pub retention_days: u32,
    /// Count limit of stored messages (0: none).
    pub retention_messages: u64,
    /// Log line format.
    pub log_format: LogFormat,
    /// Log filter directive.
    pub log: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7000)),
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
            tls_only: false,
            metrics_listen: None,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            node_id: 0,
            max_connections: 10_000,
            max_packet: DEFAULT_MAX_PACKET,
            max_text: DEFAULT_MAX_TEXT,
            send_queue_limit: 1024 * 1024,
            login_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
            hibernate_after: Duration::from_millis(20),
            shutdown_timeout: Duration::from_secs(5),
            message_rate: 20.0,
            message_burst: 40.0,
            byte_rate: 32_768.0,
            byte_burst: 131_072.0,
            flood_strikes: 50,
            max_connections_per_ip: 64,
            connection_rate_per_ip: 20.0,
            per_ip_exempt: vec![
                IpNet::V4(ipnet::Ipv4Net::new_assert(
                    std::net::Ipv4Addr::new(127, 0, 0, 0),
                    8,
                )),
                IpNet::V6(ipnet::Ipv6Net::new_assert(
                    std::net::Ipv6Addr::LOCALHOST,
                    128,
                )),
            ],
            packet_timeout: Duration::from_secs(10),
            login_backoff: Duration::from_millis(250),
            login_backoff_max: Duration::from_secs(8),
            resume_grace: Duration::from_secs(60),
            replay_log_messages: 1000,
            replay_log_bytes: 1024 * 1024,
            max_replay: 1000,
            max_detached: 10_000,
            max_rooms: 10_000,
            max_rooms_per_user: 50,
            max_room_members: 10_000,
            max_watch: 100,
            operators: Vec::new(),
            auth: AuthMode::Open,
            registration: true,
            jwt_secret: None,
            jwt_public_key: None,
            store: StoreKind::Sqlite,
            data_dir: PathBuf::from("suda-data"),
            database_url: None,
            durability: Durability::Strict,
            offline_whispers: OfflineWhispers::Reject,
            retention_days: 0,
            retention_messages: 0,
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
        if self.tls_listen.is_some() && (self.tls_cert.is_none() || self.tls_key.is_none()) {
            return invalid("tls_listen needs both tls_cert and tls_key".into());
        }
        if self.tls_only && self.tls_listen.is_none() {
            return invalid("tls_only needs tls_listen".into());
        }
        if self.workers == 0 || self.workers > 1024 {
            return invalid(format!("workers must be 1..=1024, not {}", self.workers));
        }
        if self.node_id > MAX_NODE_ID {
            return invalid(format!(
                "node_id must be 0..={MAX_NODE_ID}, not {}",
                self.node_id
            ));
        }
        if self.max_rooms == 0 || self.max_rooms_per_user == 0 || self.max_room_members == 0 {
            return invalid(
                "max_rooms, max_rooms_per_user and max_room_members must be at least 1".into(),
            );
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
        for (name, rate, burst) in [
            ("message", self.message_rate, self.message_burst),
            ("byte", self.byte_rate, self.byte_burst),
        ] {
            if !(rate >= 0.0 && rate.is_finite() && burst >= 1.0 && burst.is_finite()) {
                return invalid(format!(
                    "{name}_rate must be 0 (unlimited) or more and {name}_burst at least 1"
                ));
            }
        }
        if self.byte_rate > 0.0 && self.byte_burst < self.max_text as f64 {
            return invalid(format!(
                "byte_burst ({}) must be at least max_text ({}), or no long message could pass",
                self.byte_burst, self.max_text
            ));
        }
        if !(self.connection_rate_per_ip >= 0.0 && self.connection_rate_per_ip.is_finite()) {
            return invalid("connection_rate_per_ip must be 0 (unlimited) or more".into());
        }
        if self.replay_log_messages == 0 || self.replay_log_bytes == 0 || self.max_replay == 0 {
            return invalid(
                "replay_log_messages, replay_log_bytes and max_replay must be at least 1".into(),
            );
        }
        if self.store == StoreKind::Postgres && self.database_url.is_none() {
            return invalid("store = postgres needs database_url".into());
        }
        if self.store == StoreKind::None && self.auth == AuthMode::Registered {
            return invalid("auth = registered needs a store for the accounts".into());
        }
        if self.auth == AuthMode::Token
            && self.jwt_secret.is_none()
            && self.jwt_public_key.is_none()
        {
            return invalid("auth = token needs jwt_secret or jwt_public_key".into());
        }
        if self
            .jwt_secret
            .as_ref()
            .is_some_and(|secret| secret.len() < crate::auth::jwt::MIN_HS256_SECRET_LEN)
        {
            return invalid(format!(
                "jwt_secret must be at least {} bytes (RFC 7518 asks for 256 bits)",
                crate::auth::jwt::MIN_HS256_SECRET_LEN
            ));
        }
        if self.login_backoff > self.login_backoff_max {
            return invalid("login_backoff must not exceed login_backoff_max".into());
        }
        for (name, value) in [
            ("login_timeout", self.login_timeout),
            ("idle_timeout", self.idle_timeout),
            ("write_timeout", self.write_timeout),
            ("packet_timeout", self.packet_timeout),
        ] {
            if value.is_zero() {
                return invalid(format!("{name} must be more than zero"));
            }
        }
        Ok(())
    }
}

/// A list of networks: comma-separated CIDRs on the command line (`none` for an empty list), an
/// array of strings in the file. A bare address is a network of one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpNetList(pub Vec<IpNet>);

impl std::str::FromStr for IpNetList {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() || s.eq_ignore_ascii_case("none") {
            return Ok(Self(Vec::new()));
        }
        s.split(',')
            .map(|part| parse_net(part.trim()))
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

fn parse_net(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{s}` is not an IP network (e.g. 10.0.0.0/8) or address"))
}

impl<'de> Deserialize<'de> for IpNetList {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let items = Vec::<String>::deserialize(deserializer)?;
        items
            .iter()
            .map(|item| parse_net(item))
            .collect::<Result<_, _>>()
            .map(Self)
            .map_err(serde::de::Error::custom)
    }
}

/// A list of usernames: comma-separated on the command line (`none` for an empty list), an array
/// of strings in the file. Names are folded (ASCII lowercase), as usernames compare.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameList(pub Vec<String>);

impl std::str::FromStr for NameList {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() || s.eq_ignore_ascii_case("none") {
            return Ok(Self(Vec::new()));
        }
        s.split(',')
            .map(|name| parse_name(name.trim()))
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

fn parse_name(name: &str) -> Result<String, String> {
    if crate::auth::is_valid_username(name.as_bytes()) {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(format!("`{name}` is not a valid username"))
    }
}

impl<'de> Deserialize<'de> for NameList {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let items = Vec::<String>::deserialize(deserializer)?;
        items
            .iter()
            .map(|item| parse_name(item))
            .collect::<Result<_, _>>()
            .map(Self)
            .map_err(serde::de::Error::custom)
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
    fn network_lists_parse_from_flags_and_files() {
        let list: IpNetList = "10.0.0.0/8, 192.0.2.1,::1".parse().expect("valid");
        assert_eq!(list.0.len(), 3);
        assert!(list.0[1].contains(&"192.0.2.1".parse::<std::net::IpAddr>().expect("ip")));
        assert_eq!("none".parse::<IpNetList>(), Ok(IpNetList(vec![])));
        assert!("10.0.0.0/33".parse::<IpNetList>().is_err());
        let file: Settings = toml::from_str("per_ip_exempt = []").expect("toml");
        let config = file.resolve().expect("valid");
        assert!(config.per_ip_exempt.is_empty());
        let defaults = Settings::default().resolve().expect("valid");
        let loopback: std::net::IpAddr = "127.4.5.6".parse().expect("ip");
        assert!(defaults.per_ip_exempt.iter().any(|n| n.contains(&loopback)));
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
