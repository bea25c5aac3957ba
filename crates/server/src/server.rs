//! Starting, running and stopping the server.
//!
//! [`Server::run`] starts one worker thread per configured shard, each with a single-threaded
//! tokio runtime, and waits for the shutdown token. Shutdown has two phases: first every session
//! stops reading (so no new message enters the system), then every shard queues what is still in
//! its inbox, and only then does each session say goodbye and flush, within
//! `shutdown_timeout`. That ordering is what lets a graceful shutdown lose no accepted message.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::auth::accounts::AccountsAuth;
use crate::auth::jwt::{JwtVerifier, TokenAuth};
use crate::auth::{Authenticator, OpenAuth};
use crate::config::{AuthMode, Config};
use crate::directory::{Directory, LocalDirectory};
use crate::ids::IdGenerator;
use crate::limits::{IpGuard, IpLimits, LoginThrottle};
use crate::listener::accept_loop;
use crate::moderation::Sanctions;
use crate::presence::Presence;
use crate::resume::ResumeRegistry;
use crate::rooms::{RoomRegistry, RoomSettings};
use crate::shard::{INBOX_CAPACITY, Shard, ShardMessage};
use crate::stats::{AllStats, ShardStats, StatsSnapshot, bump_shared};
use crate::storage::Storage;
use crate::tls::TlsSetup;

/// State every shard shares.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) directory: Arc<dyn Directory>,
    auth: OnceLock<Arc<dyn Authenticator>>,
    storage: OnceLock<Arc<Storage>>,
    pub(crate) message_ids: IdGenerator,
    /// The chat buckets' settings, from the config.
    pub(crate) chat_rates: crate::limits::ChatRates,
    pub(crate) session_ids: IdGenerator,
    pub(crate) stats: AllStats,
    pub(crate) ip_limits: Arc<IpLimits>,
    pub(crate) login_throttle: LoginThrottle,
    pub(crate) resume: ResumeRegistry,
    pub(crate) rooms: RoomRegistry,
    pub(crate) presence: Presence,
    pub(crate) sanctions: Sanctions,
    inboxes: OnceLock<Vec<mpsc::Sender<ShardMessage>>>,
    connection_slots: Arc<Semaphore>,
    /// Phase one of shutdown: stop accepting and reading.
    pub(crate) shutdown: CancellationToken,
    /// Phase two: fired once no session reads any more; shards then drain their inboxes.
    pub(crate) readers_stopped: CancellationToken,
    readers: AtomicUsize,
    reader_left: Notify,
}

impl Shared {
    /// Who may log in; set before any worker starts.
    pub(crate) fn auth(&self) -> &dyn Authenticator {
        match self.auth.get() {
            Some(auth) => auth.as_ref(),
            None => &OpenAuth,
        }
    }

    /// The store, when the server keeps accounts and history.
    pub(crate) fn storage(&self) -> Option<&Arc<Storage>> {
        self.storage.get()
    }

    /// Every shard's inbox, by shard index.
    pub(crate) fn inboxes(&self) -> &[mpsc::Sender<ShardMessage>] {
        self.inboxes.get().map_or(&[], Vec::as_slice)
    }

    /// Counts a session that may still produce messages, until the guard drops.
    pub(crate) fn reader_guard(self: &Arc<Self>) -> ReaderGuard {
        self.readers.fetch_add(1, Ordering::AcqRel);
        ReaderGuard(self.clone())
    }
}

/// Held by a session while it reads requests; see [`Server::run`] for why they are counted.
pub(crate) struct ReaderGuard(Arc<Shared>);

impl std::fmt::Debug for ReaderGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReaderGuard")
    }
}

impl std::fmt::Debug for ConnectionGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectionGuard")
    }
}

impl Drop for ReaderGuard {
    fn drop(&mut self) {
        if self.0.readers.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.reader_left.notify_one();
        }
    }
}

/// One slot of the connection limits (server-wide and per address), held for a connection's
/// lifetime.
pub(crate) struct ConnectionGuard {
    stats: Arc<ShardStats>,
    _permit: OwnedSemaphorePermit,
    _per_ip: Option<IpGuard>,
}

