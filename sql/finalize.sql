-- neon_budget: triggers and views (runs after the Rust functions are created).
--
-- Statement-level AFTER triggers with transition tables fold every INSERT (single-row, multi-row,
-- COPY), UPDATE, DELETE and TRUNCATE of billing_log into the per-slot aggregate tables in the
-- same transaction (src/write/trigger.rs), so a rollback (or ROLLBACK TO SAVEPOINT) undoes the
-- aggregates with the rows. Each statement touches each aggregate row once, whatever its row count.

-- Every row inserted by a direct INSERT or COPY gets track_cost's rules (src/write/before_insert.rs):
-- identifier lengths, the created_at window, a cost priced from its tokens when it has none,
-- and its billing month (YYYY-MM of created_at in neon_budget.timezone) when none is given.
CREATE TRIGGER billing_log_before_insert
    BEFORE INSERT ON billing_log
    FOR EACH ROW EXECUTE FUNCTION _billing_log_before_insert();

-- The aggregate trigger function neon_budget._billing_log_changed() is written in Rust
-- (src/write/trigger.rs): one statement-level trigger per event, with transition tables.
CREATE TRIGGER billing_log_after_insert
    AFTER INSERT ON billing_log REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION _billing_log_changed();
CREATE TRIGGER billing_log_after_update
    AFTER UPDATE ON billing_log REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION _billing_log_changed();
CREATE TRIGGER billing_log_after_delete
    AFTER DELETE ON billing_log REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION _billing_log_changed();

-- TRUNCATE billing_log empties every aggregate with it.
CREATE TRIGGER billing_log_after_truncate
    AFTER TRUNCATE ON billing_log
    FOR EACH STATEMENT EXECUTE FUNCTION _billing_log_changed();

-- Rates, budgets, thresholds and alert levels sent are cached by each writing backend (to price
-- a call, and to decide when a write must read the totals: src/write/scope_cache.rs); any change to
-- them tells every backend to forget its cache (a relcache invalidation of alert_state, sent at
-- commit). Row triggers, so that a statement that changes nothing (ON CONFLICT DO NOTHING when
-- the month exists) invalidates nothing.
DO $settings_triggers$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['monthly_budget_setting', 'campaign', 'alert_state', 'agent_rate', 'model_price'] LOOP
        EXECUTE pg_catalog.format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON neon_budget.%I
                                   FOR EACH ROW EXECUTE FUNCTION neon_budget._budget_settings_changed()', t || '_changed', t);
        EXECUTE pg_catalog.format('CREATE TRIGGER %I AFTER TRUNCATE ON neon_budget.%I
                                   FOR EACH STATEMENT EXECUTE FUNCTION neon_budget._budget_settings_changed()', t || '_truncated', t);
    END LOOP;
END
$settings_triggers$;

-- pg_restore loads purged_spend after billing_log; the aggregate trigger rebuilt the
-- aggregates from the log alone, so the purged sums are added back as they arrive. Outside a
-- restore (purge_before) the aggregates already hold them.
CREATE FUNCTION _purged_spend_restored() RETURNS trigger
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

CREATE TRIGGER purged_spend_restored
    AFTER INSERT ON purged_spend REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION _purged_spend_restored();

-- The same for the per-day sums in purged_day_spend.
CREATE FUNCTION _purged_day_spend_restored() RETURNS trigger
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
    AFTER INSERT ON purged_day_spend REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION _purged_day_spend_restored();

-- The same for the per-campaign, per-agent daily sums in purged_campaign_agent_day_spend.
CREATE FUNCTION _purged_campaign_agent_day_spend_restored() RETURNS trigger
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
    AFTER INSERT ON purged_campaign_agent_day_spend REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION _purged_campaign_agent_day_spend_restored();

-- pg_restore loads the dump's key into _execution_id_key, where CREATE EXTENSION put a new one:
-- the dump's key replaces it (the anonymized ids of the dump were digested with it).
CREATE FUNCTION _execution_id_key_restored() RETURNS trigger
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
    BEFORE INSERT ON _execution_id_key
    FOR EACH ROW EXECUTE FUNCTION _execution_id_key_restored();

-- ---------------------------------------------------------------------------------------------
-- Views: the maintained aggregates and the admin dashboard's panels
-- ---------------------------------------------------------------------------------------------

-- The slot tables' rows visible to the statement, read newest first (src/api/internal.rs,
-- slot_rows): the views read them through these, so that they stay fast while a long-held
-- snapshot keeps every old version of the slot rows that each write updates.
CREATE FUNCTION _month_spend_rows() RETURNS SETOF _month_spend
    LANGUAGE c STABLE PARALLEL RESTRICTED ROWS 64 AS 'MODULE_PATHNAME', 'slot_rows';
