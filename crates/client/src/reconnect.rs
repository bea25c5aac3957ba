//! When and how often a client tries to get its connection back: [`ReconnectPolicy`].
//!
//! Pure arithmetic, no clock and no randomness of its own (the caller passes a random number),
//! so the schedule is tested without waiting.

use std::time::Duration;

use suda_protocol::ErrorCode;

use crate::error::ClientError;

/// How a client reconnects after losing its connection; turned on with
/// [`ClientConfig::with_reconnect`](crate::ClientConfig::with_reconnect).
///
/// Attempt `n` (from 1) waits `initial_backoff × multiplierⁿ⁻¹`, at most `max_backoff`, with
/// [`jitter`](Self::jitter) applied, before connecting. The count starts again after every
/// successful reconnect. The defaults are 100 ms, ×2, at most 10 s, full jitter, and no limit on
/// the number of attempts.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ReconnectPolicy {
    /// Wait before the first attempt (before jitter). Default 100 ms.
    pub initial_backoff: Duration,
    /// Longest wait between attempts, jitter included. Default 10 s.
    pub max_backoff: Duration,
    /// Factor the wait grows by after each failed attempt. Default 2; values below 1 (or not a
    /// number) count as 1, a constant wait.
    pub multiplier: f64,
    /// How the wait is randomised, so that many clients cut off together (a server restart) do
    /// not all come back at the same instant. Default [`Jitter::Full`].
    pub jitter: Jitter,
    /// Give up after this many failed attempts in a row; `None` (the default) never gives up
    /// (until [`Client::close`](crate::Client::close)). `Some(0)` turns reconnecting off.
    pub max_attempts: Option<u32>,
}

/// How the wait before a reconnect attempt is randomised; see [`ReconnectPolicy::jitter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Jitter {
    /// Exactly the computed wait; for tests.
    None,
    /// Uniformly random between zero and the computed wait ("full jitter"): spreads a crowd of
    /// clients the most.
    #[default]
    Full,
    /// Uniformly random within ±50 % of the computed wait, but never above `max_backoff`: keeps
    /// a minimum pause between attempts.
    Half,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            multiplier: 2.0,
            jitter: Jitter::Full,
            max_attempts: None,
        }
    }
}

impl ReconnectPolicy {
    /// The defaults (see [`ReconnectPolicy`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`initial_backoff`](Self::initial_backoff).
    pub fn with_initial_backoff(mut self, wait: Duration) -> Self {
        self.initial_backoff = wait;
        self
    }

    /// Sets [`max_backoff`](Self::max_backoff).
    pub fn with_max_backoff(mut self, wait: Duration) -> Self {
        self.max_backoff = wait;
        self
    }

    /// Sets [`multiplier`](Self::multiplier).
    pub fn with_multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// Sets [`jitter`](Self::jitter).
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets [`max_attempts`](Self::max_attempts).
    pub fn with_max_attempts(mut self, attempts: Option<u32>) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// The wait before attempt `attempt` (counted from 1) without jitter:
    /// `initial_backoff × multiplier^(attempt-1)`, at most `max_backoff`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let multiplier = if self.multiplier >= 1.0 {
            self.multiplier
        } else {
            1.0
        };
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.initial_backoff.as_secs_f64() * multiplier.powi(exponent);
        // Infinite or out of range: the cap applies anyway.
        Duration::try_from_secs_f64(secs)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }

    /// The wait before attempt `attempt`, with jitter drawn from `random`, a number in `[0, 1)`.
    pub(crate) fn delay(&self, attempt: u32, random: f64) -> Duration {
        let base = self.backoff(attempt);
        let random = if random.is_finite() {
            random.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let factor = match self.jitter {
            Jitter::None => return base,
            Jitter::Full => random,
            Jitter::Half => 0.5 + random,
        };
        base.mul_f64(factor).min(self.max_backoff)
    }
}

