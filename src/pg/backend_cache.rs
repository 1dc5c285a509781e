//! Per-backend caches of what the hot path looks up (relation OIDs, column numbers, rates,
//! remembered TIDs, scopes with nothing left to send) and the one mechanism that invalidates
//! them all: a relcache invalidation callback that bumps a generation number. Every change to
//! rates, budgets, thresholds or alert state sends a relcache invalidation of `alert_state`
//! (row triggers, `budget_rebuild`, see `write/scope_cache.rs`); DDL on the extension's tables sends
//! one of its own. A cache is a [`GenMap`]: it empties itself when the generation it was
//! filled in is not the current one. Alert grants (`write/alert_grants.rs`) follow a second
//! generation, bumped by invalidations of `alert_state` (settings changed) and of
//! `_alert_grant_signal` (a revocation) only.
use crate::error::{raise, Code};
use pgrx::prelude::*;
use pgrx::PgTupleDesc;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::CStr;
use std::hash::Hash;

thread_local! {
    static CALLBACK_REGISTERED: Cell<bool> = const { Cell::new(false) };
    static GENERATION: Cell<u64> = const { Cell::new(1) };
    static GRANT_GENERATION: Cell<u64> = const { Cell::new(1) };
    /// `_alert_grant_signal`, whose invalidation only bumps the grant generation.
    static SIGNAL: Cell<Option<pg_sys::Oid>> = const { Cell::new(None) };
    static LOG_GENERATION: Cell<u64> = const { Cell::new(1) };
    /// `billing_log`, whose invalidations only bump the log generation.
    static LOG: Cell<Option<pg_sys::Oid>> = const { Cell::new(None) };
    /// Relations whose invalidation bumps the generation (None: not known yet, so all do).
    static WATCHED: Cell<Option<[pg_sys::Oid; 5]>> = const { Cell::new(None) };
    static OIDS: RefCell<GenMap<usize, pg_sys::Oid>> = RefCell::new(GenMap::new());
    static ATTNUMS: RefCell<GenMap<(u32, usize), i32>> = RefCell::new(GenMap::new());
}

/// Called by PostgreSQL for every relcache invalidation this backend processes (`relid` 0 =
/// all). Only bumps the generation: caches are cleared at their next use, never in here.
unsafe extern "C-unwind" fn relcache_callback(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    if relid == pg_sys::InvalidOid || LOG.with(|l| l.get()) == Some(relid) {
        LOG_GENERATION.with(|g| g.set(g.get() + 1));
        // billing_log's column numbers (attnum) are cached under the main generation.
        GENERATION.with(|g| g.set(g.get() + 1));
    }
    if relid != pg_sys::InvalidOid && SIGNAL.with(|s| s.get()) == Some(relid) {
        GRANT_GENERATION.with(|g| g.set(g.get() + 1));
        return;
    }
    let watched = WATCHED.with(|w| w.get());
    let ours = watched.is_none_or(|w| relid == pg_sys::InvalidOid || w.contains(&relid));
    if ours {
        GENERATION.with(|g| g.set(g.get() + 1));
    }
    // Grants depend on budgets and levels (alert_state's invalidation is the "settings
    // changed" signal), not on the slot tables' statistics or storage (autovacuum sends those
    // all the time, and every backend would then settle again at once).
    let settings = watched.is_none_or(|w| relid == pg_sys::InvalidOid || relid == w[4]);
    if settings {
        GRANT_GENERATION.with(|g| g.set(g.get() + 1));
    }
}

/// The current generation; registers the callback on first use.
pub fn generation() -> u64 {
    if !CALLBACK_REGISTERED.with(|c| c.get()) {
        unsafe { pg_sys::CacheRegisterRelcacheCallback(Some(relcache_callback), pg_sys::Datum::from(0usize)) };
        CALLBACK_REGISTERED.with(|c| c.set(true));
    }
    GENERATION.with(|g| g.get())
}

/// The generation of `billing_log`'s relcache entry (bumped by every invalidation of it:
/// DDL, triggers, indexes, statistics), for what is derived from its definition; `relid` is
/// its OID. Registers the callback on first use.
pub fn log_generation(relid: pg_sys::Oid) -> u64 {
    generation();
    LOG.with(|l| l.set(Some(relid)));
    LOG_GENERATION.with(|g| g.get())
}

