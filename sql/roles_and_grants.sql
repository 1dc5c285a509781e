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