/// Whether a connection that ended (or an attempt that failed) this way is worth trying again:
/// the network or the server went away, as opposed to a protocol violation, a refusal that will
/// not change, or this client's own doing.
pub(crate) fn worth_retrying(reason: &ClientError) -> bool {
    match reason {
        ClientError::Eof | ClientError::Io(_) | ClientError::Timeout { .. } => true,
        // 0x01xx: a limit or policy ended the connection; 0x02xx: the server is going away.
        // Not a kick for flooding or by an operator, nor a ban (coming straight back would
        // dodge them), nor a session another connection took over with the token (two clients
        // would take it from each other).
        ClientError::ServerClosed { code, .. } => {
            (0x0100..=0x02FF).contains(&code.0)
                && ![
                    ErrorCode::FLOODING,
                    ErrorCode::SESSION_TAKEN_OVER,
                    ErrorCode::KICKED,
                    ErrorCode::BANNED,
                ]
                .contains(code)
        }
        // A handshake cut short or timed out may work next time; a certificate that is not
        // trusted (any more) or a server that no longer speaks TLS will not.
        #[cfg(feature = "tls")]
        ClientError::Tls(error) => matches!(
            error.kind(),
            crate::TlsErrorKind::Timeout | crate::TlsErrorKind::Handshake
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProtocolError;
    use suda_protocol::PacketType;

    #[test]
    fn only_a_network_or_server_going_away_is_worth_retrying() {
        let closed = |code| ClientError::ServerClosed {
            code,
            reason: String::new(),
        };
        assert!(worth_retrying(&ClientError::Eof));
        assert!(worth_retrying(&ClientError::from(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused
        ))));
        assert!(worth_retrying(&ClientError::Timeout {
            request: PacketType::Ping,
            after: Duration::from_secs(1)
        }));
        assert!(worth_retrying(&closed(ErrorCode::SERVER_SHUTDOWN)));
        assert!(worth_retrying(&closed(ErrorCode::IDLE_TIMEOUT)));
        assert!(worth_retrying(&closed(ErrorCode::SLOW_CONSUMER)));
        assert!(!worth_retrying(&closed(ErrorCode::FLOODING)));
        assert!(!worth_retrying(&closed(ErrorCode::SESSION_TAKEN_OVER)));
        assert!(!worth_retrying(&closed(ErrorCode::KICKED)));
        assert!(!worth_retrying(&closed(ErrorCode::BANNED)));
        assert!(!worth_retrying(&closed(ErrorCode::MALFORMED_BODY)));
        assert!(!worth_retrying(&closed(ErrorCode(0x0300))));
        assert!(!worth_retrying(&ClientError::Closed));
        assert!(!worth_retrying(&ClientError::Protocol(
            ProtocolError::UnsolicitedResponse(PacketType::Pong)
        )));
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_wait_grows_by_the_multiplier_up_to_the_cap() {
        let policy = ReconnectPolicy::new().with_jitter(Jitter::None);
        let waits: Vec<Duration> = (1..=9).map(|n| policy.delay(n, 0.7)).collect();
        assert_eq!(
            waits,
            [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000].map(|ms| ms * MS)
        );
        // Huge attempt numbers neither overflow nor panic.
        assert_eq!(policy.backoff(u32::MAX), 10_000 * MS);
        assert_eq!(policy.backoff(0), 100 * MS);
        let constant = policy.clone().with_multiplier(0.5);
        assert_eq!(constant.backoff(5), 100 * MS);
        assert_eq!(constant.with_multiplier(f64::NAN).backoff(5), 100 * MS);
    }

    #[test]
    fn jitter_stays_in_its_range() {
        let full = ReconnectPolicy::new();
        assert_eq!(full.delay(2, 0.0), Duration::ZERO);
        assert_eq!(full.delay(2, 0.5), 100 * MS);
        assert!(full.delay(2, 0.999_999) <= 200 * MS);

        let half = ReconnectPolicy::new().with_jitter(Jitter::Half);
        assert_eq!(half.delay(2, 0.0), 100 * MS);
        assert_eq!(half.delay(2, 0.5), 200 * MS);
        assert!(half.delay(2, 0.999_999) <= 300 * MS);
        // Never above the cap, even at +50 %.
        assert_eq!(half.delay(30, 0.999), 10_000 * MS);
        // A bad random number cannot panic `mul_f64`.
        assert_eq!(half.delay(2, f64::NAN), 100 * MS);
        assert_eq!(full.delay(2, -3.0), Duration::ZERO);
    }
}
