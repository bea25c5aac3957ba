//! The requests of one connection that wait for their responses, oldest first.
//!
//! The server answers a connection's requests in the order it received them, so pairing is a
//! FIFO: each response belongs to the oldest pending request, and must be of the type that
//! request expects. Nothing here does I/O or reads a clock, so it is tested on its own.

use std::collections::VecDeque;

use suda_protocol::{Packet, PacketType, ResultCode, WireStr};
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::error::{ClientError, ProtocolError};
use crate::event::{MessageKind, StoredMessage};
use crate::presence::{Presence, UserEntry};
use crate::rooms::RoomInfo;

/// Where the answer to one request goes.
pub(crate) type Reply = oneshot::Sender<Result<Answer, ClientError>>;

/// A response reduced to what a caller needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    /// The response's result; `OK` for a `PONG`.
    pub(crate) result: ResultCode,
    /// Session id, message id, or the echoed ping nonce.
    pub(crate) value: u64,
    /// What else the response (and the items after it) carried.
    pub(crate) payload: Payload,
}

impl Answer {
    fn new(result: ResultCode, value: u64) -> Self {
        Self::with(result, value, Payload::None)
    }

    fn with(result: ResultCode, value: u64, payload: Payload) -> Self {
        Self {
            result,
            value,
            payload,
        }
    }
}

/// The content of a response beyond its result and id. Each request type always gets the same
/// variant (an empty list when no items follow), so a caller can rely on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Payload {
    /// Nothing beyond the result.
    None,
    /// The `HISTORY_ITEM`s after a `HISTORY_RES`.
    History(Vec<StoredMessage>),
    /// The `ROOM_ITEM`s after a `LIST_ROOMS_RES`.
    Rooms(Vec<RoomInfo>),
    /// The `USER_ITEM`s after a `ROOM_MEMBERS_RES` or `USER_LIST_RES`.
    Users(Vec<UserEntry>),
    /// A `JOIN_ROOM_RES`'s room.
    Room(RoomInfo),
    /// A `CREATE_ROOM_RES`'s room name.
    Name(String),
    /// A `WATCH_RES`'s presence.
    Presence(Presence),
}

/// The error for a payload that is not the one `request`'s response always carries: only
/// reachable through a bug in this module, reported rather than panicking.
pub(crate) fn mismatch(request: PacketType) -> ClientError {
    let expected = response_type(request);
    ProtocolError::UnexpectedResponse {
        expected,
        got: expected,
    }
    .into()
}

/// Items collected for a paged response whose header has come.
struct Collecting {
    result: ResultCode,
    /// How many items the header announced.
    expected: usize,
    /// The items so far, in the variant of the request.
    items: Payload,
}

impl Collecting {
    fn len(&self) -> usize {
        match &self.items {
            Payload::History(items) => items.len(),
            Payload::Rooms(items) => items.len(),
            Payload::Users(items) => items.len(),
            _ => 0,
        }
    }
}

/// What the connection task must act on after a response, beyond answering its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Completed {
    /// Nothing more.
    Answered,
    /// A `LOGIN_REQ` with these credentials succeeded.
    LoggedIn {
        /// As sent.
        username: WireStr,
        /// As sent.
        password: WireStr,
    },
    /// A `SESSION_TOKEN_RES` arrived.
    Token {
        /// Its result.
        result: ResultCode,
        /// Its token, empty on failure.
        token: WireStr,
    },
    /// A `LOGOUT_RES` arrived: the server closes the connection now.
    LoggedOut,
}

struct Entry {
    request: PacketType,
    /// The nonce a `PING` must have echoed back.
    nonce: Option<u64>,
    /// A `LOGIN_REQ`'s username and password, kept until its answer says whether they worked.
    credentials: Option<(WireStr, WireStr)>,
    deadline: Instant,
    /// `None` for requests the connection makes itself (keep-alive pings, token requests).
    reply: Option<Reply>,
    /// A paged request (`HISTORY_REQ`, `LIST_ROOMS_REQ`, `ROOM_MEMBERS_REQ`, `USER_LIST_REQ`)
    /// whose response header came: its result, and the items so far.
    collecting: Option<Collecting>,
}

