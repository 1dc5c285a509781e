//! The write path: every way a row of `billing_log` reaches the maintained aggregates.
//!
//! - `track_cost` records through [`record`]: the heap fast path of [`log_insert`] when
//!   `billing_log` is as the extension made it ([`log_shape`]), else SQL `INSERT`.
//! - A direct `INSERT` or `COPY` passes the BEFORE row trigger ([`before_insert`]: the same
//!   rules and prices as `track_cost`) and the statement trigger ([`trigger`]), which applies a
//!   one-row statement here and any other statement in one bulk SQL statement.
//! - [`apply_one`] below is the one place that applies a single row. It writes this backend's
//!   own aggregate rows ([`slots`]), decides from the scope cache ([`scope_cache`]) and the
//!   escrow grants ([`alert_grants`]) whether an alert level may be due, and if so reads the
//!   exact budget state ([`state`]) and sends what is due (`crate::alerts`).
//! - [`reservations`] holds estimates against the caps; [`path_stats`] counts which path each
//!   write took.
//!
//! This layer uses the domain modules (`crate::alerts`, `crate::money`, `crate::month`, ...) and
//! the PostgreSQL plumbing in `crate::pg`; only `crate::api` and `crate::maintenance` use it.
use crate::alerts;
use crate::error::spi;
use crate::pg::owner;
use crate::pg::plans::{self, oid};
use pgrx::prelude::*;
use pgrx::AnyNumeric;
use slots::{Delta, Key, Table};

pub mod alert_grants;
pub mod before_insert;
pub mod log_insert;
pub mod log_shape;
pub mod path_stats;
pub mod record;
pub mod reservations;
pub mod scope_cache;
pub mod slots;
pub mod state;
pub mod trigger;

/// The values of one billing_log row that the aggregates use (cost in dollars, billing_month
/// `YYYY-MM`).
pub struct OneRow {
    pub billing_month: String,
    /// `YYYY-MM-DD` of `created_at` in `neon_budget.timezone` ([`crate::month::day_of`]).
    pub billing_day: String,
    pub campaign_id: Option<String>,
    pub agent_type: String,
    pub cost: AnyNumeric,
    pub tokens: i64,
    pub conversion_achieved: Option<bool>,
    pub quality_score: Option<f64>,
    pub retry_count: Option<i32>,
    pub execution_time_ms: Option<i64>,
}

