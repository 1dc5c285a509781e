//! Day anomalies: each complete day of each agent type and each campaign scored against its
//! own 14-day baseline (the rules in `super`), from `_campaign_agent_day_spend`.
//!
//! - [`score_range`] scores the days of a range; it only reads.
//! - [`send_range`] also sends each anomaly found (once per scope and day) and notes the days as
//!   scanned in `_anomaly_scan`: `detect_anomalies(first_day, last_day)` calls it.
//! - [`scan_if_new_day`] is called by every write and `budget_check`: the first call of a new
//!   day (in `neon_budget.timezone`) in a backend looks at `_anomaly_scan`, and when one of the
//!   last 7 complete days is not scanned, claims and scans from the earliest such day to
//!   yesterday, once per database (an advisory lock tried once, then the claim rows). It steps
//!   aside, to be done by a later call, in a transaction that may not write, under REPEATABLE
//!   READ or SERIALIZABLE (its claims must see the latest commits), and in a transaction block
//!   that could be prepared; a rollback undoes the claim and the alerts, and the next call of
//!   any backend claims again.
use super::send::{self, Anomaly};
use super::{score_day, DayVerdict, Settings, BASELINE_DAYS};
use crate::error::spi;
use crate::gucs;
use crate::pg::locks::{self, Class};
use crate::pg::owner;
use chrono::{Datelike, Days, NaiveDate};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::AnyNumeric;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};

/// How many complete days before today the automatic scan looks back at most.
pub const AUTO_SCAN_DAYS: u64 = 7;

/// A day that was scored.
#[derive(Debug, Clone)]
pub struct Finding {
    /// `agent_type` or `campaign`.
    pub scope: &'static str,
    /// The agent type or campaign id.
    pub scope_key: String,
    /// `YYYY-MM-DD`.
    pub day: String,
    /// The day's spend, dollars.
    pub spent: AnyNumeric,
    pub verdict: DayVerdict,
}

impl Finding {
    /// The anomaly alert of this finding, with its figures (`details`: `spent`,
    /// `baseline_median`, `baseline_mad`, `excess`, `score`, `threshold`, `min_increase`,
    /// `min_dollars`, `baseline_days`).
    pub fn anomaly(&self, s: &Settings) -> Anomaly {
        let v = &self.verdict;
        Anomaly {
            scope: self.scope,
            scope_key: self.scope_key.clone(),
            day: self.day.clone(),
            spent: self.spent.clone(),
            of_this_transaction: false,
            details: serde_json::json!({
                "spent": send::number(&self.spent),
                "baseline_median": send::number(&v.median),
                "baseline_mad": send::number(&v.mad),
                "excess": send::number(&v.excess),
                "score": v.score.as_ref().map(send::number),
                "threshold": send::number(&s.threshold),
                "min_increase": send::number(&s.min_increase),
                "min_dollars": send::number(&s.min_dollars),
                "baseline_days": BASELINE_DAYS,
            }),
        }
    }
}

/// `YYYY-MM-DD` as a date; None when it is not one.
pub fn parse_day(day: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()
}

/// A date as `YYYY-MM-DD`, as `to_char(..., 'YYYY-MM-DD')` writes it.
pub fn day_text(d: NaiveDate) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
}

/// Every day of each scope from `first` to `last` with spend, scored (flagged or not, in order
/// of day, scope and key); days whose scope has too little history are left out. Reads the
/// spend of `first - 14` to `last` in one query.
pub fn score_range(first: NaiveDate, last: NaiveDate, s: &Settings) -> Vec<Finding> {
    let lo = first - Days::new(BASELINE_DAYS as u64);
    let mut months = Vec::new();
    let mut m = NaiveDate::from_ymd_opt(lo.year(), lo.month(), 1).expect("first of a month");
    while m <= last {
        months.push(format!("{:04}-{:02}", m.year(), m.month()));
        m = m.checked_add_months(chrono::Months::new(1)).expect("a month later");
    }
    // (scope, key) -> day -> dollars.
    let mut series: HashMap<(&'static str, String), BTreeMap<NaiveDate, AnyNumeric>> = HashMap::new();
    owner::as_owner(|| {
        Spi::connect(|client| {
            let rows = spi(client.select(
                "SELECT s.campaign_key, s.agent_type, s.billing_day, sum(s.cost)
                   FROM neon_budget._campaign_agent_day_spend s
                  WHERE s.billing_month OPERATOR(pg_catalog.=) ANY ($1)
                    AND s.billing_day OPERATOR(pg_catalog.>=) $2 AND s.billing_day OPERATOR(pg_catalog.<=) $3
                  GROUP BY 1, 2, 3",
                None,
                &[months.into(), day_text(lo).into(), day_text(last).into()],
            ));
            for row in rows {
                let campaign: String = spi(row.get(1)).unwrap_or_default();
                let agent: String = spi(row.get(2)).unwrap_or_default();
                let Some(day) = spi(row.get::<String>(3)).as_deref().and_then(parse_day) else { continue };
                let cost: AnyNumeric = spi(row.get(4)).unwrap_or_default();
                let mut add = |scope: &'static str, key: String| {
                    let e = series.entry((scope, key)).or_default().entry(day).or_default();
                    *e = e.clone() + cost.clone();
                };
                add("agent_type", agent);
                if !campaign.is_empty() {
                    add("campaign", campaign);
                }
            }
        })
    });
    let zero = AnyNumeric::from(0);
    let mut found = Vec::new();
    for ((scope, key), days) in &series {
        for (day, spent) in days.range(first..=last) {
            if *spent <= zero {
                continue;
            }
            let history: Vec<AnyNumeric> = (1..=BASELINE_DAYS as u64)
                .map(|k| days.get(&(*day - Days::new(k))).cloned().unwrap_or_else(|| AnyNumeric::from(0)))
                .collect();
            if let Some(verdict) = score_day(spent, &history, s) {
                found.push(Finding { scope, scope_key: key.clone(), day: day_text(*day), spent: spent.clone(), verdict });
            }
        }
    }
    found.sort_by(|a, b| (&a.day, a.scope, &a.scope_key).cmp(&(&b.day, b.scope, &b.scope_key)));
    found
}