CREATE FUNCTION _campaign_spend_rows() RETURNS SETOF _campaign_spend
    LANGUAGE c STABLE PARALLEL RESTRICTED ROWS 256 AS 'MODULE_PATHNAME', 'slot_rows';
CREATE FUNCTION _agent_spend_rows() RETURNS SETOF _agent_spend
    LANGUAGE c STABLE PARALLEL RESTRICTED ROWS 256 AS 'MODULE_PATHNAME', 'slot_rows';
CREATE FUNCTION _day_spend_rows() RETURNS SETOF _day_spend
    LANGUAGE c STABLE PARALLEL RESTRICTED ROWS 256 AS 'MODULE_PATHNAME', 'slot_rows';
COMMENT ON FUNCTION _month_spend_rows() IS
  'Internal: the rows of _month_spend visible to the statement, read newest first (src/api/internal.rs); the views read the slot tables through it.';
COMMENT ON FUNCTION _campaign_spend_rows() IS
  'Internal: the rows of _campaign_spend visible to the statement, read newest first (src/api/internal.rs); the views read the slot tables through it.';
COMMENT ON FUNCTION _agent_spend_rows() IS
  'Internal: the rows of _agent_spend visible to the statement, read newest first (src/api/internal.rs); the views read the slot tables through it.';
COMMENT ON FUNCTION _day_spend_rows() IS
  'Internal: the rows of _day_spend visible to the statement, read newest first (src/api/internal.rs); the views read the slot tables through it.';

CREATE FUNCTION _campaign_agent_day_spend_rows() RETURNS SETOF _campaign_agent_day_spend
    LANGUAGE c STABLE PARALLEL RESTRICTED ROWS 1024 AS 'MODULE_PATHNAME', 'slot_rows';
COMMENT ON FUNCTION _campaign_agent_day_spend_rows() IS
  'Internal: the rows of _campaign_agent_day_spend visible to the statement, read newest first (src/api/internal.rs); the views read the slot tables through it.';

CREATE VIEW campaign_cost AS
SELECT s.campaign_id, s.billing_month AS month,
       sum(s.cost) AS total_cost, sum(s.tokens) AS total_tokens, sum(s.executions)::bigint AS executions
  FROM _campaign_spend_rows() s
 GROUP BY s.campaign_id, s.billing_month
HAVING sum(s.executions) <> 0;
COMMENT ON VIEW campaign_cost IS
  'Per campaign and month (YYYY-MM): total cost (dollars), tokens and executions, maintained from billing_log.';

CREATE VIEW agent_cost AS
SELECT s.agent_type, s.billing_month AS month,
       sum(s.cost) AS total_cost, sum(s.tokens) AS total_tokens, sum(s.executions)::bigint AS executions,
       sum(s.successes)::bigint AS successes, sum(s.failures)::bigint AS failures,
       sum(s.quality_sum) AS quality_sum, sum(s.quality_count)::bigint AS quality_count,
       sum(s.retry_sum) AS retry_sum,
       sum(s.execution_time_sum) AS execution_time_ms_sum, sum(s.execution_time_count)::bigint AS execution_time_count
  FROM _agent_spend_rows() s
 GROUP BY s.agent_type, s.billing_month
