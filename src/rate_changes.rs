//! Changes to agent rates: `set_agent_rate` (a rate from a given time on: now, a scheduled
//! price, or a correction of the past) and `reprice_billing_log` (re-pricing recorded rows at
//! the rates now in force at their `created_at`, the explicit step after a correction).
//!
//! Recorded costs never change silently: a correction only reports how many recorded rows it
//! would re-price. Each row priced at an agent rate keeps that rate in
//! `billing_log.cost_per_1k_tokens` (rows whose cost the caller reported have NULL there and
//! are never re-priced), so the rows a correction concerns are found exactly. Re-pricing is an
//! `UPDATE` of `billing_log`, which the aggregate trigger applies to every maintained aggregate
//! in the same statement, so the totals stay exact. Both calls write `audit_log`, and changes
//! of one agent type take turns (an advisory lock held until commit).
use crate::error::{spi, spi_opt};
use crate::settings::audit;
use pgrx::prelude::*;
use pgrx::AnyNumeric;

/// Takes the agent type's rate-change lock until the transaction ends.
fn lock(agent_type: &str) {
    crate::pg::locks::wait_xact(crate::pg::locks::Class::AgentRate, &format!("neon_budget.agent_rate:{agent_type}"));
}

/// The rows of `billing_log` of `$1` (agent type) priced at an agent rate, in `[$2, $3)` of
/// `created_at`, with the rate now in force at their `created_at` (`rate`, NULL where none is)
/// and the cost it gives (`repriced`). No index covers `(agent_type, created_at)` (it would
/// slow every write), so this reads all of `billing_log`: an admin call, not a write path.
const PRICED_ROWS: &str = "
    SELECT b.id, b.cost, b.cost_per_1k_tokens AS old_rate, r.rate, neon_budget._cost_for_tokens(b.tokens, r.rate) AS repriced
      FROM neon_budget.billing_log b
      LEFT JOIN LATERAL (
            SELECT a.cost_per_1k_tokens AS rate FROM neon_budget.agent_rate a
             WHERE a.agent_type OPERATOR(pg_catalog.=) b.agent_type
               AND a.effective_from OPERATOR(pg_catalog.<=) b.created_at
             ORDER BY a.effective_from DESC LIMIT 1) r ON true
     WHERE b.agent_type OPERATOR(pg_catalog.=) $1
       AND b.cost_per_1k_tokens IS NOT NULL
       AND b.created_at OPERATOR(pg_catalog.>=) $2 AND b.created_at OPERATOR(pg_catalog.<) $3";

/// A row of [`PRICED_ROWS`] that re-pricing changes: a rate is in force at its time, and its
/// cost or its recorded rate differs (a row of 0 tokens keeps its cost but takes the rate).
const CHANGED: &str = "p.rate IS NOT NULL
    AND (p.repriced OPERATOR(pg_catalog.<>) p.cost OR p.rate OPERATOR(pg_catalog.<>) p.old_rate)";

