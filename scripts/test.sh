#!/usr/bin/env bash
# Runs the whole test suite: unit, property and end-to-end tests of every crate.
# Anything the tests need beyond the Rust toolchain is installed and started from here:
# PostgreSQL (the storage tests start throwaway servers of their own on free loopback ports).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/postgres.sh
cargo test --workspace --locked "$@"
