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
    ErrorReport::new(code, msg.into(), "neon_budget")
        .set_hint(hint)
        .report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
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
