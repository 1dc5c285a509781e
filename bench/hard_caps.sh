#!/usr/bin/env bash
# Hard-cap paths side by side (issue #12): the paths careful services take, as ratios to a plain
# INSERT with an execution_id into a copy of billing_log with the same indexes (bench/schema.sql),
# measured interleaved in one run (the order rotates each repetition), at BENCH_CAPS_CLIENTS
# (default "16 64") clients, with synchronous_commit on and off; tps, median and p99 latency.
#   plain_eid        INSERT ... execution_id into bench_plain.billing_log (the reference)
#   track_cost       track_cost without an execution_id
#   track_cost_eid   track_cost with an execution_id (safe retries)
#   check_track_eid  budget_check, then track_cost with an execution_id (two statements)
#   plain_reserve_settle  the same statements in plain SQL, without any budget logic: BEGIN;
#                    INSERT a reservation row RETURNING id; DELETE it and INSERT the log row with
#                    an execution_id (one statement); COMMIT (the floor of a reservation kept as a row)
#   reserve_settle   BEGIN; budget_reserve; track_cost(execution_id, reservation_id); COMMIT
#   check_allowed    budget_check alone, allowed (issue #13: counting refusals must not slow it)
#   check_refused    budget_check alone, refused by a campaign whose budget is spent (each
#                    refusal is counted in _blocked_count, write/blocked.rs)
#   near_level       track_cost with an execution_id while the month sits 1% below its cap (the
#                    "exceeded" level), writes of $0.0001 each: before every run the month's
#                    budget is set so that its spend is 99% of it (database bench_near).
# After every run: the aggregate oracle (bench/oracle.sql) and budget_verify() must be empty.
#
# Run alone (as root on Debian 12; own throwaway cluster in /tmp/nbbench_caps on port 5487):
#   BENCH_SECONDS=8 BENCH_REPS=3 bash bench/hard_caps.sh     (about 20 minutes)
# bench/run.sh runs it too. Prints a Markdown section; raw rows go to bench/results/hard_caps_raw.tsv.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
export PATH="$HOME/.cargo/bin:$PATH"
SECS=${BENCH_SECONDS:-10}; REPS=${BENCH_REPS:-3}; CLIENTS=${BENCH_CAPS_CLIENTS:-"16 64"}
DIR=/tmp/nbbench_caps; PORT=5487; BIN=/usr/lib/postgresql/15/bin
OUT=bench/results; mkdir -p "$OUT"; RAW="$OUT/hard_caps_raw.tsv"
WORK=$(mktemp -d /tmp/nbbench_caps_work.XXXXXX); chmod 777 "$WORK"
VARIANTS=(plain_eid track_cost track_cost_eid check_track_eid plain_reserve_settle reserve_settle near_level check_allowed check_refused)

if [ -z "${NB_BENCH_INSTALLED:-}" ]; then
  bash scripts/setup.sh >&2
  cargo pgrx install --release --pg-config "$BIN/pg_config" >/dev/null 2>&1 || cargo pgrx install --release --pg-config "$BIN/pg_config" >&2
fi
scripts/cluster.sh stop "$DIR" >&2; scripts/cluster.sh start "$DIR" "$PORT" >&2
trap 'scripts/cluster.sh stop "$DIR" >&2; rm -rf "$WORK"' EXIT
psql() { command psql -X -q -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U postgres "$@"; }
for db in bench bench_near; do
  psql -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
  psql -d $db -c "SET client_min_messages = warning" -c "CREATE EXTENSION neon_budget" >/dev/null
  for i in 1 2 3 4 5 6 7 8; do psql -d $db -At -c "SELECT neon_budget.set_campaign('campaign-$i', 'Campaign $i', 'BENCH', 1000000000)" >/dev/null; done
done
psql -d bench -c "SET client_min_messages = warning" -f bench/schema.sql >/dev/null
psql -d bench -c "CREATE TABLE bench_plain.reservation (LIKE neon_budget.reservation INCLUDING ALL)" >/dev/null
psql -d bench -At -c "SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 1000000000)" >/dev/null
# spent-1..8: campaigns whose $1 budget is spent, for check_refused.
for i in 1 2 3 4 5 6 7 8; do
  psql -d bench -At -c "SELECT neon_budget.set_campaign('spent-$i', 'Spent $i', 'BENCH', 1)" \
    -c "SELECT 1 FROM neon_budget.track_cost('CONTENT', 0, campaign_id => 'spent-$i', cost => 1)" >/dev/null
