//! Accounts: registration, lookup by name, password change, deletion, paged listing.
//!
//! Names are unique case-insensitively: each account keeps the name as typed
//! ([`Account::username`]) and its ASCII-lowercase [`fold`] ([`Account::username_folded`]), the
//! unique key. The store does not check the naming rules; the server does that before it calls
//! here. Password hashes are opaque strings to the store (see [`password`](crate::password)).

use crate::db::{Db, with_pool};
use crate::error::{Error, Result};
use crate::store::Store;

/// Largest page [`Store::list_accounts`] returns.
pub const MAX_ACCOUNTS_PAGE: u32 = 1000;

/// A registered account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Database id (stable; later tables such as room ownership refer to accounts by name).
    pub id: i64,
    /// The name as typed at registration.
    pub username: String,
    /// [`fold`]`(username)`: the unique, case-insensitive key.
    pub username_folded: String,
    /// The password hash in PHC string format (`$argon2id$v=19$m=…`).
    pub password_hash: String,
    /// When the account was created, Unix milliseconds.
    pub created_at_ms: i64,
}

/// The case-insensitive key of a name: ASCII lowercase, the same rule as the protocol's.
pub fn fold(name: &str) -> String {
    name.to_ascii_lowercase()
}

type AccountRow = (i64, String, String, String, i64);

/// `SELECT <the account columns> $rest`, as one literal.
macro_rules! select_account {
    ($rest:literal) => {
        concat!(
            "SELECT id, username, username_folded, password_hash, created_at_ms ",
            $rest
        )
    };
}

fn account((id, username, username_folded, password_hash, created_at_ms): AccountRow) -> Account {
    Account {
        id,
        username,
        username_folded,
        password_hash,
        created_at_ms,
    }
}

impl Store {
    /// Registers `username` with `password_hash`, created at `created_at_ms` (Unix ms).
    ///
    /// [`Error::NameTaken`] if an account with the same folded name exists. Two concurrent
    /// registrations of one name: exactly one succeeds, the other gets `NameTaken` (the unique
    /// constraint decides).
    pub async fn create_account(
        &self,
        username: &str,
        password_hash: &str,
        created_at_ms: i64,
    ) -> Result<Account> {
        let username = username.to_owned();
        let password_hash = password_hash.to_owned();
        self.run(
            move |db| async move { create(&db, &username, &password_hash, created_at_ms).await },
        )
        .await
    }

    /// The account called `name` (compared case-insensitively), if any.
    pub async fn account(&self, name: &str) -> Result<Option<Account>> {
        let folded = fold(name);
        self.run(move |db| async move {
            let sql = select_account!("FROM accounts WHERE username_folded = $1");
            let row: Option<AccountRow> = with_pool!(&db, |pool| {
                sqlx::query_as(sql).bind(&folded).fetch_optional(pool).await
            })?;
            Ok(row.map(account))
        })
        .await
    }

    /// Replaces the password hash of `name`. [`Error::NotFound`] if there is no such account.
    pub async fn set_password_hash(&self, name: &str, password_hash: &str) -> Result<()> {
        let folded = fold(name);
        let password_hash = password_hash.to_owned();
        self.run(move |db| async move {
            let done = with_pool!(&db, |pool| {
                sqlx::query("UPDATE accounts SET password_hash = $1 WHERE username_folded = $2")
                    .bind(&password_hash)
                    .bind(&folded)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
            })?;
            found(done)
        })
        .await
    }

    /// Deletes the account `name` and its pending offline whispers. Its messages stay in the
    /// history (they are the other participants' history too). [`Error::NotFound`] if there is
    /// no such account.
    pub async fn delete_account(&self, name: &str) -> Result<()> {
        let folded = fold(name);
        self.run(move |db| async move {
            let done = with_pool!(&db, |pool| {
                sqlx::query("DELETE FROM accounts WHERE username_folded = $1")
                    .bind(&folded)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
            })?;
            found(done)
        })
        .await
    }

    /// One page of accounts in folded-name order: those after `after` (a folded name from the
    /// previous page, or `None` for the first page), at most `limit` (capped at
    /// [`MAX_ACCOUNTS_PAGE`]). A page shorter than `limit` is the last.
    pub async fn list_accounts(&self, after: Option<&str>, limit: u32) -> Result<Vec<Account>> {
        let after = after.map(fold).unwrap_or_default();
        let limit = i64::from(limit.min(MAX_ACCOUNTS_PAGE));
        self.run(move |db| async move {
            let sql = select_account!(
                "FROM accounts WHERE username_folded > $1 ORDER BY username_folded LIMIT $2"
            );
            let rows: Vec<AccountRow> = with_pool!(&db, |pool| {
                sqlx::query_as(sql)
                    .bind(&after)
                    .bind(limit)
                    .fetch_all(pool)
                    .await
            })?;
            Ok(rows.into_iter().map(account).collect())
        })
        .await
    }

    /// How many accounts exist.
    pub async fn count_accounts(&self) -> Result<u64> {
        self.run(|db| async move {
            let (n,): (i64,) = with_pool!(&db, |pool| {
                sqlx::query_as("SELECT COUNT(*) FROM accounts")
                    .fetch_one(pool)
                    .await
            })?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }
}

async fn create(
    db: &Db,
    username: &str,
    password_hash: &str,
    created_at_ms: i64,
) -> Result<Account> {
    let sql = "INSERT INTO accounts (username, username_folded, password_hash, created_at_ms) \
               VALUES ($1, $2, $3, $4) \
               RETURNING id, username, username_folded, password_hash, created_at_ms";
    let folded = fold(username);
    let row: std::result::Result<AccountRow, sqlx::Error> = with_pool!(db, |pool| {
        sqlx::query_as(sql)
            .bind(username)
            .bind(&folded)
            .bind(password_hash)
            .bind(created_at_ms)
            .fetch_one(pool)
            .await
    });
    match row {
        Ok(row) => Ok(account(row)),
        Err(e) if Error::is_unique_violation(&e) => Err(Error::NameTaken),
        Err(e) => Err(e.into()),
    }
}

/// `NotFound` when an update or delete touched no row.
pub(crate) fn found(rows_affected: u64) -> Result<()> {
    if rows_affected == 0 {
        Err(Error::NotFound)
    } else {
        Ok(())
    }
}