/// The pending requests, oldest first.
#[derive(Default)]
pub(crate) struct Pending {
    entries: VecDeque<Entry>,
}

impl Pending {
    /// Records `request`, just queued for sending, as waiting until `deadline`.
    pub(crate) fn push(&mut self, request: &Packet, deadline: Instant, reply: Option<Reply>) {
        let nonce = match request {
            Packet::Ping { nonce } => Some(*nonce),
            _ => None,
        };
        let credentials = match request {
            Packet::LoginReq { username, password } => Some((username.clone(), password.clone())),
            _ => None,
        };
        self.entries.push_back(Entry {
            request: request.packet_type(),
            nonce,
            credentials,
            deadline,
            reply,
            collecting: None,
        });
    }

    /// Hands `response` to the oldest pending request, and says what else it means.
    ///
    /// On error nothing is removed, so the request is still there for
    /// [`fail_all`](Self::fail_all) to tell it why the connection ended.
    pub(crate) fn complete(&mut self, response: &Packet) -> Result<Completed, ProtocolError> {
        let got = response.packet_type();
        let Some(oldest) = self.entries.front_mut() else {
            return Err(ProtocolError::UnsolicitedResponse(got));
        };
        let mut completed = Completed::Answered;
        let answer = match (oldest.request, response) {
            (PacketType::LoginReq, &Packet::LoginRes { result, session_id }) => {
                if result == ResultCode::OK {
                    if let Some((username, password)) = oldest.credentials.take() {
                        completed = Completed::LoggedIn { username, password };
                    }
                }
                Answer::new(result, session_id)
            }
            (PacketType::SessionTokenReq, Packet::SessionTokenRes { result, token, .. }) => {
                completed = Completed::Token {
                    result: *result,
                    token: token.clone(),
                };
                Answer::new(*result, 0)
            }
            (PacketType::LogoutReq, &Packet::LogoutRes { result }) => {
                completed = Completed::LoggedOut;
                Answer::new(result, 0)
            }
            (PacketType::BroadcastReq, &Packet::BroadcastRes { result, message_id })
            | (PacketType::WhisperReq, &Packet::WhisperRes { result, message_id }) => {
                Answer::new(result, message_id)
            }
            (PacketType::RegisterReq, &Packet::RegisterRes { result })
            | (PacketType::ChangePasswordReq, &Packet::ChangePasswordRes { result }) => {
                Answer::new(result, 0)
            }
            (PacketType::HistoryReq, &Packet::HistoryRes { result, count })
            | (PacketType::ListRoomsReq, &Packet::ListRoomsRes { result, count })
            | (PacketType::RoomMembersReq, &Packet::RoomMembersRes { result, count })
            | (PacketType::UserListReq, &Packet::UserListRes { result, count }) => {
                if oldest.collecting.is_some() {
                    return Err(ProtocolError::UnexpectedResponse {
                        expected: item_type(oldest.request),
                        got,
                    });
                }
                let items = match oldest.request {
                    PacketType::HistoryReq => Payload::History(Vec::new()),
                    PacketType::ListRoomsReq => Payload::Rooms(Vec::new()),
                    _ => Payload::Users(Vec::new()),
                };
                if count > 0 {
                    oldest.collecting = Some(Collecting {
                        result,
                        expected: usize::from(count),
                        items,
                    });
                    return Ok(Completed::Answered);
                }
                Answer::with(result, 0, items)
            }
            (PacketType::HistoryReq, Packet::HistoryItem { .. })
            | (PacketType::ListRoomsReq, Packet::RoomItem { .. })
            | (PacketType::RoomMembersReq | PacketType::UserListReq, Packet::UserItem { .. }) => {
                let Some(collecting) = oldest.collecting.as_mut() else {
                    return Err(ProtocolError::UnsolicitedResponse(got));
                };
                match (&mut collecting.items, response) {
                    (
                        Payload::History(items),
                        Packet::HistoryItem {
                            message_id,
                            sent_at_ms,
                            kind,
                            from,
                            to,
                            text,
                        },
                    ) => items.push(StoredMessage {
                        message_id: *message_id,
                        sent_at_ms: *sent_at_ms,
                        kind: MessageKind::from_wire(*kind),
                        from: from.to_string_lossy().into_owned(),
                        to: (!to.is_empty()).then(|| to.to_string_lossy().into_owned()),
                        text: text.to_string_lossy().into_owned(),
                    }),
                    (
                        Payload::Rooms(items),
                        Packet::RoomItem {
                            room,
                            flags,
                            members,
                            topic,
                        },
                    ) => items.push(RoomInfo::from_wire(room, *flags, *members, topic)),
                    (
                        Payload::Users(items),
                        Packet::UserItem {
                            user,
                            status,
                            role,
                            text,
                        },
                    ) => items.push(UserEntry::from_wire(user, *status, *role, text)),
                    // The pairs matched above make every other combination impossible.
                    _ => return Err(ProtocolError::UnsolicitedResponse(got)),
                }
                if collecting.len() < collecting.expected {
                    return Ok(Completed::Answered);
                }
                let result = collecting.result;
                let items = std::mem::replace(&mut collecting.items, Payload::None);
                Answer::with(result, 0, items)
            }
            (PacketType::CreateRoomReq, Packet::CreateRoomRes { result, room }) => Answer::with(
                *result,
                0,
                Payload::Name(room.to_string_lossy().into_owned()),
            ),
            (
                PacketType::JoinRoomReq,
                Packet::JoinRoomRes {
                    result,
                    room,
                    flags,
                    members,
                    topic,
                },
            ) => Answer::with(
                *result,
                0,
                Payload::Room(RoomInfo::from_wire(room, *flags, *members, topic)),
            ),
            (
                PacketType::WatchReq,
                Packet::WatchRes {
                    result,
                    user,
                    status,
                    text,
                },
            ) => Answer::with(
                *result,
                0,
                Payload::Presence(Presence::from_wire(user, *status, text)),
            ),
            (PacketType::RoomChatReq, &Packet::RoomChatRes { result, message_id })
            | (PacketType::SystemNoticeReq, &Packet::SystemNoticeRes { result, message_id }) => {
                Answer::new(result, message_id)
            }
            (PacketType::LeaveRoomReq, &Packet::LeaveRoomRes { result, .. })
            | (PacketType::RoomModerateReq, &Packet::RoomModerateRes { result })
            | (PacketType::ModerateReq, &Packet::ModerateRes { result }) => Answer::new(result, 0),
            (PacketType::SetStatusReq, &Packet::SetStatusRes { result }) => Answer::new(result, 0),
            (PacketType::Ping, &Packet::Pong { nonce }) => {
                let expected = oldest.nonce.unwrap_or_default();
                if nonce != expected {
                    return Err(ProtocolError::PongMismatch {
                        expected,
                        got: nonce,
                    });
                }
                Answer::new(ResultCode::OK, nonce)
            }
            (request, _) => {
                return Err(ProtocolError::UnexpectedResponse {
                    expected: response_type(request),
                    got,
                });
            }
        };
        match self.entries.pop_front().and_then(|entry| entry.reply) {
            // The caller may have given up waiting (its future was dropped): nothing to do then.
            Some(reply) => drop(reply.send(Ok(answer))),
            // One of the connection's own requests (a keep-alive, the 1.3 opt-in): nobody to
            // tell, but a refusal is worth a trace.
            None if !answer.result.is_ok() => {
                tracing::debug!(request = got.wire_name(), result = %answer.result, "refused");
            }
            None => {}
        }
        Ok(completed)
    }

