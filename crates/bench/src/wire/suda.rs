//! suda, through the project's own protocol crate so the bench can never drift from the server.
//!
//! A connection logs in as its client's name; once logged in it receives every broadcast and the
//! whispers addressed to it, so no subscription is needed. The server never echoes a broadcast
//! to its sender, so one connection per client both publishes and receives.

use bytes::{Bytes, BytesMut};
use suda_protocol::{Direction, MAX_PACKET_LIMIT, Packet, ResultCode, WireStr};

use super::{Dest, Event, Role, Wire, WireError, WireParams};
use crate::payload;

/// The password sent at login; the server's `open` auth mode ignores it.
const PASSWORD: &str = "bench";

/// A suda connection's codec.
pub(crate) struct Suda {
    params: WireParams,
    next_ping: u64,
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
        }
    }

    fn open(&mut self, out: &mut BytesMut, role: Role) {
        let username = WireStr::from(self.params.addresses[role.client].clone());
        encode(
            out,
            &Packet::LoginReq {
                username,
                password: WireStr::from_static(PASSWORD),
            },
        );
    }

    fn publish(&mut self, out: &mut BytesMut, dest: Dest, payload: &[u8]) {
        let text = WireStr::from(Bytes::copy_from_slice(payload));
        let packet = match dest {
            Dest::All => Packet::BroadcastReq { text },
            Dest::Client(to) => Packet::WhisperReq {
                to: WireStr::from(self.params.addresses[to].clone()),
                text,
            },
        };
        encode(out, &packet);
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
        _replies: &mut BytesMut,
    ) -> Result<Option<Event>, WireError> {
        let packet = suda_protocol::decode(input, MAX_PACKET_LIMIT)
            .map_err(|err| WireError::malformed(Self::NAME, err.to_string()))?;
        let Some(packet) = packet else {
            return Ok(None);
        };
        let event = match packet {
            Packet::LoginRes { result, .. } if result.is_ok() => Event::Ready,
            Packet::LoginRes { result, .. } => {
                return Err(WireError::Refused(format!("login refused: {result}")));
            }
            Packet::BroadcastRes { result, .. } | Packet::WhisperRes { result, .. } => {
                acknowledgement(result)
            }
            Packet::BroadcastNotify { text, .. } | Packet::WhisperNotify { text, .. } => {
                Event::Delivery(payload::parse(text.as_bytes()))
            }
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

    use suda_protocol::ErrorCode;

    use super::*;
    use crate::payload::Stamp;
    use crate::wire::testing::{assert_split_invariant, decode_all};

    fn wire() -> Suda {
        Suda::new(WireParams {
            addresses: Arc::from(vec![Bytes::from_static(b"b00001")]),
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
}
