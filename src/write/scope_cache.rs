//! When a write must read the totals to check alert levels.
//!
//! A single-row write (every `track_cost`) reads the exact totals of its month and campaign,
//! with the month's and campaign's budgets and the levels already sent, whenever the scope
//! still has a level to send and its backend's escrow grant (`write/alert_grants.rs`) does not cover
//! the write: a dozen primary-key lookups without SQL (`pg/table_scan.rs`), after its own slot
//! rows were updated, so the write that reaches a level sends it. (Two concurrent transactions
//! that reach a level together, each without seeing the other's spend, leave it to the next
//! write or `budget_check`, as before.) This module knows the scopes that cannot have anything
//! to send: a scope whose three levels are all sent, or a campaign without a budget.
//!
//! That knowledge is cached per backend and is forgotten whenever it may have changed: budgets,
//! thresholds, levels sent or re-armed, campaigns, a `budget_rebuild`. Each such change
//! invalidates the relcache entry of `alert_state` (row and TRUNCATE triggers on the settings
//! tables, `budget_rebuild`), and a writer processes pending invalidations before each write
//! (`AcceptInvalidationMessages`), so it never acts on a change committed before its write.
use crate::pg::cache::{self, Cache, Follows, ScopeKey, ScopeRef};
use pgrx::prelude::*;
use std::cell::RefCell;

thread_local! {
    /// Per scope: true when nothing is left to send (every level sent, or no budget).
    static WATCHES: RefCell<Cache<ScopeKey, bool>> = RefCell::new(Cache::new(Follows::Settings, cache::PER_CAMPAIGN));
}

/// Forgets everything (after this backend rewrote its slot rows with SQL; an invalidation
/// empties the cache by itself).
pub fn clear() {
    WATCHES.with(|w| w.borrow_mut().clear());
}

/// Whether `sent` holds all three levels.
pub fn all_sent(sent: &[String]) -> bool {
    [crate::alerts::Level::Warning, crate::alerts::Level::Critical, crate::alerts::Level::Exceeded]
        .iter()
        .all(|l| sent.iter().any(|s| s == l.as_str()))
}

/// Whether `scope` is known to have nothing left to send.
pub fn nothing_left(scope: &'static str, scope_key: &str, month: &str) -> bool {
    WATCHES.with(|w| w.borrow_mut().get(&ScopeRef::of(scope, scope_key, month)) == Some(&true))
}

/// Records what a read found for a scope that had nothing due: whether anything is left to send.
pub fn record(scope: &'static str, scope_key: &str, month: &str, nothing_left: bool) {
    WATCHES.with(|w| w.borrow_mut().insert(ScopeRef::of(scope, scope_key, month).to_key(), nothing_left));
}

/// Whether this backend read the scope since the last invalidation (so its month has a
/// settings row).
pub fn knows(scope: &'static str, scope_key: &str, month: &str) -> bool {
    WATCHES.with(|w| w.borrow_mut().get(&ScopeRef::of(scope, scope_key, month)).is_some())
}

/// Forgets a scope: the next write to it reads.
pub fn forget(scope: &'static str, scope_key: &str, month: &str) {
    WATCHES.with(|w| w.borrow_mut().remove(&ScopeRef::of(scope, scope_key, month)));
}

/// Tells every backend that budgets, levels or aggregates changed (see the module docs): a
/// relcache invalidation of `alert_state`, sent when this transaction commits.
pub fn invalidate_all() {
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(crate::pg::backend_cache::oid(c"alert_state")) };
}

/// `neon_budget._budget_settings_changed()`: AFTER trigger on `monthly_budget_setting`,
/// `campaign`, `alert_state` and `agent_rate` (row level for INSERT, UPDATE and DELETE, so a
/// statement that changes no row invalidates nothing; statement level for TRUNCATE): every
/// backend forgets its cached rates, budgets and levels (see [`invalidate_all`]).
#[pg_trigger]
fn _budget_settings_changed<'a>(
    _trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, pgrx::PgTriggerError> {
    invalidate_all();
    Ok(None)
}
