//! Which database to use, and how many connections and threads to give it.

#[cfg(feature = "sqlite")]
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result, redact_url};

/// File name of the SQLite database inside the data directory.
pub const SQLITE_FILE_NAME: &str = "suda.sqlite3";

/// The database backend and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// Embedded SQLite in one file (created on first start, with its directory), in WAL mode.
    #[cfg(feature = "sqlite")]
    Sqlite {
        /// The database file.
        path: PathBuf,
    },
    /// A PostgreSQL server, by `postgres://` (or `postgresql://`) URL.
    #[cfg(feature = "postgres")]
    Postgres {
        /// The connection URL, as accepted by libpq (`postgres://user:password@host:port/db`).
        url: String,
    },
}

/// How durable a SQLite commit is (`PRAGMA synchronous`).
#[cfg(feature = "sqlite")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SqliteSync {
    /// `FULL`: a commit is on disk when it returns, even across a power cut. The default, so that
    /// a `Strict` history append means what it says.
    #[default]
    Full,
    /// `NORMAL`: in WAL mode a commit survives a crash of the process but the last commits may be
    /// lost on a power cut or OS crash. Faster when commits are small.
    Normal,
}

/// Everything [`Store::open`](crate::Store::open) needs.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The backend and where it is.
    pub backend: Backend,
    /// Largest number of pooled connections. Default: 4 for SQLite (each connection is a
    /// thread; SQLite has one writer at a time anyway), 8 for PostgreSQL.
    pub max_connections: u32,
    /// How long opening the store, or taking a connection from the pool, may wait. Default 5 s.
    pub connect_timeout: Duration,
    /// Worker threads of the store's own tokio runtime, where every query runs (see
    /// [`Store`](crate::Store)). Default 1: the work there is I/O-bound.
    pub runtime_threads: usize,
    /// SQLite only: `PRAGMA synchronous`. Default [`SqliteSync::Full`].
    #[cfg(feature = "sqlite")]
    pub sqlite_sync: SqliteSync,
}

impl StoreConfig {
    /// A configuration with the defaults above for `backend`.
    pub fn new(backend: Backend) -> Self {
        let max_connections = match &backend {
            #[cfg(feature = "sqlite")]
            Backend::Sqlite { .. } => 4,
            #[cfg(feature = "postgres")]
            Backend::Postgres { .. } => 8,
        };
        StoreConfig {
            backend,
            max_connections,
            connect_timeout: Duration::from_secs(5),
            runtime_threads: 1,
            #[cfg(feature = "sqlite")]
            sqlite_sync: SqliteSync::default(),
        }
    }

    /// SQLite in the file [`SQLITE_FILE_NAME`] inside `data_dir` (both created on first start).
    #[cfg(feature = "sqlite")]
    pub fn sqlite_in(data_dir: impl AsRef<Path>) -> Self {
        Self::new(Backend::Sqlite {
            path: data_dir.as_ref().join(SQLITE_FILE_NAME),
        })
    }

    /// PostgreSQL at `url` (`postgres://user:password@host:port/database`).
    #[cfg(feature = "postgres")]
    pub fn postgres(url: impl Into<String>) -> Self {
        Self::new(Backend::Postgres { url: url.into() })
    }

    /// Reads a database URL: `postgres://…` or `postgresql://…` for PostgreSQL, `sqlite://PATH`
    /// or `sqlite:PATH` for a SQLite file at PATH (used as is: no data directory is implied).
    ///
    /// Fails with [`Error::InvalidUrl`] for any other scheme, an empty path, or a scheme whose
    /// backend was not compiled in.
    pub fn from_url(url: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidUrl {
            url: redact_url(url),
            reason: reason.to_owned(),
        };
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            #[cfg(feature = "postgres")]
            return Ok(Self::postgres(url));
            #[cfg(not(feature = "postgres"))]
            return Err(invalid("this build has no PostgreSQL support"));
        }
        if let Some(path) = lower
            .strip_prefix("sqlite:")
            .map(|_| &url["sqlite:".len()..])
        {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(invalid("the SQLite URL names no file"));
            }
            #[cfg(feature = "sqlite")]
            return Ok(Self::new(Backend::Sqlite {
                path: PathBuf::from(path),
            }));
            #[cfg(not(feature = "sqlite"))]
            return Err(invalid("this build has no SQLite support"));
        }
        Err(invalid(
            "expected postgres://…, postgresql://… or sqlite://PATH",
        ))
    }

    /// A description of the target for messages: the SQLite file, or the URL without password.
    pub fn target(&self) -> String {
        match &self.backend {
            #[cfg(feature = "sqlite")]
            Backend::Sqlite { path } => format!("SQLite database {}", path.display()),
            #[cfg(feature = "postgres")]
            Backend::Postgres { url } => format!("PostgreSQL at {}", redact_url(url)),
        }
    }
}

#[cfg(all(test, feature = "sqlite", feature = "postgres"))]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let pg = StoreConfig::from_url("postgres://u:p@localhost:5432/suda").unwrap();
        assert!(matches!(pg.backend, Backend::Postgres { .. }));
        assert_eq!(
            pg.target(),
            "PostgreSQL at postgres://u:***@localhost:5432/suda"
        );
        assert!(matches!(
            StoreConfig::from_url("postgresql://h/db").unwrap().backend,
            Backend::Postgres { .. }
        ));
        let file = StoreConfig::from_url("sqlite:///var/lib/suda/x.db").unwrap();
        assert_eq!(
            file.backend,
            Backend::Sqlite {
                path: "/var/lib/suda/x.db".into()
            }
        );
        let relative = StoreConfig::from_url("sqlite:data/x.db").unwrap();
        assert_eq!(
            relative.backend,
            Backend::Sqlite {
                path: "data/x.db".into()
            }
        );
        for bad in ["mysql://h/db", "sqlite://", "", "/just/a/path"] {
            let error = StoreConfig::from_url(bad).unwrap_err();
            assert!(matches!(error, Error::InvalidUrl { .. }), "{bad}: {error}");
        }
        let message = StoreConfig::from_url("redis://u:pw@h")
            .unwrap_err()
            .to_string();
        assert!(!message.contains("pw"), "{message}");
    }

    #[test]
    fn sqlite_lives_in_the_data_dir() {
        let config = StoreConfig::sqlite_in("/srv/suda");
        assert_eq!(
            config.backend,
            Backend::Sqlite {
                path: Path::new("/srv/suda").join(SQLITE_FILE_NAME)
            }
        );
        assert_eq!(config.max_connections, 4);
    }
}
