//! Catalog lookups every path makes, cached per backend: relation OIDs, column numbers, and the
//! relations whose invalidations count ([`watched`]). The caches are [`super::cache::Cache`]s,
//! emptied by the invalidation generations of [`super::invalidation`] (re-exported here).
use super::cache::{Cache, Follows};
use crate::error::{raise, Code};
use pgrx::prelude::*;
use pgrx::PgTupleDesc;
use std::cell::RefCell;
use std::ffi::CStr;

thread_local! {
    /// Relation OIDs by the address of their (static) name.
    static OIDS: RefCell<Cache<usize, pg_sys::Oid>> = RefCell::new(Cache::new(Follows::Settings, 256));
    /// Column numbers by (row type, address of the static column name).
    static ATTNUMS: RefCell<Cache<(u32, usize), i32>> = RefCell::new(Cache::new(Follows::Settings, 1024));
}

pub use super::invalidation::{generation, grant_generation, log_generation, watch};

thread_local! {
    static WATCHED_OIDS: RefCell<Cache<(), [pg_sys::Oid; 6]>> = RefCell::new(Cache::new(Follows::Settings, 1));
}

/// The OIDs of the relations whose invalidations empty the per-backend caches: the five
/// aggregate slot tables (`_month_spend`, `_campaign_spend`, `_agent_spend`, `_day_spend`,
/// `_campaign_agent_day_spend`) and
/// `alert_state` (whose relcache invalidation is the extension's "budget settings changed"
/// signal). Looked up and registered with [`watch`] on first use, and again after DROP and
/// CREATE EXTENSION; every cache reader calls it first.
pub fn watched() -> [pg_sys::Oid; 6] {
    if let Some(w) = WATCHED_OIDS.with(|r| r.borrow_mut().get(&()).copied()) {
        return w;
    }
    let w = [
        oid(c"_month_spend"),
        oid(c"_campaign_spend"),
        oid(c"_agent_spend"),
        oid(c"_day_spend"),
        oid(c"_campaign_agent_day_spend"),
        oid(c"alert_state"),
    ];
    watch(w, oid(c"_alert_grant_signal"));
    WATCHED_OIDS.with(|c| c.borrow_mut().insert((), w));
    w
}

/// The OID of relation `neon_budget.<name>` (a table or an index), looked up once per backend
/// and again after an invalidation. Raises 42P01 when it does not exist.
pub fn oid(name: &'static CStr) -> pg_sys::Oid {
    let key = name.as_ptr() as usize;
    if let Some(oid) = OIDS.with(|o| o.borrow_mut().get(&key).copied()) {
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
    OIDS.with(|o| o.borrow_mut().insert(key, oid));
    oid
}

/// The attribute number of column `name` of one of the extension's tables (looked up once per
/// backend and table row type, and again after an invalidation). Raises 42703 if it is missing.
pub fn attnum(desc: &PgTupleDesc<'_>, name: &'static str) -> i32 {
    let key = (unsafe { (*desc.as_ptr()).tdtypeid }.to_u32(), name.as_ptr() as usize);
    if let Some(n) = ATTNUMS.with(|a| a.borrow_mut().get(&key).copied()) {
        return n;
    }
    let n = desc.iter().position(|a| !a.is_dropped() && a.name() == name).map(|i| i as i32 + 1).unwrap_or_else(|| {
        raise(
            Code::ERRCODE_UNDEFINED_COLUMN,
            format!("neon_budget table has no column {name}"),
            "Run ALTER EXTENSION neon_budget UPDATE; in this database (it keeps every recorded cent).",
        )
    });
    ATTNUMS.with(|a| a.borrow_mut().insert(key, n));
    n
}
