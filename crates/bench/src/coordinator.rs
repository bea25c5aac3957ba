//! Running a scenario: plan the connections, open them, start every sender at once, watch the
//! counters until the run is complete, stalled or out of time, and turn them into a [`Report`].

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::BenchError;
use crate::config::{BenchConfig, Scenario};
use crate::connection::{Audience, ConnPlan, Publish, RunContext, drive, register};
use crate::payload::now_ns;
use crate::probe::{MachineCpu, Process};
use crate::progress::Progress;
use crate::stats::{
    AccountSetup, Counters, LatencySummary, MachineLoad, Report, ServerUsage, TimelinePoint, loss,
};
use crate::wire::{Listen, Role, Wire, WireParams, room_name};

/// Throughput is sampled, and the stop conditions checked, this often.
const TICK: Duration = Duration::from_millis(100);
/// How long connection tasks get to wind down once told to stop.
const WIND_DOWN: Duration = Duration::from_secs(5);

/// Runs `config` against a server speaking `W`.
pub(crate) async fn run<W: Wire>(config: &BenchConfig) -> Result<Report, BenchError> {
    let scenario = config.scenario;
    if matches!(scenario, Scenario::Login { .. }) && !W::ACCOUNTS {
        return Err(BenchError::Config(format!(
            "the login scenario needs accounts with passwords, which {} does not have",
            W::NAME
        )));
    }
    let server = config.server_pid.map(Process::Pid);
    let params = WireParams {
        addresses: addresses::<W>(config),
        rooms: (0..scenario.rooms())
            .map(|room| Bytes::from(room_name(room)))
            .collect(),
        window: scenario.traffic().map_or(1, |t| t.window),
    };
    let counters = Counters::new(scenario.expected_deliveries());
    let progress = Progress::new(config.progress);
    let started = Instant::now();
    let deadline = started + config.timeout;
    let accounts = match scenario {
        Scenario::Login { .. } => {
            Some(register_accounts::<W>(config, &params, &counters, &progress, deadline).await)
        }
        _ => None,
    };
    let rss_before = server
        .map(Process::rss_bytes)
        .transpose()
        .map_err(probe_error(config))?;

    let plans = plan(&scenario, W::SEPARATE_PUBLISHER);
    let publishers = plans.iter().filter(|p| p.publish.is_some()).count() as u64;
    let connections = plans.len() as u64;
    let (go_tx, go_rx) = watch::channel(None);
    let ctx = Arc::new(RunContext {
        server: config.target.addr(),
        source_addrs: config.source_addrs,
        keepalive: config.keepalive,
        clients: scenario.clients(),
        rooms: scenario.rooms(),
        members_per_room: scenario.members_per_room(),
        creators_settled: watch::channel(0).0,
        seed: config.seed,
        counters,
        connect_slots: Semaphore::new(config.connect_concurrency),
        go: go_rx,
        traffic: scenario.traffic().is_some(),
        stop: CancellationToken::new(),
    });
    let counters = &ctx.counters;
    let t0 = now_ns();
    let cpu_at_start = Usage::sample(server);
    let mut tasks = JoinSet::new();
    for conn in plans {
        tasks.spawn(drive(conn, W::new(params.clone()), ctx.clone()));
    }

    progress.phase("connecting", connections);
    let mut timed_out = false;
    loop {
        let settled = counters.connected.load(Ordering::Relaxed)
            + counters.connect_failed.load(Ordering::Relaxed);
        progress.set(settled);
        if settled >= connections {
            break;
        }
        tokio::select! {
            () = counters.wake.notified() => {}
            () = tokio::time::sleep(TICK) => {}
            () = tokio::time::sleep_until(deadline) => {
                timed_out = true;
                break;
            }
        }
    }
    let connected = counters.connected.load(Ordering::Relaxed);
    let connect_secs = secs(
        counters
            .last_ready_ns
            .load(Ordering::Relaxed)
            .saturating_sub(t0),
    );
    let rss_after = server.and_then(|p| p.rss_bytes().ok());

    let mut go_ns = now_ns();
    let mut timeline = Vec::new();
    let measured = match scenario {
        _ if scenario.logins_only() => {
            let hold = scenario.hold();
            let usage = cpu_at_start.until_now(server);
            progress.phase("holding", 0);
            tokio::select! {
                () = tokio::time::sleep(hold) => {}
                () = tokio::time::sleep_until(deadline) => timed_out = true,
            }
            go_ns = t0;
            usage
        }
        _ if timed_out => Usage::default(),
        _ => {
            let before = Usage::sample(server);
            go_ns = now_ns();
            // Nobody listens only if every task is gone already; then the run is over anyway.
            let _ = go_tx.send(Some(go_ns));
            progress.phase("delivering", counters.expected);
            timed_out = watch_traffic(
                config,
                counters,
                publishers,
                deadline,
                &progress,
                go_ns,
                &mut timeline,
            )
            .await;
            before.until_now(server)
        }
    };
    progress.finish();
    ctx.stop.cancel();
    let wound_down = tokio::time::timeout(WIND_DOWN, async {
        while let Some(joined) = tasks.join_next().await {
            if joined.is_err_and(|err| err.is_panic()) {
                counters.error("bench connection task panicked");
            }
        }
    })
    .await;
    if wound_down.is_err() {
        tasks.abort_all();
    }

    let delivered = counters.delivered.load(Ordering::Relaxed);
    let acked = counters.acked.load(Ordering::Relaxed);
    let end_ns = counters.last_activity_ns.load(Ordering::Relaxed).max(go_ns);
    let duration_secs = if scenario.logins_only() {
        connect_secs
    } else {
        secs(end_ns - go_ns)
    };
    let per_sec = |count: u64| {
        if duration_secs > 0.0 {
            count as f64 / duration_secs
        } else {
            0.0
        }
    };
    let histogram = if scenario.logins_only() {
        counters
            .login_latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    } else {
        counters.latency()
    };
    let error_kinds = counters.errors();
    let traffic = scenario.traffic();
    Ok(Report {
        target: W::NAME,
        address: config.target.addr().to_string(),
        scenario: scenario.name(),
        clients: scenario.clients(),
        rooms: scenario.rooms(),
        senders: scenario.senders(),
        messages_per_sender: traffic.map_or(0, |t| t.messages),
        size: traffic.map_or(0, |t| t.size),
        window: traffic.map_or(0, |t| t.window),
        rate: traffic.and_then(|t| t.rate),
        connections,
        connected,
        connect_errors: counters.connect_failed.load(Ordering::Relaxed),
        connect_secs,
        logins_per_sec: if connect_secs > 0.0 {
            connected as f64 / connect_secs
        } else {
            0.0
        },
        accounts,
        duration_secs,
        messages_sent: counters.published.load(Ordering::Relaxed),
        messages_acked: acked,
        messages_rejected: counters.rejected.load(Ordering::Relaxed),
        expected_deliveries: counters.expected,
        deliveries: delivered,
        self_deliveries: counters.self_delivered.load(Ordering::Relaxed),
        loss: loss(counters.expected, delivered),
        deliveries_per_sec: per_sec(delivered),
        messages_per_sec: per_sec(acked),
        latency_of: if scenario.logins_only() {
            "login"
        } else {
            "delivery"
        },
        latency: LatencySummary::from_histogram(&histogram),
        errors: error_kinds.values().sum(),
        error_kinds,
        timed_out,
        server: config.server_pid.map(|pid| ServerUsage {
            pid,
            cpu_secs: measured.server_cpu,
            cpu_secs_per_million_deliveries: measured
                .server_cpu
                .filter(|_| delivered > 0)
                .map(|cpu| cpu / (delivered as f64 / 1e6)),
            rss_before_bytes: rss_before,
            rss_after_bytes: rss_after,
            rss_bytes_per_connection: rss_before
                .zip(rss_after)
                .filter(|_| connected > 0)
                .map(|(before, after)| (after as f64 - before as f64) / connected as f64),
            cpu_ms_per_login: measured
                .server_cpu
                .filter(|_| scenario.logins_only() && connected > 0)
                .map(|cpu| cpu * 1e3 / connected as f64),
        }),
        bench_cpu_secs: measured.bench_cpu,
        machine_load: measured.machine_load(),
        timeline,
        histogram,
    })
}

