-- Database of the isolation specs (scripts/isolation.sh): the extension and two test helpers.
CREATE EXTENSION neon_budget;

-- Empties every neon_budget table (the TRUNCATE trigger empties the aggregates with the log).
CREATE FUNCTION public.nb_test_reset() RETURNS void LANGUAGE sql AS $$
  TRUNCATE neon_budget.billing_log;
  DELETE FROM neon_budget.reservation;
  DELETE FROM neon_budget.alert_log;
  DELETE FROM neon_budget.alert_state;
  DELETE FROM neon_budget.audit_log;
  DELETE FROM neon_budget.campaign;
  DELETE FROM neon_budget.monthly_budget_setting;
  DELETE FROM neon_budget.purged_spend;
  DELETE FROM neon_budget.purged_day_spend;
  DELETE FROM neon_budget.purged_campaign_agent_day_spend;
  DELETE FROM neon_budget.purged_execution_id;
  DELETE FROM neon_budget._anomaly_scan;
$$;

-- The aggregate oracle: true when every maintained aggregate equals a fresh GROUP BY over
-- billing_log, compared both ways with EXCEPT ALL.
CREATE FUNCTION public.nb_test_oracle() RETURNS boolean LANGUAGE sql AS $$
  WITH fm AS (SELECT billing_month, sum(cost) c, sum(tokens)::numeric t, count(*)::numeric n FROM neon_budget.billing_log GROUP BY 1),
       km AS (SELECT month, total_spent, total_tokens::numeric, executions::numeric FROM neon_budget.monthly_budget WHERE executions <> 0),
       fc AS (SELECT campaign_id, billing_month, sum(cost) c, sum(tokens)::numeric t, count(*)::numeric n FROM neon_budget.billing_log WHERE campaign_id IS NOT NULL GROUP BY 1, 2),
       kc AS (SELECT campaign_id, month, total_cost, total_tokens::numeric, executions::numeric FROM neon_budget.campaign_cost),
       fa AS (SELECT agent_type, billing_month, sum(cost) c, count(*)::numeric n FROM neon_budget.billing_log GROUP BY 1, 2),
       ka AS (SELECT agent_type, month, total_cost, executions::numeric FROM neon_budget.agent_cost)
  SELECT NOT EXISTS (SELECT * FROM fm EXCEPT ALL SELECT * FROM km)
     AND NOT EXISTS (SELECT * FROM km EXCEPT ALL SELECT * FROM fm)
     AND NOT EXISTS (SELECT * FROM fc EXCEPT ALL SELECT * FROM kc)
     AND NOT EXISTS (SELECT * FROM kc EXCEPT ALL SELECT * FROM fc)
     AND NOT EXISTS (SELECT * FROM fa EXCEPT ALL SELECT * FROM ka)
     AND NOT EXISTS (SELECT * FROM ka EXCEPT ALL SELECT * FROM fa);
$$;
