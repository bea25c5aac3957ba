//! `suda-server user …` run as a real process against an SQLite store in a temporary directory.

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `suda-server --data-dir DIR ARGS…` with `stdin` piped in.
fn suda_server(data_dir: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut all = vec![OsString::from("--data-dir"), data_dir.into()];
    all.extend(args.iter().map(OsString::from));
    run(&all, stdin)
}

/// Runs `suda-server ARGS…` with `stdin` piped in (closed at once when empty), isolated from any
/// `SUDA_*` settings of the environment running the tests.
fn run(args: &[OsString], stdin: &[u8]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_suda-server"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SUDA_") {
            command.env_remove(key);
        }
    }
    let mut child = command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start suda-server");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin).expect("write stdin");
    drop(input);
    child.wait_with_output().expect("wait for suda-server")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn user_add_list_remove() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");

    let added = suda_server(&data, &["user", "add", "alice"], b"correct horse\n");
    assert!(added.status.success(), "{}", text(&added.stderr));
    assert_eq!(text(&added.stdout), "user alice added\n");

    let listed = suda_server(&data, &["user", "list"], b"");
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let out = text(&listed.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].starts_with("alice\t"), "{out}");

    let again = suda_server(&data, &["user", "add", "ALICE"], b"another password\n");
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("user alice already exists"),
        "{}",
        text(&again.stderr)
    );

    // The store flags are accepted after the subcommand too. Empty stdin that is not a
    // terminal has no password to read.
    let mut args: Vec<OsString> = ["user", "passwd", "alice", "--data-dir"]
        .map(OsString::from)
        .into();
    args.push(data.clone().into());
    let passwd = run(&args, b"");
    assert_eq!(passwd.status.code(), Some(1));
    assert!(
        text(&passwd.stderr).contains("no password on standard input"),
        "{}",
        text(&passwd.stderr)
    );
    let passwd = suda_server(&data, &["user", "passwd", "alice"], b"new password\n");
    assert_eq!(passwd.status.code(), Some(0), "{}", text(&passwd.stderr));

    let removed = suda_server(&data, &["user", "remove", "alice"], b"");
    assert!(removed.status.success(), "{}", text(&removed.stderr));
    let missing = suda_server(&data, &["user", "remove", "alice"], b"");
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("no user alice"));

    let listed = suda_server(&data, &["user", "list"], b"");
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert_eq!(text(&listed.stdout), "");
}
