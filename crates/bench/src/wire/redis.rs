//! Redis pub/sub over RESP2, written out by hand: a bench needs three commands of it.
//!
//! Fan-out subscribers all `SUBSCRIBE` to one channel, each whisper target to a channel of its
//! own, and the members of a room to the room's channel; a message is a `PUBLISH`, acknowledged by the integer reply (the number of subscribers
//! that got it, so a whisper answered with 0 found nobody and counts as rejected).
//!
//! In RESP2 a subscribed connection may not `PUBLISH`, so a publishing client has a second,
//! publish-only connection ([`Wire::SEPARATE_PUBLISHER`]). The client's own subscriber therefore
//! receives its own broadcasts and room messages, which suda never sends back; the engine
//! recognises them by the sender index in the payload and counts them apart, so expected
//! deliveries stay `senders × messages × (clients − 1)` (or `(members − 1)` in a room) on every
//! target.

use std::fmt::Write as _;

use bytes::{Buf, BufMut, BytesMut};

use super::{Dest, Event, FANOUT_CHANNEL, Listen, Role, Wire, WireError, WireParams};
use crate::payload;

const PROTOCOL: &str = "RESP";
/// Longest bulk string or array accepted; far above anything the bench sends.
const MAX_LEN: usize = 64 * 1024 * 1024;
/// Deepest nesting accepted; Redis pub/sub replies are flat arrays.
const MAX_DEPTH: usize = 8;

/// A Redis connection's codec.
pub(crate) struct Redis {
    params: WireParams,
    ready: bool,
}

impl Wire for Redis {
    const NAME: &'static str = "redis";
    const SEPARATE_PUBLISHER: bool = true;

    fn personal_address(name: &str) -> String {
        format!("suda-bench.w.{name}")
    }

    fn new(params: WireParams) -> Self {
        Self {
            params,
            ready: false,
        }
    }

    fn open(&mut self, out: &mut BytesMut, role: Role) {
        match role.listen {
            Some(Listen::Fanout) => command(out, &[b"SUBSCRIBE", FANOUT_CHANNEL.as_bytes()]),
            Some(Listen::Personal) => {
                let channel = self.params.addresses[role.client].clone();
                command(out, &[b"SUBSCRIBE", &channel]);
            }
            Some(Listen::Room { room, .. }) => {
                let channel = self.params.rooms[room].clone();
                command(out, &[b"SUBSCRIBE", &channel]);
            }
            // A round trip proves the publish-only connection is up.
            None => command(out, &[b"PING"]),
        }
    }

    fn publish(&mut self, out: &mut BytesMut, dest: Dest, payload: &[u8]) {
        let channel = match dest {
            Dest::All => FANOUT_CHANNEL.as_bytes(),
            Dest::Client(to) => &self.params.addresses[to],
            Dest::Room(room) => &self.params.rooms[room],
        };
        command(out, &[b"PUBLISH", channel, payload]);
    }

    fn decode(
        &mut self,
        input: &mut BytesMut,
        _replies: &mut BytesMut,
    ) -> Result<Option<Event>, WireError> {
        let Some((value, len)) = parse(input)? else {
            return Ok(None);
        };
        let event = self.event(value)?;
        input.advance(len);
        Ok(Some(event))
    }
}

impl Redis {
    fn event(&mut self, value: Resp<'_>) -> Result<Event, WireError> {
        let event = match value {
            Resp::Integer(receivers) if self.ready => {
                if receivers > 0 {
                    Event::Acked(1)
                } else {
                    Event::Rejected {
                        count: 1,
                        reason: "PUBLISH reached no subscriber".into(),
                    }
                }
            }
            Resp::Error(text) if self.ready => Event::Rejected {
                count: 1,
                reason: format!("redis error: {}", String::from_utf8_lossy(text)),
            },
            Resp::Error(text) => {
                return Err(WireError::Refused(format!(
                    "redis refused the session: {}",
                    String::from_utf8_lossy(text)
                )));
            }
            Resp::Simple(b"PONG") if !self.ready => self.become_ready(),
            Resp::Array(Some(items)) => match items.as_slice() {
                [Resp::Bulk(Some(b"message")), _, Resp::Bulk(Some(message))] => {
                    Event::Delivery(payload::parse(message))
                }
                [Resp::Bulk(Some(b"subscribe")), _, Resp::Integer(_)] if !self.ready => {
                    self.become_ready()
                }
                _ => Event::Ignored,
            },
            _ => Event::Ignored,
        };
        Ok(event)
    }

    fn become_ready(&mut self) -> Event {
        self.ready = true;
        Event::Ready
    }
}

/// Appends a command as a RESP array of bulk strings.
fn command(out: &mut BytesMut, args: &[&[u8]]) {
    header(out, b'*', args.len());
    for arg in args {
        header(out, b'$', arg.len());
        out.put_slice(arg);
        out.put_slice(b"\r\n");
    }
}

