-- neon_budget: aggregate maintenance and alerts (runs after the Rust functions are created).
--
-- Statement-level AFTER triggers with transition tables fold every INSERT (single-row, multi-row,
-- COPY), UPDATE, DELETE and TRUNCATE of billing_log into the per-slot aggregate tables in the
-- same transaction, so a rollback (or ROLLBACK TO SAVEPOINT) undoes the aggregates with the rows.
-- Each statement touches each aggregate key once, whatever its row count.

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

-- Sends one alert: alert_log row plus NOTIFY neon_budget_alerts, in the current transaction.
CREATE FUNCTION _send_alert(p_scope text, p_campaign_id text, p_month text, p_level text,
                            p_spent numeric, p_budget numeric) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, neon_budget, pg_temp
AS $$
DECLARE
    v_id bigint;
    v_utilization numeric := pg_catalog.round(p_spent OPERATOR(pg_catalog./) p_budget OPERATOR(pg_catalog.*) 100, 2);
BEGIN
    INSERT INTO neon_budget.alert_log (scope, campaign_id, month, level, spent, budget, utilization)
    VALUES (p_scope, p_campaign_id, p_month, p_level, p_spent, p_budget, v_utilization)
    RETURNING id INTO v_id;
    PERFORM pg_catalog.pg_notify('neon_budget_alerts',
        neon_budget._alert_payload(v_id, p_scope, p_campaign_id, p_month, p_level, p_spent, p_budget, v_utilization));
END
$$;

-- Checks the alert levels of one scope and month and sends each level that is reached and not
-- yet sent, exactly once: the level is first looked up without a lock (the common case: already
-- sent, nothing to do), and only then claimed with a conditional upsert of alert_state, which a
-- concurrent claimant of the same level waits on and then skips.
CREATE FUNCTION _check_alerts(p_scope text, p_key text, p_month text, p_spent numeric,
                              p_budget numeric, p_threshold numeric) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, neon_budget, pg_temp
AS $$
DECLARE
    v_sent  text[];
    v_level text;
    v_claimed boolean;
BEGIN
    IF p_budget IS NULL THEN
        RETURN;
    END IF;
    SELECT s.levels_sent INTO v_sent FROM neon_budget.alert_state s
     WHERE s.scope = p_scope AND s.scope_key = p_key AND s.month = p_month;
    FOREACH v_level IN ARRAY neon_budget._reached_levels(p_spent, p_budget, p_threshold) LOOP
        CONTINUE WHEN v_sent IS NOT NULL AND v_level = ANY (v_sent);
        INSERT INTO neon_budget.alert_state AS s (scope, scope_key, month, levels_sent)
        VALUES (p_scope, p_key, p_month, ARRAY[v_level])
        ON CONFLICT (scope, scope_key, month) DO UPDATE
           SET levels_sent = s.levels_sent OPERATOR(pg_catalog.||) EXCLUDED.levels_sent
         WHERE NOT (v_level OPERATOR(pg_catalog.=) ANY (s.levels_sent))
        RETURNING true INTO v_claimed;
        IF v_claimed THEN
            PERFORM neon_budget._send_alert(p_scope, NULLIF(p_key, ''), p_month, v_level, p_spent, p_budget);
        END IF;
        v_claimed := false;
    END LOOP;
END
$$;

