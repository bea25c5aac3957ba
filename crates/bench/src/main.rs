//! `suda-bench`: command-line front end of the load generator.
//!
//! Exit status: 0 for a clean run, 1 when any connection or request failed (or, with
//! `--fail-on-loss`, any delivery was lost), 2 when the run could not be made at all or its report
//! could not be written.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use suda_bench::{BenchConfig, Scenario, Target, Traffic};

/// Load generator for suda (and Redis pub/sub or NATS, to compare against).
///
/// Every message carries its send time; receivers compute one-way latency on the same clock.
/// Loss (expected minus actual deliveries) is always reported, never hidden.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    scenario: ScenarioCmd,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct Common {
    /// Server to load: suda://HOST:PORT, redis://HOST:PORT or nats://HOST:PORT.
    #[arg(long, global = true, default_value = "suda://127.0.0.1:7000")]
    target: String,
    /// Hard limit on the whole run; what was measured until then is reported, with loss.
    #[arg(long, global = true, default_value = "120s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// After every sender is done, how long deliveries may stall before the rest count as lost.
    #[arg(long, global = true, default_value = "2s", value_parser = humantime::parse_duration)]
    drain: Duration,
    /// The server's pid: report its CPU seconds per million deliveries and its memory.
    #[arg(long, global = true)]
    server_pid: Option<u32>,
    /// Print one JSON object instead of the summary.
    #[arg(long, global = true)]
    json: bool,
    /// No progress bar.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Also draw throughput over time and the latency percentiles into this SVG file.
    #[arg(long, global = true, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Exit non-zero when any delivery was lost.
    #[arg(long, global = true)]
    fail_on_loss: bool,
    /// Loopback source addresses to spread connections over (127.0.0.1..=K); 0: kernel's choice.
    #[arg(long, global = true, default_value_t = 8)]
    source_addrs: u8,
    /// Most connections being opened at once (connections ramp up in batches of this size).
    #[arg(long, global = true, default_value_t = 500)]
    batch: usize,
    /// Interval of keep-alive PINGs on suda connections, below the server's idle timeout.
    #[arg(long, global = true, default_value = "20s", value_parser = humantime::parse_duration)]
    keepalive: Duration,
    /// Client names are this prefix and a number: b00001, b00002, … [default: b; acct for the
    /// login scenario's accounts]
    #[arg(long, global = true)]
    name_prefix: Option<String>,
    /// Seed for the choice of whisper recipients.
    #[arg(long, global = true, default_value_t = 1)]
    seed: u64,
    /// Runtime worker threads [default: one per CPU].
    #[arg(long, global = true)]
    threads: Option<usize>,
}

#[derive(Debug, Subcommand)]
enum ScenarioCmd {
    /// SENDERS clients broadcast MESSAGES each; every message must reach every other client.
    Fanout {
        #[command(flatten)]
        traffic: TrafficArgs,
        /// Clients that send.
        #[arg(long, short = 'p', default_value_t = Traffic::FANOUT_DEFAULT.senders)]
        senders: usize,
        /// Messages per sender.
        #[arg(long, short = 'm', default_value_t = Traffic::FANOUT_DEFAULT.messages)]
        messages: u64,
    },
    /// Every client whispers MESSAGES to random other clients.
    Whisper {
        #[command(flatten)]
        traffic: TrafficArgs,
        /// Messages per client.
        #[arg(long, short = 'm', default_value_t = Traffic::WHISPER_DEFAULT.messages)]
        messages: u64,
    },
    /// ROOMS rooms of MEMBERS clients; SENDERS members of each room chat in it MESSAGES times
    /// each, and every message must reach the other members of its room and nobody else.
    Rooms {
        #[command(flatten)]
        message: MessageArgs,
        /// Rooms.
        #[arg(long, short = 'r', default_value_t = 10)]
        rooms: usize,
        /// Members of each room (clients: ROOMS × MEMBERS).
        #[arg(long, short = 'k', default_value_t = Traffic::ROOMS_DEFAULT.clients / 10)]
        members: usize,
        /// Members of each room that send.
        #[arg(long, short = 'p', default_value_t = Traffic::ROOMS_DEFAULT.senders / 10)]
        senders: usize,
        /// Messages per sender.
        #[arg(long, short = 'm', default_value_t = Traffic::ROOMS_DEFAULT.messages)]
        messages: u64,
    },
    /// Clients connect and log in as fast as they can, stay a moment, then leave.
    Connect {
        /// Clients.
        #[arg(long, short = 'n', default_value_t = 1000)]
        clients: usize,
        /// How long to hold the connections once all are in.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        hold: Duration,
    },
    /// Clients log in to accounts with their passwords, which the server checks against slow
    /// hashes (logins per second with real hashing). Accounts missing on the server are
    /// registered first, untimed. suda only; the server must keep accounts (a store, and
    /// registration open).
    Login {
        /// Clients, one account each.
        #[arg(long, short = 'n', default_value_t = 200)]
        clients: usize,
    },
}