impl ConnectionGuard {
    pub(crate) fn try_new(
        shared: &Shared,
        stats: &Arc<ShardStats>,
        per_ip: Option<IpGuard>,
    ) -> Option<Self> {
        let permit = shared.connection_slots.clone().try_acquire_owned().ok()?;
        bump_shared(&stats.connections_opened, 1);
        Some(Self {
            stats: stats.clone(),
            _permit: permit,
            _per_ip: per_ip,
        })
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        bump_shared(&self.stats.connections_closed, 1);
    }
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Binding or preparing the listening socket failed.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error("cannot open the store")]
    Store(#[from] suda_store::Error),
    /// Token authentication could not be set up.
    #[error("cannot set up token authentication: {0}")]
    Token(String),
    /// The TLS certificate or key could not be loaded.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// A worker thread could not start or died.
    #[error("worker {index} failed: {reason}")]
    Worker {
        /// The shard index.
        index: usize,
        /// What happened.
        reason: String,
    },
}

/// A configured server with its listening sockets bound, ready to [`run`](Server::run).
pub struct Server {
    auth_override: Option<Arc<dyn Authenticator>>,
    storage: Option<Arc<Storage>>,
    listener: Option<std::net::TcpListener>,
    metrics_listener: Option<std::net::TcpListener>,
    tls_listener: Option<(std::net::TcpListener, Arc<TlsSetup>)>,
    shared: Arc<Shared>,
}

/// Connections the kernel may hold waiting for `accept`. std's default (128) overflows when a
/// few hundred clients connect at once, and each dropped SYN costs its client a one-second
/// retransmission timeout.
const LISTEN_BACKLOG: i32 = 4096;

fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, ServerError> {
    use socket2::{Domain, Socket, Type};
    let listen = || -> std::io::Result<std::net::TcpListener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        socket.listen(LISTEN_BACKLOG)?;
        socket.set_nonblocking(true)?;
        Ok(socket.into())
    };
    listen().map_err(|source| ServerError::Listen {
        addr: addr.to_string(),
        source,
    })
}

impl Server {
    /// Binds `config.listen` (unless `tls_only`) and `config.tls_listen` (if set), loading the
    /// TLS certificate and key.
    pub fn bind(config: Config) -> Result<Self, ServerError> {
        config.validate()?;
        let tls_listener = match (&config.tls_listen, &config.tls_cert, &config.tls_key) {
            (Some(addr), Some(cert), Some(key)) => {
                let setup = Arc::new(TlsSetup::load(cert, key)?);
                Some((bind(*addr)?, setup))
            }
            _ => None,
        };
        let listener = if config.tls_only {
            None
        } else {
            Some(bind(config.listen)?)
        };
        let metrics_listener = config.metrics_listen.map(bind).transpose()?;
        let mut server = Self::new(listener, tls_listener, config)?;
        server.metrics_listener = metrics_listener;
        Ok(server)
    }

    /// Serves plaintext on an already bound listener, ignoring the addresses in `config`.
    pub fn from_listener(
        listener: std::net::TcpListener,
        config: Config,
    ) -> Result<Self, ServerError> {
        config.validate()?;
        let addr = listener
            .local_addr()
            .map_or_else(|_| "?".to_owned(), |a| a.to_string());
        listener
            .set_nonblocking(true)
            .map_err(|source| ServerError::Listen { addr, source })?;
        Self::new(Some(listener), None, config)
    }

