-- neon_budget: COMMENT ON FUNCTION for the public SQL API (\df+ shows them). They mirror the
-- Rust doc comments in src/api/ (tests/integration/tests/docs.rs checks that they agree).

COMMENT ON FUNCTION track_cost(text, bigint, text, text, text, double precision, boolean, double precision, integer, bigint, jsonb, numeric, timestamptz, bigint, text, bigint, bigint, bigint) IS
$$Records one agent execution and returns its billing_log row.
Arguments: agent_type, tokens (count), campaign_id, task, execution_id, impact_score and quality_score (0..1), conversion_achieved, retry_count, execution_time_ms (ms), metadata (jsonb), cost (dollars; when NULL: tokens / 1000 x the agent type's rate in force at created_at, exact, kept in billing_log.cost_per_1k_tokens), created_at (default now(); its month in neon_budget.timezone is the billing month), reservation_id (settles a budget_reserve reservation in the same transaction), model, input_tokens (not cached), output_tokens, cached_tokens: with a price of the model in force at created_at (set_model_price) the cost is the exact sum of the three parts at its prices per 1,000,000 tokens (kept in billing_log.model_price_from); parts are given together (one left out counts 0) and tokens may then be NULL (their total).
The same execution_id twice records once and returns the first row, also after retention: an anonymized row is returned, a purged one gives NULL (a keyed digest of the id is kept). Never refused for being over budget (ask budget_check first). Returns NULL and records nothing when neon_budget.enabled is off.
Errors: 22004 NULL agent_type, or tokens without parts; 22003 negative tokens, token parts, cost, retry_count or execution_time_ms, or a score outside 0..1; 22023 empty agent_type or model, tokens that are not the parts' total, a priced model without parts; 42704 agent type without a rate in force at created_at (see set_agent_rate); 22001 campaign_id or execution_id over 200 characters, agent_type over 100; 22008 created_at with no billing month or more than neon_budget.max_clock_skew ahead of the clock; 42501 reservation_id made by another role; 40001 its execution_id was anonymized or purged while it ran (retry the call).$$;

COMMENT ON FUNCTION budget_check(text, text, bigint) IS
$$May an execution run now? Arguments: campaign_id, agent_type, estimated_tokens (priced at the agent type's rate in force now).
Returns one row: can_execute, status (ok, warning, critical, exceeded), month (YYYY-MM), total_budget, total_spent, remaining (dollars, after live reservations, including those of transactions still open), utilization_percentage, override_enabled, campaign_id, campaign_budget (NULL = no limit), campaign_spent, estimated_cost, reserved, campaign_reserved (dollars), projected_spend and projected_exhausted_on (the month's month-end forecast in dollars and the day YYYY-MM-DD its budget runs out, NULL when not within the month), campaign_projected_spend and campaign_projected_exhausted_on (the same for a campaign with a budget); forecasts are NULL while too few days of the month are complete (see budget_forecast).
can_execute is false when the current month's or the campaign's spend plus live reservations has reached its budget or would pass it with the estimate, unless the override is on. Reads only the maintained aggregates and live reservations.
Errors: 22003 negative estimated_tokens; 22023 estimated_tokens without agent_type; 42704 unknown agent type; 22001 campaign_id over 200 characters or agent_type over 100.$$;

COMMENT ON FUNCTION budget_report(text, text) IS
$$Cost report of a billing month (YYYY-MM; NULL = current month): monthly overview, campaign breakdown, agent usage, cost optimization suggestions. Money in dollars.
format (default 'md'): 'md' the Markdown report (figures rounded); 'json' one object {month, timezone, overview, campaigns, agents, suggestions, daily, blocked, forecast} with exact JSON numbers, the spend of every day of the month, the executions blocked (per scope, decision and reason) and the month-end forecasts (as budget_forecast returns them); 'csv' a flat table with a header, columns section (overview, campaign, agent, day, blocked, forecast, suggestion), key, name, type, cost, budget, remaining, utilization_percentage, status, alert_threshold, tokens, executions, avg_cost_per_execution, successes, failures, success_rate_percentage, retries, scope, decision, reason, daily_mean, window_days, days_left, projected_spend, projected_exhausted_on, over_budget (exact decimals, empty where not applicable). The Markdown report lists executions blocked when there are any, and a forecast line for the month and for each campaign with a budget while the current month is forecast.
Errors: 22007 malformed month; 22023 unknown format.$$;

COMMENT ON FUNCTION budget_forecast(text) IS
$$Month-end forecasts of a billing month (YYYY-MM; NULL = the current month), from the maintained per-day aggregates: one row for the month, then one per campaign with a budget. Columns: scope (month, campaign), campaign_id, budget, spent (dollars to date), daily_mean (dollars per day over the window), window_days, days_left (days after today), projected_spend (dollars at the month's end), projected_exhausted_on (YYYY-MM-DD the budget runs out, NULL when not within the month), over_budget (projected spend above the budget).
Method: spend to date + the mean daily spend of the last neon_budget.forecast_window_days (default 7) complete days of the month x the days after today. No rows for another month than the current one, or while fewer than neon_budget.forecast_min_elapsed (default 0.2) of the month's days are complete.
Errors: 22007 malformed month.$$;

COMMENT ON FUNCTION set_monthly_budget(text, numeric, numeric) IS
$$Sets a month's (YYYY-MM) total budget in dollars and its alert threshold in (0,1]. An argument left out (NULL) keeps the month's value (a new month: the GUC defaults). Any change re-arms and re-evaluates the alert levels of the month and of every campaign in it; levels the change makes reached are sent when it commits. Writes audit_log.
Errors: 22007 malformed month; 22023 budget <= 0 or threshold outside (0,1]; 22004 NULL month.$$;

COMMENT ON FUNCTION set_campaign(text, text, text, numeric) IS
$$Creates or updates a campaign: campaign_id, name, campaign_type, monthly_budget in dollars. An argument left out (NULL) keeps the stored value, so a rename never lifts a cap; a new campaign without a budget has no limit. Remove a budget with clear_campaign_budget(campaign_id). A budget change re-arms and re-evaluates the campaign's alert levels. Writes audit_log.
Errors: 22004 NULL campaign_id, or NULL name for a new campaign; 22023 empty campaign_id or budget <= 0; 22001 campaign_id, name or campaign_type over 200 characters.$$;

COMMENT ON FUNCTION clear_campaign_budget(text) IS
$$Removes a campaign's monthly budget: it has no limit (never blocks, never alerts) until set_campaign gives it one again. Writes audit_log.
Errors: 22004 NULL campaign_id; 22023 empty campaign_id; 22001 campaign_id over 200 characters; 42704 no such campaign.$$;

COMMENT ON FUNCTION set_agent_rate(text, numeric, timestamptz) IS
$$Sets an agent type's rate in dollars per 1,000 tokens, in force from effective_from (default now(); later schedules a price, earlier corrects the past) until its next rate. Every entry path prices a row at the rate in force at its created_at. Recorded costs never change: returns how many recorded rows priced at an agent rate would cost differently at the rates now in force (a NOTICE names reprice_billing_log, which re-prices them). Writes audit_log.
Errors: 22004 NULL argument; 22023 empty agent type, negative rate or an infinite effective_from; 22001 agent type over 100 characters.$$;

COMMENT ON FUNCTION reprice_billing_log(text, timestamptz, timestamptz) IS
$$Re-prices the billing_log rows of an agent type priced at an agent rate (cost_per_1k_tokens not NULL; reported costs are never touched) with created_at in [since, before) (default: all) at the rate now in force at each row's created_at, in one UPDATE that every maintained aggregate follows; returns the number of rows changed. Purged rows keep their sums. Writes audit_log (rows, total cost before and after).
Errors: 22004 NULL argument; 22023 empty agent type or since not before before; 42704 agent type without a rate.$$;

COMMENT ON FUNCTION set_budget_override(boolean, text) IS
$$Turns the emergency override of the current month on (a reason is required) or off (without a reason the last one stays on record). While on, budget_check allows executions past every budget; alerts still fire. Writes audit_log.
Errors: 22004 NULL enabled; 22023 on without a reason; 22001 reason over 1,000 characters.$$;

COMMENT ON FUNCTION budget_reserve(text, bigint, text, interval, numeric) IS
$$Reserves an execution's estimated cost (estimated_cost dollars, or estimated_tokens at the agent type's rate) against the current month's and the campaign's budget for ttl (default 15 minutes); returns the reservation id for track_cost(reservation_id => id) or budget_release(id). Reservations of a month are decided one at a time (under a lock held only while one is decided, not until commit), each counting every live reservation, including those of transactions still open, so concurrent ones never jointly pass a budget and an open reservation blocks no one.
Errors: 53000 the budget cannot cover it (figures in the detail); 22004 NULL agent_type or estimated_tokens; 22003 negative tokens or cost; 22023 ttl not positive, or an empty campaign_id; 42704 unknown agent type; 22001 campaign_id over 200 characters or agent_type over 100; 0A000 in a REPEATABLE READ or SERIALIZABLE transaction.$$;

COMMENT ON FUNCTION budget_release(bigint) IS
$$Cancels a reservation. Returns true when it was live, false when unknown, settled, released or expired. Only the role that made it or a neon_budget_admin may release it (or settle it with track_cost).
Errors: 42501 reservation made by another role.$$;

COMMENT ON FUNCTION budget_verify(text) IS
$$Every maintained aggregate row that differs from billing_log plus the purged sums (purged_spend, purged_day_spend, purged_campaign_agent_day_spend): aggregate (monthly_budget, campaign_cost, agent_cost, daily_cost, campaign_agent_daily_cost), key (campaign id, agent type, day YYYY-MM-DD, '' for the month; for campaign_agent_daily_cost the text of the array {campaign ('' = none),agent type,day}), month (YYYY-MM; NULL argument = all months), expected and stored sums as JSON (dollars, tokens, executions, ...). Empty when all agree. Reads only the month's rows. Admin only. Errors: 22007 malformed month.$$;

COMMENT ON FUNCTION budget_rebuild(text) IS
$$Makes a month's (YYYY-MM) aggregates equal to billing_log plus the purged sums: adds each difference budget_verify(month) finds to the key's slot-0 row, in one snapshot; returns the aggregate rows corrected (0 when none differ). Writers never wait for it; two rebuilds of a month take turns. Writes audit_log with the differences. Admin only. Errors: 22007 malformed month; 22004 NULL; 40001 in REPEATABLE READ when another rebuild of the month committed after the snapshot.$$;

COMMENT ON FUNCTION anonymize_before(timestamptz) IS
$$Clears task and metadata of billing_log rows created before the cutoff and replaces each execution_id by its keyed digest (nb-anon:..., so a retry still records once); returns the rows changed. Totals do not change; takes no lock that writers wait for; retention calls take turns. Writes audit_log. Admin only. Errors: 22004 NULL.$$;

COMMENT ON FUNCTION purge_before(timestamptz) IS
$$Deletes billing_log rows created before the cutoff; returns the rows deleted. Monthly, campaign, agent and daily totals do not change (the purged sums move to purged_spend, purged_day_spend and purged_campaign_agent_day_spend, the execution ids' keyed digests to purged_execution_id). Works in batches of 1024 pages, then one pass over the whole table for rows updated meanwhile; takes no lock that writers wait for (only a write to a row being purged waits for its commit); retention calls take turns. Writes audit_log. Admin only. Errors: 22004 NULL.$$;

COMMENT ON FUNCTION detect_anomalies(date, date) IS
$$Scores every complete day from first_day to last_day (NULL: yesterday, in neon_budget.timezone) of every agent type and campaign against its own 14-day baseline and sends each cost anomaly not sent yet (an anomaly alert in alert_log and NOTIFY neon_budget_alerts, an audit_log entry cost_anomaly; once per scope and day); notes the days as scanned so the automatic daily scan does not score them again. For history loaded or corrected after its days were scanned. Calls take turns; writers never wait for one.
A day is an anomaly when its spend exceeds the baseline median by at least neon_budget.anomaly_threshold (default 6) x 1.4826 x the baseline's median absolute deviation, by at least neon_budget.anomaly_min_increase (default 1) x the median, and by at least neon_budget.anomaly_min_dollars (default 10) dollars; a scope needs 7 days of spend in its baseline.
Returns one row per anomaly: scope (agent_type, campaign), scope_key, day (YYYY-MM-DD), spent, baseline_median, baseline_mad, excess (dollars), score (NULL when the deviation is 0), alert_id (NULL while another transaction sends it). Admin only.
Errors: 22004 NULL first_day; 22023 last_day not before today, first_day after last_day, more than 366 days, or a date outside the years 1 to 9999; 0A000 in a REPEATABLE READ or SERIALIZABLE transaction; 25006 read-only transaction.$$;

COMMENT ON FUNCTION set_model_price(text, numeric, numeric, numeric, timestamptz) IS
$$Sets a model's prices in dollars per 1,000,000 input (not cached), output and cached-input tokens (cached_input_per_1m NULL: the input price), in force from effective_from (default now()) until its next price. Every entry path prices a row naming the model by its token parts at the price in force at its created_at. Recorded costs never change: returns how many recorded rows priced by this model would cost differently at the prices now in force. Writes audit_log.
Errors: 22004 NULL model, input or output price or effective_from; 22023 empty model, a negative or infinite price, or an infinite effective_from; 22001 model over 200 characters.$$;

COMMENT ON SCHEMA neon_budget IS
$$neon_budget: track and cap what AI agents spend (billing log, budgets, alerts, reports); see the README.
Errors any function may raise: 42501 a role without the privilege; 25006 a writing function on a standby or in a READ ONLY transaction; 55000 this database's neon_budget objects are older than the installed library (run ALTER EXTENSION neon_budget UPDATE).$$;

COMMENT ON TABLE billing_log IS
$$One row per agent execution. cost is dollars (numeric), tokens a count, billing_month the YYYY-MM it counts toward (fixed when written, in neon_budget.timezone).
Direct INSERT and COPY (neon_budget_admin) follow track_cost's rules; errors: 23514 a CHECK constraint; 23505 an execution_id recorded already (also one anonymized or purged since); 22001, 22008, 42704 as track_cost; 22023 a cost and a cost_per_1k_tokens that disagree (cost must be tokens / 1000 x cost_per_1k_tokens; leave cost_per_1k_tokens NULL for a reported cost).$$;