#[derive(Debug, Args)]
struct TrafficArgs {
    /// Clients, all receiving.
    #[arg(long, short = 'n', default_value_t = 1000)]
    clients: usize,
    #[command(flatten)]
    message: MessageArgs,
}

/// How each message looks and how fast senders go, whatever the scenario.
#[derive(Debug, Args)]
struct MessageArgs {
    /// Payload bytes per message (at least 24: the stamp).
    #[arg(long, short = 's', default_value_t = 64)]
    size: usize,
    /// Messages a sender may have unacknowledged.
    #[arg(long, short = 'w', default_value_t = 64)]
    window: u32,
    /// Aggregate messages per second over all senders, instead of flat out.
    #[arg(long)]
    rate: Option<f64>,
}

impl TrafficArgs {
    fn traffic(&self, senders: usize, messages: u64) -> Traffic {
        self.message.traffic(self.clients, senders, messages)
    }
}

impl MessageArgs {
    fn traffic(&self, clients: usize, senders: usize, messages: u64) -> Traffic {
        Traffic {
            clients,
            senders,
            messages,
            size: self.size,
            window: self.window,
            rate: self.rate,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("suda-bench: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let common = cli.common;
    let target: Target = common.target.parse()?;
    let scenario = match cli.scenario {
        ScenarioCmd::Fanout {
            traffic,
            senders,
            messages,
        } => Scenario::Fanout(traffic.traffic(senders, messages)),
        ScenarioCmd::Whisper { traffic, messages } => {
            Scenario::Whisper(traffic.traffic(traffic.clients, messages))
        }
        ScenarioCmd::Rooms {
            message,
            rooms,
            members,
            senders,
            messages,
        } => {
            // Per-room counts on the command line; the scenario counts over all rooms.
            let total = |per_room: usize| {
                per_room
                    .checked_mul(rooms)
                    .context("rooms × members is too large")
            };
            Scenario::Rooms {
                rooms,
                traffic: message.traffic(total(members)?, total(senders)?, messages),
            }
        }
        ScenarioCmd::Connect { clients, hold } => Scenario::Connect { clients, hold },
        ScenarioCmd::Login { clients } => Scenario::Login { clients },
    };
    let mut config = BenchConfig {
        timeout: common.timeout,
        drain: common.drain,
        server_pid: common.server_pid,
        source_addrs: common.source_addrs,
        connect_concurrency: common.batch,
        keepalive: common.keepalive,
        seed: common.seed,
        progress: !common.quiet,
        ..BenchConfig::new(target, scenario)
    };
    // Otherwise the scenario's own default, which `BenchConfig::new` chose.
    if let Some(prefix) = common.name_prefix {
        config.name_prefix = prefix;
    }
    config.validate()?;

    let limit = suda_bench::net::raise_fd_limit().context("raising the open-file limit")?;
    let needed = scenario.clients() as u64 + 64;
    if limit < needed {
        eprintln!(
            "suda-bench: warning: the open-file limit is {limit}, below the {needed} this run needs"
        );
    }

    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = common.threads {
        runtime.worker_threads(threads);
    }
    let runtime = runtime
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let report = runtime.block_on(suda_bench::run(&config))?;
    // Connection tasks were told to stop; do not wait for stragglers on the way out.
    runtime.shutdown_background();

    let text = if common.json {
        let mut json = serde_json::to_string(&report).context("encoding the report")?;
        json.push('\n');
        json
    } else {
        suda_bench::output::summary(&report)
    };
    // Not `print!`: it panics when standard output is gone (a reader that closed its pipe);
    // that is an error to report like any other.
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .context("writing the report to standard output")?;
    if let Some(path) = &common.plot {
        suda_bench::plot::write_svg(&report, path)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let failed = report.has_errors() || (common.fail_on_loss && report.loss > 0);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
