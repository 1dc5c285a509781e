#!/usr/bin/env bash
# Upgrade test: builds and installs neon_budget 0.1.0 from the git commit that delivered it
# (a git worktree), writes data with it in a throwaway cluster, installs the current build,
# runs ALTER EXTENSION neon_budget UPDATE, checks the old data is intact and the upgraded schema
# equals a fresh install's, then runs the whole integration suite on databases cloned from an
# upgraded template. Leaves the current build installed. Called by scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
V010_COMMIT=2b5d858   # "Aggregate trigger in Rust with kept plans; reservations ...": the foundation, 0.1.0
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
DIR=/tmp/nbupg; PORT=5492
WT=${NEON_BUDGET_V010_DIR:-/tmp/neon_budget_v010}
current=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

echo "-- building 0.1.0 from $V010_COMMIT in $WT"
# A worktree left by another clone that is gone (its .git file points nowhere) is made anew.
if ! git -C "$WT" rev-parse --git-dir >/dev/null 2>&1; then
  rm -rf "$WT"; git worktree prune
  git worktree add --detach "$WT" "$V010_COMMIT" >/dev/null
fi
(cd "$WT" && git checkout -q --detach "$V010_COMMIT" && \
  CARGO_TARGET_DIR="$WT/target" cargo pgrx install --release --pg-config "$PG_CONFIG" >/dev/null 2>&1) || {
  echo "building 0.1.0 failed; rerunning with output:"; (cd "$WT" && CARGO_TARGET_DIR="$WT/target" cargo pgrx install --release --pg-config "$PG_CONFIG"); exit 1; }

scripts/cluster.sh stop "$DIR"; rm -rf "$DIR"
scripts/cluster.sh start "$DIR" "$PORT"
trap 'scripts/cluster.sh stop "$DIR"' EXIT
psql() { command psql -X -q -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U postgres "$@"; }
psql -d postgres -c "CREATE DATABASE upg_data" -c "CREATE DATABASE upg_template"
for db in upg_data upg_template; do psql -d $db -c "CREATE EXTENSION neon_budget VERSION '0.1.0'"; done
echo "-- writing data with 0.1.0"
psql -d upg_data -o /dev/null <<'SQL'
SELECT neon_budget.set_agent_rate('CONTENT', 0.05);
SELECT neon_budget.set_monthly_budget('2024-01', 10, 0.5);
SELECT neon_budget.set_campaign('c1', 'Campaign one', 'CONTENT_GENERATION', 4);
SELECT neon_budget.track_cost('CONTENT', 1000 * g, campaign_id => 'c' || (g % 2 + 1), execution_id => 'x' || g,
                              created_at => ('2024-01-' || lpad((g % 28 + 1)::text, 2, '0') || ' 10:00+00')::timestamptz)
  FROM generate_series(1, 40) g;
SELECT neon_budget.budget_reserve('SEO', 1000, 'c1', ttl => '1 hour');
-- A DBA's own grants on functions that an upgrade re-creates (budget_check and set_agent_rate in 0.5.0).
DROP ROLE IF EXISTS nb_upg_app;
CREATE ROLE nb_upg_app;
GRANT EXECUTE ON FUNCTION neon_budget.budget_check(text, text, bigint), neon_budget.set_agent_rate(text, numeric) TO nb_upg_app;
GRANT EXECUTE ON FUNCTION neon_budget.track_cost TO nb_upg_app;
CREATE TABLE public.before AS
  SELECT (SELECT string_agg(to_jsonb(b)::text, ';' ORDER BY id) FROM neon_budget.billing_log b) AS log,
         (SELECT string_agg(m::text, ';' ORDER BY month) FROM neon_budget.monthly_budget m) AS months,
         (SELECT string_agg(to_jsonb(a)::text, ';' ORDER BY id) FROM neon_budget.alert_log a) AS alerts,
         (SELECT count(*) FROM neon_budget.audit_log) AS audits,
         neon_budget.budget_report('2024-01') AS report;
SQL

