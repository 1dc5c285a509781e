//! Recognising a restore (`pg_restore`, or a plain dump replayed with `psql`).
//!
//! A restore loads `billing_log` before the dump's month settings, campaigns and the rest are
//! complete, so while it runs the aggregate trigger only rebuilds the aggregates: it creates no
//! month rows (the dump's own follow) and sends no alerts (the dump's alert state is restored as
//! it was), and the purged sums in `purged_spend` are added back as they arrive.
//!
//! Since that changes what happens to money, the signal must be one that no ordinary caller can
//! give: the session is a restore when the role it acts as is a **superuser** (only a superuser
//! can create this extension, so only a superuser restores it) **and** `row_security` is `off`,
//! which `pg_dump` writes at the top of every dump and `pg_restore` sets on every connection
//! (unless `--enable-row-security`). `application_name`, which any role can set, plays no part.
//! `purge_before` itself never counts as a restore; this module also holds its flag, since the
//! aggregate trigger asks both questions of the same session.
use pgrx::prelude::*;
use std::cell::Cell;

thread_local! {
    static PURGING: Cell<bool> = const { Cell::new(false) };
}

/// Whether this backend is deleting rows for `purge_before` (the aggregate trigger then keeps
/// the totals: `purged_spend` holds the purged rows' share).
pub fn purging() -> bool {
    PURGING.with(|p| p.get())
}

/// Sets the purge flag for its lifetime (also when an ERROR unwinds through it).
pub struct PurgeGuard;

impl PurgeGuard {
    /// Marks this backend as purging until the guard is dropped.
    pub fn new() -> PurgeGuard {
        PURGING.with(|p| p.set(true));
        PurgeGuard
    }
}

impl Drop for PurgeGuard {
    fn drop(&mut self) {
        PURGING.with(|p| p.set(false));
    }
}

/// Whether this session is restoring a dump (see the module documentation).
pub fn restoring() -> bool {
    if purging() {
        return false;
    }
    let off = unsafe {
        let value = pg_sys::GetConfigOption(c"row_security".as_ptr(), false, false);
        !value.is_null() && std::ffi::CStr::from_ptr(value).to_bytes() == b"off"
    };
    off && unsafe { pg_sys::superuser_arg(crate::pg::owner::caller()) }
}
