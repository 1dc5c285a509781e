//! The hot-path SQL API: `track_cost` and `budget_check`.
use crate::error::{raise, spi_opt, Code};
use crate::gucs;
use crate::plans::{self, oid};
use pgrx::prelude::*;
use pgrx::{AnyNumeric, JsonB};

/// Raises 22004 (null_value_not_allowed) when a required argument is NULL.
pub(crate) fn required<T>(arg: &str, value: Option<T>) -> T {
    value.unwrap_or_else(|| {
        raise(Code::ERRCODE_NULL_VALUE_NOT_ALLOWED, format!("{arg} must not be NULL"), format!("Pass a value for {arg}."))
    })
}

fn require_score(arg: &str, value: Option<f64>) {
    if let Some(v) = value {
        if !(0.0..=1.0).contains(&v) {
            raise(
                Code::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
                format!("{arg} must be between 0 and 1, not {v}"),
                format!("{arg} is a fraction: 0 is worst, 1 is best."),
            );
        }
    }
}

fn require_non_negative(arg: &str, negative: bool, shown: impl std::fmt::Display) {
    if negative {
        raise(
            Code::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
            format!("{arg} must not be negative, not {shown}"),
            format!("{arg} counts what an execution used; record a correction by UPDATE of billing_log as an admin."),
        );
    }
}

/// The current rate of `agent_type` in dollars per 1,000 tokens, or SQLSTATE 42704
/// (undefined_object) when the agent type has no rate.
pub(crate) fn current_rate(agent_type: &str) -> AnyNumeric {
    let rate: Option<AnyNumeric> = Spi::connect(|client| {
        let p = plans::plan(client, SELECT_RATE, &[oid::TEXT]);
        spi_opt(client.select(&*p, None, &[agent_type.into()]).and_then(|t| t.first().get_one()))
    });
    rate.unwrap_or_else(|| {
        raise(
            Code::ERRCODE_UNDEFINED_OBJECT,
            format!("unknown agent type \"{agent_type}\""),
            "Give it a rate first: SELECT neon_budget.set_agent_rate('MY_AGENT', 0.04);",
        )
    })
}

const SELECT_RATE: &str = "SELECT r.cost_per_1k_tokens FROM neon_budget.agent_rate r
  WHERE r.agent_type OPERATOR(pg_catalog.=) $1
  ORDER BY r.effective_from DESC LIMIT 1";

/// Records one execution priced by the caller (`$4`, dollars). Inserts nothing when the
/// execution_id is already recorded. `{on_conflict}` is the ON CONFLICT clause for a call with
/// an execution_id, and empty without one: such a row cannot conflict, and a plain INSERT skips
/// the speculative insertion (and its extra WAL record) of ON CONFLICT.
const INSERT_EXECUTION: &str = "INSERT INTO neon_budget.billing_log AS b
    (agent_type, campaign_id, tokens, cost, task, execution_id, impact_score,
     conversion_achieved, quality_score, retry_count, execution_time_ms, metadata,
     created_at, billing_month)
 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
        COALESCE($13, pg_catalog.now()),
        pg_catalog.to_char(COALESCE($13, pg_catalog.now()) AT TIME ZONE $14, 'YYYY-MM'))
 {on_conflict}
 RETURNING b";

thread_local! {
    /// [`INSERT_EXECUTION`] with an execution_id (0) and without (1); they live as long as the
    /// backend, as `plans::plan` requires.
    static INSERTS: [String; 2] = [
        INSERT_EXECUTION.replace("{on_conflict}", "ON CONFLICT (execution_id) WHERE execution_id IS NOT NULL DO NOTHING"),
        INSERT_EXECUTION.replace("{on_conflict}", ""),
    ];
    /// Current rates by agent type (any change to `agent_rate` invalidates them).
    static RATES: std::cell::RefCell<crate::backend_cache::GenMap<String, AnyNumeric>> =
        std::cell::RefCell::new(crate::backend_cache::GenMap::new());
}

/// The current rate of `agent_type` (as [`current_rate`]), from this backend's cache when no
/// change to `agent_rate` was committed since it was read.
pub(crate) fn cached_rate(agent_type: &str) -> AnyNumeric {
    // Registers which relations' invalidations count (again after DROP and CREATE EXTENSION).
    crate::slot_rows::rels();
    let generation = crate::backend_cache::generation();
    if let Some(rate) = RATES.with(|r| r.borrow_mut().current().get(agent_type).cloned()) {
        return rate;
    }
    let rate = current_rate(agent_type);
    // Only if no invalidation arrived while reading it.
    if crate::backend_cache::generation() == generation {
        RATES.with(|r| r.borrow_mut().current().insert(agent_type.to_string(), rate.clone()));
    }
    rate
}

const SELECT_BY_EXECUTION_ID: &str = "SELECT b FROM neon_budget.billing_log b WHERE b.execution_id OPERATOR(pg_catalog.=) $1";

