//! The Prometheus endpoint: `GET /metrics` on `--metrics-listen`, off by default.
//!
//! Counters live in the shards' [`ShardStats`](crate::stats::ShardStats); a scrape sums them
//! through a prometheus-client collector, so serving metrics adds nothing to the message path.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

use crate::directory::Directory;
use crate::stats::{AllStats, HistogramSnapshot};
use suda_store::password::Hasher;

/// Where the metrics come from: cheap to clone, one clone per scrape.
#[derive(Clone)]
pub(crate) struct SudaCollector {
    stats: AllStats,
    directory: Arc<dyn Directory>,
    /// The password hasher, when the server keeps accounts.
    hasher: Option<Hasher>,
}

impl SudaCollector {
    /// The server's counters, its directory (users online) and, with accounts, its hasher.
    pub(crate) fn new(
        stats: AllStats,
        directory: Arc<dyn Directory>,
        hasher: Option<Hasher>,
    ) -> Self {
        Self {
            stats,
            directory,
            hasher,
        }
    }
}

impl std::fmt::Debug for SudaCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SudaCollector").finish_non_exhaustive()
    }
}

fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn histogram(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    snapshot: &HistogramSnapshot,
) -> Result<(), std::fmt::Error> {
    // prometheus-client wants per-bucket (not cumulative) counts.
    let mut previous = 0;
    let buckets: Vec<(f64, u64)> = snapshot
        .buckets
        .iter()
        .map(|&(bound, cumulative)| {
            let own = cumulative - previous;
            previous = cumulative;
            (bound, own)
        })
        .collect();
    encoder
        .encode_descriptor(name, help, None, MetricType::Histogram)?
        .encode_histogram::<Vec<(String, String)>>(snapshot.sum, snapshot.count, &buckets, None)
}

impl Collector for SudaCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = self.stats.snapshot();
        let e = &mut encoder;
        gauge(
            e,
            "suda_connections_open",
            "Connections open now",
            s.connections_open as i64,
        )?;
        gauge(
            e,
            "suda_sessions_hibernating",
            "Logged-in sessions hibernating now: quiet, with no task until something wakes them",
            s.hibernating as i64,
        )?;
        counter(
            e,
            "suda_hibernations",
            "Times a quiet session hibernated",
            s.hibernations,
        )?;
        gauge(
            e,
            "suda_users_online",
            "Names logged in now",
            self.directory.len() as i64,
        )?;
        if let Some(hasher) = &self.hasher {
            counter(
                e,
                "suda_password_hashes",
                "Password hashes and checks run (each a deliberately slow Argon2 computation): \
                 logins to accounts, unknown users' dummy checks, registrations, password changes",
                hasher.runs(),
            )?;
        }
        counter(
            e,
            "suda_connections_accepted",
            "Connections accepted",
            s.connections_accepted,
        )?;
        {
            let mut family = e.encode_descriptor(
                "suda_connections_refused",
                "Connections refused at a limit, by limit",
                None,
                MetricType::Counter,
            )?;
            for (limit, value) in [
                ("max_connections", s.connections_refused_busy),
                ("per_ip", s.connections_refused_per_ip),
            ] {
                ConstCounter::new(value).encode(family.encode_family(&[("limit", limit)])?)?;
            }
        }
        {
            let mut family = e.encode_descriptor(
                "suda_logins",
                "Login attempts by result",
                None,
                MetricType::Counter,
            )?;
            for (result, value) in self.stats.logins() {
                ConstCounter::new(value)
                    .encode(family.encode_family(&[("result", result.as_str())])?)?;
            }
        }
        {
            let mut family = e.encode_descriptor(
                "suda_packets_in",
                "Packets received, by type",
                None,
                MetricType::Counter,
            )?;
            let packets = self.stats.packets();
            for (packet_type, received, _) in &packets {
                ConstCounter::new(*received)
                    .encode(family.encode_family(&[("type", packet_type.wire_name())])?)?;
            }
            let mut family = e.encode_descriptor(
                "suda_packets_out",
                "Packets queued to clients, by type",
                None,
                MetricType::Counter,
            )?;
            for (packet_type, _, sent) in &packets {
                ConstCounter::new(*sent)
                    .encode(family.encode_family(&[("type", packet_type.wire_name())])?)?;
            }
        }
        counter(
            e,
            "suda_bytes_in",
            "Bytes read from clients (after TLS)",
            s.bytes_in,
        )?;
        counter(
            e,
            "suda_bytes_out",
            "Bytes written to clients (TLS: ciphertext)",
            s.bytes_out,
        )?;
        counter(e, "suda_broadcasts", "Broadcasts accepted", s.broadcasts)?;
        counter(e, "suda_whispers", "Whispers accepted", s.whispers)?;
        counter(
            e,
            "suda_room_messages",
            "Room messages accepted",
            s.room_messages,
        )?;
        counter(
            e,
            "suda_deliveries",
            "Chat packets queued to recipients",
            s.deliveries,
        )?;
        counter(
            e,
            "suda_rate_limited",
            "Requests answered RATE_LIMITED",
            s.rate_limited,
        )?;
        {
            let mut family = e.encode_descriptor(
                "suda_disconnects",
                "Connections closed, by reason",
                None,
                MetricType::Counter,
            )?;
            for (reason, value) in self.stats.closes_by_reason() {
                ConstCounter::new(value).encode(family.encode_family(&[("reason", reason)])?)?;
            }
        }
        histogram(
            e,
            "suda_send_queue_bytes",
            "Bytes waiting in a session's send queue when a flush starts",
            &self.stats.queue_bytes(),
        )?;
        histogram(
            e,
            "suda_delivery_delay_seconds",
            "Time from accepting a message to finishing the write that sent it (sampled per flush)",
            &self.stats.delivery_delay(),
        )?;
        Ok(())
    }
}

/// Renders the metrics in the Prometheus text format.
pub(crate) fn render(sources: &SudaCollector) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(sources.clone()));
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text
}

/// Serves `GET /metrics` on `listener` until `shutdown`.
pub(crate) async fn serve(
    listener: TcpListener,
    sources: SudaCollector,
    shutdown: CancellationToken,
) {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |a: SocketAddr| a.to_string());
    info!(%addr, "serving metrics");
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    debug!(%err, "metrics accept failed");
                    continue;
                }
            },
        };
        let sources = sources.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let response = respond(&request, &sources);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                result = connection => {
                    if let Err(err) = result {
                        debug!(%err, %peer, "metrics connection failed");
                    }
                }
                () = shutdown.cancelled() => {}
            }
        });
    }
    connections.close();
    connections.wait().await;
}

fn respond(request: &Request<Incoming>, sources: &SudaCollector) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            render(sources),
        ),
        (&Method::GET, _) => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "try /metrics\n".to_owned(),
        ),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".to_owned(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}
