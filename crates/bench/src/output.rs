//! The human-readable summary of a [`Report`].

use std::fmt::Write as _;

use crate::stats::Report;

/// A multi-line summary for a terminal.
pub fn summary(report: &Report) -> String {
    let mut s = String::new();
    // Writing into a String cannot fail, hence the ignored results below.
    let _ = writeln!(s, "{}", headline(report));
    let _ = writeln!(
        s,
        "connections  {}/{} open in {:.3} s ({:.0} logins/s), {} failed",
        report.connected,
        report.connections,
        report.connect_secs,
        report.logins_per_sec,
        report.connect_errors
    );
    if let Some(accounts) = &report.accounts {
        let _ = writeln!(
            s,
            "accounts     {} registered in {:.3} s ({:.0} registrations/s), {} there already, \
             {} failed",
            accounts.created,
            accounts.secs,
            accounts.registrations_per_sec(),
            accounts.existing,
            accounts.failed
        );
    }
    if report.latency_of != "login" {
        let _ = writeln!(s, "duration     {:.3} s", report.duration_secs);
        let _ = writeln!(
            s,
            "messages     {} sent, {} accepted, {} refused",
            report.messages_sent, report.messages_acked, report.messages_rejected
        );
        let lost_share = if report.expected_deliveries > 0 {
            100.0 * report.loss as f64 / report.expected_deliveries as f64
        } else {
            0.0
        };
        let _ = writeln!(
            s,
            "deliveries   {} of {} expected; loss {} ({lost_share:.3}%)",
            report.deliveries, report.expected_deliveries, report.loss
        );
        if report.self_deliveries > 0 {
            let _ = writeln!(
                s,
                "             {} copies of a client's own messages set aside (not counted)",
                report.self_deliveries
            );
        }
        let _ = writeln!(
            s,
            "throughput   {:.0} deliveries/s, {:.0} messages/s",
            report.deliveries_per_sec, report.messages_per_sec
        );
    }
    let l = &report.latency;
    let _ = writeln!(
        s,
        "latency      p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  ({} {} samples)",
        micros(l.p50_us),
        micros(l.p90_us),
        micros(l.p99_us),
        micros(l.p999_us),
        micros(l.max_us),
        l.count,
        report.latency_of
    );
    match &report.server {
        Some(server) => {
            let cpu = match (
                server.cpu_secs,
                server.cpu_secs_per_million_deliveries,
                server.cpu_ms_per_login,
            ) {
                (Some(cpu), Some(per_m), _) => {
                    format!("{cpu:.2} s, {per_m:.3} s per million deliveries")
                }
                (Some(cpu), None, Some(per_login)) => {
                    format!("{cpu:.2} s, {per_login:.2} ms per login")
                }
                (Some(cpu), None, None) => format!("{cpu:.2} s"),
                _ => "could not be read".to_owned(),
            };
            let _ = writeln!(s, "server CPU   {cpu} (pid {})", server.pid);
            if let (Some(before), Some(after)) = (server.rss_before_bytes, server.rss_after_bytes) {
                let per_conn = server
                    .rss_bytes_per_connection
                    .map(|b| format!(", {b:.0} bytes per connection"))
                    .unwrap_or_default();
                let _ = writeln!(
                    s,
                    "server RSS   {:.1} MiB before, {:.1} MiB connected{per_conn}",
                    mib(before),
                    mib(after)
                );
            }
        }
        None => {
            let _ = writeln!(s, "server CPU   not measured (no --server-pid)");
        }
    }
    if let Some(cpu) = report.bench_cpu_secs {
        let _ = writeln!(s, "bench CPU    {cpu:.2} s");
    }
    if let Some(load) = report.machine_load {
        let share = 100.0 * load.other_cpu_secs / load.capacity_cpu_secs.max(1e-9);
        let _ = writeln!(
            s,
            "other load   {:.2} CPU s of {:.2} used by other processes ({share:.0}%){}",
            load.other_cpu_secs,
            load.capacity_cpu_secs,
            if load.disturbed() {
                ": FIGURES DISTURBED by other work on this machine"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(s, "errors       {}", report.errors);
    for (kind, count) in &report.error_kinds {
        let _ = writeln!(s, "             {count} × {kind}");
    }
    if report.timed_out {
        let _ = writeln!(
            s,
            "TIMED OUT: the run hit --timeout; figures cover what happened until then"
        );
    }
    s
}

fn headline(report: &Report) -> String {
    let who = format!("{} {} @ {}", report.target, report.scenario, report.address);
    match report.scenario {
        "connect" => format!("{who}: {} clients", report.clients),
        "login" => format!("{who}: {} clients logging in to accounts", report.clients),
        "rooms" if report.rooms > 0 => {
            let pace = report
                .rate
                .map_or_else(|| "flat out".to_owned(), |r| format!("{r:.0} msg/s"));
            format!(
                "{who}: {} rooms × {} members, {} senders per room × {} messages of {} B, \
                 window {}, {pace}",
                report.rooms,
                report.clients / report.rooms,
                report.senders / report.rooms,
                report.messages_per_sender,
                report.size,
                report.window
            )
        }
        _ => {
            let pace = report
                .rate
                .map_or_else(|| "flat out".to_owned(), |r| format!("{r:.0} msg/s"));
            format!(
                "{who}: {} clients, {} senders × {} messages of {} B, window {}, {pace}",
                report.clients,
                report.senders,
                report.messages_per_sender,
                report.size,
                report.window
            )
        }
    }
}

fn micros(us: f64) -> String {
    if us < 1_000.0 {
        format!("{us:.0} µs")
    } else if us < 1_000_000.0 {
        format!("{:.2} ms", us / 1_000.0)
    } else {
        format!("{:.2} s", us / 1_000_000.0)
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_pick_a_readable_unit() {
        assert_eq!(micros(12.4), "12 µs");
        assert_eq!(micros(1_234.0), "1.23 ms");
        assert_eq!(micros(2_500_000.0), "2.50 s");
    }
}