/// Registers every client's account, at most `connect_concurrency` at a time, each over a
/// connection that closes once its account exists: the `login` scenario's setup, timed apart
/// from the logins. Failures are counted in `counters`' errors.
async fn register_accounts<W: Wire>(
    config: &BenchConfig,
    params: &WireParams,
    counters: &Counters,
    progress: &Progress,
    deadline: Instant,
) -> AccountSetup {
    let clients = config.scenario.clients();
    progress.phase("registering", clients as u64);
    let slots = Arc::new(Semaphore::new(config.connect_concurrency));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for client in 0..clients {
        let (slots, wire) = (slots.clone(), W::new(params.clone()));
        let (server, source_addrs) = (config.target.addr(), config.source_addrs);
        tasks.spawn(async move {
            // The semaphore is never closed.
            let _slot = slots.acquire_owned().await;
            register(server, client, source_addrs, client, wire).await
        });
    }
    let mut setup = AccountSetup::default();
    let finished = tokio::time::timeout_at(deadline, async {
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(true)) => setup.created += 1,
                Ok(Ok(false)) => setup.existing += 1,
                Ok(Err(reason)) => {
                    setup.failed += 1;
                    counters.error(format!("registration: {reason}"));
                }
                Err(_) => {
                    setup.failed += 1;
                    counters.error("bench registration task panicked");
                }
            }
            progress.set(setup.created + setup.existing + setup.failed);
        }
    })
    .await;
    if finished.is_err() {
        // Out of time: the logins that follow time out as well, and the report says so.
        tasks.abort_all();
        let unfinished = clients as u64 - setup.created - setup.existing - setup.failed;
        setup.failed += unfinished;
        counters.error_n("registration: timed out", unfinished);
    }
    setup.secs = started.elapsed().as_secs_f64();
    setup
}

