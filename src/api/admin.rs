//! Admin setters (members of `neon_budget_admin`): `set_monthly_budget`, `set_campaign`,
//! `clear_campaign_budget`, `set_agent_rate`, `reprice_billing_log` and
//! `set_budget_override`. Argument checks here; the changes in [`crate::settings`] and
//! [`crate::rate_changes`].
use crate::settings;
use crate::validation;
use pgrx::prelude::*;
use pgrx::AnyNumeric;

/// `set_monthly_budget(month text, total_budget numeric DEFAULT NULL, alert_threshold numeric DEFAULT NULL) -> void`
///
/// Sets the budget (dollars) and the alert threshold (a fraction in (0,1]) of a billing month
/// (`YYYY-MM`). An argument left out (or NULL) keeps what the month has: for a month not used
/// yet, `neon_budget.max_monthly_budget` and `neon_budget.default_alert_threshold`. Any change
/// re-arms and re-evaluates the alert levels of the month and of every campaign with spend or
/// alerts in it (the threshold is theirs too): levels no longer reached can fire again, and
/// levels the change makes reached are sent when it commits. Writes `audit_log`.
///
/// Errors: 22007 for a malformed month (`2024-13`, `24-01`); 22023 for a budget ≤ 0 or a
/// threshold outside (0,1]; 22004 for a NULL month.
#[pg_extern(volatile, parallel_unsafe)]
fn set_monthly_budget(
    month: Option<&str>,
    total_budget: default!(Option<AnyNumeric>, "NULL"),
    alert_threshold: default!(Option<AnyNumeric>, "NULL"),
) {
    crate::error::require_writable("set_monthly_budget()");
    crate::pg::schema_version::require_current();
    let month = validation::require_month("month", validation::required("month", month));
    if let Some(b) = &total_budget {
        validation::require_positive_money("total_budget", b);
    }
    if let Some(t) = &alert_threshold {
        validation::require_threshold(t);
    }
    settings::set_monthly_budget(&month, total_budget, alert_threshold)
}

/// `set_campaign(campaign_id text, name text DEFAULT NULL, campaign_type text DEFAULT NULL, monthly_budget numeric DEFAULT NULL) -> void`
///
/// Creates or updates a campaign: display name, type (e.g. `CONTENT_GENERATION`) and monthly
/// budget in dollars. An argument left out (or NULL) keeps the campaign's stored value, so a
/// rename never lifts a cap; a new campaign without a budget has no limit (never blocks, never
/// alerts). To remove a budget, call `clear_campaign_budget(campaign_id)`. A budget change
/// re-arms and re-evaluates the campaign's alert levels in every month it has spend in. Writes
/// `audit_log`.
///
/// Errors: 22004 for a NULL campaign_id, or a NULL name for a new campaign; 22023 for an empty
/// campaign_id or a budget ≤ 0; 22001 for a campaign_id over 200 characters or a name or type
/// over 200.
#[pg_extern(volatile, parallel_unsafe)]
fn set_campaign(
    campaign_id: Option<&str>,
    name: default!(Option<&str>, "NULL"),
    campaign_type: default!(Option<&str>, "NULL"),
    monthly_budget: default!(Option<AnyNumeric>, "NULL"),
) {
    crate::error::require_writable("set_campaign()");
    crate::pg::schema_version::require_current();
    let campaign_id = validation::require_campaign_id(campaign_id);
    validation::require_length_opt("name", name, validation::MAX_NAME_CHARS);
    validation::require_length_opt("campaign_type", campaign_type, validation::MAX_NAME_CHARS);
    if let Some(b) = &monthly_budget {
        validation::require_positive_money("monthly_budget", b);
    }
    settings::set_campaign(campaign_id, name, campaign_type, monthly_budget)
}

