-- Scenarios from the field (SCENARIOS.md) that are SQL at heart, each in months of its own,
-- with the exact values. 1 (concurrent reservations) and 5's NOTIFY side are isolation specs
-- and integration tests; 4 (month rollover) is month_rollover.sql.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS neon_budget CASCADE;
CREATE EXTENSION neon_budget;
RESET client_min_messages;
\set VERBOSITY sqlstate

-- 2. Rolled back spend: every aggregate unchanged, no alert sent or logged.
SELECT neon_budget.set_monthly_budget('2024-02', 1);
BEGIN;
SELECT cost FROM neon_budget.track_cost('CONTENT', 1, cost => 0.9, created_at => '2024-02-10 12:00+00');
SELECT total_spent, alert_levels_sent FROM neon_budget.monthly_budget WHERE month = '2024-02';
ROLLBACK;
BEGIN;
SELECT cost FROM neon_budget.track_cost('CONTENT', 1, cost => 0.1, created_at => '2024-02-11 12:00+00');
SAVEPOINT s;
SELECT cost FROM neon_budget.track_cost('CONTENT', 1, cost => 0.85, created_at => '2024-02-12 12:00+00');
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT total_spent, executions, alert_levels_sent FROM neon_budget.monthly_budget WHERE month = '2024-02';
SELECT count(*) AS alerts FROM neon_budget.alert_log WHERE month = '2024-02';
SELECT day, total_cost FROM neon_budget.daily_cost WHERE month = '2024-02';

-- 3. The same execution reported twice records one row and counts once; a superuser's UPDATE
-- of a logged cost changes every aggregate by exactly the difference.
SELECT neon_budget.set_monthly_budget('2024-03', 100);
SELECT neon_budget.set_campaign('a', 'A', NULL, 50);
SELECT id AS run7 FROM neon_budget.track_cost('CONTENT', 1000, campaign_id => 'a', execution_id => 'run-7',
                                            created_at => '2024-03-05 12:00+00') \gset
SELECT id = :run7 AS same_row, cost
  FROM neon_budget.track_cost('CONTENT', 1000, campaign_id => 'a', execution_id => 'run-7', created_at => '2024-03-05 12:00+00');
SELECT cost FROM neon_budget.track_cost('SEO', 2000, campaign_id => 'b', created_at => '2024-03-06 12:00+00');
SELECT cost FROM neon_budget.track_cost('CONTENT', 500, campaign_id => 'a', created_at => '2024-03-07 12:00+00');
-- A retry with other figures (a later transaction) still returns the first row, unchanged.
SELECT id = :run7 AS same_row, tokens, cost
  FROM neon_budget.track_cost('CONTENT', 9999, campaign_id => 'a', execution_id => 'run-7', created_at => '2024-03-08 12:00+00');
SELECT count(*) AS rows, count(*) FILTER (WHERE execution_id = 'run-7') AS run7_rows
  FROM neon_budget.billing_log WHERE billing_month = '2024-03';
SELECT total_spent, total_tokens, executions FROM neon_budget.monthly_budget WHERE month = '2024-03';
SELECT campaign_id, total_cost, total_tokens, executions FROM neon_budget.campaign_cost WHERE month = '2024-03' ORDER BY 1;
SELECT agent_type, total_cost, executions FROM neon_budget.agent_cost WHERE month = '2024-03' ORDER BY 1;
-- The correction: 0.04 -> 0.29 (+0.25 on the month, campaign a and CONTENT; nothing on b, SEO).
UPDATE neon_budget.billing_log SET cost = 0.29 WHERE execution_id = 'run-7';
SELECT total_spent, total_tokens, executions FROM neon_budget.monthly_budget WHERE month = '2024-03';
SELECT campaign_id, total_cost, total_tokens, executions FROM neon_budget.campaign_cost WHERE month = '2024-03' ORDER BY 1;
SELECT agent_type, total_cost, executions FROM neon_budget.agent_cost WHERE month = '2024-03' ORDER BY 1;
SELECT day, total_cost FROM neon_budget.daily_cost WHERE month = '2024-03' ORDER BY day;
SELECT cost FROM neon_budget.track_cost('CONTENT', 1000, execution_id => 'run-7');

