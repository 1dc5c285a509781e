#!/usr/bin/env bash
# Same-run A/B: the current build of neon_budget against the build of an older commit, in ONE
# throwaway cluster, measured interleaved, so that both see the same moments of this shared
# machine. Each ratio divides by the plain INSERT (or SELECT 1) measured between the two.
#
#   bash bench/ab.sh [OLD_COMMIT]        # default 1132390 (version 0.4.0, before issue #11)
#
# How the two builds live side by side: the old commit is built in a git worktree
# (/tmp/nb_ab_<commit>, its own target directory) and packaged with `cargo pgrx package`. Its
# library is installed as $libdir/neon_budget_ab_old.so, its full install script as
# neon_budget--<old version>.sql, and a secondary control file neon_budget--<old version>.control
# points that version at the old library (PostgreSQL reads `extension--version.control` over the
# primary control file; see "Extension Files" in the PostgreSQL manual). Database ab_old runs
# CREATE EXTENSION neon_budget VERSION '<old>', database ab_new the current default version. The
# two versions must differ (each library refuses objects of another version). The secondary
# control file and the old library are removed on exit, so later installs and the upgrade test
# see the usual layout.
#
# Besides tps, each run records the machine's busy CPU time per transaction (/proc/stat, all
# processes), which is steadier than tps on a shared machine; with synchronous_commit off the
# runs are CPU-bound, so that figure is what each build costs.
#
# Knobs: BENCH_SECONDS (per pgbench run, default 8), BENCH_REPS (default 3), AB_CLIENTS (sync on,
# default "1 4 16 64"), AB_CLIENTS_OFF (sync off, default "1 4 16 64"), AB_EID_CLIENTS (track_cost
# with an execution_id, both settings, default "16 64"), BENCH_COPY_ROWS (default
# 1000000), AB_SNAPSHOT_SECONDS (default 60). Output: bench/results/ab.md and ab_raw.tsv.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
export PATH="$HOME/.cargo/bin:$PATH"
OLD=${1:-1132390}
SECS=${BENCH_SECONDS:-8}; REPS=${BENCH_REPS:-3}
CLIENTS=${AB_CLIENTS:-"1 4 16 64"}; CLIENTS_OFF=${AB_CLIENTS_OFF:-"1 4 16 64"}; EID_CLIENTS=${AB_EID_CLIENTS:-"16 64"}
COPYROWS=${BENCH_COPY_ROWS:-1000000}; SNAP=${AB_SNAPSHOT_SECONDS:-60}
DIR=/tmp/nbab; PORT=5489; BIN=/usr/lib/postgresql/15/bin; PG_CONFIG=$BIN/pg_config
OUT=bench/results; mkdir -p "$OUT"; RES="$OUT/ab.md"; RAW="$OUT/ab_raw.tsv"
WORK=$(mktemp -d /tmp/nbab_work.XXXXXX); chmod 777 "$WORK"
WT=/tmp/nb_ab_$OLD

bash scripts/setup.sh
new_ver=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
old_ver=$(git show "$OLD:Cargo.toml" | sed -n 's/^version = "\(.*\)"/\1/p' | head -1)
[ "$old_ver" != "$new_ver" ] || { echo "bench/ab.sh: $OLD has the current version $new_ver; compare commits of different versions" >&2; exit 2; }
new_commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo "+changes")

echo "-- building $OLD ($old_ver) in $WT" >&2
if [ ! -e "$WT/.git" ]; then rm -rf "$WT"; git worktree prune; git worktree add --detach "$WT" "$OLD" >/dev/null; fi
(cd "$WT" && git checkout -q --detach "$OLD" && CARGO_TARGET_DIR="$WT/target" cargo pgrx package --pg-config "$PG_CONFIG" >"$WORK/old_build.log" 2>&1) \
  || { cat "$WORK/old_build.log" >&2; exit 1; }
