//! Length-prefixed strings exactly as they travel.

use std::borrow::Cow;
use std::fmt;
use std::str::Utf8Error;

use bytes::Bytes;

/// A `str8` or `str16` field: bytes that are *meant* to be UTF-8.
///
/// Decoding does not insist on UTF-8, because the protocol treats bad text as a request error
/// (`INVALID_MESSAGE`, connection kept) rather than a framing error (connection closed): the
/// receiver decides. Decoded values share the receive buffer (a [`Bytes`] slice), so a chat text
/// travels from the sender's read buffer to every recipient's notification without a copy.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct WireStr(Bytes);

impl WireStr {
    /// A string known at compile time.
    pub const fn from_static(s: &'static str) -> Self {
        Self(Bytes::from_static(s.as_bytes()))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The text, if it is valid UTF-8.
    pub fn to_str(&self) -> Result<&str, Utf8Error> {
        std::str::from_utf8(&self.0)
    }

    /// The text with invalid sequences replaced by U+FFFD, for display.
    pub fn to_string_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the string has no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The underlying shared bytes.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl From<Bytes> for WireStr {
    fn from(bytes: Bytes) -> Self {
        Self(bytes)
    }
}

impl From<&str> for WireStr {
    fn from(s: &str) -> Self {
        Self(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for WireStr {
    fn from(s: String) -> Self {
        Self(Bytes::from(s))
    }
}

impl From<&[u8]> for WireStr {
    fn from(b: &[u8]) -> Self {
        Self(Bytes::copy_from_slice(b))
    }
}

impl PartialEq<str> for WireStr {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for WireStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl fmt::Debug for WireStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_string_lossy(), f)
    }
}

impl fmt::Display for WireStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string_lossy())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_is_checked_on_demand_not_on_construction() {
        let bad = WireStr::from(&[0x68, 0xff, 0x69][..]);
        assert!(bad.to_str().is_err());
        assert_eq!(bad.to_string_lossy(), "h\u{fffd}i");
        assert_eq!(bad.len(), 3);
        let good = WireStr::from("héllo");
        assert_eq!(good.to_str(), Ok("héllo"));
        assert_eq!(good, "héllo");
        assert!(WireStr::default().is_empty());
    }
}
