#!/usr/bin/env bash
# Maintenance with writers running (issue #10, defect 12): 8 pgbench clients run track_cost
# (bench/track_cost.sql, synchronous_commit on) against a billing_log of BENCH_MAINT_ROWS rows
# (default 10^6: half in the current month, half two months back) while purge_before deletes
# the older half and budget_rebuild repairs the current month (the writers' month, with $1 of
# drift put in by hand). From pgbench's per-transaction log it reports, for a baseline window
# and for each maintenance call: writes/s, the p99 and the worst write latency, and the longest
# time in which no write completed. Then budget_verify() must be empty (the repair counted
# once and the purge moved exactly what it deleted).
#
# Run alone (as root on Debian 12; it starts its own throwaway cluster in /tmp/nbbench_maint on
# port 5491):  bash bench/maintenance.sh      (about 2 minutes). bench/run.sh runs it too.
# Knobs: BENCH_MAINT_ROWS, BENCH_MAINT_CLIENTS (default 8), BENCH_MAINT_SECONDS (writers' run, 60). Prints a Markdown section.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
ROWS=${BENCH_MAINT_ROWS:-1000000}; CLIENTS=${BENCH_MAINT_CLIENTS:-8}; SECS=${BENCH_MAINT_SECONDS:-60}
DIR=/tmp/nbbench_maint; PORT=5491; BIN=/usr/lib/postgresql/15/bin
WORK=$(mktemp -d /tmp/nbbench_maint_work.XXXXXX); chmod 777 "$WORK"

if [ -z "${NB_BENCH_INSTALLED:-}" ]; then
  bash scripts/setup.sh >&2
  cargo pgrx install --release --pg-config "$BIN/pg_config" >/dev/null 2>&1 || cargo pgrx install --release --pg-config "$BIN/pg_config" >&2
fi
scripts/cluster.sh stop "$DIR"; scripts/cluster.sh start "$DIR" "$PORT"
trap 'scripts/cluster.sh stop "$DIR"; rm -rf "$WORK"' EXIT
psql() { command psql -X -q -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U postgres "$@"; }
q() { psql -d bench -At -c "$1"; }
psql -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS bench WITH (FORCE)" -c "CREATE DATABASE bench" >/dev/null
psql -d bench -c "SET client_min_messages = warning" -c "CREATE EXTENSION neon_budget" >/dev/null
q "SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 1000000000)" >/dev/null
for i in 1 2 3 4 5 6 7 8; do q "SELECT neon_budget.set_campaign('campaign-$i', 'Campaign $i', 'BENCH', 1000000000)" >/dev/null; done

half=$(( ROWS / 2 ))
# Two months back (to purge), then the current month (the writers' month, to rebuild).
q "INSERT INTO neon_budget.billing_log (agent_type, campaign_id, tokens, cost, execution_id, created_at)
   SELECT 'CONTENT', 'campaign-' || (g % 8 + 1), 1000, 0.04, 'old-' || g,
          date_trunc('month', now()) - interval '2 months' + (g % 86400) * interval '1 second'
     FROM generate_series(1, $half) g" >/dev/null
q "INSERT INTO neon_budget.billing_log (agent_type, campaign_id, tokens, cost, execution_id, created_at)
   SELECT 'CONTENT', 'campaign-' || (g % 8 + 1), 1000, 0.04, 'cur-' || g,
          date_trunc('month', now()) + (now() - date_trunc('month', now())) * ((g % 1000) / 1000.0)
     FROM generate_series(1, $half) g" >/dev/null
q "VACUUM ANALYZE neon_budget.billing_log" >/dev/null
month=$(q "SELECT neon_budget._current_month()")
cutoff=$(q "SELECT date_trunc('month', now()) - interval '1 month'")
# $1 of drift in the writers' month, for budget_rebuild to repair while they write.
q "UPDATE neon_budget._month_spend SET cost = cost + 1 WHERE billing_month = '$month'" >/dev/null

now() { date +%s.%N; }
pgb_start=$(now)
"$BIN/pgbench" -n -M prepared -h "$DIR" -p "$PORT" -U postgres -c "$CLIENTS" -j 2 -T "$SECS" -l --log-prefix="$WORK/log" \
  -f bench/track_cost.sql bench >"$WORK/pgbench.out" 2>&1 &