/// Watches a traffic phase until complete, stalled, abandoned or out of time; `true` if timed out.
async fn watch_traffic(
    config: &BenchConfig,
    counters: &Counters,
    publishers: u64,
    deadline: Instant,
    progress: &Progress,
    go_ns: u64,
    timeline: &mut Vec<TimelinePoint>,
) -> bool {
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let (mut sampled_ns, mut sampled) = (go_ns, 0);
    let mut last_seen = 0;
    let mut stalled_since: Option<Instant> = None;
    // Slices shorter than `min_ns` are skipped: their rate would be mostly noise.
    let mut sample = |timeline: &mut Vec<TimelinePoint>, min_ns: u64| {
        let now = now_ns();
        if now - sampled_ns < min_ns {
            return;
        }
        let delivered = counters.delivered.load(Ordering::Relaxed);
        timeline.push(TimelinePoint {
            t_secs: secs(now - go_ns),
            deliveries_per_sec: (delivered - sampled) as f64 / secs(now - sampled_ns).max(1e-9),
        });
        (sampled_ns, sampled) = (now, delivered);
        progress.set(delivered);
    };
    let timed_out = loop {
        tokio::select! {
            _ = ticker.tick() => sample(timeline, 0),
            () = counters.wake.notified() => {}
            () = tokio::time::sleep_until(deadline) => break true,
        }
        let delivered = counters.delivered.load(Ordering::Relaxed);
        let finished = counters.publishers_finished.load(Ordering::Relaxed) >= publishers;
        if finished && delivered >= counters.expected {
            break false;
        }
        if counters.open.load(Ordering::Relaxed) == 0 {
            break false;
        }
        if finished {
            // Every sender is done, so what has not arrived by now is late or lost; a while
            // without any progress writes it off as lost instead of waiting for the timeout.
            if delivered != last_seen || stalled_since.is_none() {
                last_seen = delivered;
                stalled_since = Some(Instant::now());
            } else if stalled_since.is_some_and(|since| since.elapsed() >= config.drain) {
                break false;
            }
        }
    };
    // The last, partial slice, so the timeline reaches the end of the run.
    sample(timeline, TICK.as_nanos() as u64 / 10);
    timed_out
}