-- Applies grouped deltas to the aggregates of this backend's slot, then checks alerts for every
-- month and campaign the deltas touch.
CREATE FUNCTION _apply_deltas(p_deltas neon_budget._spend_delta[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, neon_budget, pg_temp
AS $$
DECLARE
    v_slot integer := neon_budget._slot();
    r record;
BEGIN
    IF p_deltas IS NULL OR pg_catalog.cardinality(p_deltas) = 0 THEN
        RETURN;
    END IF;

    INSERT INTO neon_budget._month_spend AS t (billing_month, slot, cost, tokens, executions)
    SELECT d.billing_month, v_slot, sum(d.cost), sum(d.tokens), sum(d.executions)::bigint
      FROM pg_catalog.unnest(p_deltas) d
     GROUP BY d.billing_month
    ON CONFLICT (billing_month, slot) DO UPDATE
       SET cost = t.cost OPERATOR(pg_catalog.+) EXCLUDED.cost,
           tokens = t.tokens OPERATOR(pg_catalog.+) EXCLUDED.tokens,
           executions = t.executions OPERATOR(pg_catalog.+) EXCLUDED.executions;

    INSERT INTO neon_budget._campaign_spend AS t (campaign_id, billing_month, slot, cost, tokens, executions)
    SELECT d.campaign_id, d.billing_month, v_slot, sum(d.cost), sum(d.tokens), sum(d.executions)::bigint
      FROM pg_catalog.unnest(p_deltas) d
     WHERE d.campaign_id IS NOT NULL
     GROUP BY d.campaign_id, d.billing_month
    ON CONFLICT (campaign_id, billing_month, slot) DO UPDATE
       SET cost = t.cost OPERATOR(pg_catalog.+) EXCLUDED.cost,
           tokens = t.tokens OPERATOR(pg_catalog.+) EXCLUDED.tokens,
           executions = t.executions OPERATOR(pg_catalog.+) EXCLUDED.executions;

    INSERT INTO neon_budget._agent_spend AS t (agent_type, billing_month, slot, cost, tokens, executions,
           successes, failures, quality_sum, quality_count, retry_sum, execution_time_sum, execution_time_count)
    SELECT d.agent_type, d.billing_month, v_slot, sum(d.cost), sum(d.tokens), sum(d.executions)::bigint,
           sum(d.successes)::bigint, sum(d.failures)::bigint, sum(d.quality_sum), sum(d.quality_count)::bigint,
           sum(d.retry_sum), sum(d.execution_time_sum), sum(d.execution_time_count)::bigint
      FROM pg_catalog.unnest(p_deltas) d
     GROUP BY d.agent_type, d.billing_month
    ON CONFLICT (agent_type, billing_month, slot) DO UPDATE
       SET cost = t.cost OPERATOR(pg_catalog.+) EXCLUDED.cost,
           tokens = t.tokens OPERATOR(pg_catalog.+) EXCLUDED.tokens,
           executions = t.executions OPERATOR(pg_catalog.+) EXCLUDED.executions,
           successes = t.successes OPERATOR(pg_catalog.+) EXCLUDED.successes,
           failures = t.failures OPERATOR(pg_catalog.+) EXCLUDED.failures,
           quality_sum = t.quality_sum OPERATOR(pg_catalog.+) EXCLUDED.quality_sum,
           quality_count = t.quality_count OPERATOR(pg_catalog.+) EXCLUDED.quality_count,
           retry_sum = t.retry_sum OPERATOR(pg_catalog.+) EXCLUDED.retry_sum,
           execution_time_sum = t.execution_time_sum OPERATOR(pg_catalog.+) EXCLUDED.execution_time_sum,
           execution_time_count = t.execution_time_count OPERATOR(pg_catalog.+) EXCLUDED.execution_time_count;

    -- Month scope: every touched month gets its settings row, then its levels are checked.
    FOR r IN SELECT DISTINCT d.billing_month FROM pg_catalog.unnest(p_deltas) d LOOP
        IF NOT EXISTS (SELECT 1 FROM neon_budget.monthly_budget_setting s WHERE s.month = r.billing_month) THEN
            PERFORM neon_budget._ensure_month(r.billing_month);
        END IF;
        PERFORM neon_budget._check_alerts('month', '', s.month,
                    (SELECT COALESCE(sum(m.cost), 0) FROM neon_budget._month_spend m WHERE m.billing_month = s.month),
                    s.total_budget, s.alert_threshold)
           FROM neon_budget.monthly_budget_setting s
          WHERE s.month = r.billing_month;
    END LOOP;

    -- Campaign scope: only campaigns with a budget alert, at the month's threshold.
    PERFORM neon_budget._check_alerts('campaign', c.campaign_id, x.billing_month,
                (SELECT COALESCE(sum(cs.cost), 0) FROM neon_budget._campaign_spend cs
                  WHERE cs.campaign_id = c.campaign_id AND cs.billing_month = x.billing_month),
                c.monthly_budget, s.alert_threshold)
       FROM (SELECT DISTINCT d.campaign_id, d.billing_month FROM pg_catalog.unnest(p_deltas) d
              WHERE d.campaign_id IS NOT NULL) x
       JOIN neon_budget.campaign c ON c.campaign_id = x.campaign_id
       JOIN neon_budget.monthly_budget_setting s ON s.month = x.billing_month
      WHERE c.monthly_budget IS NOT NULL;
END
$$;

-- One trigger function for INSERT, UPDATE and DELETE: rows of the NEW transition table count
-- +1, rows of the OLD one -1, grouped by (month, campaign, agent type); an UPDATE that changes no
-- aggregated column produces no delta.
CREATE FUNCTION _billing_log_changed() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, neon_budget, pg_temp
AS $$
DECLARE
    v_deltas neon_budget._spend_delta[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT pg_catalog.array_agg(d::neon_budget._spend_delta) INTO v_deltas FROM (
            SELECT r.billing_month, r.campaign_id, r.agent_type,
                   sum(r.s * r.cost) AS cost, sum(r.s * r.tokens) AS tokens, sum(r.s) AS executions,
                   COALESCE(sum(r.s) FILTER (WHERE r.conversion_achieved), 0) AS successes,
                   COALESCE(sum(r.s) FILTER (WHERE NOT r.conversion_achieved), 0) AS failures,
                   COALESCE(sum(r.s * r.quality_score::numeric), 0) AS quality_sum,
                   COALESCE(sum(r.s) FILTER (WHERE r.quality_score IS NOT NULL), 0) AS quality_count,
                   COALESCE(sum(r.s * r.retry_count), 0) AS retry_sum,
                   COALESCE(sum(r.s * r.execution_time_ms), 0) AS execution_time_sum,
                   COALESCE(sum(r.s) FILTER (WHERE r.execution_time_ms IS NOT NULL), 0) AS execution_time_count
              FROM (SELECT 1 AS s, n.* FROM new_rows n) r
             GROUP BY r.billing_month, r.campaign_id, r.agent_type) d
         WHERE (d.cost, d.tokens, d.executions, d.successes, d.failures, d.quality_sum, d.quality_count,
                d.retry_sum, d.execution_time_sum, d.execution_time_count)
               <> (0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    ELSIF TG_OP = 'DELETE' THEN
        SELECT pg_catalog.array_agg(d::neon_budget._spend_delta) INTO v_deltas FROM (
            SELECT r.billing_month, r.campaign_id, r.agent_type,
                   sum(r.s * r.cost) AS cost, sum(r.s * r.tokens) AS tokens, sum(r.s) AS executions,
                   COALESCE(sum(r.s) FILTER (WHERE r.conversion_achieved), 0) AS successes,
                   COALESCE(sum(r.s) FILTER (WHERE NOT r.conversion_achieved), 0) AS failures,
                   COALESCE(sum(r.s * r.quality_score::numeric), 0) AS quality_sum,
                   COALESCE(sum(r.s) FILTER (WHERE r.quality_score IS NOT NULL), 0) AS quality_count,
                   COALESCE(sum(r.s * r.retry_count), 0) AS retry_sum,
                   COALESCE(sum(r.s * r.execution_time_ms), 0) AS execution_time_sum,
                   COALESCE(sum(r.s) FILTER (WHERE r.execution_time_ms IS NOT NULL), 0) AS execution_time_count
              FROM (SELECT -1 AS s, o.* FROM old_rows o) r
             GROUP BY r.billing_month, r.campaign_id, r.agent_type) d
         WHERE (d.cost, d.tokens, d.executions, d.successes, d.failures, d.quality_sum, d.quality_count,
                d.retry_sum, d.execution_time_sum, d.execution_time_count)
               <> (0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    ELSE
        SELECT pg_catalog.array_agg(d::neon_budget._spend_delta) INTO v_deltas FROM (
            SELECT r.billing_month, r.campaign_id, r.agent_type,
                   sum(r.s * r.cost) AS cost, sum(r.s * r.tokens) AS tokens, sum(r.s) AS executions,
                   COALESCE(sum(r.s) FILTER (WHERE r.conversion_achieved), 0) AS successes,
                   COALESCE(sum(r.s) FILTER (WHERE NOT r.conversion_achieved), 0) AS failures,
                   COALESCE(sum(r.s * r.quality_score::numeric), 0) AS quality_sum,
                   COALESCE(sum(r.s) FILTER (WHERE r.quality_score IS NOT NULL), 0) AS quality_count,
                   COALESCE(sum(r.s * r.retry_count), 0) AS retry_sum,
                   COALESCE(sum(r.s * r.execution_time_ms), 0) AS execution_time_sum,
                   COALESCE(sum(r.s) FILTER (WHERE r.execution_time_ms IS NOT NULL), 0) AS execution_time_count
              FROM (SELECT 1 AS s, n.* FROM new_rows n UNION ALL SELECT -1 AS s, o.* FROM old_rows o) r
             GROUP BY r.billing_month, r.campaign_id, r.agent_type) d
         WHERE (d.cost, d.tokens, d.executions, d.successes, d.failures, d.quality_sum, d.quality_count,
                d.retry_sum, d.execution_time_sum, d.execution_time_count)
               <> (0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    END IF;
    PERFORM neon_budget._apply_deltas(v_deltas);
    RETURN NULL;
END
$$;

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
CREATE FUNCTION _billing_log_truncated() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, neon_budget, pg_temp
AS $$
BEGIN
    DELETE FROM neon_budget._month_spend;
    DELETE FROM neon_budget._campaign_spend;
    DELETE FROM neon_budget._agent_spend;
    RETURN NULL;
END
$$;

CREATE TRIGGER billing_log_after_truncate
    AFTER TRUNCATE ON billing_log
    FOR EACH STATEMENT EXECUTE FUNCTION _billing_log_truncated();

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