/// `clear_campaign_budget(campaign_id text) -> void`
///
/// Removes a campaign's monthly budget: from now on it has no limit (never blocks, never
/// alerts) until `set_campaign` gives it one again. The explicit way to lift a cap (leaving
/// `monthly_budget` out of `set_campaign` keeps it). Writes `audit_log`.
///
/// Errors: 22004 for a NULL campaign_id; 22023 for an empty one; 22001 for one over 200
/// characters; 42704 for a campaign that does not exist.
#[pg_extern(volatile, parallel_unsafe)]
fn clear_campaign_budget(campaign_id: Option<&str>) {
    crate::error::require_writable("clear_campaign_budget()");
    crate::pg::schema_version::require_current();
    settings::clear_campaign_budget(validation::require_campaign_id(campaign_id))
}

/// `set_agent_rate(agent_type text, cost_per_1k_tokens numeric, effective_from timestamptz DEFAULT now()) -> bigint`
///
/// Sets the rate of an agent type (new or existing) in dollars per 1,000 tokens, in force from
/// `effective_from` on (until its next rate): now by default, a later time to schedule a price,
/// or an earlier one to correct the past. A rate set again for the same instant replaces it.
/// Every entry path prices a row at the rate in force at its `created_at`. Recorded costs never
/// change: the result is how many recorded rows priced at an agent rate would cost differently
/// at the rates now in force (0 for a rate from now on), and a NOTICE names the call that
/// re-prices them (`reprice_billing_log`). Counting reads `billing_log`. Writes `audit_log`
/// (the rate in force at `effective_from` before and after, and that count).
///
/// Errors: 22004 for NULL arguments; 22023 for an empty agent type, a negative rate, or an
/// `effective_from` of ±infinity; 22001 for an agent type over 100 characters.
#[pg_extern(volatile, parallel_unsafe, name = "set_agent_rate")]
fn set_agent_rate_v2(
    agent_type: Option<&str>,
    cost_per_1k_tokens: Option<AnyNumeric>,
    effective_from: default!(Option<TimestampWithTimeZone>, "now()"),
) -> i64 {
    crate::error::require_writable("set_agent_rate()");
    crate::pg::schema_version::require_current();
    let agent_type = validation::required("agent_type", agent_type);
    let rate = validation::required("cost_per_1k_tokens", cost_per_1k_tokens);
    let effective_from = validation::required("effective_from", effective_from);
    validation::require_agent_type(agent_type, "Pass a name such as 'CONTENT'.");
    validation::require_length("agent_type", agent_type, validation::MAX_AGENT_TYPE_CHARS);
    validation::require_rate(&rate);
    validation::require_finite_time("effective_from", &effective_from);
    crate::rate_changes::set_agent_rate(agent_type, rate, effective_from)
}

/// `set_model_price(model text, input_per_1m numeric, output_per_1m numeric, cached_input_per_1m numeric DEFAULT NULL, effective_from timestamptz DEFAULT now()) -> bigint`
///
/// Sets a model's prices in dollars per 1,000,000 input (not cached), output and cached-input
/// tokens (`cached_input_per_1m` NULL: the input price), in force from `effective_from` on
/// (until its next price), as providers publish them. Every entry path prices a row naming the
/// model by its token parts at the price in force at its `created_at`. Recorded costs never
/// change: the result is how many recorded rows priced by this model would cost differently at
/// the prices now in force. Counting reads `billing_log`. Writes `audit_log`.
///
/// Errors: 22004 for a NULL model, input or output price or effective_from; 22023 for an empty
/// model, a negative or infinite price, or an `effective_from` of ±infinity; 22001 for a model
/// over 200 characters.
#[pg_extern(volatile, parallel_unsafe)]
fn set_model_price(
    model: Option<&str>,
    input_per_1m: Option<AnyNumeric>,
    output_per_1m: Option<AnyNumeric>,
    cached_input_per_1m: default!(Option<AnyNumeric>, "NULL"),
    effective_from: default!(Option<TimestampWithTimeZone>, "now()"),
) -> i64 {
    crate::error::require_writable("set_model_price()");
    crate::pg::schema_version::require_current();
    let model = validation::required("model", model);
    let input = validation::required("input_per_1m", input_per_1m);
    let output = validation::required("output_per_1m", output_per_1m);
    let cached = cached_input_per_1m.unwrap_or_else(|| input.clone());
    let effective_from = validation::required("effective_from", effective_from);
    if model.trim().is_empty() {
        crate::error::raise(
            crate::error::Code::ERRCODE_INVALID_PARAMETER_VALUE,
            "model must not be empty",
            "Pass a model name such as 'gpt-4o'.",
        );
    }
    validation::require_length("model", model, validation::MAX_ID_CHARS);
    for (name, price) in [("input_per_1m", &input), ("output_per_1m", &output), ("cached_input_per_1m", &cached)] {
        if !crate::money::is_finite(price) || *price < AnyNumeric::from(0) {
            crate::error::raise(
                crate::error::Code::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("{name} must be zero or more dollars, not {price}"),
                "Pass the price of 1,000,000 tokens in dollars, e.g. 2.50.",
            );
        }
    }
    validation::require_finite_time("effective_from", &effective_from);
    crate::rate_changes::set_model_price(model, input, output, cached, effective_from)
}

