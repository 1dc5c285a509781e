-- neon_budget: tables, types and aggregate-maintenance triggers.
-- Runs first in the generated install script (pgrx `bootstrap`), inside schema neon_budget.
-- Every table that holds user data or settings is registered with pg_extension_config_dump
-- so that pg_dump keeps it; the per-slot aggregate tables are derived from billing_log and are
-- rebuilt by the triggers when a dump is restored.

-- ---------------------------------------------------------------------------------------------
-- Settings
-- ---------------------------------------------------------------------------------------------

-- Cost per 1K tokens per agent type, as a history: the rate in force at an instant is the agent
-- type's row with the latest effective_from at or before it (src/rates.rs). The install defaults (source: the seed's AGENT_COST_PER_1K_TOKENS)
-- carry effective_from = '-infinity'; only rates set later are dumped, so a restore never
-- collides with the defaults that CREATE EXTENSION inserts again.
CREATE TABLE agent_rate (
    agent_type          text        NOT NULL CHECK (agent_type <> ''),
    cost_per_1k_tokens  numeric     NOT NULL CHECK (cost_per_1k_tokens >= 0 AND cost_per_1k_tokens < 'Infinity'),
    effective_from      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    set_by              text        NOT NULL DEFAULT session_user,
    PRIMARY KEY (agent_type, effective_from)
);
COMMENT ON TABLE agent_rate IS
  'Rate history: dollars per 1,000 tokens per agent type. The rate in force at an instant is the row with the latest effective_from at or before it; rows are priced at the rate in force at their created_at. Change it with neon_budget.set_agent_rate().';

INSERT INTO agent_rate (agent_type, cost_per_1k_tokens, effective_from, set_by) VALUES
    ('CONTENT',          0.04, '-infinity', 'neon_budget'),
    ('SEO',              0.03, '-infinity', 'neon_budget'),
    ('EMAIL_MARKETING',  0.05, '-infinity', 'neon_budget'),
    ('SOCIAL_POSTING',   0.03, '-infinity', 'neon_budget'),
    ('CUSTOMER_SUPPORT', 0.04, '-infinity', 'neon_budget'),
    ('AD',               0.06, '-infinity', 'neon_budget'),
    ('OUTREACH',         0.04, '-infinity', 'neon_budget'),
    ('TREND',            0.03, '-infinity', 'neon_budget'),
    ('INSIGHT',          0.05, '-infinity', 'neon_budget'),
    ('DESIGN',           0.07, '-infinity', 'neon_budget'),
    ('BRAND_VOICE',      0.04, '-infinity', 'neon_budget'),
    ('GOAL_PLANNER',     0.05, '-infinity', 'neon_budget'),
    ('PATTERN_MINER',    0.04, '-infinity', 'neon_budget'),
    ('SEGMENT_ANALYZER', 0.05, '-infinity', 'neon_budget');

-- Model prices (src/model_prices.rs): dollars per 1,000,000 input, output and cached-input
-- tokens per model, as a history like agent_rate. A row naming a model with a price in force at
-- its created_at costs the exact sum of its three parts; other rows keep the agent rate.
CREATE TABLE model_price (
    model                text        NOT NULL CHECK (model <> ''),
    input_per_1m         numeric     NOT NULL CHECK (input_per_1m >= 0 AND input_per_1m < 'Infinity'),
    output_per_1m        numeric     NOT NULL CHECK (output_per_1m >= 0 AND output_per_1m < 'Infinity'),
    cached_input_per_1m  numeric     NOT NULL CHECK (cached_input_per_1m >= 0 AND cached_input_per_1m < 'Infinity'),
    effective_from       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    set_by               text        NOT NULL DEFAULT session_user,
    PRIMARY KEY (model, effective_from)
);
COMMENT ON TABLE model_price IS
  'Model price history: dollars per 1,000,000 input, output and cached-input tokens per model. The price in force at an instant is the row with the latest effective_from at or before it; a billing_log row naming the model is priced at the one in force at its created_at. Change it with neon_budget.set_model_price().';