/// Applies one inserted row to this backend's slot rows (heap-API fast path, else SQL) and,
/// when the scope cache says a level may have been reached, reads the totals and sends the alert
/// levels that became due. Called by the trigger for a one-row INSERT and by `track_cost`'s
/// own insert (`write/log_insert.rs`).
pub(crate) fn apply_one(r: &OneRow) {
    // Step 1. See the budget, level and rate changes others committed since this transaction
    // began, and note the grant generation first. Invariant: a grant settled in step 6 is kept
    // only if no revocation was processed after this point (write/alert_grants.rs).
    unsafe { pg_sys::AcceptInvalidationMessages() };
    // A grant settled below is kept only if no revocation is processed meanwhile.
    let grant_generation = crate::pg::backend_cache::grant_generation();
    let rels = slots::rels();
    let slot = slots::current();
    let successes: i64 = (r.conversion_achieved == Some(true)).into();
    let failures: i64 = (r.conversion_achieved == Some(false)).into();
    // quality_score is a double precision column; the aggregate sums it as numeric, converted
    // by PostgreSQL's own float8 -> numeric cast, exactly as the statement path does.
    let quality_sum = match r.quality_score {
        Some(q) => unsafe { pgrx::direct_function_call::<AnyNumeric>(pg_sys::float8_numeric, &[q.into_datum()]) }.unwrap_or_default(),
        None => AnyNumeric::from(0),
    };
    let tokens = AnyNumeric::from(r.tokens);
    let month_cols = [("billing_month", r.billing_month.as_str())];
    let campaign_cols = r.campaign_id.as_deref().map(|c| [("campaign_id", c), ("billing_month", r.billing_month.as_str())]);
    let agent_cols = [("agent_type", r.agent_type.as_str()), ("billing_month", r.billing_month.as_str())];
    let nonzero = |n: AnyNumeric| if n == AnyNumeric::from(0) { None } else { Some(n) };
    let common =
        || vec![Delta::Num("cost", nonzero(r.cost.clone())), Delta::Num("tokens", nonzero(tokens.clone())), Delta::Int("executions", 1)];
    let mut rows = vec![(Key::new(Table::Month, &month_cols), common())];
    if let Some(cols) = &campaign_cols {
        rows.push((Key::new(Table::Campaign, cols), common()));
    }
    let mut agent = common();
    agent.extend([
        Delta::Int("successes", successes),
        Delta::Int("failures", failures),
        Delta::Num("quality_sum", nonzero(quality_sum.clone())),
        Delta::Int("quality_count", r.quality_score.is_some().into()),
        Delta::Num("retry_sum", nonzero(AnyNumeric::from(r.retry_count.unwrap_or(0)))),
        Delta::Num("execution_time_sum", nonzero(AnyNumeric::from(r.execution_time_ms.unwrap_or(0)))),
        Delta::Int("execution_time_count", r.execution_time_ms.is_some().into()),
    ]);
    rows.push((Key::new(Table::Agent, &agent_cols), agent));
    let day_cols = [("billing_month", r.billing_month.as_str()), ("billing_day", r.billing_day.as_str())];
    rows.push((Key::new(Table::Day, &day_cols), common()));

    // Step 2. Add the row to this backend's own slot rows: the heap API on the rows whose TIDs
    // this backend remembers, else SQL upserts that also return their TIDs. Invariant: a
    // committed row is counted once in every aggregate (budget_verify's oracle), and only this
    // backend writes its slot's rows, so no writer waits on another's row lock.
    if !slots::try_apply(&rels, slot, &rows) {
        upsert_sql(r, slot, &rows, (successes, failures, &quality_sum));
    }
    // Step 3. A restore rebuilds the aggregates only: no alerts (the dump's alert state is
    // restored as it was), and spend outside any grant, so it revokes them.
    if crate::restore::restoring() {
        // Spend outside any grant (see write/alert_grants.rs).
        alert_grants::revoke();
        return;
    }
    // Step 4. Skip the read when no level can be due. Invariant: a write skips the read only
    // when it cannot reach an unsent level: it adds no cost to a month that has its settings
    // row, or every scope it raises has nothing left to send (scope_cache.rs), or this
    // backend's escrow grants cover its cost in every such scope (write/alert_grants.rs).
    // A write of no cost reaches no level, but its month must have a settings row: a month
    // this backend remembers has one (it is only remembered when the read found it);
    // otherwise the read below creates it.
    if r.cost <= AnyNumeric::from(0) && scope_cache::knows("month", "", &r.billing_month) {
        return;
    }
    let mut scopes: Vec<alert_grants::ScopeRef<'_>> = vec![("month", "", r.billing_month.as_str())];
    if let Some(cid) = &r.campaign_id {
        scopes.push(("campaign", cid.as_str(), r.billing_month.as_str()));
    }
    // Scopes with a level left to send; a write its grants cover in all of them reads nothing.
    scopes.retain(|(scope, k, month)| !scope_cache::nothing_left(scope, k, month));
    if scopes.is_empty() {
        return;
    }
    if alert_grants::covers(&scopes, &r.cost) {
        alert_grants::consume(&scopes, &r.cost);
        return;
    }
    // Step 5. Read the exact totals after this row and collect the levels due; remember the
    // scopes with nothing left to send.
    // The exact totals after this row (this transaction's writes included), budgets and levels
    // sent: primary-key lookups, no SQL (table_scan.rs).
    let state = state::State::read_with(&r.billing_month, r.campaign_id.as_deref(), false);
    let mut due = Vec::new();
    let m = &state.month_scope;
    let reached = alerts::reached_levels(&m.spent, &m.budget, &state.threshold);
    alerts::collect_due(&mut due, "month", "", &r.billing_month, &reached, &m.spent, &m.budget, &state.month_levels_sent);
    if due.is_empty() && state.month_known {
        scope_cache::record("month", "", &r.billing_month, scope_cache::all_sent(&state.month_levels_sent));
    } else {
        scope_cache::forget("month", "", &r.billing_month);
    }
    if let Some(cid) = &r.campaign_id {
        let before = due.len();
        let campaign = state.campaign_scope();
        if let Some(c) = &campaign {
            let reached = alerts::reached_levels(&c.spent, &c.budget, &state.threshold);
            alerts::collect_due(&mut due, "campaign", cid, &r.billing_month, &reached, &c.spent, &c.budget, &state.campaign_levels_sent);
        }
        if due.len() == before && state.month_known {
            let nothing_left = campaign.is_none() || scope_cache::all_sent(&state.campaign_levels_sent);
            scope_cache::record("campaign", cid, &r.billing_month, nothing_left);
        } else {
            scope_cache::forget("campaign", cid, &r.billing_month);
        }
    }
    // Step 6. Grants, after the read (never before: a grant must be measured against the
    // spend the read saw, including this row).
    // Grants: a scope still covered keeps its grant; the others settle (write/alert_grants.rs). A
    // scope with nothing left to send needs none; one with a level due, or a month without
    // settings until now, grants nothing and revokes.
    for scope in &scopes {
        if alert_grants::covers(&[*scope], &r.cost) {
            alert_grants::consume(&[*scope], &r.cost);
            continue;
        }
        let next = match scope.0 {
            "month" => alerts::next_level_amount(&m.budget, &state.threshold, &state.month_levels_sent),
            _ => match state.campaign_scope() {
                Some(c) => alerts::next_level_amount(&c.budget, &state.threshold, &state.campaign_levels_sent),
                // No budget, no levels: nothing to grant or protect.
                None => continue,
            },
        };
        let Some(next) = next else {
            // Every level sent: nothing to protect.
            continue;
        };
        let pending = due.iter().any(|d| d.scope == scope.0 && d.scope_key == scope.1);
        if pending || !state.month_known {
            alert_grants::revoke();
        } else {
            alert_grants::settle(*scope, &next, grant_generation);
        }
    }
    if due.is_empty() && state.month_known {
        return;
    }
    // Step 7. Create the month's settings row if it had none, and send the due levels: each is
    // claimed in alert_state first, so a level is sent once however many writers reach it.
    owner::as_owner(|| {
        if !state.month_known {
            crate::settings::ensure_month(&r.billing_month);
        }
        Spi::connect_mut(|client| {
            for d in &due {
                alerts::claim_and_send(client, d);
            }
        })
    });
}

