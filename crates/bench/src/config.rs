//! What to run: the target server, the scenario and its parameters, and run-wide limits.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::time::Duration;

use crate::BenchError;
use crate::payload;

/// Most rooms a run may have; room names (`suda-bench.room.<r>`) stay well inside suda's
/// 32-byte limit, and this is already far past the server's default room limit.
pub const MAX_ROOMS: usize = 1_000_000;

/// A server to load, with the protocol it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A suda server, `suda://HOST:PORT`.
    Suda(SocketAddr),
    /// A Redis server used through pub/sub, `redis://HOST:PORT`.
    Redis(SocketAddr),
    /// A NATS server, `nats://HOST:PORT`.
    Nats(SocketAddr),
}

impl Target {
    /// The server's address.
    pub fn addr(self) -> SocketAddr {
        match self {
            Self::Suda(addr) | Self::Redis(addr) | Self::Nats(addr) => addr,
        }
    }
}

impl FromStr for Target {
    type Err = BenchError;

    /// Parses `SCHEME://HOST:PORT`; a bare `HOST:PORT` means suda.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| BenchError::Config(format!("target {s:?}: {why}"));
        let (scheme, rest) = s.split_once("://").unwrap_or(("suda", s));
        let addr = rest
            .trim_end_matches('/')
            .to_socket_addrs()
            .map_err(|err| bad(&err.to_string()))?
            .next()
            .ok_or_else(|| bad("the host has no address"))?;
        match scheme {
            "suda" => Ok(Self::Suda(addr)),
            "redis" => Ok(Self::Redis(addr)),
            "nats" => Ok(Self::Nats(addr)),
            _ => Err(bad("the scheme must be suda, redis or nats")),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Suda(addr) => write!(f, "suda://{addr}"),
            Self::Redis(addr) => write!(f, "redis://{addr}"),
            Self::Nats(addr) => write!(f, "nats://{addr}"),
        }
    }
}

/// Message traffic: who sends how much, how fast.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Traffic {
    /// Simulated clients, all receiving.
    pub clients: usize,
    /// Clients that send (fan-out only; every client sends whispers).
    pub senders: usize,
    /// Messages each sender sends.
    pub messages: u64,
    /// Payload bytes per message, at least [`payload::HEADER_LEN`].
    pub size: usize,
    /// Messages a sender may have unacknowledged at once.
    pub window: u32,
    /// Aggregate messages per second over all senders; `None` sends as fast as the window allows.
    pub rate: Option<f64>,
}

impl Traffic {
    /// The project's target load for fan-out: 1000 clients, 10 senders of 200 × 64-byte messages.
    pub const FANOUT_DEFAULT: Self = Self {
        clients: 1000,
        senders: 10,
        messages: 200,
        size: 64,
        window: 64,
        rate: None,
    };

    /// Default rooms load: 10 rooms of 100 members, 2 senders per room of 200 × 64-byte messages.
    /// `clients` and `senders` count over all rooms.
    pub const ROOMS_DEFAULT: Self = Self {
        clients: 10 * 100,
        senders: 10 * 2,
        messages: 200,
        size: 64,
        window: 64,
        rate: None,
    };

    /// Default whisper load: 1000 clients each whispering 50 messages.
    pub const WHISPER_DEFAULT: Self = Self {
        clients: 1000,
        senders: 1000,
        messages: 50,
        size: 64,
        window: 64,
        rate: None,
    };
}

/// What the run does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scenario {
    /// Senders broadcast; every message must reach every other client.
    Fanout(Traffic),
    /// Every client whispers to random others; every message must reach its one recipient.
    /// `senders` is ignored (all clients send).
    Whisper(Traffic),
    /// `rooms` rooms of equal size; senders chat in their own room, and every message must reach
    /// the other members of that room and nobody else. `traffic.clients` and `traffic.senders`
    /// count over all rooms and are multiples of `rooms`.
    Rooms {
        /// Rooms.
        rooms: usize,
        /// Clients and senders over all rooms, and what each sender sends.
        traffic: Traffic,
    },
    /// Clients connect and log in as fast as they can, stay a while, then leave.
    Connect {
        /// Clients.
        clients: usize,
        /// How long to keep them connected once all are in.
        hold: Duration,
    },
    /// Clients log in to accounts with passwords, which the server verifies against their
    /// deliberately slow hashes: logins per second with real hashing. The accounts are
    /// registered first where missing (suda only; not part of the timed logins).
    Login {
        /// Clients, one account each.
        clients: usize,
    },
}

