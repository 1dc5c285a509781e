-- Admin functions and their rules: an argument left out (NULL) keeps the stored value, lifting
-- a campaign's cap is its own call, threshold and budget changes re-arm and re-evaluate alert
-- levels, the override needs a reason, only neon_budget_admin may call them, and every change
-- leaves an audit row with the old and the new value (shown at the end, timestamps removed).
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS neon_budget CASCADE;
CREATE EXTENSION neon_budget;
RESET client_min_messages;
\set VERBOSITY sqlstate
-- Timestamps in audit targets print in the session's zone and style.
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';

-- set_monthly_budget: only a threshold keeps the budget, only a budget keeps the threshold.
SELECT neon_budget.set_monthly_budget('2024-03', 500, 0.6);
SELECT neon_budget.set_monthly_budget('2024-03', alert_threshold => 0.9);
SELECT total_budget, alert_threshold FROM neon_budget.monthly_budget_setting WHERE month = '2024-03';
SELECT neon_budget.set_monthly_budget('2024-03', 750);
SELECT total_budget, alert_threshold FROM neon_budget.monthly_budget_setting WHERE month = '2024-03';
SELECT neon_budget.set_monthly_budget('2024-03', NULL, NULL);
SELECT total_budget, alert_threshold FROM neon_budget.monthly_budget_setting WHERE month = '2024-03';
-- A month not used yet takes the GUC defaults (neon_budget.max_monthly_budget,
-- neon_budget.default_alert_threshold) for what is left out.
SELECT neon_budget.set_monthly_budget('2024-04', alert_threshold => 0.5);
SELECT total_budget, alert_threshold FROM neon_budget.monthly_budget_setting WHERE month = '2024-04';

-- A threshold change re-arms the month's campaigns: threshold 0.5, a $100 campaign at $60
-- (campaign warning sent), the threshold moved to 0.9 and spend taken to $91: the campaign's
-- warning fires again.
SELECT neon_budget.set_monthly_budget('2024-05', 1000, 0.5);
SELECT neon_budget.set_campaign('camp', 'Camp', NULL, 100);
SELECT cost FROM neon_budget.track_cost('CONTENT', 1, campaign_id => 'camp', cost => 60, created_at => '2024-05-02 10:00+00');
SELECT scope, campaign_id, level, spent FROM neon_budget.alert_log WHERE month = '2024-05' ORDER BY id;
SELECT neon_budget.set_monthly_budget('2024-05', alert_threshold => 0.9);
SELECT scope, scope_key, levels_sent FROM neon_budget.alert_state WHERE month = '2024-05' ORDER BY scope, scope_key;
SELECT cost FROM neon_budget.track_cost('CONTENT', 1, campaign_id => 'camp', cost => 31, created_at => '2024-05-03 10:00+00');
SELECT scope, campaign_id, level, spent FROM neon_budget.alert_log WHERE month = '2024-05' ORDER BY id;

-- A change that itself makes a level reached sends it at once (at its commit), for the
-- campaigns of the month too; a campaign budget change re-evaluates that campaign.
SELECT neon_budget.set_monthly_budget('2024-06', 1000, 0.9);
SELECT neon_budget.set_campaign('a', 'A', NULL, 100);
SELECT neon_budget.set_campaign('b', 'B', NULL, 1000);
SELECT cost FROM neon_budget.track_cost('CONTENT', 1, campaign_id => 'a', cost => 60, created_at => '2024-06-02 10:00+00');
SELECT cost FROM neon_budget.track_cost('CONTENT', 1, campaign_id => 'b', cost => 70, created_at => '2024-06-02 11:00+00');
SELECT count(*) AS alerts FROM neon_budget.alert_log WHERE month = '2024-06';
SELECT neon_budget.set_monthly_budget('2024-06', alert_threshold => 0.5);
SELECT scope, campaign_id, level, spent, budget FROM neon_budget.alert_log WHERE month = '2024-06' ORDER BY id;
SELECT neon_budget.set_campaign('b', monthly_budget => 120);
SELECT scope, campaign_id, level, spent, budget FROM neon_budget.alert_log WHERE month = '2024-06' ORDER BY id;

