#!/usr/bin/env bash
# neon_budget benchmark: side-by-side ratios against a plain INSERT (the physical limit) and a
# naive row-trigger peer, on a throwaway cluster it starts itself. Results: bench/results/latest.md
# (copied into BENCHMARKS.md by hand). Run as root on Debian 12:  bash bench/run.sh
# Knobs: BENCH_SECONDS (per pgbench run, default 10), BENCH_REPS (interleaved repetitions,
# default 3), BENCH_CLIENTS (default "1 4 16 64"), BENCH_BIG_ROWS (default 10000000),
# BENCH_COPY_ROWS (default 1000000), BENCH_SNAPSHOT_SECONDS (default "5 60"), BENCH_ONLY=budget_check
# (only budget_check's latency at 10^4 and BENCH_BIG_ROWS rows).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
export PATH="$HOME/.cargo/bin:$PATH"
SECS=${BENCH_SECONDS:-10}; REPS=${BENCH_REPS:-3}; CLIENTS=${BENCH_CLIENTS:-"1 4 16 64"}
BIG=${BENCH_BIG_ROWS:-10000000}; COPYROWS=${BENCH_COPY_ROWS:-1000000}; SNAPS=${BENCH_SNAPSHOT_SECONDS:-"5 60"}
DIR=/tmp/nbbench; PORT=5496; BIN=/usr/lib/postgresql/15/bin
OUT=bench/results; mkdir -p "$OUT"; RES="$OUT/latest.md"; RAW="$OUT/raw.tsv"
WORK=$(mktemp -d /tmp/nbbench_work.XXXXXX); chmod 777 "$WORK"

bash scripts/setup.sh
cargo pgrx install --release --pg-config "$BIN/pg_config" >/dev/null 2>&1 || cargo pgrx install --release --pg-config "$BIN/pg_config"
scripts/cluster.sh stop "$DIR"; scripts/cluster.sh start "$DIR" "$PORT"
trap 'scripts/cluster.sh stop "$DIR"' EXIT
psql() { command psql -X -q -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U postgres "$@"; }
q() { psql -d bench -At -c "$1"; }
psql -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS bench WITH (FORCE)" -c "CREATE DATABASE bench"
psql -d postgres -c "ALTER DATABASE bench SET neon_budget.max_clock_skew = -1"   # COPY rows of 2030-01
psql -d bench -c "SET client_min_messages = warning" -c "CREATE EXTENSION neon_budget" -f bench/schema.sql >/dev/null
q "SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 1000000000)" >/dev/null
for i in 1 2 3 4 5 6 7 8; do q "SELECT neon_budget.set_campaign('campaign-$i', 'Campaign $i', 'BENCH', 1000000000)" >/dev/null; done

: > "$RAW"
# pgbench wrapper: name, clients, seconds, extra args...; prints "tps median_ms p99_ms" (database
# $DB, default bench)
bench() {
  local name=$1 c=$2 t=$3; shift 3
  local j=$(( c < 2 ? 1 : 2 )); rm -f "$WORK"/log*
  local tps
  tps=$("$BIN/pgbench" -n -M prepared -h "$DIR" -p "$PORT" -U postgres -c "$c" -j "$j" -T "$t" -l --log-prefix="$WORK/log" "$@" "${DB:-bench}" 2>&1 \
        | awk '/^tps/ {print $3}')
  local lat
  lat=$(cat "$WORK"/log* | percentiles)
  printf '%s\t%s\t%s\t%s\n' "$name" "$c" "$tps" "$lat" | tee -a "$RAW" >&2
  echo "$tps $lat"
}
oracle() { [ "$(psql -d bench -At -f bench/oracle.sql)" = t ] || { echo "AGGREGATE ORACLE FAILED after $1" >&2; exit 1; }; }
median() { tr ' ' '\n' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

{
echo "# neon_budget benchmark results"
echo
echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r), PostgreSQL $($BIN/postgres --version | awk '{print $3}'); each pgbench run ${SECS}s, ${REPS} interleaved repetitions, medians shown."
echo
} > "$RES"