fn header(out: &mut BytesMut, kind: u8, len: usize) {
    out.put_u8(kind);
    // Writing into a BytesMut cannot fail.
    let _ = write!(out, "{len}\r\n");
}

/// One RESP value, borrowing the receive buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resp<'a> {
    Simple(&'a [u8]),
    Error(&'a [u8]),
    Integer(i64),
    Bulk(Option<&'a [u8]>),
    Array(Option<Vec<Resp<'a>>>),
}

/// The value at the front of `buf` and its length in bytes, `Ok(None)` while it is incomplete.
pub(crate) fn parse(buf: &[u8]) -> Result<Option<(Resp<'_>, usize)>, WireError> {
    parse_at(buf, 0, 0)
}

fn parse_at(
    buf: &[u8],
    start: usize,
    depth: usize,
) -> Result<Option<(Resp<'_>, usize)>, WireError> {
    if depth > MAX_DEPTH {
        return Err(WireError::malformed(PROTOCOL, "nesting too deep"));
    }
    let Some((line, mut pos)) = line_at(buf, start)? else {
        return Ok(None);
    };
    let Some((&kind, rest)) = line.split_first() else {
        return Err(WireError::malformed(PROTOCOL, "empty line"));
    };
    let value = match kind {
        b'+' => Resp::Simple(rest),
        b'-' => Resp::Error(rest),
        b':' => Resp::Integer(integer(rest)?),
        b'$' => match length(rest)? {
            None => Resp::Bulk(None),
            Some(len) => {
                let end = pos + len;
                let Some(terminated) = buf.get(pos..end + 2) else {
                    return Ok(None);
                };
                if &terminated[len..] != b"\r\n" {
                    return Err(WireError::malformed(
                        PROTOCOL,
                        "bulk string not ended by CRLF",
                    ));
                }
                pos = end + 2;
                Resp::Bulk(Some(&terminated[..len]))
            }
        },
        // `>` is a RESP3 push, the same shape as an array; accepted in case a server sends one.
        b'*' | b'>' => match length(rest)? {
            None => Resp::Array(None),
            Some(count) => {
                // Every element takes at least 3 bytes, so this never over-reserves by much.
                let mut items = Vec::with_capacity(count.min(buf.len() / 3 + 1));
                for _ in 0..count {
                    let Some((item, next)) = parse_at(buf, pos, depth + 1)? else {
                        return Ok(None);
                    };
                    items.push(item);
                    pos = next;
                }
                Resp::Array(Some(items))
            }
        },
        other => {
            return Err(WireError::malformed(
                PROTOCOL,
                format!("unknown type byte {other:#04x}"),
            ));
        }
    };
    Ok(Some((value, pos)))
}

/// The line starting at `start` without its CRLF, and where the next one starts.
fn line_at(buf: &[u8], start: usize) -> Result<Option<(&[u8], usize)>, WireError> {
    let rest = buf.get(start..).unwrap_or_default();
    let Some(cr) = rest.iter().position(|&b| b == b'\r') else {
        return Ok(None);
    };
    match rest.get(cr + 1) {
        None => Ok(None),
        Some(b'\n') => Ok(Some((&rest[..cr], start + cr + 2))),
        Some(_) => Err(WireError::malformed(PROTOCOL, "CR not followed by LF")),
    }
}

fn integer(text: &[u8]) -> Result<i64, WireError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| WireError::malformed(PROTOCOL, "bad integer"))
}

/// A bulk or array length; `None` for RESP's null (-1).
fn length(text: &[u8]) -> Result<Option<usize>, WireError> {
    match integer(text)? {
        -1 => Ok(None),
        len if (0..=MAX_LEN as i64).contains(&len) => Ok(Some(len as usize)),
        len => Err(WireError::malformed(PROTOCOL, format!("bad length {len}"))),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::payload::Stamp;
    use crate::wire::testing::{assert_split_invariant, decode_all};

    fn wire() -> Redis {
        Redis::new(WireParams {
            addresses: Arc::from(vec![Bytes::from_static(b"suda-bench.w.b00001")]),
            rooms: Arc::from(vec![
                Bytes::from_static(b"suda-bench.room.0"),
                Bytes::from_static(b"suda-bench.room.1"),
            ]),
            window: 4,
        })
    }

    fn message_frame(stamp: u64, sender: u32) -> Vec<u8> {
        let mut message = payload::new_message(32).expect("size");
        payload::write_header(&mut message, stamp, sender);
        let mut frame = BytesMut::new();
        command(
            &mut frame,
            &[b"message", FANOUT_CHANNEL.as_bytes(), &message],
        );
        frame.to_vec()
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = BytesMut::new();
        command(&mut out, &[b"PUBLISH", b"ch", b""]);
        assert_eq!(&out[..], b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$0\r\n\r\n");
    }

    #[test]
    fn parses_every_type() {
        let input =
            b"+OK\r\n-ERR no\r\n:-12\r\n$3\r\na\rb\r\n$-1\r\n*-1\r\n*2\r\n*1\r\n:1\r\n$0\r\n\r\n";
        let mut rest = &input[..];
        let mut values = Vec::new();
        while let Some((value, len)) = parse(rest).expect("valid") {
            values.push(value);
            rest = &rest[len..];
        }
        assert!(rest.is_empty());
        assert_eq!(
            values,
            vec![
                Resp::Simple(b"OK"),
                Resp::Error(b"ERR no"),
                Resp::Integer(-12),
                Resp::Bulk(Some(b"a\rb")),
                Resp::Bulk(None),
                Resp::Array(None),
                Resp::Array(Some(vec![
                    Resp::Array(Some(vec![Resp::Integer(1)])),
                    Resp::Bulk(Some(b"")),
                ])),
            ]
        );
    }

    #[test]
    fn every_prefix_of_a_value_is_incomplete_not_invalid() {
        let frame = message_frame(5, 6);
        for end in 0..frame.len() {
            assert_eq!(parse(&frame[..end]), Ok(None), "prefix of {end} bytes");
        }
    }

    #[test]
    fn malformed_input_is_an_error() {
        for bad in [
            &b"?x\r\n"[..],
            b":abc\r\n",
            b"$3\r\nabcXY",
            b"$-7\r\n",
            b"+a\rb\r\n",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let deep = b"*1\r\n".repeat(MAX_DEPTH + 2);
        assert!(parse(&deep).is_err());
    }

    #[test]
    fn subscriber_stream_becomes_events_however_it_is_split() {
        let mut input = b"*3\r\n$9\r\nsubscribe\r\n$14\r\nsuda-bench.all\r\n:1\r\n".to_vec();
        input.extend(message_frame(1000, 2));
        input.extend(message_frame(u64::MAX, 0));
        input.extend(b"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$5\r\nhello\r\n");
        let (events, _) = decode_all(&mut wire(), &input).expect("decodes");
        assert_eq!(
            events,
            vec![
                Event::Ready,
                Event::Delivery(Some(Stamp {
                    sent_ns: 1000,
                    sender: 2
                })),
                Event::Delivery(Some(Stamp {
                    sent_ns: u64::MAX,
                    sender: 0
                })),
                Event::Delivery(None),
            ]
        );
        assert_split_invariant(wire, &input);
    }

    #[test]
    fn publisher_stream_becomes_acks_however_it_is_split() {
        let input = b"+PONG\r\n:1000\r\n:0\r\n-ERR wrong\r\n:1\r\n";
        let (events, _) = decode_all(&mut wire(), input).expect("decodes");
        assert_eq!(
            events,
            vec![
                Event::Ready,
                Event::Acked(1),
                Event::Rejected {
                    count: 1,
                    reason: "PUBLISH reached no subscriber".into()
                },
                Event::Rejected {
                    count: 1,
                    reason: "redis error: ERR wrong".into()
                },
                Event::Acked(1),
            ]
        );
        assert_split_invariant(wire, input);
    }

    #[test]
    fn an_error_before_ready_refuses_the_session() {
        let err = decode_all(&mut wire(), b"-ERR max clients\r\n").expect_err("refused");
        assert!(matches!(err, WireError::Refused(_)));
    }

    #[test]
    fn room_members_subscribe_to_the_room_channel_and_publish_there() {
        let mut wire = wire();
        let mut out = BytesMut::new();
        wire.open(
            &mut out,
            Role {
                client: 0,
                listen: Some(Listen::Room {
                    room: 1,
                    creator: true,
                }),
            },
        );
        wire.publish(&mut out, Dest::Room(1), b"m");
        let mut expected = BytesMut::new();
        command(&mut expected, &[b"SUBSCRIBE", b"suda-bench.room.1"]);
        command(&mut expected, &[b"PUBLISH", b"suda-bench.room.1", b"m"]);
        assert_eq!(out, expected);
    }

    #[test]
    fn room_subscriber_stream_becomes_events_however_it_is_split() {
        let mut input = b"*3\r\n$9\r\nsubscribe\r\n$17\r\nsuda-bench.room.1\r\n:1\r\n".to_vec();
        let mut message = payload::new_message(32).expect("size");
        payload::write_header(&mut message, 99, 4);
        let mut frame = BytesMut::new();
        command(&mut frame, &[b"message", b"suda-bench.room.1", &message]);
        input.extend(&frame);
        let (events, _) = decode_all(&mut wire(), &input).expect("decodes");
        assert_eq!(
            events,
            vec![
                Event::Ready,
                Event::Delivery(Some(Stamp {
                    sent_ns: 99,
                    sender: 4
                })),
            ]
        );
        assert_split_invariant(wire, &input);
    }
}
