#!/usr/bin/env bash
# Runs the same fan-out, whisper and rooms loads against suda, Redis pub/sub and NATS on this machine
# and prints one markdown table of medians, so suda's figures have a point of reference.
#
# Every server runs on a free loopback port with settings meant for benchmarking (no
# persistence, no output-buffer or slow-consumer limits in the way), is measured through
# suda-bench --server-pid, and is stopped on exit. The bench and the servers share the
# machine's cores, so figures compare servers with each other, not with other machines.
#
# Parameters (environment): SCENARIOS ("fanout fanout-rate whisper rooms"), CLIENTS (1000),
# SENDERS (10), MESSAGES (200, per fan-out sender), RATE (2000: messages/s offered over all senders
# in fanout-rate), RATE_MESSAGES (1000, per fanout-rate sender: 5 s at the default rate), WHISPER_MESSAGES (50, per client), ROOMS (10),
# MEMBERS (100, per room), ROOM_SENDERS (2, per room), ROOM_MESSAGES (200, per room sender),
# SIZE (64), WINDOW (64), REPS (3), TIMEOUT (120s),
# TARGETS ("suda redis nats"), SUDA_SERVER_FLAGS (extra suda-server flags). Per-run JSON reports are kept in $OUT_DIR if it is set.
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS=${CLIENTS:-1000}
SENDERS=${SENDERS:-10}
MESSAGES=${MESSAGES:-200}
WHISPER_MESSAGES=${WHISPER_MESSAGES:-50}
ROOMS=${ROOMS:-10}
MEMBERS=${MEMBERS:-100}
ROOM_SENDERS=${ROOM_SENDERS:-2}
ROOM_MESSAGES=${ROOM_MESSAGES:-200}
RATE=${RATE:-2000}
RATE_MESSAGES=${RATE_MESSAGES:-1000}
SCENARIOS=${SCENARIOS:-"fanout fanout-rate whisper rooms"}
SIZE=${SIZE:-64}
WINDOW=${WINDOW:-64}
REPS=${REPS:-3}
TIMEOUT=${TIMEOUT:-120s}
TARGETS=${TARGETS:-"suda redis nats"}

work=$(mktemp -d)
out_dir=${OUT_DIR:-$work/reports}
mkdir -p "$out_dir"
started_pids=()

say() { echo "compare-peers: $*" >&2; }

cleanup() {
    # Only the servers this script started, by pid.
    for pid in "${started_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
# Turn signals into an ordinary exit so the EXIT trap stops the servers then too.
trap 'exit 130' INT
trap 'exit 143' TERM

# shellcheck source=scripts/lib/ports.sh
source scripts/lib/ports.sh

# Installs what is missing from Debian's packages; a package Debian does not have is skipped.
available=()
apt_updated=false
for target in $TARGETS; do
    case $target in
        suda) available+=(suda); continue ;;
        redis) cmd=redis-server ;;
        nats) cmd=nats-server ;;
        *) say "unknown target $target, skipped"; continue ;;
    esac
    if ! command -v "$cmd" >/dev/null; then
        if [[ $(id -u) -ne 0 ]]; then
            say "$cmd is not installed and this is not root: $target skipped"
            continue
        fi
        if ! $apt_updated; then
            say "apt-get update"
            apt-get update -qq >&2
            apt_updated=true
        fi
        # Captured first: grep -q would close the pipe early and fail the pipeline under pipefail.
        policy=$(apt-cache policy "$cmd" 2>/dev/null || true)
        if ! grep -q 'Candidate: [0-9]' <<<"$policy"; then
            say "$cmd is not in Debian's packages here: $target skipped"
            continue
        fi
        say "installing $cmd"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$cmd" >&2
    fi
    available+=("$target")
done

say "building suda-server and suda-bench (release)"
# OUT_DIR (this script's report directory) is also the variable cargo gives build scripts, and
# ring's build script asks to rerun when it changes: passed through, every run with a new
# OUT_DIR rebuilt ring, rustls and the server (minutes, on a machine others share).
env -u OUT_DIR cargo build --release --locked -p suda-server -p suda-bench >&2
bench=target/release/suda-bench
suda=target/release/suda-server