echo "-- installing the current build ($current) and running ALTER EXTENSION ... UPDATE"
cargo pgrx install --release --pg-config "$PG_CONFIG" >/dev/null 2>&1 || cargo pgrx install --release --pg-config "$PG_CONFIG"
scripts/cluster.sh stop "$DIR"; scripts/cluster.sh start "$DIR" "$PORT"
echo "-- the upgrade window: the new library on 0.1.0 objects refuses with 55000 and the UPDATE hint, writes nothing"
window() {
  local out
  if out=$(command psql -X -q -h "$DIR" -p "$PORT" -U postgres -d upg_data -c '\set VERBOSITY verbose' -c "$1" 2>&1); then
    echo "FAIL: in the upgrade window, $1 succeeded"; exit 1
  fi
  if ! grep -q "ERROR:  55000" <<<"$out" || ! grep -q "HINT:  Run ALTER EXTENSION neon_budget UPDATE" <<<"$out" \
     || grep -qi "DROP EXTENSION" <<<"$out"; then
    echo "FAIL: in the upgrade window, $1 gave:"; echo "$out"; exit 1
  fi
}
for sql in "SELECT neon_budget.track_cost('CONTENT', 1000, campaign_id => 'c1')" \
           "SELECT neon_budget.track_cost('CONTENT', 1000, execution_id => 'window-1')" \
           "SELECT * FROM neon_budget.budget_check('c1')" \
           "SELECT neon_budget.budget_reserve('CONTENT', 1000)" \
           "INSERT INTO neon_budget.billing_log (agent_type, tokens, cost) VALUES ('CONTENT', 1, 1)" \
           "SELECT neon_budget.budget_report('2024-01')" \
           "SELECT neon_budget.set_monthly_budget('2024-01', 20)" \
           "SELECT neon_budget.set_campaign('c1', 'Renamed')" \
           "SELECT neon_budget.set_agent_rate('CONTENT', 0.06)"; do
  window "$sql"
done
for db in upg_data upg_template; do psql -d $db -c "ALTER EXTENSION neon_budget UPDATE"; done
v=$(psql -d upg_data -At -c "SELECT extversion FROM pg_extension WHERE extname = 'neon_budget'")
[ "$v" = "$current" ] || { echo "FAIL: extension version is $v after UPDATE, expected $current"; exit 1; }