/// CPU time used by the server, the bench and the whole machine between two samples.
#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    server_cpu: Option<f64>,
    bench_cpu: Option<f64>,
    machine: Option<MachineCpu>,
}

impl Usage {
    fn sample(server: Option<Process>) -> Self {
        Self {
            server_cpu: server.and_then(|p| p.cpu_secs().ok()),
            bench_cpu: Process::Own.cpu_secs().ok(),
            machine: MachineCpu::now().ok(),
        }
    }

    /// The CPU used from this sample until now.
    fn until_now(self, server: Option<Process>) -> Self {
        let now = Self::sample(server);
        let diff = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| (b - a).max(0.0));
        Self {
            server_cpu: diff(self.server_cpu, now.server_cpu),
            bench_cpu: diff(self.bench_cpu, now.bench_cpu),
            machine: self.machine.zip(now.machine).map(|(a, b)| MachineCpu {
                busy_secs: (b.busy_secs - a.busy_secs).max(0.0),
                total_secs: (b.total_secs - a.total_secs).max(0.0),
            }),
        }
    }

    /// CPU that neither the server nor the bench used: other work on the machine that
    /// competed with the run. Without a server pid the server's share is in it too.
    fn machine_load(self) -> Option<MachineLoad> {
        let machine = self.machine?;
        let ours = self.server_cpu.unwrap_or(0.0) + self.bench_cpu.unwrap_or(0.0);
        Some(MachineLoad {
            capacity_cpu_secs: machine.total_secs,
            other_cpu_secs: (machine.busy_secs - ours).max(0.0),
        })
    }
}

fn probe_error(config: &BenchConfig) -> impl FnOnce(std::io::Error) -> BenchError {
    let pid = config.server_pid.unwrap_or_default();
    move |source| BenchError::Probe { pid, source }
}

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// Each client's personal address on wire `W`, by client index.
fn addresses<W: Wire>(config: &BenchConfig) -> Arc<[Bytes]> {
    (0..config.scenario.clients())
        .map(|i| {
            let name = format!("{}{:05}", config.name_prefix, i + 1);
            Bytes::from(W::personal_address(&name))
        })
        .collect()
}