pkg="$WT/target/release/neon_budget-pg15"
libdir=$("$PG_CONFIG" --pkglibdir); sharedir=$("$PG_CONFIG" --sharedir)/extension
echo "-- building and installing the current build ($new_ver, $new_commit)" >&2
cargo pgrx install --release --pg-config "$PG_CONFIG" >/dev/null 2>&1 || cargo pgrx install --release --pg-config "$PG_CONFIG"

cleanup() {
  scripts/cluster.sh stop "$DIR"
  rm -f "$libdir/neon_budget_ab_old.so" "$sharedir/neon_budget--$old_ver.control"
}
trap cleanup EXIT
install -m 755 "$pkg$libdir/neon_budget.so" "$libdir/neon_budget_ab_old.so"
install -m 644 "$pkg$sharedir/neon_budget--$old_ver.sql" "$sharedir/neon_budget--$old_ver.sql"
printf "module_pathname = '\$libdir/neon_budget_ab_old'\n" > "$sharedir/neon_budget--$old_ver.control"

scripts/cluster.sh stop "$DIR"; rm -rf "$DIR"; scripts/cluster.sh start "$DIR" "$PORT"
psql() { command psql -X -q -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U postgres "$@"; }
for side in old new; do
  db=ab_$side; ver=$([ $side = old ] && echo "VERSION '$old_ver'" || true)
  psql -d postgres -c "CREATE DATABASE $db" -c "ALTER DATABASE $db SET neon_budget.max_clock_skew = -1"
  psql -d $db -c "SET client_min_messages = warning" -c "CREATE EXTENSION neon_budget $ver" -f bench/schema.sql >/dev/null
  psql -d $db -At -c "SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 1000000000)" >/dev/null
  for i in 1 2 3 4 5 6 7 8; do psql -d $db -At -c "SELECT neon_budget.set_campaign('campaign-$i', 'Campaign $i', 'BENCH', 1000000000)" >/dev/null; done
  got=$(psql -d $db -At -c "SELECT extversion FROM pg_extension WHERE extname = 'neon_budget'")
  lib=$(psql -d $db -At -c "SELECT probin FROM pg_proc WHERE proname = 'track_cost' AND pronamespace = 'neon_budget'::regnamespace LIMIT 1")
  echo "-- $db: neon_budget $got, library $lib" >&2
done

: > "$RAW"
# pgbench: name db clients seconds args... -> "tps median_ms p99_ms"
bench() {
  local name=$1 db=$2 c=$3 t=$4; shift 4
  local j=$(( c < 2 ? 1 : 2 )); rm -f "$WORK"/log*
  local tps lat b0 b1 cpu
  b0=$(busy_jiffies)
  tps=$("$BIN/pgbench" -n -M prepared -h "$DIR" -p "$PORT" -U postgres -c "$c" -j "$j" -T "$t" -l --log-prefix="$WORK/log" "$@" "$db" 2>&1 | awk '/^tps/ {print $3}')
  b1=$(busy_jiffies)
  lat=$(cat "$WORK"/log* | percentiles)
  cpu=$(awk -v d=$(( b1 - b0 )) -v hz="$(getconf CLK_TCK)" -v tps="$tps" -v t="$t" 'BEGIN{printf "%.1f", d * 1000000 / hz / (tps * t)}')
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$db" "$c" "$tps" "$lat" "$cpu" | tee -a "$RAW" >&2
  echo "$tps $lat $cpu"
}
# busy CPU time of the whole machine (all processes: server, pgbench, anything else), in clock
# ticks: user + nice + system + irq + softirq + steal of /proc/stat's first line
busy_jiffies() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }
oracle() { for db in ab_old ab_new; do [ "$(psql -d $db -At -f bench/oracle.sql)" = t ] || { echo "AGGREGATE ORACLE FAILED in $db after $1" >&2; exit 1; }; done; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
{
echo "# Same-run A/B: $OLD ($old_ver) against $new_commit ($new_ver)"
echo
echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) cores, PostgreSQL $($BIN/postgres --version | awk '{print $3}'), one cluster; pgbench -M prepared, ${SECS}s runs, ${REPS} interleaved repetitions (plain, old, new; the order rotates each repetition), medians. Ratios divide by the plain INSERT (SELECT 1 for budget_check) measured in the same repetitions."
echo
echo "| measure | plain | $OLD ($old_ver) | $new_commit ($new_ver) | old / plain | new / plain | new / old |"
echo "|---|---:|---:|---:|---:|---:|---:|"
} > "$RES"
# emit a table row from three lists of values: label plain old new [lower-is-better]
emit() {
  local p o n; p=$(echo "$2" | median); o=$(echo "$3" | median); n=$(echo "$4" | median)
  echo "| $1 | $(fmt "$p") | $(fmt "$o") | $(fmt "$n") | $(ratio "$o" "$p") | $(ratio "$n" "$p") | $(ratio "$n" "$o") |" >> "$RES"
}
fmt() { awk -v v="$1" 'BEGIN{if (v >= 100) printf "%.0f", v; else printf "%s", v}'; }
order() { case $(( $1 % 3 )) in 0) echo "plain old new";; 1) echo "old new plain";; 2) echo "new plain old";; esac; }