echo "-- old data intact after the upgrade"
ok=$(psql -d upg_data -At <<'SQL'
-- 0.5.0 added billing_log.cost_per_1k_tokens (the rate a row was priced at): rows recorded
-- before carry none (NULL: never re-priced), every other column is as it was; so do the model
-- and token-part columns of 0.5.0.
SELECT (SELECT string_agg((to_jsonb(b) - 'cost_per_1k_tokens' - 'model' - 'input_tokens' - 'output_tokens' - 'cached_tokens'
                           - 'model_price_from')::text, ';' ORDER BY id) FROM neon_budget.billing_log b) = log
   AND NOT EXISTS (SELECT FROM neon_budget.billing_log WHERE cost_per_1k_tokens IS NOT NULL OR model IS NOT NULL
                      OR input_tokens IS NOT NULL OR model_price_from IS NOT NULL)
   AND (SELECT string_agg(m::text, ';' ORDER BY month) FROM neon_budget.monthly_budget m) = months
   -- 0.5.0 added alert_log.details (a forecast alert's figures): NULL for the alerts before.
   AND (SELECT string_agg((to_jsonb(a) - 'details')::text, ';' ORDER BY id) FROM neon_budget.alert_log a) IS NOT DISTINCT FROM alerts
   AND NOT EXISTS (SELECT FROM neon_budget.alert_log WHERE details IS NOT NULL)
   -- The per-campaign, per-agent daily aggregate of 0.5.0 is filled from the log (budget_verify
   -- below compares it too) and adds up to the months.
   AND (SELECT sum(total_cost) FROM neon_budget.campaign_agent_daily_cost) IS NOT DISTINCT FROM (SELECT sum(cost) FROM neon_budget.billing_log)
   AND (SELECT count(*) FROM neon_budget.audit_log) = audits
   -- Every figure of the report is the same; 0.3.0 escapes less Markdown (no backslashes
   -- before '_', '(', '"'...) and words its suggestions anew, so those are compared apart.
   AND pg_catalog.replace(pg_catalog.split_part(neon_budget.budget_report('2024-01'), '## 💡', 1), '\', '')
       = pg_catalog.replace(pg_catalog.split_part(report, '## 💡', 1), '\', '')
   AND NOT EXISTS (SELECT FROM neon_budget.budget_verify())
   -- Grants to other roles survive the functions' re-creation.
   AND pg_catalog.has_function_privilege('nb_upg_app', 'neon_budget.budget_check(text, text, bigint)', 'EXECUTE')
   AND pg_catalog.has_function_privilege('nb_upg_app', 'neon_budget.set_agent_rate(text, numeric, timestamptz)', 'EXECUTE')
   AND pg_catalog.has_function_privilege('nb_upg_app', 'neon_budget.track_cost(text, bigint, text, text, text, double precision, boolean, double precision, integer, bigint, jsonb, numeric, timestamptz, bigint, text, bigint, bigint, bigint)', 'EXECUTE')
   -- The views' slot readers return every slot row whole, also rows written before a column
   -- was added with a default (alert_cap, 0.2.0), which such rows do not hold.
   AND (SELECT count(*) FROM neon_budget._month_spend_rows() WHERE alert_cap IS NOT NULL) = (SELECT count(*) FROM neon_budget._month_spend)
   AND (SELECT count(*) FROM neon_budget._campaign_spend_rows() WHERE alert_cap IS NOT NULL) = (SELECT count(*) FROM neon_budget._campaign_spend)
  FROM public.before;
SQL
)
[ "$ok" = t ] || { echo "FAIL: data changed by the upgrade"; exit 1; }
psql -d upg_data -c "SELECT (neon_budget.track_cost('CONTENT', 1000, campaign_id => 'c1')).id" >/dev/null

echo "-- upgraded schema equals a fresh install's"
psql -d postgres -c "CREATE DATABASE upg_fresh"; psql -d upg_fresh -c "CREATE EXTENSION neon_budget"
catalog() {
  psql -d "$1" -At <<'SQL'
SELECT 'function ' || p.oid::regprocedure || ' returns ' || pg_get_function_result(p.oid) || ' args ' || pg_get_function_arguments(p.oid)
       || ' ' || p.provolatile::text || p.proparallel::text || p.prosecdef::text || p.proisstrict::text || ' ' || COALESCE(array_to_string(p.proconfig, ','), '')
       || ' ' || COALESCE(array_to_string(p.proacl, ','), '') || ' ' || COALESCE(obj_description(p.oid, 'pg_proc'), '')
  FROM pg_proc p WHERE p.pronamespace = 'neon_budget'::regnamespace
UNION ALL
SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull
       || ' ' || COALESCE(pg_get_expr(d.adbin, d.adrelid), '')
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
 WHERE c.relnamespace = 'neon_budget'::regnamespace
UNION ALL
SELECT 'relation ' || c.relname || ' ' || c.relkind::text || ' ' || COALESCE(array_to_string(c.reloptions, ','), '') || ' '
       || COALESCE(array_to_string(c.relacl, ','), '') || ' ' || COALESCE(pg_get_viewdef(c.oid), '')
  FROM pg_class c WHERE c.relnamespace = 'neon_budget'::regnamespace
UNION ALL
SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) || ' ' || condeferrable::text || convalidated::text FROM pg_constraint
 WHERE connamespace = 'neon_budget'::regnamespace
UNION ALL
SELECT 'index ' || pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid IN
       (SELECT oid FROM pg_class WHERE relnamespace = 'neon_budget'::regnamespace)
UNION ALL
SELECT 'trigger ' || pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
 WHERE c.relnamespace = 'neon_budget'::regnamespace AND NOT t.tgisinternal
UNION ALL
SELECT 'config_dump ' || x.c::regclass::text || ' ' || x.cond
  FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS x(c, cond) WHERE e.extname = 'neon_budget'
ORDER BY 1;
SQL
}
catalog upg_template > "$DIR/upgraded.txt"; catalog upg_fresh > "$DIR/fresh.txt"
if ! diff -u "$DIR/fresh.txt" "$DIR/upgraded.txt"; then echo "FAIL: the upgraded schema differs from a fresh install (- fresh, + upgraded)"; exit 1; fi

echo "-- the whole integration suite on databases cloned from the upgraded template"
NEON_BUDGET_TEST_DSN="host=$DIR port=$PORT user=postgres" NEON_BUDGET_TEST_DIR="$DIR" NEON_BUDGET_TEST_PORT="$PORT" \
NEON_BUDGET_TEST_TEMPLATE=upg_template cargo test --release -p neon_budget_integration -- --test-threads=4
echo "upgrade test: 0.1.0 -> $current passed"