-- set_campaign: a rename keeps the cap ($80 spent against $50 stays exceeded); the type alone,
-- then the budget alone, each keep the others.
SELECT neon_budget.set_campaign('camp-1', 'Spring launch', 'CONTENT_GENERATION', 50);
SELECT cost FROM neon_budget.track_cost('CONTENT', 1000, campaign_id => 'camp-1', cost => 80, created_at => '2024-07-02 10:00+00');
SELECT neon_budget.set_campaign('camp-1', 'Spring launch v2');
SELECT name, campaign_type, monthly_budget FROM neon_budget.campaign WHERE campaign_id = 'camp-1';
SELECT name, total_cost, monthly_budget, utilization_percentage FROM neon_budget.campaign_breakdown WHERE campaign_id = 'camp-1';
SELECT neon_budget.set_campaign('camp-1', campaign_type => 'EMAIL_MARKETING');
SELECT neon_budget.set_campaign('camp-1', monthly_budget => 200);
SELECT name, campaign_type, monthly_budget FROM neon_budget.campaign WHERE campaign_id = 'camp-1';
-- clear_campaign_budget is the only way to lift a cap.
SELECT neon_budget.set_campaign('camp-1', monthly_budget => 50);
SELECT neon_budget.clear_campaign_budget('camp-1');
SELECT name, campaign_type, monthly_budget FROM neon_budget.campaign WHERE campaign_id = 'camp-1';
-- A new campaign needs a name, an unknown one cannot be cleared: neither writes anything.
SELECT count(*) AS audit_rows FROM neon_budget.audit_log \gset
SELECT neon_budget.set_campaign('camp-2', campaign_type => 'X', monthly_budget => 5);
SELECT neon_budget.clear_campaign_budget('camp-2');
SELECT count(*) - :audit_rows AS new_audit_rows, (SELECT count(*) FROM neon_budget.campaign WHERE campaign_id = 'camp-2') AS camp2
  FROM neon_budget.audit_log;

-- set_agent_rate: from effective_from on; the history is kept. A row is priced at the rate in
-- force at its created_at; before an agent type's first rate there is none (42704).
SELECT neon_budget.set_agent_rate('CONTENT', 0.05, '2024-08-01 00:00+00');
SELECT neon_budget.set_agent_rate('NEW_AGENT', 0.011, '2024-01-01 00:00+00');
SELECT agent_type, cost_per_1k_tokens, effective_from, set_by
  FROM neon_budget.agent_rate WHERE agent_type IN ('CONTENT', 'NEW_AGENT') ORDER BY agent_type, effective_from;
SELECT cost FROM neon_budget.track_cost('NEW_AGENT', 1000, created_at => '2024-08-01 10:00+00');
SELECT cost FROM neon_budget.track_cost('NEW_AGENT', 1000, created_at => '2023-12-31 23:59:59.999999+00');
SELECT cost, cost_per_1k_tokens FROM neon_budget.track_cost('CONTENT', 1000, created_at => '2024-07-31 23:59:59.999999+00');
SELECT cost, cost_per_1k_tokens FROM neon_budget.track_cost('CONTENT', 1000, created_at => '2024-08-01 00:00+00');

-- set_budget_override: the current month's. Exceeded and blocked; on with a reason, admitted
-- (still exceeded); off without a reason keeps the last reason on record.
SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 1);
SELECT cost FROM neon_budget.track_cost('CONTENT', 1, cost => 2);
SELECT can_execute, status, override_enabled FROM neon_budget.budget_check();
SELECT neon_budget.set_budget_override(true, 'incident 42');
SELECT can_execute, status, override_enabled FROM neon_budget.budget_check();
SELECT neon_budget.budget_reserve('CONTENT', 1000) > 0 AS reserved_under_override;
SELECT neon_budget.set_budget_override(false);
SELECT can_execute, status, override_enabled FROM neon_budget.budget_check();
SELECT override_enabled, override_reason FROM neon_budget.monthly_budget_setting WHERE month = neon_budget._current_month();
SELECT neon_budget.budget_reserve('CONTENT', 1000);