impl Scenario {
    /// The scenario's name as reports print it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Fanout(_) => "fanout",
            Self::Whisper(_) => "whisper",
            Self::Rooms { .. } => "rooms",
            Self::Connect { .. } => "connect",
            Self::Login { .. } => "login",
        }
    }

    /// Simulated clients.
    pub fn clients(&self) -> usize {
        match self {
            Self::Fanout(t) | Self::Whisper(t) | Self::Rooms { traffic: t, .. } => t.clients,
            Self::Connect { clients, .. } | Self::Login { clients } => *clients,
        }
    }

    /// Clients that send.
    pub fn senders(&self) -> usize {
        match self {
            Self::Fanout(t) | Self::Rooms { traffic: t, .. } => t.senders,
            Self::Whisper(t) => t.clients,
            Self::Connect { .. } | Self::Login { .. } => 0,
        }
    }

    /// Deliveries a perfect server makes: a broadcast reaches everyone but its sender, a room
    /// message every member of its room but its sender.
    pub fn expected_deliveries(&self) -> u64 {
        match self {
            Self::Fanout(t) => t.senders as u64 * t.messages * (t.clients as u64).saturating_sub(1),
            Self::Rooms { traffic: t, .. } => {
                t.senders as u64 * t.messages * (self.members_per_room() as u64).saturating_sub(1)
            }
            Self::Whisper(t) => t.clients as u64 * t.messages,
            Self::Connect { .. } | Self::Login { .. } => 0,
        }
    }

    /// Rooms, 0 when the scenario has none.
    pub fn rooms(&self) -> usize {
        match self {
            Self::Rooms { rooms, .. } => *rooms,
            _ => 0,
        }
    }

    /// Members of each room, 0 when the scenario has no rooms.
    pub fn members_per_room(&self) -> usize {
        match self {
            Self::Rooms { rooms, traffic } => traffic.clients.checked_div(*rooms).unwrap_or(0),
            _ => 0,
        }
    }

    /// The traffic parameters, if this scenario sends messages.
    pub fn traffic(&self) -> Option<Traffic> {
        match self {
            Self::Fanout(t) | Self::Rooms { traffic: t, .. } => Some(*t),
            Self::Whisper(t) => Some(Traffic {
                senders: t.clients,
                ..*t
            }),
            Self::Connect { .. } | Self::Login { .. } => None,
        }
    }

    /// How long sessions stay open once all are in: `connect`'s `--hold`, none otherwise.
    pub fn hold(&self) -> Duration {
        match self {
            Self::Connect { hold, .. } => *hold,
            _ => Duration::ZERO,
        }
    }

    /// Whether the scenario only opens sessions (`connect`, `login`): it measures logins, not
    /// deliveries.
    pub fn logins_only(&self) -> bool {
        matches!(self, Self::Connect { .. } | Self::Login { .. })
    }

    /// The prefix of client names unless one is given: accounts get one of their own, so that
    /// other scenarios' guests (whose logins the server does not hash) never meet a name that
    /// has an account.
    pub fn default_name_prefix(&self) -> &'static str {
        match self {
            Self::Login { .. } => "acct",
            _ => "b",
        }
    }
}

/// A whole run's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchConfig {
    /// The server to load.
    pub target: Target,
    /// What to do to it.
    pub scenario: Scenario,
    /// Hard limit on the whole run; what was measured until then is reported, with loss.
    pub timeout: Duration,
    /// Once every sender has finished, how long deliveries may stall before the missing ones
    /// are written off as lost.
    pub drain: Duration,
    /// The server's process id, to measure its CPU time and memory.
    pub server_pid: Option<u32>,
    /// Loopback source addresses to spread connections over (127.0.0.1 up); 0 lets the kernel
    /// choose.
    pub source_addrs: u8,
    /// Most connections being opened at once.
    pub connect_concurrency: usize,
    /// How often each suda connection pings, so the server's idle timeout never fires.
    pub keepalive: Duration,
    /// Client names are this prefix and a 5-digit number: `b00001`, `b00002`, ….
    pub name_prefix: String,
    /// Seed for whisper recipients, so runs are repeatable.
    pub seed: u64,
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

impl BenchConfig {
    /// A configuration with default limits.
    pub fn new(target: Target, scenario: Scenario) -> Self {
        Self {
            target,
            scenario,
            timeout: Duration::from_secs(120),
            drain: Duration::from_secs(2),
            server_pid: None,
            source_addrs: 8,
            connect_concurrency: 500,
            keepalive: Duration::from_secs(20),
            name_prefix: scenario.default_name_prefix().to_owned(),
            seed: 1,
            progress: false,
        }
    }

