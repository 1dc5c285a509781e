//! Cost anomalies (issue #13, part 4; "cost anomalies" in the seed's audit trail): spend far
//! above its own history, found from the maintained aggregates, never from `billing_log`.
//!
//! # Rules
//! - **A day of an agent type or of a campaign** ([`days`]): its spend `x` (dollars, the day in
//!   `neon_budget.timezone`, from `_campaign_agent_day_spend`) against the [`BASELINE_DAYS`]
//!   days before it (days without spend count as 0): median `m`, median absolute deviation
//!   `MAD`, robust score `(x - m) / (1.4826 × MAD)` (1.4826 makes the MAD estimate a standard
//!   deviation for normal data: Rousseeuw & Croux, "Alternatives to the Median Absolute
//!   Deviation", JASA 88(424), 1993). The day is an anomaly when the excess `x - m` is at least
//!   - `neon_budget.anomaly_threshold` × 1.4826 × MAD (default 6; a MAD of 0, a flat history,
//!     passes any excess),
//!   - `neon_budget.anomaly_min_increase` × `m` (default 1: at least double the median; a
//!     percentage impact, as AWS Cost Anomaly Detection's alert subscriptions use), and
//!   - `neon_budget.anomaly_min_dollars` (default 10), so that small noise never alerts.
//!
//!   A scope with fewer than [`MIN_HISTORY_DAYS`] days of spend in its baseline is never
//!   flagged. Only complete days are scored: the first write or `budget_check` of a day in a
//!   database scores the days since the last scored one (at most 7 back), once per database
//!   (`_anomaly_scan`); `detect_anomalies(first_day, last_day)` scores any range of past days.
//! - **A single execution** ([`execution`]), at write time on every entry path: its cost is at
//!   least `neon_budget.anomaly_execution_factor` (default 20) × its agent type's mean cost per
//!   execution over its billing month and the month before (from `_agent_spend`, without the
//!   execution itself), and at least `neon_budget.anomaly_execution_min_dollars` (default 1);
//!   the mean needs [`MIN_EXECUTIONS`] executions.
//!
//! Each anomaly is an `anomaly` alert ([`send`]: `alert_log` with its figures in `details`,
//! `NOTIFY neon_budget_alerts`) and an `audit_log` entry (`cost_anomaly`), sent once per scope
//! and day: a day of a campaign, a day of an agent type, and the executions of an agent type on
//! a day (the first one found). Comparisons are products of exact `numeric`s, never quotients.
//! `neon_budget.anomaly_detection = off` turns all of it off.
use pgrx::AnyNumeric;

pub mod days;
pub mod execution;
pub mod send;

/// Days of the trailing baseline a day is scored against.
pub const BASELINE_DAYS: usize = 14;
/// Days with spend the baseline needs before a day is scored.
pub const MIN_HISTORY_DAYS: usize = 7;
/// Executions of an agent type the mean cost needs before an execution is scored.
pub const MIN_EXECUTIONS: i64 = 100;

/// The median of `values` (dollars; the mean of the two middle ones for an even count), exact.
pub fn median(values: &[AnyNumeric]) -> AnyNumeric {
    let mut v: Vec<AnyNumeric> = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let n = v.len();
    if n == 0 {
        return AnyNumeric::from(0);
    }
    if n % 2 == 1 {
        v[n / 2].clone()
    } else {
        // × 0.5, not / 2: a product of numerics is exact, a quotient is rounded.
        (v[n / 2 - 1].clone() + v[n / 2].clone()) * AnyNumeric::try_from("0.5").expect("constant")
    }
}

/// How a day's spend compares with its baseline.
#[derive(Debug, Clone)]
pub struct DayVerdict {
    /// Median of the baseline days' spend, dollars.
    pub median: AnyNumeric,
    /// Median absolute deviation of the baseline, dollars.
    pub mad: AnyNumeric,
    /// `x - median`, dollars.
    pub excess: AnyNumeric,
    /// `excess / (1.4826 × MAD)`, rounded to 2 decimals (trailing zeros dropped) for display;
    /// None when the MAD is 0.
    pub score: Option<AnyNumeric>,
    /// Whether the day is an anomaly (the rules in the module docs).
    pub flagged: bool,
}

/// The sensitivity of the rules: `crate::gucs::AnomalySettings`, or fixed values in tests.
pub use crate::gucs::AnomalySettings as Settings;

/// Scores day spend `x` (dollars) against `history` (the baseline days' spend in dollars, zeros
/// included) with `s`; None without [`MIN_HISTORY_DAYS`] days of spend in the history.
pub fn score_day(x: &AnyNumeric, history: &[AnyNumeric], s: &Settings) -> Option<DayVerdict> {
    let zero = AnyNumeric::from(0);
    if history.iter().filter(|d| **d > zero).count() < MIN_HISTORY_DAYS {
        return None;
    }
    let m = median(history);
    let deviations: Vec<AnyNumeric> = history.iter().map(|d| if *d >= m { d.clone() - m.clone() } else { m.clone() - d.clone() }).collect();
    let mad = median(&deviations);
    let excess = x.clone() - m.clone();
    let scale = AnyNumeric::try_from("1.4826").expect("constant") * mad.clone();
    let score = (mad > zero).then(|| crate::money::trim_scale(crate::money::round(excess.clone() / scale.clone(), 2)));
    // Products, not quotients, decide.
    let flagged =
        excess > zero && excess >= s.min_dollars && excess >= s.threshold.clone() * scale && excess >= s.min_increase.clone() * m.clone();
    Some(DayVerdict {
        median: crate::money::trim_scale(m),
        mad: crate::money::trim_scale(mad),
        excess: crate::money::trim_scale(excess),
        score,
        flagged,
    })
}

