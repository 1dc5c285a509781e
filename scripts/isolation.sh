#!/usr/bin/env bash
# Runs the isolation specs in tests/isolation/specs against the running cluster given
# (socket DIR, PORT) with PostgreSQL's isolation tester, comparing with tests/isolation/expected.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:?socket dir}; port=${2:?port}
PGXS=$(/usr/lib/postgresql/15/bin/pg_config --pgxs)
REGRESS=$(dirname "$PGXS")/../test/isolation/pg_isolation_regress
specs=$(ls tests/isolation/specs/*.spec 2>/dev/null | xargs -rn1 basename | sed 's/\.spec$//')
if [ -z "$specs" ]; then echo "no isolation specs"; exit 0; fi
out=$(mktemp -d /tmp/nbiso.XXXXXX)
chmod 777 "$out"
# The specs create the extension themselves, each in the database the tester gives them.
"$REGRESS" --use-existing --host="$dir" --port="$port" --user=postgres \
  --inputdir=tests/isolation --outputdir="$out" --dbname=nb_isolation $specs || {
  cat "$out/regression.diffs" 2>/dev/null | head -200; exit 1; }
