-- neon_budget 0.1.0 -> 0.2.0 (ALTER EXTENSION neon_budget UPDATE TO '0.2.0').
-- 0.1.0 is the schema of commit 2b5d858 (the foundation). Every schema change since then is
-- here, in the order it was made; a fresh install of 0.2.0 and 0.1.0 + this script give the
-- same objects.
\echo Use "ALTER EXTENSION neon_budget UPDATE TO '0.2.0'" to load this file. \quit

-- ---------------------------------------------------------------------------------------------
-- budget_report(month, format): the report in 'md' (unchanged), 'json' or 'csv' (src/report.rs).
-- ---------------------------------------------------------------------------------------------
DROP FUNCTION neon_budget.budget_report(text);
CREATE  FUNCTION neon_budget."budget_report"(
	"month" TEXT DEFAULT NULL, /* Option < & str > */
	"format" TEXT DEFAULT 'md' /* Option < & str > */
) RETURNS TEXT /* String */
STABLE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'budget_report_wrapper';
COMMENT ON FUNCTION neon_budget.budget_report(text, text) IS
$$Cost report of a billing month (YYYY-MM; NULL = current month): monthly overview, campaign breakdown, agent usage, cost optimization suggestions. Money in dollars.
format (default 'md'): 'md' the Markdown report (figures rounded); 'json' one object {month, timezone, overview, campaigns, agents, suggestions, daily} with exact JSON numbers and the spend of every day of the month; 'csv' a flat table with a header, columns section (overview, campaign, agent, day, suggestion), key, name, type, cost, budget, remaining, utilization_percentage, status, alert_threshold, tokens, executions, avg_cost_per_execution, successes, failures, success_rate_percentage, retries (exact decimals, empty where not applicable).
Errors: 22007 malformed month; 22023 unknown format.$$;

-- Slot aggregate tables leave half of each page free for HOT updates.
ALTER TABLE neon_budget._month_spend SET (fillfactor = 50);
ALTER TABLE neon_budget._campaign_spend SET (fillfactor = 50);
ALTER TABLE neon_budget._agent_spend SET (fillfactor = 50);

-- Alert grants (src/alert_grants.rs): each slot's grant, and the table whose relcache
-- invalidation revokes them.
ALTER TABLE neon_budget._month_spend ADD COLUMN alert_cap numeric NOT NULL DEFAULT 0;
ALTER TABLE neon_budget._campaign_spend ADD COLUMN alert_cap numeric NOT NULL DEFAULT 0;
COMMENT ON COLUMN neon_budget._month_spend.alert_cap IS
  'Alert grant of this slot in dollars: its backend may raise cost up to alert_cap without reading the month''s totals (src/alert_grants.rs).';
COMMENT ON COLUMN neon_budget._campaign_spend.alert_cap IS
  'Alert grant of this slot in dollars: its backend may raise cost up to alert_cap without reading the campaign''s totals (src/alert_grants.rs).';
CREATE TABLE neon_budget._alert_grant_signal ();
COMMENT ON TABLE neon_budget._alert_grant_signal IS
  'Holds no rows: its relcache invalidation revokes every backend''s alert grants (src/alert_grants.rs).';
REVOKE ALL ON neon_budget._alert_grant_signal FROM PUBLIC;

-- ---------------------------------------------------------------------------------------------
-- Verification, repair and retention: purged_spend, budget_verify, budget_rebuild,
-- anonymize_before, purge_before (src/maintenance.rs), and re-applying purged sums on restore.
-- ---------------------------------------------------------------------------------------------
-- What purge_before removed from billing_log, per month, campaign ('' = none) and agent type:
-- the maintained aggregates keep these sums, so reports of purged months do not change.
CREATE TABLE neon_budget.purged_spend (
    billing_month        text    NOT NULL,
    campaign_id          text    NOT NULL DEFAULT '',
    agent_type           text    NOT NULL,
    cost                 numeric NOT NULL,
    tokens               numeric NOT NULL,
    executions           bigint  NOT NULL,
    successes            bigint  NOT NULL,
    failures             bigint  NOT NULL,
    quality_sum          numeric NOT NULL,
    quality_count        bigint  NOT NULL,
    retry_sum            numeric NOT NULL,
    execution_time_sum   numeric NOT NULL,
    execution_time_count bigint  NOT NULL,
    PRIMARY KEY (billing_month, campaign_id, agent_type)
);
COMMENT ON TABLE neon_budget.purged_spend IS
  'Sums (dollars, tokens, executions, ...) of billing_log rows deleted by purge_before(), per month, campaign and agent type; the maintained aggregates still include them.';
