//! suda, through the project's own protocol crate so the bench can never drift from the server.
//!
//! A connection logs in as its client's name; once logged in it receives every broadcast and the
//! whispers addressed to it, so no subscription is needed. The server never echoes a broadcast
//! to its sender, so one connection per client both publishes and receives.
//!
//! In the rooms scenario a connection is ready only once it is in its room: after `LOGIN_RES` it
//! sends `CREATE_ROOM_REQ` (the room's first member) or `JOIN_ROOM_REQ` (the others, which the
//! engine starts only after every creator is in), and the room's `CREATE_ROOM_RES` or
//! `JOIN_ROOM_RES` makes it ready. Room requests wait for the login's answer rather than being
//! pipelined behind it: a request before the session is logged in is `NOT_AUTHENTICATED`.
//! Members then receive `ROOM_EVENT_NOTIFY joined` for everyone who joins after them; those are
//! not messages and are ignored.

use bytes::{Buf, BufMut, BytesMut};
use suda_protocol::{
    Direction, HEADER_LEN, MAX_PACKET_LIMIT, Packet, PacketType, ResultCode, WireStr,
};

use super::{Dest, Event, Listen, Role, Wire, WireError, WireParams};
use crate::payload;

/// Every client's password: the one its account is registered with in the `login` scenario,
/// and sent at every login (the server's `open` auth mode ignores it for names without an
/// account). Long enough for the server's password rules.
const PASSWORD: &str = "suda-bench-password";

/// A suda connection's codec.
pub(crate) struct Suda {
    params: WireParams,
    next_ping: u64,
    /// The room to create or join once logged in, until that request is sent.
    room: Option<(usize, bool)>,
}

impl Wire for Suda {
    const NAME: &'static str = "suda";
    const SEPARATE_PUBLISHER: bool = false;

    fn personal_address(name: &str) -> String {
        name.to_owned()
    }

    fn new(params: WireParams) -> Self {
        Self {
            params,
            next_ping: 0,
            room: None,
        }
    }

    fn open(&mut self, out: &mut BytesMut, role: Role) {
        if let Some(Listen::Room { room, creator }) = role.listen {
            self.room = Some((room, creator));
        }
        let username = WireStr::from(self.params.addresses[role.client].clone());
        encode(
            out,
            &Packet::LoginReq {
                username,
                password: WireStr::from_static(PASSWORD),
            },
        );
    }

    const ACCOUNTS: bool = true;

    fn register(&mut self, out: &mut BytesMut, client: usize) -> Result<(), WireError> {
        encode(
            out,
            &Packet::RegisterReq {
                username: WireStr::from(self.params.addresses[client].clone()),
                password: WireStr::from_static(PASSWORD),
            },
        );
        Ok(())
    }

    fn publish(&mut self, out: &mut BytesMut, dest: Dest, payload: &[u8]) {
        // Written field by field rather than through a `Packet`: building one copied the text
        // and took a count on the recipient's shared name per message, ~15% of the
        // generator's time in whisper runs. The tests decode what this writes.
        let (packet_type, name) = match dest {
            Dest::All => (PacketType::BroadcastReq, None),
            Dest::Client(to) => (PacketType::WhisperReq, Some(&self.params.addresses[to])),
            Dest::Room(room) => (PacketType::RoomChatReq, Some(&self.params.rooms[room])),
        };
        let size = HEADER_LEN + name.map_or(0, |name| 1 + name.len()) + 2 + payload.len();
        // The bench validates sizes and names up front, so only a bug could break these.
        let size = u16::try_from(size).expect("bench messages fit a packet");
        let text_len = u16::try_from(payload.len()).expect("bench messages fit a packet");
        out.reserve(usize::from(size));
        out.put_u16_le(size);
        out.put_u16_le(packet_type as u16);
        if let Some(name) = name {
            out.put_u8(u8::try_from(name.len()).expect("bench names fit a str8"));
            out.put_slice(name);
        }
        out.put_u16_le(text_len);
        out.put_slice(payload);
    }

    fn keepalive(&mut self, out: &mut BytesMut) {
        self.next_ping += 1;
        encode(
            out,
            &Packet::Ping {
                nonce: self.next_ping,
            },
        );
    }

