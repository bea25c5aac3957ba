//! Deciding who may log in.
//!
//! Authentication is a trait so that password-checked accounts and application-issued tokens can
//! be plugged in without touching the session logic. An implementation may be slow (a database
//! round trip, a deliberately expensive password hash), so it returns a future and runs on the
//! connection's own task: only that connection waits.

pub(crate) mod accounts;
pub mod jwt;

use std::future::Future;
use std::pin::Pin;

use suda_protocol::ResultCode;

/// The outcome of checking a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthDecision {
    /// The name may be used, though nothing proved who is using it (an `open` name).
    Accept,
    /// Credentials (a password, a signed token) proved the identity: such a login may take
    /// over the user's detached session.
    Proven,
    /// Refused, with the result code the client gets.
    Reject(ResultCode),
}

/// A boxed future, as returned by [`Authenticator::authenticate`].
pub type AuthFuture<'a> = Pin<Box<dyn Future<Output = AuthDecision> + Send + 'a>>;

/// Checks credentials at login. The username has already passed the naming rules.
pub trait Authenticator: Send + Sync + 'static {
    /// Decides whether `username` may log in with `password`.
    fn authenticate<'a>(&'a self, username: &'a str, password: &'a [u8]) -> AuthFuture<'a>;
}

/// Auth mode `open`: any valid name may log in and the password is ignored. Uniqueness of online
/// names is the directory's job, not the authenticator's.
#[derive(Debug, Default, Clone, Copy)]
pub struct OpenAuth;

impl Authenticator for OpenAuth {
    fn authenticate<'a>(&'a self, _username: &'a str, _password: &'a [u8]) -> AuthFuture<'a> {
        Box::pin(std::future::ready(AuthDecision::Accept))
    }
}

/// Whether `name` follows the username rules: 1–32 of ASCII letters, digits, `_` and `-`.
pub fn is_valid_username(name: &[u8]) -> bool {
    (1..=suda_protocol::MAX_USERNAME_LEN).contains(&name.len())
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn username_rules() {
        for ok in ["a", "Alice", "bob_99", "x-y", &"z".repeat(32)] {
            assert!(is_valid_username(ok.as_bytes()), "{ok}");
        }
        for bad in ["", &"z".repeat(33), "a b", "é", "a.b", "a\n", "<script>"] {
            assert!(!is_valid_username(bad.as_bytes()), "{bad:?}");
        }
    }
}