-- Only neon_budget_admin may change settings (42501), and a refused call writes nothing.
SELECT count(*) AS audit_rows FROM neon_budget.audit_log \gset
SET ROLE neon_budget_writer;
SELECT neon_budget.set_monthly_budget('2024-03', 1);
SELECT neon_budget.set_campaign('camp-1', 'Mine');
SELECT neon_budget.clear_campaign_budget('camp');
SELECT neon_budget.set_agent_rate('CONTENT', 0);
SELECT neon_budget.set_budget_override(true, 'mine');
SELECT * FROM neon_budget.budget_verify();
SELECT neon_budget.purge_before('2030-01-01');
SELECT count(*) FROM neon_budget.audit_log;
-- A writer records and checks as usual.
SELECT cost FROM neon_budget.track_cost('CONTENT', 1000, created_at => '2024-08-02 10:00+00');
RESET ROLE;
SELECT count(*) - :audit_rows AS new_audit_rows FROM neon_budget.audit_log;
SELECT total_budget FROM neon_budget.monthly_budget_setting WHERE month = '2024-03';

-- Retention: anonymize_before clears task, metadata and execution_id; purge_before deletes
-- older rows; both keep every total, and a purged execution_id stays recorded.
SELECT cost FROM neon_budget.track_cost('SEO', 1000, campaign_id => 'old', task => 'write a post', metadata => '{"topic": "x"}',
                                        execution_id => 'evt-1', created_at => '2023-01-10 10:00+00');
SELECT cost FROM neon_budget.track_cost('SEO', 2000, campaign_id => 'old', execution_id => 'evt-2', created_at => '2023-02-10 10:00+00');
SELECT neon_budget.anonymize_before('2023-02-01 00:00+00');
-- (the execution_id is replaced by a keyed digest, so that a retry is still recognised)
SELECT billing_month, task, metadata, execution_id LIKE 'nb-anon:%' AS digest, execution_id = 'evt-1' AS clear_text
  FROM neon_budget.billing_log WHERE campaign_id = 'old' ORDER BY id;
SELECT neon_budget.purge_before('2023-03-01 00:00+00');
SELECT count(*) AS old_rows FROM neon_budget.billing_log WHERE campaign_id = 'old';
SELECT month, total_spent, total_tokens, executions FROM neon_budget.monthly_budget WHERE month IN ('2023-01', '2023-02') ORDER BY 1;
SELECT month, total_cost, executions FROM neon_budget.campaign_cost WHERE campaign_id = 'old' ORDER BY 1;
SELECT month, day, total_cost FROM neon_budget.daily_cost WHERE month IN ('2023-01', '2023-02') ORDER BY 1, 2;
-- A retry of a purged execution records nothing more; a bulk INSERT of it is a duplicate.
SELECT count(*) FROM (SELECT neon_budget.track_cost('SEO', 2000, campaign_id => 'old', execution_id => 'evt-2',
                                                    created_at => '2023-02-10 10:00+00')) t;
SELECT executions FROM neon_budget.monthly_budget WHERE month = '2023-02';
INSERT INTO neon_budget.billing_log (agent_type, tokens, cost, execution_id) VALUES ('SEO', 1, 1, 'evt-1');
-- Nothing to correct.
SELECT neon_budget.budget_rebuild('2023-02');

-- The audit trail of everything above: who changed what, from what to what.
-- (the current month is shown as CUR)
SELECT id, action, replace(target, neon_budget._current_month(), 'CUR') AS target,
       replace((old_value - 'updated_at' - 'created_at')::text, neon_budget._current_month(), 'CUR') AS old_value,
       replace((new_value - 'updated_at' - 'created_at')::text, neon_budget._current_month(), 'CUR') AS new_value, actor
  FROM neon_budget.audit_log ORDER BY id;

-- The aggregate oracle: every maintained aggregate equals the log.
SELECT * FROM neon_budget.budget_verify();
