#!/usr/bin/env bash
# Bounded fuzzing smoke run, for CI: builds the fuzz targets in fuzz/ with cargo-fuzz (libFuzzer)
# on the stable toolchain, runs each one for a fixed time starting from the committed corpus, and
# fails if any input crashes, hangs or breaks a checked property. See fuzz/README.md.
#
#   scripts/fuzz-smoke.sh                  # every target, FUZZ_SECONDS (default 30) each
#   FUZZ_SECONDS=300 scripts/fuzz-smoke.sh session
#
# Installs what is missing (cargo-fuzz from crates.io; a C++ compiler from Debian's packages, for
# libFuzzer itself). New corpus entries go to fuzz/target/smoke-corpus/, which is thrown away;
# crashing inputs are kept in fuzz/artifacts/<target>/ and their paths printed.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS="${FUZZ_SECONDS:-30}"
CARGO_FUZZ_VERSION="${CARGO_FUZZ_VERSION:-0.13.2}"
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    targets=(decode framing session)
fi

# --- what the build needs --------------------------------------------------------------------
if ! command -v c++ >/dev/null 2>&1; then
    echo "fuzz-smoke: installing g++ (libfuzzer-sys compiles libFuzzer's C++ sources)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ >/dev/null
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi
cargo fuzz --version

# `-s none`: no sanitizer, so no `-Zsanitizer` and no nightly. The code under test forbids
# `unsafe`, so AddressSanitizer would find nothing that a panic does not already report.
# `-a`: debug assertions and overflow checks on, in an optimised build.
# Only the session target needs the server (feature `session`, on by default). The codec targets
# are built without it, which takes about half a minute from clean instead of several.
flags_for() {
    if [ "$1" = session ]; then
        echo "-s none -a"
    else
        echo "-s none -a --no-default-features"
    fi
}

echo "fuzz-smoke: building ${targets[*]}"
build_start=$SECONDS
for target in "${targets[@]}"; do
    # shellcheck disable=SC2046 # the flags are meant to split into words
    cargo fuzz build $(flags_for "$target") "$target"
done
echo "fuzz-smoke: built in $((SECONDS - build_start)) s"

# --- the runs --------------------------------------------------------------------------------
# Per-input time limit: libFuzzer reports a slower input as a hang ("timeout-..." artifact).
declare -A input_timeout=([decode]=5 [framing]=5 [session]=20)
smoke_dir=fuzz/target/smoke-corpus
failed=()
summary=()
for target in "${targets[@]}"; do
    seeds="fuzz/corpus/$target"
    work="$smoke_dir/$target"
    artifacts="fuzz/artifacts/$target"
    log="fuzz/target/smoke-$target.log"
    rm -rf "$work"
    mkdir -p "$work" "$artifacts"
    echo "fuzz-smoke: running $target for $FUZZ_SECONDS s"
    set +e
    # The first corpus directory receives new inputs; the committed one is only read.
    # shellcheck disable=SC2046
    cargo fuzz run $(flags_for "$target") "$target" "$work" "$seeds" -- \
        -max_total_time="$FUZZ_SECONDS" \
        -timeout="${input_timeout[$target]:-20}" \
        -max_len=4096 \
        -print_final_stats=1 \
        -artifact_prefix="$artifacts/" \
        >"$log" 2>&1
    status=$?
    set -e
    inited=$(grep -m1 'INITED' "$log" | grep -o 'cov: [0-9]*' || true)
    done_line=$(grep 'DONE' "$log" | tail -n1 || true)
    execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}' || true)
    rate=$(grep -m1 'stat::average_exec_per_sec' "$log" | awk '{print $2}' || true)
    added=$(grep -m1 'stat::new_units_added' "$log" | awk '{print $2}' || true)
    seeds_count=$(find "$seeds" -type f | wc -l)
    summary+=("$(printf '%-8s %10s execs %7s exec/s  %s -> %s  corpus %s seeds +%s new' \
        "$target" "${execs:-?}" "${rate:-?}" "${inited:-cov: ?}" \
        "$(echo "$done_line" | grep -o 'cov: [0-9]*' || echo 'cov: ?')" \
        "$seeds_count" "${added:-?}")")
    if [ "$status" -ne 0 ]; then
        failed+=("$target")
        echo "fuzz-smoke: $target FAILED (exit $status); the end of its log ($log):"
        grep -E 'panicked at|^(thread|  left|  right)|ERROR: libFuzzer|SUMMARY' "$log" | head -n 20 || true
        tail -n 40 "$log"
        crash=$(grep -o 'Test unit written to .*' "$log" | sed 's/Test unit written to //' | tail -n1)
        if [ -n "$crash" ]; then
            echo "fuzz-smoke: crashing input: $crash"
            echo "fuzz-smoke: reproduce with: cargo fuzz run $(flags_for "$target") $target $crash"
            echo "fuzz-smoke: show it with:   cargo fuzz fmt $(flags_for "$target") $target $crash"
        fi
    fi
done

echo
echo "fuzz-smoke: summary (${FUZZ_SECONDS} s per target)"
printf '  %s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz-smoke: FAILED: ${failed[*]}"
    exit 1
fi
echo "fuzz-smoke: ${#targets[@]} passed, 0 failed"
