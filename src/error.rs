//! Errors with specific SQLSTATEs and a hint the caller can act on.
//!
//! Every invalid argument is reported through [`raise`], never with a panic or a plain `Err`
//! (those become the generic SQLSTATEs XX000/22000 that callers cannot tell apart).
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;

pub use pgrx::PgSqlErrorCode as Code;

/// Raises `ERROR` with SQLSTATE `code`, message `msg` and hint `hint`. Never returns.
#[track_caller]
pub fn raise(code: Code, msg: impl Into<String>, hint: impl Into<String>) -> ! {
    ErrorReport::new(code, msg.into(), "neon_budget").set_hint(hint).report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

/// `text` as an SQL string literal, by PostgreSQL's own `quote_literal` (quotes doubled, the
/// `E''` form when it holds a backslash), for hints that show a statement to run.
pub fn quote_literal(text: &str) -> String {
    let c = std::ffi::CString::new(text).expect("PostgreSQL text holds no NUL");
    unsafe {
        let quoted = pgrx::pg_sys::quote_literal_cstr(c.as_ptr());
        let out = std::ffi::CStr::from_ptr(quoted).to_string_lossy().into_owned();
        pgrx::pg_sys::pfree(quoted.cast());
        out
    }
}

/// Unwraps an SPI result. A failing SQL statement already raised its own ERROR (with its own
/// SQLSTATE) before we get here; what is left is a result of an unexpected shape, an internal
/// error (XX000) that is reported, never swallowed.
#[track_caller]
pub fn spi<T>(r: Result<T, pgrx::spi::Error>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => raise(
            Code::ERRCODE_INTERNAL_ERROR,
            format!("neon_budget: unexpected SPI result: {e}"),
            "This is a bug in neon_budget; please report it with the statement that caused it.",
        ),
    }
}

/// Like [`spi`] for a query that may return no row: no row is `None`, not an error.
#[track_caller]
pub fn spi_opt<T>(r: Result<Option<T>, pgrx::spi::Error>) -> Option<T> {
    match r {
        Err(pgrx::spi::Error::InvalidPosition) => None,
        other => spi(other),
    }
}

/// Whether this transaction may write: not on a standby (recovery) and not READ ONLY. For
/// writes a read-only call makes when it can (sending a missed alert, counting a refusal);
/// functions that must write call [`require_writable`].
pub fn may_write() -> bool {
    unsafe { !pgrx::pg_sys::RecoveryInProgress() && !pgrx::pg_sys::XactReadOnly }
}

/// Whether `max_prepared_transactions` is above 0 (a server start setting: read once).
pub fn prepared_transactions_allowed() -> bool {
    thread_local! {
        static ALLOWED: std::cell::OnceCell<bool> = const { std::cell::OnceCell::new() };
    }
    ALLOWED.with(|a| {
        *a.get_or_init(|| unsafe {
            let value = pgrx::pg_sys::GetConfigOption(c"max_prepared_transactions".as_ptr(), false, false);
            !value.is_null() && std::ffi::CStr::from_ptr(value).to_str().ok().and_then(|v| v.parse::<i64>().ok()).unwrap_or(1) > 0
        })
    })
}

/// Whether this transaction could become a prepared transaction: `max_prepared_transactions`
/// above 0 and a transaction block (`PREPARE TRANSACTION` refuses one that sent a NOTIFY, and a
/// prepared transaction holds its locks for an unknown time).
pub fn in_preparable_block() -> bool {
    prepared_transactions_allowed() && unsafe { pgrx::pg_sys::IsTransactionBlock() }
}

/// Raises 25006 (read_only_sql_transaction) when this transaction cannot write: on a standby
/// (recovery) or in a READ ONLY transaction. Called first by every function that writes, so the
/// caller gets the standard read-only error instead of an internal one.
pub fn require_writable(function: &str) {
    let (recovery, read_only) = unsafe { (pgrx::pg_sys::RecoveryInProgress(), pgrx::pg_sys::XactReadOnly) };
    if recovery || read_only {
        raise(
            Code::ERRCODE_READ_ONLY_SQL_TRANSACTION,
            format!("cannot execute {function} in a read-only transaction"),
            if recovery {
                "This server is a standby: record spend and change budgets on the primary."
            } else {
                "Run it in a read-write transaction."
            },
        );
    }
}
