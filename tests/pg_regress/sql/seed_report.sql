-- The seed's sample report, reproduced through the SQL API: 156 CONTENT executions totalling
-- 2,230,750 tokens in "Marketing Campaign Q1" (CONTENT_GENERATION, $200.00 budget) at the
-- seed's $0.04 / 1K tokens, in January 2024 against a $1,000.00 month.
--
-- The seed prints "Avg Cost/Execution: $0.0572" next to these figures, but $89.23 / 156 is
-- $0.57199...: the seed's figure is off by a factor of ten, and the report prints $0.5720.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS neon_budget CASCADE;
CREATE EXTENSION neon_budget;
RESET client_min_messages;
SELECT neon_budget.set_campaign('mcq1', 'Marketing Campaign Q1', 'CONTENT_GENERATION', 200);
SELECT neon_budget.set_monthly_budget('2024-01', 1000);
-- The seed's rate.
SELECT cost_per_1k_tokens FROM neon_budget.agent_rate WHERE agent_type = 'CONTENT';
-- 155 executions of 14,300 tokens ($0.572 each) on the 15th, one of 14,250 ($0.57) on the 31st.
WITH r AS MATERIALIZED (
  SELECT neon_budget.track_cost('CONTENT', 14300, campaign_id => 'mcq1', created_at => '2024-01-15 12:00+00') AS row
    FROM generate_series(1, 155))
SELECT count(*), sum((row).cost), sum((row).tokens) FROM r;
SELECT cost, tokens, billing_month
  FROM neon_budget.track_cost('CONTENT', 14250, campaign_id => 'mcq1', created_at => '2024-01-31 12:00+00');

-- The maintained aggregates and the views the dashboard reads.
SELECT total_budget, total_spent, total_tokens, executions, alert_threshold, alert_levels_sent
  FROM neon_budget.monthly_budget WHERE month = '2024-01';
SELECT total_budget, total_spent, utilization_percentage, remaining, total_executions, status
  FROM neon_budget.monthly_overview WHERE month = '2024-01';
SELECT campaign_id, month, trim_scale(total_cost) AS total_cost, total_tokens, executions
  FROM neon_budget.campaign_cost WHERE campaign_id = 'mcq1';
SELECT name, campaign_type, total_cost, monthly_budget, utilization_percentage, total_tokens, executions
  FROM neon_budget.campaign_breakdown WHERE month = '2024-01';
SELECT agent_type, total_cost, executions, avg_cost, total_tokens
  FROM neon_budget.agent_analytics WHERE month = '2024-01';
SELECT day, total_cost, total_tokens, executions FROM neon_budget.daily_cost WHERE month = '2024-01' ORDER BY day;

\pset format unaligned
\pset tuples_only on
-- The report in Markdown (the default format).
SELECT neon_budget.budget_report('2024-01');
-- The same in JSON, exact numbers (every day of the month is listed; those with spend shown).
SELECT jsonb_pretty(neon_budget.budget_report('2024-01', 'json')::jsonb - 'daily');
SELECT d FROM jsonb_array_elements(neon_budget.budget_report('2024-01', 'json')::jsonb -> 'daily') d
 WHERE (d ->> 'executions')::int > 0;
SELECT jsonb_array_length(neon_budget.budget_report('2024-01', 'json')::jsonb -> 'daily') AS days;
-- And in CSV, lines ended by CRLF (RFC 4180): the header, the overview, campaign and agent
-- rows, and the days with spend.
SELECT count(*) AS csv_lines FROM regexp_split_to_table(neon_budget.budget_report('2024-01', 'csv'), E'\r\n') l
 WHERE l <> '';
SELECT neon_budget.budget_report('2024-01', 'csv') ~ E'^[^\r]*(\r\n[^\r\n]*)*\r\n$' AS crlf_only;
SELECT string_agg(line, E'\n' ORDER BY n)
  FROM regexp_split_to_table(neon_budget.budget_report('2024-01', 'csv'), E'\r\n') WITH ORDINALITY AS l(line, n)
 WHERE line <> '' AND (line NOT LIKE 'day,%' OR line NOT LIKE '%,0,0,,,,,,,,');
\pset format aligned
\pset tuples_only off

-- Reports read only: a report of a month never used writes no month row.
SELECT neon_budget.budget_report('2024-02') LIKE E'# Budget Report - 2024-02\n%' AS report_of_an_unused_month;
SELECT (SELECT count(*) FROM neon_budget.billing_log) AS log_rows,
       (SELECT count(*) FROM neon_budget.monthly_budget_setting) AS month_rows,
       (SELECT count(*) FROM neon_budget.alert_log) AS alerts;

-- The aggregate oracle: every maintained aggregate equals the log.
SELECT * FROM neon_budget.budget_verify();
