//! NATS core text protocol, written out by hand: `CONNECT`, `SUB`, `PUB`, `PING`/`PONG`.
//!
//! Fan-out subscribers all `SUB` one subject, each whisper target a subject of its own, and the
//! members of a room the room's subject. The
//! connection says `"echo":false`, so like suda the server never hands a client its own
//! message and one connection per client both publishes and receives.
//!
//! NATS does not acknowledge a `PUB`, but it answers `PING`s in order after everything sent
//! before them, so a `PONG` acknowledges every message published before its `PING`. A publisher
//! pings after every half window (and at the end of each batch), which gives the engine the same
//! windowed flow control it has with suda's per-message responses.

use std::collections::VecDeque;
use std::fmt::Write as _;

use bytes::{Buf, BufMut, BytesMut};

use super::{Dest, Event, FANOUT_CHANNEL, Listen, Role, Wire, WireError, WireParams};
use crate::payload;

const PROTOCOL: &str = "NATS";
/// Longest control line accepted; server `INFO` lines are well under this.
const MAX_LINE: usize = 64 * 1024;
/// Largest message payload accepted.
const MAX_PAYLOAD: usize = 64 * 1024 * 1024;
const CONNECT: &[u8] =
    b"CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":false,\"name\":\"suda-bench\"}\r\n";

/// A NATS connection's codec.
pub(crate) struct Nats {
    params: WireParams,
    ready: bool,
    /// Messages published per `PING`.
    chunk: u32,
    /// Messages published since the last `PING`.
    uncovered: u32,
    /// For each `PING` not yet answered, how many messages its `PONG` acknowledges.
    pings: VecDeque<u32>,
}

impl Wire for Nats {
    const NAME: &'static str = "nats";
    const SEPARATE_PUBLISHER: bool = false;

    fn personal_address(name: &str) -> String {
        format!("suda-bench.w.{name}")
    }

    fn new(params: WireParams) -> Self {
        let chunk = (params.window / 2).max(1);
        Self {
            params,
            ready: false,
            chunk,
            uncovered: 0,
            pings: VecDeque::new(),
        }
    }

    fn open(&mut self, out: &mut BytesMut, role: Role) {
        out.put_slice(CONNECT);
        let subject = match role.listen {
            Some(Listen::Fanout) => Some(FANOUT_CHANNEL.as_bytes()),
            Some(Listen::Personal) => Some(&self.params.addresses[role.client][..]),
            Some(Listen::Room { room, .. }) => Some(&self.params.rooms[room][..]),
            None => None,
        };
        if let Some(subject) = subject {
            out.put_slice(b"SUB ");
            out.put_slice(subject);
            out.put_slice(b" 1\r\n");
        }
        // The PONG comes back only after the server has processed CONNECT and SUB.
        self.ping(out, 0);
    }

    fn publish(&mut self, out: &mut BytesMut, dest: Dest, payload: &[u8]) {
        let subject = match dest {
            Dest::All => FANOUT_CHANNEL.as_bytes(),
            Dest::Client(to) => &self.params.addresses[to],
            Dest::Room(room) => &self.params.rooms[room],
        };
        out.put_slice(b"PUB ");
        out.put_slice(subject);
        // Writing into a BytesMut cannot fail.
        let _ = write!(out, " {}\r\n", payload.len());
        out.put_slice(payload);
        out.put_slice(b"\r\n");
        self.uncovered += 1;
        if self.uncovered >= self.chunk {
            self.ping(out, self.uncovered);
        }
    }

    fn end_batch(&mut self, out: &mut BytesMut) {
        if self.uncovered > 0 {
            self.ping(out, self.uncovered);
        }
    }

