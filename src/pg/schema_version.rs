//! One version for the library and the SQL objects of a database.
//!
//! Between installing a new build (`cargo pgrx install`, a package upgrade) and running
//! `ALTER EXTENSION neon_budget UPDATE` in a database, that database's tables, triggers and
//! function definitions are still those of the older version while the library is the new one.
//! Rather than let a write fail half-way on an object that is not there yet, every entry point
//! calls [`require_current`] first: a database whose objects are of another version is refused
//! with SQLSTATE 55000 and the hint to run `ALTER EXTENSION neon_budget UPDATE`, which keeps
//! every recorded cent. Nothing is written.
//!
//! Functions whose argument list changed keep their C symbol only if the old list still works:
//! PostgreSQL calls a symbol with the arguments the old SQL definition declares, and pgrx reads
//! the new list before the function body runs. So a changed argument list gets a new symbol
//! (`budget_report` became `budget_report_v3_wrapper` in 0.3.0, `set_agent_rate`
//! `set_agent_rate_v2_wrapper` in 0.5.0), and so does a changed result row (`budget_check`
//! became `budget_check_v2_wrapper` in 0.5.0: a definition with fewer columns would be handed
//! more values than its row holds), and the old symbol stays in the library as a shim
//! that only raises this error ([`budget_report_wrapper`], [`set_agent_rate_wrapper`],
//! [`budget_check_wrapper`]).
use crate::error::{raise, Code};
use pgrx::prelude::*;
use std::cell::Cell;

/// The version of this library, which is the version of the SQL objects it expects.
pub const LIBRARY_VERSION: &str = env!("CARGO_PKG_VERSION");

thread_local! {
    /// Whether this backend's database was found at [`LIBRARY_VERSION`] (it stays so: a
    /// backend serves one database, and no script goes back to an older version).
    static CURRENT: Cell<bool> = const { Cell::new(false) };
}

/// The `extversion` of neon_budget in this database, or None when it is not installed.
/// Read-only (no transaction id: it runs on standbys and in READ ONLY transactions too).
fn installed_version() -> Option<String> {
    crate::error::spi_opt(Spi::connect(|client| {
        client
            .select("SELECT e.extversion FROM pg_catalog.pg_extension e WHERE e.extname = 'neon_budget'", None, &[])?
            .first()
            .get_one::<String>()
    }))
}

/// Raises 55000 (object_not_in_prerequisite_state) when this database's neon_budget objects are
/// of another version than the library; see the module documentation. Free once the database
/// was found current; skipped while `CREATE EXTENSION` or `ALTER EXTENSION` runs a script.
pub fn require_current() {
    if CURRENT.with(Cell::get) || unsafe { pg_sys::creating_extension } {
        return;
    }
    match installed_version() {
        Some(v) if v == LIBRARY_VERSION => CURRENT.with(|c| c.set(true)),
        Some(v) => raise(
            Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!("neon_budget's objects in this database are version {v}, but its installed library is version {LIBRARY_VERSION}"),
            "Run ALTER EXTENSION neon_budget UPDATE; in this database as a superuser. It keeps every recorded cent; \
             spend is refused, not lost or half-written, until then.",
        ),
        // Not installed here (a call during DROP EXTENSION): nothing to compare.
        None => {}
    }
}

/// Defines an old C symbol as a shim (see the module documentation): its `pg_finfo` record and
/// a version-1 function that raises [`require_current`]'s 55000 instead of reading arguments
/// it may not have (XX000). Only a database not yet updated calls one.
macro_rules! stale_symbol {
    ($(#[$doc:meta])* $symbol:ident, $finfo:ident, $function:literal) => {
        /// `pg_finfo` record of the shim of the same name without `pg_finfo_`.
        #[no_mangle]
        #[doc(hidden)]
        pub extern "C" fn $finfo() -> &'static pg_sys::Pg_finfo_record {
            const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
            &V1
        }

        $(#[$doc])*
        ///
        /// # Safety
        /// Called by PostgreSQL's function manager with a valid `fcinfo`.
        #[no_mangle]
        #[pg_guard]
        pub unsafe extern "C-unwind" fn $symbol(_fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
            require_current();
            raise(
                Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                concat!("neon_budget.", $function, " is defined by an older version of the extension"),
                "Run ALTER EXTENSION neon_budget UPDATE; in this database as a superuser.",
            )
        }
    };
}

stale_symbol!(
    /// The C symbol that `budget_report` had up to 0.2.0 (`budget_report(text)` in 0.1.0,
    /// `budget_report(text, text)` in 0.2.0).
    budget_report_wrapper,
    pg_finfo_budget_report_wrapper,
    "budget_report"
);

stale_symbol!(
    /// The C symbol that `set_agent_rate(text, numeric)` had up to 0.4.0 (0.5.0 added
    /// `effective_from` and a result: `set_agent_rate_v2_wrapper`).
    set_agent_rate_wrapper,
    pg_finfo_set_agent_rate_wrapper,
    "set_agent_rate"
);

stale_symbol!(
    /// The C symbol that `budget_check(text, text, bigint)` had up to 0.4.0 (0.5.0 added the
    /// forecast columns to its row: `budget_check_v2_wrapper`).
    budget_check_wrapper,
    pg_finfo_budget_check_wrapper,
    "budget_check"
);

stale_symbol!(
    /// The C symbol that `track_cost` had up to 0.4.0 (0.5.0 added `model` and the token
    /// parts: `track_cost_v2_wrapper`).
    track_cost_wrapper,
    pg_finfo_track_cost_wrapper,
    "track_cost"
);
