#!/usr/bin/env bash
# Runs the SQL regression tests in tests/pg_regress/sql with PostgreSQL's pg_regress against the
# running cluster given (socket DIR, PORT), comparing each file's output with
# tests/pg_regress/expected. The database nb_regress is made anew; each file installs a fresh
# copy of the extension itself, so the files can also run alone (FILE... after DIR PORT).
#   scripts/pg_regress.sh DIR PORT [TEST...]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:?socket dir}; port=${2:?port}; shift 2
PGXS=$(/usr/lib/postgresql/15/bin/pg_config --pgxs)
REGRESS=$(dirname "$PGXS")/../test/regress/pg_regress
tests=${*:-$(ls tests/pg_regress/sql/*.sql | xargs -n1 basename | sed 's/\.sql$//')}
psql() { command psql -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres "$@"; }
psql -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS nb_regress WITH (FORCE)" \
  -c "CREATE DATABASE nb_regress TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C.UTF-8'"
# The files write in fixed months, some ahead of the clock: allow any created_at there (a
# superuser setting; bad_input.sql sets the default back to test the window).
psql -d postgres -c "ALTER DATABASE nb_regress SET neon_budget.max_clock_skew = -1"
out=$(mktemp -d /tmp/nb_pg_regress.XXXXXX)
chmod 777 "$out"
if ! "$REGRESS" --use-existing --host="$dir" --port="$port" --user=postgres \
    --inputdir=tests/pg_regress --outputdir="$out" --dbname=nb_regress $tests; then
  cat "$out/regression.diffs" 2>/dev/null | head -300
  echo "pg_regress: output kept in $out (results/, regression.diffs)" >&2
  exit 1
fi
rm -rf "$out"