/// `reprice_billing_log(agent_type text, since timestamptz DEFAULT '-infinity', before timestamptz DEFAULT 'infinity') -> bigint`
///
/// Re-prices recorded rows after a rate correction: every `billing_log` row of `agent_type`
/// priced at an agent rate (`cost_per_1k_tokens` not NULL; costs the caller reported are never
/// touched) with `created_at` in `[since, before)` gets the cost of the rate now in force at its
/// `created_at` (`tokens / 1000 × rate`). One `UPDATE`: every maintained aggregate follows in the
/// same statement, and alert levels the new totals reach are sent. Returns the number of rows
/// changed. Rows already purged keep their sums. Reads `billing_log`. Writes `audit_log` (rows,
/// total cost before and after, the window).
///
/// Errors: 22004 for a NULL argument; 22023 for an empty agent type or `since` not before
/// `before`; 42704 for an agent type with no rate.
#[pg_extern(volatile, parallel_unsafe)]
fn reprice_billing_log(
    agent_type: Option<&str>,
    since: default!(Option<TimestampWithTimeZone>, "'-infinity'"),
    before: default!(Option<TimestampWithTimeZone>, "'infinity'"),
) -> i64 {
    crate::error::require_writable("reprice_billing_log()");
    crate::pg::schema_version::require_current();
    let agent_type = validation::required("agent_type", agent_type);
    let since = validation::required("since", since);
    let before = validation::required("before", before);
    validation::require_agent_type(agent_type, "Pass an agent type such as 'CONTENT'.");
    validation::require_length("agent_type", agent_type, validation::MAX_AGENT_TYPE_CHARS);
    validation::require_window(&since, &before);
    crate::rate_changes::reprice_billing_log(agent_type, since, before)
}

/// `set_budget_override(enabled boolean, reason text DEFAULT NULL) -> void`
///
/// The emergency override of the current billing month: while on, `budget_check` allows
/// executions past the month's and every campaign's budget (alerts still fire). A reason is
/// required to turn it on; turning it off without one keeps the last reason on record. Writes
/// `audit_log`. (The GUC `neon_budget.enable_override` turns the
/// override on for every month.)
///
/// Errors: 22004 for a NULL `enabled`; 22023 when turning it on without a reason; 22001 for a
/// reason over 1,000 characters.
#[pg_extern(volatile, parallel_unsafe)]
fn set_budget_override(enabled: Option<bool>, reason: default!(Option<&str>, "NULL")) {
    crate::error::require_writable("set_budget_override()");
    crate::pg::schema_version::require_current();
    let enabled = validation::required("enabled", enabled);
    validation::require_override_reason(enabled, reason);
    settings::set_budget_override(enabled, reason)
}
