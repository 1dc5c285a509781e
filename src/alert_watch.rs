//! When a write must read the total spend to check alert levels, and when it provably need not.
//!
//! A write can only cross an alert level if the total spend of its scope (the month, or a
//! budgeted campaign in the month) reaches the lowest level not yet sent. Reading that total
//! means summing every slot row of the scope, which costs more than the write itself, so each
//! backend reads it only when the level could have been reached:
//!
//! After a read that saw total `S` and the next unsent level at `L` dollars, a backend re-reads
//! before its own spend since that read, `u`, reaches `(L - S) / N`, where `N` is
//! `MaxBackends`, the most backends that can be alive at once. If every backend keeps to this,
//! the total cannot reach `L` unnoticed: take the backend `j` whose read (at total `S_j`) is the
//! latest. Every backend `i` that wrote since then read before `j` (at `S_i <= S_j`), so what
//! it wrote since `j`'s read is at most `u_i < (L - S_i)/N` minus what it had written between
//! the two reads, which `S_j - S_i` already contains; that is less than `(L - S_j)/N`. At most
//! `N` such backends are alive, so the total stays below `S_j + (L - S_j) = L`. Hence the write
//! that makes the total reach `L` is one whose writer's `u` passes its allowance, and that
//! writer reads and sends the level. (A backend that starts has no allowance and reads first.)
//! Spend that goes down (corrections, TRUNCATE) only makes the rule more cautious. A statement
//! that takes the trigger's SQL path (multi-row INSERT, COPY, UPDATE) reads the totals of every
//! scope it raises, its own rows included, so it is a read in this sense: its backend forgets
//! its allowances and the other backends' stay valid.
//!
//! What `L` depends on can change under a backend's feet: budgets, thresholds, levels sent or
//! re-armed, and `budget_rebuild` may correct `S`. Every such change invalidates the relcache
//! entry of `alert_state` (statement triggers on the settings tables, `budget_rebuild`); each
//! backend clears its allowances when it sees that invalidation
//! (`slot_rows::take_invalidation`), at the latest at its next transaction.
//! Comparisons are exact numeric products: `N × u < L - S`.
use crate::alerts;
use pgrx::prelude::*;
use pgrx::AnyNumeric;
use std::cell::RefCell;
use std::collections::HashMap;

/// What a backend knows of one scope (month or campaign, in a month) since its last read.
struct Watch {
    /// Dollars to the lowest level not yet sent, at the read (`L - S`); None: no level left
    /// (all sent, or no budget), so no write of this backend can make an alert due.
    headroom: Option<AnyNumeric>,
    /// This backend's spend in the scope since the read, in dollars (`u`).
    used: AnyNumeric,
}

thread_local! {
    /// Keyed by [`key`].
    static WATCHES: RefCell<HashMap<String, Watch>> = RefCell::new(HashMap::new());
}

/// The cache key of (scope, scope_key, month), as in `alert_state`.
fn key(scope: &str, scope_key: &str, month: &str) -> String {
    format!("{scope}\0{scope_key}\0{month}")
}

/// Forgets every allowance (after an invalidation).
pub fn clear() {
    WATCHES.with(|w| w.borrow_mut().clear());
}

fn max_backends() -> AnyNumeric {
    AnyNumeric::from(unsafe { pg_sys::MaxBackends }.max(1))
}

/// Whether a write of `cost` dollars to `scopes` (each `(scope, scope_key, month)`) must read
/// the totals and check the alert levels. When it need not, the cost is counted against each
/// scope's allowance.
pub fn needs_read(scopes: &[(&'static str, &str, &str)], cost: &AnyNumeric) -> bool {
    let n = max_backends();
    let keys: Vec<String> = scopes.iter().map(|(scope, k, month)| key(scope, k, month)).collect();
    WATCHES.with(|w| {
        let mut w = w.borrow_mut();
        for k in &keys {
            match w.get(k.as_str()) {
                None => return true,
                Some(watch) => {
                    if let Some(headroom) = &watch.headroom {
                        if n.clone() * (watch.used.clone() + cost.clone()) >= *headroom {
                            return true;
                        }
                    }
                }
            }
        }
        for k in &keys {
            if let Some(watch) = w.get_mut(k.as_str()) {
                watch.used = watch.used.clone() + cost.clone();
            }
        }
        false
    })
}

/// Records a read of a scope that left nothing due: the total after the write (`spent`), its
/// budget (None: no budget, no alerts) and threshold, and the levels already sent.
pub fn record(scope: &'static str, key: &str, month: &str, spent: &AnyNumeric, budget: Option<&AnyNumeric>, threshold: &AnyNumeric, sent: &[String]) {
    let headroom = budget.and_then(|b| {
        let levels = [
            (threshold.clone(), alerts::Level::Warning),
            (AnyNumeric::try_from("0.95").expect("constant"), alerts::Level::Critical),
            (AnyNumeric::from(1), alerts::Level::Exceeded),
        ];
        levels
            .into_iter()
            .filter(|(_, level)| !sent.iter().any(|s| s == level.as_str()))
            .map(|(fraction, _)| fraction * b.clone())
            .min()
            .map(|lowest| lowest - spent.clone())
    });
    WATCHES.with(|w| {
        w.borrow_mut().insert(self::key(scope, key, month), Watch { headroom, used: AnyNumeric::from(0) })
    });
}

/// Whether this backend has an allowance for the scope (it read it since the last invalidation).
pub fn knows(scope: &'static str, scope_key: &str, month: &str) -> bool {
    WATCHES.with(|w| w.borrow().contains_key(&key(scope, scope_key, month)))
}

/// Forgets a scope's allowance: the next write to it reads.
pub fn forget(scope: &'static str, key: &str, month: &str) {
    WATCHES.with(|w| w.borrow_mut().remove(&self::key(scope, key, month)));
}

/// Tells every backend that budgets, levels or aggregates changed (see the module docs): a
/// relcache invalidation of `alert_state`, sent when this transaction commits.
pub fn invalidate_all() {
    let rels = crate::slot_rows::rels(false);
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(rels.alert_state) };
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