# track_cost against a plain INSERT, synchronous_commit on and off: bench/plain$1.sql against
# bench/track_cost$1.sql, clients $2 (sync on) and $3 (sync off); $4 names the variant in the
# oracle's message, $5 and $6 begin the labels of its tps and CPU rows.
throughput() {
  local suffix=$1 clients_on=$2 clients_off=$3 what=$4 tps_label=$5 cpu_label=$6 sync cl rep c k tps cpu
  for sync in on off; do
    psql -d postgres -c "ALTER SYSTEM SET synchronous_commit = $sync" -c "SELECT pg_reload_conf()" >/dev/null
    cl=$([ $sync = on ] && echo "$clients_on" || echo "$clients_off")
    local -A T=() U=()
    for rep in $(seq "$REPS"); do
      for c in $cl; do
        for k in $(order "$rep"); do
          case $k in
            plain) read -r tps _ _ cpu < <(bench "plain$suffix/sync=$sync" ab_new "$c" "$SECS" -f "bench/plain$suffix.sql") ;;
            *) read -r tps _ _ cpu < <(bench "track_cost$suffix/sync=$sync" "ab_$k" "$c" "$SECS" -f "bench/track_cost$suffix.sql") ;;
          esac
          T[$k,$c]+="$tps "; U[$k,$c]+="$cpu "
        done
      done
      oracle "$what, synchronous_commit $sync"
    done
    for c in $cl; do emit "$tps_label, sync $sync, $c clients" "${T[plain,$c]}" "${T[old,$c]}" "${T[new,$c]}"; done
    if [ $sync = off ]; then
      for c in $cl; do emit "$cpu_label, sync off, $c clients (lower is better)" "${U[plain,$c]}" "${U[old,$c]}" "${U[new,$c]}"; done
    fi
  done
}
throughput "" "$CLIENTS" "$CLIENTS_OFF" track_cost "track_cost tps" "machine CPU µs per transaction"
# With an execution_id (a new uuid per call) against a plain INSERT with one, into the same
# table with its unique index (issue #12's baseline)
throughput _eid "$EID_CLIENTS" "$EID_CLIENTS" "track_cost with execution_id" \
  "track_cost with execution_id tps (plain: INSERT with one)" "machine CPU µs per transaction with execution_id"
psql -d postgres -c "ALTER SYSTEM SET synchronous_commit = on" -c "SELECT pg_reload_conf()" >/dev/null

# budget_check latency against SELECT 1 (1 client), with 10^4 rows in each billing_log
for db in ab_old ab_new; do
  psql -d $db -At -c "TRUNCATE neon_budget.billing_log" -c "INSERT INTO neon_budget.billing_log (agent_type, campaign_id, tokens, cost) SELECT 'CONTENT', 'campaign-' || (g % 8 + 1), 1000, 0.04 FROM generate_series(1, 10000) g" >/dev/null
