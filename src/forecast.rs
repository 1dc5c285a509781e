//! Month-end forecasts (issue #13, part 3): the projected spend of the current billing month and
//! of each campaign with a budget, and the day its budget runs out, read from the maintained
//! per-day aggregates (`_day_spend`, `_campaign_agent_day_spend`), never from `billing_log`.
//!
//! # Method (a trailing-mean run rate)
//! For the current billing month of `D` days, today being its day `T` (1-based, in
//! `neon_budget.timezone`):
//! - the window is the last `n = min(W, T - 1)` complete days of the month, days `T - n` to
//!   `T - 1`, with `W` = `neon_budget.forecast_window_days` (default 7); it never reaches into
//!   the month before;
//! - nothing is forecast while fewer than `ceil(neon_budget.forecast_min_elapsed × D)` days of
//!   the month are complete (default 0.2: 6 days of a 30-day month; at least 1);
//! - daily mean = the scope's spend on the window's days / `n` (dollars per day);
//! - projected spend = spend to date (today's so far included) + daily mean × `(D - T)`, the
//!   days after today;
//! - runs out on: the first day `T + k` (`k ≥ 0`) on which spend to date + daily mean × `k`
//!   reaches the budget, if that day is in the month (today when the spend has reached it
//!   already); none otherwise, or without a budget.
//!
//! A past month is complete and a future one has no spend: neither is forecast. Arithmetic is
//! PostgreSQL's exact `numeric`; a mean that does not divide evenly has PostgreSQL's division
//! scale (at least 16 significant digits). The projection passes the budget when it is greater
//! than the budget (a projection equal to it runs out exactly at the month's end).
//!
//! The window's sums are read once per backend, scope and day and then cached: complete days
//! change only when a late report or a correction lands on them, and such a change is seen the
//! next day, or at once after a budget or rate change (the caches follow settings changes).
use crate::error::spi;
use crate::gucs;
use crate::money;
use crate::month;
use crate::pg::cache::{self, Cache, Follows, Num, ScopeKey, ScopeRef};
use crate::pg::owner;
use neon_budget_common::month::{day_of_month, days_in_month};
use pgrx::prelude::*;
use pgrx::AnyNumeric;
use std::cell::RefCell;

/// Where today falls in the current billing month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    /// The billing month, `YYYY-MM`.
    pub month: String,
    /// Today's day of the month, 1-based.
    pub today: u32,
    /// The month's number of days.
    pub days: u32,
}

impl Calendar {
    /// The calendar of `month` when it is the current billing month; None for any other month.
    pub fn of(month: &str) -> Option<Calendar> {
        let today = month::day_of(unsafe { pg_sys::GetCurrentTransactionStartTimestamp() });
        Calendar::at(month, &today)
    }

    /// The calendar of `month` on day `today` (`YYYY-MM-DD`); None unless `today` is in `month`.
    pub fn at(month: &str, today: &str) -> Option<Calendar> {
        let days = days_in_month(month)?;
        let rest = today.strip_prefix(month)?.strip_prefix('-')?;
        let day: u32 = rest.parse().ok().filter(|d| (1..=days).contains(d))?;
        Some(Calendar { month: month.to_string(), today: day, days })
    }

    /// The complete days the daily mean is taken over, as `[first, end)` days (`YYYY-MM-DD`)
    /// and their number, with a window of `window_days` days and at least `min_complete` complete
    /// days in the month; None while the month has fewer complete days.
    pub fn window(&self, window_days: u32, min_complete: u32) -> Option<Window> {
        let complete = self.today - 1;
        if complete == 0 || complete < min_complete {
            return None;
        }
        let n = window_days.min(complete);
        Some(Window { first: day_of_month(&self.month, self.today - n), end: day_of_month(&self.month, self.today), days: n })
    }

    /// [`Self::window`] with the GUCs `neon_budget.forecast_window_days` and
    /// `neon_budget.forecast_min_elapsed`.
    pub fn window_now(&self) -> Option<Window> {
        self.window(gucs::forecast_window_days(), gucs::forecast_min_complete_days(self.days))
    }
}

/// The days a daily mean is taken over: `first` up to but not including `end` (`YYYY-MM-DD`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub first: String,
    pub end: String,
    /// How many days: `end - first`.
    pub days: u32,
}

