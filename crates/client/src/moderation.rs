//! Server moderation (protocol 1.3): what a server operator can do, what the target is told, and
//! the [`Client`] requests.

use std::net::IpAddr;
use std::time::Duration;

use suda_protocol::codes::moderation_action as action;
use suda_protocol::{Packet, WireStr};

use crate::client::Client;
use crate::error::ClientError;
use crate::rooms::duration_secs;

/// What a server operator does with [`Client::moderate`] (`MODERATE_REQ`). Reasons are logged
/// and shown to the target; a `duration` of `None` means for ever (until lifted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModerationAction {
    /// End `user`'s session at once, without resume; they get
    /// [`ErrorCode::KICKED`](crate::ErrorCode::KICKED) with the reason.
    Kick {
        /// The user, who must be online.
        user: String,
        /// Why.
        reason: String,
    },
    /// Keep `user` from logging in, and end their sessions.
    BanUser {
        /// The user.
        user: String,
        /// How long; rounded up to whole seconds.
        duration: Option<Duration>,
        /// Why.
        reason: String,
    },
    /// Keep connections from `addr` from logging in, and end their sessions.
    BanIp {
        /// The address.
        addr: IpAddr,
        /// How long; rounded up to whole seconds.
        duration: Option<Duration>,
        /// Why.
        reason: String,
    },
    /// Lift a user ban.
    UnbanUser {
        /// The user.
        user: String,
        /// Why.
        reason: String,
    },
    /// Lift an address ban.
    UnbanIp {
        /// The address.
        addr: IpAddr,
        /// Why.
        reason: String,
    },
    /// Keep `user` from broadcasting, whispering and talking in rooms.
    Mute {
        /// The user.
        user: String,
        /// How long; rounded up to whole seconds.
        duration: Option<Duration>,
        /// Why.
        reason: String,
    },
    /// Lift a mute.
    Unmute {
        /// The user.
        user: String,
        /// Why.
        reason: String,
    },
}

impl ModerationAction {
    /// `action, target, duration_s, reason` of the request.
    fn to_wire(&self) -> (u8, String, u32, &str) {
        match self {
            Self::Kick { user, reason } => (action::KICK, user.clone(), 0, reason),
            Self::BanUser {
                user,
                duration,
                reason,
            } => (
                action::BAN_USER,
                user.clone(),
                duration_secs(*duration),
                reason,
            ),
            Self::BanIp {
                addr,
                duration,
                reason,
            } => (
                action::BAN_IP,
                addr.to_string(),
                duration_secs(*duration),
                reason,
            ),
            Self::UnbanUser { user, reason } => (action::UNBAN_USER, user.clone(), 0, reason),
            Self::UnbanIp { addr, reason } => (action::UNBAN_IP, addr.to_string(), 0, reason),
            Self::Mute {
                user,
                duration,
                reason,
            } => (action::MUTE, user.clone(), duration_secs(*duration), reason),
            Self::Unmute { user, reason } => (action::UNMUTE, user.clone(), 0, reason),
        }
    }
}

/// What a server operator did to this user ([`ModerationNotice::kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModerationKind {
    /// Kicked (the connection ends next).
    Kicked,
    /// Banned (the connection ends next).
    Banned,
    /// Muted: broadcasts, whispers and room messages are refused with `MUTED` until
    /// [`expires_at_ms`](ModerationNotice::expires_at_ms).
    Muted,
    /// No longer muted.
    Unmuted,
    /// An action number this crate does not know.
    Other(u8),
}

impl ModerationKind {
    fn from_wire(action: u8) -> Self {
        match action {
            action::KICK => Self::Kicked,
            action::BAN_USER => Self::Banned,
            action::MUTE => Self::Muted,
            action::UNMUTE => Self::Unmuted,
            other => Self::Other(other),
        }
    }
}

/// A server operator acted on this user (`MODERATION_NOTIFY`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModerationNotice {
    /// What was done.
    pub kind: ModerationKind,
    /// The operator.
    pub actor: String,
    /// When a ban or mute ends, Unix milliseconds; `None` for never.
    pub expires_at_ms: Option<u64>,
    /// Why.
    pub reason: String,
}

impl ModerationNotice {
    pub(crate) fn from_wire(
        action: u8,
        actor: &WireStr,
        expires_at_ms: u64,
        reason: &WireStr,
    ) -> Self {
        Self {
            kind: ModerationKind::from_wire(action),
            actor: actor.to_string_lossy().into_owned(),
            expires_at_ms: (expires_at_ms != 0).then_some(expires_at_ms),
            reason: reason.to_string_lossy().into_owned(),
        }
    }
}

impl Client {
    /// Acts as a server operator (an account named in the server's `operators`, logged in with
    /// its password or a token).
    ///
    /// # Errors
    /// [`ClientError::Rejected`] with `request: PacketType::ModerateReq` and e.g.
    /// `NOT_PERMITTED` (not an operator, or a target who is one), `USER_NOT_FOUND` (kicking
    /// someone offline, lifting a ban there is none of) or `INVALID_REQUEST`.
    pub async fn moderate(&self, action: &ModerationAction) -> Result<(), ClientError> {
        let (action, target, duration_s, reason) = action.to_wire();
        self.checked(Packet::ModerateReq {
            action,
            target: target.into(),
            duration_s,
            reason: reason.into(),
        })
        .await
        .map(drop)
    }

    /// Sends a notice to every logged-in session, this one included, as a server operator;
    /// returns its message id. Sessions that speak protocol 1.3 get
    /// [`Event::SystemNotice`](crate::Event::SystemNotice), older ones a broadcast from
    /// `*notice*`.
    ///
    /// # Errors
    /// [`ClientError::Rejected`] with `request: PacketType::SystemNoticeReq` and e.g.
    /// `NOT_PERMITTED` or `INVALID_MESSAGE`.
    pub async fn system_notice(&self, text: &str) -> Result<u64, ClientError> {
        self.checked(Packet::SystemNoticeReq { text: text.into() })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_map_to_their_numbers() {
        let ban = ModerationAction::BanIp {
            addr: "::1".parse().expect("address"),
            duration: Some(Duration::from_secs(90)),
            reason: "spam".into(),
        };
        assert_eq!(ban.to_wire(), (3, "::1".to_owned(), 90, "spam"));
        let mute = ModerationAction::Mute {
            user: "bob".into(),
            duration: None,
            reason: String::new(),
        };
        assert_eq!(mute.to_wire(), (6, "bob".to_owned(), 0, ""));
        let notice = ModerationNotice::from_wire(9, &"op".into(), 0, &"".into());
        assert_eq!(
            (notice.kind, notice.expires_at_ms),
            (ModerationKind::Other(9), None)
        );
    }
}
