-- neon_budget 0.4.0 -> 0.5.0 (ALTER EXTENSION neon_budget UPDATE TO '0.5.0').
-- Every schema change since 0.4.0 (commit 1132390) is here; a fresh install of 0.5.0 and
-- 0.4.0 + this script give the same objects (scripts/upgrade_test.sh compares the catalogs).
\echo Use "ALTER EXTENSION neon_budget UPDATE TO '0.5.0'" to load this file. \quit

-- budget_reserve documents every SQLSTATE it raises (22004, and 22023 for an empty campaign_id),
-- and how reservations are decided (a lock held only while one is decided; open reservations
-- count at once); budget_check's reserved figures include reservations of open transactions.
COMMENT ON FUNCTION neon_budget.budget_reserve(text, bigint, text, interval, numeric) IS
$$Reserves an execution's estimated cost (estimated_cost dollars, or estimated_tokens at the agent type's rate) against the current month's and the campaign's budget for ttl (default 15 minutes); returns the reservation id for track_cost(reservation_id => id) or budget_release(id). Reservations of a month are decided one at a time (under a lock held only while one is decided, not until commit), each counting every live reservation, including those of transactions still open, so concurrent ones never jointly pass a budget and an open reservation blocks no one.
Errors: 53000 the budget cannot cover it (figures in the detail); 22004 NULL agent_type or estimated_tokens; 22003 negative tokens or cost; 22023 ttl not positive, or an empty campaign_id; 42704 unknown agent type; 22001 campaign_id over 200 characters or agent_type over 100; 0A000 in a REPEATABLE READ or SERIALIZABLE transaction.$$;

COMMENT ON FUNCTION neon_budget.budget_check(text, text, bigint) IS
$$May an execution run now? Arguments: campaign_id, agent_type, estimated_tokens (priced at the agent type's current rate).
Returns one row: can_execute, status (ok, warning, critical, exceeded), month (YYYY-MM), total_budget, total_spent, remaining (dollars, after live reservations, including those of transactions still open), utilization_percentage, override_enabled, campaign_id, campaign_budget (NULL = no limit), campaign_spent, estimated_cost, reserved, campaign_reserved (dollars).
can_execute is false when the current month's or the campaign's spend plus live reservations has reached its budget or would pass it with the estimate, unless the override is on. Reads only the maintained aggregates and live reservations.
Errors: 22003 negative estimated_tokens; 22023 estimated_tokens without agent_type; 42704 unknown agent type; 22001 campaign_id over 200 characters or agent_type over 100.$$;

-- Comments name the source files at their new places (src/ is layered: api/, write/, pg/).
COMMENT ON COLUMN neon_budget._month_spend.alert_cap IS
  'Alert grant of this slot in dollars: its backend may raise cost up to alert_cap without reading the month''s totals (src/write/alert_grants.rs).';
COMMENT ON COLUMN neon_budget._campaign_spend.alert_cap IS
  'Alert grant of this slot in dollars: its backend may raise cost up to alert_cap without reading the campaign''s totals (src/write/alert_grants.rs).';
COMMENT ON TABLE neon_budget._alert_grant_signal IS
  'Holds no rows: its relcache invalidation revokes every backend''s alert grants (src/write/alert_grants.rs).';
COMMENT ON TABLE neon_budget._write_path_stats IS
  'Writes to billing_log per backend slot, path (heap: track_cost without SQL; sql: an SQL INSERT) and reason, added by each backend at most once a second (src/write/path_stats.rs); see the write_path_stats view.';

-- The slot tables' rows visible to the statement, read newest first (src/api/internal.rs,
-- slot_rows): the views read them through these, so that they stay fast while a long-held
-- snapshot keeps every old version of the slot rows that each write updates.
CREATE FUNCTION neon_budget._month_spend_rows() RETURNS SETOF neon_budget._month_spend
    LANGUAGE c STABLE PARALLEL RESTRICTED ROWS 64 AS 'MODULE_PATHNAME', 'slot_rows';
CREATE FUNCTION neon_budget._campaign_spend_rows() RETURNS SETOF neon_budget._campaign_spend
    LANGUAGE c STABLE PARALLEL RESTRICTED ROWS 256 AS 'MODULE_PATHNAME', 'slot_rows';
CREATE FUNCTION neon_budget._agent_spend_rows() RETURNS SETOF neon_budget._agent_spend
    LANGUAGE c STABLE PARALLEL RESTRICTED ROWS 256 AS 'MODULE_PATHNAME', 'slot_rows';
CREATE FUNCTION neon_budget._day_spend_rows() RETURNS SETOF neon_budget._day_spend
    LANGUAGE c STABLE PARALLEL RESTRICTED ROWS 256 AS 'MODULE_PATHNAME', 'slot_rows';
COMMENT ON FUNCTION neon_budget._month_spend_rows() IS
  'Internal: the rows of _month_spend visible to the statement, read newest first (src/api/internal.rs); the views read the slot tables through it.';
COMMENT ON FUNCTION neon_budget._campaign_spend_rows() IS
  'Internal: the rows of _campaign_spend visible to the statement, read newest first (src/api/internal.rs); the views read the slot tables through it.';
COMMENT ON FUNCTION neon_budget._agent_spend_rows() IS
  'Internal: the rows of _agent_spend visible to the statement, read newest first (src/api/internal.rs); the views read the slot tables through it.';
COMMENT ON FUNCTION neon_budget._day_spend_rows() IS
  'Internal: the rows of _day_spend visible to the statement, read newest first (src/api/internal.rs); the views read the slot tables through it.';

CREATE OR REPLACE VIEW neon_budget.campaign_cost AS
SELECT s.campaign_id, s.billing_month AS month,
       sum(s.cost) AS total_cost, sum(s.tokens) AS total_tokens, sum(s.executions)::bigint AS executions
  FROM neon_budget._campaign_spend_rows() s
 GROUP BY s.campaign_id, s.billing_month
HAVING sum(s.executions) <> 0;

CREATE OR REPLACE VIEW neon_budget.agent_cost AS
SELECT s.agent_type, s.billing_month AS month,
       sum(s.cost) AS total_cost, sum(s.tokens) AS total_tokens, sum(s.executions)::bigint AS executions,
       sum(s.successes)::bigint AS successes, sum(s.failures)::bigint AS failures,
       sum(s.quality_sum) AS quality_sum, sum(s.quality_count)::bigint AS quality_count,
       sum(s.retry_sum) AS retry_sum,
       sum(s.execution_time_sum) AS execution_time_ms_sum, sum(s.execution_time_count)::bigint AS execution_time_count
  FROM neon_budget._agent_spend_rows() s
 GROUP BY s.agent_type, s.billing_month
HAVING sum(s.executions) <> 0;