SELECT pg_catalog.pg_extension_config_dump('neon_budget.purged_spend', '');

CREATE FUNCTION neon_budget."budget_verify"(
	"month" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS TABLE (
	"aggregate" TEXT,  /* String */
	"key" TEXT,  /* String */
	"month" TEXT,  /* String */
	"expected" jsonb,  /* Option < pgrx :: JsonB > */
	"stored" jsonb  /* Option < pgrx :: JsonB > */
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'budget_verify_wrapper';

CREATE FUNCTION neon_budget."budget_rebuild"(
	"month" TEXT /* Option < & str > */
) RETURNS bigint /* i64 */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'budget_rebuild_wrapper';

CREATE FUNCTION neon_budget."anonymize_before"(
	"cutoff" timestamp with time zone /* Option < TimestampWithTimeZone > */
) RETURNS bigint /* i64 */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'anonymize_before_wrapper';

CREATE FUNCTION neon_budget."purge_before"(
	"cutoff" timestamp with time zone /* Option < TimestampWithTimeZone > */
) RETURNS bigint /* i64 */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'purge_before_wrapper';

COMMENT ON FUNCTION neon_budget.budget_verify(text) IS
$$Every maintained aggregate row that differs from billing_log plus purged_spend: aggregate (monthly_budget, campaign_cost, agent_cost), key, month (YYYY-MM; NULL argument = all months), expected and stored sums as JSON (dollars, tokens, executions, ...). Empty when all agree. Admin only. Errors: 22007 malformed month.$$;

COMMENT ON FUNCTION neon_budget.budget_rebuild(text) IS
$$Recomputes a month's (YYYY-MM) aggregates from billing_log plus purged_spend under a SHARE ROW EXCLUSIVE lock on billing_log (writers wait); returns the aggregate rows written. Writes audit_log. Admin only. Errors: 22007 malformed month; 22004 NULL.$$;

COMMENT ON FUNCTION neon_budget.anonymize_before(timestamptz) IS
$$Clears task, metadata and execution_id of billing_log rows created before the cutoff; returns the rows changed. Totals do not change. Writes audit_log. Admin only. Errors: 22004 NULL.$$;

COMMENT ON FUNCTION neon_budget.purge_before(timestamptz) IS
$$Deletes billing_log rows created before the cutoff; returns the rows deleted. Monthly, campaign and agent totals do not change (the purged sums move to purged_spend). Writes audit_log. Admin only. Errors: 22004 NULL.$$;

-- pg_restore loads purged_spend after billing_log; the aggregate trigger rebuilt the
-- aggregates from the log alone, so the purged sums are added back as they arrive. Outside a
-- restore (purge_before) the aggregates already hold them.
CREATE FUNCTION neon_budget._purged_spend_restored() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, neon_budget, pg_temp
AS $$
BEGIN
    IF pg_catalog.current_setting('application_name') OPERATOR(pg_catalog.<>) 'pg_restore' THEN
        RETURN NULL;
    END IF;
    INSERT INTO neon_budget._month_spend AS t (billing_month, slot, cost, tokens, executions)
    SELECT r.billing_month, 0, sum(r.cost), sum(r.tokens), sum(r.executions) FROM new_rows r GROUP BY r.billing_month
    ON CONFLICT (billing_month, slot) DO UPDATE
       SET cost = t.cost OPERATOR(pg_catalog.+) EXCLUDED.cost, tokens = t.tokens OPERATOR(pg_catalog.+) EXCLUDED.tokens,
           executions = t.executions OPERATOR(pg_catalog.+) EXCLUDED.executions;
    INSERT INTO neon_budget._campaign_spend AS t (campaign_id, billing_month, slot, cost, tokens, executions)
    SELECT r.campaign_id, r.billing_month, 0, sum(r.cost), sum(r.tokens), sum(r.executions) FROM new_rows r
     WHERE r.campaign_id OPERATOR(pg_catalog.<>) '' GROUP BY r.campaign_id, r.billing_month
    ON CONFLICT (campaign_id, billing_month, slot) DO UPDATE
       SET cost = t.cost OPERATOR(pg_catalog.+) EXCLUDED.cost, tokens = t.tokens OPERATOR(pg_catalog.+) EXCLUDED.tokens,
           executions = t.executions OPERATOR(pg_catalog.+) EXCLUDED.executions;
    INSERT INTO neon_budget._agent_spend AS t (agent_type, billing_month, slot, cost, tokens, executions, successes, failures,
           quality_sum, quality_count, retry_sum, execution_time_sum, execution_time_count)
    SELECT r.agent_type, r.billing_month, 0, sum(r.cost), sum(r.tokens), sum(r.executions), sum(r.successes), sum(r.failures),
           sum(r.quality_sum), sum(r.quality_count), sum(r.retry_sum), sum(r.execution_time_sum), sum(r.execution_time_count)
      FROM new_rows r GROUP BY r.agent_type, r.billing_month
    ON CONFLICT (agent_type, billing_month, slot) DO UPDATE
       SET cost = t.cost OPERATOR(pg_catalog.+) EXCLUDED.cost, tokens = t.tokens OPERATOR(pg_catalog.+) EXCLUDED.tokens,
           executions = t.executions OPERATOR(pg_catalog.+) EXCLUDED.executions,
           successes = t.successes OPERATOR(pg_catalog.+) EXCLUDED.successes,
           failures = t.failures OPERATOR(pg_catalog.+) EXCLUDED.failures,
           quality_sum = t.quality_sum OPERATOR(pg_catalog.+) EXCLUDED.quality_sum,
           quality_count = t.quality_count OPERATOR(pg_catalog.+) EXCLUDED.quality_count,
           retry_sum = t.retry_sum OPERATOR(pg_catalog.+) EXCLUDED.retry_sum,
           execution_time_sum = t.execution_time_sum OPERATOR(pg_catalog.+) EXCLUDED.execution_time_sum,
           execution_time_count = t.execution_time_count OPERATOR(pg_catalog.+) EXCLUDED.execution_time_count;
    RETURN NULL;
END
$$;

CREATE TRIGGER purged_spend_restored
    AFTER INSERT ON neon_budget.purged_spend REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION neon_budget._purged_spend_restored();

-- Money is finite: NaN and Infinity (which numeric can hold since PostgreSQL 14) are refused.
ALTER TABLE neon_budget.agent_rate DROP CONSTRAINT agent_rate_cost_per_1k_tokens_check,
  ADD CONSTRAINT agent_rate_cost_per_1k_tokens_check CHECK (cost_per_1k_tokens >= 0 AND cost_per_1k_tokens < 'Infinity');
ALTER TABLE neon_budget.campaign DROP CONSTRAINT campaign_monthly_budget_check,
  ADD CONSTRAINT campaign_monthly_budget_check CHECK (monthly_budget > 0 AND monthly_budget < 'Infinity');
ALTER TABLE neon_budget.monthly_budget_setting DROP CONSTRAINT monthly_budget_setting_total_budget_check,
  ADD CONSTRAINT monthly_budget_setting_total_budget_check CHECK (total_budget > 0 AND total_budget < 'Infinity');
ALTER TABLE neon_budget.billing_log DROP CONSTRAINT billing_log_cost_check,
  ADD CONSTRAINT billing_log_cost_check CHECK (cost >= 0 AND cost < 'Infinity');
ALTER TABLE neon_budget.reservation DROP CONSTRAINT reservation_estimated_cost_check,
  ADD CONSTRAINT reservation_estimated_cost_check CHECK (estimated_cost >= 0 AND estimated_cost < 'Infinity');

-- A created_at without a billing month (infinite, or BC) is refused with 22008.
CREATE OR REPLACE FUNCTION neon_budget._billing_log_set_month() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, neon_budget, pg_temp
AS $$
BEGIN
    IF NEW.created_at IN ('infinity', '-infinity')
       OR pg_catalog.date_part('year', NEW.created_at AT TIME ZONE neon_budget._timezone()) < 1 THEN
        RAISE EXCEPTION 'created_at % has no billing month', NEW.created_at
              USING ERRCODE = '22008',
                    HINT = 'Use a finite time from the year 1 to 9999, or leave created_at out for now().';
    END IF;
    NEW.billing_month := pg_catalog.to_char(NEW.created_at AT TIME ZONE neon_budget._timezone(), 'YYYY-MM');
    RETURN NEW;
END
$$;

-- Roles, SECURITY DEFINER with a pinned search_path, and least-privilege grants (as sql/finalize.sql).
-- ---------------------------------------------------------------------------------------------
-- Roles and privileges. Three NOLOGIN roles (created if missing; roles are cluster-wide and
-- outlive DROP EXTENSION): neon_budget_reader (views, budget_check, budget_report),
-- neon_budget_writer (reader + track_cost and reservations), neon_budget_admin (writer + the
-- admin functions, alert_log, audit_log and the tables). PUBLIC gets nothing.
-- Functions that write run SECURITY DEFINER with search_path pinned to
-- pg_catalog, neon_budget, pg_temp, so a caller's objects can never shadow what they call.
-- ---------------------------------------------------------------------------------------------
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'neon_budget_reader') THEN
        CREATE ROLE neon_budget_reader NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'neon_budget_writer') THEN
        CREATE ROLE neon_budget_writer NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'neon_budget_admin') THEN
        CREATE ROLE neon_budget_admin NOLOGIN;
    END IF;
