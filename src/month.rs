//! Billing months: `YYYY-MM` text, the calendar month of a timestamp in `neon_budget.timezone`.
use crate::gucs;
use pgrx::prelude::*;

/// Whether `text` is a billing month, `YYYY-MM` ([`neon_budget_common::month`]).
pub use neon_budget_common::month::is_valid_month;

/// The current billing month (`YYYY-MM` of `now()` in `neon_budget.timezone`).
pub fn current_month() -> String {
    month_of(unsafe { pg_sys::GetCurrentTransactionStartTimestamp() })
}

/// The billing month of a `timestamptz` (microseconds since 2000-01-01 UTC): `to_char(ts AT
/// TIME ZONE neon_budget.timezone, 'YYYY-MM')`, with PostgreSQL's own functions called
/// directly. The year has more than four digits after 9999.
pub fn month_of(ts: pg_sys::TimestampTz) -> String {
    let tz = gucs::timezone();
    // A month starts at a whole second in every time zone (tzdata offsets are whole seconds):
    // the last answer holds for the same zone and second.
    let second = ts.div_euclid(1_000_000);
    if let Some(month) = LAST.with(|l| l.borrow().as_ref().filter(|(z, s, _)| *s == second && *z == tz).map(|(_, _, m)| m.clone())) {
        return month;
    }
    let month = unsafe {
        let local =
            pgrx::direct_function_call_as_datum(pg_sys::timestamptz_zone, &[tz.as_str().into_datum(), Some(pg_sys::Datum::from(ts))]);
        let text: Option<String> = pgrx::direct_function_call(pg_sys::timestamp_to_char, &[local, "YYYY-MM".into_datum()]);
        text.expect("to_char of a finite timestamp is never NULL")
    };
    LAST.with(|l| *l.borrow_mut() = Some((tz, second, month.clone())));
    month
}

/// The billing day of a `timestamptz`: `to_char(ts AT TIME ZONE neon_budget.timezone,
/// 'YYYY-MM-DD')`, fixed when a row is written, like its month (the per-day aggregate
/// `_day_spend` keys its rows by it within the row's billing month).
pub fn day_of(ts: pg_sys::TimestampTz) -> String {
    let tz = gucs::timezone();
    // A day starts at a whole second in every time zone, as a month does.
    let second = ts.div_euclid(1_000_000);
    if let Some(day) = LAST_DAY.with(|l| l.borrow().as_ref().filter(|(z, s, _)| *s == second && *z == tz).map(|(_, _, d)| d.clone())) {
        return day;
    }
    let day = unsafe {
        let local =
            pgrx::direct_function_call_as_datum(pg_sys::timestamptz_zone, &[tz.as_str().into_datum(), Some(pg_sys::Datum::from(ts))]);
        let text: Option<String> = pgrx::direct_function_call(pg_sys::timestamp_to_char, &[local, "YYYY-MM-DD".into_datum()]);
        text.expect("to_char of a finite timestamp is never NULL")
    };
    LAST_DAY.with(|l| *l.borrow_mut() = Some((tz, second, day.clone())));
    day
}

thread_local! {
    /// The last [`day_of`]: time zone, second and day.
    static LAST_DAY: std::cell::RefCell<Option<(String, i64, String)>> = const { std::cell::RefCell::new(None) };
    /// The last [`month_of`]: time zone, second (since 2000-01-01 UTC) and month.
    static LAST: std::cell::RefCell<Option<(String, i64, String)>> = const { std::cell::RefCell::new(None) };
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::*;

    #[pg_test]
    fn valid_months() {
        for m in ["2024-01", "2024-12", "1969-07", "9999-12", "0001-01"] {
            assert!(is_valid_month(m), "{m}");
        }
        for m in ["2024-13", "24-01", "2024-00", "2024-1", "2024/01", "0000-01", " 2024-01", "2024-01-01", ""] {
            assert!(!is_valid_month(m), "{m}");
        }
    }

    #[pg_test]
    fn month_follows_timezone_guc() {
        Spi::run("SET neon_budget.timezone = 'America/New_York'").unwrap();
        // 2024-02-01 03:00 UTC is still January 31st in New York.
        let m =
            Spi::get_one::<String>("SELECT to_char('2024-02-01 03:00+00'::timestamptz AT TIME ZONE neon_budget._timezone(), 'YYYY-MM')")
                .unwrap();
        assert_eq!(m.as_deref(), Some("2024-01"));
        Spi::run("RESET neon_budget.timezone").unwrap();
    }

    #[pg_test(error = "invalid month \"2024-13\": a billing month is written YYYY-MM")]
    fn rejects_bad_month() {
        crate::validation::require_month("month", "2024-13");
    }
}
