#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and simulation tests, and the end-to-end tests
# (which need root: each creates its own network namespace and TAP, and removes them).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings
cargo build --release --workspace
cargo nextest run --release --workspace --no-fail-fast "$@"