pgb=$!
sleep 2
# Every 20 ms, how many writers wait for a heavyweight lock (pg_locks, not granted).
pids=$(q "SELECT array_agg(pid) FROM pg_stat_activity WHERE application_name = 'pgbench'")
psql -d bench -c "DO \$\$ BEGIN
  FOR i IN 1..$(( (SECS - 2) * 50 )) LOOP
    RAISE NOTICE 'sample % %', extract(epoch FROM clock_timestamp()),
      (SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted AND pid = ANY('$pids'::int[]));
    PERFORM pg_sleep(0.02);
  END LOOP; END \$\$" 2>"$WORK/samples" &
sampler=$!
sleep 6
base_end=$(now); base_start=$(awk -v t="$base_end" 'BEGIN{printf "%.6f", t - 5}')
purge_start=$(now)
purged=$(q "SELECT neon_budget.purge_before('$cutoff')")
purge_end=$(now)
sleep 3
rebuild_start=$(now)
corrected=$(q "SELECT neon_budget.budget_rebuild('$month')")
rebuild_end=$(now)
sleep 3
# Reference: a read-only GROUP BY over the same month (no lock at all): what any query of that
# size costs the writers on this machine's cores.
scan_start=$(now)
q "SELECT count(*) FROM (SELECT neon_budget._billing_day(created_at), campaign_id, sum(cost) FROM neon_budget.billing_log
                          WHERE billing_month = '$month' GROUP BY 1, 2) s" >/dev/null
scan_end=$(now)
wait "$pgb"
kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
awk -v a="$scan_end" -v b="$(awk -v t="$pgb_start" -v d="$SECS" 'BEGIN{printf "%.6f", t + d - 1}')" 'BEGIN { exit !(a < b) }' || { echo "the writers stopped before the last measured call ended: raise BENCH_MAINT_SECONDS" >&2; exit 1; }
[ "$(q "SELECT count(*) FROM neon_budget.budget_verify()")" = 0 ] || { echo "budget_verify() NOT EMPTY after the maintenance run" >&2; q "SELECT * FROM neon_budget.budget_verify()" >&2; exit 1; }

# Completion time (s) and latency (ms) of every write: pgbench's log has client, transaction,
# latency µs, script, epoch s, µs.
cat "$WORK"/log* | awk '{printf "%.6f %.3f\n", $5 + $6 / 1e6, $3 / 1000}' | sort -n >"$WORK/done"
window() {  # label start end: writes/s, p99 and worst latency of the writes completing in the window, longest gap
  awk -v s="$2" -v e="$3" '$1 >= s && $1 <= e' "$WORK/done" >"$WORK/w"
  local n gap lat
  n=$(wc -l <"$WORK/w")
  gap=$(awk -v s="$2" -v e="$3" '{ g = $1 - (NR == 1 ? s : prev); if (g > gap) gap = g; prev = $1 }
         END { if (NR == 0) prev = s; if (e - prev > gap) gap = e - prev; printf "%.1f", gap * 1000 }' "$WORK/w")
  lat=$(cut -d' ' -f2 "$WORK/w" | sort -g | awk '{a[NR] = $1} END { if (NR == 0) print "- -"; else { i = int(NR * 0.99); if (i < 1) i = 1; printf "%.1f %.1f", a[i], a[NR] } }')
  local waits
  waits=$(awk -v s="$2" -v e="$3" '$2 == "sample" && $3 >= s && $3 <= e { n++; if ($4 > 0) w++; if ($4 > m) m = $4 }
          END { printf "%d of %d / %d", w, n, m }' "$WORK/samples")
  awk -v label="$1" -v s="$2" -v e="$3" -v n="$n" -v gap="$gap" -v lat="$lat" -v waits="$waits" 'BEGIN {
    split(lat, l, " "); printf "| %s | %.0f | %.0f | %s | %s | %s | %s |\n", label, (e - s) * 1000, n / (e - s), l[1], l[2], gap, waits }'
}
echo "## Maintenance with writers running ($CLIENTS clients, track_cost, synchronous_commit on)"
echo
echo "billing_log: $ROWS rows ($half two months back, $half in $month, the writers' month). purge_before('$cutoff') deleted $purged rows; budget_rebuild('$month') corrected $corrected aggregate row(s) while the writers wrote into that month. budget_verify() was empty afterwards."
echo
echo "| window | length ms | writes/s | p99 write ms | worst write ms | longest time with no write completing, ms | 20-ms samples with a writer waiting for a lock / most writers waiting |"
echo "|---|---:|---:|---:|---:|---:|---:|"
window "baseline (5 s before)" "$base_start" "$base_end"
window "during purge_before" "$purge_start" "$purge_end"
window "during budget_rebuild" "$rebuild_start" "$rebuild_end"
window "reference: a read-only GROUP BY of that month" "$scan_start" "$scan_end"
echo