CREATE OR REPLACE VIEW neon_budget.daily_cost AS
SELECT s.billing_month AS month, s.billing_day AS day,
       sum(s.cost) AS total_cost, sum(s.tokens) AS total_tokens, sum(s.executions)::bigint AS executions
  FROM neon_budget._day_spend_rows() s
 GROUP BY s.billing_month, s.billing_day
HAVING sum(s.executions) <> 0 OR sum(s.cost) <> 0;

CREATE OR REPLACE VIEW neon_budget.monthly_budget AS
SELECT b.month, b.total_budget,
       COALESCE(sp.total_spent, 0) AS total_spent,
       COALESCE(sp.total_tokens, 0) AS total_tokens,
       COALESCE(sp.executions, 0) AS executions,
       b.alert_threshold,
       COALESCE(a.levels_sent, '{}') AS alert_levels_sent,
       b.override_enabled, b.override_reason, b.updated_at
  FROM neon_budget.monthly_budget_setting b
  LEFT JOIN LATERAL (
        SELECT sum(m.cost) AS total_spent, sum(m.tokens) AS total_tokens, sum(m.executions)::bigint AS executions
          FROM neon_budget._month_spend_rows() m WHERE m.billing_month = b.month) sp ON true
  LEFT JOIN neon_budget.alert_state a ON a.scope = 'month' AND a.scope_key = '' AND a.month = b.month;