# Like for like: Redis and NATS keep nothing here, so suda runs without its store, and without
# the per-session rate limits that would throttle a bench. A flag is passed only if this build
# has it and SUDA_SERVER_FLAGS does not set it; SUDA_SERVER_FLAGS adds flags of its own, e.g.
# "--store sqlite --durability batched" to measure what storage costs.
SUDA_SERVER_FLAGS=${SUDA_SERVER_FLAGS:-}
suda_flags=(--max-connections 20000 --idle-timeout 10m --log warn)
suda_help=$("$suda" --help)
for default in "--message-rate 0" "--byte-rate 0" "--store none" "--data-dir $work/suda-data"; do
    flag=${default%% *}
    if grep -q -- "$flag " <<<"$suda_help" && ! grep -q -- "$flag" <<<"$SUDA_SERVER_FLAGS"; then
        suda_flags+=("$flag" "${default#* }")
    fi
done
# Word splitting is wanted: it is a list of flags.
# shellcheck disable=SC2206
suda_flags+=($SUDA_SERVER_FLAGS)
say "suda-server ${suda_flags[*]}"

start_server() {
    local target=$1 port=$2
    case $target in
        suda)
            "$suda" --listen "127.0.0.1:$port" "${suda_flags[@]}" 2>"$work/suda.log" &
            ;;
        redis)
            redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
                --client-output-buffer-limit "pubsub 0 0 0" --maxclients 20000 \
                --protected-mode no --daemonize no --logfile "$work/redis.log" &
            ;;
        nats)
            cat >"$work/nats.conf" <<EOF
# Benchmark settings: room for a large backlog per subscriber before it is cut off as slow.
max_payload: 1MB
max_pending: 512MB
write_deadline: "60s"
max_connections: 20000
EOF
            nats-server -c "$work/nats.conf" -a 127.0.0.1 -p "$port" 2>"$work/nats.log" &
            ;;
    esac
    server_pid=$!
    started_pids+=("$server_pid")
}

# Waits (at most 10 s) until the server has used no CPU for 0.3 s: the previous run's sessions
# are then gone. Without it a run can start while the server still tears down the last one's
# 1000 sessions, and a login is refused NAME_IN_USE or a room's creation ROOM_EXISTS (one
# such creator failing costs its whole room), and that teardown's CPU is charged to the new run.
wait_until_idle() {
    local pid=$1 last="" now
    for _ in $(seq 33); do
        # utime + stime in clock ticks; the servers' names hold no spaces, so fields count true.
        now=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null) || return 0
        [[ $now == "$last" ]] && return 0
        last=$now
        sleep 0.3
    done
}

run_bench() {
    local target=$1 port=$2 pid=$3 scenario=$4 rep=$5
    local args=(--target "$target://127.0.0.1:$port" --server-pid "$pid" --json --quiet
        --timeout "$TIMEOUT" -s "$SIZE" -w "$WINDOW")
    case $scenario in
        fanout) args=(fanout "${args[@]}" -n "$CLIENTS" -p "$SENDERS" -m "$MESSAGES") ;;
        # Latency at a load every server can carry, rather than throughput flat out.
        fanout-rate) args=(fanout "${args[@]}" -n "$CLIENTS" -p "$SENDERS" -m "$RATE_MESSAGES"
            --rate "$RATE") ;;
        whisper) args=(whisper "${args[@]}" -n "$CLIENTS" -m "$WHISPER_MESSAGES") ;;
        rooms) args=(rooms "${args[@]}" -r "$ROOMS" -k "$MEMBERS" -p "$ROOM_SENDERS"
            -m "$ROOM_MESSAGES") ;;
        *) say "unknown scenario $scenario, skipped"; return ;;
    esac
    local report="$out_dir/$target-$scenario-$rep.json"
    if ! "$bench" "${args[@]}" >"$report"; then
        say "$target $scenario run $rep reported failures (kept in the table)"
    fi
    if [[ ! -s $report ]]; then
        say "$target $scenario run $rep produced no report"
        rm -f "$report"
    fi
}

# Every server runs for the whole comparison, and the targets take turns within each
# repetition (suda, redis, nats, suda, …) rather than one after the other: whatever else the
# machine does drifts over minutes, and taking turns spreads that drift over all targets alike,
# so the ratios inside one table hold. An idle server uses no CPU the bench would notice.
declare -A ports pids
running=()
for target in "${available[@]}"; do
    port=$(free_port)
    start_server "$target" "$port"
    if ! wait_for_port "$port" "$server_pid"; then
        say "$target did not start; its log:"
        cat "$work/$target.log" >&2 || true
        continue
    fi
    say "$target on 127.0.0.1:$port (pid $server_pid)"
    ports[$target]=$port
    pids[$target]=$server_pid
    running+=("$target")
