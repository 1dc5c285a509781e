//! Recording one execution for `track_cost`: settles its reservation, prices it, and writes
//! the row, with the heap fast path ([`super::log_insert`]) unless a probe found a trace of its
//! `execution_id` (a retry), else with SQL `INSERT ... ON CONFLICT (execution_id) DO NOTHING`,
//! returning the earlier record of a retried `execution_id`.
use crate::error::spi_opt;
use crate::gucs;
use crate::pg::plans::{self, oid};
use pgrx::prelude::*;
use pgrx::{AnyNumeric, JsonB};

/// One execution as `track_cost` received it, its arguments checked.
pub struct Execution<'a> {
    pub agent_type: &'a str,
    pub tokens: i64,
    pub campaign_id: Option<&'a str>,
    pub task: Option<&'a str>,
    pub execution_id: Option<&'a str>,
    pub impact_score: Option<f64>,
    pub conversion_achieved: Option<bool>,
    pub quality_score: Option<f64>,
    pub retry_count: Option<i32>,
    pub execution_time_ms: Option<i64>,
    pub metadata: Option<JsonB>,
    /// Dollars reported by the provider; None: priced from tokens at the rate in force at
    /// `created_at`.
    pub cost: Option<AnyNumeric>,
    pub created_at: Option<TimestampWithTimeZone>,
    pub reservation_id: Option<i64>,
    /// The model that did the work: with a price in force at `created_at` (`model_price`), the
    /// cost is the exact sum of `parts` at it.
    pub model: Option<&'a str>,
    /// Input (uncached), output and cached-input tokens, `tokens` their total.
    pub parts: Option<crate::model_prices::Parts>,
}

/// Records one execution priced by the caller (`$4`, dollars; `$15` the rate it was priced at,
/// NULL for a cost the caller reported). Inserts nothing when the
/// execution_id is already recorded. `{on_conflict}` is the ON CONFLICT clause for a call with
/// an execution_id, and empty without one: such a row cannot conflict, and a plain INSERT skips
/// the speculative insertion (and its extra WAL record) of ON CONFLICT.
const INSERT_EXECUTION: &str = "INSERT INTO neon_budget.billing_log AS b
    (agent_type, campaign_id, tokens, cost, task, execution_id, impact_score,
     conversion_achieved, quality_score, retry_count, execution_time_ms, metadata,
     created_at, billing_month, cost_per_1k_tokens, model, input_tokens, output_tokens, cached_tokens, model_price_from)
 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
        COALESCE($13, pg_catalog.now()),
        pg_catalog.to_char(COALESCE($13, pg_catalog.now()) AT TIME ZONE $14, 'YYYY-MM'), $15, $16, $17, $18, $19, $20)
 {on_conflict}
 RETURNING b";

thread_local! {
    /// [`INSERT_EXECUTION`] with an execution_id (0) and without (1); they live as long as the
    /// backend, as `plans::plan` requires.
    static INSERTS: [String; 2] = [
        INSERT_EXECUTION.replace("{on_conflict}", "ON CONFLICT (execution_id) WHERE execution_id IS NOT NULL DO NOTHING"),
        INSERT_EXECUTION.replace("{on_conflict}", ""),
    ];
}

const SELECT_BY_EXECUTION_ID: &str = "SELECT b FROM neon_budget.billing_log b WHERE b.execution_id OPERATOR(pg_catalog.=) $1";

