-- Bad input: every public function refuses each bad argument with its own SQLSTATE (the
-- README's Errors table) and writes nothing. Output shows the SQLSTATE only (VERBOSITY
-- sqlstate); a few full messages, details and hints are shown at the end.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS neon_budget CASCADE;
CREATE EXTENSION neon_budget;
RESET client_min_messages;
-- Everything the extension writes (row counts, aggregates, alert state) as one fingerprint,
-- for the "nothing written" checks.
CREATE FUNCTION pg_temp.written() RETURNS text LANGUAGE sql AS $$
  SELECT md5(concat_ws('|',
    (SELECT count(*) FROM neon_budget.billing_log), (SELECT count(*) FROM neon_budget.audit_log),
    (SELECT count(*) FROM neon_budget.alert_log), (SELECT count(*) FROM neon_budget.campaign),
    (SELECT count(*) FROM neon_budget.monthly_budget_setting), (SELECT count(*) FROM neon_budget.agent_rate),
    (SELECT count(*) FROM neon_budget.reservation),
    (SELECT string_agg((m.month, m.total_budget, m.total_spent, m.total_tokens, m.executions, m.alert_threshold,
                        m.alert_levels_sent, m.override_enabled)::text, ';' ORDER BY m.month) FROM neon_budget.monthly_budget m),
    (SELECT string_agg((c.*)::text, ';' ORDER BY c.campaign_id, c.month) FROM neon_budget.campaign_cost c),
    (SELECT string_agg((a.*)::text, ';' ORDER BY a.agent_type, a.month) FROM neon_budget.agent_cost a),
    (SELECT string_agg((s.*)::text, ';' ORDER BY s.scope, s.scope_key, s.month) FROM neon_budget.alert_state s)))
$$;
-- Some data first, so that "nothing written" compares non-empty tables.
SELECT neon_budget.set_monthly_budget('2024-01', 100);
SELECT neon_budget.set_campaign('c', 'C', NULL, 10);
SELECT cost, billing_month FROM neon_budget.track_cost('CONTENT', 1000, campaign_id => 'c', created_at => '2024-01-10 00:00+00');
SELECT pg_temp.written() AS before \gset
\set VERBOSITY sqlstate
\set SHOW_CONTEXT never

-- track_cost: a required argument NULL (22004)
SELECT neon_budget.track_cost(NULL, 100);
SELECT neon_budget.track_cost(NULL::text, 100, cost => 1);
SELECT neon_budget.track_cost('CONTENT', NULL);
-- an empty or blank agent type or campaign id (22023; a NULL campaign id means "no campaign")
SELECT neon_budget.track_cost('', 100);
SELECT neon_budget.track_cost('   ', 100);
SELECT neon_budget.track_cost(E'\t', 100, cost => 1);
SELECT neon_budget.track_cost('CONTENT', 1000, campaign_id => '');
SELECT neon_budget.track_cost('CONTENT', 1000, campaign_id => '   ');
-- an agent type without a rate (42704): names are case-sensitive, a given cost does not help
SELECT neon_budget.track_cost('NO_SUCH_AGENT', 100);
SELECT neon_budget.track_cost('content', 100);
SELECT neon_budget.track_cost('NO_SUCH_AGENT', 100, cost => 1);
-- negative or non-finite numbers, scores outside 0..1 (22003)
SELECT neon_budget.track_cost('CONTENT', -1);
SELECT neon_budget.track_cost('CONTENT', '-9223372036854775808'::bigint);
SELECT neon_budget.track_cost('CONTENT', -1, campaign_id => 'c', cost => 1);
SELECT neon_budget.track_cost('CONTENT', 100, cost => -0.01);
SELECT neon_budget.track_cost('CONTENT', 100, cost => -0.000001);
SELECT neon_budget.track_cost('CONTENT', 100, cost => 'NaN');
SELECT neon_budget.track_cost('CONTENT', 100, cost => 'Infinity');
SELECT neon_budget.track_cost('CONTENT', 100, cost => '-Infinity');
SELECT neon_budget.track_cost('CONTENT', 100, impact_score => 1.5);
SELECT neon_budget.track_cost('CONTENT', 100, impact_score => -0.1);
SELECT neon_budget.track_cost('CONTENT', 100, impact_score => 'NaN');
SELECT neon_budget.track_cost('CONTENT', 100, quality_score => 1.01);
SELECT neon_budget.track_cost('CONTENT', 100, quality_score => -0.5);
SELECT neon_budget.track_cost('CONTENT', 100, quality_score => 'NaN');
SELECT neon_budget.track_cost('CONTENT', 100, quality_score => 'Infinity');
SELECT neon_budget.track_cost('CONTENT', 100, retry_count => -1);
SELECT neon_budget.track_cost('CONTENT', 100, execution_time_ms => -5);
-- identifiers over their limit (22001): campaign_id and execution_id 200 characters, agent_type 100
SELECT neon_budget.track_cost('CONTENT', 1, campaign_id => repeat('x', 201));
SELECT neon_budget.track_cost('CONTENT', 1, campaign_id => repeat('x', 3000));
SELECT neon_budget.track_cost('CONTENT', 1, execution_id => repeat('x', 201));
SELECT neon_budget.track_cost(repeat('A', 101), 1, cost => 1);
-- a created_at with no billing month, or ahead of the clock by more than max_clock_skew (22008)
SELECT neon_budget.track_cost('CONTENT', 1000, created_at => 'infinity');
SELECT neon_budget.track_cost('CONTENT', 1000, created_at => '-infinity');
SELECT neon_budget.track_cost('CONTENT', 1000, created_at => '0044-03-15 BC');
SET neon_budget.max_clock_skew = '5min';
SELECT neon_budget.track_cost('CONTENT', 1, created_at => to_timestamp(1764460800000));
SELECT neon_budget.track_cost('CONTENT', 1, created_at => '2999-01-01');
SELECT neon_budget.track_cost('CONTENT', 1, created_at => clock_timestamp() + interval '10 minutes');
RESET neon_budget.max_clock_skew;
-- a writing function in a READ ONLY transaction (25006)
BEGIN READ ONLY;
SELECT neon_budget.track_cost('CONTENT', 1, created_at => '2024-01-11 00:00+00');
ROLLBACK;

