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
use crate::event::StoredMessage;

/// Where the answer to one request goes.
pub(crate) type Reply = oneshot::Sender<Result<Answer, ClientError>>;

/// A response reduced to what a caller needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    /// The response's result; `OK` for a `PONG`.
    pub(crate) result: ResultCode,
    /// Session id, message id, or the echoed ping nonce.
    pub(crate) value: u64,
    /// The messages of a `HISTORY_RES`.
    pub(crate) items: Vec<StoredMessage>,
}

impl Answer {
    fn new(result: ResultCode, value: u64) -> Self {
        Self {
            result,
            value,
            items: Vec::new(),
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
    /// A `HISTORY_REQ` whose `HISTORY_RES` came: its result, and the items still to come.
    history: Option<(ResultCode, usize, Vec<StoredMessage>)>,
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
            history: None,
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
            (PacketType::HistoryReq, &Packet::HistoryRes { result, count }) => {
                if oldest.history.is_some() {
                    return Err(ProtocolError::UnexpectedResponse {
                        expected: PacketType::HistoryItem,
                        got,
                    });
                }
                if count > 0 {
                    oldest.history = Some((result, usize::from(count), Vec::new()));
                    return Ok(Completed::Answered);
                }
                Answer::new(result, 0)
            }
            (
                PacketType::HistoryReq,
                Packet::HistoryItem {
                    message_id,
                    sent_at_ms,
                    kind,
                    from,
                    to,
                    text,
                },
            ) => {
                let Some((result, expected, items)) = oldest.history.as_mut() else {
                    return Err(ProtocolError::UnsolicitedResponse(got));
                };
                items.push(StoredMessage {
                    message_id: *message_id,
                    sent_at_ms: *sent_at_ms,
                    whisper: *kind == 2,
                    from: from.to_string_lossy().into_owned(),
                    to: (!to.is_empty()).then(|| to.to_string_lossy().into_owned()),
                    text: text.to_string_lossy().into_owned(),
                });
                if items.len() < *expected {
                    return Ok(Completed::Answered);
                }
                Answer {
                    result: *result,
                    value: 0,
                    items: std::mem::take(items),
                }
            }
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
        if let Some(reply) = self.entries.pop_front().and_then(|entry| entry.reply) {
            // The caller may have given up waiting (its future was dropped): nothing to do then.
            let _ = reply.send(Ok(answer));
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
}