HAVING sum(s.executions) <> 0;
COMMENT ON VIEW agent_cost IS
  'Per agent type and month (YYYY-MM): cost (dollars), tokens, executions, successes/failures (conversion_achieved) and the sums behind average quality, retries and execution time (ms).';

CREATE VIEW daily_cost AS
SELECT s.billing_month AS month, s.billing_day AS day,
       sum(s.cost) AS total_cost, sum(s.tokens) AS total_tokens, sum(s.executions)::bigint AS executions
  FROM _day_spend_rows() s
 GROUP BY s.billing_month, s.billing_day
HAVING sum(s.executions) <> 0 OR sum(s.cost) <> 0;
COMMENT ON VIEW daily_cost IS
  'Per billing month (YYYY-MM) and day (YYYY-MM-DD in neon_budget.timezone, fixed when written): total cost (dollars), tokens and executions, maintained from billing_log; purge_before keeps them.';

CREATE VIEW campaign_agent_daily_cost AS
SELECT s.campaign_key AS campaign_id, s.agent_type, s.billing_month AS month, s.billing_day AS day,
       sum(s.cost) AS total_cost, sum(s.tokens) AS total_tokens, sum(s.executions)::bigint AS executions
  FROM _campaign_agent_day_spend_rows() s
 GROUP BY s.campaign_key, s.agent_type, s.billing_month, s.billing_day
