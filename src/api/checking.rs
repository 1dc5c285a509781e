//! Checking before an execution: `budget_check`. Argument checks and pricing here; the
//! decision in [`crate::write::state::check`].
use crate::error::{raise, Code};
use crate::validation;
use pgrx::prelude::*;
use pgrx::AnyNumeric;

/// `budget_check(campaign_id text DEFAULT NULL, agent_type text DEFAULT NULL, estimated_tokens bigint DEFAULT 0)`
/// returns one row: `can_execute`, `status` (`ok`, `warning`, `critical`, `exceeded`: the worse of
/// the month's and the campaign's, from committed spend), `month` (`YYYY-MM`), `total_budget`,
/// `total_spent`, `remaining` (budget − spent − reserved), `utilization_percentage` (committed
/// spend, percent, 2 decimals), `override_enabled`, `campaign_id`, `campaign_budget` (NULL = no
/// limit), `campaign_spent`, `estimated_cost` (dollars, from `estimated_tokens` at the agent
/// type's current rate), `reserved` and `campaign_reserved` (live reservations, dollars, including
/// those made in transactions still open: they hold their estimates at once),
/// `projected_spend` and `projected_exhausted_on` (the month's month-end forecast in dollars and
/// the day, `YYYY-MM-DD`, its budget runs out if within the month) and
/// `campaign_projected_spend` and `campaign_projected_exhausted_on` (the same for the campaign
/// when it has a budget). Forecasts are [`crate::forecast`]'s trailing-mean projection, NULL
/// while too few days of the month are complete (`neon_budget.forecast_min_elapsed`).
///
/// `can_execute` is false when the current month's or the campaign's committed spend plus live
/// reservations has reached its budget, or would pass it with the estimated cost added, unless
/// the override is on (`set_budget_override` for the month or the GUC
/// `neon_budget.enable_override`). When `neon_budget.enabled` is off it is always true. Reads
/// only the aggregates and live reservations: its cost does not grow with `billing_log`.
/// It also sends an alert level that committed spend has reached but no write sent (concurrent
/// transactions that crossed it together, each without seeing the other's spend), unless the
/// transaction is read-only or on a standby.
///
/// Errors: 22003 for negative `estimated_tokens`; 22023 when `estimated_tokens` is positive and
/// no `agent_type` is given; 42704 for an agent type with no rate; 22001 for a `campaign_id`
/// over 200 characters or an `agent_type` over 100 (track_cost's limits).
#[pg_extern(volatile, parallel_unsafe, name = "budget_check")]
fn budget_check_v2(
    campaign_id: default!(Option<&str>, "NULL"),
    agent_type: default!(Option<&str>, "NULL"),
    estimated_tokens: default!(Option<i64>, "0"),
) -> TableIterator<
    'static,
    (
        name!(can_execute, bool),
        name!(status, String),
        name!(month, String),
        name!(total_budget, AnyNumeric),
        name!(total_spent, AnyNumeric),
        name!(remaining, AnyNumeric),
        name!(utilization_percentage, AnyNumeric),
        name!(override_enabled, bool),
        name!(campaign_id, Option<String>),
        name!(campaign_budget, Option<AnyNumeric>),
        name!(campaign_spent, Option<AnyNumeric>),
        name!(estimated_cost, AnyNumeric),
        name!(reserved, AnyNumeric),
        name!(campaign_reserved, Option<AnyNumeric>),
        name!(projected_spend, Option<AnyNumeric>),
        name!(projected_exhausted_on, Option<String>),
        name!(campaign_projected_spend, Option<AnyNumeric>),
        name!(campaign_projected_exhausted_on, Option<String>),
    ),
> {
    crate::pg::schema_version::require_current();
    let estimated_tokens = estimated_tokens.unwrap_or(0);
    validation::require_estimate("estimated_tokens", estimated_tokens < 0, estimated_tokens);
    // The same limits as track_cost: an id that could never be recorded is refused, not allowed.
    validation::require_keys(campaign_id, agent_type);
    let estimate = match agent_type {
        Some(a) => crate::money::cost_for_tokens(estimated_tokens, crate::rates::rate_now(a)),
        None if estimated_tokens > 0 => raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            "estimated_tokens needs an agent_type to price them",
            "Call budget_check(agent_type => 'CONTENT', estimated_tokens => 1000).",
        ),
        None => AnyNumeric::from(0),
    };
    let c = crate::write::state::check(campaign_id, &estimate);
    let (state, m) = (&c.state, &c.state.month_scope);
    let (month_forecast, campaign_forecast) = c.forecasts.clone();
    TableIterator::once((
        c.can_execute,
        c.status.to_string(),
        state.month.clone(),
        m.budget.clone(),
        m.spent.clone(),
        c.remaining.clone(),
        c.utilization.clone(),
        state.override_enabled,
        campaign_id.map(str::to_string),
        state.campaign_budget.clone(),
        state.campaign_spent.clone(),
        estimate,
        m.reserved.clone(),
        state.campaign_reserved.clone(),
        month_forecast.as_ref().map(|p| p.projected.clone()),
        month_forecast.and_then(|p| p.exhausted_on),
        campaign_forecast.as_ref().map(|p| p.projected.clone()),
        campaign_forecast.and_then(|p| p.exhausted_on),
    ))
}
