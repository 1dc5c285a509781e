//! The invalidation generations that empty the per-backend caches (`pg/cache.rs`).
//!
//! One relcache invalidation callback bumps generation numbers; caches compare the number they
//! were filled in with the current one. Every change to rates, budgets, thresholds or alert
//! state sends a relcache invalidation of `alert_state` (row triggers, `budget_rebuild`, see
//! `write/scope_cache.rs`); DDL on the extension's tables sends one of its own. Alert grants
//! (`write/alert_grants.rs`) follow a second generation, bumped by invalidations of
//! `alert_state` (settings changed) and of `_alert_grant_signal` (a revocation) only; what is
//! derived from `billing_log`'s definition follows a third ([`log_generation`]).
use pgrx::prelude::*;
use std::cell::Cell;

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
    static WATCHED: Cell<Option<[pg_sys::Oid; 6]>> = const { Cell::new(None) };
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
    let settings = watched.is_none_or(|w| relid == pg_sys::InvalidOid || relid == w[ALERT_STATE]);
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

/// Where `alert_state` is among the relations given to [`watch`]: last, after the five slot
/// tables.
pub const ALERT_STATE: usize = 5;

/// Restricts the generation bumps to invalidations of these relations (the slot tables, then
/// `alert_state` at [`ALERT_STATE`]) or of everything; `signal` (`_alert_grant_signal`) only bumps the grant
/// generation.
pub fn watch(relids: [pg_sys::Oid; 6], signal: pg_sys::Oid) {
    WATCHED.with(|w| w.set(Some(relids)));
    SIGNAL.with(|s| s.set(Some(signal)));
}
