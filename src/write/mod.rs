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
//!   write took; [`blocked`] counts refused checks and reservations.
//!
//! This layer uses the domain modules (`crate::alerts`, `crate::money`, `crate::month`, ...) and
//! the PostgreSQL plumbing in `crate::pg`; only the layers above it (the SQL API and
//! maintenance) use it.
use crate::alerts;
use crate::error::spi;
use crate::pg::owner;
use crate::pg::plans::{self, oid};
use neon_budget_common::aggregates::{single_row_upsert_sql, AGGREGATES, ROW_KEYS, SUMS};
use pgrx::prelude::*;
use pgrx::AnyNumeric;
use slots::{Delta, Key, Table};

pub mod alert_grants;
pub mod before_insert;
pub mod blocked;
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
    /// `billing_log.id` (for the figures of a cost anomaly).
    pub id: Option<i64>,
    pub execution_id: Option<String>,
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
    // The row's value of every declared sum, and its key values for every aggregate
    // (neon_budget_common::aggregates; an aggregate keyed by a campaign skips a row without one).
    let sums = row_sums(r);
    let key_values: Vec<Option<Vec<(&'static str, &str)>>> =
        AGGREGATES.iter().map(|a| a.keys.iter().map(|k| key_value(r, k).map(|v| (*k, v))).collect::<Option<Vec<_>>>()).collect();
    let rows: Vec<(Key<'_>, Vec<Delta>)> = AGGREGATES
        .iter()
        .zip(&key_values)
        .enumerate()
        .filter_map(|(i, (a, cols))| cols.as_ref().map(|cols| (Key::new(Table::ALL[i], cols), sums[..a.sums].to_vec())))
        .collect();

    // Step 2. Add the row to this backend's own slot rows: the heap API on the rows whose TIDs
    // this backend remembers, else SQL upserts that also return their TIDs. Invariant: a
    // committed row is counted once in every aggregate (budget_verify's oracle), and only this
    // backend writes its slot's rows, so no writer waits on another's row lock.
    if !slots::try_apply(&rels, slot, &rows) {
        upsert_sql(r, slot, &sums, &rows);
    }
    // Step 3. A restore rebuilds the aggregates only: no alerts (the dump's alert state is
    // restored as it was), and spend outside any grant, so it revokes them.
    if crate::restore::restoring() {
        // Spend outside any grant (see write/alert_grants.rs).
        alert_grants::revoke();
        return;
    }
    // Step 3b. Cost anomalies (crate::anomaly): this execution against its agent type's mean
    // (one comparison when it is cheap), and the first write of a day scores the days before.
    crate::anomaly::execution::check(&crate::anomaly::execution::Execution {
        agent_type: &r.agent_type,
        billing_month: &r.billing_month,
        billing_day: &r.billing_day,
        cost: &r.cost,
        campaign_id: r.campaign_id.as_deref(),
        id: r.id,
        execution_id: r.execution_id.as_deref(),
    });
    crate::anomaly::days::scan_if_new_day();
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
    if alert_grants::take(&scopes, &r.cost) {
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
    // The month-end forecast alerts too (crate::forecast), when a projection passes a budget.
    due.extend(state.forecast_alerts(r.campaign_id.as_deref(), &state.forecasts(r.campaign_id.as_deref())));
    // Step 6. Grants, after the read (never before: a grant must be measured against the
    // spend the read saw, including this row).
    // Grants: a scope still covered keeps its grant; the others settle (write/alert_grants.rs). A
    // scope with nothing left to send needs none; one with a level due, or a month without
    // settings until now, grants nothing and revokes.
    for scope in &scopes {
        if alert_grants::take(&[*scope], &r.cost) {
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

/// The value of each of [`SUMS`] for row `r`, in their order: what the SQL `per_row`
/// expression of each gives, computed here without SQL.
///
/// Errors: XX000 for a declared sum this function does not know (a sum added to the
/// declaration without its value here), at the first write.
fn row_sums(r: &OneRow) -> Vec<Delta> {
    let nonzero = |n: AnyNumeric| if n == AnyNumeric::from(0) { None } else { Some(n) };
    SUMS.iter()
        .map(|s| match s.column {
            "cost" => Delta::Num(s.column, nonzero(r.cost.clone())),
            "tokens" => Delta::Num(s.column, nonzero(AnyNumeric::from(r.tokens))),
            "executions" => Delta::Int(s.column, 1),
            "successes" => Delta::Int(s.column, (r.conversion_achieved == Some(true)).into()),
            "failures" => Delta::Int(s.column, (r.conversion_achieved == Some(false)).into()),
            // quality_score is a double precision column; the aggregate sums it as numeric,
            // converted by PostgreSQL's own float8 -> numeric cast, as the statement path does.
            "quality_sum" => Delta::Num(
                s.column,
                r.quality_score.and_then(|q| {
                    nonzero(
                        unsafe { pgrx::direct_function_call::<AnyNumeric>(pg_sys::float8_numeric, &[q.into_datum()]) }.unwrap_or_default(),
                    )
                }),
            ),
            "quality_count" => Delta::Int(s.column, r.quality_score.is_some().into()),
            "retry_sum" => Delta::Num(s.column, nonzero(AnyNumeric::from(r.retry_count.unwrap_or(0)))),
            "execution_time_sum" => Delta::Num(s.column, nonzero(AnyNumeric::from(r.execution_time_ms.unwrap_or(0)))),
            "execution_time_count" => Delta::Int(s.column, r.execution_time_ms.is_some().into()),
            other => crate::error::raise(
                crate::error::Code::ERRCODE_INTERNAL_ERROR,
                format!("no per-row value for the aggregate sum \"{other}\""),
                "This is a bug in neon_budget: src/write/mod.rs row_sums must know every sum of neon_budget_common::aggregates::SUMS.",
            ),
        })
        .collect()
}

/// The value of key column `column` (one of `ROW_KEYS`) for row `r`: None for `campaign_id`
/// of a row without a campaign, whose `campaign_key` is `''`.
fn key_value<'r>(r: &'r OneRow, column: &str) -> Option<&'r str> {
    match column {
        "billing_month" => Some(&r.billing_month),
        "billing_day" => Some(&r.billing_day),
        "campaign_id" => r.campaign_id.as_deref(),
        "agent_type" => Some(&r.agent_type),
        "campaign_key" => Some(r.campaign_id.as_deref().unwrap_or("")),
        other => crate::error::raise(
            crate::error::Code::ERRCODE_INTERNAL_ERROR,
            format!("no value for the aggregate key \"{other}\""),
            "This is a bug in neon_budget: src/write/mod.rs key_value must know every key of neon_budget_common::aggregates::ROW_KEYS.",
        ),
    }
}

thread_local! {
    /// [`single_row_upsert_sql`], generated once per backend (`plans::plan` keeps its plan).
    static UPSERT_SQL: String = single_row_upsert_sql();
}

/// Step 2's SQL path: one statement of single-row upserts of this backend's slot rows
/// ([`single_row_upsert_sql`]), remembering their new TIDs for the heap path of the next write.
fn upsert_sql(r: &OneRow, slot: i32, sums: &[Delta], rows: &[(Key<'_>, Vec<Delta>)]) {
    let mut types = vec![oid::INT4];
    types.extend(ROW_KEYS.iter().map(|_| oid::TEXT));
    types.extend(SUMS.iter().map(|s| if s.counter { oid::INT8 } else { oid::NUMERIC }));
    let mut args: Vec<pgrx::datum::DatumWithOid<'_>> = vec![slot.into()];
    args.extend(ROW_KEYS.iter().map(|(k, _)| key_value(r, k).into()));
    args.extend(sums.iter().map(|d| match d {
        Delta::Num(_, n) => n.clone().unwrap_or_default().into(),
        Delta::Int(_, i) => (*i).into(),
        Delta::Set(_, n) => n.clone().into(),
    }));
    owner::as_owner(|| {
        Spi::connect_mut(|client| {
            let p = UPSERT_SQL.with(|sql| plans::plan(client, sql, &types));
            let tids: Vec<Option<pg_sys::ItemPointerData>> = spi(client.update(&*p, None, &args).and_then(|t| {
                let t = t.first();
                (1..=AGGREGATES.len()).map(|i| t.get(i)).collect::<Result<Vec<_>, _>>()
            }));
            // One TID per aggregate, in AGGREGATES (= Table) order; none where the row has no key.
            for (key, _) in rows {
                if let Some(tid) = tids[key.table as usize] {
                    slots::remember(key, tid);
                }
            }
        })
    });
}