-- budget_check prices estimates the same way
SELECT * FROM neon_budget.budget_check(NULL, 'NO_SUCH_AGENT', 10);
SELECT * FROM neon_budget.budget_check(NULL, NULL, 10);
SELECT * FROM neon_budget.budget_check(NULL, 'CONTENT', -1);
SELECT * FROM neon_budget.budget_check(NULL, 'CONTENT', '-9223372036854775808'::bigint);
SELECT * FROM neon_budget.budget_check(repeat('x', 201));
SELECT * FROM neon_budget.budget_check(agent_type => repeat('A', 101), estimated_tokens => 1);

-- budget_reserve
SELECT neon_budget.budget_reserve(NULL, 100);
SELECT neon_budget.budget_reserve('CONTENT', NULL);
SELECT neon_budget.budget_reserve('NO_SUCH_AGENT', 100);
SELECT neon_budget.budget_reserve('CONTENT', -1);
SELECT neon_budget.budget_reserve('CONTENT', 100, estimated_cost => 'NaN');
SELECT neon_budget.budget_reserve('CONTENT', 100, estimated_cost => -1);
SELECT neon_budget.budget_reserve('CONTENT', 100, ttl => '0 seconds');
SELECT neon_budget.budget_reserve('CONTENT', 100, ttl => '-1 minute');
SELECT neon_budget.budget_reserve('CONTENT', 1, '');
SELECT neon_budget.budget_reserve('CONTENT', 1, repeat('x', 201));
-- more than the month's budget can cover (53000); inside REPEATABLE READ (0A000)
SELECT neon_budget.budget_reserve('CONTENT', 100, estimated_cost => 100000);
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT neon_budget.budget_reserve('CONTENT', 1);
ROLLBACK;
BEGIN READ ONLY;
SELECT neon_budget.budget_reserve('CONTENT', 1);
ROLLBACK;
-- releasing a reservation that does not exist says so and changes nothing
SELECT neon_budget.budget_release(424242);

-- budget_report: malformed months (22007), unknown format (22023)
SELECT neon_budget.budget_report('2024-13');
SELECT neon_budget.budget_report('24-01');
SELECT neon_budget.budget_report('2024-1');
SELECT neon_budget.budget_report('2024-00');
SELECT neon_budget.budget_report('2024/01');
SELECT neon_budget.budget_report('2024-01-01');
SELECT neon_budget.budget_report('');
SELECT neon_budget.budget_report('0000-01');
SELECT neon_budget.budget_report('10000-01');
SELECT neon_budget.budget_report('2024-01', 'xml');