/// Step 2's SQL path: one statement of single-row upserts of this backend's slot rows
/// ([`APPLY_UPSERT`]), remembering their new TIDs for the heap path of the next write.
fn upsert_sql(r: &OneRow, slot: i32, rows: &[(Key<'_>, Vec<Delta>)], (successes, failures, quality_sum): (i64, i64, &AnyNumeric)) {
    owner::as_owner(|| {
        Spi::connect_mut(|client| {
            let p = plans::plan(
                client,
                APPLY_UPSERT,
                &[
                    oid::TEXT,
                    oid::INT4,
                    oid::NUMERIC,
                    oid::INT8,
                    oid::TEXT,
                    oid::TEXT,
                    oid::INT8,
                    oid::INT8,
                    oid::NUMERIC,
                    oid::INT8,
                    oid::INT8,
                    oid::INT8,
                    oid::INT8,
                    oid::TEXT,
                ],
            );
            type Tid = Option<pg_sys::ItemPointerData>;
            let (m, c, a, d): (Tid, Tid, Tid, Tid) = spi(client
                .update(
                    &*p,
                    None,
                    &[
                        r.billing_month.as_str().into(),
                        slot.into(),
                        r.cost.clone().into(),
                        r.tokens.into(),
                        r.campaign_id.as_deref().into(),
                        r.agent_type.as_str().into(),
                        successes.into(),
                        failures.into(),
                        quality_sum.clone().into(),
                        i64::from(r.quality_score.is_some()).into(),
                        i64::from(r.retry_count.unwrap_or(0)).into(),
                        r.execution_time_ms.unwrap_or(0).into(),
                        i64::from(r.execution_time_ms.is_some()).into(),
                        r.billing_day.as_str().into(),
                    ],
                )
                .and_then(|t| {
                    let t = t.first();
                    Ok((t.get(1)?, t.get(2)?, t.get(3)?, t.get(4)?))
                }));
            let tids = if r.campaign_id.is_some() { vec![m, c, a, d] } else { vec![m, a, d] };
            for ((key, _), tid) in rows.iter().zip(tids) {
                if let Some(tid) = tid {
                    slots::remember(key, tid);
                }
            }
        })
    });
}

/// The single-row INSERT path when the heap-API fast path (`write/slots.rs`) cannot be used (the
/// first write of a key in this backend, or after a rollback): three single-row upserts of
/// this backend's slot rows, returning their new TIDs for the fast path.
const APPLY_UPSERT: &str = "
WITH m AS (
    INSERT INTO neon_budget._month_spend AS t (billing_month, slot, cost, tokens, executions)
    VALUES ($1, $2, $3, $4, 1)
    ON CONFLICT (billing_month, slot) DO UPDATE
       SET cost = t.cost OPERATOR(pg_catalog.+) EXCLUDED.cost,
           tokens = t.tokens OPERATOR(pg_catalog.+) EXCLUDED.tokens,
           executions = t.executions OPERATOR(pg_catalog.+) 1
    RETURNING t.ctid),
c AS (
    INSERT INTO neon_budget._campaign_spend AS t (campaign_id, billing_month, slot, cost, tokens, executions)
    SELECT $5, $1, $2, $3, $4, 1 WHERE $5 IS NOT NULL
    ON CONFLICT (campaign_id, billing_month, slot) DO UPDATE
       SET cost = t.cost OPERATOR(pg_catalog.+) EXCLUDED.cost,
           tokens = t.tokens OPERATOR(pg_catalog.+) EXCLUDED.tokens,
           executions = t.executions OPERATOR(pg_catalog.+) 1
    RETURNING t.ctid),
a AS (
    INSERT INTO neon_budget._agent_spend AS t (agent_type, billing_month, slot, cost, tokens, executions,
           successes, failures, quality_sum, quality_count, retry_sum, execution_time_sum, execution_time_count)
    VALUES ($6, $1, $2, $3, $4, 1, $7, $8, $9, $10, $11, $12, $13)
    ON CONFLICT (agent_type, billing_month, slot) DO UPDATE
       SET cost = t.cost OPERATOR(pg_catalog.+) EXCLUDED.cost,
           tokens = t.tokens OPERATOR(pg_catalog.+) EXCLUDED.tokens,
           executions = t.executions OPERATOR(pg_catalog.+) 1,
           successes = t.successes OPERATOR(pg_catalog.+) EXCLUDED.successes,
           failures = t.failures OPERATOR(pg_catalog.+) EXCLUDED.failures,
           quality_sum = t.quality_sum OPERATOR(pg_catalog.+) EXCLUDED.quality_sum,
           quality_count = t.quality_count OPERATOR(pg_catalog.+) EXCLUDED.quality_count,
           retry_sum = t.retry_sum OPERATOR(pg_catalog.+) EXCLUDED.retry_sum,
           execution_time_sum = t.execution_time_sum OPERATOR(pg_catalog.+) EXCLUDED.execution_time_sum,
           execution_time_count = t.execution_time_count OPERATOR(pg_catalog.+) EXCLUDED.execution_time_count
    RETURNING t.ctid),
dd AS (
    INSERT INTO neon_budget._day_spend AS t (billing_month, billing_day, slot, cost, tokens, executions)
    VALUES ($1, $14, $2, $3, $4, 1)
    ON CONFLICT (billing_month, billing_day, slot) DO UPDATE
       SET cost = t.cost OPERATOR(pg_catalog.+) EXCLUDED.cost,
           tokens = t.tokens OPERATOR(pg_catalog.+) EXCLUDED.tokens,
           executions = t.executions OPERATOR(pg_catalog.+) 1
    RETURNING t.ctid)
SELECT (SELECT m.ctid FROM m), (SELECT c.ctid FROM c), (SELECT a.ctid FROM a), (SELECT dd.ctid FROM dd)";
