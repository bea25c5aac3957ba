//! The bench against a real suda server started in-process: checks the harness counts right
//! (deliveries, loss, failures), never how fast anything is.

mod support;

use std::time::Duration;

use suda_bench::{BenchConfig, Scenario, Target, Traffic};
use support::TestServer;

fn config(server: &TestServer, scenario: Scenario) -> BenchConfig {
    BenchConfig {
        // Generous: a correct run ends as soon as the last delivery arrives.
        timeout: Duration::from_secs(60),
        ..BenchConfig::new(Target::Suda(server.addr), scenario)
    }
}

const TINY: Traffic = Traffic {
    clients: 20,
    senders: 2,
    messages: 20,
    size: 64,
    window: 8,
    rate: None,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_reaches_every_other_client() {
    let server = TestServer::start(|_| {}).await;
    let report = suda_bench::run(&config(&server, Scenario::Fanout(TINY)))
        .await
        .expect("run");
    assert_eq!(report.error_kinds.len(), 0, "{:?}", report.error_kinds);
    assert_eq!(report.connected, 20);
    assert_eq!(report.messages_sent, 40);
    assert_eq!(report.messages_acked, 40);
    assert_eq!(report.expected_deliveries, 2 * 20 * 19);
    assert_eq!(report.deliveries, 2 * 20 * 19);
    assert_eq!(report.self_deliveries, 0, "suda never echoes a broadcast");
    assert_eq!(report.loss, 0);
    assert_eq!(report.latency.count, report.deliveries);
    assert!(!report.timed_out);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paced_fanout_delivers_everything_too() {
    let server = TestServer::start(|_| {}).await;
    let traffic = Traffic {
        rate: Some(2_000.0),
        ..TINY
    };
    let report = suda_bench::run(&config(&server, Scenario::Fanout(traffic)))
        .await
        .expect("run");
    assert_eq!(report.error_kinds.len(), 0, "{:?}", report.error_kinds);
    assert_eq!(report.deliveries, 2 * 20 * 19);
    assert_eq!(report.loss, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_whisper_reaches_its_recipient() {
    let server = TestServer::start(|_| {}).await;
    let report = suda_bench::run(&config(&server, Scenario::Whisper(TINY)))
        .await
        .expect("run");
    assert_eq!(report.error_kinds.len(), 0, "{:?}", report.error_kinds);
    assert_eq!(report.senders, 20);
    assert_eq!(report.messages_acked, 20 * 20);
    assert_eq!(report.expected_deliveries, 20 * 20);
    assert_eq!(report.deliveries, 20 * 20);
    assert_eq!(report.loss, 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_messages_reach_their_room_and_nobody_else() {
    let server = TestServer::start(|_| {}).await;
    // 3 rooms of 7: uneven sizes would hide an off-by-one in who is in which room.
    let scenario = Scenario::Rooms {
        rooms: 3,
        traffic: Traffic {
            clients: 3 * 7,
            senders: 3 * 2,
            ..TINY
        },
    };
    let report = suda_bench::run(&config(&server, scenario))
        .await
        .expect("run");
    // A message outside its room, a refused join or a join racing its room's creation would
    // each show up here as an error.
    assert_eq!(report.error_kinds.len(), 0, "{:?}", report.error_kinds);
    assert_eq!(report.connected, 21);
    assert_eq!(report.rooms, 3);
    assert_eq!(report.messages_acked, 6 * 20);
    assert_eq!(report.expected_deliveries, 6 * 20 * 6);
    assert_eq!(report.deliveries, 6 * 20 * 6);
    assert_eq!(
        report.self_deliveries, 0,
        "suda never echoes a room message"
    );
    assert_eq!(report.loss, 0);
    assert_eq!(report.latency.count, report.deliveries);
    assert!(!report.timed_out);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_members_whose_room_was_never_created_fail_to_connect() {
    // A server that holds one room: the second creator is refused, and its room's members must
    // fail (ROOM_NOT_FOUND) rather than wait for a room that never comes.
    let server = TestServer::start(|config| config.max_rooms = 1).await;
    let scenario = Scenario::Rooms {
        rooms: 2,
        traffic: Traffic {
            clients: 2 * 3,
            senders: 2,
            ..TINY
        },
    };
    let report = suda_bench::run(&config(&server, scenario))
        .await
        .expect("run");
    // Three failed sessions, and the refused room's deliveries are loss.
    assert_eq!(report.connected, 3, "{:?}", report.error_kinds);
    assert_eq!(report.connect_errors, 3, "{:?}", report.error_kinds);
    assert_eq!(report.expected_deliveries, 2 * 20 * 2);
    assert_eq!(report.deliveries, 20 * 2);
    assert_eq!(report.loss, 20 * 2);
    assert!(report.has_errors());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_counts_logins() {
    let server = TestServer::start(|_| {}).await;
    let scenario = Scenario::Connect {
        clients: 50,
        hold: Duration::ZERO,
    };
    let report = suda_bench::run(&config(&server, scenario))
        .await
        .expect("run");
    assert_eq!(report.error_kinds.len(), 0, "{:?}", report.error_kinds);
    assert_eq!(report.connected, 50);
    assert_eq!(report.latency_of, "login");
    assert_eq!(report.latency.count, 50);
    server.stop().await;
}

/// A `login` run of `clients` that must succeed, and its accounts as (created, there already,
/// failed).
async fn clean_login_run(server: &TestServer, clients: usize) -> (suda_bench::Report, [u64; 3]) {
    let report = suda_bench::run(&config(server, Scenario::Login { clients }))
        .await
        .expect("run");
    assert_eq!(report.error_kinds.len(), 0, "{:?}", report.error_kinds);
    let accounts = report.accounts.expect("login reports its accounts");
    (
        report,
        [accounts.created, accounts.existing, accounts.failed],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_registers_missing_accounts_then_logs_in_with_their_passwords() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = TestServer::start(|config| {
        config.store = suda_server::config::StoreKind::Sqlite;
        config.data_dir = dir.path().to_owned();
        // Only accounts log in: a login that skipped its password check would fail.
        config.auth = suda_server::config::AuthMode::Registered;
    })
    .await;
    let (first, accounts) = clean_login_run(&server, 4).await;
    assert_eq!(accounts, [4, 0, 0]);
    assert_eq!(first.scenario, "login");
    assert_eq!(first.connected, 4);
    assert_eq!(first.latency_of, "login");
    assert_eq!(first.latency.count, 4);
    // Again: the accounts are there now, and their passwords still open them.
    let (again, accounts) = clean_login_run(&server, 4).await;
    assert_eq!(accounts, [0, 4, 0]);
    assert_eq!(again.connected, 4);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_against_a_server_without_accounts_reports_the_refusals() {
    let server = TestServer::start(|_| {}).await;
    let report = suda_bench::run(&config(&server, Scenario::Login { clients: 3 }))
        .await
        .expect("run");
    let accounts = report.accounts.expect("login reports its accounts");
    assert_eq!((accounts.created, accounts.failed), (0, 3));
    assert_eq!(
        report
            .error_kinds
            .get("registration: registration refused: NOT_AVAILABLE"),
        Some(&3),
        "{:?}",
        report.error_kinds
    );
    assert!(report.has_errors());
    server.stop().await;
}

#[tokio::test]
async fn login_needs_a_target_with_accounts() {
    // Refused before any connection is made, so nothing needs to listen there.
    let target = Target::Redis("127.0.0.1:9".parse().expect("addr"));
    let err = suda_bench::run(&BenchConfig::new(target, Scenario::Login { clients: 1 }))
        .await
        .expect_err("redis has no accounts");
    assert!(err.to_string().contains("needs accounts"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_clients_are_failures_and_their_deliveries_loss() {
    let server = TestServer::start(|config| config.max_connections = 10).await;
    let traffic = Traffic {
        clients: 12,
        ..TINY
    };
    let report = suda_bench::run(&config(&server, Scenario::Fanout(traffic)))
        .await
        .expect("run");
    assert_eq!(report.connected, 10);
    assert_eq!(report.connect_errors, 2, "{:?}", report.error_kinds);
    assert!(report.has_errors());
    assert_eq!(report.expected_deliveries, 2 * 20 * 11);
    assert!(report.loss > 0, "{report:?}");
    assert_eq!(report.loss, report.expected_deliveries - report.deliveries);
    server.stop().await;
}

/// The binary itself, run with its standard output closed before the report is written (a
/// reader that went away, like `suda-bench … | head -c0`): a clear error, not a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_standard_output_is_an_error_not_a_panic() {
    let server = TestServer::start(|_| {}).await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_suda-bench"))
        .args(["connect", "-n", "2", "--quiet", "--target"])
        .arg(format!("suda://{}", server.addr))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn suda-bench");
    // Closing the only reading end makes the report's write fail with a broken pipe.
    drop(child.stdout.take());
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("suda-bench ends")
        .expect("suda-bench output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    // 2, as for a run that could not be made: 1 would blame the server.
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("writing the report to standard output"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    server.stop().await;
}