-- set_monthly_budget: malformed months (22007), NULL month (22004)
SELECT neon_budget.set_monthly_budget('2024-13', 100);
SELECT neon_budget.set_monthly_budget('24-01', 100);
SELECT neon_budget.set_monthly_budget('2024-1', 100);
SELECT neon_budget.set_monthly_budget('2024-00', 100);
SELECT neon_budget.set_monthly_budget('2024/01', 100);
SELECT neon_budget.set_monthly_budget('2024-01-01', 100);
SELECT neon_budget.set_monthly_budget('', 100);
SELECT neon_budget.set_monthly_budget('0000-01', 100);
SELECT neon_budget.set_monthly_budget('10000-01', 100);
SELECT neon_budget.set_monthly_budget(NULL, 100);
-- a budget <= 0, NaN or infinite, for a month in use and a new one (22023)
SELECT neon_budget.set_monthly_budget('2024-01', 0);
SELECT neon_budget.set_monthly_budget('2024-01', -5);
SELECT neon_budget.set_monthly_budget('2024-01', -0.01);
SELECT neon_budget.set_monthly_budget('2024-01', 'NaN');
SELECT neon_budget.set_monthly_budget('2024-01', 'Infinity');
SELECT neon_budget.set_monthly_budget('2024-02', 0);
SELECT neon_budget.set_monthly_budget('2024-02', 'NaN');
SELECT neon_budget.set_monthly_budget('2024-02', 'Infinity');
-- a threshold outside (0, 1] (22023)
SELECT neon_budget.set_monthly_budget('2024-01', 100, 0);
SELECT neon_budget.set_monthly_budget('2024-01', 100, 1.5);
SELECT neon_budget.set_monthly_budget('2024-01', 100, -0.8);
SELECT neon_budget.set_monthly_budget('2024-01', 100, 1.0001);
SELECT neon_budget.set_monthly_budget('2024-01', NULL, 'NaN');
SELECT neon_budget.set_monthly_budget('2024-03', 100, 1.0001);

-- set_campaign
SELECT neon_budget.set_campaign(NULL, 'Null', NULL, 10);
SELECT neon_budget.set_campaign('', 'Empty', NULL, 10);
SELECT neon_budget.set_campaign('   ', 'Blank', NULL, 10);
SELECT neon_budget.set_campaign(E'\t', 'Tab', NULL, 10);
-- a new campaign needs a name (22004)
SELECT neon_budget.set_campaign('x', NULL, NULL, 10);
SELECT neon_budget.set_campaign('camp-2', campaign_type => 'X', monthly_budget => 5);
-- budgets <= 0, NaN or infinite, for a new campaign and an existing one (22023)
SELECT neon_budget.set_campaign('c2', 'C2', NULL, 0);
SELECT neon_budget.set_campaign('c2', 'C2', NULL, -5);
SELECT neon_budget.set_campaign('c2', 'C2', NULL, 'NaN');
SELECT neon_budget.set_campaign('c', 'C', NULL, 0);
SELECT neon_budget.set_campaign('c', 'C', NULL, -0.01);
SELECT neon_budget.set_campaign('c', 'C', NULL, 'Infinity');
-- limits (22001): campaign_id 200 characters, name 200
SELECT neon_budget.set_campaign(repeat('x', 201), 'Long');
SELECT neon_budget.set_campaign('ok', repeat('n', 201));

-- clear_campaign_budget: unknown campaign (42704), NULL (22004), empty (22023), too long (22001)
SELECT neon_budget.clear_campaign_budget('camp-2');
SELECT neon_budget.clear_campaign_budget(NULL);
SELECT neon_budget.clear_campaign_budget('');
SELECT neon_budget.clear_campaign_budget(repeat('x', 201));

-- set_agent_rate: a negative, NaN or infinite rate and an empty type (22023), NULL (22004),
-- too long a type (22001)
SELECT neon_budget.set_agent_rate('CONTENT', -0.01);
SELECT neon_budget.set_agent_rate('CONTENT', 'NaN');
SELECT neon_budget.set_agent_rate('CONTENT', 'Infinity');
SELECT neon_budget.set_agent_rate('', 0.01);
SELECT neon_budget.set_agent_rate('CONTENT', NULL);
SELECT neon_budget.set_agent_rate(NULL, 0.01);
SELECT neon_budget.set_agent_rate(repeat('A', 101), 0.01);

-- set_budget_override: turning it on needs a reason (22023); NULL enabled (22004); reason over
-- 1,000 characters (22001)
SELECT neon_budget.set_budget_override(true);
SELECT neon_budget.set_budget_override(true, NULL);
SELECT neon_budget.set_budget_override(true, '');
SELECT neon_budget.set_budget_override(true, '   ');
SELECT neon_budget.set_budget_override(NULL, 'why');
SELECT neon_budget.set_budget_override(true, repeat('r', 1001));

