//! Why a session's connection ends, and what the peer is told.

use std::fmt;
use std::io;

use bytes::BytesMut;
use suda_protocol::{DecodeError, ErrorCode, PacketType};

use crate::resume::Attach;
use crate::stats::CloseKind;

/// A `RESUME_REQ` that checked out, to be carried out by handing the connection over.
#[derive(Debug)]
pub(super) struct ResumeRequest {
    pub(super) token: String,
    pub(super) user: String,
    pub(super) last_message_id: u64,
    /// What the client sent after the `RESUME_REQ` in the same read.
    pub(super) pipelined: BytesMut,
}

/// Why a session's read loop ended.
#[derive(Debug)]
pub(super) enum CloseReason {
    PeerClosed,
    Io(io::Error),
    Tls(String),
    Malformed(DecodeError),
    Unexpected(PacketType),
    LoginTimeout,
    IdleTimeout,
    PacketTimeout,
    WriteTimeout,
    SlowConsumer,
    Flooding,
    Shutdown,
    /// `LOGOUT_REQ`: answered, then closed.
    Logout,
    /// This connection resumes another session: it is handed over, not closed.
    Resume(ResumeRequest),
    /// Another connection resumed this session while this one still looked alive.
    TakenOver(Box<Attach>),
    /// What the connection taken over by [`CloseReason::TakenOver`] is closed with.
    Replaced,
    /// A server operator kicked or banned the user: this `ERROR_NOTIFY`, and no resume.
    Moderated {
        code: ErrorCode,
        reason: String,
    },
}

impl CloseReason {
    /// The `ERROR_NOTIFY` that tells the peer, when there is still a peer to tell.
    pub(super) fn notice(&self) -> Option<(ErrorCode, String)> {
        Some(match self {
            Self::PeerClosed
            | Self::Io(_)
            | Self::Tls(_)
            | Self::Logout
            | Self::Resume(_)
            | Self::TakenOver(_) => return None,
            Self::Malformed(err) => (err.code(), err.to_string()),
            Self::Unexpected(ty) => (
                ErrorCode::UNEXPECTED_PACKET,
                format!("{} is sent by servers, not clients", ty.wire_name()),
            ),
            Self::LoginTimeout => (ErrorCode::LOGIN_TIMEOUT, "no login in time".into()),
            Self::IdleTimeout => (ErrorCode::IDLE_TIMEOUT, "idle for too long".into()),
            Self::PacketTimeout => (
                ErrorCode::PACKET_TIMEOUT,
                "a packet took too long to arrive".into(),
            ),
            Self::Flooding => (
                ErrorCode::FLOODING,
                "kept sending after being rate limited".into(),
            ),
            Self::WriteTimeout => (ErrorCode::WRITE_TIMEOUT, "not reading".into()),
            Self::SlowConsumer => (
                ErrorCode::SLOW_CONSUMER,
                "send queue limit exceeded: reading too slowly".into(),
            ),
            Self::Shutdown => (ErrorCode::SERVER_SHUTDOWN, "server shutting down".into()),
            Self::Moderated { code, reason } => (*code, reason.clone()),
            Self::Replaced => (
                ErrorCode::SESSION_TAKEN_OVER,
                "the session was resumed on another connection".into(),
            ),
        })
    }

    /// Whether the close is polite (flush, then half-close and linger) even without a notice.
    pub(super) fn lingers(&self) -> bool {
        self.notice().is_some() || matches!(self, Self::Tls(_) | Self::Logout)
    }

    /// Whether a resumable session survives this as *detached*: the network or the client's
    /// reading failed, not the client's behaviour.
    pub(super) fn is_drop(&self) -> bool {
        matches!(
            self,
            Self::PeerClosed
                | Self::Io(_)
                | Self::Tls(_)
                | Self::IdleTimeout
                | Self::PacketTimeout
                | Self::WriteTimeout
                | Self::SlowConsumer
        )
    }

    pub(super) fn kind(&self) -> CloseKind {
        match self {
            Self::PeerClosed => CloseKind::PeerClosed,
            Self::Io(_) => CloseKind::Io,
            Self::Tls(_) => CloseKind::Tls,
            Self::Malformed(_) | Self::Unexpected(_) => CloseKind::ProtocolError,
            Self::LoginTimeout => CloseKind::LoginTimeout,
            Self::IdleTimeout => CloseKind::IdleTimeout,
            Self::PacketTimeout => CloseKind::PacketTimeout,
            Self::WriteTimeout => CloseKind::WriteTimeout,
            Self::SlowConsumer => CloseKind::SlowConsumer,
            Self::Flooding => CloseKind::Flooding,
            Self::Shutdown => CloseKind::Shutdown,
            Self::Logout => CloseKind::Logout,
            Self::Resume(_) | Self::TakenOver(_) | Self::Replaced => CloseKind::Resumed,
            Self::Moderated { .. } => CloseKind::Moderated,
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PeerClosed => f.write_str("peer closed the connection"),
            Self::Io(err) => write!(f, "i/o error: {err}"),
            Self::Tls(err) => write!(f, "TLS error: {err}"),
            Self::Malformed(err) => write!(f, "protocol error: {err}"),
            Self::Unexpected(ty) => write!(f, "protocol error: unexpected {}", ty.wire_name()),
            Self::LoginTimeout => f.write_str("login timeout"),
            Self::IdleTimeout => f.write_str("idle timeout"),
            Self::PacketTimeout => f.write_str("packet timeout: a packet arrived too slowly"),
            Self::Flooding => f.write_str("flooding: kept sending after being rate limited"),
            Self::WriteTimeout => f.write_str("write timeout: peer stopped reading"),
            Self::SlowConsumer => f.write_str("slow consumer: send queue limit exceeded"),
            Self::Shutdown => f.write_str("server shutdown"),
            Self::Logout => f.write_str("logged out"),
            Self::Resume(_) => f.write_str("handed over to resume a session"),
            Self::TakenOver(_) | Self::Replaced => {
                f.write_str("session resumed on another connection")
            }
            Self::Moderated { code, reason } => write!(f, "{code}: {reason}"),
        }
    }
}