    fn decode(
        &mut self,
        input: &mut BytesMut,
        replies: &mut BytesMut,
    ) -> Result<Option<Event>, WireError> {
        // Deliveries are nearly everything a client receives: read them in place (see
        // `peek_chat_notification`), which halved the generator's decoding cost per delivery.
        match suda_protocol::peek_chat_notification(input, MAX_PACKET_LIMIT) {
            Ok(Some(notification)) => {
                let event = Event::Delivery(payload::parse(notification.text));
                input.advance(notification.size);
                return Ok(Some(event));
            }
            Ok(None) => {}
            Err(err) => return Err(WireError::malformed(Self::NAME, err.to_string())),
        }
        let packet = suda_protocol::decode(input, MAX_PACKET_LIMIT)
            .map_err(|err| WireError::malformed(Self::NAME, err.to_string()))?;
        let Some(packet) = packet else {
            return Ok(None);
        };
        let event = match packet {
            Packet::LoginRes { result, .. } if result.is_ok() => match self.room.take() {
                Some((room, creator)) => {
                    self.enter_room(replies, room, creator);
                    Event::Ignored
                }
                None => Event::Ready,
            },
            Packet::LoginRes { result, .. } => {
                return Err(WireError::Refused(format!("login refused: {result}")));
            }
            Packet::RegisterRes { result } if result.is_ok() => Event::Registered { created: true },
            Packet::RegisterRes {
                result: ResultCode::USERNAME_TAKEN,
            } => Event::Registered { created: false },
            Packet::RegisterRes { result } => {
                return Err(WireError::Refused(format!(
                    "registration refused: {result}"
                )));
            }
            Packet::CreateRoomRes { result, .. } | Packet::JoinRoomRes { result, .. }
                if result.is_ok() =>
            {
                Event::Ready
            }
            Packet::CreateRoomRes { result, room } | Packet::JoinRoomRes { result, room, .. } => {
                return Err(WireError::Refused(format!(
                    "entering room {} refused: {result}",
                    String::from_utf8_lossy(room.as_bytes())
                )));
            }
            Packet::BroadcastRes { result, .. }
            | Packet::WhisperRes { result, .. }
            | Packet::RoomChatRes { result, .. } => acknowledgement(result),
            Packet::BroadcastNotify { text, .. }
            | Packet::WhisperNotify { text, .. }
            | Packet::RoomChatNotify { text, .. } => {
                Event::Delivery(payload::parse(text.as_bytes()))
            }
            // Members joining after this one: membership news, not messages.
            Packet::RoomEventNotify { .. } => Event::Ignored,
            Packet::ErrorNotify { code, reason } => {
                Event::ServerError(format!("closed by server: {code} ({reason})"))
            }
            other if other.packet_type().direction() == Direction::ClientToServer => {
                return Err(WireError::malformed(
                    Self::NAME,
                    format!(
                        "the server sent {}, a client-only packet",
                        other.packet_type().wire_name()
                    ),
                ));
            }
            // PONG, and whatever the protocol grows that the bench has no use for.
            _ => Event::Ignored,
        };
        Ok(Some(event))
    }
}

impl Suda {
    fn enter_room(&self, out: &mut BytesMut, room: usize, creator: bool) {
        let room = WireStr::from(self.params.rooms[room].clone());
        let packet = if creator {
            // A temporary room (flags 0): it needs no store and vanishes with its last member,
            // so the next run against the same server can create it again.
            Packet::CreateRoomReq {
                room,
                flags: 0,
                password: WireStr::from_static(""),
                topic: WireStr::from_static(""),
            }
        } else {
            Packet::JoinRoomReq {
                room,
                password: WireStr::from_static(""),
            }
        };
        encode(out, &packet);
    }
}

fn acknowledgement(result: ResultCode) -> Event {
    if result.is_ok() {
        Event::Acked(1)
    } else {
        Event::Rejected {
            count: 1,
            reason: format!("request refused: {result}"),
        }
    }
}

