//! Start-up errors say what is wrong: a bad URL, an unusable data directory, an unreachable or
//! missing database.

use std::time::Duration;

use suda_store::testing::{TempPostgres, skip_postgres};
use suda_store::{Error, Store, StoreConfig};

#[tokio::test]
async fn unusable_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    // A regular file where the data directory should be: no permission trick, so this holds
    // for root too.
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let error = Store::open(StoreConfig::sqlite_in(file.join("data")))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::DataDir { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("cannot use data directory") && message.contains("not-a-dir"));
}

#[tokio::test]
async fn data_dir_is_created_on_first_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("a").join("b");
    let store = Store::open(StoreConfig::sqlite_in(&data)).await.unwrap();
    store.close().await;
    assert!(data.join(suda_store::config::SQLITE_FILE_NAME).is_file());
}

#[tokio::test]
async fn bad_url() {
    for url in ["mysql://localhost/suda", "postgres://host:notaport/db"] {
        let error = match StoreConfig::from_url(url) {
            Err(e) => e,
            Ok(config) => Store::open(config).await.unwrap_err(),
        };
        assert!(
            matches!(error, Error::InvalidUrl { .. }),
            "{url}: {error:?}"
        );
    }
}

#[tokio::test]
async fn unreachable_postgres() {
    // Nothing listens on a port we just had and released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = StoreConfig::postgres(format!("postgres://suda:secret@127.0.0.1:{port}/suda"));
    config.connect_timeout = Duration::from_secs(2);
    let error = Store::open(config).await.unwrap_err();
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains(&format!(
            "PostgreSQL at postgres://suda:***@127.0.0.1:{port}/suda"
        )),
        "{message}"
    );
    assert!(!message.contains("secret"), "{message}");
}

#[tokio::test]
async fn missing_postgres_database() {
    if skip_postgres() {
        return;
    }
    let server = TempPostgres::shared().unwrap_or_else(|e| panic!("{e}"));
    let error = Store::open(StoreConfig::postgres(server.url("no_such_db")))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
    assert!(error.to_string().contains("no_such_db"), "{error}");
}

#[test]
fn open_blocking_outside_a_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_blocking(StoreConfig::sqlite_in(dir.path())).unwrap();
    assert_eq!(store.backend_name(), "sqlite");
    // Usable from a runtime created later, as the server's workers are.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        store.create_account("x", "h", 0).await.unwrap();
        assert_eq!(store.count_accounts().await.unwrap(), 1);
    });
}