/// `set_agent_rate` with checked arguments: `rate` dollars per 1,000 tokens for `agent_type`
/// from `effective_from` on (replacing a rate set for that same instant). Returns how many
/// recorded rows priced at an agent rate would cost differently at the rates now in force
/// (rows with `created_at` from `effective_from` up to the next rate change); they are not
/// changed (see [`reprice_billing_log`]). A NOTICE says so when there are any. Audited: the
/// rate in force at `effective_from` before and after, and that count.
pub fn set_agent_rate(agent_type: &str, rate: AnyNumeric, effective_from: TimestampWithTimeZone) -> i64 {
    lock(agent_type);
    const IN_FORCE: &str = "SELECT a.cost_per_1k_tokens FROM neon_budget.agent_rate a
          WHERE a.agent_type OPERATOR(pg_catalog.=) $1 AND a.effective_from OPERATOR(pg_catalog.<=) $2
          ORDER BY a.effective_from DESC LIMIT 1";
    let old_rate: Option<AnyNumeric> = spi_opt(Spi::get_one_with_args(IN_FORCE, &[agent_type.into(), effective_from.into()]));
    spi(Spi::run_with_args(
        "INSERT INTO neon_budget.agent_rate AS r (agent_type, cost_per_1k_tokens, effective_from)
         VALUES ($1, $2, $3)
         ON CONFLICT (agent_type, effective_from) DO UPDATE
            SET cost_per_1k_tokens = EXCLUDED.cost_per_1k_tokens, set_by = EXCLUDED.set_by",
        &[agent_type.into(), rate.clone().into(), effective_from.into()],
    ));
    // The rows this rate now governs: from effective_from to the next change.
    let next: Option<TimestampWithTimeZone> = spi_opt(Spi::get_one_with_args(
        "SELECT min(a.effective_from) FROM neon_budget.agent_rate a
          WHERE a.agent_type OPERATOR(pg_catalog.=) $1 AND a.effective_from OPERATOR(pg_catalog.>) $2",
        &[agent_type.into(), effective_from.into()],
    ));
    let until = next.unwrap_or_else(infinity);
    let affected: i64 = spi_opt(Spi::get_one_with_args(
        &format!("SELECT pg_catalog.count(*) FROM ({PRICED_ROWS}) p WHERE {CHANGED}"),
        &[agent_type.into(), effective_from.into(), until.into()],
    ))
    .unwrap_or(0);
    audit(
        "set_agent_rate",
        agent_type,
        "SELECT pg_catalog.jsonb_build_object('cost_per_1k_tokens', $2::numeric, 'effective_from', $4::timestamptz)",
        "SELECT pg_catalog.jsonb_build_object('cost_per_1k_tokens', $3::numeric, 'effective_from', $4::timestamptz,
                                              'rows_to_reprice', $5::bigint)",
        vec![old_rate.into(), rate.into(), effective_from.into(), affected.into()],
    );
    if affected > 0 {
        pgrx::pg_sys::panic::ErrorReport::new(
            PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
            format!("{affected} recorded rows of agent type \"{agent_type}\" were priced at another rate; their costs are unchanged"),
            "neon_budget",
        )
        .set_hint(format!(
            "To re-price them at the rates now in force: SELECT neon_budget.reprice_billing_log({}, '{effective_from}', '{until}');",
            crate::error::quote_literal(agent_type)
        ))
        .report(PgLogLevel::NOTICE);
    }
    affected
}

/// `infinity` as a timestamptz.
fn infinity() -> TimestampWithTimeZone {
    TimestampWithTimeZone::try_from(i64::MAX).expect("infinity is a timestamptz")
}

/// `reprice_billing_log` with checked arguments: re-prices the rows of `agent_type` priced at
/// an agent rate with `created_at` in `[since, before)` whose cost or recorded rate differs at
/// the rate now in force at their `created_at`, by one `UPDATE` (the aggregates follow in the
/// same statement).
/// Returns the number of rows changed. Audited: the rows' count and total cost before and
/// after. Rows already purged (`purge_before`) are not in `billing_log` and keep their sums.
///
/// Errors: 42704 for an agent type with no rate.
pub fn reprice_billing_log(agent_type: &str, since: TimestampWithTimeZone, before: TimestampWithTimeZone) -> i64 {
    crate::rates::require_known(agent_type);
    lock(agent_type);
    let (rows, old_cost, new_cost): (Option<i64>, Option<AnyNumeric>, Option<AnyNumeric>) = spi(Spi::get_three_with_args(
        &format!(
            "WITH p AS MATERIALIZED ({PRICED_ROWS}),
             changed AS (
                UPDATE neon_budget.billing_log b
                   SET cost = p.repriced, cost_per_1k_tokens = p.rate
                  FROM p
                 WHERE b.id OPERATOR(pg_catalog.=) p.id AND {CHANGED}
                RETURNING p.cost AS old_cost, p.repriced AS new_cost)
             SELECT pg_catalog.count(*), COALESCE(sum(old_cost), 0), COALESCE(sum(new_cost), 0) FROM changed"
        ),
        &[agent_type.into(), since.into(), before.into()],
    ));
    let rows = rows.unwrap_or(0);
    audit(
        "reprice_billing_log",
        agent_type,
        "SELECT pg_catalog.jsonb_build_object('rows', $2::bigint, 'cost', $3::numeric)",
        "SELECT pg_catalog.jsonb_build_object('rows', $2::bigint, 'cost', $4::numeric, 'since', $5::timestamptz, 'before', $6::timestamptz)",
        vec![rows.into(), old_cost.into(), new_cost.into(), since.into(), before.into()],
    );
    rows
}