-- 5. Alert storms: spend reaches 81% of the month's budget, twenty small executions follow:
-- exactly one warning for the month.
SELECT neon_budget.set_monthly_budget('2024-05', 100);
SELECT cost FROM neon_budget.track_cost('CONTENT', 1, cost => 81, created_at => '2024-05-10 12:00+00');
SELECT count(*) FROM (SELECT neon_budget.track_cost('CONTENT', 250, created_at => '2024-05-11 12:00+00')
                        FROM generate_series(1, 20)) t;
SELECT total_spent, executions, alert_levels_sent FROM neon_budget.monthly_budget WHERE month = '2024-05';
SELECT scope, campaign_id, level, spent, budget, utilization FROM neon_budget.alert_log WHERE month = '2024-05' ORDER BY id;

-- 6. Failures cost money: a failed execution with retries counts its whole cost toward every
-- budget, and as a failure in the success rate.
SELECT neon_budget.set_monthly_budget('2024-06', 100);
SELECT neon_budget.set_campaign('c6', 'Six', NULL, 10);
SELECT cost FROM neon_budget.track_cost('CONTENT', 5000, campaign_id => 'c6', conversion_achieved => false, retry_count => 2,
                                        created_at => '2024-06-10 12:00+00');
SELECT cost FROM neon_budget.track_cost('CONTENT', 2500, campaign_id => 'c6', conversion_achieved => true, retry_count => 0,
                                        created_at => '2024-06-11 12:00+00');
SELECT total_cost, executions FROM neon_budget.campaign_cost WHERE campaign_id = 'c6';
SELECT trim_scale(total_cost) AS total_cost, executions, success_rate, avg_retries, trim_scale(avg_cost) AS avg_cost
  FROM neon_budget.agent_analytics WHERE agent_type = 'CONTENT' AND month = '2024-06';
SELECT successes, failures, retry_sum FROM neon_budget.agent_cost WHERE agent_type = 'CONTENT' AND month = '2024-06';
SELECT line FROM regexp_split_to_table(neon_budget.budget_report('2024-06'), E'\n') line
 WHERE line IN ('- Success Rate: 50.0%', '- Total Spent: $0.30');
-- A failed execution's cost takes the campaign to its cap just like a successful one.
SELECT cost FROM neon_budget.track_cost('CONTENT', 1, campaign_id => 'c6', cost => 9.7, conversion_achieved => false,
                                        retry_count => 2, created_at => '2024-06-12 12:00+00');
SELECT total_cost, monthly_budget, utilization_percentage FROM neon_budget.campaign_breakdown WHERE campaign_id = 'c6';
SELECT c ->> 'status' AS campaign_status
  FROM jsonb_array_elements(neon_budget.budget_report('2024-06', 'json')::jsonb -> 'campaigns') c;
SELECT success_rate FROM neon_budget.agent_analytics WHERE agent_type = 'CONTENT' AND month = '2024-06';
SELECT level, spent FROM neon_budget.alert_log WHERE scope = 'campaign' AND campaign_id = 'c6' ORDER BY id;

-- 7. No budget means no limit: a campaign without a monthly_budget never alerts, however much
-- it spends, and still shows its spend in reports.
SELECT neon_budget.set_monthly_budget('2024-07', 1000000);
SELECT neon_budget.set_campaign('free', 'Free', 'OUTREACH');
SELECT count(*) FROM (SELECT neon_budget.track_cost('DESIGN', 1000000, campaign_id => 'free', created_at => '2024-07-10 12:00+00')
                        FROM generate_series(1, 50)) t;
SELECT name, campaign_type, total_cost, monthly_budget, utilization_percentage, executions
  FROM neon_budget.campaign_breakdown WHERE campaign_id = 'free';
SELECT count(*) AS campaign_alerts FROM neon_budget.alert_log WHERE scope = 'campaign' AND campaign_id = 'free';
SELECT count(*) AS campaign_alert_state FROM neon_budget.alert_state WHERE scope = 'campaign' AND scope_key = 'free';
SELECT line FROM regexp_split_to_table(neon_budget.budget_report('2024-07'), E'\n') WITH ORDINALITY AS l(line, n)
 WHERE n BETWEEN 13 AND 18;