    fn decode(
        &mut self,
        input: &mut BytesMut,
        replies: &mut BytesMut,
    ) -> Result<Option<Event>, WireError> {
        let Some(line_len) = find_crlf(input)? else {
            return Ok(None);
        };
        let line = &input[..line_len];
        let op_len = line
            .iter()
            .position(|&b| b == b' ' || b == b'\t')
            .unwrap_or(line.len());
        let op = line[..op_len].to_ascii_uppercase();
        let args = &line[op_len..];
        let body = line_len + 2;
        let (event, consumed) = match op.as_slice() {
            b"MSG" | b"HMSG" => {
                let (skip, total) = sizes(args, op.as_slice() == b"HMSG")?;
                let Some(frame) = input.get(body..body + total + 2) else {
                    return Ok(None);
                };
                if &frame[total..] != b"\r\n" {
                    return Err(WireError::malformed(PROTOCOL, "payload not ended by CRLF"));
                }
                let message = &frame[skip..total];
                (Event::Delivery(payload::parse(message)), body + total + 2)
            }
            b"PING" => {
                replies.put_slice(b"PONG\r\n");
                (Event::Ignored, body)
            }
            b"PONG" => (self.pong(), body),
            b"-ERR" => {
                let reason = String::from_utf8_lossy(args.trim_ascii()).into_owned();
                (Event::ServerError(format!("nats error: {reason}")), body)
            }
            b"INFO" | b"+OK" => (Event::Ignored, body),
            _ => {
                return Err(WireError::malformed(
                    PROTOCOL,
                    format!("unknown operation {:?}", String::from_utf8_lossy(&op)),
                ));
            }
        };
        input.advance(consumed);
        Ok(Some(event))
    }
}

impl Nats {
    fn ping(&mut self, out: &mut BytesMut, covers: u32) {
        out.put_slice(b"PING\r\n");
        self.pings.push_back(covers);
        self.uncovered = 0;
    }

    fn pong(&mut self) -> Event {
        let covered = self.pings.pop_front();
        if !self.ready {
            self.ready = true;
            return Event::Ready;
        }
        match covered {
            Some(count) if count > 0 => Event::Acked(count),
            _ => Event::Ignored,
        }
    }
}

/// Length of the control line at the front of `buf`, without its CRLF.
fn find_crlf(buf: &[u8]) -> Result<Option<usize>, WireError> {
    let window = &buf[..buf.len().min(MAX_LINE + 2)];
    match window.windows(2).position(|pair| pair == b"\r\n") {
        Some(at) => Ok(Some(at)),
        None if buf.len() > MAX_LINE => {
            Err(WireError::malformed(PROTOCOL, "control line too long"))
        }
        None => Ok(None),
    }
}