done
# bench_near: $990 spent of a $1000 month (warning and critical sent), then kept 1% below the cap.
psql -d bench_near -At -c "SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 1000)" \
  -c "SELECT 1 FROM neon_budget.track_cost('CONTENT', 0, cost => 990)" >/dev/null
near_reset() {
  psql -d bench_near -At -c "SELECT neon_budget.set_monthly_budget(month, round(total_spent / 0.99, 4)) FROM neon_budget.monthly_budget WHERE month = neon_budget._current_month()" >/dev/null
}

: > "$RAW"
bench() {  # name, clients, database, script; prints "tps median_ms p99_ms"
  local name=$1 c=$2 db=$3 script=$4
  local j=$(( c < 2 ? 1 : 2 )); rm -f "$WORK"/log*
  local tps
  tps=$("$BIN/pgbench" -n -M prepared -h "$DIR" -p "$PORT" -U postgres -c "$c" -j "$j" -T "$SECS" -l --log-prefix="$WORK/log" -f "$script" "$db" 2>&1 \
        | awk '/^tps/ {print $3}')
  local lat
  lat=$(cat "$WORK"/log* | percentiles)
  printf '%s\t%s\t%s\t%s\n' "$name" "$c" "$tps" "$lat" | tee -a "$RAW" >&2
  echo "$tps $lat"
}
checks() {  # the oracle and budget_verify() in both databases
  for db in bench bench_near; do
    [ "$(psql -d $db -At -f bench/oracle.sql)" = t ] || { echo "AGGREGATE ORACLE FAILED in $db after $1" >&2; exit 1; }
    [ "$(psql -d $db -At -c 'SELECT count(*) FROM neon_budget.budget_verify()')" = 0 ] || { echo "budget_verify() NOT EMPTY in $db after $1" >&2; exit 1; }
  done
}
median() { tr ' ' '\n' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }

echo "## Hard-cap paths side by side (bench/hard_caps.sh)"
echo
echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) cores; each pgbench run ${SECS}s, -M prepared, ${REPS} interleaved repetitions (order rotating), medians. Ratios are to the plain INSERT with an execution_id of the same cell."
echo
for sync in on off; do
  psql -d postgres -c "ALTER SYSTEM SET synchronous_commit = $sync" -c "SELECT pg_reload_conf()" >/dev/null
  declare -A T=() L=() P=()
  for rep in $(seq "$REPS"); do
    for c in $CLIENTS; do
      n=${#VARIANTS[@]}
      for k in $(seq 0 $((n - 1))); do
        v=${VARIANTS[$(( (k + rep) % n ))]}
        db=bench; [ "$v" = near_level ] && { db=bench_near; near_reset; }
        read -r tps med p99 < <(bench "$v/sync=$sync" "$c" "$db" "bench/$v.sql")
        T[$v,$c]+="$tps "; L[$v,$c]+="$med "; P[$v,$c]+="$p99 "
        checks "$v at $c clients"
      done
    done
  done
  echo "### synchronous_commit = $sync"
  echo
  echo "| clients | variant | tps | / plain with id | median ms | p99 ms |"
  echo "|---:|---|---:|---:|---:|---:|"
  for c in $CLIENTS; do
    base=$(echo ${T[plain_eid,$c]} | median)
    for v in "${VARIANTS[@]}"; do
      t=$(echo ${T[$v,$c]} | median)
      echo "| $c | $v | ${t%.*} | $(ratio "$t" "$base") | $(echo ${L[$v,$c]} | median) | $(echo ${P[$v,$c]} | median) |"
    done
  done
  echo
done
psql -d postgres -c "ALTER SYSTEM SET synchronous_commit = on" -c "SELECT pg_reload_conf()" >/dev/null
spent=$(psql -d bench_near -At -c "SELECT round(total_spent / total_budget * 100, 2) FROM neon_budget.monthly_budget WHERE month = neon_budget._current_month()")
sent=$(psql -d bench_near -At -c "SELECT string_agg(level, ',' ORDER BY id) FROM neon_budget.alert_log WHERE scope = 'month'")
echo "near_level: after its last run the month stood at ${spent}% of its cap; month alerts sent over the whole run: ${sent:-none}."
blocked=$(psql -d bench -At -c "SELECT COALESCE(sum(executions_blocked), 0) FROM neon_budget.blocked_executions")
echo "check_refused: $blocked refusals counted in blocked_executions over the whole run."
echo "After every run the aggregate oracle held and budget_verify() was empty in both databases."
echo
