-- neon_budget: triggers and views (runs after the Rust functions are created).
--
-- Statement-level AFTER triggers with transition tables fold every INSERT (single-row, multi-row,
-- COPY), UPDATE, DELETE and TRUNCATE of billing_log into the per-slot aggregate tables in the
-- same transaction (src/triggers.rs), so a rollback (or ROLLBACK TO SAVEPOINT) undoes the
-- aggregates with the rows. Each statement touches each aggregate row once, whatever its row count.

-- The billing month of a row, fixed when it is written: YYYY-MM of created_at in
-- neon_budget.timezone. Skipped (WHEN clause) when the writer already set billing_month.
CREATE FUNCTION _billing_log_set_month() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, neon_budget, pg_temp
AS $$
BEGIN
    NEW.billing_month := pg_catalog.to_char(NEW.created_at AT TIME ZONE neon_budget._timezone(), 'YYYY-MM');
    RETURN NEW;
END
$$;

CREATE TRIGGER billing_log_set_month
    BEFORE INSERT ON billing_log
    FOR EACH ROW WHEN (NEW.billing_month IS NULL)
    EXECUTE FUNCTION _billing_log_set_month();

-- The aggregate trigger function neon_budget._billing_log_changed() is written in Rust
-- (src/triggers.rs): one statement-level trigger per event, with transition tables.
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

-- ---------------------------------------------------------------------------------------------
-- Views: the maintained aggregates and the admin dashboard's panels
-- ---------------------------------------------------------------------------------------------

CREATE VIEW campaign_cost AS
SELECT s.campaign_id, s.billing_month AS month,
       sum(s.cost) AS total_cost, sum(s.tokens) AS total_tokens, sum(s.executions)::bigint AS executions
  FROM _campaign_spend s
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
  FROM _agent_spend s
 GROUP BY s.agent_type, s.billing_month
HAVING sum(s.executions) <> 0;
COMMENT ON VIEW agent_cost IS
  'Per agent type and month (YYYY-MM): cost (dollars), tokens, executions, successes/failures (conversion_achieved) and the sums behind average quality, retries and execution time (ms).';

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
          FROM _month_spend m WHERE m.billing_month = b.month) sp ON true
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