CREATE TABLE campaign (
    campaign_id     text PRIMARY KEY,
    name            text    NOT NULL,
    campaign_type   text,
    monthly_budget  numeric CHECK (monthly_budget > 0 AND monthly_budget < 'Infinity'),
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE campaign IS
  'Campaigns: name, type and an optional monthly budget in dollars (NULL = no limit). Change with neon_budget.set_campaign().';

-- One row per billing month (YYYY-MM): its cap, alert threshold and emergency override.
-- Created on first use with neon_budget.max_monthly_budget / neon_budget.default_alert_threshold.
-- Spend is not stored here (see the monthly_budget view): writers never update this row.
CREATE TABLE monthly_budget_setting (
    month            text    PRIMARY KEY CHECK (month ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    total_budget     numeric NOT NULL CHECK (total_budget > 0 AND total_budget < 'Infinity'),
    alert_threshold  numeric NOT NULL CHECK (alert_threshold > 0 AND alert_threshold <= 1),
    override_enabled boolean NOT NULL DEFAULT false,
    override_reason  text,
    updated_at       timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE monthly_budget_setting IS
  'Per billing month: total budget (dollars), alert threshold (0..1] and override state. Change with set_monthly_budget() and set_budget_override().';

-- Alert levels already sent, per scope ('month' or 'campaign'), scope key ('' or campaign_id)
-- and month. A level is added by the one transaction that sends it; raising a budget removes
-- the levels that are no longer reached (re-arming them).
CREATE TABLE alert_state (
    scope        text   NOT NULL CHECK (scope IN ('month', 'campaign')),
    scope_key    text   NOT NULL,
    month        text   NOT NULL,
    levels_sent  text[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (scope, scope_key, month)
);

-- ---------------------------------------------------------------------------------------------
-- The billing log
-- ---------------------------------------------------------------------------------------------

CREATE TABLE billing_log (
    id                  bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    agent_type          text    NOT NULL,
    campaign_id         text,
    tokens              bigint  NOT NULL CHECK (tokens >= 0),
    cost                numeric NOT NULL CHECK (cost >= 0 AND cost < 'Infinity'),
    task                text,
    execution_id        text,
    impact_score        double precision CHECK (impact_score >= 0 AND impact_score <= 1),
    conversion_achieved boolean,
    quality_score       double precision CHECK (quality_score >= 0 AND quality_score <= 1),
    retry_count         integer CHECK (retry_count >= 0),
    execution_time_ms   bigint  CHECK (execution_time_ms >= 0),
    metadata            jsonb,
    created_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    billing_month       text    NOT NULL CHECK (billing_month ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    cost_per_1k_tokens  numeric CHECK (cost_per_1k_tokens >= 0 AND cost_per_1k_tokens < 'Infinity'),
    model               text    CHECK (model <> ''),
    input_tokens        bigint  CHECK (input_tokens >= 0),
    output_tokens       bigint  CHECK (output_tokens >= 0),
    cached_tokens       bigint  CHECK (cached_tokens >= 0),
    model_price_from    timestamptz,
    -- The three parts are given together, and tokens is their total.
    CHECK ((input_tokens IS NULL AND output_tokens IS NULL AND cached_tokens IS NULL)
           OR (input_tokens IS NOT NULL AND output_tokens IS NOT NULL AND cached_tokens IS NOT NULL
               AND tokens = input_tokens + output_tokens + cached_tokens))
);
CREATE UNIQUE INDEX billing_log_execution_id_key ON billing_log (execution_id)
    WHERE execution_id IS NOT NULL;
CREATE INDEX billing_log_month_campaign_idx ON billing_log (billing_month, campaign_id);
COMMENT ON TABLE billing_log IS
  'One row per agent execution. cost is dollars (numeric), tokens a count, billing_month the YYYY-MM it counts toward (fixed when written, in neon_budget.timezone).';
COMMENT ON COLUMN billing_log.model IS
  'The model that did the work; when model_price has a price for it in force at created_at, cost is the exact sum of the three token parts at that price (cost_per_1k_tokens is then NULL).';
COMMENT ON COLUMN billing_log.input_tokens IS
  'Input tokens not read from the provider''s cache (with output_tokens and cached_tokens: all three or none; tokens is their total).';
COMMENT ON COLUMN billing_log.model_price_from IS
  'The effective_from of the model_price row cost was priced at (cost = the three parts at that price); NULL when the row was priced at an agent rate or its cost was reported.';
COMMENT ON COLUMN billing_log.cached_tokens IS
  'Input tokens read from the provider''s cache (priced at model_price.cached_input_per_1m).';
COMMENT ON COLUMN billing_log.cost_per_1k_tokens IS
  'The agent rate (dollars per 1,000 tokens, from agent_rate, in force at created_at) that cost was priced at: cost = tokens / 1000 × cost_per_1k_tokens. NULL when the caller reported the cost. neon_budget.reprice_billing_log() re-prices these rows after a rate correction.';

-- ---------------------------------------------------------------------------------------------
-- Reservations (pre-authorization): estimated spend held against the month's and the campaign's
-- budget until settled by track_cost(reservation_id => ...), released, or expired.
-- ---------------------------------------------------------------------------------------------

CREATE TABLE reservation (
    id               bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    month            text        NOT NULL,
    campaign_id      text,
    agent_type       text        NOT NULL,
    estimated_tokens bigint      NOT NULL CHECK (estimated_tokens >= 0),
    estimated_cost   numeric     NOT NULL CHECK (estimated_cost >= 0 AND estimated_cost < 'Infinity'),
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    expires_at       timestamptz NOT NULL,
    created_by       text        NOT NULL DEFAULT session_user
);
CREATE INDEX reservation_month_idx ON reservation (month, expires_at);
CREATE INDEX reservation_campaign_idx ON reservation (campaign_id, month) WHERE campaign_id IS NOT NULL;
COMMENT ON TABLE reservation IS
  'Live and expired reservations made by budget_reserve(): estimated cost in dollars held until expires_at. Settled (track_cost) and released reservations are deleted; expired ones stop counting at once and are removed by later reservations.';

-- ---------------------------------------------------------------------------------------------
-- Alert and audit logs
-- ---------------------------------------------------------------------------------------------

CREATE TABLE alert_log (
    id           bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    scope        text    NOT NULL CHECK (scope IN ('month', 'campaign', 'agent_type', 'execution')),
    campaign_id  text,
    month        text    NOT NULL,
    level        text    NOT NULL CHECK (level IN ('warning', 'critical', 'exceeded', 'forecast', 'anomaly')),
    spent        numeric NOT NULL,
    budget       numeric,
    utilization  numeric,
    created_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    details      jsonb,
    -- Budget alerts have a budget; anomalies have none, and their own scopes.
    CONSTRAINT alert_log_budget_check CHECK (CASE WHEN level = 'anomaly' THEN scope IN ('campaign', 'agent_type', 'execution')
                                                  ELSE scope IN ('month', 'campaign') AND budget IS NOT NULL AND utilization IS NOT NULL END)
);
-- A cost anomaly is sent once per scope and day (src/anomaly/send.rs).
CREATE UNIQUE INDEX alert_log_anomaly_once ON alert_log (scope, (details ->> 'scope_key'), (details ->> 'day'))
    WHERE level = 'anomaly';
COMMENT ON TABLE alert_log IS
  'Every alert raised: scope (month, campaign; for anomalies also agent_type and execution), level (warning, critical, exceeded; forecast: the month-end projection passes the budget; anomaly: a cost anomaly), spend and budget in dollars, utilization in percent (budget and utilization NULL for an anomaly), details (forecast: projected_spend, daily_mean, window_days, days_left, projected_exhausted_on; anomaly: kind, scope_key, day and the figures that triggered it).';

-- Complete days scored for cost anomalies (src/anomaly/days.rs): the first write or check of a
-- day scores the days after the latest one here, once per database.
CREATE TABLE _anomaly_scan (
    billing_day text        PRIMARY KEY,
    scanned_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE _anomaly_scan IS
  'Days (YYYY-MM-DD in neon_budget.timezone) already scored for cost anomalies, by the automatic daily scan or detect_anomalies().';

CREATE TABLE audit_log (
    id         bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    action     text  NOT NULL,
    target     text  NOT NULL,
    old_value  jsonb,
    new_value  jsonb,
    actor      text  NOT NULL DEFAULT session_user,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE audit_log IS
  'Every budget, campaign, rate and override change: who (session_user), when, old and new values; and every cost anomaly (action cost_anomaly, new_value its figures and alert_id).';

-- ---------------------------------------------------------------------------------------------
-- Maintained aggregates, one row per (key, month, slot).
-- A slot is the writing backend's id (unique among running backends), so concurrent writers
-- never update the same row and never wait on each other; readers sum the slots of a key.
-- fillfactor 50 leaves room on each page for the HOT updates every write makes.
-- ---------------------------------------------------------------------------------------------

CREATE TABLE _month_spend (
    billing_month text    NOT NULL,
    slot          integer NOT NULL,
    cost          numeric NOT NULL,
    tokens        numeric NOT NULL,
    executions    bigint  NOT NULL,
    alert_cap     numeric NOT NULL DEFAULT 0,
    PRIMARY KEY (billing_month, slot)
) WITH (fillfactor = 50);

CREATE TABLE _campaign_spend (
    campaign_id   text    NOT NULL,
    billing_month text    NOT NULL,
    slot          integer NOT NULL,
    cost          numeric NOT NULL,
    tokens        numeric NOT NULL,
    executions    bigint  NOT NULL,
    alert_cap     numeric NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign_id, billing_month, slot)
) WITH (fillfactor = 50);

-- alert_cap (dollars): the slot's alert grant (src/write/alert_grants.rs): its backend may raise the
-- slot's cost up to alert_cap without reading the totals for alert levels.
COMMENT ON COLUMN _month_spend.alert_cap IS
  'Alert grant of this slot in dollars: its backend may raise cost up to alert_cap without reading the month''s totals (src/write/alert_grants.rs).';
COMMENT ON COLUMN _campaign_spend.alert_cap IS
  'Alert grant of this slot in dollars: its backend may raise cost up to alert_cap without reading the campaign''s totals (src/write/alert_grants.rs).';

-- Never holds rows: a relcache invalidation of it, sent when a transaction that raised spend
-- outside its alert grant commits, makes every backend drop its grants (src/write/alert_grants.rs).
CREATE TABLE _alert_grant_signal ();
COMMENT ON TABLE _alert_grant_signal IS
  'Holds no rows: its relcache invalidation revokes every backend''s alert grants (src/write/alert_grants.rs).';

CREATE TABLE _agent_spend (
    agent_type           text    NOT NULL,
    billing_month        text    NOT NULL,
    slot                 integer NOT NULL,
    cost                 numeric NOT NULL,
    tokens               numeric NOT NULL,
    executions           bigint  NOT NULL,
    successes            bigint  NOT NULL,
    failures             bigint  NOT NULL,
    quality_sum          numeric NOT NULL,
    quality_count        bigint  NOT NULL,
    retry_sum            numeric NOT NULL,
    execution_time_sum   numeric NOT NULL,
    execution_time_count bigint  NOT NULL,
    PRIMARY KEY (agent_type, billing_month, slot)
) WITH (fillfactor = 50);

CREATE TABLE _day_spend (
    billing_month text    NOT NULL,
    billing_day   text    NOT NULL,
    slot          integer NOT NULL,
    cost          numeric NOT NULL,
    tokens        numeric NOT NULL,
    executions    bigint  NOT NULL,
    PRIMARY KEY (billing_month, billing_day, slot)
) WITH (fillfactor = 50);
COMMENT ON TABLE _day_spend IS
  'Spend per billing month and day (YYYY-MM-DD of created_at in neon_budget.timezone, fixed when a row is written) and slot: cost in dollars, tokens, executions (see the daily_cost view).';

CREATE TABLE _campaign_agent_day_spend (
    campaign_key  text    NOT NULL,
    agent_type    text    NOT NULL,
    billing_month text    NOT NULL,
    billing_day   text    NOT NULL,
    slot          integer NOT NULL,
    cost          numeric NOT NULL,
    tokens        numeric NOT NULL,
    executions    bigint  NOT NULL,
    PRIMARY KEY (campaign_key, billing_month, billing_day, agent_type, slot)
) WITH (fillfactor = 50);
CREATE INDEX _campaign_agent_day_spend_agent ON _campaign_agent_day_spend (agent_type, billing_month, billing_day);
COMMENT ON TABLE _campaign_agent_day_spend IS
  'Spend per campaign (campaign_key: its id, '''' for none), agent type, billing month and day (YYYY-MM-DD of created_at in neon_budget.timezone) and slot: cost in dollars, tokens, executions; the daily series of forecasts and cost anomalies (see the campaign_agent_daily_cost view).';

-- Which path writes took (src/write/path_stats.rs); not dumped: counts start again after a restore.
CREATE TABLE _write_path_stats (
    slot       integer     NOT NULL,
    path       text        NOT NULL CHECK (path IN ('heap', 'sql')),
    reason     text        NOT NULL,
    writes     bigint      NOT NULL,
    last_write timestamptz NOT NULL,
    PRIMARY KEY (slot, path, reason)
);
COMMENT ON TABLE _write_path_stats IS
  'Writes to billing_log per backend slot, path (heap: track_cost without SQL; sql: an SQL INSERT) and reason, added by each backend at most once a second (src/write/path_stats.rs); see the write_path_stats view.';

-- Blocked decisions (src/write/blocked.rs): one row per day, decision, scope, reason and backend
-- slot, so that backends never wait on each other; dumped with the data.
CREATE TABLE _blocked_count (
    billing_day  text        NOT NULL,
    decision     text        NOT NULL CHECK (decision IN ('budget_check', 'budget_reserve')),
    scope        text        NOT NULL CHECK (scope IN ('month', 'campaign')),
    scope_key    text        NOT NULL,
    reason       text        NOT NULL CHECK (reason IN ('budget_reached', 'estimate_too_large')),
    slot         integer     NOT NULL,
    blocked      bigint      NOT NULL,
    last_blocked timestamptz NOT NULL,
    PRIMARY KEY (billing_day, decision, scope, scope_key, reason, slot)
);
COMMENT ON TABLE _blocked_count IS
  'Refused budget_check answers and budget_reserve calls per day (YYYY-MM-DD in neon_budget.timezone), decision, scope (month, or campaign: scope_key its id), reason (budget_reached, estimate_too_large) and backend slot; see the blocked_executions view (src/write/blocked.rs).';

-- What purge_before removed from billing_log, per month, campaign ('' = none) and agent type:
-- the maintained aggregates keep these sums, so reports of purged months do not change.
CREATE TABLE purged_spend (
    billing_month        text    NOT NULL,
    campaign_id          text    NOT NULL DEFAULT '',
    agent_type           text    NOT NULL,
    cost                 numeric NOT NULL,
    tokens               numeric NOT NULL,
    executions           bigint  NOT NULL,
    successes            bigint  NOT NULL,
    failures             bigint  NOT NULL,
    quality_sum          numeric NOT NULL,
    quality_count        bigint  NOT NULL,
    retry_sum            numeric NOT NULL,
    execution_time_sum   numeric NOT NULL,
    execution_time_count bigint  NOT NULL,
    PRIMARY KEY (billing_month, campaign_id, agent_type)
);
COMMENT ON TABLE purged_spend IS
  'Sums (dollars, tokens, executions, ...) of billing_log rows deleted by purge_before(), per month, campaign and agent type; the maintained aggregates still include them.';

-- What purge_before removed from billing_log per month and day: the per-day aggregate keeps it.
CREATE TABLE purged_day_spend (
    billing_month text    NOT NULL,
    billing_day   text    NOT NULL,
    cost          numeric NOT NULL,
    tokens        numeric NOT NULL,
    executions    bigint  NOT NULL,
    PRIMARY KEY (billing_month, billing_day)
);
COMMENT ON TABLE purged_day_spend IS
  'Sums (dollars, tokens, executions) of billing_log rows deleted by purge_before(), per month and day; the per-day aggregate still includes them.';

-- The same per campaign ('' = none), agent type and day (for rows purged from 0.5.0 on: days
-- purged before are in purged_day_spend only).
CREATE TABLE purged_campaign_agent_day_spend (
    billing_month text    NOT NULL,
    billing_day   text    NOT NULL,
    campaign_key  text    NOT NULL,
    agent_type    text    NOT NULL,
    cost          numeric NOT NULL,
    tokens        numeric NOT NULL,
    executions    bigint  NOT NULL,
    PRIMARY KEY (billing_month, billing_day, campaign_key, agent_type)
);
COMMENT ON TABLE purged_campaign_agent_day_spend IS
  'Sums (dollars, tokens, executions) of billing_log rows deleted by purge_before(), per month, day, campaign ('''' = none) and agent type; the per-campaign and per-agent daily aggregate still includes them.';

-- Execution ids after retention (src/execution_ids.rs): anonymize_before replaces an id by its
-- keyed digest (HMAC-SHA-256 under this database's random key) and purge_before keeps the digests
-- of the ids it deletes, so a late retry still records once.
CREATE TABLE _execution_id_key (
    id  integer PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    key bytea   NOT NULL CHECK (pg_catalog.length(key) >= 32)
);
COMMENT ON TABLE _execution_id_key IS
  'The key of the keyed digests (HMAC-SHA-256) of anonymized and purged execution ids; one row, readable only by the extension''s owner (src/execution_ids.rs).';
INSERT INTO _execution_id_key (key)
VALUES (pg_catalog.decode(pg_catalog.replace(pg_catalog.gen_random_uuid()::text || pg_catalog.gen_random_uuid()::text, '-', ''), 'hex'));

CREATE TABLE purged_execution_id (
    digest        text        PRIMARY KEY,
    billing_month text        NOT NULL,
    purged_at     timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE purged_execution_id IS
  'Keyed digests (nb-anon:...) of the execution ids of rows deleted by purge_before(): a retry of one of them records nothing.';

SELECT pg_catalog.pg_extension_config_dump('_execution_id_key', '');
SELECT pg_catalog.pg_extension_config_dump('purged_execution_id', '');
SELECT pg_catalog.pg_extension_config_dump('purged_spend', '');
SELECT pg_catalog.pg_extension_config_dump('purged_day_spend', '');
SELECT pg_catalog.pg_extension_config_dump('purged_campaign_agent_day_spend', '');
SELECT pg_catalog.pg_extension_config_dump('agent_rate', 'WHERE effective_from <> ''-infinity''');
SELECT pg_catalog.pg_extension_config_dump('campaign', '');
SELECT pg_catalog.pg_extension_config_dump('monthly_budget_setting', '');
SELECT pg_catalog.pg_extension_config_dump('alert_state', '');
SELECT pg_catalog.pg_extension_config_dump('billing_log', '');
SELECT pg_catalog.pg_extension_config_dump('alert_log', '');
SELECT pg_catalog.pg_extension_config_dump('model_price', '');
SELECT pg_catalog.pg_extension_config_dump('_anomaly_scan', '');
SELECT pg_catalog.pg_extension_config_dump('reservation', '');
SELECT pg_catalog.pg_extension_config_dump('_blocked_count', '');
SELECT pg_catalog.pg_extension_config_dump('reservation_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('billing_log_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('alert_log_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('audit_log_id_seq', '');