# BENCH_ONLY=budget_check: only the budget_check latency section below (10^4 against $BIG rows).
if [ "${BENCH_ONLY:-}" != budget_check ]; then
for sync in on off; do
  psql -d postgres -c "ALTER SYSTEM SET synchronous_commit = $sync" -c "SELECT pg_reload_conf()" >/dev/null
  declare -A T=() L=() P=()
  for rep in $(seq "$REPS"); do
    for c in $CLIENTS; do
      for v in plain naive track_cost; do
        read -r tps med p99 < <(bench "$v/sync=$sync" "$c" "$SECS" -f "bench/$v.sql")
        T[$v,$c]+="$tps "; L[$v,$c]+="$med "; P[$v,$c]+="$p99 "
      done
      oracle "track_cost at $c clients"
    done
  done
  {
  echo "## track_cost throughput, synchronous_commit = $sync"
  echo
  echo "| clients | plain INSERT tps | naive trigger tps | track_cost tps | track_cost / plain | track_cost / naive | track_cost median / p99 ms | plain median / p99 ms |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
  for c in $CLIENTS; do
    p=$(echo ${T[plain,$c]} | median); n=$(echo ${T[naive,$c]} | median); t=$(echo ${T[track_cost,$c]} | median)
    echo "| $c | ${p%.*} | ${n%.*} | ${t%.*} | $(awk -v a="$t" -v b="$p" 'BEGIN{printf "%.2f", a/b}') | $(awk -v a="$t" -v b="$n" 'BEGIN{printf "%.2f", a/b}') | $(echo ${L[track_cost,$c]} | median) / $(echo ${P[track_cost,$c]} | median) | $(echo ${L[plain,$c]} | median) / $(echo ${P[plain,$c]} | median) |"
  done
  echo
  } >> "$RES"
done
psql -d postgres -c "ALTER SYSTEM SET synchronous_commit = on" -c "SELECT pg_reload_conf()" >/dev/null

# 90/10 mix of track_cost and budget_check at 16 clients
read -r mix _ _ < <(bench "mix90/10" 16 "$SECS" -f bench/track_cost.sql@9 -f bench/budget_check.sql@1)
oracle "mix"
{ echo "## 90/10 mix of track_cost and budget_check, 16 clients"; echo; echo "$mix transactions/s"; echo; } >> "$RES"
fi

# budget_check latency against SELECT 1, with 10^4 rows in billing_log (database bench) and
# with $BIG rows (database bench_big); the four are measured interleaved, so that the 10^4 and
# $BIG figures come from the same moments of this shared machine.
q "TRUNCATE neon_budget.billing_log" >/dev/null
q "INSERT INTO neon_budget.billing_log (agent_type, campaign_id, tokens, cost) SELECT 'CONTENT', 'campaign-' || (g % 8 + 1), 1000, 0.04 FROM generate_series(1, 10000) g" >/dev/null
qb() { psql -d bench_big -At -c "$1"; }
psql -d postgres -c "DROP DATABASE IF EXISTS bench_big WITH (FORCE)" -c "CREATE DATABASE bench_big"
qb "CREATE EXTENSION neon_budget" >/dev/null
qb "SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 1000000000)" >/dev/null
for i in 1 2 3 4 5 6 7 8; do qb "SELECT neon_budget.set_campaign('campaign-$i', 'Campaign $i', 'BENCH', 1000000000)" >/dev/null; done
start=$(date +%s)
left=$BIG; while [ "$left" -gt 0 ]; do
  n=$(( left > 1000000 ? 1000000 : left ))
  qb "INSERT INTO neon_budget.billing_log (agent_type, campaign_id, tokens, cost) SELECT 'CONTENT', 'campaign-' || (g % 8 + 1), 1000, 0.04 FROM generate_series(1, $n) g" >/dev/null
  left=$(( left - n ))