done
for scenario in $SCENARIOS; do
    for rep in $(seq "$REPS"); do
        for target in "${running[@]}"; do
            say "$target $scenario $rep/$REPS"
            wait_until_idle "${pids[$target]}"
            run_bench "$target" "${ports[$target]}" "${pids[$target]}" "$scenario" "$rep"
        done
    done
done
for target in "${running[@]}"; do
    kill "${pids[$target]}" 2>/dev/null || true
    wait "${pids[$target]}" 2>/dev/null || true
done

echo
for scenario in $SCENARIOS; do
    case $scenario in
        fanout) echo "Fan-out: $CLIENTS clients, $SENDERS senders × $MESSAGES messages." ;;
        fanout-rate) echo "Fan-out at a fixed rate: $CLIENTS clients, $SENDERS senders × $RATE_MESSAGES messages," \
            "$RATE messages/s offered in all." ;;
        whisper) echo "Whisper: $CLIENTS clients × $WHISPER_MESSAGES messages." ;;
        rooms) echo "Rooms: $ROOMS rooms × $MEMBERS members, $ROOM_SENDERS senders per room × $ROOM_MESSAGES messages" \
            "(suda rooms; a Redis channel and a NATS subject per room)." ;;
    esac
done
echo "$SIZE-byte messages, window $WINDOW; medians of $REPS runs; loss and errors summed over all runs."
echo "Redis gets a second connection per publishing client (RESP2 cannot publish on a subscribed one);"
echo "the copies of a client's own messages it then receives are not counted. NATS uses echo=false."
echo "'other load': share of the machine's CPU used by processes other than the server and the bench"
echo "during the measured phase; above ~10% the row was disturbed by other work and should be re-run."
echo
python3 - "$out_dir" "$REPS" "$SCENARIOS" "${available[@]}" <<'PY'
import json, pathlib, statistics, sys

out_dir, reps = pathlib.Path(sys.argv[1]), int(sys.argv[2])
scenarios, targets = sys.argv[3].split(), sys.argv[4:]

def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None

def fmt(value, spec, unit=""):
    return "n/a" if value is None else format(value, spec) + unit

def other_load(r):
    load = r.get("machine_load")
    if not load or not load["capacity_cpu_secs"]:
        return None
    return 100 * load["other_cpu_secs"] / load["capacity_cpu_secs"]

print("| target | scenario | deliveries/s | p50 | p99 | server CPU s / M deliveries | loss | errors "
      "| other load |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for target in ["suda", "redis", "nats"]:
    if target not in targets:
        continue
    for scenario in scenarios:
        runs = [json.loads(p.read_text())
                for p in sorted(out_dir.glob(f"{target}-{scenario}-[0-9]*.json"))]
        if not runs:
            print(f"| {target} | {scenario} | no report | | | | | | |")
            continue
        rate = median(r["deliveries_per_sec"] for r in runs)
        p50 = median(r["latency"]["p50_us"] / 1000 for r in runs)
        p99 = median(r["latency"]["p99_us"] / 1000 for r in runs)
        cpu = median((r.get("server") or {}).get("cpu_secs_per_million_deliveries") for r in runs)
        loss = sum(r["loss"] for r in runs)
        errors = sum(r["errors"] for r in runs)
        other = median(other_load(r) for r in runs)
        note = "" if len(runs) == reps else f" ({len(runs)}/{reps} runs)"
        print(f"| {target} | {scenario}{note} | {fmt(rate, ',.0f')} | {fmt(p50, '.2f', ' ms')} "
              f"| {fmt(p99, '.2f', ' ms')} | {fmt(cpu, '.3f')} | {loss} | {errors} "
              f"| {fmt(other, '.0f', '%')} |")
PY
for target in redis nats; do
    case " ${available[*]} " in
        *" $target "*) ;;
        *) case " $TARGETS " in *" $target "*) echo; echo "$target: not measured (see messages above)." ;; esac ;;
    esac
done
