//! Test support (feature `testing`): [`TempPostgres`], a throwaway PostgreSQL server.
//!
//! It runs `initdb` and `pg_ctl` from the Debian packages (`/usr/lib/postgresql/<version>/bin`,
//! the newest version; or the directory in `SUDA_PG_BIN`; or `initdb` on `PATH`) in a fresh
//! temporary directory, on a free loopback port, with `trust` authentication. `initdb` refuses
//! to run as root, so as root the server runs as the `postgres` system user (created by the
//! Debian package) through `runuser`, and the directory belongs to that user.
//!
//! The server is watched by a small shell process that holds a pipe from the test process: when
//! the [`TempPostgres`] is dropped, or the test process exits in any way (even killed), the pipe
//! closes, and the watcher stops the server and deletes the directory. So
//! [`TempPostgres::shared`], which is never dropped, still leaves nothing behind.
//!
//! When the binaries are missing, starting fails with a message that says to run
//! `scripts/postgres.sh`. Tests must fail then, not pass silently, unless the environment sets
//! `SUDA_SKIP_POSTGRES=1` explicitly ([`skip_postgres`]).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;

/// The environment variable that skips PostgreSQL tests when set to `1`.
pub const SKIP_ENV: &str = "SUDA_SKIP_POSTGRES";

/// The environment variable naming a directory with `initdb` and `pg_ctl`, tried first.
pub const BIN_ENV: &str = "SUDA_PG_BIN";

/// Whether PostgreSQL tests are to be skipped: `SUDA_SKIP_POSTGRES=1`. Only an explicit `1`
/// counts.
pub fn skip_postgres() -> bool {
    std::env::var(SKIP_ENV).is_ok_and(|v| v == "1")
}

/// Why a [`TempPostgres`] could not start.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StartError(String);

/// Settings of a [`TempPostgres`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TempPostgresOptions {
    /// `fsync` on (real durability: for benchmarks) or off (faster tests). Default on.
    pub fsync: bool,
}

impl Default for TempPostgresOptions {
    fn default() -> Self {
        TempPostgresOptions { fsync: true }
    }
}

/// A PostgreSQL server in a temporary directory, stopped and deleted on drop (or when the
/// process exits). Superuser `postgres`, no password, `127.0.0.1` only.
#[derive(Debug)]
pub struct TempPostgres {
    port: u16,
    watcher: Child,
    /// Closing this tells the watcher to stop the server.
    lifeline: Option<ChildStdin>,
    next_database: AtomicU32,
}

impl TempPostgres {
    /// Starts a server with the default options (`fsync` on). Blocks for the `initdb` and the
    /// start-up (about a second).
    pub fn start() -> Result<TempPostgres, StartError> {
        Self::start_with(TempPostgresOptions::default())
    }

    /// Starts a server with `options`.
    pub fn start_with(options: TempPostgresOptions) -> Result<TempPostgres, StartError> {
        let bin = find_bin_dir()?;
        // The port is found free, then released for the server to take; another process may
        // take it in between, so try a few times.
        let mut last_error = None;
        for _ in 0..3 {
            match start_once(&bin, options) {
                Ok(server) => return Ok(server),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| StartError("no attempt".into())))
    }

    /// One server for the whole test process (`fsync` off), started on first use and stopped
    /// when the process exits. Every caller gets the same result, so if starting failed, every
    /// PostgreSQL test fails with the same message.
    pub fn shared() -> Result<&'static TempPostgres, StartError> {
        static SHARED: OnceLock<Result<TempPostgres, StartError>> = OnceLock::new();
        SHARED
            .get_or_init(|| TempPostgres::start_with(TempPostgresOptions { fsync: false }))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `name` as the superuser.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates a new, empty database and returns its URL: one per test keeps tests apart.
    pub async fn create_database(&self) -> Result<String, sqlx::Error> {
        let n = self.next_database.fetch_add(1, Ordering::Relaxed);
        let name = format!("test_{n}");
        let mut admin = sqlx::PgConnection::connect(&self.url("postgres")).await?;
        let create = format!("CREATE DATABASE {name}");
        sqlx::raw_sql(&create).execute(&mut admin).await?;
        admin.close().await?;
        Ok(self.url(&name))
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        drop(self.lifeline.take());
        let _ = self.watcher.wait();
    }
}

/// The watcher, run by `sh` with the arguments: directory, port, bin directory, fsync.
const WATCHER: &str = r#"
set -u
base=$1; port=$2; bin=$3; fsync=$4
data=$base/data
fail() { echo "$1" >&2; tail -n 40 "$2" >&2 2>/dev/null; rm -rf "$base"; exit 1; }
"$bin/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C --no-sync \
    >"$base/initdb.log" 2>&1 || fail "initdb failed:" "$base/initdb.log"
cat >>"$data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$base'
fsync = $fsync
max_connections = 200
EOF
"$bin/pg_ctl" -D "$data" -l "$base/server.log" -w -t 60 start >/dev/null 2>&1 \
    || fail "pg_ctl start failed:" "$base/server.log"
echo ready
# Wait for the test process to close our stdin (drop, or exit), then clean up.
cat >/dev/null
"$bin/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1
rm -rf "$base"
"#;

