//! Password logins against the accounts in the store.

use std::sync::Arc;

use suda_protocol::ResultCode;
use tracing::warn;

use super::{AuthDecision, AuthFuture, Authenticator};
use crate::storage::Storage;

/// Checks passwords with Argon2id, off the async workers and bounded in concurrency.
#[derive(Debug)]
pub(crate) struct AccountsAuth {
    storage: Arc<Storage>,
    /// `registered`: only accounts log in. `open`: a name without an account logs in freely,
    /// one with an account needs its password (as IRC services do).
    accounts_only: bool,
}

impl AccountsAuth {
    pub(crate) fn new(storage: Arc<Storage>, accounts_only: bool) -> Self {
        Self {
            storage,
            accounts_only,
        }
    }
}

impl Authenticator for AccountsAuth {
    fn authenticate<'a>(&'a self, username: &'a str, password: &'a [u8]) -> AuthFuture<'a> {
        Box::pin(async move {
            let account = match self.storage.store.account(username).await {
                Ok(account) => account,
                Err(err) => {
                    warn!(%err, "account lookup failed");
                    return AuthDecision::Reject(ResultCode::SERVER_BUSY);
                }
            };
            if account.is_none() && !self.accounts_only {
                return AuthDecision::Accept;
            }
            // An unknown user costs a (dummy) verification too: the answer and its timing are
            // the same as for a wrong password.
            let hash = account.as_ref().map(|a| a.password_hash.as_str());
            match self.storage.hasher.verify_user(password, hash).await {
                Ok(true) => AuthDecision::Proven,
                Ok(false) => AuthDecision::Reject(ResultCode::INVALID_CREDENTIALS),
                Err(err) => {
                    warn!(%err, "password check failed");
                    AuthDecision::Reject(ResultCode::INVALID_CREDENTIALS)
                }
            }
        })
    }
}
