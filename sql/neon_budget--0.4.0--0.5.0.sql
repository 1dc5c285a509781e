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

DROP FUNCTION neon_budget.set_agent_rate(text, numeric);
CREATE  FUNCTION neon_budget."set_agent_rate"(
	"agent_type" TEXT, /* Option < & str > */
	"cost_per_1k_tokens" NUMERIC, /* Option < AnyNumeric > */
	"effective_from" timestamp with time zone DEFAULT now() /* Option < TimestampWithTimeZone > */
) RETURNS bigint /* i64 */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'set_agent_rate_v2_wrapper';
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
                             'set_budget_override', '_ensure_month', '_check_alerts',
                             'budget_verify', 'budget_rebuild', 'anonymize_before', 'purge_before',
                             '_purged_spend_restored', '_purged_day_spend_restored')
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
                neon_budget.monthly_overview, neon_budget.campaign_breakdown, neon_budget.agent_analytics,
                neon_budget.campaign, neon_budget.agent_rate, neon_budget.monthly_budget_setting,
                neon_budget.alert_log, neon_budget.blocked_executions
   TO neon_budget_reader;
DO $reader$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN
        SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
         WHERE p.pronamespace = 'neon_budget'::regnamespace
           AND p.proname IN ('budget_check', 'budget_report', '_status', '_current_month', '_timezone',
                             '_month_spend_rows', '_campaign_spend_rows', '_agent_spend_rows', '_day_spend_rows')
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
                             'set_budget_override', 'budget_verify', 'budget_rebuild', 'anonymize_before', 'purge_before')
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