done
qb "VACUUM ANALYZE neon_budget.billing_log" >/dev/null
load_s=$(( $(date +%s) - start ))
[ "$(psql -d bench_big -At -f bench/oracle.sql)" = t ] || { echo "AGGREGATE ORACLE FAILED after big load" >&2; exit 1; }
declare -A LAT=()
for rep in $(seq "$REPS"); do
  for db in bench bench_big; do
    for f in select1 budget_check; do
      read -r _ a b < <(DB=$db bench "$f/$db" 1 "$SECS" -f "bench/$f.sql"); LAT[$f,$db,m]+="$a "; LAT[$f,$db,p]+="$b "
    done
  done
done
s1m_small=$(echo ${LAT[select1,bench,m]} | median); s1p_small=$(echo ${LAT[select1,bench,p]} | median)
bcm_small=$(echo ${LAT[budget_check,bench,m]} | median); bcp_small=$(echo ${LAT[budget_check,bench,p]} | median)
s1m_big=$(echo ${LAT[select1,bench_big,m]} | median); s1p_big=$(echo ${LAT[select1,bench_big,p]} | median)
bcm_big=$(echo ${LAT[budget_check,bench_big,m]} | median); bcp_big=$(echo ${LAT[budget_check,bench_big,p]} | median)
psql -d postgres -c "DROP DATABASE bench_big" >/dev/null
{
echo "## budget_check latency (1 client, prepared, same connection setup as SELECT 1)"
echo
echo "| rows in billing_log | SELECT 1 median / p99 ms | budget_check median / p99 ms | ratio median / p99 |"
echo "|---:|---:|---:|---:|"
echo "| 10^4 | $s1m_small / $s1p_small | $bcm_small / $bcp_small | $(awk -v a=$bcm_small -v b=$s1m_small 'BEGIN{printf "%.2f", a/b}') / $(awk -v a=$bcp_small -v b=$s1p_small 'BEGIN{printf "%.2f", a/b}') |"
echo "| $BIG | $s1m_big / $s1p_big | $bcm_big / $bcp_big | $(awk -v a=$bcm_big -v b=$s1m_big 'BEGIN{printf "%.2f", a/b}') / $(awk -v a=$bcp_big -v b=$s1p_big 'BEGIN{printf "%.2f", a/b}') |"
echo
echo "budget_check at $BIG rows / at 10^4 rows: median $(awk -v a=$bcm_big -v b=$bcm_small 'BEGIN{printf "%.2f", a/b}'), p99 $(awk -v a=$bcp_big -v b=$bcp_small 'BEGIN{printf "%.2f", a/b}'). Loading $BIG rows through the triggers (1M-row INSERT ... SELECT statements) took ${load_s}s."
echo
} >> "$RES"
q "TRUNCATE neon_budget.billing_log; TRUNCATE bench_plain.billing_log" >/dev/null
if [ "${BENCH_ONLY:-}" = budget_check ]; then cat "$RES"; exit 0; fi

# 100-row batch INSERTs at 16 clients
read -r pb _ _ < <(bench "batch100/plain" 16 "$SECS" -f bench/plain_batch.sql)
read -r nb _ _ < <(bench "batch100/neon" 16 "$SECS" -f bench/neon_batch.sql)
oracle "batch"
# COPY of $COPYROWS rows (month 2030-01), baseline table vs billing_log
csv="$WORK/copy.csv"
q "COPY (SELECT 'CONTENT', 'campaign-' || (g % 8 + 1), 1000 + g % 5000, (1000 + g % 5000) * 0.00004, '2030-01-15 12:00+00', '2030-01' FROM generate_series(1, $COPYROWS) g) TO '$csv' (FORMAT csv)"
copy_rate() { local t0 t1; t0=$(date +%s.%N); q "COPY $1 (agent_type, campaign_id, tokens, cost, created_at, billing_month) FROM '$csv' (FORMAT csv)" >/dev/null; t1=$(date +%s.%N); awk -v n=$COPYROWS -v a=$t0 -v b=$t1 'BEGIN{printf "%.0f", n/(b-a)}'; }
cp_plain=$(copy_rate bench_plain.billing_log); cp_neon=$(copy_rate neon_budget.billing_log)
oracle "copy"
{
echo "## Batches"
echo
echo "| load | plain rows/s | neon_budget rows/s | ratio |"
echo "|---|---:|---:|---:|"
echo "| 100-row INSERT ... SELECT, 16 clients | $(awk -v t=$pb 'BEGIN{printf "%.0f", t*100}') | $(awk -v t=$nb 'BEGIN{printf "%.0f", t*100}') | $(awk -v a=$nb -v b=$pb 'BEGIN{printf "%.2f", a/b}') |"
echo "| COPY of $COPYROWS rows | $cp_plain | $cp_neon | $(awk -v a=$cp_neon -v b=$cp_plain 'BEGIN{printf "%.2f", a/b}') |"
echo
} >> "$RES"

