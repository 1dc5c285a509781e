#!/usr/bin/env bash
# Runs the isolation specs in tests/isolation/specs with PostgreSQL's isolation tester
# (pg_isolation_regress) against the running cluster given (socket DIR, PORT), comparing with
# tests/isolation/expected. The database nb_isolation is made anew with tests/isolation/setup.sql.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:?socket dir}; port=${2:?port}
PGXS=$(/usr/lib/postgresql/15/bin/pg_config --pgxs)
REGRESS=$(dirname "$PGXS")/../test/isolation/pg_isolation_regress
specs=$(ls tests/isolation/specs/*.spec | xargs -n1 basename | sed 's/\.spec$//')
psql() { command psql -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres "$@"; }
psql -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS nb_isolation WITH (FORCE)" -c "CREATE DATABASE nb_isolation"
# The specs write in months of 2031 (ahead of the clock): allow any created_at there.
psql -d postgres -c "ALTER DATABASE nb_isolation SET neon_budget.max_clock_skew = -1"
psql -d nb_isolation -f tests/isolation/setup.sql
out=$(mktemp -d /tmp/nbiso.XXXXXX)
chmod 777 "$out"
if ! "$REGRESS" --use-existing --host="$dir" --port="$port" --user=postgres \
    --inputdir=tests/isolation --outputdir="$out" --dbname=nb_isolation $specs; then
  cat "$out/regression.diffs" 2>/dev/null | head -300
  exit 1
fi