-- 8. Other entry paths: a plain multi-row INSERT (then an UPDATE) and COPY into billing_log
-- update every aggregate exactly as track_cost does; a row without a cost is priced at the
-- agent's rate.
SELECT cost FROM neon_budget.track_cost('CONTENT', 1000, campaign_id => 'e', conversion_achieved => true, quality_score => 0.5,
                                        created_at => '2024-08-10 12:00+00');
SELECT cost FROM neon_budget.track_cost('SEO', 3000, campaign_id => 'e', conversion_achieved => false, retry_count => 1,
                                        created_at => '2024-08-11 12:00+00');
SELECT cost FROM neon_budget.track_cost('DESIGN', 7, cost => 1.5, execution_time_ms => 120, created_at => '2024-08-12 12:00+00');
INSERT INTO neon_budget.billing_log (agent_type, tokens, campaign_id, conversion_achieved, quality_score, created_at)
VALUES ('CONTENT', 1000, 'e', true, 0.5, '2024-09-10 12:00+00'),
       ('SEO', 3000, 'e', false, NULL, '2024-09-11 12:00+00');
UPDATE neon_budget.billing_log SET retry_count = 1 WHERE billing_month = '2024-09' AND agent_type = 'SEO';
COPY neon_budget.billing_log (agent_type, tokens, cost, execution_time_ms, created_at) FROM STDIN WITH (FORMAT csv);
DESIGN,7,1.5,120,2024-09-12 12:00+00
\.
SELECT agent_type, cost FROM neon_budget.billing_log WHERE billing_month = '2024-09' ORDER BY id;
-- The same figures in both months, in every aggregate.
SELECT month, total_spent, total_tokens, executions FROM neon_budget.monthly_budget WHERE month IN ('2024-08', '2024-09') ORDER BY 1;
SELECT campaign_id, month, total_cost, total_tokens, executions FROM neon_budget.campaign_cost WHERE campaign_id = 'e' ORDER BY 2;
SELECT month, agent_type, total_cost, total_tokens, executions, successes, failures, quality_sum, quality_count, retry_sum,
       execution_time_ms_sum, execution_time_count
  FROM neon_budget.agent_cost WHERE month IN ('2024-08', '2024-09') ORDER BY agent_type, month;
SELECT (SELECT jsonb_agg(d) FROM jsonb_array_elements(neon_budget.budget_report('2024-08', 'json')::jsonb -> 'agents') d)
     = (SELECT jsonb_agg(d) FROM jsonb_array_elements(neon_budget.budget_report('2024-09', 'json')::jsonb -> 'agents') d)
       AS same_agent_report;

-- 9. Exact money: three executions of $0.10 make exactly $0.30, as provider costs and as
-- 2,500 CONTENT tokens at $0.04 / 1K.
SELECT count(*) FROM (SELECT neon_budget.track_cost('CONTENT', 1, cost => 0.10, campaign_id => 'p', created_at => '2024-10-10 12:00+00')
                        FROM generate_series(1, 3)) t;
SELECT count(*) FROM (SELECT neon_budget.track_cost('CONTENT', 2500, campaign_id => 'r', created_at => '2024-11-10 12:00+00')
                        FROM generate_series(1, 3)) t;
SELECT month, total_spent, trim_scale(total_spent)::text AS exactly FROM neon_budget.monthly_budget
 WHERE month IN ('2024-10', '2024-11') ORDER BY 1;
SELECT campaign_id, total_cost FROM neon_budget.campaign_cost WHERE campaign_id IN ('p', 'r') ORDER BY 1;
SELECT line FROM regexp_split_to_table(neon_budget.budget_report('2024-10') || neon_budget.budget_report('2024-11'), E'\n') line
 WHERE line LIKE '- Total Spent:%';
-- Ten thousand executions of $0.0001 in the current month, whose budget is $1.00: exactly
-- $1.00, which is the budget, so status exceeded and can_execute false.
SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 1.00);
SELECT count(*) FROM (SELECT neon_budget.track_cost('CONTENT', 1, cost => 0.0001, campaign_id => 'tiny')
                        FROM generate_series(1, 10000)) t;
SELECT total_spent, trim_scale(total_spent)::text AS exactly, executions
  FROM neon_budget.monthly_budget WHERE month = neon_budget._current_month();
SELECT can_execute, status, total_budget, total_spent, remaining, utilization_percentage, override_enabled
  FROM neon_budget.budget_check();
