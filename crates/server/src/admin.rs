//! `suda-server user …`: account administration on the server's own store.
//!
//! The commands open the store the server would open with the same settings (`--store`,
//! `--data-dir`, `--database-url`, the config file, `SUDA_*`), so an operator can create the
//! first accounts before starting a server in `registered` mode, reset a password, or remove an
//! account. They may run while the server runs: PostgreSQL takes any number of clients, and
//! SQLite in WAL mode lets a second process write, waiting (busy timeout) for the server's
//! transactions.
//!
//! Passwords never appear on the command line (where `ps` and shell history would show them):
//! they are read from standard input, first line, when it is not a terminal (`echo pw | suda-server
//! user add alice`), or asked for twice without echo on the terminal. They are hashed with the
//! store's Argon2id ([`suda_store::password`]), off the async thread.
//!
//! The functions here take a [`Store`] and a writer, so they are tested without a process;
//! `main.rs` only parses the command line and maps errors to the exit status.

use std::io::{self, BufRead, Write};

use clap::Subcommand;
use suda_store::accounts::{Account, MAX_ACCOUNTS_PAGE};
use suda_store::password::{Hasher, PasswordError};
use suda_store::{Store, StoreConfig};

use crate::auth::is_valid_username;
use crate::config::{Config, StoreKind};
use crate::storage::PASSWORD_LEN;

/// The `user` subcommands.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum UserCommand {
    /// Create an account. The password is read from standard input (first line) when that is not
    /// a terminal, else asked for twice without echo
    Add {
        /// Username: 1-32 of A-Z a-z 0-9 _ -, unique case-insensitively
        name: String,
    },
    /// Delete an account and its pending offline whispers (its messages stay in the history)
    Remove {
        /// Username (any case)
        name: String,
    },
    /// Set a new password, read like the one of `user add`
    Passwd {
        /// Username (any case)
        name: String,
    },
    /// List accounts in name order, one per line: name, a tab, creation time (UTC)
    List {
        /// Start after this name (for paging: the last name of the previous page)
        #[arg(long, value_name = "NAME")]
        after: Option<String>,
        /// List at most this many accounts [default: all]
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
    },
}