-- budget_verify, budget_rebuild: malformed month (22007), NULL (22004);
-- anonymize_before, purge_before: NULL cutoff (22004)
SELECT * FROM neon_budget.budget_verify('2024-13');
SELECT neon_budget.budget_rebuild('2024-13');
SELECT neon_budget.budget_rebuild(NULL);
SELECT neon_budget.anonymize_before(NULL);
SELECT neon_budget.purge_before(NULL);

-- direct writes into billing_log: its CHECK constraints (23514), no billing month (22008), a
-- recorded execution_id (23505), limits (22001), an agent type without a rate (42704)
INSERT INTO neon_budget.billing_log (agent_type, tokens, cost) VALUES ('CONTENT', -1, 0.1);
INSERT INTO neon_budget.billing_log (agent_type, tokens, cost) VALUES ('CONTENT', 1, -0.1);
INSERT INTO neon_budget.billing_log (agent_type, tokens, cost) VALUES ('SEO', 1, 'NaN');
INSERT INTO neon_budget.billing_log (agent_type, tokens, cost) VALUES ('SEO', 1, 'Infinity');
INSERT INTO neon_budget.billing_log (agent_type, tokens, cost, quality_score) VALUES ('SEO', 1, 0.1, 'NaN');
INSERT INTO neon_budget.billing_log (agent_type, tokens, cost, execution_time_ms) VALUES ('SEO', 1, 0.1, -1);
INSERT INTO neon_budget.billing_log (agent_type, tokens, cost) VALUES ('CONTENT', 1, 0.1), ('CONTENT', -1, 0.1);
UPDATE neon_budget.billing_log SET tokens = -1;
UPDATE neon_budget.billing_log SET cost = 'NaN';
INSERT INTO neon_budget.billing_log (agent_type, tokens, cost, created_at) VALUES ('SEO', 1, 0.1, 'infinity');
INSERT INTO neon_budget.billing_log (agent_type, tokens, cost, campaign_id) VALUES ('CONTENT', 1, 1, repeat('x', 201));
INSERT INTO neon_budget.billing_log (agent_type, tokens) VALUES ('NO_SUCH_AGENT', 10);
INSERT INTO neon_budget.billing_log (agent_type, tokens, cost, execution_id, created_at)
VALUES ('CONTENT', 1, 1, 'dup', '2024-01-12 00:00+00'), ('CONTENT', 1, 1, 'dup', '2024-01-12 00:00+00');

-- None of the above wrote anything.
SELECT pg_temp.written() = :'before' AS nothing_written;

-- A failing call inside a transaction leaves the transaction's earlier work alone.
BEGIN;
SELECT cost FROM neon_budget.track_cost('CONTENT', 1000, created_at => '2024-01-11 00:00+00');
SAVEPOINT s;
SELECT neon_budget.track_cost('CONTENT', -5);
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT total_spent, executions FROM neon_budget.monthly_budget WHERE month = '2024-01';

-- The bounds themselves are accepted: 0 tokens and cost, scores 0 and 1, 200-character ids
-- (in characters: 400 bytes of UTF-8), a threshold of exactly 1, a rate of 0.
SELECT tokens, cost, impact_score, quality_score, retry_count, execution_time_ms, billing_month
  FROM neon_budget.track_cost('CONTENT', 0, impact_score => 0, quality_score => 1, cost => 0, retry_count => 0,
                              execution_time_ms => 0, created_at => '2024-01-12 00:00+00');
SELECT neon_budget.set_campaign(repeat('é', 200), 'At the limit', NULL, 10);
SELECT length(campaign_id), length(execution_id), cost
  FROM neon_budget.track_cost('CONTENT', 1000, campaign_id => repeat('é', 200), execution_id => repeat('é', 200),
                              created_at => '2024-01-12 00:00+00');
SELECT neon_budget.set_monthly_budget('2024-01', 100, 1);
SELECT total_budget, alert_threshold FROM neon_budget.monthly_budget_setting WHERE month = '2024-01';
SELECT neon_budget.set_agent_rate('FREE_TIER', 0, '2024-01-01 00:00+00');
SELECT cost FROM neon_budget.track_cost('FREE_TIER', 123456, created_at => '2024-01-12 00:00+00');

-- What the caller reads: message, detail and hint of a few refusals.
\set VERBOSITY default
SELECT neon_budget.track_cost('NO_SUCH_AGENT', 100);
SELECT neon_budget.track_cost('CONTENT', -1);
SELECT neon_budget.set_monthly_budget('2024-13', 100);
-- (53000's detail names the current month and its figures: the message alone here)
\set VERBOSITY terse
SELECT neon_budget.budget_reserve('CONTENT', 100, estimated_cost => 100000);

-- The aggregate oracle: every maintained aggregate equals the log.
SELECT * FROM neon_budget.budget_verify();
