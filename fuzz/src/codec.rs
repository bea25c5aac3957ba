//! The properties the `decode` and `framing` targets check of `suda_protocol`'s codec.

use arbitrary::Arbitrary;
use bytes::BytesMut;
use suda_protocol::{
    ChatNotification, DecodeError, HEADER_LEN, MAX_PACKET_LIMIT, Packet, PacketType, decode,
    encode, peek_chat_notification,
};

/// The smallest `max_packet` the targets use: anything below the header size is meaningless.
const MIN_MAX_PACKET: usize = HEADER_LEN;

/// Clamps a fuzzer-chosen limit into the range a peer could be configured with.
pub fn clamp_max_packet(raw: u16) -> usize {
    usize::from(raw).clamp(MIN_MAX_PACKET, MAX_PACKET_LIMIT)
}

/// How decoding a byte stream ended after the packets it produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// No complete packet is left; these bytes wait for more.
    Incomplete(Vec<u8>),
    /// The stream is malformed here.
    Failed(DecodeError),
}

/// Target `decode`: the first two bytes (little-endian) are `max_packet`, clamped to
/// `4..=65535`; the rest is a byte stream decoded packet by packet.
///
/// Checks: no panic; every `Ok(Some)` consumes at least a header and at most `max_packet` bytes;
/// a decoded packet re-encodes to exactly the bytes it was decoded from; `Ok(None)` consumes
/// nothing and only happens when the next packet really is incomplete; an error is the one the
/// header or body deserves.
pub fn check_decode(data: &[u8]) {
    let Some((limit, stream)) = data.split_first_chunk::<2>() else {
        return;
    };
    let max_packet = clamp_max_packet(u16::from_le_bytes(*limit));
    let mut buf = BytesMut::from(stream);
    loop {
        let before = buf.clone();
        let peeked = peek_chat_notification(&before, max_packet);
        let decoded = decode(&mut buf, max_packet);
        check_chat_fast_path(&before, &peeked, &decoded);
        match decoded {
            Ok(Some(packet)) => {
                let consumed = before.len() - buf.len();
                assert!(
                    consumed >= HEADER_LEN,
                    "decoded {packet:?} from only {consumed} bytes"
                );
                assert!(
                    consumed <= max_packet,
                    "decoded {consumed} bytes with max_packet {max_packet}"
                );
                assert_eq!(
                    declared_size(&before),
                    Some(consumed),
                    "consumed bytes differ from the header's size"
                );
                assert_eq!(
                    &before[consumed..],
                    &buf[..],
                    "decode disturbed the bytes after the packet"
                );
                let mut again = BytesMut::new();
                encode(&packet, &mut again).expect("a decoded packet is always encodable");
                assert_eq!(
                    &again[..],
                    &before[..consumed],
                    "{packet:?} re-encodes differently"
                );
                assert_eq!(
                    suda_protocol::codec::encoded_len(&packet),
                    Ok(consumed),
                    "encoded_len disagrees with the wire size of {packet:?}"
                );
            }
            Ok(None) => {
                assert_eq!(buf, before, "Ok(None) consumed bytes");
                if buf.len() >= HEADER_LEN {
                    let size = declared_size(&buf).expect("a whole header");
                    assert!(
                        buf.len() < size,
                        "a complete {size}-byte packet was reported incomplete"
                    );
                }
                return;
            }
            Err(err) => {
                check_error(&before, max_packet, &err);
                return;
            }
        }
    }
}

/// `peek_chat_notification` must read a chat notification exactly as `decode` does, refuse it with
/// the same error, and leave every other packet alone.
fn check_chat_fast_path(
    buf: &[u8],
    peeked: &Result<Option<ChatNotification<'_>>, DecodeError>,
    decoded: &Result<Option<Packet>, DecodeError>,
) {
    let is_chat = |raw: u16| {
        [
            PacketType::BroadcastNotify,
            PacketType::WhisperNotify,
            PacketType::RoomChatNotify,
        ]
        .iter()
        .any(|t| *t as u16 == raw)
    };
    let raw_type = (buf.len() >= HEADER_LEN).then(|| u16::from_le_bytes([buf[2], buf[3]]));
    match (peeked, decoded) {
        (Ok(Some(view)), Ok(Some(packet))) => {
            assert_eq!(
                Some(*view),
                ChatNotification::of(packet),
                "the fast path read different fields"
            );
            assert_eq!(Some(view.size), declared_size(buf));
        }
        (Ok(None), Ok(Some(packet))) => assert!(
            !is_chat(packet.packet_type() as u16),
            "the fast path missed {packet:?}"
        ),
        (Ok(None), Ok(None)) => {}
        (Err(peek_err), Err(err)) => assert_eq!(peek_err, err, "the fast path refused differently"),
        (Ok(None), Err(err)) => assert!(
            !raw_type.is_some_and(is_chat),
            "the fast path accepted as incomplete what decode refused: {err:?}"
        ),
        (peeked, decoded) => panic!("fast path {peeked:?} against decode {decoded:?}"),
    }
}

