#!/usr/bin/env bash
# The whole test suite: unit, property and end-to-end tests on SQLite and PostgreSQL,
# then the browser tests in Chromium. Installs and starts what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
else
    cargo test --workspace --no-fail-fast
fi

# The OpenAPI document checked by an independent validator.
python3 -m openapi_spec_validator crates/web/openapi.json

cargo build -p muster
(
    cd tests/browser
    npm ci --no-audit --no-fund --loglevel=error
    MUSTER_BIN="$PWD/../../target/debug/muster" node --test --test-concurrency=1
)
