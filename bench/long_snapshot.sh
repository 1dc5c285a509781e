#!/usr/bin/env bash
# Readers under a long-held snapshot (issue #12): 8 writers run track_cost (bench/track_cost.sql)
# while one reader calls budget_check and another reads the campaign_cost view, each in a loop
# (one pgbench client each). First for BENCH_SNAP_NORMAL seconds (default 20) as is, then for
# BENCH_SNAP_SECONDS (default 60) while another session holds a REPEATABLE READ snapshot open.
# Reports the readers' median and p99 latency in both regimes and their ratio, the writers' tps,
# and the size of the internal slot tables against their live rows at the end of the snapshot
# and after it ended and VACUUM ran. After each regime, with the writers stopped (and the
# snapshot still held in the second), each reader also runs alone for BENCH_SNAP_ALONE seconds
# (default 5): its own cost, without the writers' share of this machine's CPU. Then the
# aggregate oracle and budget_verify() must hold.
#
# Run alone (as root on Debian 12; own throwaway cluster in /tmp/nbbench_snap on port 5486):
#   bash bench/long_snapshot.sh        (about 2 minutes). bench/run.sh runs it too.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
export PATH="$HOME/.cargo/bin:$PATH"
NORMAL=${BENCH_SNAP_NORMAL:-20}; SNAP=${BENCH_SNAP_SECONDS:-60}; ALONE=${BENCH_SNAP_ALONE:-5}
DIR=/tmp/nbbench_snap; PORT=5486; BIN=/usr/lib/postgresql/15/bin
WORK=$(mktemp -d /tmp/nbbench_snap_work.XXXXXX); chmod 777 "$WORK"
if [ -z "${NB_BENCH_INSTALLED:-}" ]; then
  bash scripts/setup.sh >&2
  cargo pgrx install --release --pg-config "$BIN/pg_config" >/dev/null 2>&1 || cargo pgrx install --release --pg-config "$BIN/pg_config" >&2
fi
scripts/cluster.sh stop "$DIR" >&2; scripts/cluster.sh start "$DIR" "$PORT" >&2
trap 'scripts/cluster.sh stop "$DIR" >&2; rm -rf "$WORK"' EXIT
psql() { command psql -X -q -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U postgres "$@"; }
q() { psql -d bench -At -c "$1"; }
psql -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS bench WITH (FORCE)" -c "CREATE DATABASE bench" >/dev/null
psql -d bench -c "SET client_min_messages = warning" -c "CREATE EXTENSION neon_budget" >/dev/null
q "SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 1000000000)" >/dev/null
for i in 1 2 3 4 5 6 7 8; do q "SELECT neon_budget.set_campaign('campaign-$i', 'Campaign $i', 'BENCH', 1000000000)" >/dev/null; done
echo "SELECT can_execute FROM neon_budget.budget_check('campaign-1', 'CONTENT', 1000);" > "$WORK/check.sql"
echo "SELECT count(*) FROM neon_budget.campaign_cost;" > "$WORK/view.sql"

# One regime: name, seconds. Writers and both readers run at once; prints
# "writer_tps check_median check_p99 view_median view_p99" (ms).
regime() {
  local name=$1 t=$2
  rm -f "$WORK"/w.* "$WORK"/c.* "$WORK"/v.*
  "$BIN/pgbench" -n -M prepared -h "$DIR" -p "$PORT" -U postgres -c 8 -j 2 -T "$t" -f bench/track_cost.sql bench > "$WORK/writers.out" 2>&1 &
  local w=$!
  "$BIN/pgbench" -n -M prepared -h "$DIR" -p "$PORT" -U postgres -c 1 -T "$t" -l --log-prefix="$WORK/c" -f "$WORK/check.sql" bench >/dev/null 2>&1 &
  local c=$!
  "$BIN/pgbench" -n -M prepared -h "$DIR" -p "$PORT" -U postgres -c 1 -T "$t" -l --log-prefix="$WORK/v" -f "$WORK/view.sql" bench >/dev/null 2>&1 &
  local v=$!
  wait $w $c $v
  local tps; tps=$(awk '/^tps/ {print $3}' "$WORK/writers.out")
  echo "$tps $(cat "$WORK"/c.* | percentiles) $(cat "$WORK"/v.* | percentiles)"
}
# One reader alone for ALONE seconds: "median p99" (ms).
alone() {
  rm -f "$WORK"/a.*
  "$BIN/pgbench" -n -M prepared -h "$DIR" -p "$PORT" -U postgres -c 1 -T "$ALONE" -l --log-prefix="$WORK/a" -f "$WORK/$1.sql" bench >/dev/null 2>&1
  cat "$WORK"/a.* | percentiles
}
sizes() {  # total size of the four slot tables (with indexes) and their live rows
  q "SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) || ' for ' || sum((SELECT count(*) FROM neon_budget._month_spend) * (c.relname = '_month_spend')::int
       + (SELECT count(*) FROM neon_budget._campaign_spend) * (c.relname = '_campaign_spend')::int
       + (SELECT count(*) FROM neon_budget._agent_spend) * (c.relname = '_agent_spend')::int
       + (SELECT count(*) FROM neon_budget._day_spend) * (c.relname = '_day_spend')::int) || ' live rows'
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'neon_budget' AND c.relname IN ('_month_spend', '_campaign_spend', '_agent_spend', '_day_spend')"
}