/// The header's `size`, if a header is there.
fn declared_size(buf: &[u8]) -> Option<usize> {
    buf.first_chunk::<2>()
        .map(|size| usize::from(u16::from_le_bytes(*size)))
}

/// An error must match what the header says, and body errors need the whole frame.
fn check_error(buf: &[u8], max_packet: usize, err: &DecodeError) {
    let size = declared_size(buf).expect("no error before a header");
    assert!(buf.len() >= HEADER_LEN, "{err:?} before a whole header");
    let raw_type = u16::from_le_bytes([buf[2], buf[3]]);
    match *err {
        DecodeError::TooShort { size: got } => {
            assert_eq!(got, size);
            assert!(size < HEADER_LEN, "{err:?} for size {size}");
        }
        DecodeError::TooLarge { size: got, max } => {
            assert_eq!((got, max), (size, max_packet));
            assert!(size > max_packet, "{err:?}");
        }
        DecodeError::UnknownType(got) => {
            assert_eq!(got, raw_type);
            assert!(suda_protocol::PacketType::from_u16(raw_type).is_none());
        }
        DecodeError::Truncated { packet, .. } | DecodeError::TrailingBytes { packet, .. } => {
            assert_eq!(packet as u16, raw_type, "{err:?} names the wrong packet");
            assert!(buf.len() >= size, "{err:?} judged before the body arrived");
            if let DecodeError::TrailingBytes { extra, .. } = *err {
                assert!(extra > 0 && extra <= size - HEADER_LEN, "{err:?}");
            }
        }
    }
}

/// Input of the `framing` target: one byte stream and where to cut it.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct FramingInput<'a> {
    /// The receiver's `max_packet`, clamped to `4..=65535`.
    pub max_packet: u16,
    /// Lengths of the chunks the stream arrives in, in order (0 is an empty read); whatever the
    /// lengths leave over arrives as one last chunk.
    pub chunk_lens: Vec<u8>,
    /// The stream.
    pub stream: &'a [u8],
}

impl<'a> FramingInput<'a> {
    /// The stream cut into its chunks.
    pub fn chunks(&self) -> Vec<&'a [u8]> {
        let mut rest = self.stream;
        let mut chunks = Vec::with_capacity(self.chunk_lens.len() + 1);
        for &len in &self.chunk_lens {
            let (chunk, tail) = rest.split_at(usize::from(len).min(rest.len()));
            chunks.push(chunk);
            rest = tail;
        }
        chunks.push(rest);
        chunks
    }
}

/// Decodes everything `buf` holds, the way a reader does after each read.
fn drain(buf: &mut BytesMut, max_packet: usize, out: &mut Vec<Packet>) -> Result<(), DecodeError> {
    while let Some(packet) = decode(buf, max_packet)? {
        out.push(packet);
    }
    Ok(())
}

/// Target `framing`: feeding the chunks one by one, decoding after each, must give the same
/// packets and the same end (first error, or the same incomplete tail) as decoding the whole
/// stream at once.
pub fn check_framing(input: &FramingInput<'_>) {
    let max_packet = clamp_max_packet(input.max_packet);

    let mut whole = BytesMut::from(input.stream);
    let mut expected = Vec::new();
    let expected_end = match drain(&mut whole, max_packet, &mut expected) {
        Ok(()) => End::Incomplete(whole.to_vec()),
        Err(err) => End::Failed(err),
    };

    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    let mut got_end = None;
    for chunk in input.chunks() {
        buf.extend_from_slice(chunk);
        if let Err(err) = drain(&mut buf, max_packet, &mut got) {
            got_end = Some(End::Failed(err));
            break;
        }
    }
    let got_end = got_end.unwrap_or_else(|| End::Incomplete(buf.to_vec()));

    assert_eq!(got, expected, "chunked decoding framed different packets");
    assert_eq!(got_end, expected_end, "chunked decoding ended differently");
}