done
declare -A B=()
for rep in $(seq "$REPS"); do
  for k in $(order "$rep"); do
    case $k in
      plain) read -r _ med p99 _ < <(bench select1 ab_new 1 "$SECS" -f bench/select1.sql) ;;
      *) read -r _ med p99 _ < <(bench budget_check "ab_$k" 1 "$SECS" -f bench/budget_check.sql) ;;
    esac
    B[$k,m]+="$med "; B[$k,p]+="$p99 "
  done
done
emit "budget_check median ms (plain = SELECT 1; lower is better)" "${B[plain,m]}" "${B[old,m]}" "${B[new,m]}"
emit "budget_check p99 ms (plain = SELECT 1; lower is better)" "${B[plain,p]}" "${B[old,p]}" "${B[new,p]}"

# 100-row INSERT ... SELECT batches, 16 clients
declare -A C=()
for rep in $(seq "$REPS"); do
  for k in $(order "$rep"); do
    case $k in
      plain) read -r tps _ _ < <(bench batch100/plain ab_new 16 "$SECS" -f bench/plain_batch.sql) ;;
      *) read -r tps _ _ < <(bench batch100/neon "ab_$k" 16 "$SECS" -f bench/neon_batch.sql) ;;
    esac
    C[$k]+="$(awk -v t="$tps" 'BEGIN{printf "%.0f", t*100}') "
  done
done
oracle "batches"
emit "100-row INSERT ... SELECT rows/s, 16 clients" "${C[plain]}" "${C[old]}" "${C[new]}"

# COPY of $COPYROWS rows (month 2030-01)
csv="$WORK/copy.csv"
psql -d ab_new -At -c "COPY (SELECT 'CONTENT', 'campaign-' || (g % 8 + 1), 1000 + g % 5000, (1000 + g % 5000) * 0.00004, '2030-01-15 12:00+00', '2030-01' FROM generate_series(1, $COPYROWS) g) TO '$csv' (FORMAT csv)"
copy_rate() {  # db table
  local t0 t1; t0=$(date +%s.%N)
  psql -d "$1" -At -c "COPY $2 (agent_type, campaign_id, tokens, cost, created_at, billing_month) FROM '$csv' (FORMAT csv)" >/dev/null
  t1=$(date +%s.%N); awk -v n="$COPYROWS" -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f", n/(b-a)}'; }
declare -A Y=()
for rep in $(seq "$REPS"); do
  for k in $(order "$rep"); do
    case $k in
      plain) Y[plain]+="$(copy_rate ab_new bench_plain.billing_log) " ;;
      *) Y[$k]+="$(copy_rate "ab_$k" neon_budget.billing_log) " ;;
    esac
  done
done
oracle "COPY"
emit "COPY of $COPYROWS rows, rows/s" "${Y[plain]}" "${Y[old]}" "${Y[new]}"

# track_cost under a REPEATABLE READ snapshot held open for $SNAP s (16 clients): one holder per
# database, each run $SNAP s after its holder started
declare -A S=()
for k in plain old new; do
  db=$([ $k = plain ] && echo ab_new || echo "ab_$k")
  ( psql -d $db -c "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM neon_budget._month_spend; SELECT pg_sleep($((2 * SNAP + 10))); COMMIT;" >/dev/null 2>&1 ) &
  holder=$!; sleep 1
  case $k in
    plain) read -r tps _ _ < <(bench "snapshot${SNAP}s/plain" ab_new 16 "$SNAP" -f bench/plain.sql) ;;
    *) read -r tps _ _ < <(bench "snapshot${SNAP}s/track_cost" "$db" 16 "$SNAP" -f bench/track_cost.sql) ;;
  esac
  S[$k]=$tps
  kill "$holder" 2>/dev/null || true
  psql -d postgres -At -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()" >/dev/null
done
oracle "snapshot"
emit "track_cost tps, 16 clients, ${SNAP}s under a held snapshot (one run each)" "${S[plain]}" "${S[old]}" "${S[new]}"

echo >> "$RES"
echo "Every run above was followed by the aggregate oracle in both databases: all passed." >> "$RES"
cat "$RES"
