#!/usr/bin/env bash
# The neon_budget demo: replays a real LLM workload (the Azure LLM inference trace 2023, 19,366
# requests, demo/data/) through budget_check() and track_cost() from several concurrent
# connections against a throwaway PostgreSQL cluster, prints every NOTIFY alert as it arrives,
# injects one costly execution (a cost anomaly), then the Markdown budget_report() and the
# final budget_check().
# Installs what is missing first (scripts/setup.sh). Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config
DIR=${NEON_BUDGET_DEMO_DIR:-/tmp/nbdemo}
PORT=${NEON_BUDGET_DEMO_PORT:-5497}
CLIENTS=${NEON_BUDGET_DEMO_CLIENTS:-4}
TRACE=demo/data/AzureLLMInferenceTrace_conv.csv

bash scripts/setup.sh
echo "== building and installing the extension and the neon-budget client (release)"
cargo pgrx install --release --pg-config "$PG_CONFIG" >/dev/null 2>&1 || cargo pgrx install --release --pg-config "$PG_CONFIG"
cargo build --release -q -p neon-budget

echo "== starting a throwaway PostgreSQL 15 cluster in $DIR (port $PORT)"
scripts/cluster.sh stop "$DIR"
scripts/cluster.sh start "$DIR" "$PORT"
trap 'scripts/cluster.sh stop "$DIR"' EXIT
psql() { command psql -X -q -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U postgres "$@"; }
psql -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS neon_budget_demo WITH (FORCE)" -c "CREATE DATABASE neon_budget_demo"

echo "== setting budgets: \$600.00 for this month (warning at 80%), four campaigns"
psql -d neon_budget_demo <<'SQL'
CREATE EXTENSION neon_budget;
-- Forecast as soon as the month has one complete day (the default waits for a fifth of it).
ALTER DATABASE neon_budget_demo SET neon_budget.forecast_min_elapsed = 0;
\o /dev/null
SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 600.00, 0.8);
SELECT neon_budget.set_campaign('campaign-1', 'Content Marketing', 'CONTENT_GENERATION', 250.00);
SELECT neon_budget.set_campaign('campaign-2', 'Ad Optimization', 'AD_OPTIMIZATION', 120.00);
SELECT neon_budget.set_campaign('campaign-3', 'Email Campaigns', 'EMAIL_MARKETING', 200.00);
SELECT neon_budget.set_campaign('campaign-4', 'Social Media', 'SOCIAL', NULL);
SQL

echo "== replaying every request of $TRACE with $CLIENTS clients (alerts print as they arrive)"
# --spread-over-month: the trace stands for the month so far (its requests dated from the
# month's first day to now), so the month-end forecast has complete days to work with.
target/release/neon-budget replay "$TRACE" --clients "$CLIENTS" --campaigns 4 --spread-over-month \
  --database-url "host=$DIR port=$PORT user=postgres dbname=neon_budget_demo"

echo
echo "== an injected spike: one DESIGN execution with 50 x the tokens of a typical request (71,250 tokens)"
psql -d neon_budget_demo -c "SELECT id, agent_type, tokens, cost FROM neon_budget.track_cost('DESIGN', 71250, campaign_id => 'campaign-1', execution_id => 'demo-spike')"
echo "== the cost anomaly it raised (sent once, by the write: NOTIFY, alert_log, audit_log)"
psql -d neon_budget_demo -c "SELECT id, scope, details->>'scope_key' AS agent_type, details->>'day' AS day, spent AS cost, details->>'typical_cost' AS typical_cost, details->>'ratio' AS times_typical, details->>'executions_in_baseline' AS executions FROM neon_budget.alert_log WHERE level = 'anomaly'"

echo
echo "== budget_report()"
psql -d neon_budget_demo -At -c "SELECT neon_budget.budget_report()"
echo "== budget_forecast(): month-end projections (spend to date + the last 7 complete days' mean x the days left)"
psql -d neon_budget_demo -c "SELECT scope, campaign_id, budget, round(spent, 2) AS spent, round(daily_mean, 2) AS daily_mean, window_days, days_left, round(projected_spend, 2) AS projected_spend, projected_exhausted_on, over_budget FROM neon_budget.budget_forecast()"
echo "== budget_check() now (the month's budget is spent: executions are blocked)"
psql -d neon_budget_demo -x -c "SELECT * FROM neon_budget.budget_check()"
echo "== alerts logged"
psql -d neon_budget_demo -c "SELECT id, scope, campaign_id, month, level, spent, budget, utilization FROM neon_budget.alert_log ORDER BY id"
echo "== cost anomalies in the audit trail"
psql -d neon_budget_demo -c "SELECT id, action, target, actor FROM neon_budget.audit_log WHERE action = 'cost_anomaly' ORDER BY id"
