#!/usr/bin/env bash
# Memory of one session that sees many distinct campaigns (issue #11): it runs track_cost and
# budget_check for campaign-1 .. campaign-N (default N = 10^6, in batches of 20,000, one
# transaction each) and reports, after 5,000, 200,000 and N campaigns, the backend's anonymous
# memory (RssAnon of /proc/PID/status) and the size of its cache context `neon_budget caches`
# (pg_backend_memory_contexts). Before issue #11 the caches were unbounded: 3 MB -> 76 MB of
# anonymous memory over 200,000 campaigns, none of it visible in pg_backend_memory_contexts.
#
# Run alone (as root on Debian 12; its own throwaway cluster in /tmp/nbbench_mem on port 5490):
#   bash bench/cache_memory.sh      (about 3 minutes). bench/run.sh runs it too.
# Knob: BENCH_MEM_CAMPAIGNS. Prints a Markdown section.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
N=${BENCH_MEM_CAMPAIGNS:-1000000}; BATCH=20000
DIR=/tmp/nbbench_mem; PORT=5490; BIN=/usr/lib/postgresql/15/bin
if [ -z "${NB_BENCH_INSTALLED:-}" ]; then
  bash scripts/setup.sh >&2
  cargo pgrx install --release --pg-config "$BIN/pg_config" >/dev/null 2>&1 || cargo pgrx install --release --pg-config "$BIN/pg_config" >&2
fi
scripts/cluster.sh stop "$DIR" >/dev/null; scripts/cluster.sh start "$DIR" "$PORT" >/dev/null
trap 'scripts/cluster.sh stop "$DIR" >/dev/null' EXIT
psql() { command psql -X -q -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U postgres "$@"; }
psql -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS bench WITH (FORCE)" -c "CREATE DATABASE bench" >/dev/null
psql -d bench -c "SET client_min_messages = warning" -c "CREATE EXTENSION neon_budget" -c "SELECT neon_budget.set_agent_rate('MEM', 0.01)" >/dev/null

# One psql session for the whole run: a coprocess fed batch by batch.
coproc SESSION { psql -d bench -At 2>&1; }
ask() { # ask SQL -> one line of output
  echo "$1" >&"${SESSION[1]}"
  IFS= read -r line <&"${SESSION[0]}"; echo "$line"
}
pid=$(ask "SELECT pg_backend_pid();")
measure() {
  local bytes anon
  bytes=$(ask "SELECT COALESCE(sum(total_bytes), 0) FROM pg_backend_memory_contexts WHERE name = 'neon_budget caches';")
  anon=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status")
  printf '| %s | %s | %s |\n' "$(printf "%'d" "$1")" "$(( anon / 1024 ))" "$(awk -v b="$bytes" 'BEGIN{printf "%.2f", b/1048576}')"
}
echo "## Memory of one session over many campaigns (track_cost and budget_check per campaign)"
echo
echo "| campaigns seen | backend RssAnon (MB) | neon_budget caches context (MB) |"
echo "|---:|---:|---:|"
measure 0
done_n=0
for mark in 5000 200000 "$N"; do
  while [ "$done_n" -lt "$mark" ]; do
    to=$(( done_n + BATCH )); [ "$to" -gt "$mark" ] && to=$mark
    ask "SELECT count(neon_budget.track_cost('MEM', 10, campaign_id => 'campaign-' || g)) + count(c.can_execute) FROM generate_series($((done_n + 1)), $to) g, LATERAL neon_budget.budget_check('campaign-' || g) c;" >/dev/null
    done_n=$to
  done
  measure "$mark"
done
v=$(ask "SELECT count(*) FROM neon_budget.budget_verify();")
echo
echo "$N campaigns in one session; budget_verify() afterwards: $v rows (must be 0)."
[ "$v" = 0 ]
echo "\\q" >&"${SESSION[1]}"