/// Scores `first` to `last`, sends every anomaly not sent yet, and notes the days as scanned.
/// Returns each anomaly with its `alert_log.id` (sent now or before; None when another
/// transaction is sending it at this moment). Runs as the extension's owner.
pub fn send_range(first: NaiveDate, last: NaiveDate) -> Vec<(Finding, Option<i64>)> {
    let s = gucs::anomaly_settings();
    let flagged: Vec<Finding> = score_range(first, last, &s).into_iter().filter(|f| f.verdict.flagged).collect();
    owner::as_owner(|| {
        Spi::connect_mut(|client| {
            note_scanned(client, first, last);
            flagged
                .into_iter()
                .map(|f| {
                    let id = send::send(client, &f.anomaly(&s)).or_else(|| send::sent_id(client, f.scope, &f.scope_key, &f.day));
                    (f, id)
                })
                .collect()
        })
    })
}

/// Notes `first` to `last` as scanned in `_anomaly_scan`.
fn note_scanned(client: &mut SpiClient<'_>, first: NaiveDate, last: NaiveDate) {
    spi(client.update(
        "INSERT INTO neon_budget._anomaly_scan (billing_day)
         SELECT pg_catalog.to_char(d, 'YYYY-MM-DD') FROM pg_catalog.generate_series($1::date, $2::date, '1 day') AS d
         ON CONFLICT (billing_day) DO UPDATE SET scanned_at = pg_catalog.now()",
        None,
        &[day_text(first).into(), day_text(last).into()],
    ));
}

thread_local! {
    /// The day (`YYYY-MM-DD`) whose previous days this backend found scanned, or scanned.
    static SCANNED_FOR: RefCell<Option<String>> = const { RefCell::new(None) };
    static CALLBACKS: Cell<bool> = const { Cell::new(false) };
}

/// The automatic scan (see the module docs): cheap (a string comparison) except on the first
/// call of a day in a backend.
pub fn scan_if_new_day() {
    if !gucs::anomaly_detection()
        || !crate::error::may_write()
        || unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32
        || crate::error::in_preparable_block()
    {
        return;
    }
    // Anomalies this backend could not send before (send.rs).
    send::retry_deferred();
    let today = crate::month::day_of(unsafe { pg_sys::GetCurrentTransactionStartTimestamp() });
    if SCANNED_FOR.with(|s| s.borrow().as_deref() == Some(today.as_str())) {
        return;
    }
    let Some(yesterday) = parse_day(&today).and_then(|t| t.pred_opt()) else { return };
    register_callbacks();
    // Some(range) to scan; None when another transaction is scanning (look again later).
    let todo: Option<Option<(NaiveDate, NaiveDate)>> = owner::as_owner(|| {
        Spi::connect_mut(|client| {
            let floor = yesterday - Days::new(AUTO_SCAN_DAYS - 1);
            // The earliest of the last 7 complete days not scored yet.
            let first_missing = |client: &mut SpiClient<'_>| -> Option<NaiveDate> {
                let t: Option<String> = spi(client
                    .select(
                        "SELECT pg_catalog.min(pg_catalog.to_char(d, 'YYYY-MM-DD'))
                           FROM pg_catalog.generate_series($1::date, $2::date, '1 day') AS d
                          WHERE NOT EXISTS (SELECT 1 FROM neon_budget._anomaly_scan s
                                             WHERE s.billing_day OPERATOR(pg_catalog.=) pg_catalog.to_char(d, 'YYYY-MM-DD'))",
                        None,
                        &[day_text(floor).into(), day_text(yesterday).into()],
                    )
                    .and_then(|t| t.first().get_one()));
                t.as_deref().and_then(parse_day)
            };
            if first_missing(client).is_none() {
                return Some(None);
            }
            if !locks::try_xact(client, Class::AnomalyScan, "days") {
                return None;
            }
            // Again under the lock: a scan may have committed since.
            Some(first_missing(client).map(|first| (first, yesterday)))
        })
    });
    let Some(range) = todo else { return };
    if let Some((first, last)) = range {
        send_range(first, last);
    }
    SCANNED_FOR.with(|s| *s.borrow_mut() = Some(today));
}

fn register_callbacks() {
    if CALLBACKS.with(|c| c.replace(true)) {
        return;
    }
    unsafe {
        pg_sys::RegisterXactCallback(Some(xact_callback), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(subxact_callback), std::ptr::null_mut());
    }
}

/// A rollback may undo the claim this backend wrote: look again at the next call.
unsafe extern "C-unwind" fn xact_callback(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    use pg_sys::XactEvent::*;
    if matches!(event, XACT_EVENT_ABORT | XACT_EVENT_PARALLEL_ABORT | XACT_EVENT_PREPARE) {
        SCANNED_FOR.with(|s| s.borrow_mut().take());
    }
}

unsafe extern "C-unwind" fn subxact_callback(
    event: pg_sys::SubXactEvent::Type,
    _my: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        SCANNED_FOR.with(|s| s.borrow_mut().take());
    }
}