/// A month-end forecast of one scope.
#[derive(Debug, Clone)]
pub struct Projection {
    /// Spend to date, dollars.
    pub spent: AnyNumeric,
    /// Mean spend per complete day of the window, dollars.
    pub daily_mean: AnyNumeric,
    /// The window's number of days.
    pub window_days: u32,
    /// Days of the month after today.
    pub days_left: u32,
    /// Projected spend at the month's end, dollars (exact).
    pub projected: AnyNumeric,
    /// The day (`YYYY-MM-DD`) the budget runs out on, if within the month.
    pub exhausted_on: Option<String>,
    /// Whether the projection is greater than the budget (false without one).
    pub over_budget: bool,
}

/// Projects `spent` dollars to the month's end with `window_sum` dollars spent over `window`'s
/// days (see the module docs for the method), against `budget` dollars (None: no limit).
pub fn project(cal: &Calendar, window: &Window, spent: &AnyNumeric, window_sum: &AnyNumeric, budget: Option<&AnyNumeric>) -> Projection {
    let n = AnyNumeric::from(window.days);
    let days_left = cal.days - cal.today;
    // Trailing zeros of the division's scale are dropped (30 / 1 is 30, not 30.0000000000000000).
    let daily_mean = money::trim_scale(window_sum.clone() / n.clone());
    let projected = money::trim_scale(spent.clone() + window_sum.clone() * AnyNumeric::from(days_left) / n.clone());
    let exhausted_on = budget.and_then(|b| {
        if spent >= b {
            return Some(day_of_month(&cal.month, cal.today));
        }
        if *window_sum <= AnyNumeric::from(0) {
            return None;
        }
        // The fewest whole days k with spent + mean × k >= budget: ceil((budget - spent) × n / sum).
        let k = (b.clone() - spent.clone()) * n / window_sum.clone();
        let k: AnyNumeric = unsafe { pgrx::direct_function_call(pg_sys::numeric_ceil, &[k.into_datum()]) }.expect("ceil of a numeric");
        let k = i64::try_from(k).ok()?;
        (k <= i64::from(days_left)).then(|| day_of_month(&cal.month, cal.today + k as u32))
    });
    let over_budget = budget.is_some_and(|b| projected > *b);
    Projection { spent: spent.clone(), daily_mean, window_days: window.days, days_left, projected, exhausted_on, over_budget }
}

thread_local! {
    /// Window sums per scope (the month, or a campaign in it), for the window in [`STAMP`].
    static SUMS: RefCell<Cache<ScopeKey, Num>> = RefCell::new(Cache::new(Follows::Settings, cache::PER_CAMPAIGN));
    /// The window (first and end day) the cached sums are for.
    static STAMP: RefCell<Option<(String, String)>> = const { RefCell::new(None) };
}

/// The month's spend (`scope_key` `""`) or a campaign's (`scope` `campaign`) over `window`'s
/// days, dollars, from the per-day aggregates; cached per backend for the window.
pub fn window_sum(scope: &str, scope_key: &str, month: &str, window: &Window) -> AnyNumeric {
    let stamp = (window.first.clone(), window.end.clone());
    if STAMP.with(|s| s.borrow().as_ref() != Some(&stamp)) {
        SUMS.with(|c| c.borrow_mut().clear());
        STAMP.with(|s| *s.borrow_mut() = Some(stamp));
    }
    let key = ScopeRef::of(scope, scope_key, month);
    if let Some(n) = SUMS.with(|c| c.borrow_mut().get(&key).map(Num::get)) {
        return n;
    }
    let sum = if scope == "month" {
        read_sum(
            "SELECT COALESCE(sum(s.cost), 0) FROM neon_budget._day_spend s
              WHERE s.billing_month OPERATOR(pg_catalog.=) $1
                AND s.billing_day OPERATOR(pg_catalog.>=) $2 AND s.billing_day OPERATOR(pg_catalog.<) $3",
            month,
            window,
            None,
        )
    } else {
        read_sum(
            "SELECT COALESCE(sum(s.cost), 0) FROM neon_budget._campaign_agent_day_spend s
              WHERE s.campaign_key OPERATOR(pg_catalog.=) $4 AND s.billing_month OPERATOR(pg_catalog.=) $1
                AND s.billing_day OPERATOR(pg_catalog.>=) $2 AND s.billing_day OPERATOR(pg_catalog.<) $3",
            month,
            window,
            Some(scope_key),
        )
    };
    SUMS.with(|c| c.borrow_mut().insert(key.to_key(), Num::new(&sum)));
    sum
}