END
$roles$;
GRANT neon_budget_reader TO neon_budget_writer;
GRANT neon_budget_writer TO neon_budget_admin;

-- Backend caches of rates, budgets and alert levels (track_cost's fast path) are told to
-- forget what they know when those tables change.
CREATE FUNCTION neon_budget."_budget_settings_changed"()
	RETURNS TRIGGER
	LANGUAGE c
	AS 'MODULE_PATHNAME', '_budget_settings_changed_wrapper';
DO $settings_triggers$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['monthly_budget_setting', 'campaign', 'alert_state', 'agent_rate'] LOOP
        EXECUTE pg_catalog.format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON neon_budget.%I
                                   FOR EACH ROW EXECUTE FUNCTION neon_budget._budget_settings_changed()', t || '_changed', t);
        EXECUTE pg_catalog.format('CREATE TRIGGER %I AFTER TRUNCATE ON neon_budget.%I
                                   FOR EACH STATEMENT EXECUTE FUNCTION neon_budget._budget_settings_changed()', t || '_truncated', t);
    END LOOP;
END
$settings_triggers$;

-- budget_check and the aggregate trigger run as their caller now (budget_check reads without
-- SQL; the trigger's fast path writes with the heap API); what they do in SQL runs as the
-- extension's owner with the pinned search_path (src/owner.rs): no longer SECURITY DEFINER.
DO $invoker$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN
        SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
         WHERE p.pronamespace = 'neon_budget'::regnamespace AND p.proname IN ('budget_check', '_billing_log_changed')
    LOOP
        EXECUTE pg_catalog.format('ALTER FUNCTION %s SECURITY INVOKER RESET ALL', f);
    END LOOP;
END
$invoker$;

DO $definer$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN
        SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
         WHERE p.pronamespace = 'neon_budget'::regnamespace
           AND p.proname IN ('track_cost', 'budget_report', 'budget_reserve', 'budget_release',
                             'set_monthly_budget', 'set_campaign', 'set_agent_rate', 'set_budget_override',
                             '_ensure_month', '_check_alerts', '_billing_log_set_month',
                             'budget_verify', 'budget_rebuild', 'anonymize_before', 'purge_before',
                             '_purged_spend_restored')
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
GRANT SELECT ON neon_budget.monthly_budget, neon_budget.campaign_cost, neon_budget.agent_cost,
                neon_budget.monthly_overview, neon_budget.campaign_breakdown, neon_budget.agent_analytics,
                neon_budget.campaign, neon_budget.agent_rate, neon_budget.monthly_budget_setting
   TO neon_budget_reader;
DO $reader$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN
        SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p
         WHERE p.pronamespace = 'neon_budget'::regnamespace
           AND p.proname IN ('budget_check', 'budget_report', '_status', '_current_month', '_timezone')
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
           AND p.proname IN ('set_monthly_budget', 'set_campaign', 'set_agent_rate', 'set_budget_override',
                             'budget_verify', 'budget_rebuild', 'anonymize_before', 'purge_before')
    LOOP
        EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO neon_budget_admin', f);
    END LOOP;
END
$reader$;
GRANT SELECT ON ALL TABLES IN SCHEMA neon_budget TO neon_budget_admin;
GRANT INSERT ON neon_budget.billing_log TO neon_budget_admin;
