-- neon_budget 0.2.0 -> 0.3.0 (ALTER EXTENSION neon_budget UPDATE TO '0.3.0').
-- 0.2.0 is the schema of commit 1aa258a. Every schema change since then is here, in the order it
-- was made; a fresh install of 0.3.0 and 0.2.0 + this script give the same objects
-- (scripts/upgrade_test.sh compares the catalogs).
\echo Use "ALTER EXTENSION neon_budget UPDATE TO '0.3.0'" to load this file. \quit

-- Readers follow alerts: alert_log holds no task or metadata (neon-budget listen as a reader).
-- (Revoked from the admin and granted again so that the ACL reads as a fresh install's.)
REVOKE SELECT ON neon_budget.alert_log FROM neon_budget_admin;
GRANT SELECT ON neon_budget.alert_log TO neon_budget_reader;
GRANT SELECT ON neon_budget.alert_log TO neon_budget_admin;

-- ---------------------------------------------------------------------------------------------
-- Admin setters keep what they were not given; clear_campaign_budget lifts a cap explicitly.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION neon_budget."set_monthly_budget"(
	"month" TEXT, /* Option < & str > */
	"total_budget" NUMERIC DEFAULT NULL, /* Option < AnyNumeric > */
	"alert_threshold" NUMERIC DEFAULT NULL /* Option < AnyNumeric > */
) RETURNS void
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'set_monthly_budget_wrapper';
CREATE OR REPLACE FUNCTION neon_budget."set_campaign"(
	"campaign_id" TEXT, /* Option < & str > */
	"name" TEXT DEFAULT NULL, /* Option < & str > */
	"campaign_type" TEXT DEFAULT NULL, /* Option < & str > */
	"monthly_budget" NUMERIC DEFAULT NULL /* Option < AnyNumeric > */
) RETURNS void
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'set_campaign_wrapper';
-- CREATE OR REPLACE resets SECURITY DEFINER and SET: restore them as finalize.sql sets them.
ALTER FUNCTION neon_budget.set_monthly_budget(text, numeric, numeric) SECURITY DEFINER SET search_path = pg_catalog, neon_budget, pg_temp;
ALTER FUNCTION neon_budget.set_campaign(text, text, text, numeric) SECURITY DEFINER SET search_path = pg_catalog, neon_budget, pg_temp;
CREATE FUNCTION neon_budget."clear_campaign_budget"(
	"campaign_id" TEXT /* Option < & str > */
) RETURNS void
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'clear_campaign_budget_wrapper';
ALTER FUNCTION neon_budget.clear_campaign_budget(text) SECURITY DEFINER SET search_path = pg_catalog, neon_budget, pg_temp;
REVOKE EXECUTE ON FUNCTION neon_budget.clear_campaign_budget(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION neon_budget.clear_campaign_budget(text) TO neon_budget_admin;

-- ---------------------------------------------------------------------------------------------
-- budget_report gets a C symbol of its own (src/schema_version.rs): the old one is a shim that
-- tells a database not yet updated to run ALTER EXTENSION ... UPDATE.
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION neon_budget."budget_report"(
	"month" TEXT DEFAULT NULL, /* Option < & str > */
	"format" TEXT DEFAULT 'md' /* Option < & str > */
) RETURNS TEXT /* String */
STABLE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'budget_report_v3_wrapper';
ALTER FUNCTION neon_budget.budget_report(text, text) SECURITY DEFINER SET search_path = pg_catalog, neon_budget, pg_temp;

-- ---------------------------------------------------------------------------------------------
-- Restores are recognised by what only a superuser can be, not by application_name
-- (src/restore.rs).
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION neon_budget."_restoring"() RETURNS bool /* bool */
STRICT VOLATILE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'restoring_sql_wrapper';
REVOKE EXECUTE ON FUNCTION neon_budget._restoring() FROM PUBLIC;
CREATE OR REPLACE FUNCTION neon_budget._purged_spend_restored() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, neon_budget, pg_temp
AS $$
BEGIN
    -- Only a restore (src/restore.rs: a superuser session with row_security off, never
    -- purge_before) adds purged sums back; purge_before moved them out of the aggregates itself.
    IF NOT neon_budget._restoring() THEN
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
ALTER FUNCTION neon_budget._purged_spend_restored() SECURITY DEFINER SET search_path = pg_catalog, neon_budget, pg_temp;

-- ---------------------------------------------------------------------------------------------
-- track_cost's rules on every entry path: the BEFORE INSERT trigger in Rust
-- (src/before_insert.rs) replaces the plpgsql one that only set the billing month.
-- ---------------------------------------------------------------------------------------------
DROP TRIGGER billing_log_set_month ON neon_budget.billing_log;
DROP FUNCTION neon_budget._billing_log_set_month();
CREATE FUNCTION neon_budget."_billing_log_before_insert"()
	RETURNS TRIGGER
	LANGUAGE c
	AS 'MODULE_PATHNAME', '_billing_log_before_insert_wrapper';
REVOKE EXECUTE ON FUNCTION neon_budget._billing_log_before_insert() FROM PUBLIC;
CREATE TRIGGER billing_log_before_insert
    BEFORE INSERT ON neon_budget.billing_log
    FOR EACH ROW EXECUTE FUNCTION neon_budget._billing_log_before_insert();

-- ---------------------------------------------------------------------------------------------
-- Documentation of the changed functions (sql/comments.sql).
-- ---------------------------------------------------------------------------------------------
COMMENT ON FUNCTION neon_budget.track_cost(text, bigint, text, text, text, double precision, boolean, double precision, integer, bigint, jsonb, numeric, timestamptz, bigint) IS
$$Records one agent execution and returns its billing_log row.
Arguments: agent_type, tokens (count), campaign_id, task, execution_id, impact_score and quality_score (0..1), conversion_achieved, retry_count, execution_time_ms (ms), metadata (jsonb), cost (dollars; when NULL: tokens / 1000 x the agent type's current rate, exact), created_at (default now(); its month in neon_budget.timezone is the billing month), reservation_id (settles a budget_reserve reservation in the same transaction).
The same execution_id twice records once and returns the first row, also after retention: an anonymized row is returned, a purged one gives NULL (a keyed digest of the id is kept). Never refused for being over budget (ask budget_check first). Returns NULL and records nothing when neon_budget.enabled is off.
Errors: 22004 NULL agent_type/tokens; 22003 negative tokens, cost, retry_count or execution_time_ms, or a score outside 0..1; 22023 empty agent_type; 42704 agent type without a rate (see set_agent_rate); 22001 campaign_id or execution_id over 200 characters, agent_type over 100; 22008 created_at with no billing month or more than neon_budget.max_clock_skew ahead of the clock; 42501 reservation_id made by another role; 40001 its execution_id was anonymized or purged while it ran (retry the call).$$;

COMMENT ON FUNCTION neon_budget.budget_check(text, text, bigint) IS
$$May an execution run now? Arguments: campaign_id, agent_type, estimated_tokens (priced at the agent type's current rate).
Returns one row: can_execute, status (ok, warning, critical, exceeded), month (YYYY-MM), total_budget, total_spent, remaining (dollars, after live reservations), utilization_percentage, override_enabled, campaign_id, campaign_budget (NULL = no limit), campaign_spent, estimated_cost, reserved, campaign_reserved (dollars).
can_execute is false when the current month's or the campaign's spend plus live reservations has reached its budget or would pass it with the estimate, unless the override is on. Reads only the maintained aggregates and live reservations.
Errors: 22003 negative estimated_tokens; 22023 estimated_tokens without agent_type; 42704 unknown agent type; 22001 campaign_id over 200 characters or agent_type over 100.$$;

COMMENT ON FUNCTION neon_budget.set_monthly_budget(text, numeric, numeric) IS
$$Sets a month's (YYYY-MM) total budget in dollars and its alert threshold in (0,1]. An argument left out (NULL) keeps the month's value (a new month: the GUC defaults). Any change re-arms and re-evaluates the alert levels of the month and of every campaign in it; levels the change makes reached are sent when it commits. Writes audit_log.
Errors: 22007 malformed month; 22023 budget <= 0 or threshold outside (0,1]; 22004 NULL month.$$;

COMMENT ON FUNCTION neon_budget.set_campaign(text, text, text, numeric) IS
$$Creates or updates a campaign: campaign_id, name, campaign_type, monthly_budget in dollars. An argument left out (NULL) keeps the stored value, so a rename never lifts a cap; a new campaign without a budget has no limit. Remove a budget with clear_campaign_budget(campaign_id). A budget change re-arms and re-evaluates the campaign's alert levels. Writes audit_log.
Errors: 22004 NULL campaign_id, or NULL name for a new campaign; 22023 empty campaign_id or budget <= 0; 22001 campaign_id, name or campaign_type over 200 characters.$$;

COMMENT ON FUNCTION neon_budget.clear_campaign_budget(text) IS
$$Removes a campaign's monthly budget: it has no limit (never blocks, never alerts) until set_campaign gives it one again. Writes audit_log.
Errors: 22004 NULL campaign_id; 22023 empty campaign_id; 22001 campaign_id over 200 characters; 42704 no such campaign.$$;

COMMENT ON FUNCTION neon_budget.set_agent_rate(text, numeric) IS
$$Sets an agent type's rate in dollars per 1,000 tokens, effective now; recorded costs never change. Writes audit_log.
Errors: 22004 NULL argument; 22023 empty agent type or negative rate; 22001 agent type over 100 characters.$$;

COMMENT ON FUNCTION neon_budget.set_budget_override(boolean, text) IS
$$Turns the emergency override of the current month on (a reason is required) or off (without a reason the last one stays on record). While on, budget_check allows executions past every budget; alerts still fire. Writes audit_log.
Errors: 22004 NULL enabled; 22023 on without a reason; 22001 reason over 1,000 characters.$$;

COMMENT ON FUNCTION neon_budget.budget_reserve(text, bigint, text, interval, numeric) IS
$$Reserves an execution's estimated cost (estimated_cost dollars, or estimated_tokens at the agent type's rate) against the current month's and the campaign's budget for ttl (default 15 minutes); returns the reservation id for track_cost(reservation_id => id) or budget_release(id). Reservations of a month are decided one at a time, so concurrent ones never jointly pass a budget.
Errors: 53000 the budget cannot cover it (figures in the detail); 22003 negative tokens or cost; 22023 ttl not positive; 42704 unknown agent type; 22001 campaign_id over 200 characters or agent_type over 100; 0A000 in a REPEATABLE READ or SERIALIZABLE transaction.$$;

COMMENT ON FUNCTION neon_budget.budget_release(bigint) IS
$$Cancels a reservation. Returns true when it was live, false when unknown, settled, released or expired. Only the role that made it or a neon_budget_admin may release it (or settle it with track_cost).
Errors: 42501 reservation made by another role.$$;

-- ---------------------------------------------------------------------------------------------
-- Execution ids after retention (src/execution_ids.rs): keyed digests of anonymized and purged ids.
-- Rows anonymized by 0.2.0 lost their ids (execution_id NULL); nothing can bring those back.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE neon_budget._execution_id_key (
    id  integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    key bytea   NOT NULL CHECK (pg_catalog.length(key) >= 32)
);
COMMENT ON TABLE neon_budget._execution_id_key IS
  'The key of the keyed digests (HMAC-SHA-256) of anonymized and purged execution ids; one row, readable only by the extension''s owner (src/execution_ids.rs).';
INSERT INTO neon_budget._execution_id_key (key)
VALUES (pg_catalog.decode(pg_catalog.replace(pg_catalog.gen_random_uuid()::text || pg_catalog.gen_random_uuid()::text, '-', ''), 'hex'));

CREATE TABLE neon_budget.purged_execution_id (
    digest        text        PRIMARY KEY,
    billing_month text        NOT NULL,
    purged_at     timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE neon_budget.purged_execution_id IS
  'Keyed digests (nb-anon:...) of the execution ids of rows deleted by purge_before(): a retry of one of them records nothing.';

SELECT pg_catalog.pg_extension_config_dump('neon_budget._execution_id_key', '');
SELECT pg_catalog.pg_extension_config_dump('neon_budget.purged_execution_id', '');
REVOKE ALL ON neon_budget._execution_id_key FROM PUBLIC;
REVOKE ALL ON neon_budget.purged_execution_id FROM PUBLIC;
GRANT SELECT ON neon_budget.purged_execution_id TO neon_budget_admin;
CREATE FUNCTION neon_budget."_execution_digest"(
	"execution_id" TEXT /* &str */
) RETURNS TEXT /* alloc::string::String */
STRICT VOLATILE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'execution_digest_sql_wrapper';
REVOKE EXECUTE ON FUNCTION neon_budget._execution_digest(text) FROM PUBLIC;
CREATE FUNCTION neon_budget._execution_id_key_restored() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, neon_budget, pg_temp
AS $$
BEGIN
    UPDATE neon_budget._execution_id_key k SET key = NEW.key WHERE k.id OPERATOR(pg_catalog.=) NEW.id;
    IF FOUND THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER execution_id_key_restored
    BEFORE INSERT ON neon_budget._execution_id_key
    FOR EACH ROW EXECUTE FUNCTION neon_budget._execution_id_key_restored();
REVOKE EXECUTE ON FUNCTION neon_budget._execution_id_key_restored() FROM PUBLIC;

COMMENT ON FUNCTION neon_budget.anonymize_before(timestamptz) IS
$$Clears task and metadata of billing_log rows created before the cutoff and replaces each execution_id by its keyed digest (nb-anon:..., so a retry still records once); returns the rows changed. Totals do not change. Writes audit_log. Admin only. Errors: 22004 NULL.$$;

COMMENT ON FUNCTION neon_budget.purge_before(timestamptz) IS
$$Deletes billing_log rows created before the cutoff; returns the rows deleted. Monthly, campaign and agent totals do not change (the purged sums move to purged_spend, the execution ids' keyed digests to purged_execution_id). Writes audit_log. Admin only. Errors: 22004 NULL.$$;

-- ---------------------------------------------------------------------------------------------
-- The per-day aggregate (_day_spend, the daily_cost view): reports' daily spend survives
-- purge_before. Backfilled from billing_log; rows purged by 0.2.0 have no day on record, so a
-- month purged before this upgrade shows only its remaining rows per day.
-- ---------------------------------------------------------------------------------------------
CREATE  FUNCTION neon_budget."_billing_day"(
	"created_at" timestamp with time zone
) RETURNS TEXT
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'billing_day_sql_wrapper';
REVOKE EXECUTE ON FUNCTION neon_budget._billing_day(timestamptz) FROM PUBLIC;
CREATE TABLE neon_budget._day_spend (
    billing_month text    NOT NULL,
    billing_day   text    NOT NULL,
    slot          integer NOT NULL,
    cost          numeric NOT NULL,
    tokens        numeric NOT NULL,
    executions    bigint  NOT NULL,
    PRIMARY KEY (billing_month, billing_day, slot)
) WITH (fillfactor = 50);
COMMENT ON TABLE neon_budget._day_spend IS
  'Spend per billing month and day (YYYY-MM-DD of created_at in neon_budget.timezone, fixed when a row is written) and slot: cost in dollars, tokens, executions (see the daily_cost view).';

-- What purge_before removed from billing_log per month and day: the per-day aggregate keeps it.
CREATE TABLE neon_budget.purged_day_spend (
    billing_month text    NOT NULL,
    billing_day   text    NOT NULL,
    cost          numeric NOT NULL,
    tokens        numeric NOT NULL,
    executions    bigint  NOT NULL,
    PRIMARY KEY (billing_month, billing_day)
);
COMMENT ON TABLE neon_budget.purged_day_spend IS
  'Sums (dollars, tokens, executions) of billing_log rows deleted by purge_before(), per month and day; the per-day aggregate still includes them.';
SELECT pg_catalog.pg_extension_config_dump('neon_budget.purged_day_spend', '');
REVOKE ALL ON neon_budget._day_spend FROM PUBLIC;
REVOKE ALL ON neon_budget.purged_day_spend FROM PUBLIC;
GRANT SELECT ON neon_budget._day_spend, neon_budget.purged_day_spend TO neon_budget_admin;
INSERT INTO neon_budget._day_spend (billing_month, billing_day, slot, cost, tokens, executions)
SELECT b.billing_month, neon_budget._billing_day(b.created_at), 0, sum(b.cost), sum(b.tokens), count(*)
  FROM neon_budget.billing_log b GROUP BY 1, 2;
-- The same for the per-day sums in purged_day_spend.
CREATE FUNCTION neon_budget._purged_day_spend_restored() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, neon_budget, pg_temp
AS $$
BEGIN
    IF NOT neon_budget._restoring() THEN
        RETURN NULL;
    END IF;
    INSERT INTO neon_budget._day_spend AS t (billing_month, billing_day, slot, cost, tokens, executions)
    SELECT r.billing_month, r.billing_day, 0, sum(r.cost), sum(r.tokens), sum(r.executions) FROM new_rows r
     GROUP BY r.billing_month, r.billing_day
    ON CONFLICT (billing_month, billing_day, slot) DO UPDATE
       SET cost = t.cost OPERATOR(pg_catalog.+) EXCLUDED.cost, tokens = t.tokens OPERATOR(pg_catalog.+) EXCLUDED.tokens,
           executions = t.executions OPERATOR(pg_catalog.+) EXCLUDED.executions;
    RETURN NULL;
END
$$;

CREATE TRIGGER purged_day_spend_restored
    AFTER INSERT ON neon_budget.purged_day_spend REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION neon_budget._purged_day_spend_restored();
ALTER FUNCTION neon_budget._purged_day_spend_restored() SECURITY DEFINER SET search_path = pg_catalog, neon_budget, pg_temp;
REVOKE EXECUTE ON FUNCTION neon_budget._purged_day_spend_restored() FROM PUBLIC;
CREATE VIEW neon_budget.daily_cost AS
SELECT s.billing_month AS month, s.billing_day AS day,
       sum(s.cost) AS total_cost, sum(s.tokens) AS total_tokens, sum(s.executions)::bigint AS executions
  FROM neon_budget._day_spend s
 GROUP BY s.billing_month, s.billing_day
HAVING sum(s.executions) <> 0 OR sum(s.cost) <> 0;
COMMENT ON VIEW neon_budget.daily_cost IS
  'Per billing month (YYYY-MM) and day (YYYY-MM-DD in neon_budget.timezone, fixed when written): total cost (dollars), tokens and executions, maintained from billing_log; purge_before keeps them.';
REVOKE ALL ON neon_budget.daily_cost FROM PUBLIC;
GRANT SELECT ON neon_budget.daily_cost TO neon_budget_reader;
GRANT SELECT ON neon_budget.daily_cost TO neon_budget_admin;

COMMENT ON SCHEMA neon_budget IS
$$neon_budget: track and cap what AI agents spend (billing log, budgets, alerts, reports); see the README.
Errors any function may raise: 42501 a role without the privilege; 25006 a writing function on a standby or in a READ ONLY transaction; 55000 this database's neon_budget objects are older than the installed library (run ALTER EXTENSION neon_budget UPDATE).$$;

COMMENT ON TABLE neon_budget.billing_log IS
$$One row per agent execution. cost is dollars (numeric), tokens a count, billing_month the YYYY-MM it counts toward (fixed when written, in neon_budget.timezone).
Direct INSERT and COPY (neon_budget_admin) follow track_cost's rules; errors: 23514 a CHECK constraint; 23505 an execution_id recorded already (also one anonymized or purged since); 22001, 22008, 42704 as track_cost.$$;
