//! Escrow grants: when a write may skip the alert read.
//!
//! The write that reaches an alert level must send it, so a single-row write (every
//! `track_cost`) would have to read the exact totals of its month and campaign after its row
//! (`write/scope_cache.rs`, `pg/table_scan.rs`): a dozen index lookups that sum every backend's slot row,
//! which costs more than the write itself. Far from a level that read finds nothing, and this
//! module lets a backend prove that without reading, with escrow (the technique of O'Neil's
//! "The Escrow Transactional Method", ACM TODS 1986, used for hot aggregate counters): the
//! headroom below a scope's next level is handed out in grants, one per backend and scope, and
//! a backend writes without reading while its own spend stays within its grant.
//!
//! - A grant is stored in the backend's own slot row of the scope (`alert_cap` of
//!   `_month_spend` / `_campaign_spend`): the slot's spend may grow up to `alert_cap` without a
//!   read. The backend remembers how much of its grant is left (`remaining`, dollars).
//! - A write that its grant does not cover reads the exact totals (and sends what is due), then
//!   settles ([`settle`]) under a short per-scope lock (an advisory lock released before the
//!   function returns; it is tried a few times, never queued for, so a write cannot deadlock or
//!   stall on it: if another session holds it by hand, the write revokes instead). It reads
//!   every slot row of the scope with a dirty snapshot (committed and in-progress versions, so
//!   spend that other transactions have written but not committed is counted), bounds each
//!   other slot's final spend by `max(spend, alert_cap)`, and the headroom is
//!   `H = next level - own spend - Σ bounds`. If `H > 0` it takes `H / (2 × slots)`; if not,
//!   it revokes every grant of every backend ([`revoke`]). A grant is kept only if no
//!   revocation reached this backend between the start of the write and the grant (a lock
//!   taken on the way can process one).
//! - Any other write that raises spend outside a grant (the SQL path of multi-row statements,
//!   COPY, UPDATE, a restore, a REPEATABLE READ writer) revokes too.
//! - Revoking sends a relcache invalidation of `_alert_grant_signal` (a table that never holds
//!   rows) when the transaction commits; each backend drops its grants when it processes it,
//!   which a writer does before every write (`AcceptInvalidationMessages`). Changes to
//!   budgets, thresholds, levels sent, `budget_rebuild` and TRUNCATE drop grants the same way
//!   (`pg/backend_cache.rs`). A rolled-back or prepared transaction drops this backend's grants
//!   (its `alert_cap` may have been undone).
//!
//! Why no level is skipped: settlements are ordered by the scope lock, and each one sees the
//! grants of those before it and all spend written before it started (a writer writes its row
//! first, then settles). So after every settlement that grants, the spend of every slot can only
//! reach its bound without another settlement, and the bounds stay below the level; spend
//! outside the bounds is written only by transactions that revoke, and their revocation reaches
//! every backend before it can see their spend. A write covered by its grant would therefore
//! have read totals below every level not yet sent.
use crate::pg::backend_cache;
use crate::pg::cache::{self, Cache, Follows, Num};
use crate::pg::table_scan::{scan_text_eq, Snapshot};
use crate::write::slots::{self, Delta, Key, Table};
use pgrx::prelude::*;
use pgrx::AnyNumeric;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

/// A scope that alert levels apply to: `("month", "", month)` or `("campaign", id, month)`.
pub type ScopeRef<'a> = (&'static str, &'a str, &'a str);

thread_local! {
    /// Per scope, the dollars left of this backend's grant (emptied when the grant generation
    /// changes: a revocation or a settings change).
    static GRANTS: RefCell<Cache<cache::ScopeKey, Num>> = RefCell::new(Cache::new(Follows::Grants, cache::PER_CAMPAIGN));
    static CALLBACKS_REGISTERED: Cell<bool> = const { Cell::new(false) };
}

/// The cache key of a scope (no allocation).
fn key<'a>((scope, scope_key, month): ScopeRef<'a>) -> cache::ScopeRef<'a> {
    cache::ScopeRef::of(scope, scope_key, month)
}

/// Takes a write of `cost` dollars out of this backend's grants of `scopes` when they cover it
/// in every one of them, and says whether they did; changes nothing when one does not. The
/// cost is converted once, and only when every scope has a grant.
pub fn take(scopes: &[ScopeRef<'_>], cost: &AnyNumeric) -> bool {
    GRANTS.with(|g| {
        let mut g = g.borrow_mut();
        let mut cost_num: Option<Num> = None;
        let covered = scopes.iter().all(|s| match g.get(&key(*s)) {
            Some(left) => left.compare(cost_num.get_or_insert_with(|| Num::new(cost))) != std::cmp::Ordering::Less,
            None => false,
        });
        if covered {
            if let Some(cost) = &cost_num {
                for s in scopes {
                    if let Some(left) = g.get_mut(&key(*s)) {
                        *left = left.sub(cost);
                    }
                }
            }
        }
        covered
    })
}

/// Drops this backend's grants (not the other backends').
pub fn drop_local() {
    GRANTS.with(|g| g.borrow_mut().clear());
}

/// Revokes the grants of every backend: this one now, the others when this transaction commits
/// (see the module docs).
pub fn revoke() {
    drop_local();
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(backend_cache::oid(c"_alert_grant_signal")) };
}

/// Registers (once per backend) the callbacks that drop this backend's grants when a
/// transaction or subtransaction rolls back or is prepared: the `alert_cap` it wrote may be
/// undone.
fn register_callbacks() {
    if CALLBACKS_REGISTERED.with(|c| c.replace(true)) {
        return;
    }
    unsafe {
        pg_sys::RegisterXactCallback(Some(xact_callback), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(subxact_callback), std::ptr::null_mut());
    }
}