    fn new(
        listener: Option<std::net::TcpListener>,
        tls_listener: Option<(std::net::TcpListener, Arc<TlsSetup>)>,
        config: Config,
    ) -> Result<Self, ServerError> {
        let shared = Arc::new(Shared {
            directory: Arc::new(LocalDirectory::new()),
            auth: OnceLock::new(),
            storage: OnceLock::new(),
            message_ids: IdGenerator::new(config.node_id),
            chat_rates: crate::limits::ChatRates::of(&config),
            session_ids: IdGenerator::new(config.node_id),
            stats: AllStats(
                (0..config.workers)
                    .map(|_| Arc::new(ShardStats::default()))
                    .collect(),
            ),
            ip_limits: Arc::new(IpLimits::new(
                config.max_connections_per_ip,
                config.connection_rate_per_ip,
                config.per_ip_exempt.clone(),
            )),
            login_throttle: LoginThrottle::new(config.login_backoff, config.login_backoff_max),
            resume: ResumeRegistry::default(),
            rooms: RoomRegistry::new(config.workers, config.max_rooms),
            presence: Presence::default(),
            sanctions: Sanctions::default(),
            inboxes: OnceLock::new(),
            connection_slots: Arc::new(Semaphore::new(config.max_connections)),
            shutdown: CancellationToken::new(),
            readers_stopped: CancellationToken::new(),
            readers: AtomicUsize::new(0),
            reader_left: Notify::new(),
            config,
        });
        Ok(Self {
            auth_override: None,
            storage: None,
            listener,
            metrics_listener: None,
            tls_listener,
            shared,
        })
    }

    /// Replaces the authenticator that `config.auth` selected, for embedding applications with
    /// their own account system.
    pub fn with_authenticator(mut self, auth: Arc<dyn Authenticator>) -> Self {
        self.auth_override = Some(auth);
        self
    }

    /// Opens the store the config names (`store`, `data_dir`, `database_url`) now, rather than
    /// when [`run`](Server::run) starts, so that a bad database is reported before serving.
    pub async fn open_store(mut self) -> Result<Self, ServerError> {
        if self.storage.is_none() {
            self.storage = Storage::open(&self.shared.config).await?;
        }
        Ok(self)
    }

    /// The authenticator `config.auth` asks for, over the store if it needs one.
    fn authenticator(&self) -> Result<Arc<dyn Authenticator>, ServerError> {
        if let Some(auth) = &self.auth_override {
            return Ok(auth.clone());
        }
        let config = &self.shared.config;
        Ok(match (config.auth, &self.storage) {
            (AuthMode::Open, None) => Arc::new(OpenAuth),
            (AuthMode::Open, Some(storage)) => Arc::new(AccountsAuth::new(storage.clone(), false)),
            (AuthMode::Registered, Some(storage)) => {
                Arc::new(AccountsAuth::new(storage.clone(), true))
            }
            (AuthMode::Registered, None) => {
                return Err(ServerError::Config(crate::config::ConfigError::Invalid(
                    "auth = registered needs a store".into(),
                )));
            }
            (AuthMode::Token, _) => Arc::new(token_auth(config)?),
        })
    }

