//! The BEFORE INSERT row trigger of `billing_log` (`billing_log_before_insert`): the rules of
//! `track_cost` applied to every other entry path, a direct `INSERT` or `COPY` by an admin, so
//! that each path refuses the same input with the same SQLSTATE and fills in the same values.
//!
//! For each row it checks the identifier lengths and the `created_at` window
//! (`validation.rs`), prices a row without a `cost` from its tokens at the agent type's rate in
//! force at its `created_at` exactly as `track_cost` does (`tokens / 1000 × rate`, the rate kept
//! in `cost_per_1k_tokens`), and fixes its `billing_month`
//! from `created_at` in `neon_budget.timezone` when none is given. `track_cost`'s own fast
//! path (`write/log_insert.rs`) applies the same rules before it writes and does not fire it.
use crate::error::{raise, Code};
use crate::validation;
use pgrx::prelude::*;
use pgrx::AnyNumeric;

fn column_error(e: impl std::fmt::Display) -> ! {
    raise(
        Code::ERRCODE_INTERNAL_ERROR,
        format!("billing_log_before_insert: {e}"),
        "billing_log's columns were changed; ALTER EXTENSION neon_budget UPDATE restores them.",
    )
}

/// The trigger function `neon_budget._billing_log_before_insert()` (BEFORE INSERT, FOR EACH
/// ROW, on `billing_log`). Returns the row with `cost`, `cost_per_1k_tokens` and
/// `billing_month` filled in.
///
/// Errors: 22001 for a `campaign_id` or `execution_id` over 200 characters or an `agent_type`
/// over 100; 23505 for an `execution_id` whose earlier record was anonymized or purged; 22023
/// for one of the digest form (`nb-anon:...`) outside a restore; 22008 for a `created_at` with no billing month or further ahead of the clock than
/// `neon_budget.max_clock_skew`; 42704 for a row without a cost whose agent type has no rate in
/// force at its `created_at`; 22023 for a `cost` and a `cost_per_1k_tokens` that disagree.
#[pg_trigger]
fn _billing_log_before_insert<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByRust>>, pgrx::PgTriggerError> {
    crate::pg::schema_version::require_current();
    let Some(new) = trigger.new() else {
        return Ok(None);
    };
    let mut row = new.into_owned();
    let agent_type: Option<String> = row.get_by_name("agent_type").unwrap_or_else(|e| column_error(e));
    let campaign_id: Option<String> = row.get_by_name("campaign_id").unwrap_or_else(|e| column_error(e));
    let execution_id: Option<String> = row.get_by_name("execution_id").unwrap_or_else(|e| column_error(e));
    validation::require_keys(campaign_id.as_deref(), agent_type.as_deref());
    validation::require_length_opt("execution_id", execution_id.as_deref(), validation::MAX_ID_CHARS);
    if let Some(id) = execution_id.as_deref() {
        crate::execution_ids::require_plain(id);
        // An id whose earlier record was anonymized or purged is recorded already.
        if !id.starts_with(crate::execution_ids::PREFIX)
            && crate::execution_ids::retired(id, super::log_shape::execution_id_index()).is_some()
        {
            raise(
                Code::ERRCODE_UNIQUE_VIOLATION,
                format!("execution_id \"{id}\" is recorded already (its row was anonymized or purged)"),
                "The same execution_id records once; leave the row out, or record it with track_cost, which returns the earlier record.",
            );
        }
    }
    let created_at: Option<TimestampWithTimeZone> = row.get_by_name("created_at").unwrap_or_else(|e| column_error(e));
    if let Some(ts) = &created_at {
        validation::require_created_at(ts);
    }
    let cost: Option<AnyNumeric> = row.get_by_name("cost").unwrap_or_else(|e| column_error(e));
    let rate: Option<AnyNumeric> = row.get_by_name("cost_per_1k_tokens").unwrap_or_else(|e| column_error(e));
    // NULL agent_type or tokens: left to the NOT NULL constraints (23502); negative tokens to
    // the CHECK constraint (23514).
    let mut tokens: Option<i64> = row.get_by_name("tokens").unwrap_or_else(|e| column_error(e));
    // Token parts (issue #13, part 2): given together (one left out counts 0), tokens their
    // total (filled in when NULL).
    let part = |name: &'static str| -> Option<i64> { row.get_by_name(name).unwrap_or_else(|e| column_error(e)) };
    let (input, output, cached) = (part("input_tokens"), part("output_tokens"), part("cached_tokens"));
    let mut parts = None;
    if input.is_some() || output.is_some() || cached.is_some() {
        let (total, p) = crate::model_prices::resolve_tokens(tokens, input, output, cached);
        tokens = Some(total);
        parts = p;
        row.set_by_name("tokens", total).unwrap_or_else(|e| column_error(e));
        for (name, v) in
            p.map(|p| [("input_tokens", p.input), ("output_tokens", p.output), ("cached_tokens", p.cached)]).into_iter().flatten()
        {
            row.set_by_name(name, v).unwrap_or_else(|e| column_error(e));
        }
    }
    let model: Option<String> = row.get_by_name("model").unwrap_or_else(|e| column_error(e));
    let model_from: Option<TimestampWithTimeZone> = row.get_by_name("model_price_from").unwrap_or_else(|e| column_error(e));
    // The model price in force at created_at (read as the owner: model_price is not the
    // inserting role's to read).
    let in_force = match (&model, &created_at, &cost) {
        (Some(m), Some(at), None) => crate::pg::owner::as_owner(|| crate::model_prices::in_force(m, *at)),
        _ => None,
    };
    match (cost, rate, agent_type.as_deref(), tokens, created_at) {
        // Priced here by the model's parts, at its price in force at created_at.
        (None, _, Some(agent_type), Some(_), Some(_)) if in_force.is_some() => {
            let p = in_force.expect("checked");
            crate::pg::owner::as_owner(|| crate::rates::require_known(agent_type));
            let parts = crate::model_prices::require_parts(model.as_deref().unwrap_or_default(), parts);
            row.set_by_name("cost", crate::model_prices::cost_of(&parts, &p.price)).unwrap_or_else(|e| column_error(e));
            row.set_by_name("cost_per_1k_tokens", Option::<AnyNumeric>::None).unwrap_or_else(|e| column_error(e));
            row.set_by_name("model_price_from", p.effective_from).unwrap_or_else(|e| column_error(e));
        }
        // A cost with the model price it was priced at (a restore, an admin's INSERT): they
        // must agree, so that a price correction can re-price the row.
        (Some(cost), None, _, _, _) if model_from.is_some() => {
            let m = model.as_deref().unwrap_or_default();
            let from = model_from.expect("checked");
            let price = crate::pg::owner::as_owner(|| crate::model_prices::price_from(m, from));
            let priced = match (price, parts) {
                (Some(p), Some(parts)) => Some(crate::model_prices::cost_of(&parts, &p.price)),
                _ => None,
            };
            if priced.as_ref() != Some(&cost) {
                raise(
                    Code::ERRCODE_INVALID_PARAMETER_VALUE,
                    format!("cost {cost} is not the token parts at model \"{m}\"'s price from {from}"),
                    "Leave model_price_from NULL for a cost the provider reported, or leave cost NULL to price the row.",
                );
            }
        }
        // Priced here, at the rate in force at created_at. The rate lookup reads agent_rate,
        // which the inserting role may not.
        (None, _, Some(agent_type), Some(tokens), Some(at)) if tokens >= 0 => {
            let rate = crate::pg::owner::as_owner(|| crate::rates::rate_at(agent_type, at));
            row.set_by_name("cost", crate::money::cost_for_tokens(tokens, rate.clone())).unwrap_or_else(|e| column_error(e));
            row.set_by_name("cost_per_1k_tokens", rate).unwrap_or_else(|e| column_error(e));
        }
        // A cost with the rate it was priced at (track_cost's SQL path, a restore, an admin's
        // INSERT): the two must agree, so that a rate correction can re-price the row.
        (Some(cost), Some(rate), _, Some(tokens), _) if tokens >= 0 => {
            let priced = crate::money::cost_for_tokens(tokens, rate.clone());
            if priced != cost {
                raise(
                    Code::ERRCODE_INVALID_PARAMETER_VALUE,
                    format!("cost {cost} is not tokens / 1000 × cost_per_1k_tokens ({tokens} / 1000 × {rate} = {priced})"),
                    "Leave cost_per_1k_tokens NULL for a cost the provider reported, or leave cost NULL to price the row at the agent type's rate.",
                );
            }
        }
        _ => {}
    }
    let month: Option<String> = row.get_by_name("billing_month").unwrap_or_else(|e| column_error(e));
    if month.is_none() {
        if let Some(ts) = created_at {
            row.set_by_name("billing_month", crate::month::month_of(ts.into())).unwrap_or_else(|e| column_error(e));
        }
    }
    Ok(Some(row))
}