    /// The deadline of the oldest request and its type. Deadlines are pushed in increasing order,
    /// so no other request can expire first.
    pub(crate) fn oldest_deadline(&self) -> Option<(Instant, PacketType)> {
        self.entries.front().map(|e| (e.deadline, e.request))
    }

    /// Fails every pending request with `error` and forgets them.
    pub(crate) fn fail_all(&mut self, error: &ClientError) {
        for entry in self.entries.drain(..) {
            if let Some(reply) = entry.reply {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }

    /// How many requests are waiting.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The item type that follows a paged request's response.
fn item_type(request: PacketType) -> PacketType {
    match request {
        PacketType::ListRoomsReq => PacketType::RoomItem,
        PacketType::RoomMembersReq | PacketType::UserListReq => PacketType::UserItem,
        _ => PacketType::HistoryItem,
    }
}

/// The response type that answers a request type.
fn response_type(request: PacketType) -> PacketType {
    match request {
        PacketType::LoginReq => PacketType::LoginRes,
        PacketType::BroadcastReq => PacketType::BroadcastRes,
        PacketType::WhisperReq => PacketType::WhisperRes,
        PacketType::Ping => PacketType::Pong,
        PacketType::SessionTokenReq => PacketType::SessionTokenRes,
        PacketType::ResumeReq => PacketType::ResumeRes,
        PacketType::LogoutReq => PacketType::LogoutRes,
        PacketType::RegisterReq => PacketType::RegisterRes,
        PacketType::ChangePasswordReq => PacketType::ChangePasswordRes,
        PacketType::HistoryReq => PacketType::HistoryRes,
        PacketType::CreateRoomReq => PacketType::CreateRoomRes,
        PacketType::JoinRoomReq => PacketType::JoinRoomRes,
        PacketType::LeaveRoomReq => PacketType::LeaveRoomRes,
        PacketType::ListRoomsReq => PacketType::ListRoomsRes,
        PacketType::RoomMembersReq => PacketType::RoomMembersRes,
        PacketType::RoomChatReq => PacketType::RoomChatRes,
        PacketType::RoomModerateReq => PacketType::RoomModerateRes,
        PacketType::UserListReq => PacketType::UserListRes,
        PacketType::SetStatusReq => PacketType::SetStatusRes,
        PacketType::WatchReq => PacketType::WatchRes,
        PacketType::ModerateReq => PacketType::ModerateRes,
        PacketType::SystemNoticeReq => PacketType::SystemNoticeRes,
        // Only requests are ever pushed; anything else expects nothing a server could send.
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot::error::TryRecvError;

    fn broadcast(text: &str) -> Packet {
        Packet::BroadcastReq { text: text.into() }
    }

    fn push(
        pending: &mut Pending,
        request: &Packet,
    ) -> oneshot::Receiver<Result<Answer, ClientError>> {
        let (tx, rx) = oneshot::channel();
        pending.push(request, Instant::now(), Some(tx));
        rx
    }

    #[test]
    fn responses_go_to_requests_in_order() {
        let mut pending = Pending::default();
        let mut first = push(&mut pending, &broadcast("a"));
        let mut second = push(&mut pending, &Packet::Ping { nonce: 9 });
        pending
            .complete(&Packet::BroadcastRes {
                result: ResultCode::RATE_LIMITED,
                message_id: 0,
            })
            .expect("matches");
        assert_eq!(
            first.try_recv().expect("answered").expect("not an error"),
            Answer::new(ResultCode::RATE_LIMITED, 0)
        );
        assert!(matches!(second.try_recv(), Err(TryRecvError::Empty)));
        pending
            .complete(&Packet::Pong { nonce: 9 })
            .expect("matches");
        assert_eq!(second.try_recv().expect("answered").expect("ok").value, 9);
        assert_eq!(pending.len(), 0);
    }

    #[test]
    fn a_response_of_the_wrong_type_is_refused_and_keeps_the_request() {
        let mut pending = Pending::default();
        let _rx = push(
            &mut pending,
            &Packet::LoginReq {
                username: "a".into(),
                password: "".into(),
            },
        );
        let err = pending
            .complete(&Packet::WhisperRes {
                result: ResultCode::OK,
                message_id: 1,
            })
            .expect_err("wrong type");
        assert_eq!(
            err,
            ProtocolError::UnexpectedResponse {
                expected: PacketType::LoginRes,
                got: PacketType::WhisperRes
            }
        );
        assert_eq!(pending.len(), 1);
    }

    #[test]
    fn unsolicited_responses_and_wrong_nonces_are_refused() {
        let mut pending = Pending::default();
        assert_eq!(
            pending.complete(&Packet::Pong { nonce: 1 }),
            Err(ProtocolError::UnsolicitedResponse(PacketType::Pong))
        );
        pending.push(&Packet::Ping { nonce: 1 }, Instant::now(), None);
        assert_eq!(
            pending.complete(&Packet::Pong { nonce: 2 }),
            Err(ProtocolError::PongMismatch {
                expected: 1,
                got: 2
            })
        );
        // A keep-alive ping has nobody to answer, which is fine.
        assert_eq!(
            pending.complete(&Packet::Pong { nonce: 1 }),
            Ok(Completed::Answered)
        );
    }

    #[test]
    fn session_responses_say_what_they_mean() {
        let mut pending = Pending::default();
        let login = Packet::LoginReq {
            username: "alice".into(),
            password: "pw".into(),
        };
        let mut refused = push(&mut pending, &login);
        let _accepted = push(&mut pending, &login);
        pending.push(&Packet::SessionTokenReq, Instant::now(), None);
        let mut logout = push(&mut pending, &Packet::LogoutReq);
        let refusal = Packet::LoginRes {
            result: ResultCode::NAME_IN_USE,
            session_id: 0,
        };
        assert_eq!(pending.complete(&refusal), Ok(Completed::Answered));
        assert_eq!(
            refused
                .try_recv()
                .expect("answered")
                .expect("an answer")
                .result,
            ResultCode::NAME_IN_USE
        );
        let success = Packet::LoginRes {
            result: ResultCode::OK,
            session_id: 3,
        };
        assert_eq!(
            pending.complete(&success),
            Ok(Completed::LoggedIn {
                username: "alice".into(),
                password: "pw".into()
            })
        );
        let token = Packet::SessionTokenRes {
            result: ResultCode::OK,
            token: "abc".into(),
            grace_ms: 1000,
        };
        assert_eq!(
            pending.complete(&token),
            Ok(Completed::Token {
                result: ResultCode::OK,
                token: "abc".into()
            })
        );
        assert_eq!(
            pending.complete(&Packet::LogoutRes {
                result: ResultCode::OK
            }),
            Ok(Completed::LoggedOut)
        );
        assert!(logout.try_recv().expect("answered").is_ok());
        assert_eq!(
            pending.complete(&Packet::LogoutRes {
                result: ResultCode::OK
            }),
            Err(ProtocolError::UnsolicitedResponse(PacketType::LogoutRes))
        );
    }

    #[test]
    fn fail_all_tells_every_waiter_and_survives_dropped_receivers() {
        let mut pending = Pending::default();
        let mut kept = push(&mut pending, &broadcast("a"));
        drop(push(&mut pending, &broadcast("b")));
        let later = Instant::now();
        pending.push(&broadcast("c"), later, None);
        assert_eq!(
            pending.oldest_deadline().map(|(_, t)| t),
            Some(PacketType::BroadcastReq)
        );
        pending.fail_all(&ClientError::Eof);
        assert!(matches!(kept.try_recv(), Ok(Err(ClientError::Eof))));
        assert_eq!(pending.oldest_deadline(), None);
    }

    #[test]
    fn a_second_header_while_items_are_due_is_refused() {
        let mut pending = Pending::default();
        let mut rx = push(
            &mut pending,
            &Packet::UserListReq {
                after: "".into(),
                limit: 5,
            },
        );
        let header = Packet::UserListRes {
            result: ResultCode::OK,
            count: 1,
        };
        assert_eq!(pending.complete(&header), Ok(Completed::Answered));
        assert_eq!(
            pending.complete(&header),
            Err(ProtocolError::UnexpectedResponse {
                expected: PacketType::UserItem,
                got: PacketType::UserListRes
            })
        );
        let item = Packet::UserItem {
            user: "bob".into(),
            status: 0,
            role: 0,
            text: "".into(),
        };
        assert_eq!(pending.complete(&item), Ok(Completed::Answered));
        let answer = rx.try_recv().expect("answered").expect("an answer");
        assert!(matches!(answer.payload, Payload::Users(users) if users.len() == 1));
        assert_eq!(
            pending.complete(&item),
            Err(ProtocolError::UnsolicitedResponse(PacketType::UserItem))
        );
    }
}