/// For `MSG`/`HMSG` arguments: bytes of headers to skip and total bytes after the line.
fn sizes(args: &[u8], headers: bool) -> Result<(usize, usize), WireError> {
    let mut fields = args
        .split(|b| b.is_ascii_whitespace())
        .filter(|f| !f.is_empty())
        .rev();
    let bad = || WireError::malformed(PROTOCOL, "bad message sizes");
    let number = |field: Option<&[u8]>| -> Result<usize, WireError> {
        field
            .and_then(|f| std::str::from_utf8(f).ok())
            .and_then(|s| s.parse().ok())
            .filter(|&n| n <= MAX_PAYLOAD)
            .ok_or_else(bad)
    };
    let total = number(fields.next())?;
    let skip = if headers { number(fields.next())? } else { 0 };
    // Subject and sid must come before the sizes.
    if fields.count() < 2 || skip > total {
        return Err(bad());
    }
    Ok((skip, total))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;
    use crate::payload::Stamp;
    use crate::wire::testing::{assert_split_invariant, decode_all};

    fn wire() -> Nats {
        Nats::new(WireParams {
            addresses: Arc::from(vec![Bytes::from_static(b"suda-bench.w.b00001")]),
            rooms: Arc::from(vec![
                Bytes::from_static(b"suda-bench.room.0"),
                Bytes::from_static(b"suda-bench.room.1"),
            ]),
            window: 4,
        })
    }

    fn message(stamp: u64, sender: u32) -> Vec<u8> {
        let mut message = payload::new_message(30).expect("size");
        payload::write_header(&mut message, stamp, sender);
        message
    }

    #[test]
    fn open_and_publish_write_the_text_protocol_and_ping_every_half_window() {
        let mut wire = wire();
        let mut out = BytesMut::new();
        wire.open(
            &mut out,
            Role {
                client: 0,
                listen: Some(Listen::Personal),
            },
        );
        wire.publish(&mut out, Dest::Client(0), b"a");
        wire.publish(&mut out, Dest::All, b"bc");
        wire.publish(&mut out, Dest::All, b"d");
        wire.end_batch(&mut out);
        wire.end_batch(&mut out);
        let mut expected = CONNECT.to_vec();
        expected.extend(b"SUB suda-bench.w.b00001 1\r\nPING\r\n");
        expected.extend(b"PUB suda-bench.w.b00001 1\r\na\r\n");
        expected.extend(b"PUB suda-bench.all 2\r\nbc\r\nPING\r\n");
        expected.extend(b"PUB suda-bench.all 1\r\nd\r\nPING\r\n");
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&expected)
        );
        assert_eq!(wire.pings, [0, 2, 1]);
    }

    #[test]
    fn server_stream_becomes_events_however_it_is_split() {
        let wire_with_pings = || {
            let mut wire = wire();
            let mut out = BytesMut::new();
            wire.open(
                &mut out,
                Role {
                    client: 0,
                    listen: Some(Listen::Fanout),
                },
            );
            for _ in 0..3 {
                wire.publish(&mut out, Dest::All, b"x");
            }
            wire.end_batch(&mut out);
            wire
        };
        let first = message(10, 1);
        let second = message(20, 2);
        let mut input = b"INFO {\"server_id\":\"x\",\"max_payload\":1048576}\r\nPONG\r\n".to_vec();
        input.extend(format!("MSG suda-bench.all 1 {}\r\n", first.len()).as_bytes());
        input.extend(&first);
        input.extend(b"\r\nPING\r\n+OK\r\npong\r\n");
        input.extend(format!("HMSG a.b 1 reply.to 12 {}\r\n", 12 + second.len()).as_bytes());
        input.extend(b"NATS/1.0\r\n\r\n");
        input.extend(&second);
        input.extend(b"\r\nMSG x 1 0\r\n\r\nPONG\r\n-ERR 'Slow Consumer'\r\n");
        let (events, replies) = decode_all(&mut wire_with_pings(), &input).expect("decodes");
        assert_eq!(
            events,
            vec![
                Event::Ignored,
                Event::Ready,
                Event::Delivery(Some(Stamp {
                    sent_ns: 10,
                    sender: 1
                })),
                Event::Ignored,
                Event::Ignored,
                Event::Acked(2),
                Event::Delivery(Some(Stamp {
                    sent_ns: 20,
                    sender: 2
                })),
                Event::Delivery(None),
                Event::Acked(1),
                Event::ServerError("nats error: 'Slow Consumer'".into()),
            ]
        );
        assert_eq!(&replies[..], b"PONG\r\n");
        assert_split_invariant(wire_with_pings, &input);
    }

    #[test]
    fn malformed_input_is_an_error() {
        for bad in [
            &b"WHAT\r\n"[..],
            b"MSG subject 5\r\n",
            b"MSG subject 1 x\r\n",
            b"MSG s 1 2\r\nabXY",
            b"HMSG s 1 5 2\r\n",
        ] {
            let err = decode_all(&mut wire(), bad);
            assert!(err.is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let endless = vec![b'I'; MAX_LINE + 3];
        let mut buf = BytesMut::from(&endless[..]);
        assert!(wire().decode(&mut buf, &mut BytesMut::new()).is_err());
    }

    #[test]
    fn room_members_subscribe_to_the_room_subject_and_publish_there() {
        let mut wire = wire();
        let mut out = BytesMut::new();
        wire.open(
            &mut out,
            Role {
                client: 0,
                listen: Some(Listen::Room {
                    room: 1,
                    creator: false,
                }),
            },
        );
        wire.publish(&mut out, Dest::Room(1), b"m");
        wire.end_batch(&mut out);
        let mut expected = CONNECT.to_vec();
        expected.extend(b"SUB suda-bench.room.1 1\r\nPING\r\n");
        expected.extend(b"PUB suda-bench.room.1 1\r\nm\r\nPING\r\n");
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&expected)
        );
    }

    #[test]
    fn room_stream_becomes_events_however_it_is_split() {
        let opened = || {
            let mut wire = wire();
            wire.open(
                &mut BytesMut::new(),
                Role {
                    client: 0,
                    listen: Some(Listen::Room {
                        room: 1,
                        creator: false,
                    }),
                },
            );
            wire.publish(&mut BytesMut::new(), Dest::Room(1), b"m");
            wire.end_batch(&mut BytesMut::new());
            wire
        };
        let first = message(11, 5);
        let mut input = b"INFO {}\r\nPONG\r\n".to_vec();
        input.extend(format!("MSG suda-bench.room.1 1 {}\r\n", first.len()).as_bytes());
        input.extend(&first);
        input.extend(b"\r\nPONG\r\n");
        let (events, _) = decode_all(&mut opened(), &input).expect("decodes");
        assert_eq!(
            events,
            vec![
                Event::Ignored,
                Event::Ready,
                Event::Delivery(Some(Stamp {
                    sent_ns: 11,
                    sender: 5
                })),
                Event::Acked(1),
            ]
        );
        assert_split_invariant(opened, &input);
    }
}