    /// The address the server accepts plaintext connections on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match &self.listener {
            Some(listener) => listener.local_addr(),
            None => Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no plaintext listener (tls_only)",
            )),
        }
    }

    /// The address the server accepts TLS connections on, if it has a TLS listener.
    pub fn tls_local_addr(&self) -> Option<SocketAddr> {
        self.tls_listener
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// The address of the Prometheus endpoint, if it has one.
    pub fn metrics_local_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    /// The TLS certificate holder, to [`reload`](TlsSetup::reload) on SIGHUP.
    pub fn tls(&self) -> Option<Arc<TlsSetup>> {
        self.tls_listener.as_ref().map(|(_, setup)| setup.clone())
    }

    /// A handle to read the server's counters while it runs.
    pub fn stats(&self) -> StatsHandle {
        StatsHandle(self.shared.clone())
    }

    /// Runs until `shutdown` is cancelled, then shuts down gracefully and returns.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ServerError> {
        let server = self.open_store().await?;
        let auth = server.authenticator()?;
        let Self {
            listener,
            metrics_listener,
            tls_listener,
            shared,
            storage,
            ..
        } = server;
        let _ = shared.auth.set(auth);
        if let Some(storage) = &storage {
            load_moderation_and_rooms(&shared, storage).await?;
            let _ = shared.storage.set(storage.clone());
            tokio::spawn(storage.clone().run_retention(
                shared.config.retention_days,
                shared.config.retention_messages,
                shared.shutdown.clone(),
            ));
        }
        // If the caller drops this future, the workers must not outlive it.
        let _stop_workers_on_drop = shared.shutdown.clone().drop_guard();
        let workers = shared.config.workers;
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..workers).map(|_| mpsc::channel(INBOX_CAPACITY)).unzip();
        let _ = shared.inboxes.set(senders);
        let address = |l: &std::net::TcpListener| {
            l.local_addr()
                .map_or_else(|_| "?".to_owned(), |a| a.to_string())
        };
        if let Some(listener) = &listener {
            info!(addr = %address(listener), workers, "listening");
        }
        if let Some((listener, _)) = &tls_listener {
            info!(addr = %address(listener), workers, "listening for TLS");
        }

        let mut done = Vec::with_capacity(workers);
        let mut threads = Vec::with_capacity(workers);
        let clone = |listener: &std::net::TcpListener| {
            listener.try_clone().map_err(|source| ServerError::Listen {
                addr: "listener clone".into(),
                source,
            })
        };
        for (index, inbox) in receivers.into_iter().enumerate() {
            let mut listeners = Vec::new();
            if let Some(listener) = &listener {
                listeners.push((clone(listener)?, None));
            }
            if let Some((listener, setup)) = &tls_listener {
                listeners.push((clone(listener)?, Some(setup.clone())));
            }
            let (tx, rx) = oneshot::channel();
            done.push(rx);
            let shared = shared.clone();
            let thread = std::thread::Builder::new()
                .name(format!("suda-worker-{index}"))
                .spawn(move || {
                    let result = run_shard(index, shared, listeners, inbox);
                    let _ = tx.send(result);
                })
                .map_err(|err| ServerError::Worker {
                    index,
                    reason: err.to_string(),
                })?;
            threads.push(thread);
        }
        drop(listener);
        drop(tls_listener);
        let metrics = match metrics_listener.map(tokio::net::TcpListener::from_std) {
            Some(Ok(listener)) => Some(tokio::spawn(crate::metrics::serve(
                listener,
                crate::metrics::SudaCollector::new(
                    shared.stats.clone(),
                    shared.directory.clone(),
                    shared.storage().map(|storage| storage.hasher.clone()),
                ),
                shared.shutdown.clone(),
            ))),
            Some(Err(source)) => {
                shared.shutdown.cancel();
                return Err(ServerError::Listen {
                    addr: "metrics".into(),
                    source,
                });
            }
            None => None,
        };

        tokio::select! {
            () = shutdown.cancelled() => info!("shutting down"),
            () = shared.shutdown.cancelled() => {}
        }
        shared.shutdown.cancel();
        // Phase one: wait (bounded) until no session can produce another message.
        let stopped_reading = async {
            while shared.readers.load(Ordering::Acquire) > 0 {
                shared.reader_left.notified().await;
            }
        };
        if tokio::time::timeout(shared.config.shutdown_timeout, stopped_reading)
            .await
            .is_err()
        {
            warn!("sessions still reading at the shutdown deadline");
        }
        // Phase two: shards queue their last messages, sessions flush and close.
        shared.readers_stopped.cancel();

        let mut result = Ok(());
        for (index, rx) in done.into_iter().enumerate() {
            match rx.await {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => {
                    error!(index, %reason, "worker failed");
                    result = Err(ServerError::Worker { index, reason });
                }
                Err(_) => {
                    result = Err(ServerError::Worker {
                        index,
                        reason: "worker thread panicked".into(),
                    });
                }
            }
        }
        for thread in threads {
            let _ = thread.join();
        }
        if let Some(metrics) = metrics {
            let _ = metrics.await;
        }
        if let Some(storage) = storage {
            // Every session has ended: what they stored is queued; write it all.
            storage.close().await;
        }
        info!("stopped");
        result
    }
}