/// The connections a scenario needs.
///
/// Every client has a receiving connection. Senders publish on it, or, where the protocol
/// cannot publish on a subscribed connection, on a second connection of their own. Fan-out
/// senders are spread evenly over the clients rather than being the first few. Rooms are runs of
/// consecutive clients (client `c` is in room `c / members`), the first member creates the
/// room, and each room's senders are spread evenly over its members the same way.
fn plan(scenario: &Scenario, separate_publisher: bool) -> Vec<ConnPlan> {
    let clients = scenario.clients();
    let senders = scenario.senders();
    let members = scenario.members_per_room();
    let traffic = scenario.traffic();
    // Where client `client` listens, whom it would send to, and its rank among the senders if
    // it is one.
    let role_of = |client: usize| -> (Listen, Audience, Option<usize>) {
        // Sender k of n over `among` candidates is candidate k·among/n; `rank` recovers k for
        // the ones that are.
        let spread = |candidate: usize, among: usize, n: usize| {
            let rank = (candidate * n).div_ceil(among);
            (rank * among / n == candidate).then_some(rank)
        };
        match scenario {
            Scenario::Fanout(_) => (
                Listen::Fanout,
                Audience::All,
                spread(client, clients, senders),
            ),
            Scenario::Whisper(_) => (Listen::Personal, Audience::RandomPeer, Some(client)),
            Scenario::Rooms { rooms, .. } => {
                let (room, member) = (client / members, client % members);
                let per_room = senders / rooms;
                let listen = Listen::Room {
                    room,
                    creator: member == 0,
                };
                // Ranks run room by room, so paced senders are staggered over all rooms.
                let rank = spread(member, members, per_room).map(|k| room * per_room + k);
                (listen, Audience::Room(room), rank)
            }
            Scenario::Connect { .. } | Scenario::Login { .. } => {
                (Listen::Personal, Audience::All, None)
            }
        }
    };
    let publish_of = |audience: Audience, rank: Option<usize>| -> Option<Publish> {
        let (t, rank) = (traffic?, rank?);
        Some(Publish {
            audience,
            messages: t.messages,
            size: t.size,
            window: t.window,
            pacing: t.rate.map(|rate| {
                let interval = (senders as f64 * 1e9 / rate).max(1.0) as u64;
                (interval, interval * rank as u64 / senders as u64)
            }),
        })
    };
    let mut plans = Vec::with_capacity(clients + if separate_publisher { senders } else { 0 });
    for client in 0..clients {
        let (listen, audience, rank) = role_of(client);
        let publish = publish_of(audience, rank);
        plans.push(ConnPlan {
            index: plans.len(),
            role: Role {
                client,
                listen: Some(listen),
            },
            publish: if separate_publisher { None } else { publish },
        });
        if separate_publisher && publish.is_some() {
            plans.push(ConnPlan {
                index: plans.len(),
                role: Role {
                    client,
                    listen: None,
                },
                publish,
            });
        }
    }
    plans
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Traffic;

    fn fanout(clients: usize, senders: usize) -> Scenario {
        Scenario::Fanout(Traffic {
            clients,
            senders,
            ..Traffic::FANOUT_DEFAULT
        })
    }

    #[test]
    fn fanout_senders_are_spread_and_counted_exactly() {
        for (clients, senders) in [(1000, 10), (20, 2), (7, 3), (5, 5), (2, 1), (1000, 999)] {
            let plans = plan(&fanout(clients, senders), false);
            let publishing: Vec<usize> = plans
                .iter()
                .filter(|p| p.publish.is_some())
                .map(|p| p.role.client)
                .collect();
            assert_eq!(
                publishing.len(),
                senders,
                "{clients} clients, {senders} senders"
            );
            assert_eq!(plans.len(), clients);
        }
        let plans = plan(&fanout(1000, 10), false);
        let publishing: Vec<usize> = plans
            .iter()
            .filter(|p| p.publish.is_some())
            .map(|p| p.role.client)
            .collect();
        assert_eq!(publishing, (0..10).map(|k| k * 100).collect::<Vec<_>>());
    }

    #[test]
    fn separate_publishers_get_their_own_connection() {
        let plans = plan(&fanout(10, 2), true);
        assert_eq!(plans.len(), 12);
        let publishers: Vec<&ConnPlan> = plans.iter().filter(|p| p.publish.is_some()).collect();
        assert_eq!(publishers.len(), 2);
        assert!(publishers.iter().all(|p| p.role.listen.is_none()));
        assert!(plans.iter().enumerate().all(|(i, p)| p.index == i));
        let whisper = Scenario::Whisper(Traffic {
            clients: 10,
            ..Traffic::WHISPER_DEFAULT
        });
        assert_eq!(plan(&whisper, true).len(), 20);
        assert_eq!(plan(&whisper, false).len(), 10);
    }

    #[test]
    fn paced_senders_are_staggered() {
        let scenario = Scenario::Fanout(Traffic {
            clients: 4,
            senders: 2,
            rate: Some(1000.0),
            ..Traffic::FANOUT_DEFAULT
        });
        let pacing: Vec<(u64, u64)> = plan(&scenario, false)
            .iter()
            .filter_map(|p| p.publish.and_then(|p| p.pacing))
            .collect();
        assert_eq!(pacing, vec![(2_000_000, 0), (2_000_000, 1_000_000)]);
    }

    fn rooms(rooms: usize, members: usize, per_room: usize) -> Scenario {
        Scenario::Rooms {
            rooms,
            traffic: Traffic {
                clients: rooms * members,
                senders: rooms * per_room,
                ..Traffic::ROOMS_DEFAULT
            },
        }
    }

    #[test]
    fn room_senders_are_spread_within_each_room_and_counted_exactly() {
        for (r, k, p) in [(10, 100, 2), (1, 1000, 10), (3, 7, 3), (4, 2, 2), (5, 5, 1)] {
            let plans = plan(&rooms(r, k, p), false);
            assert_eq!(plans.len(), r * k);
            for room in 0..r {
                let members: Vec<&ConnPlan> = plans
                    .iter()
                    .filter(|c| matches!(c.role.listen, Some(Listen::Room { room: x, .. }) if x == room))
                    .collect();
                assert_eq!(members.len(), k, "room {room} of {r}×{k}");
                let creators: Vec<usize> = members
                    .iter()
                    .filter(|c| matches!(c.role.listen, Some(Listen::Room { creator: true, .. })))
                    .map(|c| c.role.client)
                    .collect();
                assert_eq!(
                    creators,
                    vec![room * k],
                    "one creator, the room's first member"
                );
                let senders: Vec<Publish> = members.iter().filter_map(|c| c.publish).collect();
                assert_eq!(senders.len(), p, "{r}×{k}, {p} senders per room");
                assert!(senders.iter().all(|s| s.audience == Audience::Room(room)));
            }
        }
        let publishing: Vec<usize> = plan(&rooms(2, 100, 4), false)
            .iter()
            .filter(|c| c.publish.is_some())
            .map(|c| c.role.client)
            .collect();
        assert_eq!(publishing, vec![0, 25, 50, 75, 100, 125, 150, 175]);
    }

    #[test]
    fn one_room_plans_like_fanout() {
        let senders = |scenario: &Scenario| -> Vec<usize> {
            plan(scenario, false)
                .iter()
                .filter(|c| c.publish.is_some())
                .map(|c| c.role.client)
                .collect()
        };
        assert_eq!(senders(&rooms(1, 1000, 10)), senders(&fanout(1000, 10)));
    }

    #[test]
    fn room_publishers_get_their_own_connection_where_needed() {
        let plans = plan(&rooms(3, 4, 2), true);
        assert_eq!(plans.len(), 12 + 6);
        let publishers: Vec<&ConnPlan> = plans.iter().filter(|p| p.publish.is_some()).collect();
        assert_eq!(publishers.len(), 6);
        assert!(publishers.iter().all(|p| p.role.listen.is_none()));
    }

    #[test]
    fn paced_room_senders_are_staggered_over_all_rooms() {
        let mut scenario = rooms(2, 4, 2);
        if let Scenario::Rooms { traffic, .. } = &mut scenario {
            traffic.rate = Some(1000.0);
        }
        let pacing: Vec<(u64, u64)> = plan(&scenario, false)
            .iter()
            .filter_map(|p| p.publish.and_then(|p| p.pacing))
            .collect();
        assert_eq!(
            pacing,
            vec![
                (4_000_000, 0),
                (4_000_000, 1_000_000),
                (4_000_000, 2_000_000),
                (4_000_000, 3_000_000)
            ]
        );
    }
}
