#!/usr/bin/env bash
# Runs every neon_budget test: formatting and lints, #[pg_test] unit tests inside the server, integration tests over a
# real connection to a throwaway cluster, PostgreSQL isolation specs, SQL regression tests
# (pg_regress, expected output checked in), the command-line client's
# tests and the upgrade test. Installs what is
# missing first (scripts/setup.sh). Run as root on Debian 12; .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
TEST_DIR=${NEON_BUDGET_TEST_DIR:-/tmp/nbtest}
TEST_PORT=${NEON_BUDGET_TEST_PORT:-5498}

bash scripts/setup.sh

echo "== 0/6 formatting, lints and the module graph (cargo fmt --check; cargo clippy, warnings are errors; no module circles)"
cargo fmt --all --check
python3 scripts/module_graph.py
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "== 1/6 #[pg_test] unit tests (cargo pgrx test)"
# pgrx creates and owns this data directory; a root-owned leftover would make initdb fail.
[ -d /tmp/nbpgrx ] && [ "$(stat -c %U /tmp/nbpgrx)" != postgres ] && rm -rf /tmp/nbpgrx
cargo pgrx test pg15 --runas postgres --pgdata /tmp/nbpgrx

echo "== 2/6 integration tests against a real cluster"
# cargo pgrx test leaves its debug build installed: install the release build over it.
cargo pgrx install --release --pg-config "$PG_CONFIG" >/dev/null
scripts/cluster.sh stop "$TEST_DIR"
scripts/cluster.sh start "$TEST_DIR" "$TEST_PORT"
trap 'scripts/cluster.sh stop "$TEST_DIR"' EXIT
export NEON_BUDGET_TEST_DSN="host=$TEST_DIR port=$TEST_PORT user=postgres"
export NEON_BUDGET_TEST_DIR="$TEST_DIR" NEON_BUDGET_TEST_PORT="$TEST_PORT"
cargo test --release -p neon_budget_integration -- --test-threads=4

echo "== 3/6 isolation specs (pg_isolation_regress)"
bash scripts/isolation.sh "$TEST_DIR" "$TEST_PORT"

echo "== 4/6 SQL regression tests (pg_regress: tests/pg_regress/sql, expected output checked in)"
bash scripts/pg_regress.sh "$TEST_DIR" "$TEST_PORT"
scripts/cluster.sh stop "$TEST_DIR"

echo "== 5/6 neon-budget command-line client"
bash scripts/test_cli.sh

echo "== 6/6 upgrade from 0.1.0 (built from its git commit), then the integration suite on upgraded databases"
bash scripts/upgrade_test.sh
