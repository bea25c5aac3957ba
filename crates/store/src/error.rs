//! The storage error type: one enum whose variants the server matches on.

use std::path::PathBuf;

/// `Result` with the storage [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in the storage layer.
///
/// Match on the variants, never on the text: the server answers `NameTaken` and `NotFound` to the
/// client, and treats the others as a storage failure (`SERVER_BUSY`, a log line).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An account with this name (compared case-insensitively) already exists.
    #[error("the name is already taken")]
    NameTaken,
    /// No such account (or, for an offline whisper, the recipient has no account).
    #[error("no such account")]
    NotFound,
    /// The recipient's mailbox of offline whispers holds its maximum already.
    #[error("the recipient's offline mailbox is full")]
    MailboxFull,
    /// The configured database URL cannot be used.
    #[error("invalid database URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL, with any password replaced by `***`.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// The SQLite data directory cannot be created or written.
    #[error("cannot use data directory {}: {source}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The error from the file system.
        #[source]
        source: std::io::Error,
    },
    /// The database could not be opened or reached at start-up.
    #[error("cannot connect to {target}: {source}")]
    Connect {
        /// What was being opened: a SQLite file or a PostgreSQL URL (password hidden).
        target: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// Applying the schema migrations failed (for example, the database was migrated by a newer
    /// version of suda, or a migration file was changed after it had been applied).
    #[error("database migration failed: {0}")]
    Migration(#[source] sqlx::migrate::MigrateError),
    /// A query failed: the connection was lost, a timeout passed, the disk is full, ….
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// The store's background runtime has shut down (the store is being dropped).
    #[error("the store is shut down")]
    Closed,
}

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        Error::Database(error)
    }
}

impl Error {
    /// Whether `error` is a unique-constraint violation.
    pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
        matches!(error, sqlx::Error::Database(e) if e.kind() == sqlx::error::ErrorKind::UniqueViolation)
    }

    /// Whether `error` is a foreign-key violation.
    pub(crate) fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
        matches!(error, sqlx::Error::Database(e) if e.kind() == sqlx::error::ErrorKind::ForeignKeyViolation)
    }
}

/// `url` with the password of its user-info part (`scheme://user:password@host`) replaced by
/// `***`, for error messages and logs.
pub(crate) fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let user_info = &authority[..at];
    match user_info.find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &user_info[..colon],
            &url[scheme_end + 3 + at..]
        ),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact_url("postgres://bob:s3cret@db:5432/suda"),
            "postgres://bob:***@db:5432/suda"
        );
        assert_eq!(
            redact_url("postgres://bob@db/suda"),
            "postgres://bob@db/suda"
        );
        assert_eq!(redact_url("postgres://db/suda"), "postgres://db/suda");
        assert_eq!(
            redact_url("postgres://u:p@w@db/x?a=b"),
            "postgres://u:***@db/x?a=b"
        );
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