/// Runs one shard's runtime on the current thread until its tasks have all ended.
fn run_shard(
    index: usize,
    shared: Arc<Shared>,
    listeners: Vec<(std::net::TcpListener, Option<Arc<TlsSetup>>)>,
    inbox: mpsc::Receiver<ShardMessage>,
) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_park(crate::flush_gate::before_park)
        .on_thread_unpark(crate::flush_gate::after_unpark)
        .build()
        .map_err(|err| format!("cannot start runtime: {err}"))?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let mut registered = Vec::with_capacity(listeners.len());
        for (listener, tls) in listeners {
            match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => registered.push((listener, tls)),
                Err(err) => {
                    // Without this shard the server is not what was configured: stop it all.
                    shared.shutdown.cancel();
                    return Err(format!("cannot register listener: {err}"));
                }
            }
        }
        #[cfg(unix)]
        let hibernation =
            crate::hibernate::Hibernation::start(shared.config.hibernate_after, index);
        let shard = Rc::new(Shard::new(
            index,
            shared,
            #[cfg(unix)]
            hibernation,
        ));
        shard.tasks.spawn_local(shard.clone().run_inbox(inbox));
        #[cfg(unix)]
        shard
            .tasks
            .spawn_local(crate::hibernate::run(shard.clone()));
        for (listener, tls) in registered {
            shard
                .tasks
                .spawn_local(accept_loop(shard.clone(), listener, tls));
        }
        shard.shared.shutdown.cancelled().await;
        shard.shut_down_sessions();
        shard.tasks.close();
        shard.tasks.wait().await;
        Ok(())
    })
}

/// The JWT verifier `config` describes: a public key file if given, else the HS256 secret.
fn token_auth(config: &Config) -> Result<TokenAuth, ServerError> {
    let verifier = match (&config.jwt_public_key, &config.jwt_secret) {
        (Some(path), _) => {
            let pem = std::fs::read(path).map_err(|err| {
                ServerError::Token(format!("cannot read {}: {err}", path.display()))
            })?;
            JwtVerifier::from_public_key_pem(&pem)
                .map_err(|err| ServerError::Token(err.to_string()))?
        }
        (None, Some(secret)) => JwtVerifier::hs256(secret.as_bytes()),
        (None, None) => {
            return Err(ServerError::Token(
                "auth = token needs jwt_secret or jwt_public_key".into(),
            ));
        }
    };
    Ok(TokenAuth::new(verifier))
}

/// Reads a running server's counters.
#[derive(Clone)]
pub struct StatsHandle(Arc<Shared>);

impl StatsHandle {
    /// The counters now.
    pub fn snapshot(&self) -> StatsSnapshot {
        self.0.stats.snapshot()
    }

    /// Names online now (detached sessions included: their names stay reserved).
    pub fn online(&self) -> usize {
        self.0.directory.len()
    }

    /// Sessions detached now, waiting for a resume.
    pub fn detached(&self) -> usize {
        self.0.resume.detached()
    }
}

/// Loads the sanctions in force and the persistent rooms, before any session can need them.
async fn load_moderation_and_rooms(shared: &Shared, storage: &Storage) -> Result<(), ServerError> {
    let now_ms = i64::try_from(crate::ids::unix_time_ms()).unwrap_or(i64::MAX);
    shared
        .sanctions
        .load(storage.store.load_sanctions(now_ms).await?);
    let rooms = storage.store.load_rooms().await?;
    let count = rooms.len();
    for stored in rooms {
        let settings = RoomSettings {
            persistent: true,
            invite_only: stored.invite_only,
            password: stored.password,
            topic: stored.topic,
            owner: stored.owner.into_boxed_str(),
            operators: stored.operators,
            invited: stored.invited,
        };
        if let Err(code) = shared.rooms.create(&stored.name, settings) {
            warn!(room = %stored.name, %code, "persistent room not loaded");
        }
    }
    info!(rooms = count, "persistent rooms loaded");
    Ok(())
}

/// Serves `listener` with `config` until `shutdown` is cancelled.
pub async fn run(
    listener: std::net::TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    Server::from_listener(listener, config)?.run(shutdown).await
}