    /// Refuses settings that cannot make a meaningful run.
    pub fn validate(&self) -> Result<(), BenchError> {
        let bad = |why: String| Err(BenchError::Config(why));
        if self.scenario.clients() == 0 {
            return bad("at least one client is needed".into());
        }
        if let Scenario::Rooms { rooms, traffic } = self.scenario {
            // Equal rooms keep the expected count a simple product and every room comparable.
            if rooms == 0 || traffic.clients % rooms != 0 || traffic.senders % rooms != 0 {
                return bad(format!(
                    "{} clients and {} senders do not divide evenly into {rooms} rooms",
                    traffic.clients, traffic.senders
                ));
            }
            if traffic.clients / rooms < 2 {
                return bad("a room needs at least two members".into());
            }
            if traffic.senders > traffic.clients {
                return bad("more senders per room than members".into());
            }
            if rooms > MAX_ROOMS {
                return bad(format!("at most {MAX_ROOMS} rooms"));
            }
        }
        if let Some(t) = self.scenario.traffic() {
            if t.clients < 2 {
                return bad("messages need at least two clients".into());
            }
            if t.senders == 0 || t.senders > t.clients {
                return bad(format!("senders must be 1..={}", t.clients));
            }
            if t.size < payload::HEADER_LEN || t.size > usize::from(u16::MAX) - 512 {
                return bad(format!(
                    "size must be {}..={} bytes: each message carries a {}-byte stamp",
                    payload::HEADER_LEN,
                    usize::from(u16::MAX) - 512,
                    payload::HEADER_LEN
                ));
            }
            if t.window == 0 {
                return bad("window must be at least 1".into());
            }
            if t.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
                return bad("rate must be a positive number".into());
            }
        }
        if self.source_addrs > 254 {
            return bad("at most 254 source addresses (127.0.0.1-254)".into());
        }
        if self.connect_concurrency == 0 {
            return bad("connect concurrency must be at least 1".into());
        }
        if self.timeout.is_zero() {
            return bad("timeout must be positive".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_with_and_without_scheme() {
        let addr: SocketAddr = "127.0.0.1:7000".parse().expect("addr");
        assert_eq!(
            "suda://127.0.0.1:7000".parse::<Target>().ok(),
            Some(Target::Suda(addr))
        );
        assert_eq!(
            "127.0.0.1:7000".parse::<Target>().ok(),
            Some(Target::Suda(addr))
        );
        assert_eq!(
            "redis://127.0.0.1:7000/".parse::<Target>().ok(),
            Some(Target::Redis(addr))
        );
        assert_eq!(
            "nats://127.0.0.1:7000".parse::<Target>().ok(),
            Some(Target::Nats(addr))
        );
        assert!("http://127.0.0.1:7000".parse::<Target>().is_err());
        assert!("suda://127.0.0.1".parse::<Target>().is_err());
        assert_eq!(Target::Nats(addr).to_string(), "nats://127.0.0.1:7000");
    }

    #[test]
    fn expected_deliveries_exclude_the_sender() {
        assert_eq!(
            Scenario::Fanout(Traffic::FANOUT_DEFAULT).expected_deliveries(),
            10 * 200 * 999
        );
        assert_eq!(
            Scenario::Whisper(Traffic::WHISPER_DEFAULT).expected_deliveries(),
            1000 * 50
        );
    }

    #[test]
    fn room_messages_reach_the_other_members_of_their_room_only() {
        let scenario = Scenario::Rooms {
            rooms: 10,
            traffic: Traffic::ROOMS_DEFAULT,
        };
        assert_eq!(scenario.members_per_room(), 100);
        assert_eq!(scenario.senders(), 20);
        assert_eq!(scenario.expected_deliveries(), 10 * 2 * 200 * 99);
        let one_big = Scenario::Rooms {
            rooms: 1,
            traffic: Traffic::FANOUT_DEFAULT,
        };
        assert_eq!(
            one_big.expected_deliveries(),
            Scenario::Fanout(Traffic::FANOUT_DEFAULT).expected_deliveries()
        );
    }

    #[test]
    fn uneven_or_tiny_rooms_are_refused() {
        let target: Target = "127.0.0.1:1".parse().expect("target");
        let rooms = |rooms: usize, clients: usize, senders: usize| {
            let traffic = Traffic {
                clients,
                senders,
                ..Traffic::ROOMS_DEFAULT
            };
            BenchConfig::new(target, Scenario::Rooms { rooms, traffic }).validate()
        };
        assert!(rooms(10, 1000, 20).is_ok());
        assert!(rooms(1, 2, 2).is_ok());
        assert!(rooms(0, 1000, 20).is_err());
        assert!(rooms(10, 1005, 20).is_err());
        assert!(rooms(10, 1000, 25).is_err());
        assert!(rooms(10, 10, 10).is_err(), "rooms of one member");
    }

    #[test]
    fn nonsense_is_refused() {
        let target: Target = "127.0.0.1:1".parse().expect("target");
        let with = |tweak: fn(&mut Traffic)| {
            let mut traffic = Traffic::FANOUT_DEFAULT;
            tweak(&mut traffic);
            BenchConfig::new(target, Scenario::Fanout(traffic)).validate()
        };
        assert!(with(|_| {}).is_ok());
        assert!(with(|t| t.size = 10).is_err());
        assert!(with(|t| t.senders = 2000).is_err());
        assert!(with(|t| t.window = 0).is_err());
        assert!(with(|t| t.rate = Some(-1.0)).is_err());
        assert!(with(|t| t.clients = 1).is_err());
    }
}