SELECT status, remaining FROM neon_budget.monthly_overview WHERE month = neon_budget._current_month();
SELECT level, spent, budget, utilization FROM neon_budget.alert_log WHERE month = neon_budget._current_month() ORDER BY id;
-- Campaign side: three executions of $0.10 against a $0.30 campaign budget. An estimate that
-- reaches the budget exactly is admitted; after it, the campaign is exceeded.
SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 100);
SELECT neon_budget.set_campaign('thirty', 'Thirty cents', NULL, 0.30);
SELECT count(*) FROM (SELECT neon_budget.track_cost('CONTENT', 2500, campaign_id => 'thirty') FROM generate_series(1, 2)) t;
SELECT can_execute, status, campaign_budget, campaign_spent, estimated_cost FROM neon_budget.budget_check('thirty', 'CONTENT', 2500);
SELECT cost FROM neon_budget.track_cost('CONTENT', 2500, campaign_id => 'thirty');
SELECT can_execute, status, campaign_budget, campaign_spent FROM neon_budget.budget_check('thirty');
SELECT utilization_percentage FROM neon_budget.campaign_breakdown WHERE campaign_id = 'thirty';
SELECT level, spent, budget FROM neon_budget.alert_log WHERE scope = 'campaign' AND campaign_id = 'thirty' ORDER BY id;

-- 10. Rates change, history doesn't: a rate change never reprices a recorded row, and reports
-- of past months do not move. A call reported late is priced at the rate in force at its
-- created_at (SCENARIOS.md), and estimates at the rate in force now.
SELECT neon_budget.set_monthly_budget('2024-12', 10);
SELECT neon_budget.set_campaign('alpha', 'Alpha', 'CONTENT_GENERATION', 5);
SELECT cost FROM neon_budget.track_cost('CONTENT', 1000, campaign_id => 'alpha', execution_id => 'old-1', created_at => '2024-12-15 12:00+00');
SELECT cost FROM neon_budget.track_cost('SEO', 1000, campaign_id => 'alpha', created_at => '2024-12-16 12:00+00');
SELECT md5(neon_budget.budget_report('2024-12') || neon_budget.budget_report('2024-12', 'json')) AS report_before \gset
-- A price scheduled for January 2031: no recorded row is concerned (0).
SELECT neon_budget.set_agent_rate('CONTENT', 0.10, '2031-01-01 00:00+00');
SELECT cost FROM neon_budget.billing_log WHERE execution_id = 'old-1';
-- A retry of the earlier execution keeps its recorded cost.
SELECT cost FROM neon_budget.track_cost('CONTENT', 1000, execution_id => 'old-1');
-- Executions from January 2031 use the new rate; other agent types keep theirs; an estimate
-- made now uses the rate in force now.
SELECT cost FROM neon_budget.track_cost('CONTENT', 1000, created_at => '2031-01-10 12:00+00');
SELECT cost FROM neon_budget.track_cost('SEO', 1000, created_at => '2031-01-10 12:00+00');
SELECT estimated_cost FROM neon_budget.budget_check(NULL, 'CONTENT', 1000);
SELECT total_spent, executions FROM neon_budget.monthly_budget WHERE month = '2031-01';
SELECT total_spent FROM neon_budget.monthly_budget WHERE month = '2024-12';
SELECT md5(neon_budget.budget_report('2024-12') || neon_budget.budget_report('2024-12', 'json')) = :'report_before' AS report_unchanged;
-- A second change, back down, from 2031-01-11; then a call reported late from 2031-01-10 is
-- priced at 0.10, the rate in force when it ran.
SELECT neon_budget.set_agent_rate('CONTENT', 0.02, '2031-01-11 00:00+00');
SELECT cost FROM neon_budget.track_cost('CONTENT', 1000, created_at => '2031-01-11 12:00+00');
SELECT cost FROM neon_budget.track_cost('CONTENT', 1000, created_at => '2031-01-10 18:00+00');
SELECT string_agg(trim_scale(cost_per_1k_tokens)::text, ',' ORDER BY effective_from) AS content_rates
  FROM neon_budget.agent_rate WHERE agent_type = 'CONTENT';

-- The aggregate oracle: every maintained aggregate equals the log.
SELECT * FROM neon_budget.budget_verify();
