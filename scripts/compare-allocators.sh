#!/usr/bin/env bash
# Compares suda-server built with the system allocator, mimalloc and jemalloc: fan-out and
# whisper throughput with server CPU per million deliveries, and resident memory per idle
# logged-in connection. Prints one markdown table of medians.
#
# Runs alternate between the builds (A, B, C, then B, C, A, ...), so a disturbance from other
# work on the machine spreads over all of them instead of landing on one. Every run gets a
# fresh server (its RSS before connecting is the baseline of the per-connection figure).
#
# Parameters (environment): ALLOCATORS ("system mimalloc jemalloc"), REPS (3), CLIENTS (1000),
# SENDERS (10), MESSAGES (200), WHISPER_MESSAGES (50), IDLE_CLIENTS (10000), TIMEOUT (120s),
# SCENARIOS ("fanout whisper connect"),
# BIN_DIR (prebuilt suda-server-ALLOCATOR binaries: skips the builds), OUT_DIR (keeps the
# per-run JSON reports).
set -euo pipefail
cd "$(dirname "$0")/.."

ALLOCATORS=${ALLOCATORS:-"system mimalloc jemalloc"}
REPS=${REPS:-3}
CLIENTS=${CLIENTS:-1000}
SENDERS=${SENDERS:-10}
MESSAGES=${MESSAGES:-200}
WHISPER_MESSAGES=${WHISPER_MESSAGES:-50}
IDLE_CLIENTS=${IDLE_CLIENTS:-10000}
TIMEOUT=${TIMEOUT:-120s}
SCENARIOS=${SCENARIOS:-"fanout whisper connect"}

work=$(mktemp -d)
out_dir=${OUT_DIR:-$work/reports}
bin_dir=${BIN_DIR:-$work/bin}
mkdir -p "$out_dir" "$bin_dir"
server_pid=

say() { echo "compare-allocators: $*" >&2; }

cleanup() {
    # Only the server this script started, by pid.
    if [[ -n $server_pid ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# shellcheck source=scripts/lib/ports.sh
source scripts/lib/ports.sh

if [[ -z ${BIN_DIR:-} ]]; then
    for alloc in $ALLOCATORS; do
        features=()
        [[ $alloc == system ]] || features=(--features "$alloc")
        say "building suda-server ($alloc)"
        cargo build --release --locked -p suda-server "${features[@]}" >&2
        cp target/release/suda-server "$bin_dir/suda-server-$alloc"
    done
fi
cargo build --release --locked -p suda-bench >&2
bench=target/release/suda-bench

run() {
    local alloc=$1 scenario=$2 rep=$3 port
    port=$(free_port)
    "$bin_dir/suda-server-$alloc" --listen "127.0.0.1:$port" --max-connections 20000 \
        --idle-timeout 10m --message-rate 0 --byte-rate 0 --store none --log warn \
        2>>"$work/server.log" &
    server_pid=$!
    if ! wait_for_port "$port" "$server_pid"; then
        say "suda-server-$alloc did not start"
        tail "$work/server.log" >&2
        exit 1
    fi
    local args=(--target "suda://127.0.0.1:$port" --server-pid "$server_pid" --json --quiet
        --timeout "$TIMEOUT")
    case $scenario in
        fanout) args=(fanout "${args[@]}" -n "$CLIENTS" -p "$SENDERS" -m "$MESSAGES") ;;
        whisper) args=(whisper "${args[@]}" -n "$CLIENTS" -m "$WHISPER_MESSAGES") ;;
        connect) args=(connect "${args[@]}" -n "$IDLE_CLIENTS") ;;
    esac
    say "$alloc $scenario $rep/$REPS"
    "$bench" "${args[@]}" >"$out_dir/$alloc-$scenario-$rep.json" ||
        say "$alloc $scenario run $rep reported failures (kept in the table)"
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
}

read -r -a allocs <<<"$ALLOCATORS"
for rep in $(seq "$REPS"); do
    # Rotate the order each repetition, so no build always runs first (or last).
    shift_by=$(((rep - 1) % ${#allocs[@]}))
    order=("${allocs[@]:shift_by}" "${allocs[@]:0:shift_by}")
    for scenario in $SCENARIOS; do
        for alloc in "${order[@]}"; do
            run "$alloc" "$scenario" "$rep"
        done
    done
done

echo
echo "Fan-out: $CLIENTS clients, $SENDERS senders × $MESSAGES messages; whisper: $CLIENTS clients × $WHISPER_MESSAGES;"
echo "idle: $IDLE_CLIENTS logged-in connections. Medians of $REPS alternating runs (range in brackets);"
echo "'other load' is the largest share of the machine used by other processes in any of the runs."
echo
python3 - "$out_dir" "$REPS" "${allocs[@]}" <<'PY'
import json, pathlib, statistics, sys

out_dir, reps, allocs = pathlib.Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]

def load(alloc, scenario):
    runs = []
    for p in sorted(out_dir.glob(f"{alloc}-{scenario}-*.json")):
        try:
            runs.append(json.loads(p.read_text()))
        except ValueError:
            pass
    return runs

def cell(values, spec):
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    med = statistics.median(values)
    return f"{med:{spec}} [{min(values):{spec}}–{max(values):{spec}}]"

def other(r):
    load = r.get("machine_load")
    if not load or not load["capacity_cpu_secs"]:
        return 0
    return 100 * load["other_cpu_secs"] / load["capacity_cpu_secs"]

print("| allocator | fan-out deliveries/s | fan-out CPU s / M | whisper msgs/s | whisper CPU s / M "
      "| RSS bytes / idle connection | loss | other load |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for alloc in allocs:
    fan, whi, con = load(alloc, "fanout"), load(alloc, "whisper"), load(alloc, "connect")
    cpu = lambda runs: [(r.get("server") or {}).get("cpu_secs_per_million_deliveries") for r in runs]
    rss = [(r.get("server") or {}).get("rss_bytes_per_connection") for r in con]
    loss = sum(r["loss"] + r["errors"] for r in fan + whi + con)
    worst = max((other(r) for r in fan + whi + con), default=0)
    print(f"| {alloc} | {cell([r['deliveries_per_sec'] for r in fan], ',.0f')} | {cell(cpu(fan), '.3f')} "
          f"| {cell([r['deliveries_per_sec'] for r in whi], ',.0f')} | {cell(cpu(whi), '.2f')} "
          f"| {cell(rss, ',.0f')} | {loss} | {worst:.0f}% |")
PY
