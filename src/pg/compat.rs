//! Every call whose form differs between PostgreSQL major versions, in one place.
//!
//! neon_budget is built and tested on PostgreSQL 15 only (the version Debian 12 ships; the
//! `pg15` feature is the only one `Cargo.toml` declares). A port to another major version is a
//! change to this file, plus the feature: PostgreSQL 16 changed `simple_heap_update` (it also
//! reports which indexes the update must maintain), and 17 renamed `MyBackendId` to
//! `MyProcNumber`.
use pgrx::prelude::*;

/// This backend's id among the backends running at once (`MyBackendId`), 1..MaxBackends.
pub fn backend_id() -> i32 {
    unsafe { pg_sys::MyBackendId }
}

/// `simple_heap_update(rel, otid, newtup)`: an MVCC update of the row version at `otid`, which
/// this backend's transaction may update (an ERROR otherwise); the new version's TID is in
/// `newtup.t_self`.
///
/// # Safety
/// `rel` must be open with RowExclusiveLock, `otid` a valid TID of it and `newtup` a tuple of
/// its row type.
pub unsafe fn simple_heap_update(rel: pg_sys::Relation, otid: &mut pg_sys::ItemPointerData, newtup: pg_sys::HeapTuple) {
    pg_sys::simple_heap_update(rel, otid, newtup);
}