fn read_sum(sql: &str, month: &str, window: &Window, campaign: Option<&str>) -> AnyNumeric {
    let mut args: Vec<pgrx::datum::DatumWithOid<'_>> = vec![month.into(), window.first.as_str().into(), window.end.as_str().into()];
    if let Some(c) = campaign {
        args.push(c.into());
    }
    owner::as_owner(|| spi(Spi::get_one_with_args::<AnyNumeric>(sql, &args))).unwrap_or_default()
}

/// The month-end forecast of a scope of the current billing month with `spent` dollars to date
/// and `budget` dollars (None: no limit); None for another month or while too few of its days
/// are complete.
pub fn of_scope(scope: &str, scope_key: &str, month: &str, spent: &AnyNumeric, budget: Option<&AnyNumeric>) -> Option<Projection> {
    let cal = Calendar::of(month)?;
    let window = cal.window_now()?;
    let sum = window_sum(scope, scope_key, month, &window);
    Some(project(&cal, &window, spent, &sum, budget))
}

/// The forecast of one scope of a month: the month (`campaign_id` None) or a campaign with a
/// budget.
pub struct ScopeForecast {
    pub campaign_id: Option<String>,
    /// Dollars; None: no limit (never for the month).
    pub budget: Option<AnyNumeric>,
    pub projection: Projection,
}