fn encode(out: &mut BytesMut, packet: &Packet) {
    // The bench validates sizes up front, so only a bug could make a packet unencodable.
    suda_protocol::encode(packet, out).expect("bench packets fit the protocol's limits");
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use suda_protocol::ErrorCode;

    use super::*;
    use crate::payload::Stamp;
    use crate::wire::testing::{assert_split_invariant, decode_all};

    fn wire() -> Suda {
        Suda::new(WireParams {
            addresses: Arc::from(vec![Bytes::from_static(b"b00001")]),
            rooms: Arc::from(vec![
                Bytes::from_static(b"suda-bench.room.0"),
                Bytes::from_static(b"suda-bench.room.1"),
            ]),
            window: 4,
        })
    }

    fn bytes_of(packets: &[Packet]) -> BytesMut {
        let mut out = BytesMut::new();
        for packet in packets {
            encode(&mut out, packet);
        }
        out
    }

    #[test]
    fn server_packets_become_events_however_they_are_split() {
        let mut message = payload::new_message(30).expect("size");
        payload::write_header(&mut message, 77, 3);
        let input = bytes_of(&[
            Packet::LoginRes {
                result: ResultCode::OK,
                session_id: 9,
            },
            Packet::BroadcastRes {
                result: ResultCode::OK,
                message_id: 1,
            },
            Packet::WhisperRes {
                result: ResultCode::RATE_LIMITED,
                message_id: 0,
            },
            Packet::BroadcastNotify {
                message_id: 1,
                sent_at_ms: 5,
                from: "b00004".into(),
                text: WireStr::from(Bytes::from(message)),
            },
            Packet::Pong { nonce: 1 },
            Packet::ErrorNotify {
                code: ErrorCode::SLOW_CONSUMER,
                reason: "too slow".into(),
            },
        ]);
        let (events, _) = decode_all(&mut wire(), &input).expect("decodes");
        assert_eq!(
            events,
            vec![
                Event::Ready,
                Event::Acked(1),
                Event::Rejected {
                    count: 1,
                    reason: "request refused: RATE_LIMITED".into()
                },
                Event::Delivery(Some(Stamp {
                    sent_ns: 77,
                    sender: 3
                })),
                Event::Ignored,
                Event::ServerError("closed by server: SLOW_CONSUMER (too slow)".into()),
            ]
        );
        assert_split_invariant(wire, &input);
    }

    #[test]
    fn a_refused_login_is_an_error() {
        let input = bytes_of(&[Packet::LoginRes {
            result: ResultCode::NAME_IN_USE,
            session_id: 0,
        }]);
        let err = decode_all(&mut wire(), &input).expect_err("refused");
        assert_eq!(err, WireError::Refused("login refused: NAME_IN_USE".into()));
    }

    #[test]
    fn registration_answers_become_events_and_a_refusal_an_error() {
        let mut out = BytesMut::new();
        wire().register(&mut out, 0).expect("suda has accounts");
        assert_eq!(
            suda_protocol::decode(&mut out, MAX_PACKET_LIMIT).expect("valid"),
            Some(Packet::RegisterReq {
                username: "b00001".into(),
                password: PASSWORD.into()
            })
        );
        let input = bytes_of(&[
            Packet::RegisterRes {
                result: ResultCode::OK,
            },
            Packet::RegisterRes {
                result: ResultCode::USERNAME_TAKEN,
            },
        ]);
        let (events, _) = decode_all(&mut wire(), &input).expect("decodes");
        assert_eq!(
            events,
            vec![
                Event::Registered { created: true },
                Event::Registered { created: false }
            ]
        );
        assert_split_invariant(wire, &input);
        let refused = bytes_of(&[Packet::RegisterRes {
            result: ResultCode::WEAK_PASSWORD,
        }]);
        let err = decode_all(&mut wire(), &refused).expect_err("refused");
        assert_eq!(
            err,
            WireError::Refused("registration refused: WEAK_PASSWORD".into())
        );
    }

    #[test]
    fn a_client_only_packet_from_the_server_is_malformed() {
        let input = bytes_of(&[Packet::BroadcastReq { text: "hi".into() }]);
        let err = decode_all(&mut wire(), &input).expect_err("malformed");
        assert!(matches!(err, WireError::Malformed { .. }), "{err:?}");
    }

    #[test]
    fn requests_encode_as_the_protocol_says() {
        let mut wire = wire();
        let mut out = BytesMut::new();
        wire.open(
            &mut out,
            Role {
                client: 0,
                listen: Some(super::super::Listen::Fanout),
            },
        );
        wire.publish(&mut out, Dest::All, b"hi");
        wire.publish(&mut out, Dest::Client(0), b"yo");
        let decoded: Vec<Packet> = std::iter::from_fn(|| {
            suda_protocol::decode(&mut out, MAX_PACKET_LIMIT).expect("valid")
        })
        .collect();
        assert_eq!(
            decoded,
            vec![
                Packet::LoginReq {
                    username: "b00001".into(),
                    password: PASSWORD.into()
                },
                Packet::BroadcastReq { text: "hi".into() },
                Packet::WhisperReq {
                    to: "b00001".into(),
                    text: "yo".into()
                },
            ]
        );
    }

    /// A codec that has opened the session of a member of room 1.
    fn room_member(creator: bool) -> Suda {
        let mut wire = wire();
        wire.open(
            &mut BytesMut::new(),
            Role {
                client: 0,
                listen: Some(Listen::Room { room: 1, creator }),
            },
        );
        wire
    }

    fn decoded(mut bytes: BytesMut) -> Vec<Packet> {
        std::iter::from_fn(|| suda_protocol::decode(&mut bytes, MAX_PACKET_LIMIT).expect("valid"))
            .collect()
    }

    #[test]
    fn a_room_member_is_ready_once_in_its_room_however_the_input_is_split() {
        let mut message = payload::new_message(30).expect("size");
        payload::write_header(&mut message, 42, 7);
        let input = bytes_of(&[
            Packet::LoginRes {
                result: ResultCode::OK,
                session_id: 9,
            },
            Packet::JoinRoomRes {
                result: ResultCode::OK,
                room: "suda-bench.room.1".into(),
                flags: 0,
                members: 2,
                topic: "".into(),
            },
            Packet::RoomEventNotify {
                event_id: 3,
                sent_at_ms: 5,
                room: "suda-bench.room.1".into(),
                kind: 1,
                user: "b00003".into(),
                actor: "".into(),
                text: "".into(),
            },
            Packet::RoomChatRes {
                result: ResultCode::OK,
                message_id: 4,
            },
            Packet::RoomChatRes {
                result: ResultCode::NOT_IN_ROOM,
                message_id: 0,
            },
            Packet::RoomChatNotify {
                message_id: 5,
                sent_at_ms: 6,
                room: "suda-bench.room.1".into(),
                from: "b00008".into(),
                text: WireStr::from(Bytes::from(message)),
            },
        ]);
        let (events, replies) = decode_all(&mut room_member(false), &input).expect("decodes");
        assert_eq!(
            events,
            vec![
                Event::Ignored,
                Event::Ready,
                Event::Ignored,
                Event::Acked(1),
                Event::Rejected {
                    count: 1,
                    reason: "request refused: NOT_IN_ROOM".into()
                },
                Event::Delivery(Some(Stamp {
                    sent_ns: 42,
                    sender: 7
                })),
            ]
        );
        // The join goes out only in answer to the login, never ahead of it.
        assert_eq!(
            decoded(replies),
            vec![Packet::JoinRoomReq {
                room: "suda-bench.room.1".into(),
                password: "".into()
            }]
        );
        assert_split_invariant(|| room_member(false), &input);
    }

    #[test]
    fn a_room_creator_creates_a_temporary_room_and_a_refusal_ends_the_session() {
        let login = bytes_of(&[Packet::LoginRes {
            result: ResultCode::OK,
            session_id: 1,
        }]);
        let (events, replies) = decode_all(&mut room_member(true), &login).expect("decodes");
        assert_eq!(events, vec![Event::Ignored]);
        assert_eq!(
            decoded(replies),
            vec![Packet::CreateRoomReq {
                room: "suda-bench.room.1".into(),
                flags: 0,
                password: "".into(),
                topic: "".into()
            }]
        );
        let mut input = login;
        input.extend_from_slice(&bytes_of(&[Packet::CreateRoomRes {
            result: ResultCode::ROOM_EXISTS,
            room: "suda-bench.room.1".into(),
        }]));
        let err = decode_all(&mut room_member(true), &input).expect_err("refused");
        assert_eq!(
            err,
            WireError::Refused("entering room suda-bench.room.1 refused: ROOM_EXISTS".into())
        );
    }

    #[test]
    fn room_messages_are_room_chat_requests() {
        let mut out = BytesMut::new();
        room_member(false).publish(&mut out, Dest::Room(0), b"hey");
        assert_eq!(
            decoded(out),
            vec![Packet::RoomChatReq {
                room: "suda-bench.room.0".into(),
                text: "hey".into()
            }]
        );
    }
}
