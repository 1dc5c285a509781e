//! Blocked decisions (issue #13, part 5; the original product's log of blocked executions):
//! every `budget_check` that answers `can_execute = false` and every `budget_reserve` refused
//! with 53000 is counted per day, decision, scope and reason in `_blocked_count` (the
//! `blocked_executions` view, readable by `neon_budget_reader`).
//!
//! - **Per scope and reason.** A refusal counts once under each scope that refused it: the
//!   month (`scope_key` `''`) and the campaign (its id). The reason is `budget_reached` when
//!   spend plus live reservations had already reached the budget, else `estimate_too_large`
//!   (the estimate would pass it). The day is today's `YYYY-MM-DD` in `neon_budget.timezone`.
//! - **Counts that outlive their transaction.** A refused reservation's own transaction is
//!   rolled back by its 53000 error, and `budget_check` may run in a READ ONLY transaction. So
//!   a refusal is first counted in this backend's memory (pending), and written to this
//!   backend's own rows of `_blocked_count` (one per slot, so backends never wait on each other)
//!   by the first call to `budget_check`, `budget_reserve` or `track_cost` that runs in a
//!   transaction that may write (the refusing `budget_check` itself, when it may), and at the
//!   latest when the backend exits (in a transaction of its own). A count written by a
//!   transaction or subtransaction that then rolls back is pending again.
//! - **Prepared transactions.** When `max_prepared_transactions` allows them, counts are not
//!   written inside a transaction block (`PREPARE TRANSACTION` could keep the row locked after
//!   the backend is gone), only by autocommit calls and at exit.
//! - **Where it is not counted.** Refusals on a standby are not counted (not even after a
//!   promotion). A backend that is killed (SIGKILL, a crash) loses its pending counts.
//! - **The allowed path pays nothing**: one check that nothing is pending.
use crate::error::spi;
use pgrx::prelude::*;
use pgrx::AnyNumeric;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

/// Which call refused.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Decision {
    BudgetCheck,
    BudgetReserve,
}

impl Decision {
    fn as_str(self) -> &'static str {
        match self {
            Decision::BudgetCheck => "budget_check",
            Decision::BudgetReserve => "budget_reserve",
        }
    }
}

/// A counted refusal: day, decision, scope (`month` or `campaign`), scope key, reason.
type Key = (String, Decision, &'static str, String, &'static str);

#[derive(Default)]
struct Counts {
    /// Not written yet.
    pending: HashMap<Key, i64>,
    /// Written by the current transaction, with the subtransaction that wrote them: pending
    /// again if it rolls back, done when the transaction commits.
    in_flight: Vec<(pg_sys::SubTransactionId, Key, i64)>,
}

thread_local! {
    static COUNTS: RefCell<Counts> = RefCell::new(Counts::default());
    static CALLBACKS: Cell<bool> = const { Cell::new(false) };
}

/// The reason a scope with `held` dollars (spend plus live reservations) of `budget` refused.
pub fn reason(held: &AnyNumeric, budget: &AnyNumeric) -> &'static str {
    if held >= budget {
        "budget_reached"
    } else {
        "estimate_too_large"
    }
}

/// Counts one refusal by `decision` under each of `scopes` (`("month", "", reason)`,
/// `("campaign", id, reason)`), then writes what is pending when this transaction may write.
/// For `budget_reserve`, whose transaction the refusal rolls back, call it just before raising
/// (the count stays pending).
pub fn count(decision: Decision, scopes: &[(&'static str, &str, &'static str)], write_now: bool) {
    // A standby never writes them; counted there, they would be written after a promotion.
    if unsafe { pg_sys::RecoveryInProgress() } {
        return;
    }
    register_callbacks();
    let day = crate::month::day_of(unsafe { pg_sys::GetCurrentTransactionStartTimestamp() });
    COUNTS.with(|c| {
        let mut c = c.borrow_mut();
        for (scope, key, reason) in scopes {
            *c.pending.entry((day.clone(), decision, *scope, key.to_string(), *reason)).or_insert(0) += 1;
        }
    });
    if write_now {
        flush();
    }
}

/// Whether this transaction may write the counts: not on a standby, not READ ONLY, not in a
/// parallel operation, and not in a transaction block that `PREPARE TRANSACTION` could turn
/// into a prepared transaction (when `max_prepared_transactions` allows them): a prepared
/// transaction's counter row would outlive this backend and make the next backend with the
/// same slot wait for it.
fn can_write() -> bool {
    crate::error::may_write()
        && unsafe { !pg_sys::IsInParallelMode() && (!crate::error::prepared_transactions_allowed() || !pg_sys::IsTransactionBlock()) }
}

