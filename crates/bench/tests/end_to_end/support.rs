//! A real suda server on an ephemeral port, inside the test process.

use std::net::SocketAddr;
use std::time::Duration;

use suda_server::{Config, Server, ServerError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), ServerError>>,
}

impl TestServer {
    pub(crate) async fn start(tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            workers: 2,
            store: suda_server::config::StoreKind::None,
            ..Config::default()
        };
        tweak(&mut config);
        let server = Server::bind(config).expect("bind");
        let addr = server.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(server.run(shutdown.clone()));
        Self {
            addr,
            shutdown,
            task,
        }
    }

    pub(crate) async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("server stops in time")
            .expect("server task")
            .expect("server ran cleanly");
    }
}