-- ---------------------------------------------------------------------------------------------
-- Prices in force at the time of the work (issue #13): every row is priced at the agent rate in
-- force at its created_at and keeps that rate (billing_log.cost_per_1k_tokens, NULL for a cost
-- the caller reported); set_agent_rate takes effective_from and returns how many recorded rows
-- a correction would re-price; reprice_billing_log re-prices them. set_agent_rate gets a new C
-- symbol (src/pg/schema_version.rs: the old one is a shim).
-- ---------------------------------------------------------------------------------------------
ALTER TABLE neon_budget.billing_log
    ADD COLUMN cost_per_1k_tokens numeric CHECK (cost_per_1k_tokens >= 0 AND cost_per_1k_tokens < 'Infinity');
COMMENT ON COLUMN neon_budget.billing_log.cost_per_1k_tokens IS
  'The agent rate (dollars per 1,000 tokens, from agent_rate, in force at created_at) that cost was priced at: cost = tokens / 1000 × cost_per_1k_tokens. NULL when the caller reported the cost. neon_budget.reprice_billing_log() re-prices these rows after a rate correction.';
COMMENT ON TABLE neon_budget.agent_rate IS
  'Rate history: dollars per 1,000 tokens per agent type. The rate in force at an instant is the row with the latest effective_from at or before it; rows are priced at the rate in force at their created_at. Change it with neon_budget.set_agent_rate().';

-- EXECUTE granted on set_agent_rate to other roles (a DBA's GRANT to an application role) survives its
-- re-creation: the grantees are noted here (a transaction-local setting) and granted again below.
SELECT pg_catalog.set_config('neon_budget_upgrade.grantees', COALESCE((
    SELECT pg_catalog.array_agg(DISTINCT r.rolname)::text
      FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a, pg_catalog.pg_roles r
     WHERE p.oid = 'neon_budget.set_agent_rate(text, numeric)'::pg_catalog.regprocedure
       AND a.privilege_type = 'EXECUTE' AND r.oid = a.grantee), '{}'), true);
DROP FUNCTION neon_budget.set_agent_rate(text, numeric);
CREATE  FUNCTION neon_budget."set_agent_rate"(
	"agent_type" TEXT, /* Option < & str > */
	"cost_per_1k_tokens" NUMERIC, /* Option < AnyNumeric > */
	"effective_from" timestamp with time zone DEFAULT now() /* Option < TimestampWithTimeZone > */
) RETURNS bigint /* i64 */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'set_agent_rate_v2_wrapper';
DO $regrant$
DECLARE
    g name;
BEGIN
    FOREACH g IN ARRAY pg_catalog.current_setting('neon_budget_upgrade.grantees')::name[] LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION neon_budget.set_agent_rate(text, numeric, timestamptz) TO %I', g);
    END LOOP;
END
$regrant$;
CREATE  FUNCTION neon_budget."reprice_billing_log"(
	"agent_type" TEXT, /* Option < & str > */
	"since" timestamp with time zone DEFAULT '-infinity', /* Option < TimestampWithTimeZone > */
	"before" timestamp with time zone DEFAULT 'infinity' /* Option < TimestampWithTimeZone > */
) RETURNS bigint /* i64 */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'reprice_billing_log_wrapper';

COMMENT ON FUNCTION neon_budget.set_agent_rate(text, numeric, timestamptz) IS
$$Sets an agent type's rate in dollars per 1,000 tokens, in force from effective_from (default now(); later schedules a price, earlier corrects the past) until its next rate. Every entry path prices a row at the rate in force at its created_at. Recorded costs never change: returns how many recorded rows priced at an agent rate would cost differently at the rates now in force (a NOTICE names reprice_billing_log, which re-prices them). Writes audit_log.
Errors: 22004 NULL argument; 22023 empty agent type, negative rate or an infinite effective_from; 22001 agent type over 100 characters.$$;

COMMENT ON FUNCTION neon_budget.reprice_billing_log(text, timestamptz, timestamptz) IS
$$Re-prices the billing_log rows of an agent type priced at an agent rate (cost_per_1k_tokens not NULL; reported costs are never touched) with created_at in [since, before) (default: all) at the rate now in force at each row's created_at, in one UPDATE that every maintained aggregate follows; returns the number of rows changed. Purged rows keep their sums. Writes audit_log (rows, total cost before and after).
Errors: 22004 NULL argument; 22023 empty agent type or since not before before; 42704 agent type without a rate.$$;

COMMENT ON FUNCTION neon_budget.track_cost(text, bigint, text, text, text, double precision, boolean, double precision, integer, bigint, jsonb, numeric, timestamptz, bigint) IS
$$Records one agent execution and returns its billing_log row.
Arguments: agent_type, tokens (count), campaign_id, task, execution_id, impact_score and quality_score (0..1), conversion_achieved, retry_count, execution_time_ms (ms), metadata (jsonb), cost (dollars; when NULL: tokens / 1000 x the agent type's rate in force at created_at, exact, kept in billing_log.cost_per_1k_tokens), created_at (default now(); its month in neon_budget.timezone is the billing month), reservation_id (settles a budget_reserve reservation in the same transaction).
The same execution_id twice records once and returns the first row, also after retention: an anonymized row is returned, a purged one gives NULL (a keyed digest of the id is kept). Never refused for being over budget (ask budget_check first). Returns NULL and records nothing when neon_budget.enabled is off.
Errors: 22004 NULL agent_type/tokens; 22003 negative tokens, cost, retry_count or execution_time_ms, or a score outside 0..1; 22023 empty agent_type; 42704 agent type without a rate in force at created_at (see set_agent_rate); 22001 campaign_id or execution_id over 200 characters, agent_type over 100; 22008 created_at with no billing month or more than neon_budget.max_clock_skew ahead of the clock; 42501 reservation_id made by another role; 40001 its execution_id was anonymized or purged while it ran (retry the call).$$;

COMMENT ON FUNCTION neon_budget.budget_check(text, text, bigint) IS
$$May an execution run now? Arguments: campaign_id, agent_type, estimated_tokens (priced at the agent type's rate in force now).
Returns one row: can_execute, status (ok, warning, critical, exceeded), month (YYYY-MM), total_budget, total_spent, remaining (dollars, after live reservations, including those of transactions still open), utilization_percentage, override_enabled, campaign_id, campaign_budget (NULL = no limit), campaign_spent, estimated_cost, reserved, campaign_reserved (dollars).
can_execute is false when the current month's or the campaign's spend plus live reservations has reached its budget or would pass it with the estimate, unless the override is on. Reads only the maintained aggregates and live reservations.
Errors: 22003 negative estimated_tokens; 22023 estimated_tokens without agent_type; 42704 unknown agent type; 22001 campaign_id over 200 characters or agent_type over 100.$$;

COMMENT ON TABLE neon_budget.billing_log IS
$$One row per agent execution. cost is dollars (numeric), tokens a count, billing_month the YYYY-MM it counts toward (fixed when written, in neon_budget.timezone).
Direct INSERT and COPY (neon_budget_admin) follow track_cost's rules; errors: 23514 a CHECK constraint; 23505 an execution_id recorded already (also one anonymized or purged since); 22001, 22008, 42704 as track_cost; 22023 a cost and a cost_per_1k_tokens that disagree (cost must be tokens / 1000 x cost_per_1k_tokens; leave cost_per_1k_tokens NULL for a reported cost).$$;

-- ---------------------------------------------------------------------------------------------
-- Blocked decisions (issue #13): refused budget_check answers and budget_reserve calls, counted
-- per day, decision, scope and reason (src/write/blocked.rs), in the blocked_executions view.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE neon_budget._blocked_count (
    billing_day  text        NOT NULL,
    decision     text        NOT NULL CHECK (decision IN ('budget_check', 'budget_reserve')),
    scope        text        NOT NULL CHECK (scope IN ('month', 'campaign')),
    scope_key    text        NOT NULL,
    reason       text        NOT NULL CHECK (reason IN ('budget_reached', 'estimate_too_large')),
    slot         integer     NOT NULL,
    blocked      bigint      NOT NULL,
    last_blocked timestamptz NOT NULL,
    PRIMARY KEY (billing_day, decision, scope, scope_key, reason, slot)
);
COMMENT ON TABLE neon_budget._blocked_count IS
  'Refused budget_check answers and budget_reserve calls per day (YYYY-MM-DD in neon_budget.timezone), decision, scope (month, or campaign: scope_key its id), reason (budget_reached, estimate_too_large) and backend slot; see the blocked_executions view (src/write/blocked.rs).';
SELECT pg_catalog.pg_extension_config_dump('neon_budget._blocked_count', '');
CREATE VIEW neon_budget.blocked_executions AS
SELECT pg_catalog.left(b.billing_day, 7) AS month, b.billing_day AS day, b.decision, b.scope,
       NULLIF(b.scope_key, '') AS campaign_id, b.reason,
       sum(b.blocked)::bigint AS executions_blocked, max(b.last_blocked) AS last_blocked
  FROM neon_budget._blocked_count b
 GROUP BY b.billing_day, b.decision, b.scope, b.scope_key, b.reason;
COMMENT ON VIEW neon_budget.blocked_executions IS
  'Executions blocked: refused budget_check answers (can_execute = false) and budget_reserve calls (53000), per month, day (YYYY-MM-DD in neon_budget.timezone), decision, scope (month, or campaign with campaign_id), reason (budget_reached: spend plus reservations had reached the budget; estimate_too_large: the estimate would pass it). A refusal counts under each scope that refused it. Counted by the refusing backend and written at once, or by its next call in a read-write transaction, or when it exits; refusals on a standby are not counted (src/write/blocked.rs).';

COMMENT ON FUNCTION neon_budget.budget_report(text, text) IS
$$Cost report of a billing month (YYYY-MM; NULL = current month): monthly overview, campaign breakdown, agent usage, cost optimization suggestions. Money in dollars.
format (default 'md'): 'md' the Markdown report (figures rounded); 'json' one object {month, timezone, overview, campaigns, agents, suggestions, daily, blocked} with exact JSON numbers, the spend of every day of the month and the executions blocked (per scope, decision and reason); 'csv' a flat table with a header, columns section (overview, campaign, agent, day, blocked, suggestion), key, name, type, cost, budget, remaining, utilization_percentage, status, alert_threshold, tokens, executions, avg_cost_per_execution, successes, failures, success_rate_percentage, retries, scope, decision, reason (exact decimals, empty where not applicable). The Markdown report lists executions blocked when there are any.
Errors: 22007 malformed month; 22023 unknown format.$$;

-- ---------------------------------------------------------------------------------------------
-- Spend per campaign, agent type and day (issue #13, for forecasts and cost anomalies): a fifth
-- maintained aggregate, filled here from billing_log (rows purged before this upgrade are in
-- purged_day_spend only, so this aggregate starts from the rows still in the log).
-- ---------------------------------------------------------------------------------------------
CREATE TABLE neon_budget._campaign_agent_day_spend (
    campaign_key  text    NOT NULL,
    agent_type    text    NOT NULL,
    billing_month text    NOT NULL,
    billing_day   text    NOT NULL,
    slot          integer NOT NULL,
    cost          numeric NOT NULL,
    tokens        numeric NOT NULL,
    executions    bigint  NOT NULL,
    PRIMARY KEY (campaign_key, billing_month, billing_day, agent_type, slot)
) WITH (fillfactor = 50);
CREATE INDEX _campaign_agent_day_spend_agent ON neon_budget._campaign_agent_day_spend (agent_type, billing_month, billing_day);
COMMENT ON TABLE neon_budget._campaign_agent_day_spend IS
  'Spend per campaign (campaign_key: its id, '''' for none), agent type, billing month and day (YYYY-MM-DD of created_at in neon_budget.timezone) and slot: cost in dollars, tokens, executions; the daily series of forecasts and cost anomalies (see the campaign_agent_daily_cost view).';
-- The same per campaign ('' = none), agent type and day (for rows purged from 0.5.0 on: days
-- purged before are in purged_day_spend only).
CREATE TABLE neon_budget.purged_campaign_agent_day_spend (
    billing_month text    NOT NULL,
    billing_day   text    NOT NULL,
    campaign_key  text    NOT NULL,
    agent_type    text    NOT NULL,
    cost          numeric NOT NULL,
    tokens        numeric NOT NULL,
    executions    bigint  NOT NULL,
    PRIMARY KEY (billing_month, billing_day, campaign_key, agent_type)
);
COMMENT ON TABLE neon_budget.purged_campaign_agent_day_spend IS
  'Sums (dollars, tokens, executions) of billing_log rows deleted by purge_before(), per month, day, campaign ('''' = none) and agent type; the per-campaign and per-agent daily aggregate still includes them.';
SELECT pg_catalog.pg_extension_config_dump('neon_budget.purged_campaign_agent_day_spend', '');
INSERT INTO neon_budget._campaign_agent_day_spend (campaign_key, agent_type, billing_month, billing_day, slot, cost, tokens, executions)
SELECT COALESCE(r.campaign_id, ''), r.agent_type, r.billing_month, neon_budget._billing_day(r.created_at), 0,
       sum(r.cost), sum(r.tokens), count(*)
  FROM neon_budget.billing_log r
 GROUP BY 1, 2, 3, 4;

-- The same for the per-campaign, per-agent daily sums in purged_campaign_agent_day_spend.
CREATE FUNCTION neon_budget._purged_campaign_agent_day_spend_restored() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, neon_budget, pg_temp
AS $$
BEGIN
    IF NOT neon_budget._restoring() THEN
        RETURN NULL;
    END IF;
    INSERT INTO neon_budget._campaign_agent_day_spend AS t
           (campaign_key, agent_type, billing_month, billing_day, slot, cost, tokens, executions)
    SELECT r.campaign_key, r.agent_type, r.billing_month, r.billing_day, 0, sum(r.cost), sum(r.tokens), sum(r.executions)
      FROM new_rows r GROUP BY r.campaign_key, r.agent_type, r.billing_month, r.billing_day
    ON CONFLICT (campaign_key, billing_month, billing_day, agent_type, slot) DO UPDATE
       SET cost = t.cost OPERATOR(pg_catalog.+) EXCLUDED.cost, tokens = t.tokens OPERATOR(pg_catalog.+) EXCLUDED.tokens,
           executions = t.executions OPERATOR(pg_catalog.+) EXCLUDED.executions;
    RETURN NULL;
END
$$;

CREATE TRIGGER purged_campaign_agent_day_spend_restored
    AFTER INSERT ON neon_budget.purged_campaign_agent_day_spend REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION neon_budget._purged_campaign_agent_day_spend_restored();

CREATE FUNCTION neon_budget._campaign_agent_day_spend_rows() RETURNS SETOF neon_budget._campaign_agent_day_spend
    LANGUAGE c STABLE PARALLEL RESTRICTED ROWS 1024 AS 'MODULE_PATHNAME', 'slot_rows';
COMMENT ON FUNCTION neon_budget._campaign_agent_day_spend_rows() IS
  'Internal: the rows of _campaign_agent_day_spend visible to the statement, read newest first (src/api/internal.rs); the views read the slot tables through it.';

CREATE VIEW neon_budget.campaign_agent_daily_cost AS
SELECT s.campaign_key AS campaign_id, s.agent_type, s.billing_month AS month, s.billing_day AS day,
       sum(s.cost) AS total_cost, sum(s.tokens) AS total_tokens, sum(s.executions)::bigint AS executions
  FROM neon_budget._campaign_agent_day_spend_rows() s
 GROUP BY s.campaign_key, s.agent_type, s.billing_month, s.billing_day
HAVING sum(s.executions) <> 0 OR sum(s.cost) <> 0;
COMMENT ON VIEW neon_budget.campaign_agent_daily_cost IS
  'Per campaign (campaign_id, '''' for executions without one), agent type, billing month (YYYY-MM) and day (YYYY-MM-DD in neon_budget.timezone, fixed when written): total cost (dollars), tokens and executions, maintained from billing_log; purge_before keeps them (for rows purged from 0.5.0 on).';

CREATE VIEW neon_budget.campaign_daily_cost AS
SELECT v.campaign_id, v.month, v.day, sum(v.total_cost) AS total_cost, sum(v.total_tokens) AS total_tokens,
       sum(v.executions)::bigint AS executions
  FROM neon_budget.campaign_agent_daily_cost v
 WHERE v.campaign_id <> ''
 GROUP BY v.campaign_id, v.month, v.day;
COMMENT ON VIEW neon_budget.campaign_daily_cost IS
  'Per campaign, billing month (YYYY-MM) and day (YYYY-MM-DD): total cost (dollars), tokens and executions (campaign_agent_daily_cost summed over agent types).';

CREATE VIEW neon_budget.agent_daily_cost AS
SELECT v.agent_type, v.month, v.day, sum(v.total_cost) AS total_cost, sum(v.total_tokens) AS total_tokens,
       sum(v.executions)::bigint AS executions
  FROM neon_budget.campaign_agent_daily_cost v
 GROUP BY v.agent_type, v.month, v.day;
COMMENT ON VIEW neon_budget.agent_daily_cost IS
  'Per agent type, billing month (YYYY-MM) and day (YYYY-MM-DD): total cost (dollars), tokens and executions (campaign_agent_daily_cost summed over campaigns).';

-- The functions that keep the aggregates name the new purged table.
COMMENT ON FUNCTION neon_budget.budget_verify(text) IS
$$Every maintained aggregate row that differs from billing_log plus the purged sums (purged_spend, purged_day_spend, purged_campaign_agent_day_spend): aggregate (monthly_budget, campaign_cost, agent_cost, daily_cost, campaign_agent_daily_cost), key (campaign id, agent type, day YYYY-MM-DD, '' for the month; for campaign_agent_daily_cost the text of the array {campaign ('' = none),agent type,day}), month (YYYY-MM; NULL argument = all months), expected and stored sums as JSON (dollars, tokens, executions, ...). Empty when all agree. Reads only the month's rows. Admin only. Errors: 22007 malformed month.$$;
COMMENT ON FUNCTION neon_budget.budget_rebuild(text) IS
$$Makes a month's (YYYY-MM) aggregates equal to billing_log plus the purged sums: adds each difference budget_verify(month) finds to the key's slot-0 row, in one snapshot; returns the aggregate rows corrected (0 when none differ). Writers never wait for it; two rebuilds of a month take turns. Writes audit_log with the differences. Admin only. Errors: 22007 malformed month; 22004 NULL; 40001 in REPEATABLE READ when another rebuild of the month committed after the snapshot.$$;
COMMENT ON FUNCTION neon_budget.purge_before(timestamptz) IS
$$Deletes billing_log rows created before the cutoff; returns the rows deleted. Monthly, campaign, agent and daily totals do not change (the purged sums move to purged_spend, purged_day_spend and purged_campaign_agent_day_spend, the execution ids' keyed digests to purged_execution_id). Works in batches of 1024 pages, then one pass over the whole table for rows updated meanwhile; takes no lock that writers wait for (only a write to a row being purged waits for its commit); retention calls take turns. Writes audit_log. Admin only. Errors: 22004 NULL.$$;

-- ---------------------------------------------------------------------------------------------
-- Month-end forecasts (issue #13, part 3): budget_check's row gains the month's and the campaign's
-- projected spend and the day their budget runs out (a new C symbol, src/pg/schema_version.rs:
-- the old one is a shim), budget_forecast lists them, and the report shows them.
-- ---------------------------------------------------------------------------------------------
-- EXECUTE granted on budget_check to other roles (a DBA's GRANT to an application role) survives its
-- re-creation: the grantees are noted here (a transaction-local setting) and granted again below.
SELECT pg_catalog.set_config('neon_budget_upgrade.grantees', COALESCE((
    SELECT pg_catalog.array_agg(DISTINCT r.rolname)::text
      FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a, pg_catalog.pg_roles r
     WHERE p.oid = 'neon_budget.budget_check(text, text, bigint)'::pg_catalog.regprocedure
       AND a.privilege_type = 'EXECUTE' AND r.oid = a.grantee), '{}'), true);
DROP FUNCTION neon_budget.budget_check(text, text, bigint);
CREATE  FUNCTION neon_budget."budget_check"(
	"campaign_id" TEXT DEFAULT NULL, /* Option < & str > */
	"agent_type" TEXT DEFAULT NULL, /* Option < & str > */
	"estimated_tokens" bigint DEFAULT 0 /* Option < i64 > */
) RETURNS TABLE (
	"can_execute" bool,  /* bool */
	"status" TEXT,  /* String */
	"month" TEXT,  /* String */
	"total_budget" NUMERIC,  /* AnyNumeric */
	"total_spent" NUMERIC,  /* AnyNumeric */
	"remaining" NUMERIC,  /* AnyNumeric */
	"utilization_percentage" NUMERIC,  /* AnyNumeric */
	"override_enabled" bool,  /* bool */
	"campaign_id" TEXT,  /* Option < String > */
	"campaign_budget" NUMERIC,  /* Option < AnyNumeric > */
	"campaign_spent" NUMERIC,  /* Option < AnyNumeric > */
	"estimated_cost" NUMERIC,  /* AnyNumeric */
	"reserved" NUMERIC,  /* AnyNumeric */
	"campaign_reserved" NUMERIC,  /* Option < AnyNumeric > */
	"projected_spend" NUMERIC,  /* Option < AnyNumeric > */
	"projected_exhausted_on" TEXT,  /* Option < String > */
	"campaign_projected_spend" NUMERIC,  /* Option < AnyNumeric > */
	"campaign_projected_exhausted_on" TEXT  /* Option < String > */
)
VOLATILE PARALLEL UNSAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'budget_check_v2_wrapper';
DO $regrant$
DECLARE
    g name;
BEGIN
    FOREACH g IN ARRAY pg_catalog.current_setting('neon_budget_upgrade.grantees')::name[] LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION neon_budget.budget_check(text, text, bigint) TO %I', g);
    END LOOP;
END
$regrant$;
CREATE  FUNCTION neon_budget."budget_forecast"(
	"month" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS TABLE (
	"scope" TEXT,  /* String */
	"campaign_id" TEXT,  /* Option < String > */
	"budget" NUMERIC,  /* Option < pgrx :: AnyNumeric > */
	"spent" NUMERIC,  /* pgrx :: AnyNumeric */
	"daily_mean" NUMERIC,  /* pgrx :: AnyNumeric */
	"window_days" INT,  /* i32 */
	"days_left" INT,  /* i32 */
	"projected_spend" NUMERIC,  /* pgrx :: AnyNumeric */
	"projected_exhausted_on" TEXT,  /* Option < String > */
	"over_budget" bool  /* bool */
)
STABLE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'budget_forecast_wrapper';
COMMENT ON FUNCTION neon_budget.budget_check(text, text, bigint) IS
$$May an execution run now? Arguments: campaign_id, agent_type, estimated_tokens (priced at the agent type's rate in force now).
Returns one row: can_execute, status (ok, warning, critical, exceeded), month (YYYY-MM), total_budget, total_spent, remaining (dollars, after live reservations, including those of transactions still open), utilization_percentage, override_enabled, campaign_id, campaign_budget (NULL = no limit), campaign_spent, estimated_cost, reserved, campaign_reserved (dollars), projected_spend and projected_exhausted_on (the month's month-end forecast in dollars and the day YYYY-MM-DD its budget runs out, NULL when not within the month), campaign_projected_spend and campaign_projected_exhausted_on (the same for a campaign with a budget); forecasts are NULL while too few days of the month are complete (see budget_forecast).
can_execute is false when the current month's or the campaign's spend plus live reservations has reached its budget or would pass it with the estimate, unless the override is on. Reads only the maintained aggregates and live reservations.
Errors: 22003 negative estimated_tokens; 22023 estimated_tokens without agent_type; 42704 unknown agent type; 22001 campaign_id over 200 characters or agent_type over 100.$$;
COMMENT ON FUNCTION neon_budget.budget_forecast(text) IS
$$Month-end forecasts of a billing month (YYYY-MM; NULL = the current month), from the maintained per-day aggregates: one row for the month, then one per campaign with a budget. Columns: scope (month, campaign), campaign_id, budget, spent (dollars to date), daily_mean (dollars per day over the window), window_days, days_left (days after today), projected_spend (dollars at the month's end), projected_exhausted_on (YYYY-MM-DD the budget runs out, NULL when not within the month), over_budget (projected spend above the budget).
Method: spend to date + the mean daily spend of the last neon_budget.forecast_window_days (default 7) complete days of the month x the days after today. No rows for another month than the current one, or while fewer than neon_budget.forecast_min_elapsed (default 0.2) of the month's days are complete.
Errors: 22007 malformed month.$$;
COMMENT ON FUNCTION neon_budget.budget_report(text, text) IS
$$Cost report of a billing month (YYYY-MM; NULL = current month): monthly overview, campaign breakdown, agent usage, cost optimization suggestions. Money in dollars.
format (default 'md'): 'md' the Markdown report (figures rounded); 'json' one object {month, timezone, overview, campaigns, agents, suggestions, daily, blocked, forecast} with exact JSON numbers, the spend of every day of the month, the executions blocked (per scope, decision and reason) and the month-end forecasts (as budget_forecast returns them); 'csv' a flat table with a header, columns section (overview, campaign, agent, day, blocked, forecast, suggestion), key, name, type, cost, budget, remaining, utilization_percentage, status, alert_threshold, tokens, executions, avg_cost_per_execution, successes, failures, success_rate_percentage, retries, scope, decision, reason, daily_mean, window_days, days_left, projected_spend, projected_exhausted_on, over_budget (exact decimals, empty where not applicable). The Markdown report lists executions blocked when there are any, and a forecast line for the month and for each campaign with a budget while the current month is forecast.
Errors: 22007 malformed month; 22023 unknown format.$$;

-- The forecast alert (sent once per scope and month when the projection first passes the budget)
-- is kept in alert_log with its figures in details; so is a cost anomaly (src/anomaly/), which
-- has no budget and scopes of its own, once per scope and day.
ALTER TABLE neon_budget.alert_log
    DROP CONSTRAINT alert_log_level_check,
    DROP CONSTRAINT alert_log_scope_check,
    ADD CONSTRAINT alert_log_level_check CHECK (level IN ('warning', 'critical', 'exceeded', 'forecast', 'anomaly')),
    ADD CONSTRAINT alert_log_scope_check CHECK (scope IN ('month', 'campaign', 'agent_type', 'execution')),
    ALTER COLUMN budget DROP NOT NULL,
    ALTER COLUMN utilization DROP NOT NULL,
    ADD CONSTRAINT alert_log_budget_check CHECK (CASE WHEN level = 'anomaly' THEN scope IN ('campaign', 'agent_type', 'execution')
                                                      ELSE scope IN ('month', 'campaign') AND budget IS NOT NULL AND utilization IS NOT NULL END),
    ADD COLUMN details jsonb;
CREATE UNIQUE INDEX alert_log_anomaly_once ON neon_budget.alert_log (scope, (details ->> 'scope_key'), (details ->> 'day'))
    WHERE level = 'anomaly';
COMMENT ON TABLE neon_budget.alert_log IS
  'Every alert raised: scope (month, campaign; for anomalies also agent_type and execution), level (warning, critical, exceeded; forecast: the month-end projection passes the budget; anomaly: a cost anomaly), spend and budget in dollars, utilization in percent (budget and utilization NULL for an anomaly), details (forecast: projected_spend, daily_mean, window_days, days_left, projected_exhausted_on; anomaly: kind, scope_key, day and the figures that triggered it).';
COMMENT ON TABLE neon_budget.audit_log IS
  'Every budget, campaign, rate and override change: who (session_user), when, old and new values; and every cost anomaly (action cost_anomaly, new_value its figures and alert_id).';

-- Cost anomalies: the days already scored (src/anomaly/days.rs) and detect_anomalies().
CREATE TABLE neon_budget._anomaly_scan (
    billing_day text        PRIMARY KEY,
    scanned_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE neon_budget._anomaly_scan IS
  'Days (YYYY-MM-DD in neon_budget.timezone) already scored for cost anomalies, by the automatic daily scan or detect_anomalies().';
SELECT pg_catalog.pg_extension_config_dump('neon_budget._anomaly_scan', '');
CREATE  FUNCTION neon_budget."detect_anomalies"(
	"first_day" date, /* Option < pgrx :: datum :: Date > */
	"last_day" date DEFAULT NULL /* Option < pgrx :: datum :: Date > */
) RETURNS TABLE (
	"scope" TEXT,  /* String */
	"scope_key" TEXT,  /* String */
	"day" TEXT,  /* String */
	"spent" NUMERIC,  /* AnyNumeric */
	"baseline_median" NUMERIC,  /* AnyNumeric */
	"baseline_mad" NUMERIC,  /* AnyNumeric */
	"excess" NUMERIC,  /* AnyNumeric */
	"score" NUMERIC,  /* Option < AnyNumeric > */
	"alert_id" bigint  /* Option < i64 > */
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'detect_anomalies_wrapper';
COMMENT ON FUNCTION neon_budget.detect_anomalies(date, date) IS
$$Scores every complete day from first_day to last_day (NULL: yesterday, in neon_budget.timezone) of every agent type and campaign against its own 14-day baseline and sends each cost anomaly not sent yet (an anomaly alert in alert_log and NOTIFY neon_budget_alerts, an audit_log entry cost_anomaly; once per scope and day); notes the days as scanned so the automatic daily scan does not score them again. For history loaded or corrected after its days were scanned. Calls take turns; writers never wait for one.
A day is an anomaly when its spend exceeds the baseline median by at least neon_budget.anomaly_threshold (default 6) x 1.4826 x the baseline's median absolute deviation, by at least neon_budget.anomaly_min_increase (default 1) x the median, and by at least neon_budget.anomaly_min_dollars (default 10) dollars; a scope needs 7 days of spend in its baseline.
Returns one row per anomaly: scope (agent_type, campaign), scope_key, day (YYYY-MM-DD), spent, baseline_median, baseline_mad, excess (dollars), score (NULL when the deviation is 0), alert_id (NULL while another transaction sends it). Admin only.
Errors: 22004 NULL first_day; 22023 last_day not before today, first_day after last_day, more than 366 days, or a date outside the years 1 to 9999; 0A000 in a REPEATABLE READ or SERIALIZABLE transaction; 25006 read-only transaction.$$;

-- Model prices (issue #13, part 2; WIP): the price history and billing_log's model and token parts.
CREATE TABLE neon_budget.model_price (
    model                text        NOT NULL CHECK (model <> ''),
    input_per_1m         numeric     NOT NULL CHECK (input_per_1m >= 0 AND input_per_1m < 'Infinity'),
    output_per_1m        numeric     NOT NULL CHECK (output_per_1m >= 0 AND output_per_1m < 'Infinity'),
    cached_input_per_1m  numeric     NOT NULL CHECK (cached_input_per_1m >= 0 AND cached_input_per_1m < 'Infinity'),
    effective_from       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    set_by               text        NOT NULL DEFAULT session_user,
    PRIMARY KEY (model, effective_from)
);
COMMENT ON TABLE neon_budget.model_price IS
  'Model price history: dollars per 1,000,000 input, output and cached-input tokens per model. The price in force at an instant is the row with the latest effective_from at or before it; a billing_log row naming the model is priced at the one in force at its created_at. Change it with neon_budget.set_model_price().';
ALTER TABLE neon_budget.billing_log
    ADD COLUMN model text CHECK (model <> ''),
    ADD COLUMN input_tokens bigint CHECK (input_tokens >= 0),
    ADD COLUMN output_tokens bigint CHECK (output_tokens >= 0),
    ADD COLUMN cached_tokens bigint CHECK (cached_tokens >= 0),
    ADD COLUMN model_price_from timestamptz,
    ADD CONSTRAINT billing_log_check CHECK ((input_tokens IS NULL AND output_tokens IS NULL AND cached_tokens IS NULL)
           OR (input_tokens IS NOT NULL AND output_tokens IS NOT NULL AND cached_tokens IS NOT NULL
               AND tokens = input_tokens + output_tokens + cached_tokens));
COMMENT ON COLUMN neon_budget.billing_log.model IS
  'The model that did the work; when model_price has a price for it in force at created_at, cost is the exact sum of the three token parts at that price (cost_per_1k_tokens is then NULL).';
COMMENT ON COLUMN neon_budget.billing_log.input_tokens IS
  'Input tokens not read from the provider''s cache (with output_tokens and cached_tokens: all three or none; tokens is their total).';
COMMENT ON COLUMN neon_budget.billing_log.model_price_from IS
  'The effective_from of the model_price row cost was priced at (cost = the three parts at that price); NULL when the row was priced at an agent rate or its cost was reported.';
COMMENT ON COLUMN neon_budget.billing_log.cached_tokens IS
  'Input tokens read from the provider''s cache (priced at model_price.cached_input_per_1m).';

CREATE TRIGGER model_price_changed AFTER INSERT OR UPDATE OR DELETE ON neon_budget.model_price
    FOR EACH ROW EXECUTE FUNCTION neon_budget._budget_settings_changed();
CREATE TRIGGER model_price_truncated AFTER TRUNCATE ON neon_budget.model_price
    FOR EACH STATEMENT EXECUTE FUNCTION neon_budget._budget_settings_changed();
SELECT pg_catalog.pg_extension_config_dump('neon_budget.model_price', '');
CREATE  FUNCTION neon_budget."set_model_price"(
	"model" TEXT, /* Option < & str > */
	"input_per_1m" NUMERIC, /* Option < AnyNumeric > */
	"output_per_1m" NUMERIC, /* Option < AnyNumeric > */
	"cached_input_per_1m" NUMERIC DEFAULT NULL, /* Option < AnyNumeric > */
	"effective_from" timestamp with time zone DEFAULT now() /* Option < TimestampWithTimeZone > */
) RETURNS bigint /* i64 */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'set_model_price_wrapper';
-- track_cost gains model and the token parts (and tokens a default): re-created, keeping
-- EXECUTE granted to other roles, as for budget_check above.
SELECT pg_catalog.set_config('neon_budget_upgrade.grantees', COALESCE((
    SELECT pg_catalog.array_agg(DISTINCT r.rolname)::text
      FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a, pg_catalog.pg_roles r
     WHERE p.oid = 'neon_budget.track_cost(text, bigint, text, text, text, double precision, boolean, double precision, integer, bigint, jsonb, numeric, timestamptz, bigint)'::pg_catalog.regprocedure
       AND a.privilege_type = 'EXECUTE' AND r.oid = a.grantee), '{}'), true);
DROP FUNCTION neon_budget.track_cost(text, bigint, text, text, text, double precision, boolean, double precision, integer, bigint, jsonb, numeric, timestamptz, bigint);
CREATE  FUNCTION neon_budget."track_cost"(
	"agent_type" TEXT, /* Option < & str > */
	"tokens" bigint DEFAULT NULL, /* Option < i64 > */
	"campaign_id" TEXT DEFAULT NULL, /* Option < & str > */
	"task" TEXT DEFAULT NULL, /* Option < & str > */
	"execution_id" TEXT DEFAULT NULL, /* Option < & str > */
	"impact_score" double precision DEFAULT NULL, /* Option < f64 > */
	"conversion_achieved" bool DEFAULT NULL, /* Option < bool > */
	"quality_score" double precision DEFAULT NULL, /* Option < f64 > */
	"retry_count" INT DEFAULT NULL, /* Option < i32 > */
	"execution_time_ms" bigint DEFAULT NULL, /* Option < i64 > */
	"metadata" jsonb DEFAULT NULL, /* Option < JsonB > */
	"cost" NUMERIC DEFAULT NULL, /* Option < AnyNumeric > */
	"created_at" timestamp with time zone DEFAULT now(), /* Option < TimestampWithTimeZone > */
	"reservation_id" bigint DEFAULT NULL, /* Option < i64 > */
	"model" TEXT DEFAULT NULL, /* Option < & str > */
	"input_tokens" bigint DEFAULT NULL, /* Option < i64 > */
	"output_tokens" bigint DEFAULT NULL, /* Option < i64 > */
	"cached_tokens" bigint DEFAULT NULL /* Option < i64 > */
) RETURNS neon_budget.billing_log /* Option < :: pgrx :: heap_tuple :: PgHeapTuple < '_, :: pgrx :: pgbox ::
AllocatedByRust > > */
VOLATILE PARALLEL UNSAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'track_cost_v2_wrapper';
DO $regrant$
DECLARE
    g name;
BEGIN
    FOREACH g IN ARRAY pg_catalog.current_setting('neon_budget_upgrade.grantees')::name[] LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION neon_budget.track_cost(text, bigint, text, text, text, double precision, boolean, double precision, integer, bigint, jsonb, numeric, timestamptz, bigint, text, bigint, bigint, bigint) TO %I', g);
    END LOOP;
END
$regrant$;
COMMENT ON FUNCTION neon_budget.track_cost(text, bigint, text, text, text, double precision, boolean, double precision, integer, bigint, jsonb, numeric, timestamptz, bigint, text, bigint, bigint, bigint) IS
$$Records one agent execution and returns its billing_log row.
Arguments: agent_type, tokens (count), campaign_id, task, execution_id, impact_score and quality_score (0..1), conversion_achieved, retry_count, execution_time_ms (ms), metadata (jsonb), cost (dollars; when NULL: tokens / 1000 x the agent type's rate in force at created_at, exact, kept in billing_log.cost_per_1k_tokens), created_at (default now(); its month in neon_budget.timezone is the billing month), reservation_id (settles a budget_reserve reservation in the same transaction), model, input_tokens (not cached), output_tokens, cached_tokens: with a price of the model in force at created_at (set_model_price) the cost is the exact sum of the three parts at its prices per 1,000,000 tokens (kept in billing_log.model_price_from); parts are given together (one left out counts 0) and tokens may then be NULL (their total).
The same execution_id twice records once and returns the first row, also after retention: an anonymized row is returned, a purged one gives NULL (a keyed digest of the id is kept). Never refused for being over budget (ask budget_check first). Returns NULL and records nothing when neon_budget.enabled is off.
Errors: 22004 NULL agent_type, or tokens without parts; 22003 negative tokens, token parts, cost, retry_count or execution_time_ms, or a score outside 0..1; 22023 empty agent_type or model, tokens that are not the parts' total, a priced model without parts; 42704 agent type without a rate in force at created_at (see set_agent_rate); 22001 campaign_id or execution_id over 200 characters, agent_type over 100; 22008 created_at with no billing month or more than neon_budget.max_clock_skew ahead of the clock; 42501 reservation_id made by another role; 40001 its execution_id was anonymized or purged while it ran (retry the call).$$;
COMMENT ON FUNCTION neon_budget.set_model_price(text, numeric, numeric, numeric, timestamptz) IS
$$Sets a model's prices in dollars per 1,000,000 input (not cached), output and cached-input tokens (cached_input_per_1m NULL: the input price), in force from effective_from (default now()) until its next price. Every entry path prices a row naming the model by its token parts at the price in force at its created_at. Recorded costs never change: returns how many recorded rows priced by this model would cost differently at the prices now in force. Writes audit_log.
Errors: 22004 NULL model, input or output price or effective_from; 22023 empty model, a negative or infinite price, or an infinite effective_from; 22001 model over 200 characters.$$;


-- BEGIN sql/roles_and_grants.sql
-- neon_budget: roles and privileges, in one idempotent file.
--
-- CREATE EXTENSION runs it last (src/lib.rs: the `finalize` SQL), after every function, table
-- and view exists; every upgrade script ends with an exact copy of it (between the lines
-- `-- BEGIN sql/roles_and_grants.sql` and `-- END sql/roles_and_grants.sql`, checked by the
-- test `upgrade_scripts_end_with_the_grants`), so an upgraded database has the privileges of a
-- fresh install. Running it twice changes nothing.
-- ---------------------------------------------------------------------------------------------
-- Roles and privileges. Three NOLOGIN roles (created if missing; roles are cluster-wide and
-- outlive DROP EXTENSION): neon_budget_reader (views, alert_log, budget_check, budget_report),
-- neon_budget_writer (reader + track_cost and reservations), neon_budget_admin (writer + the
-- admin functions, audit_log and the tables). PUBLIC gets nothing.
-- Functions that write run SECURITY DEFINER with search_path pinned to
-- pg_catalog, neon_budget, pg_temp, so a caller's objects can never shadow what they call.
-- budget_check and the aggregate trigger _billing_log_changed run as their caller (budget_check
-- reads without SQL, src/pg/table_scan.rs; the trigger's fast path writes with the heap API,
-- src/write/slots.rs); what they do in SQL runs as the extension's owner with the same pinned
-- search_path (src/pg/owner.rs).
-- ---------------------------------------------------------------------------------------------
-- Roles are cluster-wide: CREATE EXTENSION in several databases at once (a fresh cluster, a test
-- suite) races to create them. Each creation and membership tolerates a concurrent creator: the
-- loser waits for the winner's commit and then finds 42710 (the role exists) or 23505 (the
-- catalog's unique index saw the winner's row); either way the role is there.
DO $roles$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['neon_budget_reader', 'neon_budget_writer', 'neon_budget_admin'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;
            END;
        END IF;
    END LOOP;
    BEGIN
        GRANT neon_budget_reader TO neon_budget_writer;
    EXCEPTION WHEN unique_violation THEN
        NULL;
    END;
    BEGIN
        GRANT neon_budget_writer TO neon_budget_admin;
    EXCEPTION WHEN unique_violation THEN
        NULL;
    END;
END
$roles$;

DO $definer$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN
        SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
         WHERE p.pronamespace = 'neon_budget'::regnamespace
           AND p.proname IN ('track_cost', 'budget_report', 'budget_reserve', 'budget_release',
                             'set_monthly_budget', 'set_campaign', 'clear_campaign_budget', 'set_agent_rate', 'reprice_billing_log',
                             'set_model_price', 'set_budget_override', '_ensure_month', '_check_alerts',
                             'budget_verify', 'budget_rebuild', 'anonymize_before', 'purge_before',
                             '_purged_spend_restored', '_purged_day_spend_restored',
                             '_purged_campaign_agent_day_spend_restored', 'detect_anomalies')
    LOOP
        EXECUTE pg_catalog.format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = pg_catalog, neon_budget, pg_temp', f);
    END LOOP;
END
$definer$;

REVOKE ALL ON SCHEMA neon_budget FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA neon_budget FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA neon_budget FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA neon_budget FROM PUBLIC;

GRANT USAGE ON SCHEMA neon_budget TO neon_budget_reader;
GRANT SELECT ON neon_budget.monthly_budget, neon_budget.campaign_cost, neon_budget.agent_cost, neon_budget.daily_cost,
                neon_budget.campaign_agent_daily_cost, neon_budget.campaign_daily_cost, neon_budget.agent_daily_cost,
                neon_budget.monthly_overview, neon_budget.campaign_breakdown, neon_budget.agent_analytics,
                neon_budget.campaign, neon_budget.agent_rate, neon_budget.model_price, neon_budget.monthly_budget_setting,
                neon_budget.alert_log, neon_budget.blocked_executions
   TO neon_budget_reader;
DO $reader$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN
        SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
         WHERE p.pronamespace = 'neon_budget'::regnamespace
           AND p.proname IN ('budget_check', 'budget_report', 'budget_forecast', '_status', '_current_month', '_timezone',
                             '_month_spend_rows', '_campaign_spend_rows', '_agent_spend_rows', '_day_spend_rows',
                             '_campaign_agent_day_spend_rows')
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO neon_budget_reader', f);
    END LOOP;
    FOR f IN
        SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
         WHERE p.pronamespace = 'neon_budget'::regnamespace
           AND p.proname IN ('track_cost', 'budget_reserve', 'budget_release')
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO neon_budget_writer', f);
    END LOOP;
    FOR f IN
        SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
         WHERE p.pronamespace = 'neon_budget'::regnamespace
           AND p.proname IN ('set_monthly_budget', 'set_campaign', 'clear_campaign_budget', 'set_agent_rate', 'reprice_billing_log',
                             'set_budget_override', 'budget_verify', 'budget_rebuild', 'anonymize_before', 'purge_before',
                             'detect_anomalies', 'set_model_price')
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO neon_budget_admin', f);
    END LOOP;
END
$reader$;
GRANT SELECT ON ALL TABLES IN SCHEMA neon_budget TO neon_budget_admin;
-- The digest key stays with the owner: with it, anonymized ids could be guessed back.
REVOKE SELECT ON neon_budget._execution_id_key FROM neon_budget_admin;
GRANT INSERT ON neon_budget.billing_log TO neon_budget_admin;
-- END sql/roles_and_grants.sql