/// Why an administration command failed. Every variant exits with status 1; the message is for
/// the operator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// `user add` of a name that has an account (compared case-insensitively).
    #[error("user {0} already exists")]
    AlreadyExists(String),
    /// `user remove` or `user passwd` of a name without an account.
    #[error("no user {0}")]
    NoSuchUser(String),
    /// The name breaks the username rules.
    #[error("invalid username {0:?}: use 1-32 of A-Z a-z 0-9 _ -")]
    InvalidName(String),
    /// The password is empty, too long, or the two typed differ.
    #[error("{0}")]
    BadPassword(&'static str),
    /// The settings say `store = none`.
    #[error("the user commands need a store, but the store is `none` (see --store)")]
    NoStore,
    /// The settings say `store = postgres` without a URL (normally caught by validation).
    #[error("store = postgres needs --database-url")]
    NoDatabaseUrl,
    /// The store could not be opened, or a query failed.
    #[error(transparent)]
    Store(#[from] suda_store::Error),
    /// Hashing the password failed.
    #[error("cannot hash the password")]
    Hash(#[source] PasswordError),
    /// The password could not be read.
    #[error("cannot read the password")]
    ReadPassword(#[source] io::Error),
    /// Writing the output failed (for example a closed pipe).
    #[error("cannot write the output")]
    Output(#[source] io::Error),
}

/// The store configuration the server would use with `config`.
pub fn store_config(config: &Config) -> Result<StoreConfig, AdminError> {
    match config.store {
        StoreKind::Sqlite => Ok(StoreConfig::sqlite_in(&config.data_dir)),
        StoreKind::Postgres => config
            .database_url
            .as_deref()
            .map(StoreConfig::postgres)
            .ok_or(AdminError::NoDatabaseUrl),
        StoreKind::None => Err(AdminError::NoStore),
    }
}

/// Asks for a new password for the account named by the argument (see [`read_password_line`]
/// and [`prompt_password`]).
pub type PasswordSource<'a> = &'a mut dyn FnMut(&str) -> Result<Vec<u8>, AdminError>;

/// Runs `command` on `store`, writing what it did (or the listing) to `out`. `add` and `passwd`
/// ask `password` for the new password only once the cheap checks have passed (a valid, free
/// name; an existing account), so an operator never types a password for nothing. `now_ms` is
/// the creation time of an added account (Unix ms).
pub async fn run(
    command: &UserCommand,
    store: &Store,
    hasher: &Hasher,
    password: PasswordSource<'_>,
    now_ms: i64,
    out: &mut dyn Write,
) -> Result<(), AdminError> {
    match command {
        UserCommand::Add { name } => {
            if !is_valid_username(name.as_bytes()) {
                return Err(AdminError::InvalidName(name.clone()));
            }
            if let Some(existing) = store.account(name).await? {
                return Err(AdminError::AlreadyExists(existing.username));
            }
            let password = password(name)?;
            let account = add_user(store, hasher, name, &password, now_ms).await?;
            writeln!(out, "user {} added", account.username).map_err(AdminError::Output)
        }
        UserCommand::Remove { name } => {
            let removed = remove_user(store, name).await?;
            writeln!(out, "user {removed} removed").map_err(AdminError::Output)
        }
        UserCommand::Passwd { name } => {
            let Some(account) = store.account(name).await? else {
                return Err(AdminError::NoSuchUser(name.clone()));
            };
            let password = password(&account.username)?;
            let changed = set_password(store, hasher, name, &password).await?;
            writeln!(out, "password of {changed} changed").map_err(AdminError::Output)
        }
        UserCommand::List { after, limit } => {
            list_users(store, after.as_deref(), *limit, out).await?;
            Ok(())
        }
    }
}

/// Creates the account `name` with `password`, created at `now_ms` (Unix ms).
///
/// [`AdminError::InvalidName`], [`AdminError::BadPassword`], [`AdminError::AlreadyExists`] (also
/// when another process registers the name at the same moment).
pub async fn add_user(
    store: &Store,
    hasher: &Hasher,
    name: &str,
    password: &[u8],
    now_ms: i64,
) -> Result<Account, AdminError> {
    if !is_valid_username(name.as_bytes()) {
        return Err(AdminError::InvalidName(name.to_owned()));
    }
    check_password(password)?;
    // Checked before hashing so that a taken name answers at once; the unique key still decides
    // a race.
    if let Some(existing) = store.account(name).await? {
        return Err(AdminError::AlreadyExists(existing.username));
    }
    let hash = hasher.hash(password).await.map_err(AdminError::Hash)?;
    match store.create_account(name, &hash, now_ms).await {
        Ok(account) => Ok(account),
        Err(suda_store::Error::NameTaken) => Err(AdminError::AlreadyExists(name.to_owned())),
        Err(e) => Err(e.into()),
    }
}

/// Deletes the account `name`; returns its name as registered.
pub async fn remove_user(store: &Store, name: &str) -> Result<String, AdminError> {
    let Some(account) = store.account(name).await? else {
        return Err(AdminError::NoSuchUser(name.to_owned()));
    };
    match store.delete_account(name).await {
        Ok(()) => Ok(account.username),
        Err(suda_store::Error::NotFound) => Err(AdminError::NoSuchUser(name.to_owned())),
        Err(e) => Err(e.into()),
    }
}

/// Replaces the password of `name`; returns its name as registered.
pub async fn set_password(
    store: &Store,
    hasher: &Hasher,
    name: &str,
    password: &[u8],
) -> Result<String, AdminError> {
    check_password(password)?;
    let Some(account) = store.account(name).await? else {
        return Err(AdminError::NoSuchUser(name.to_owned()));
    };
    let hash = hasher.hash(password).await.map_err(AdminError::Hash)?;
    match store.set_password_hash(name, &hash).await {
        Ok(()) => Ok(account.username),
        Err(suda_store::Error::NotFound) => Err(AdminError::NoSuchUser(name.to_owned())),
        Err(e) => Err(e.into()),
    }
}

/// Writes the accounts after `after` (case-insensitively; `None`: from the first) to `out`, at
/// most `limit` of them (`None`: all), one per line as `name<TAB>created`, the creation time in
/// RFC 3339 UTC. Returns how many were written.
pub async fn list_users(
    store: &Store,
    after: Option<&str>,
    limit: Option<u64>,
    out: &mut dyn Write,
) -> Result<u64, AdminError> {
    let mut remaining = limit.unwrap_or(u64::MAX);
    let mut cursor = after.map(str::to_owned);
    let mut written = 0;
    while remaining > 0 {
        let page_size =
            u32::try_from(remaining.min(u64::from(MAX_ACCOUNTS_PAGE))).unwrap_or(MAX_ACCOUNTS_PAGE);
        let page = store.list_accounts(cursor.as_deref(), page_size).await?;
        for account in &page {
            writeln!(
                out,
                "{}\t{}",
                account.username,
                format_time(account.created_at_ms)
            )
            .map_err(AdminError::Output)?;
        }
        written += page.len() as u64;
        remaining -= page.len() as u64;
        if page.len() < page_size as usize {
            break;
        }
        cursor = page.last().map(|a| a.username_folded.clone());
    }
    out.flush().map_err(AdminError::Output)?;
    Ok(written)
}

/// Unix milliseconds as RFC 3339 UTC, to the second.
fn format_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || format!("@{ms}ms"),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

/// The server's password rule (the one `REGISTER` and `CHANGE_PASSWORD` apply), so that an
/// operator cannot set a password a user could not have chosen.
fn check_password(password: &[u8]) -> Result<(), AdminError> {
    if PASSWORD_LEN.contains(&password.len()) {
        Ok(())
    } else {
        Err(AdminError::BadPassword(
            "the password must be 8 to 128 bytes",
        ))
    }
}

/// Reads a new password from the first line of `input` (a pipe or file), without its line end.
pub fn read_password_line(input: &mut dyn BufRead) -> Result<Vec<u8>, AdminError> {
    let mut line = Vec::new();
    input
        .read_until(b'\n', &mut line)
        .map_err(AdminError::ReadPassword)?;
    if line.is_empty() {
        return Err(AdminError::BadPassword(
            "no password on standard input (pipe one line in, or run in a terminal to be asked)",
        ));
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    check_password(&line)?;
    Ok(line)
}

/// Asks for a new password for `name` on the terminal, twice, without echo.
pub fn prompt_password(name: &str) -> Result<Vec<u8>, AdminError> {
    let first = rpassword::prompt_password(format!("New password for {name}: "))
        .map_err(AdminError::ReadPassword)?;
    check_password(first.as_bytes())?;
    let second = rpassword::prompt_password("Repeat it: ").map_err(AdminError::ReadPassword)?;
    if first != second {
        return Err(AdminError::BadPassword("the two passwords differ"));
    }
    Ok(first.into_bytes())
}

#[cfg(test)]
mod tests {
    use suda_store::password::HashParams;

    use super::*;

    /// Cheap Argon2 parameters: these tests are about behaviour, not cost.
    const FAST: HashParams = HashParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };
    const T0: i64 = 1_700_000_000_000;

    async fn open() -> (tempfile::TempDir, Store, Hasher) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(StoreConfig::sqlite_in(dir.path()))
            .await
            .expect("open store");
        (dir, store, Hasher::new(FAST, 2).expect("hasher"))
    }

    async fn list(store: &Store, after: Option<&str>, limit: Option<u64>) -> String {
        let mut out = Vec::new();
        list_users(store, after, limit, &mut out)
            .await
            .expect("list");
        String::from_utf8(out).expect("utf-8")
    }

    #[tokio::test]
    async fn add_list_passwd_remove() {
        let (_dir, store, hasher) = open().await;
        assert_eq!(list(&store, None, None).await, "");

        let alice = add_user(&store, &hasher, "Alice", b"first password", T0)
            .await
            .expect("add");
        assert_eq!(alice.username, "Alice");
        assert!(
            suda_store::password::verify(b"first password", &alice.password_hash).expect("phc")
        );
        add_user(&store, &hasher, "bob", b"password", T0 + 1000)
            .await
            .expect("add");
        assert_eq!(
            list(&store, None, None).await,
            "Alice\t2023-11-14T22:13:20Z\nbob\t2023-11-14T22:13:21Z\n"
        );

        assert_eq!(
            set_password(&store, &hasher, "ALICE", b"second password")
                .await
                .expect("passwd"),
            "Alice"
        );
        let stored = store
            .account("alice")
            .await
            .expect("query")
            .expect("exists");
        assert!(
            suda_store::password::verify(b"second password", &stored.password_hash).expect("phc")
        );
        assert!(
            !suda_store::password::verify(b"first password", &stored.password_hash).expect("phc")
        );

        assert_eq!(remove_user(&store, "alice").await.expect("remove"), "Alice");
        assert_eq!(
            list(&store, None, None).await,
            "bob\t2023-11-14T22:13:21Z\n"
        );
    }

    #[tokio::test]
    async fn error_cases() {
        let (_dir, store, hasher) = open().await;
        add_user(&store, &hasher, "alice", b"password", T0)
            .await
            .expect("add");
        let err = add_user(&store, &hasher, "ALICE", b"password", T0)
            .await
            .expect_err("taken");
        assert!(matches!(err, AdminError::AlreadyExists(_)));
        assert_eq!(err.to_string(), "user alice already exists");
        let err = remove_user(&store, "nobody").await.expect_err("missing");
        assert_eq!(err.to_string(), "no user nobody");
        let err = set_password(&store, &hasher, "nobody", b"password")
            .await
            .expect_err("missing");
        assert!(matches!(err, AdminError::NoSuchUser(_)));
        for bad in ["", "a b", "é", &"x".repeat(33)] {
            assert!(matches!(
                add_user(&store, &hasher, bad, b"password", T0).await,
                Err(AdminError::InvalidName(_))
            ));
        }
        assert!(matches!(
            add_user(&store, &hasher, "carol", b"", T0).await,
            Err(AdminError::BadPassword(_))
        ));
        for bad in [&b"short"[..], &[b'x'; 129]] {
            assert!(matches!(
                set_password(&store, &hasher, "alice", bad).await,
                Err(AdminError::BadPassword(_))
            ));
        }
        // Nothing was changed by the failures.
        assert_eq!(store.count_accounts().await.expect("count"), 1);
    }

    #[tokio::test]
    async fn listing_pages() {
        let (_dir, store, hasher) = open().await;
        for (i, name) in ["dave", "Carol", "alice", "Bob", "eve"].iter().enumerate() {
            add_user(&store, &hasher, name, b"password", T0 + i as i64)
                .await
                .expect("add");
        }
        let names = |text: String| -> Vec<String> {
            text.lines()
                .map(|l| l.split('\t').next().unwrap_or_default().to_owned())
                .collect()
        };
        assert_eq!(
            names(list(&store, None, None).await),
            ["alice", "Bob", "Carol", "dave", "eve"]
        );
        assert_eq!(names(list(&store, None, Some(2)).await), ["alice", "Bob"]);
        assert_eq!(
            names(list(&store, Some("bob"), Some(2)).await),
            ["Carol", "dave"]
        );
        assert_eq!(
            names(list(&store, Some("CAROL"), None).await),
            ["dave", "eve"]
        );
        assert_eq!(list(&store, Some("eve"), None).await, "");
        assert_eq!(list(&store, None, Some(0)).await, "");
    }

    #[tokio::test]
    async fn run_asks_for_a_password_only_when_it_will_be_used() {
        let (_dir, store, hasher) = open().await;
        let mut out = Vec::new();
        let mut asked = Vec::new();
        let mut source = |name: &str| {
            asked.push(name.to_owned());
            Ok(b"password".to_vec())
        };
        let add = |name: &str| UserCommand::Add { name: name.into() };
        let passwd = |name: &str| UserCommand::Passwd { name: name.into() };
        run(&add("Alice"), &store, &hasher, &mut source, T0, &mut out)
            .await
            .expect("add");
        let failures = [
            (add("ALICE"), "user Alice already exists"),
            (
                add("no way"),
                "invalid username \"no way\": use 1-32 of A-Z a-z 0-9 _ -",
            ),
            (passwd("bob"), "no user bob"),
        ];
        for (command, message) in failures {
            let err = run(&command, &store, &hasher, &mut source, T0, &mut out)
                .await
                .expect_err("fails");
            assert_eq!(err.to_string(), message);
        }
        run(&passwd("alice"), &store, &hasher, &mut source, T0, &mut out)
            .await
            .expect("passwd");
        let list_all = UserCommand::List {
            after: None,
            limit: None,
        };
        run(&list_all, &store, &hasher, &mut source, T0, &mut out)
            .await
            .expect("list");
        run(
            &UserCommand::Remove {
                name: "alice".into(),
            },
            &store,
            &hasher,
            &mut source,
            T0,
            &mut out,
        )
        .await
        .expect("remove");
        assert_eq!(asked, ["Alice", "Alice"]);
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "user Alice added\npassword of Alice changed\nAlice\t2023-11-14T22:13:20Z\nuser Alice removed\n"
        );
        // A password the source refuses stops the command.
        let mut refuse = |_: &str| Err(AdminError::BadPassword("the two passwords differ"));
        let err = run(
            &add("carol"),
            &store,
            &hasher,
            &mut refuse,
            T0,
            &mut Vec::new(),
        )
        .await
        .expect_err("refused");
        assert_eq!(err.to_string(), "the two passwords differ");
        assert_eq!(store.count_accounts().await.expect("count"), 0);
    }

    #[test]
    fn password_lines() {
        let read = |input: &[u8]| read_password_line(&mut &input[..]);
        assert_eq!(read(b"secret-1\n").expect("ok"), b"secret-1");
        assert_eq!(read(b"secret-1\r\nsecond line\n").expect("ok"), b"secret-1");
        assert_eq!(read(b"no newline").expect("ok"), b"no newline");
        assert_eq!(read(b" spaces kept \n").expect("ok"), b" spaces kept ");
        assert!(matches!(read(b""), Err(AdminError::BadPassword(_))));
        assert!(matches!(read(b"\n"), Err(AdminError::BadPassword(_))));
        assert!(matches!(read(b"short\n"), Err(AdminError::BadPassword(_))));
        assert!(matches!(
            read(&[b'x'; 300]),
            Err(AdminError::BadPassword(_))
        ));
    }

    #[test]
    fn store_choice_follows_the_config() {
        let mut config = Config::default();
        assert!(store_config(&config).is_ok());
        config.store = StoreKind::None;
        assert!(matches!(store_config(&config), Err(AdminError::NoStore)));
        config.store = StoreKind::Postgres;
        assert!(matches!(
            store_config(&config),
            Err(AdminError::NoDatabaseUrl)
        ));
        config.database_url = Some("postgres://u:p@localhost/suda".into());
        assert!(matches!(
            store_config(&config).map(|c| c.backend),
            Ok(suda_store::config::Backend::Postgres { .. })
        ));
    }
}