/// The current grant generation (see the module docs); registers the callback on first use.
pub fn grant_generation() -> u64 {
    generation();
    GRANT_GENERATION.with(|g| g.get())
}

/// Restricts the generation bumps to invalidations of these relations (the slot tables and
/// `alert_state`) or of everything; `signal` (`_alert_grant_signal`) only bumps the grant
/// generation.
pub fn watch(relids: [pg_sys::Oid; 5], signal: pg_sys::Oid) {
    WATCHED.with(|w| w.set(Some(relids)));
    SIGNAL.with(|s| s.set(Some(signal)));
}

thread_local! {
    static WATCHED_OIDS: std::cell::RefCell<GenMap<(), [pg_sys::Oid; 5]>> = std::cell::RefCell::new(GenMap::new());
}

/// The OIDs of the relations whose invalidations empty the per-backend caches: the four
/// aggregate slot tables (`_month_spend`, `_campaign_spend`, `_agent_spend`, `_day_spend`) and
/// `alert_state` (whose relcache invalidation is the extension's "budget settings changed"
/// signal). Looked up and registered with [`watch`] on first use, and again after DROP and
/// CREATE EXTENSION; every cache reader calls it first.
pub fn watched() -> [pg_sys::Oid; 5] {
    if let Some(w) = WATCHED_OIDS.with(|r| r.borrow_mut().current().get(&()).copied()) {
        return w;
    }
    let w = [oid(c"_month_spend"), oid(c"_campaign_spend"), oid(c"_agent_spend"), oid(c"_day_spend"), oid(c"alert_state")];
    watch(w, oid(c"_alert_grant_signal"));
    WATCHED_OIDS.with(|c| c.borrow_mut().current().insert((), w));
    w
}

/// A map that is emptied whenever the invalidation generation changes.
pub struct GenMap<K, V> {
    generation: u64,
    map: HashMap<K, V>,
}

impl<K: Eq + Hash, V> GenMap<K, V> {
    pub fn new() -> Self {
        GenMap { generation: 0, map: HashMap::new() }
    }

    /// The map, emptied first if an invalidation arrived since it was last used.
    pub fn current(&mut self) -> &mut HashMap<K, V> {
        let g = generation();
        if self.generation != g {
            self.generation = g;
            self.map.clear();
        }
        &mut self.map
    }
}

/// The OID of relation `neon_budget.<name>` (a table or an index), looked up once per backend
/// and again after an invalidation. Raises 42P01 when it does not exist.
pub fn oid(name: &'static CStr) -> pg_sys::Oid {
    let key = name.as_ptr() as usize;
    if let Some(oid) = OIDS.with(|o| o.borrow_mut().current().get(&key).copied()) {
        return oid;
    }
    let ns = unsafe { pg_sys::get_namespace_oid(c"neon_budget".as_ptr(), false) };
    let oid = unsafe { pg_sys::get_relname_relid(name.as_ptr(), ns) };
    if oid == pg_sys::InvalidOid {
        raise(
            Code::ERRCODE_UNDEFINED_TABLE,
            format!("neon_budget.{} does not exist", name.to_string_lossy()),
            "Run ALTER EXTENSION neon_budget UPDATE; in this database (it keeps every recorded cent).",
        );
    }
    OIDS.with(|o| o.borrow_mut().current().insert(key, oid));
    oid
}

/// The attribute number of column `name` of one of the extension's tables (looked up once per
/// backend and table row type, and again after an invalidation). Raises 42703 if it is missing.
pub fn attnum(desc: &PgTupleDesc<'_>, name: &'static str) -> i32 {
    let key = (unsafe { (*desc.as_ptr()).tdtypeid }.to_u32(), name.as_ptr() as usize);
    if let Some(n) = ATTNUMS.with(|a| a.borrow_mut().current().get(&key).copied()) {
        return n;
    }
    let n = desc.iter().position(|a| !a.is_dropped() && a.name() == name).map(|i| i as i32 + 1).unwrap_or_else(|| {
        raise(
            Code::ERRCODE_UNDEFINED_COLUMN,
            format!("neon_budget table has no column {name}"),
            "Run ALTER EXTENSION neon_budget UPDATE; in this database (it keeps every recorded cent).",
        )
    });
    ATTNUMS.with(|a| a.borrow_mut().current().insert(key, n));
    n
}