/// Records `e` and returns its `billing_log` row (the earlier row for a retried
/// `execution_id`; None when that row was purged).
///
/// Errors: 42704 for an agent type with no rate; 42501 for another role's reservation; 40001
/// when a retry raced the retention of its earlier record.
pub fn record(e: Execution<'_>) -> Option<pgrx::composite_type!('static, "billing_log")> {
    let Execution {
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
    } = e;
    // Blocked decisions counted earlier by this backend (write/blocked.rs); nothing when none.
    super::blocked::flush();
    // The actual cost replaces the reservation's estimate in this same transaction.
    if let Some(id) = reservation_id {
        super::reservations::settle(id);
    }
    let tz = gucs::timezone();
    // Priced here: tokens × 0.001 × the agent type's rate in force at created_at (now() when
    // left out), unless the caller reported the cost. An agent type without any rate is refused
    // either way, and a priced row without a rate in force at its time (42704).
    // A model with a price in force at created_at prices the row by its parts instead.
    let at = created_at.unwrap_or_else(crate::rates::now);
    let (cost, rate, model_from) = match (cost, model.and_then(|m| crate::model_prices::in_force(m, at).map(|p| (m, p)))) {
        (Some(cost), _) => {
            crate::rates::require_known(agent_type);
            (cost, None, None)
        }
        (None, Some((m, p))) => {
            crate::rates::require_known(agent_type);
            let parts = crate::model_prices::require_parts(m, parts);
            (crate::model_prices::cost_of(&parts, &p.price), None, Some(p.effective_from))
        }
        (None, None) => {
            let rate = crate::rates::rate_at(agent_type, at);
            (crate::money::cost_for_tokens(tokens, rate.clone()), Some(rate), None)
        }
    };

    // A retry of an execution whose row was anonymized or purged since (execution_ids.rs).
    // The same probes find the id's own row, recorded or being recorded by another call.
    if let Some(id) = execution_id {
        match crate::execution_ids::retired(id, super::log_shape::execution_id_index()) {
            Some(crate::execution_ids::Retired::Anonymized(row)) => return Some(row),
            Some(crate::execution_ids::Retired::Purged) => return None,
            None => {}
        }
    }
    let (created_at, metadata) = if execution_id.is_some() && crate::execution_ids::traced() {
        // A trace of the id (its row, committed or in progress, or a retention writing its
        // digest): the SQL INSERT ... ON CONFLICT DO NOTHING waits for what is in progress and
        // returns the earlier row, and its AFTER trigger re-checks the id (execution_ids.rs).
        super::path_stats::set_sql_reason("the execution_id was recorded before or is being recorded".to_string());
        (created_at, metadata)
    } else {
        // Nothing can conflict, or (an execution_id no probe found) a conflict is caught by the
        // speculative insertion: the row is written without SQL when billing_log is as the
        // extension made it (write/log_insert.rs).
        let created = created_at.unwrap_or_else(crate::rates::now);
        let row = super::log_insert::NewRow {
            agent_type,
            campaign_id,
            execution_id,
            tokens,
            cost: cost.clone(),
            cost_per_1k_tokens: rate.clone(),
            task,
            impact_score,
            conversion_achieved,
            quality_score,
            retry_count,
            execution_time_ms,
            metadata,
            created_at: created,
            billing_month: crate::month::month_of(created.into()),
            model,
            parts,
            model_price_from: model_from,
        };
        match super::log_insert::insert(row) {
            Ok(datum) => return unsafe { pgrx::heap_tuple::PgHeapTuple::from_datum(datum, false) },
            Err(e) => {
                let (row, reason) = *e;
                super::path_stats::set_sql_reason(reason);
                (Some(row.created_at), row.metadata)
            }
        }
    };
    let recorded = Spi::connect_mut(|client| {
        let which = usize::from(execution_id.is_none());
        let insert = INSERTS.with(|sql| {
            plans::plan(
                client,
                &sql[which],
                &[
                    oid::TEXT,
                    oid::TEXT,
                    oid::INT8,
                    oid::NUMERIC,
                    oid::TEXT,
                    oid::TEXT,
                    oid::FLOAT8,
                    oid::BOOL,
                    oid::FLOAT8,
                    oid::INT4,
                    oid::INT8,
                    oid::JSONB,
                    oid::TIMESTAMPTZ,
                    oid::TEXT,
                    oid::NUMERIC,
                    oid::TEXT,
                    oid::INT8,
                    oid::INT8,
                    oid::INT8,
                    oid::TIMESTAMPTZ,
                ],
            )
        });
        // No row limit: a limit stops the executor before the AFTER STATEMENT triggers that
        // maintain the aggregates are queued.
        let inserted = spi_opt(
            client
                .update(
                    &*insert,
                    None,
                    &[
                        agent_type.into(),
                        campaign_id.into(),
                        tokens.into(),
                        cost.into(),
                        task.into(),
                        execution_id.into(),
                        impact_score.into(),
                        conversion_achieved.into(),
                        quality_score.into(),
                        retry_count.into(),
                        execution_time_ms.into(),
                        metadata.into(),
                        created_at.into(),
                        tz.as_str().into(),
                        rate.into(),
                        model.into(),
                        parts.map(|p| p.input).into(),
                        parts.map(|p| p.output).into(),
                        parts.map(|p| p.cached).into(),
                        model_from.into(),
                    ],
                )
                .and_then(|t| t.first().get_one()),
        );
        match inserted {
            Some(row) => Some(row),
            // The execution_id was recorded before (a retry), or by a concurrent call that
            // committed first: return that row, write nothing.
            None => {
                let existing = plans::plan(client, SELECT_BY_EXECUTION_ID, &[oid::TEXT]);
                spi_opt(client.select(&*existing, None, &[execution_id.into()]).and_then(|t| t.first().get_one()))
            }
        }
    });
    // An insert that waited on the unique index for a retention of this id's earlier record is
    // refused with 40001 by the AFTER INSERT trigger (execution_ids::recheck_inserted).
    recorded
}