unsafe extern "C-unwind" fn xact_callback(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    use pg_sys::XactEvent::*;
    if matches!(event, XACT_EVENT_ABORT | XACT_EVENT_PARALLEL_ABORT | XACT_EVENT_PREPARE) {
        drop_local();
    }
}

unsafe extern "C-unwind" fn subxact_callback(
    event: pg_sys::SubXactEvent::Type,
    _my: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        drop_local();
    }
}

/// The slot table, its primary key and its key columns for a scope.
type SlotTable<'a> = (Table, &'static std::ffi::CStr, &'static std::ffi::CStr, Vec<(&'static str, &'a str)>);

fn slot_table<'a>((scope, key, month): ScopeRef<'a>) -> SlotTable<'a> {
    if scope == "month" {
        (Table::Month, c"_month_spend", c"_month_spend_pkey", vec![("billing_month", month)])
    } else {
        (Table::Campaign, c"_campaign_spend", c"_campaign_spend_pkey", vec![("campaign_id", key), ("billing_month", month)])
    }
}

/// Settles a scope after a write its grant did not cover (see the module docs): under the
/// scope's lock, grants this backend part of the headroom below `next_level` (dollars, the
/// lowest level not sent), or revokes every backend's grants when there is none. This
/// backend's write is already in its slot row. `generation` is the grant generation sampled
/// before the write read anything: if a revocation is processed in between (any lock taken
/// can process one), the grant is not kept.
pub fn settle(scope: ScopeRef<'_>, next_level: &AnyNumeric, generation: u64) {
    register_callbacks();
    drop_local_scope(scope);
    // A REPEATABLE READ or SERIALIZABLE transaction read the level with its old snapshot.
    if unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32 {
        revoke();
        return;
    }
    let (table, rel, index, cols) = slot_table(scope);
    let me = crate::write::slots::current();
    let Some(lock) = ScopeLock::acquire(scope) else {
        // Another session holds the scope's lock for long (only someone taking the advisory
        // lock by hand can): spend outside any grant, without waiting.
        revoke();
        return;
    };
    // Every version a transaction may still commit: committed, and written by transactions in
    // progress (both versions of a row one of them updated; its highest value counts).
    let dirty = Snapshot::dirty();
    let mut bounds: HashMap<i32, AnyNumeric> = HashMap::new();
    let mut own = AnyNumeric::from(0);
    scan_text_eq(&dirty, rel, index, &cols, |r| {
        let slot = r.get::<i32>("slot").unwrap_or(-1);
        let spent = r.get::<AnyNumeric>("cost").unwrap_or_default();
        if slot == me {
            own = spent;
            return;
        }
        let cap = r.get::<AnyNumeric>("alert_cap").unwrap_or_default();
        let bound = if cap > spent { cap } else { spent };
        let entry = bounds.entry(slot).or_insert_with(|| bound.clone());
        if bound > *entry {
            *entry = bound;
        }
    });
    drop(dirty);
    let others = bounds.values().fold(AnyNumeric::from(0), |a, b| a + b.clone());
    let headroom = next_level.clone() - own.clone() - others;
    if headroom <= AnyNumeric::from(0) {
        drop(lock);
        revoke();
        return;
    }
    let share = headroom / AnyNumeric::from(2 * (bounds.len() as i64 + 1));
    let cap = own + share.clone();
    let row = Key::new(table, &cols);
    let written = slots::try_apply(&slots::rels(), me, &[(row, vec![Delta::Set("alert_cap", cap)])]);
    drop(lock);
    if written && backend_cache::grant_generation() == generation {
        GRANTS.with(|g| g.borrow_mut().insert(key(scope).to_key(), Num::new(&share)));
    }
}

fn drop_local_scope(scope: ScopeRef<'_>) {
    GRANTS.with(|g| g.borrow_mut().remove(&key(scope)));
}

/// The settlement lock of one scope: a transaction-level advisory lock of class
/// `GrantSettlement` (`pg/locks.rs`), released as soon as the settlement is written (or by the rollback
/// of an error in between). Nobody holds it while waiting for anything else, so it is taken
/// without queueing: tried for up to [`LOCK_PATIENCE_US`] µs.
struct ScopeLock(pg_sys::LOCKTAG);

/// How long a settlement tries for the scope lock before settling without it (revoking), in
/// µs, and the pauses between tries (doubling from the first to the longest). A holder keeps
/// it for tens of µs, but on an overloaded machine it may be descheduled meanwhile; giving up
/// too early would revoke every backend's grants, and all of them would then settle at once.
const LOCK_PATIENCE_US: i64 = 20_000;
const LOCK_FIRST_PAUSE_US: i64 = 10;
const LOCK_MAX_PAUSE_US: i64 = 1_000;

impl ScopeLock {
    fn acquire(scope: ScopeRef<'_>) -> Option<ScopeLock> {
        let (scope, scope_key, month) = scope;
        let text = format!("{scope}\0{scope_key}\0{month}");
        let hash = crate::pg::locks::hash_key(&text);
        let tag = crate::pg::locks::tag(crate::pg::locks::Class::GrantSettlement, hash);
        let mut waited = 0;
        let mut pause = LOCK_FIRST_PAUSE_US;
        loop {
            if crate::pg::locks::try_now(&tag) {
                return Some(ScopeLock(tag));
            }
            if waited >= LOCK_PATIENCE_US {
                return None;
            }
            unsafe { pg_sys::pg_usleep(pause) };
            pgrx::check_for_interrupts!();
            waited += pause;
            pause = (pause * 2).min(LOCK_MAX_PAUSE_US);
        }
    }
}

impl Drop for ScopeLock {
    fn drop(&mut self) {
        crate::pg::locks::release(&self.0);
    }
}