/// Whether one execution of `cost` dollars is far above its agent type's mean cost per
/// execution, `sum / executions` (dollars over [`MIN_EXECUTIONS`] or more executions):
/// `cost × executions >= factor × sum` and `cost >= execution_min_dollars`.
pub fn execution_flagged(cost: &AnyNumeric, sum: &AnyNumeric, executions: i64, s: &Settings) -> bool {
    executions >= MIN_EXECUTIONS
        && *sum > AnyNumeric::from(0)
        && *cost >= s.execution_min_dollars
        && cost.clone() * AnyNumeric::from(executions) >= s.execution_factor.clone() * sum.clone()
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;
    use pgrx::prelude::*;

    fn n(s: &str) -> AnyNumeric {
        AnyNumeric::try_from(s).unwrap()
    }

    fn days(v: &[&str]) -> Vec<AnyNumeric> {
        v.iter().map(|s| n(s)).collect()
    }

    fn settings(threshold: &str, min_dollars: &str, min_increase: &str) -> Settings {
        Settings {
            threshold: n(threshold),
            min_increase: n(min_increase),
            min_dollars: n(min_dollars),
            execution_factor: n("20"),
            execution_min_dollars: n("1"),
        }
    }

    /// 14 days around 20 dollars: median 20, deviations 0,0,1,1,1,1,1,1,2,2,2,2,3,3 → MAD 1
    /// (scale 1.4826). 40 dollars: excess 20, score 13.49 ≥ 6: flagged; 25: score 3.37: not.
    #[pg_test]
    fn a_hand_computed_day() {
        let h = days(&["20", "20", "19", "21", "19", "21", "19", "21", "18", "22", "18", "22", "17", "23"]);
        assert_eq!(median(&h), n("20"));
        let s = settings("6", "10", "0");
        let v = score_day(&n("40"), &h, &s).unwrap();
        assert_eq!((v.median.clone(), v.mad.clone(), v.excess.clone()), (n("20"), n("1"), n("20")));
        assert_eq!(v.score.clone().unwrap(), n("13.49"));
        assert!(v.flagged);
        let v = score_day(&n("25"), &h, &settings("6", "1", "0")).unwrap();
        assert!(!v.flagged && v.score == Some(n("3.37")));
        // Far in score but under the dollar minimum: small noise never alerts.
        let v = score_day(&n("29"), &h, &s).unwrap();
        assert!(!v.flagged && v.excess == n("9"));
        // The increase rule: 39.99 is less than double the median 20; 40 is double.
        assert!(!score_day(&n("39.99"), &h, &settings("6", "10", "1")).unwrap().flagged);
        assert!(score_day(&n("40"), &h, &settings("6", "10", "1")).unwrap().flagged);
        // A flat history (MAD 0) flags any excess over the minimum; too little history, none.
        let flat = days(&["5"; 14]);
        let v = score_day(&n("15"), &flat, &s).unwrap();
        assert!(v.flagged && v.score.is_none());
        assert!(!score_day(&n("14.99"), &flat, &s).unwrap().flagged);
        let young = days(&["0", "0", "0", "0", "0", "0", "0", "0", "5", "5", "5", "5", "5", "5"]);
        assert!(score_day(&n("500"), &young, &s).is_none());
        // Seven days of spend is enough: median of 7 zeros and 7 fives is 2.5, MAD 2.5.
        let seven = days(&["0", "0", "0", "0", "0", "0", "0", "5", "5", "5", "5", "5", "5", "5"]);
        let v = score_day(&n("100"), &seven, &s).unwrap();
        assert_eq!((v.median.clone(), v.mad.clone(), v.score.clone().unwrap()), (n("2.5"), n("2.5"), n("26.31")));
        assert!(v.flagged);
    }

    /// Mean 0.1 over 100 executions (sum 10): 20 × 0.1 = 2 dollars is the least anomaly.
    /// An even count's median is exact at any precision (× 0.5, never a rounded / 2).
    #[pg_test]
    fn medians_are_exact() {
        let fine = days(&["7.000000000000000000000000000000007", "8.000000000000000000000000000000008"]);
        assert_eq!(median(&fine).to_string(), "7.5000000000000000000000000000000075");
        assert_eq!(median(&days(&["3", "1", "2"])), n("2"));
    }

    #[pg_test]
    fn single_executions() {
        let s = settings("6", "10", "1");
        assert!(execution_flagged(&n("2"), &n("10"), 100, &s));
        assert!(!execution_flagged(&n("1.99"), &n("10"), 100, &s));
        // Too few executions for a mean; under the dollar minimum; no spend at all.
        assert!(!execution_flagged(&n("5"), &n("9.9"), 99, &s));
        assert!(!execution_flagged(&n("0.5"), &n("0.1"), 1000, &s));
        assert!(!execution_flagged(&n("5"), &n("0"), 1000, &s));
    }
}
