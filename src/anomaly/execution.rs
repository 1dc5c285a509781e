//! Execution anomalies: one execution far above its agent type's mean cost (the rule in
//! `super`), looked at when it is written, on every entry path.
//!
//! An execution cheaper than `neon_budget.anomaly_execution_min_dollars` costs one numeric
//! comparison. A dearer one needs its agent type's mean over its billing month and the month
//! before, read from `_agent_spend` (sum of cost and of executions over the slots). The mean
//! last read is cached per backend for [`CACHE_USES`] looks or [`CACHE_SECONDS`] seconds, but
//! only to screen out executions under half the threshold; an anomaly is always decided on the
//! mean read at its write. Like the day scan, it
//! steps aside in a transaction under REPEATABLE READ or SERIALIZABLE (the once-per-day claim
//! must see the latest commits): such an execution is not looked at.
use super::execution_flagged;
use super::send::{self, Anomaly};
use crate::error::spi;
use crate::gucs;
use crate::pg::owner;
use pgrx::prelude::*;
use pgrx::AnyNumeric;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CString;
use std::time::{Duration, Instant};

/// Looks at most this many times at a cached mean before reading it again.
pub const CACHE_USES: u32 = 256;
/// Reads a cached mean again after this many seconds.
pub const CACHE_SECONDS: u64 = 60;
/// Agent types and months a backend keeps means for, at most (then it starts again).
const CACHE_ENTRIES: usize = 1024;

/// One execution as written.
pub struct Execution<'a> {
    pub agent_type: &'a str,
    /// `YYYY-MM`.
    pub billing_month: &'a str,
    /// `YYYY-MM-DD` of `created_at` in `neon_budget.timezone`.
    pub billing_day: &'a str,
    /// Dollars.
    pub cost: &'a AnyNumeric,
    pub campaign_id: Option<&'a str>,
    /// `billing_log.id`.
    pub id: Option<i64>,
    pub execution_id: Option<&'a str>,
}

struct Mean {
    /// Dollars over `executions`, without the execution whose write read them.
    sum: AnyNumeric,
    executions: i64,
    read_at: Instant,
    uses: u32,
}

thread_local! {
    static MEANS: RefCell<HashMap<(String, String), Mean>> = RefCell::new(HashMap::new());
    /// `neon_budget.anomaly_execution_min_dollars` as text and as a number.
    static MIN_DOLLARS: RefCell<Option<(Option<CString>, AnyNumeric)>> = const { RefCell::new(None) };
}

/// The previous month of `YYYY-MM`.
fn previous_month(month: &str) -> String {
    let (y, m) = month.rsplit_once('-').map(|(y, m)| (y.parse::<i64>().unwrap_or(0), m.parse::<i64>().unwrap_or(1))).unwrap_or((0, 1));
    if m == 1 {
        format!("{:04}-12", y - 1)
    } else {
        format!("{y:04}-{:02}", m - 1)
    }
}

/// Whether `cost` is at least `neon_budget.anomaly_execution_min_dollars` (parsed once per
/// setting).
fn at_least_min_dollars(cost: &AnyNumeric) -> bool {
    let text = gucs::anomaly_execution_min_dollars_text();
    let cached = MIN_DOLLARS.with(|m| m.borrow().as_ref().filter(|(t, _)| *t == text).map(|(_, n)| n.clone()));
    let min = match cached {
        Some(n) => n,
        None => {
            let n = gucs::anomaly_settings().execution_min_dollars;
            MIN_DOLLARS.with(|m| *m.borrow_mut() = Some((text, n.clone())));
            n
        }
    };
    *cost >= min
}

/// Looks at execution `e` just written (already in the aggregates) and sends an `execution`
/// anomaly of its agent type and day when it is one and none was sent that day.
pub fn check(e: &Execution<'_>) {
    if !gucs::anomaly_detection() || !at_least_min_dollars(e.cost) || unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32
    {
        return;
    }
    let s = gucs::anomaly_settings();
    let key = (e.agent_type.to_string(), e.billing_month.to_string());
    let cached = MEANS.with(|m| {
        let mut m = m.borrow_mut();
        let hit = m.get_mut(&key).filter(|c| c.uses < CACHE_USES && c.read_at.elapsed() < Duration::from_secs(CACHE_SECONDS));
        hit.map(|c| {
            c.uses += 1;
            (c.sum.clone(), c.executions)
        })
    });
    // The cached mean only screens: an execution under half of the factor's threshold by it is
    // no anomaly (the mean would have to halve meanwhile); any other is decided on the mean
    // read now, so a mean that moved since it was cached never raises a false alert.
    if let Some((sum, executions)) = &cached {
        let half = s.execution_factor.clone() * sum.clone();
        if *executions >= super::MIN_EXECUTIONS && e.cost.clone() * AnyNumeric::from(*executions) * AnyNumeric::from(2) < half {
            return;
        }
    }
    let (sum, executions) = read_mean(e.agent_type, e.billing_month);
    // The read includes this execution: the baseline is without it.
    let (sum, executions) = (sum - e.cost.clone(), executions - 1);
    MEANS.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() >= CACHE_ENTRIES {
            m.clear();
        }
        m.insert(key, Mean { sum: sum.clone(), executions, read_at: Instant::now(), uses: 1 });
    });
    if !execution_flagged(e.cost, &sum, executions, &s) {
        return;
    }
    let n = AnyNumeric::from(executions);
    let anomaly = Anomaly {
        scope: "execution",
        scope_key: e.agent_type.to_string(),
        day: e.billing_day.to_string(),
        spent: e.cost.clone(),
        of_this_transaction: true,
        details: serde_json::json!({
            "agent_type": e.agent_type,
            "billing_log_id": e.id,
            "execution_id": e.execution_id,
            "campaign_id": e.campaign_id,
            "cost": send::number(e.cost),
            "typical_cost": send::number(&trim(crate::money::round(sum.clone() / n.clone(), 6))),
            "ratio": send::number(&trim(crate::money::round(e.cost.clone() * n / sum, 2))),
            "factor": send::number(&s.execution_factor),
            "min_dollars": send::number(&s.execution_min_dollars),
            "executions_in_baseline": executions,
        }),
    };
    owner::as_owner(|| Spi::connect_mut(|client| send::send(client, &anomaly)));
}

fn trim(n: AnyNumeric) -> AnyNumeric {
    crate::money::trim_scale(n)
}

/// The agent type's spend (dollars) and executions over `month` and the month before, now.
fn read_mean(agent_type: &str, month: &str) -> (AnyNumeric, i64) {
    let months = vec![month.to_string(), previous_month(month)];
    owner::as_owner(|| {
        Spi::connect(|client| {
            let t = spi(client.select(
                "SELECT COALESCE(sum(a.cost), 0), COALESCE(sum(a.executions), 0)::bigint FROM neon_budget._agent_spend a
                  WHERE a.agent_type OPERATOR(pg_catalog.=) $1 AND a.billing_month OPERATOR(pg_catalog.=) ANY ($2)",
                None,
                &[agent_type.into(), months.into()],
            ));
            let row = t.first();
            (spi(row.get::<AnyNumeric>(1)).unwrap_or_default(), spi(row.get::<i64>(2)).unwrap_or(0))
        })
    })
}