fn start_once(bin: &Path, options: TempPostgresOptions) -> Result<TempPostgres, StartError> {
    let io = |what: &str, e: std::io::Error| StartError(format!("{what}: {e}"));
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map_err(|e| io("finding a free port", e))?
        .port();
    let base = tempfile::Builder::new()
        .prefix("suda-pg-")
        .tempdir()
        .map_err(|e| io("creating a temporary directory", e))?
        .keep();
    let run_as_postgres = is_root();
    if run_as_postgres {
        let (uid, gid) = postgres_user()?;
        std::os::unix::fs::chown(&base, Some(uid), Some(gid))
            .map_err(|e| io("giving the directory to the postgres user", e))?;
    }
    let fsync = if options.fsync { "on" } else { "off" };
    let mut command = if run_as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--", "sh", "-c", WATCHER, "sh"]);
        c
    } else {
        let mut c = Command::new("sh");
        c.args(["-c", WATCHER, "sh"]);
        c
    };
    command
        .arg(&base)
        .arg(port.to_string())
        .arg(bin)
        .arg(fsync)
        .current_dir(&base)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut watcher = command
        .spawn()
        .map_err(|e| io("starting the PostgreSQL watcher (sh / runuser)", e))?;
    let lifeline = watcher.stdin.take();
    let mut stdout = BufReader::new(
        watcher
            .stdout
            .take()
            .ok_or(StartError("no stdout".into()))?,
    );
    let mut line = String::new();
    let _ = stdout.read_line(&mut line);
    if line.trim() == "ready" {
        return Ok(TempPostgres {
            port,
            watcher,
            lifeline,
            next_database: AtomicU32::new(0),
        });
    }
    drop(lifeline);
    let mut detail = String::new();
    if let Some(mut stderr) = watcher.stderr.take() {
        let _ = stderr.read_to_string(&mut detail);
    }
    let _ = watcher.wait();
    let _ = std::fs::remove_dir_all(&base);
    Err(StartError(format!(
        "the temporary PostgreSQL server (binaries in {}) did not start:\n{}",
        bin.display(),
        detail.trim_end()
    )))
}

/// The directory holding `initdb` and `pg_ctl`.
fn find_bin_dir() -> Result<PathBuf, StartError> {
    find_bin_dir_in(
        std::env::var_os(BIN_ENV).map(PathBuf::from),
        Path::new("/usr/lib/postgresql"),
        std::env::var_os("PATH"),
    )
}

/// [`find_bin_dir`] with its inputs passed in: `$SUDA_PG_BIN`, Debian's root of versioned
/// installations, `$PATH`.
fn find_bin_dir_in(
    explicit: Option<PathBuf>,
    debian_root: &Path,
    path: Option<std::ffi::OsString>,
) -> Result<PathBuf, StartError> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = explicit {
        return if has_tools(&dir) {
            Ok(dir)
        } else {
            Err(StartError(format!(
                "{BIN_ENV}={} has no initdb and pg_ctl",
                dir.display()
            )))
        };
    }
    // Debian: /usr/lib/postgresql/<major>/bin; take the highest major version.
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(debian_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            has_tools(&bin).then_some((major, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    if let Some(dir) = path
        .iter()
        .flat_map(std::env::split_paths)
        .find(|dir| has_tools(dir))
    {
        return Ok(dir);
    }
    Err(StartError(format!(
        "PostgreSQL server binaries (initdb, pg_ctl) not found under {}/*/bin, in ${BIN_ENV} \
         or on PATH. Run scripts/postgres.sh (as root) to install them, or set {SKIP_ENV}=1 to \
         skip the PostgreSQL tests explicitly.",
        debian_root.display()
    )))
}

/// Whether this process runs as root (the owner of `/proc/self` is the effective user).
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata("/proc/self") {
        Ok(meta) => meta.uid() == 0,
        Err(_) => command_output("id", &["-u"]).is_some_and(|id| id == "0"),
    }
}

/// The uid and gid of the `postgres` system user.
fn postgres_user() -> Result<(u32, u32), StartError> {
    let id = |flag| command_output("id", &[flag, "postgres"]).and_then(|s| s.parse::<u32>().ok());
    match (id("-u"), id("-g")) {
        (Some(uid), Some(gid)) => Ok((uid, gid)),
        _ => Err(StartError(
            "running as root, and there is no `postgres` user to run initdb as (initdb refuses \
             root). Run scripts/postgres.sh, which installs PostgreSQL and creates that user."
                .into(),
        )),
    }
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch_tools(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        for tool in ["initdb", "pg_ctl"] {
            std::fs::write(dir.join(tool), b"").unwrap();
        }
    }

    #[test]
    fn missing_binaries_say_how_to_install_them() {
        let empty = tempfile::tempdir().unwrap();
        let error = find_bin_dir_in(None, empty.path(), Some(empty.path().into())).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("scripts/postgres.sh"), "{message}");
        assert!(message.contains("SUDA_SKIP_POSTGRES=1"), "{message}");
    }

    #[test]
    fn the_newest_debian_version_wins() {
        let root = tempfile::tempdir().unwrap();
        for version in ["9", "15", "13"] {
            touch_tools(&root.path().join(version).join("bin"));
        }
        std::fs::create_dir_all(root.path().join("17")).unwrap(); // No binaries: ignored.
        let found = find_bin_dir_in(None, root.path(), None).unwrap();
        assert_eq!(found, root.path().join("15").join("bin"));

        // Then PATH; an explicit directory first of all.
        let elsewhere = tempfile::tempdir().unwrap();
        touch_tools(elsewhere.path());
        let empty = tempfile::tempdir().unwrap();
        let on_path = find_bin_dir_in(None, empty.path(), Some(elsewhere.path().into()));
        assert_eq!(on_path.unwrap(), elsewhere.path());
        let explicit = find_bin_dir_in(Some(elsewhere.path().into()), root.path(), None);
        assert_eq!(explicit.unwrap(), elsewhere.path());
        assert!(find_bin_dir_in(Some(empty.path().into()), root.path(), None).is_err());
    }
}
