#!/usr/bin/env bash
# Runs the whole test suite: unit, property and end-to-end tests of every crate.
# Anything the tests need beyond the Rust toolchain is installed and started from here.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked "$@"
