//! Recording spend: `track_cost`. Argument checks here; the write in
//! [`crate::write::record`].
use crate::validation;
use pgrx::prelude::*;
use pgrx::{AnyNumeric, JsonB};

/// `track_cost(agent_type text, tokens bigint, campaign_id text DEFAULT NULL, task text DEFAULT NULL,
/// execution_id text DEFAULT NULL, impact_score float8 DEFAULT NULL, conversion_achieved boolean DEFAULT NULL,
/// quality_score float8 DEFAULT NULL, retry_count integer DEFAULT NULL, execution_time_ms bigint DEFAULT NULL,
/// metadata jsonb DEFAULT NULL, cost numeric DEFAULT NULL, created_at timestamptz DEFAULT now(),
/// reservation_id bigint DEFAULT NULL, model text DEFAULT NULL, input_tokens bigint DEFAULT NULL,
/// output_tokens bigint DEFAULT NULL, cached_tokens bigint DEFAULT NULL) -> neon_budget.billing_log`
///
/// Records one agent execution and returns its `billing_log` row. The cost in dollars is
/// `tokens / 1000 × the agent type's rate in force at created_at`, exactly (the rate is kept
/// in `cost_per_1k_tokens`), unless `cost` (a provider-reported dollar amount) is given, or
/// `model` has a price in force at `created_at` (`set_model_price`): then the cost is the exact
/// sum of `input_tokens` (not cached), `output_tokens` and `cached_tokens` at the model's prices
/// per 1,000,000 tokens (`model_price_from` keeps which). Token parts are given together (one
/// left out counts 0); `tokens` may then be left out (NULL) and is their total. The same `execution_id` twice records once and returns the first
/// row (safe retries). Real spend is never refused for being over budget: use `budget_check`
/// (or `budget_reserve`) before the execution. `reservation_id` settles a reservation made by
/// `budget_reserve`: it stops holding its estimate as this actual cost is recorded. When
/// `neon_budget.enabled` is off it records nothing and returns NULL.
///
/// Errors: 22004 for a NULL `agent_type`, or `tokens` without token parts; 22003 for negative
/// `tokens`, token parts, `cost`, `retry_count` or `execution_time_ms`, or a score outside 0..1;
/// 42704 for an agent type with no rate, or (without `cost` or a model price) none in force at
/// `created_at`; 22023 for an empty agent type or model, `tokens` that is not the parts' total, or
/// a priced model without token parts; 22001 for a `campaign_id` or `execution_id` over 200
/// characters or an `agent_type` over 100; 22008 for a `created_at` with no billing month or
/// further ahead of the clock than `neon_budget.max_clock_skew`; 42501 for a `reservation_id`
/// made by another role; 40001 when its execution_id was anonymized or purged while it ran
/// (retry the call). A failing call writes nothing.
#[pg_extern(volatile, parallel_unsafe, name = "track_cost")]
#[allow(clippy::too_many_arguments)]
fn track_cost_v2(
    agent_type: Option<&str>,
    tokens: default!(Option<i64>, "NULL"),
    campaign_id: default!(Option<&str>, "NULL"),
    task: default!(Option<&str>, "NULL"),
    execution_id: default!(Option<&str>, "NULL"),
    impact_score: default!(Option<f64>, "NULL"),
    conversion_achieved: default!(Option<bool>, "NULL"),
    quality_score: default!(Option<f64>, "NULL"),
    retry_count: default!(Option<i32>, "NULL"),
    execution_time_ms: default!(Option<i64>, "NULL"),
    metadata: default!(Option<JsonB>, "NULL"),
    cost: default!(Option<AnyNumeric>, "NULL"),
    created_at: default!(Option<TimestampWithTimeZone>, "now()"),
    reservation_id: default!(Option<i64>, "NULL"),
    model: default!(Option<&str>, "NULL"),
    input_tokens: default!(Option<i64>, "NULL"),
    output_tokens: default!(Option<i64>, "NULL"),
    cached_tokens: default!(Option<i64>, "NULL"),
) -> Option<pgrx::composite_type!('static, "billing_log")> {
    crate::error::require_writable("track_cost()");
    crate::pg::schema_version::require_current();
    let agent_type = validation::required("agent_type", agent_type);
    let (tokens, parts) = crate::model_prices::resolve_tokens(tokens, input_tokens, output_tokens, cached_tokens);
    if model.is_some_and(|m| m.trim().is_empty()) {
        crate::error::raise(
            crate::error::Code::ERRCODE_INVALID_PARAMETER_VALUE,
            "model must not be empty",
            "Pass a model name such as 'gpt-4o' (SELECT * FROM neon_budget.model_price lists the priced ones), or leave it out.",
        );
    }
    validation::require_length_opt("model", model, validation::MAX_ID_CHARS);
    if !crate::gucs::enabled() {
        return None;
    }
    validation::require_agent_type(agent_type, "Pass an agent type such as 'CONTENT'; SELECT * FROM neon_budget.agent_rate lists them.");
    validation::require_non_negative("tokens", tokens < 0, tokens);
    if let Some(c) = &cost {
        validation::require_cost(c);
    }
    validation::require_execution_campaign(campaign_id);
    validation::require_keys(campaign_id, Some(agent_type));
    validation::require_length_opt("execution_id", execution_id, validation::MAX_ID_CHARS);
    if let Some(id) = execution_id {
        crate::execution_ids::require_plain(id);
    }
    if let Some(ts) = &created_at {
        validation::require_created_at(ts);
    }
    validation::require_score("impact_score", impact_score);
    validation::require_score("quality_score", quality_score);
    validation::require_non_negative("retry_count", retry_count.is_some_and(|r| r < 0), retry_count.unwrap_or(0));
    validation::require_non_negative("execution_time_ms", execution_time_ms.is_some_and(|t| t < 0), execution_time_ms.unwrap_or(0));

    crate::write::record::record(crate::write::record::Execution {
        agent_type,
        tokens,
        campaign_id,
        task,
        execution_id,
        impact_score,
        conversion_achieved,
        quality_score,
        retry_count,
        execution_time_ms,
        metadata,
        cost,
        created_at,
        reservation_id,
        model,
        parts,
    })
}
