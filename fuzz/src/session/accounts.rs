//! What the `session` target's server (no storage, no resume grace) answers to the requests of
//! protocol versions 1.1 and 1.2 other than `LOGOUT_REQ`: always a refusal, and the connection
//! stays open.

use suda_protocol::{Packet, PacketType, ResultCode, WireStr};

use super::valid_username;

/// For a request of the accounts, history or resume features: the response type, and the
/// refusals that apply on a server without storage and without resume (`docs/PROTOCOL.md` §9,
/// §10, §12). None of them may succeed there.
pub(crate) fn account_refusals(packet: &Packet, logged_in: bool) -> (PacketType, Vec<ResultCode>) {
    let mut refusals = vec![ResultCode::NOT_AVAILABLE];
    let password_ok = |p: &WireStr| (8..=128).contains(&p.len());
    let response = match packet {
        Packet::RegisterReq { username, password } => {
            refusals.push(ResultCode::REGISTRATION_CLOSED);
            if !valid_username(username.as_bytes()) {
                refusals.push(ResultCode::INVALID_USERNAME);
            }
            if !password_ok(password) {
                refusals.push(ResultCode::WEAK_PASSWORD);
            }
            PacketType::RegisterRes
        }
        Packet::ChangePasswordReq { new_password, .. } => {
            if !logged_in {
                refusals.push(ResultCode::NOT_AUTHENTICATED);
            }
            if !password_ok(new_password) {
                refusals.push(ResultCode::WEAK_PASSWORD);
            }
            PacketType::ChangePasswordRes
        }
        Packet::HistoryReq {
            channel,
            peer,
            limit,
            ..
        } => {
            if !logged_in {
                refusals.push(ResultCode::NOT_AUTHENTICATED);
            }
            if *channel > 1 || !(1..=100).contains(limit) {
                refusals.push(ResultCode::INVALID_MESSAGE);
            }
            if *channel == 1 && !valid_username(peer.as_bytes()) {
                refusals.push(ResultCode::USER_NOT_FOUND);
            }
            PacketType::HistoryRes
        }
        Packet::SessionTokenReq => {
            if !logged_in {
                refusals.push(ResultCode::NOT_AUTHENTICATED);
            }
            PacketType::SessionTokenRes
        }
        Packet::ResumeReq { .. } => {
            refusals.push(if logged_in {
                ResultCode::ALREADY_AUTHENTICATED
            } else {
                ResultCode::INVALID_TOKEN
            });
            PacketType::ResumeRes
        }
        other => panic!(
            "the session model does not know the client request {:?}: teach fuzz/src/session/",
            other.packet_type()
        ),
    };
    (response, refusals)
}

/// The type and result of a refusal-only response whose other fields are all empty or zero.
pub(crate) fn refusal_of(packet: &Packet) -> Option<(PacketType, ResultCode)> {
    let result = match packet {
        Packet::RegisterRes { result } | Packet::ChangePasswordRes { result } => *result,
        Packet::HistoryRes { result, count: 0 } => *result,
        Packet::SessionTokenRes {
            result,
            token,
            grace_ms: 0,
        } if token.is_empty() => *result,
        Packet::ResumeRes {
            result,
            session_id: 0,
            token,
            replayed: 0,
        } if token.is_empty() => *result,
        _ => return None,
    };
    Some((packet.packet_type(), result))
}