HAVING sum(s.executions) <> 0 OR sum(s.cost) <> 0;
COMMENT ON VIEW campaign_agent_daily_cost IS
  'Per campaign (campaign_id, '''' for executions without one), agent type, billing month (YYYY-MM) and day (YYYY-MM-DD in neon_budget.timezone, fixed when written): total cost (dollars), tokens and executions, maintained from billing_log; purge_before keeps them (for rows purged from 0.5.0 on).';

CREATE VIEW campaign_daily_cost AS
SELECT v.campaign_id, v.month, v.day, sum(v.total_cost) AS total_cost, sum(v.total_tokens) AS total_tokens,
       sum(v.executions)::bigint AS executions
  FROM campaign_agent_daily_cost v
 WHERE v.campaign_id <> ''
 GROUP BY v.campaign_id, v.month, v.day;
COMMENT ON VIEW campaign_daily_cost IS
  'Per campaign, billing month (YYYY-MM) and day (YYYY-MM-DD): total cost (dollars), tokens and executions (campaign_agent_daily_cost summed over agent types).';

CREATE VIEW agent_daily_cost AS
SELECT v.agent_type, v.month, v.day, sum(v.total_cost) AS total_cost, sum(v.total_tokens) AS total_tokens,
       sum(v.executions)::bigint AS executions
  FROM campaign_agent_daily_cost v
 GROUP BY v.agent_type, v.month, v.day;
COMMENT ON VIEW agent_daily_cost IS
  'Per agent type, billing month (YYYY-MM) and day (YYYY-MM-DD): total cost (dollars), tokens and executions (campaign_agent_daily_cost summed over campaigns).';

CREATE VIEW write_path_stats AS
SELECT s.path, s.reason, sum(s.writes)::bigint AS writes, max(s.last_write) AS last_write
  FROM _write_path_stats s
 GROUP BY s.path, s.reason;
COMMENT ON VIEW write_path_stats IS
  'Which path writes to billing_log took, per database: path heap (track_cost wrote the row with the heap API) or sql (an SQL INSERT), the reason (track_cost: why it could not take the heap path, e.g. a CHECK constraint the extension did not create; or INSERT or COPY), rows written and the last write. Approximate: each backend adds its counts at most once a second. Admin only.';

CREATE VIEW blocked_executions AS
SELECT pg_catalog.left(b.billing_day, 7) AS month, b.billing_day AS day, b.decision, b.scope,
       NULLIF(b.scope_key, '') AS campaign_id, b.reason,
       sum(b.blocked)::bigint AS executions_blocked, max(b.last_blocked) AS last_blocked
  FROM _blocked_count b
 GROUP BY b.billing_day, b.decision, b.scope, b.scope_key, b.reason;
COMMENT ON VIEW blocked_executions IS
  'Executions blocked: refused budget_check answers (can_execute = false) and budget_reserve calls (53000), per month, day (YYYY-MM-DD in neon_budget.timezone), decision, scope (month, or campaign with campaign_id), reason (budget_reached: spend plus reservations had reached the budget; estimate_too_large: the estimate would pass it). A refusal counts under each scope that refused it. Counted by the refusing backend and written at once, or by its next call in a read-write transaction, or when it exits; refusals on a standby are not counted (src/write/blocked.rs).';

CREATE VIEW monthly_budget AS
SELECT b.month, b.total_budget,
       COALESCE(sp.total_spent, 0) AS total_spent,
       COALESCE(sp.total_tokens, 0) AS total_tokens,
       COALESCE(sp.executions, 0) AS executions,
       b.alert_threshold,
       COALESCE(a.levels_sent, '{}') AS alert_levels_sent,
       b.override_enabled, b.override_reason, b.updated_at
  FROM monthly_budget_setting b
  LEFT JOIN LATERAL (
        SELECT sum(m.cost) AS total_spent, sum(m.tokens) AS total_tokens, sum(m.executions)::bigint AS executions
          FROM _month_spend_rows() m WHERE m.billing_month = b.month) sp ON true
  LEFT JOIN alert_state a ON a.scope = 'month' AND a.scope_key = '' AND a.month = b.month;
COMMENT ON VIEW monthly_budget IS
  'Per month (YYYY-MM): total budget and total spent (dollars), tokens, executions, alert threshold (0..1], alert levels already sent and the override state.';

CREATE VIEW monthly_overview AS
SELECT mb.month, mb.total_budget, mb.total_spent,
       pg_catalog.round(mb.total_spent / mb.total_budget * 100, 1) AS utilization_percentage,
       mb.total_budget - mb.total_spent AS remaining,
       mb.executions AS total_executions,
       neon_budget._status(mb.total_spent, mb.total_budget, mb.alert_threshold) AS status,
       mb.override_enabled
  FROM monthly_budget mb;
COMMENT ON VIEW monthly_overview IS
  'Admin dashboard, monthly overview: budget vs spent (dollars), utilization (%), remaining, executions and status (ok, warning, critical, exceeded).';

CREATE VIEW campaign_breakdown AS
SELECT cc.month, cc.campaign_id, c.name, c.campaign_type, cc.total_cost, c.monthly_budget,
       CASE WHEN c.monthly_budget IS NOT NULL
            THEN pg_catalog.round(cc.total_cost / c.monthly_budget * 100, 1) END AS utilization_percentage,
       cc.total_tokens, cc.executions
  FROM campaign_cost cc
  LEFT JOIN campaign c ON c.campaign_id = cc.campaign_id;
COMMENT ON VIEW campaign_breakdown IS
  'Admin dashboard, campaign management: cost per campaign and month against its monthly budget (dollars, NULL = no limit), utilization (%).';

CREATE VIEW agent_analytics AS
SELECT ac.month, ac.agent_type, ac.total_cost, ac.executions,
       CASE WHEN ac.successes + ac.failures > 0
            THEN pg_catalog.round(ac.successes::numeric / (ac.successes + ac.failures) * 100, 1) END AS success_rate,
       pg_catalog.round(ac.total_cost / ac.executions, 4) AS avg_cost,
       ac.total_tokens,
       CASE WHEN ac.quality_count > 0 THEN pg_catalog.round(ac.quality_sum / ac.quality_count, 3) END AS avg_quality,
       pg_catalog.round(ac.retry_sum / ac.executions, 2) AS avg_retries,
       CASE WHEN ac.execution_time_count > 0
            THEN pg_catalog.round(ac.execution_time_ms_sum / ac.execution_time_count, 1) END AS avg_execution_time_ms
  FROM agent_cost ac;
COMMENT ON VIEW agent_analytics IS
  'Admin dashboard, agent analytics per month and agent type: cost (dollars), executions, success rate (% of executions that report conversion_achieved), average cost per execution, tokens, average quality, retries and execution time (ms).';
