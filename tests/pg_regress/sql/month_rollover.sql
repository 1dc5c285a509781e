-- Scenario 4, month rollover unblocks: the month's budget is exhausted on its last day at 23:59
-- in the configured zone (neon_budget.timezone, here America/New_York); the first execution at
-- 00:00 on the 1st is admitted without any override and without any job having run.
-- budget_check reads the month of the clock, so this file uses the previous and the current
-- month and prints only what does not depend on which months those are.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS neon_budget CASCADE;
CREATE EXTENSION neon_budget;
RESET client_min_messages;
\set VERBOSITY sqlstate
SET neon_budget.timezone = 'America/New_York';
-- 00:00 on the 1st of this month in New York, and the minute before it.
SELECT date_trunc('month', now() AT TIME ZONE 'America/New_York') AT TIME ZONE 'America/New_York' AS first_midnight,
       to_char(date_trunc('month', now() AT TIME ZONE 'America/New_York') - interval '1 minute', 'YYYY-MM') AS prev_month
\gset
SELECT neon_budget._current_month() = to_char(now() AT TIME ZONE 'America/New_York', 'YYYY-MM') AS month_of_the_zone;
SELECT neon_budget.set_monthly_budget(:'prev_month', 10);
SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 10);
SELECT neon_budget.set_campaign('roll', 'Rollover', NULL, 5);
-- 23:59 on the last day of the previous month: the campaign's $5 and the month's $10 are spent.
SELECT billing_month = :'prev_month' AS previous_month, cost
  FROM neon_budget.track_cost('CONTENT', 1, campaign_id => 'roll', cost => 5,
                              created_at => :'first_midnight'::timestamptz - interval '1 minute');
SELECT billing_month = :'prev_month' AS previous_month, cost
  FROM neon_budget.track_cost('SEO', 1, cost => 5, created_at => :'first_midnight'::timestamptz - interval '1 minute');
SELECT status, total_spent, remaining, override_enabled FROM neon_budget.monthly_overview WHERE month = :'prev_month';
SELECT c ->> 'campaign_id' AS campaign, c ->> 'status' AS status
  FROM jsonb_array_elements(neon_budget.budget_report(:'prev_month', 'json')::jsonb -> 'campaigns') c;
-- The current month starts empty: the same execution is admitted at once.
SELECT can_execute, status, total_budget, total_spent, campaign_budget, campaign_spent, estimated_cost, override_enabled
  FROM neon_budget.budget_check('roll', 'CONTENT', 1000);
SELECT neon_budget.budget_reserve('CONTENT', 1000, 'roll') AS reservation \gset
SELECT reserved, campaign_reserved FROM neon_budget.budget_check('roll');
-- 00:00 on the 1st is in the new month, in the zone's terms (05:00 UTC in winter, 04:00 in
-- summer); recording it settles the reservation.
SELECT billing_month = neon_budget._current_month() AS current_month, cost
  FROM neon_budget.track_cost('CONTENT', 1000, campaign_id => 'roll', created_at => :'first_midnight',
                              reservation_id => :reservation);
SELECT can_execute, total_spent, campaign_spent, reserved, campaign_reserved FROM neon_budget.budget_check('roll');
SELECT count(*) FILTER (WHERE month = :'prev_month') AS prev_days, count(*) FILTER (WHERE month <> :'prev_month') AS current_days,
       bool_and(day LIKE month || '-%') AS days_in_their_month
  FROM neon_budget.daily_cost;
SELECT count(*) AS overrides_on FROM neon_budget.monthly_budget_setting WHERE override_enabled;

-- The aggregate oracle: every maintained aggregate equals the log.
SELECT * FROM neon_budget.budget_verify();
