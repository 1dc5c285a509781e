//! `detect_anomalies`: cost anomalies of a range of complete days, found and sent on demand
//! (the rules and the automatic daily scan are [`crate::anomaly`]'s).
use crate::anomaly::days;
use crate::error::{raise, Code};
use pgrx::prelude::*;
use pgrx::AnyNumeric;

/// Most days one call scores.
const MAX_DAYS: i64 = 366;

/// `detect_anomalies(first_day date, last_day date DEFAULT NULL)` scores every complete day
/// from `first_day` to `last_day` (NULL: yesterday, in `neon_budget.timezone`) of every agent
/// type and campaign against its own 14-day baseline, sends each anomaly not sent yet (an
/// `anomaly` alert: `alert_log`, `NOTIFY neon_budget_alerts`; and an `audit_log` entry
/// `cost_anomaly`, once per scope and day) and notes the days as scanned, so that the automatic
/// scan of the first write of a day does not score them again. For history loaded or
/// corrected after its days were scanned, or after `neon_budget.anomaly_*` changes. Calls take
/// turns (an advisory lock until commit); writers never wait for one: their automatic scan
/// leaves the days to a later call meanwhile.
///
/// Returns one row per anomaly, by day, scope and key: `scope` (`agent_type`, `campaign`),
/// `scope_key` (agent type or campaign id), `day` (`YYYY-MM-DD`), `spent` (the day's dollars),
/// `baseline_median` and `baseline_mad` (dollars, over the 14 days before), `excess` (dollars
/// above the median), `score` (robust score, 2 decimals; NULL when the MAD is 0) and
/// `alert_id` (its `alert_log` row, sent now or before; NULL while another transaction is
/// sending it). The rules and settings are in the README ("Cost anomalies").
///
/// Errors: 22004 for a NULL first_day; 22023 for a last_day of today or later (only complete
/// days are scored), a first_day after last_day, more than 366 days, or a date outside the years
/// 1 to 9999; 0A000 in a REPEATABLE READ or SERIALIZABLE transaction; 25006 in a read-only
/// transaction.
#[pg_extern(volatile, parallel_unsafe)]
fn detect_anomalies(
    first_day: Option<pgrx::datum::Date>,
    last_day: default!(Option<pgrx::datum::Date>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(scope, String),
        name!(scope_key, String),
        name!(day, String),
        name!(spent, AnyNumeric),
        name!(baseline_median, AnyNumeric),
        name!(baseline_mad, AnyNumeric),
        name!(excess, AnyNumeric),
        name!(score, Option<AnyNumeric>),
        name!(alert_id, Option<i64>),
    ),
> {
    crate::error::require_writable("detect_anomalies()");
    crate::pg::schema_version::require_current();
    // Its claims (the scanned days, once-per-day alerts) must see the latest commits.
    if unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32 {
        raise(
            Code::ERRCODE_FEATURE_NOT_SUPPORTED,
            "detect_anomalies() cannot run in a REPEATABLE READ or SERIALIZABLE transaction",
            "Call it in a READ COMMITTED transaction (the default), e.g. on its own.",
        );
    }
    let first = crate::validation::required("first_day", first_day);
    // Years 1 to 9999: the days billing months have (YYYY-MM).
    let as_day = |d: pgrx::datum::Date| {
        (d.is_finite() && (1..=9999).contains(&d.year()))
            .then(|| chrono::NaiveDate::from_ymd_opt(d.year(), d.month().into(), d.day().into()))
            .flatten()
    };
    let today =
        days::parse_day(&crate::month::day_of(unsafe { pg_sys::GetCurrentTransactionStartTimestamp() })).expect("day_of gives YYYY-MM-DD");
    let yesterday = today.pred_opt().expect("a day before today");
    let (Some(first), Some(last)) = (as_day(first), last_day.map_or(Some(yesterday), as_day)) else {
        raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            "first_day and last_day must be dates of the years 1 to 9999",
            "Pass dates such as '2026-11-01'.",
        )
    };
    if last >= today {
        raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("last_day {} is not a complete day (today is {} in neon_budget.timezone)", days::day_text(last), days::day_text(today)),
            "Only complete days are scored: leave last_day out for yesterday.",
        );
    }
    if first > last {
        raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("first_day {} is after last_day {}", days::day_text(first), days::day_text(last)),
            "Pass first_day <= last_day.",
        );
    }
    if (last - first).num_days() >= MAX_DAYS {
        raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("{} days asked for; one call scores at most {MAX_DAYS}", (last - first).num_days() + 1),
            "Call it once per year of days.",
        );
    }
    // Takes turns with other calls and with the automatic scan (which skips while this holds it).
    crate::pg::locks::wait_xact(crate::pg::locks::Class::AnomalyScan, "days");
    let rows: Vec<_> = days::send_range(first, last)
        .into_iter()
        .map(|(f, id)| {
            (f.scope.to_string(), f.scope_key, f.day, f.spent, f.verdict.median, f.verdict.mad, f.verdict.excess, f.verdict.score, id)
        })
        .collect();
    TableIterator::new(rows)
}
