#!/usr/bin/env bash
# Benchmarks, apart from the tests: builds Muster and the benchmark in release and runs
# `muster-bench` with the given arguments, e.g. `scripts/bench.sh --suite intake`.
# With MUSTER_TEST_POSTGRES_URL (or --postgres URL) PostgreSQL is measured too.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p muster -p muster-bench
exec target/release/muster-bench "$@"
