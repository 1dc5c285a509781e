//! The cost report: `budget_report`. Argument checks here; the report in [`crate::report`].
use crate::error::{raise, Code};
use crate::report::{self, Format};
use pgrx::prelude::*;

/// `budget_report(month text DEFAULT NULL, format text DEFAULT 'md') -> text`
///
/// The cost report of a billing month (`YYYY-MM`; NULL = the current month in
/// `neon_budget.timezone`), as the seed's "Report Contents": monthly overview (budget, spent,
/// utilization, remaining, executions), campaign breakdown (name, type, cost, budget,
/// utilization), agent usage (cost, tokens, executions, average cost per execution, success rate)
/// and cost optimization suggestions drawn from the data, plus executions blocked and, for the
/// current month, month-end forecasts ([`crate::forecast`]). Money is in dollars.
///
/// `format` (NULL = `md`):
/// - `md`: the Markdown report, figures rounded for reading; user-supplied names are escaped so
///   they cannot break the Markdown.
/// - `json`: one JSON object with the same figures exact (see [`crate::report::render_json`]) plus the spend of
///   each day of the month.
/// - `csv`: a flat table with a header, one row per overview, campaign, agent, day, blocked,
///   forecast and suggestion line (columns: `crate::report::csv::CSV_COLUMNS`).
///
/// Every format reads only the maintained aggregates (the daily spend from the per-day
/// aggregate), never `billing_log`.
///
/// Errors: 22007 for a malformed month; 22023 for an unknown format.
#[pg_extern(stable, parallel_restricted, name = "budget_report")]
fn budget_report_v3(month: default!(Option<&str>, "NULL"), format: default!(Option<&str>, "'md'")) -> String {
    crate::pg::schema_version::require_current();
    let format = match format {
        None => Format::Markdown,
        Some(f) => Format::parse(f).unwrap_or_else(|| {
            raise(
                Code::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("unknown report format \"{f}\""),
                "Use format => 'md' (Markdown), 'json' or 'csv'.",
            )
        }),
    };
    let month = match month {
        Some(m) => crate::validation::require_month("month", m),
        None => crate::month::current_month(),
    };
    report::render_as(&month, format)
}

/// `budget_forecast(month text DEFAULT NULL)` returns one row per forecast scope of the month
/// (`YYYY-MM`; NULL = the current month in `neon_budget.timezone`): the month first, then every
/// campaign with a budget, by id. Columns: `scope` (`month`, `campaign`), `campaign_id` (NULL for
/// the month), `budget` (dollars), `spent` (dollars to date), `daily_mean` (dollars per day over
/// the window), `window_days`, `days_left` (days of the month after today), `projected_spend`
/// (dollars at the month's end), `projected_exhausted_on` (`YYYY-MM-DD` the budget runs out, NULL
/// when not within the month) and `over_budget` (projected spend greater than the budget).
///
/// The method is [`crate::forecast`]'s: spend to date plus the mean daily spend of the last
/// `neon_budget.forecast_window_days` complete days times the days left; no rows for a month
/// other than the current one or while fewer than `neon_budget.forecast_min_elapsed` of its days
/// are complete. Reads only the maintained aggregates.
///
/// Errors: 22007 for a malformed month.
#[pg_extern(stable, parallel_restricted)]
fn budget_forecast(
    month: default!(Option<&str>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(scope, String),
        name!(campaign_id, Option<String>),
        name!(budget, Option<pgrx::AnyNumeric>),
        name!(spent, pgrx::AnyNumeric),
        name!(daily_mean, pgrx::AnyNumeric),
        name!(window_days, i32),
        name!(days_left, i32),
        name!(projected_spend, pgrx::AnyNumeric),
        name!(projected_exhausted_on, Option<String>),
        name!(over_budget, bool),
    ),
> {
    crate::pg::schema_version::require_current();
    let month = match month {
        Some(m) => crate::validation::require_month("month", m),
        None => crate::month::current_month(),
    };
    let rows: Vec<_> = crate::forecast::of_month(&month)
        .into_iter()
        .map(|f| {
            let p = f.projection;
            (
                if f.campaign_id.is_some() { "campaign" } else { "month" }.to_string(),
                f.campaign_id,
                f.budget,
                p.spent,
                p.daily_mean,
                p.window_days as i32,
                p.days_left as i32,
                p.projected,
                p.exhausted_on,
                p.over_budget,
            )
        })
        .collect();
    TableIterator::new(rows)
}