read -r n_tps n_cm n_cp n_vm n_vp < <(regime normal "$NORMAL")
read -r na_cm na_cp < <(alone check); read -r na_vm na_vp < <(alone view)
q "VACUUM" >/dev/null
before=$(sizes)
( psql -d bench -c "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM neon_budget._month_spend; SELECT pg_sleep($((SNAP + 30))); COMMIT;" >/dev/null 2>&1 ) &
holder=$!; sleep 1
read -r s_tps s_cm s_cp s_vm s_vp < <(regime snapshot "$SNAP")
read -r sa_cm sa_cp < <(alone check); read -r sa_vm sa_vp < <(alone view)
during=$(sizes)
kill "$holder" 2>/dev/null || true
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()" >/dev/null
sleep 1; q "VACUUM" >/dev/null
after=$(sizes)
[ "$(psql -d bench -At -f bench/oracle.sql)" = t ] || { echo "AGGREGATE ORACLE FAILED after the long snapshot" >&2; exit 1; }
[ "$(q 'SELECT count(*) FROM neon_budget.budget_verify()')" = 0 ] || { echo "budget_verify() NOT EMPTY after the long snapshot" >&2; exit 1; }
r() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f", a/b}'; }
echo "## Readers under a long-held snapshot (bench/long_snapshot.sh)"
echo
echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) cores: 8 writers (track_cost), one budget_check reader and one campaign_cost reader at once; ${NORMAL}s as is, then ${SNAP}s with a REPEATABLE READ snapshot held open."
echo
echo "| | writers tps | budget_check median / p99 ms | campaign_cost median / p99 ms |"
echo "|---|---:|---:|---:|"
echo "| no long snapshot | ${n_tps%.*} | $n_cm / $n_cp | $n_vm / $n_vp |"
echo "| ${SNAP}s snapshot held | ${s_tps%.*} | $s_cm / $s_cp | $s_vm / $s_vp |"
echo "| ratio | $(r "$s_tps" "$n_tps") | $(r "$s_cm" "$n_cm") / $(r "$s_cp" "$n_cp") | $(r "$s_vm" "$n_vm") / $(r "$s_vp" "$n_vp") |"
echo
echo "Each reader alone for ${ALONE}s right after each regime (writers stopped; the snapshot still held in the second):"
echo
echo "| | budget_check median / p99 ms | campaign_cost median / p99 ms |"
echo "|---|---:|---:|"
echo "| no long snapshot | $na_cm / $na_cp | $na_vm / $na_vp |"
echo "| snapshot held | $sa_cm / $sa_cp | $sa_vm / $sa_vp |"
echo "| ratio | $(r "$sa_cm" "$na_cm") / $(r "$sa_cp" "$na_cp") | $(r "$sa_vm" "$na_vm") / $(r "$sa_vp" "$na_vp") |"
echo
echo "Slot tables (with indexes): $before after the first regime and VACUUM; $during at the end of the snapshot; $after after it ended and VACUUM ran."
echo "The aggregate oracle held and budget_verify() was empty afterwards."
echo