/// `track_cost(agent_type text, tokens bigint, campaign_id text DEFAULT NULL, task text DEFAULT NULL,
/// execution_id text DEFAULT NULL, impact_score float8 DEFAULT NULL, conversion_achieved boolean DEFAULT NULL,
/// quality_score float8 DEFAULT NULL, retry_count integer DEFAULT NULL, execution_time_ms bigint DEFAULT NULL,
/// metadata jsonb DEFAULT NULL, cost numeric DEFAULT NULL, created_at timestamptz DEFAULT now(),
/// reservation_id bigint DEFAULT NULL) -> neon_budget.billing_log`
///
/// Records one agent execution and returns its `billing_log` row. The cost in dollars is
/// `tokens / 1000 × the agent type's current rate`, exactly, unless `cost` (a provider-reported
/// dollar amount) is given. The same `execution_id` twice records once and returns the first
/// row (safe retries). Real spend is never refused for being over budget: use `budget_check`
/// (or `budget_reserve`) before the execution. `reservation_id` settles a reservation made by
/// `budget_reserve`: it stops holding its estimate as this actual cost is recorded. When
/// `neon_budget.enabled` is off it records nothing and returns NULL.
///
/// Errors: 22004 for a NULL `agent_type` or `tokens`; 22003 for negative `tokens`, `cost`,
/// `retry_count` or `execution_time_ms`, or a score outside 0..1; 42704 for an agent type with no
/// rate; 22023 for an empty agent type; 22001 for a `campaign_id` or `execution_id` over 200
/// characters or an `agent_type` over 100; 22008 for a `created_at` with no billing month or
/// further ahead of the clock than `neon_budget.max_clock_skew`; 42501 for a `reservation_id`
/// made by another role. A failing call writes nothing.
#[pg_extern(volatile, parallel_unsafe)]
#[allow(clippy::too_many_arguments)]
fn track_cost(
    agent_type: Option<&str>,
    tokens: Option<i64>,
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
) -> Option<pgrx::composite_type!('static, "billing_log")> {
    crate::error::require_writable("track_cost()");
    crate::schema_version::require_current();
    let agent_type = required("agent_type", agent_type);
    let tokens = required("tokens", tokens);
    if !gucs::enabled() {
        return None;
    }
    if agent_type.trim().is_empty() {
        raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            "agent_type must not be empty",
            "Pass an agent type such as 'CONTENT'; SELECT * FROM neon_budget.agent_rate lists them.",
        );
    }
    require_non_negative("tokens", tokens < 0, tokens);
    if let Some(c) = &cost {
        if !crate::money::is_finite(c) {
            raise(
                Code::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
                format!("cost must be a finite number of dollars, not {c}"),
                "Pass the cost in dollars, e.g. 0.0123.",
            );
        }
        require_non_negative("cost", *c < AnyNumeric::from(0), c);
    }
    if let Some(id) = campaign_id {
        if id.trim().is_empty() {
            raise(
                Code::ERRCODE_INVALID_PARAMETER_VALUE,
                "campaign_id must not be empty or blank",
                "Pass NULL for an execution that belongs to no campaign.",
            );
        }
    }
    crate::validation::require_keys(campaign_id, Some(agent_type));
    crate::validation::require_length_opt("execution_id", execution_id, crate::validation::MAX_ID_CHARS);
    if let Some(id) = execution_id {
        crate::execution_ids::require_plain(id);
    }
    if let Some(ts) = &created_at {
        crate::validation::require_created_at(ts);
    }
    require_score("impact_score", impact_score);
    require_score("quality_score", quality_score);
    require_non_negative("retry_count", retry_count.is_some_and(|r| r < 0), retry_count.unwrap_or(0));
    require_non_negative("execution_time_ms", execution_time_ms.is_some_and(|t| t < 0), execution_time_ms.unwrap_or(0));

    // The actual cost replaces the reservation's estimate in this same transaction.
    if let Some(id) = reservation_id {
        crate::reservations::settle(id);
    }
    let tz = gucs::timezone();
    // Priced here: tokens × the agent type's current rate × 0.001, unless the caller gave the
    // cost. An agent type without a rate is refused either way (42704).
    let rate = cached_rate(agent_type);
    let cost = cost.unwrap_or_else(|| crate::money::cost_for_tokens(tokens, rate));

    let (created_at, metadata) = if execution_id.is_none() {
        // Without an execution_id nothing can conflict: the row is written without SQL when
        // billing_log is as the extension made it (log_insert.rs).
        let created = created_at.unwrap_or_else(|| {
            TimestampWithTimeZone::try_from(unsafe { pg_sys::GetCurrentTransactionStartTimestamp() }).expect("now() is a valid timestamptz")
        });
        let row = crate::log_insert::NewRow {
            agent_type,
            campaign_id,
            tokens,
            cost: cost.clone(),
            task,
            impact_score,
            conversion_achieved,
            quality_score,
            retry_count,
            execution_time_ms,
            metadata,
            created_at: created,
            billing_month: crate::month::month_of(created.into()),
        };
        match crate::log_insert::insert(row) {
            Ok(datum) => return unsafe { pgrx::heap_tuple::PgHeapTuple::from_datum(datum, false) },
            Err(e) => {
                let (row, reason) = *e;
                crate::write_path_stats::set_sql_reason(reason);
                (Some(row.created_at), row.metadata)
            }
        }
    } else {
        crate::write_path_stats::set_sql_reason("an execution_id was given".to_string());
        (created_at, metadata)
    };
    // A retry of an execution whose row was anonymized or purged since (execution_ids.rs).
    if let Some(id) = execution_id {
        match crate::execution_ids::retired(id) {
            Some(crate::execution_ids::Retired::Anonymized(row)) => return Some(row),
            Some(crate::execution_ids::Retired::Purged) => return None,
            None => {}
        }
    }
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
