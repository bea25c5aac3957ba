//! What the `suda` binary's tests share: the real server on an ephemeral port, and the binary
//! started with piped input. Each test file uses part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Stdio;

use suda_server::config::StoreKind;
use suda_server::{Config, Server};
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

/// The real server on 127.0.0.1:0, with rate limits off and nothing on disk: these tests are
/// about the client, not the server's limits or storage.
pub(crate) async fn start_server() -> (SocketAddr, CancellationToken) {
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        workers: 2,
        message_rate: 0.0,
        byte_rate: 0.0,
        store: StoreKind::None,
        ..Config::default()
    };
    let server = Server::bind(config).expect("bind");
    let addr = server.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    tokio::spawn(server.run(shutdown.clone()));
    (addr, shutdown)
}

/// Starts `suda --server server --user user extra...` with stdin, stdout and stderr piped.
pub(crate) fn spawn_suda(server: &str, user: &str, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_suda"))
        .args(["--server", server, "--user", user])
        .args(extra)
        .env_remove("SUDA_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run suda")
}

/// [`spawn_suda`], with `stdin` written to it and closed.
pub(crate) async fn spawn_suda_with_input(
    server: &str,
    user: &str,
    extra: &[&str],
    stdin: &str,
) -> Child {
    let mut child = spawn_suda(server, user, extra);
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.as_bytes())
        .await
        .expect("write stdin");
    drop(input);
    child
}