/// Writes the pending counts in the current transaction, as the extension's owner, when there
/// are any and the transaction may write. Called by the SQL functions that decide or write.
pub fn flush() {
    if COUNTS.with(|c| c.borrow().pending.is_empty()) || !can_write() {
        return;
    }
    let pending: Vec<(Key, i64)> = COUNTS.with(|c| c.borrow_mut().pending.drain().collect());
    let mut days = Vec::new();
    let mut decisions = Vec::new();
    let mut scopes = Vec::new();
    let mut keys = Vec::new();
    let mut reasons = Vec::new();
    let mut counts = Vec::new();
    for ((day, decision, scope, key, reason), n) in &pending {
        days.push(day.clone());
        decisions.push(decision.as_str().to_string());
        scopes.push(scope.to_string());
        keys.push(key.clone());
        reasons.push(reason.to_string());
        counts.push(*n);
    }
    // Marked in flight first: an error below rolls this transaction back, and the callback
    // then puts them back.
    let subxact = unsafe { pg_sys::GetCurrentSubTransactionId() };
    COUNTS.with(|c| c.borrow_mut().in_flight.extend(pending.into_iter().map(|(k, n)| (subxact, k, n))));
    crate::pg::owner::as_owner(|| {
        spi(Spi::run_with_args(
            "INSERT INTO neon_budget._blocked_count AS b (billing_day, decision, scope, scope_key, reason, slot, blocked, last_blocked)
             SELECT u.d, u.dec, u.s, u.k, u.r, $1, u.n, pg_catalog.now()
               FROM ROWS FROM (pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::text[]), pg_catalog.unnest($4::text[]),
                               pg_catalog.unnest($5::text[]), pg_catalog.unnest($6::text[]), pg_catalog.unnest($7::bigint[]))
                    AS u(d, dec, s, k, r, n)
             ON CONFLICT (billing_day, decision, scope, scope_key, reason, slot) DO UPDATE
                SET blocked = b.blocked OPERATOR(pg_catalog.+) EXCLUDED.blocked, last_blocked = EXCLUDED.last_blocked",
            &[
                crate::write::slots::current().into(),
                days.into(),
                decisions.into(),
                scopes.into(),
                keys.into(),
                reasons.into(),
                counts.into(),
            ],
        ))
    });
}

/// Registers (once per backend) the transaction callbacks and the exit callback.
fn register_callbacks() {
    if CALLBACKS.with(Cell::get) {
        return;
    }
    unsafe {
        pg_sys::RegisterXactCallback(Some(xact_callback), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(subxact_callback), std::ptr::null_mut());
        pg_sys::before_shmem_exit(Some(at_exit), pg_sys::Datum::from(0usize));
    }
    CALLBACKS.with(|c| c.set(true));
}

/// Puts the in-flight counts of subtransactions matching `rolled_back` back to pending.
fn back_to_pending(rolled_back: impl Fn(pg_sys::SubTransactionId) -> bool) {
    COUNTS.with(|c| {
        let mut c = c.borrow_mut();
        let in_flight = std::mem::take(&mut c.in_flight);
        for (subxact, key, n) in in_flight {
            if rolled_back(subxact) {
                *c.pending.entry(key).or_insert(0) += n;
            } else {
                c.in_flight.push((subxact, key, n));
            }
        }
    });
}

#[pg_guard]
unsafe extern "C-unwind" fn xact_callback(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    match event {
        // (A transaction block never writes counts when it may be prepared: see can_write.)
        pg_sys::XactEvent::XACT_EVENT_COMMIT | pg_sys::XactEvent::XACT_EVENT_PARALLEL_COMMIT | pg_sys::XactEvent::XACT_EVENT_PREPARE => {
            COUNTS.with(|c| c.borrow_mut().in_flight.clear())
        }
        pg_sys::XactEvent::XACT_EVENT_ABORT | pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT => back_to_pending(|_| true),
        _ => {}
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn subxact_callback(
    event: pg_sys::SubXactEvent::Type,
    my_subid: pg_sys::SubTransactionId,
    parent_subid: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    match event {
        pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB => back_to_pending(|s| s == my_subid),
        pg_sys::SubXactEvent::SUBXACT_EVENT_COMMIT_SUB => COUNTS.with(|c| {
            for entry in c.borrow_mut().in_flight.iter_mut().filter(|e| e.0 == my_subid) {
                entry.0 = parent_subid;
            }
        }),
        _ => {}
    }
}

/// At backend exit: writes what is still pending in a transaction of its own (as PostgreSQL
/// removes a backend's temporary tables at exit). Not on a standby, and not when the extension
/// is no longer installed in this database. An error here is FATAL (PostgreSQL promotes errors
/// while a backend exits): it is logged and the counts are lost.
#[pg_guard]
unsafe extern "C-unwind" fn at_exit(_code: std::ffi::c_int, _arg: pg_sys::Datum) {
    if pg_sys::RecoveryInProgress() {
        return;
    }
    // A transaction still open (a client gone mid-transaction, a terminated backend) is rolled
    // back first: the counts it had written are pending again.
    pg_sys::AbortOutOfAnyTransaction();
    if COUNTS.with(|c| c.borrow().pending.is_empty()) {
        return;
    }
    pg_sys::StartTransactionCommand();
    let schema = pg_sys::get_namespace_oid(c"neon_budget".as_ptr(), true);
    let installed = schema != pg_sys::InvalidOid && pg_sys::get_relname_relid(c"_blocked_count".as_ptr(), schema) != pg_sys::InvalidOid;
    if installed {
        // A session with default_transaction_read_only still records what it refused.
        pg_sys::XactReadOnly = false;
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
        flush();
        pg_sys::PopActiveSnapshot();
    }
    pg_sys::CommitTransactionCommand();
}