# budget_report of a $COPYROWS-row month against a bare GROUP BY over that month of the log
time_sql() {  # best of 3 server round trips in ONE psql session (no process or connection start-up), in µs
  printf '\\timing on\n%s;\n%s;\n%s;\n' "$1" "$1" "$1" | psql -d bench -At 2>&1 \
    | awk '/^Time:/ {t=$2*1000; if (best=="" || t<best) best=t} END {printf "%.0f", best}'; }
q "VACUUM ANALYZE neon_budget.billing_log" >/dev/null
rep_us=$(time_sql "SELECT length(neon_budget.budget_report('2030-01'))")
grp_us=$(time_sql "SELECT campaign_id, sum(cost) FROM neon_budget.billing_log WHERE billing_month = '2030-01' GROUP BY campaign_id")
{
echo "## budget_report of a $COPYROWS-row month"
echo
echo "budget_report('2030-01'): ${rep_us} µs; bare SELECT sum(cost) ... GROUP BY campaign_id over that month: ${grp_us} µs; ratio $(awk -v a=$rep_us -v b=$grp_us 'BEGIN{printf "%.3f", a/b}') (best of 3 in one session, client round trip included in both)."
echo
} >> "$RES"

# tps while another session holds a REPEATABLE READ snapshot open
{
echo "## track_cost under a long-held snapshot (16 clients)"
echo
echo "| run length | plain tps | track_cost tps | ratio |"
echo "|---:|---:|---:|---:|"
} >> "$RES"
for s in $SNAPS; do
  ( psql -d bench -c "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM neon_budget._month_spend; SELECT pg_sleep($((2 * s + 10))); COMMIT;" >/dev/null 2>&1 ) &
  holder=$!; sleep 1
  read -r sp _ _ < <(bench "snapshot${s}s/plain" 16 "$s" -f bench/plain.sql)
  read -r sn _ _ < <(bench "snapshot${s}s/track_cost" 16 "$s" -f bench/track_cost.sql)
  kill "$holder" 2>/dev/null || true; q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()" >/dev/null
  echo "| ${s}s | ${sp%.*} | ${sn%.*} | $(awk -v a=$sn -v b=$sp 'BEGIN{printf "%.2f", a/b}') |" >> "$RES"
done
oracle "snapshot"
echo >> "$RES"
# Hard-cap paths (execution_id, budget_check + track_cost, reserve + settle, near a level) at 16
# and 64 clients, synchronous_commit on and off (its own cluster; see the script)
NB_BENCH_INSTALLED=1 bash bench/hard_caps.sh >> "$RES"
# Readers (budget_check, the campaign_cost view) while a REPEATABLE READ snapshot stays open for
# 60 s and 8 writers run track_cost; slot-table sizes (its own cluster; see the script)
NB_BENCH_INSTALLED=1 bash bench/long_snapshot.sh >> "$RES"
# purge_before and budget_rebuild with 8 writers running (its own cluster; see the script)
NB_BENCH_INSTALLED=1 bash bench/maintenance.sh >> "$RES"
# One session over 10^6 distinct campaigns: bounded caches (its own cluster; see the script)
NB_BENCH_INSTALLED=1 bash bench/cache_memory.sh >> "$RES"
echo "Every run above was followed by the aggregate oracle (each aggregate equals a fresh GROUP BY over billing_log): all passed." >> "$RES"
echo
cat "$RES"
