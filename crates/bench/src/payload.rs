//! What every benchmark message carries: when it was sent and by which client.
//!
//! The first 16 bytes are the send time in lowercase hex nanoseconds since the process-wide epoch
//! of [`now_ns`], the next 8 the sending client's index in hex, the rest `x` padding up to the
//! requested size. Hex keeps the text valid UTF-8, which suda insists on, and every target carries
//! it unchanged, so one parser serves all three. All clients live in one process and read one
//! monotonic clock, so `receive time - stamp` is a true one-way latency.

use std::sync::LazyLock;
use std::time::Instant;

/// Bytes the stamp and the sender index take; the smallest message the bench can send.
pub const HEADER_LEN: usize = 24;

const STAMP_LEN: usize = 16;

static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Nanoseconds since the process-wide epoch (the first call), on the monotonic clock.
pub fn now_ns() -> u64 {
    // u64 nanoseconds last 584 years, so the truncation never happens in practice.
    EPOCH.elapsed().as_nanos() as u64
}

/// The monotonic instant `ns` nanoseconds after the [`now_ns`] epoch, for timers.
pub(crate) fn instant_at(ns: u64) -> Instant {
    *EPOCH + std::time::Duration::from_nanos(ns)
}

/// What [`parse`] reads back out of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Send time, nanoseconds since the [`now_ns`] epoch.
    pub sent_ns: u64,
    /// Index of the client that sent it.
    pub sender: u32,
}

/// A message buffer of `size` bytes: padding now, a header later via [`write_header`].
///
/// `None` when `size` is below [`HEADER_LEN`].
pub fn new_message(size: usize) -> Option<Vec<u8>> {
    (size >= HEADER_LEN).then(|| vec![b'x'; size])
}

/// Writes the stamp and sender into the first [`HEADER_LEN`] bytes of `message`.
///
/// # Panics
/// If `message` is shorter than [`HEADER_LEN`]; [`new_message`] never makes one.
pub fn write_header(message: &mut [u8], sent_ns: u64, sender: u32) {
    write_hex(&mut message[..STAMP_LEN], sent_ns);
    write_hex(&mut message[STAMP_LEN..HEADER_LEN], u64::from(sender));
}

/// Reads the stamp and sender back, `None` if `message` does not start with a valid header.
pub fn parse(message: &[u8]) -> Option<Stamp> {
    let header = message.get(..HEADER_LEN)?;
    let sent_ns = read_hex(&header[..STAMP_LEN])?;
    let sender = u32::try_from(read_hex(&header[STAMP_LEN..])?).ok()?;
    Some(Stamp { sent_ns, sender })
}

fn write_hex(dst: &mut [u8], mut value: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for byte in dst.iter_mut().rev() {
        *byte = DIGITS[(value & 0xf) as usize];
        value >>= 4;
    }
}

fn read_hex(src: &[u8]) -> Option<u64> {
    src.iter().try_fold(0u64, |acc, &c| {
        let digit = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        Some((acc << 4) | u64::from(digit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_keeps_padding() {
        let mut message = new_message(40).expect("large enough");
        write_header(&mut message, 0x0123_4567_89ab_cdef, 4_000_000);
        assert_eq!(&message[..16], b"0123456789abcdef");
        assert_eq!(&message[16..24], b"003d0900");
        assert!(message[24..].iter().all(|&b| b == b'x'));
        assert_eq!(
            parse(&message),
            Some(Stamp {
                sent_ns: 0x0123_4567_89ab_cdef,
                sender: 4_000_000
            })
        );
    }

    #[test]
    fn extremes_round_trip() {
        let mut message = new_message(HEADER_LEN).expect("exactly the header");
        for (ns, sender) in [(0, 0), (u64::MAX, u32::MAX), (1, 1)] {
            write_header(&mut message, ns, sender);
            assert_eq!(
                parse(&message),
                Some(Stamp {
                    sent_ns: ns,
                    sender
                })
            );
        }
    }

    #[test]
    fn too_small_or_foreign_messages_are_refused() {
        assert_eq!(new_message(HEADER_LEN - 1), None);
        assert_eq!(parse(b"0123456789abcdef0000000"), None);
        assert_eq!(parse(b"0123456789ABCDEF00000000"), None);
        assert_eq!(parse(b"hello, this is a person typing"), None);
    }

    #[test]
    fn the_clock_is_monotonic() {
        let a = now_ns();
        let b = now_ns();
        assert!(b >= a);
    }
}