/// The rows of `billing_log` of model `$1` priced at a model price (`model_price_from` not
/// NULL), in `[$2, $3)` of `created_at`, with the cost at the model's price now in force at their
/// `created_at` (`repriced`, NULL where none is). Reads all of `billing_log`: an admin call.
const MODEL_PRICED_ROWS: &str = "
    SELECT b.id, b.cost, b.model_price_from AS old_from, r.effective_from AS new_from,
           pg_catalog.trim_scale((b.input_tokens * r.input_per_1m + b.output_tokens * r.output_per_1m
                                  + b.cached_tokens * r.cached_input_per_1m) / 1000000) AS repriced
      FROM neon_budget.billing_log b
      LEFT JOIN LATERAL (
            SELECT m.* FROM neon_budget.model_price m
             WHERE m.model OPERATOR(pg_catalog.=) b.model AND m.effective_from OPERATOR(pg_catalog.<=) b.created_at
             ORDER BY m.effective_from DESC LIMIT 1) r ON true
     WHERE b.model OPERATOR(pg_catalog.=) $1 AND b.model_price_from IS NOT NULL
       AND b.created_at OPERATOR(pg_catalog.>=) $2 AND b.created_at OPERATOR(pg_catalog.<) $3";

/// `set_model_price` with checked arguments: `model`'s prices (dollars per 1,000,000 input,
/// output and cached-input tokens) from `effective_from` on (replacing a price set for that same
/// instant). Returns how many recorded rows priced by this model would cost differently at the
/// prices now in force (rows with `created_at` from `effective_from` up to its next price); they
/// are not changed. Audited: the price in force at `effective_from` before and after, and
/// that count. Changes of one model take turns with each other.
pub fn set_model_price(
    model: &str,
    input: AnyNumeric,
    output: AnyNumeric,
    cached: AnyNumeric,
    effective_from: TimestampWithTimeZone,
) -> i64 {
    crate::pg::locks::wait_xact(crate::pg::locks::Class::AgentRate, &format!("neon_budget.model_price:{model}"));
    const IN_FORCE: &str = "SELECT pg_catalog.jsonb_build_object('input_per_1m', m.input_per_1m, 'output_per_1m', m.output_per_1m,
                                   'cached_input_per_1m', m.cached_input_per_1m, 'effective_from', m.effective_from)
          FROM neon_budget.model_price m
         WHERE m.model OPERATOR(pg_catalog.=) $1 AND m.effective_from OPERATOR(pg_catalog.<=) $2
         ORDER BY m.effective_from DESC LIMIT 1";
    let old: Option<pgrx::JsonB> = spi_opt(Spi::get_one_with_args(IN_FORCE, &[model.into(), effective_from.into()]));
    spi(Spi::run_with_args(
        "INSERT INTO neon_budget.model_price AS m (model, input_per_1m, output_per_1m, cached_input_per_1m, effective_from)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (model, effective_from) DO UPDATE
            SET input_per_1m = EXCLUDED.input_per_1m, output_per_1m = EXCLUDED.output_per_1m,
                cached_input_per_1m = EXCLUDED.cached_input_per_1m, set_by = EXCLUDED.set_by",
        &[model.into(), input.clone().into(), output.clone().into(), cached.clone().into(), effective_from.into()],
    ));
    let next: Option<TimestampWithTimeZone> = spi_opt(Spi::get_one_with_args(
        "SELECT min(m.effective_from) FROM neon_budget.model_price m
          WHERE m.model OPERATOR(pg_catalog.=) $1 AND m.effective_from OPERATOR(pg_catalog.>) $2",
        &[model.into(), effective_from.into()],
    ));
    let until = next.unwrap_or_else(infinity);
    let affected: i64 = spi_opt(Spi::get_one_with_args(
        &format!(
            "SELECT pg_catalog.count(*) FROM ({MODEL_PRICED_ROWS}) p
              WHERE p.repriced IS NOT NULL AND (p.repriced OPERATOR(pg_catalog.<>) p.cost OR p.new_from OPERATOR(pg_catalog.<>) p.old_from)"
        ),
        &[model.into(), effective_from.into(), until.into()],
    ))
    .unwrap_or(0);
    audit(
        "set_model_price",
        model,
        "SELECT $2::jsonb",
        "SELECT pg_catalog.jsonb_build_object('input_per_1m', $3::numeric, 'output_per_1m', $4::numeric,
                'cached_input_per_1m', $5::numeric, 'effective_from', $6::timestamptz, 'rows_to_reprice', $7::bigint)",
        vec![old.into(), input.into(), output.into(), cached.into(), effective_from.into(), affected.into()],
    );
    affected
}