/// The forecasts of `month` (`YYYY-MM`) when it is the current billing month and enough of its
/// days are complete: the month first, then every campaign with a budget, by id. Empty
/// otherwise. Reads the aggregates' views and the per-day aggregates (no cache: a report
/// reads everything once).
pub fn of_month(month: &str) -> Vec<ScopeForecast> {
    let Some(cal) = Calendar::of(month) else { return Vec::new() };
    let Some(window) = cal.window_now() else { return Vec::new() };
    let args: Vec<pgrx::datum::DatumWithOid<'_>> = vec![month.into(), window.first.as_str().into(), window.end.as_str().into()];
    owner::as_owner(|| {
        spi(Spi::connect(|client| {
            let month_row = client
                .select(
                    "SELECT COALESCE(mb.total_budget, neon_budget._default_monthly_budget()), COALESCE(mb.total_spent, 0),
                            (SELECT COALESCE(sum(s.cost), 0) FROM neon_budget._day_spend s
                              WHERE s.billing_month OPERATOR(pg_catalog.=) $1
                                AND s.billing_day OPERATOR(pg_catalog.>=) $2 AND s.billing_day OPERATOR(pg_catalog.<) $3)
                       FROM (SELECT 1) one LEFT JOIN neon_budget.monthly_budget mb ON mb.month OPERATOR(pg_catalog.=) $1",
                    Some(1),
                    &args,
                )?
                .first();
            let budget: Option<AnyNumeric> = month_row.get(1)?;
            let spent: AnyNumeric = month_row.get(2)?.unwrap_or_default();
            let sum: AnyNumeric = month_row.get(3)?.unwrap_or_default();
            let mut out =
                vec![ScopeForecast { campaign_id: None, projection: project(&cal, &window, &spent, &sum, budget.as_ref()), budget }];
            let campaigns = client.select(
                "SELECT c.campaign_id, c.monthly_budget, COALESCE(cc.total_cost, 0), COALESCE(w.cost, 0)
                   FROM neon_budget.campaign c
                   LEFT JOIN neon_budget.campaign_cost cc
                     ON cc.campaign_id OPERATOR(pg_catalog.=) c.campaign_id AND cc.month OPERATOR(pg_catalog.=) $1
                   LEFT JOIN (SELECT s.campaign_key, sum(s.cost) AS cost FROM neon_budget._campaign_agent_day_spend s
                               WHERE s.billing_month OPERATOR(pg_catalog.=) $1
                                 AND s.billing_day OPERATOR(pg_catalog.>=) $2 AND s.billing_day OPERATOR(pg_catalog.<) $3
                               GROUP BY s.campaign_key) w ON w.campaign_key OPERATOR(pg_catalog.=) c.campaign_id
                  WHERE c.monthly_budget IS NOT NULL
                  ORDER BY c.campaign_id",
                None,
                &args,
            )?;
            for row in campaigns {
                let budget: Option<AnyNumeric> = row.get(2)?;
                let spent: AnyNumeric = row.get(3)?.unwrap_or_default();
                let sum: AnyNumeric = row.get(4)?.unwrap_or_default();
                out.push(ScopeForecast {
                    campaign_id: row.get(1)?,
                    projection: project(&cal, &window, &spent, &sum, budget.as_ref()),
                    budget,
                });
            }
            Ok::<_, pgrx::spi::Error>(out)
        }))
    })
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::*;

    fn num(s: &str) -> AnyNumeric {
        AnyNumeric::try_from(s).unwrap()
    }

    /// A hand-computed series: November 2026 (30 days), today the 11th, a 7-day window over
    /// days 4..10 that spent 10, 20, 30, 40, 50, 60 and 70 dollars (sum 280, mean 40), 400
    /// dollars spent to date. Projected: 400 + 40 × 19 = 1160. Against a budget of 1000 it runs
    /// out after ceil(600 / 40) = 15 more days, on the 26th.
    #[pg_test]
    fn a_hand_computed_series() {
        let cal = Calendar::at("2026-11", "2026-11-11").unwrap();
        assert_eq!(cal, Calendar { month: "2026-11".into(), today: 11, days: 30 });
        let w = cal.window(7, 6).unwrap();
        assert_eq!(w, Window { first: "2026-11-04".into(), end: "2026-11-11".into(), days: 7 });
        let p = project(&cal, &w, &num("400"), &num("280"), Some(&num("1000")));
        assert_eq!(p.daily_mean, num("40"));
        assert_eq!(p.days_left, 19);
        assert_eq!(p.projected, num("1160"));
        assert_eq!(p.exhausted_on.as_deref(), Some("2026-11-26"));
        assert!(p.over_budget);
        // A budget of exactly 1160 runs out on the last day; the projection does not pass it.
        let p = project(&cal, &w, &num("400"), &num("280"), Some(&num("1160")));
        assert_eq!((p.exhausted_on.as_deref(), p.over_budget), (Some("2026-11-30"), false));
        // Above it: not within the month. Without a budget: never.
        let p = project(&cal, &w, &num("400"), &num("280"), Some(&num("1160.01")));
        assert_eq!((p.exhausted_on, p.over_budget), (None, false));
        assert_eq!(project(&cal, &w, &num("400"), &num("280"), None).exhausted_on, None);
        // Spend that reached the budget already: today.
        let p = project(&cal, &w, &num("1000"), &num("280"), Some(&num("1000")));
        assert_eq!(p.exhausted_on.as_deref(), Some("2026-11-11"));
        // A mean that does not divide evenly stays exact up to numeric's division scale.
        let p = project(&cal, &w, &num("0"), &num("1"), None);
        assert_eq!(p.projected, num("19") / num("7"));
    }

    #[pg_test]
    fn windows_stay_in_the_month_and_wait_for_enough_days() {
        let cal = Calendar::at("2026-02", "2026-02-04").unwrap();
        // Three complete days: a 7-day window shrinks to them, if three are enough.
        assert_eq!(cal.window(7, 3).unwrap(), Window { first: "2026-02-01".into(), end: "2026-02-04".into(), days: 3 });
        assert_eq!(cal.window(7, 4), None);
        // The first day of a month has no complete day.
        assert_eq!(Calendar::at("2026-02", "2026-02-01").unwrap().window(7, 0), None);
        // Only the month's own days.
        assert_eq!(Calendar::at("2026-02", "2026-03-01"), None);
        assert_eq!(Calendar::at("2026-02", "2026-02-29"), None);
        // The GUCs' defaults: 7 days, 0.2 of 28 days = 6 complete days.
        assert_eq!(gucs::forecast_min_complete_days(28), 6);
        assert_eq!(gucs::forecast_min_complete_days(31), 7);
        assert_eq!(gucs::forecast_window_days(), 7);
    }
}
