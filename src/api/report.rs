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
/// and cost optimization suggestions drawn from the data. Money is in dollars.
///
/// `format` (NULL = `md`):
/// - `md`: the Markdown report, figures rounded for reading; user-supplied names are escaped so
///   they cannot break the Markdown. Reads only the maintained aggregates.
/// - `json`: one JSON object with the same figures exact (see [`crate::report::render_json`]) plus the spend of
///   each day of the month.
/// - `csv`: a flat table with a header, one row per overview, campaign, agent, day and
///   suggestion (columns: `crate::report::csv::CSV_COLUMNS`).
///
/// The daily spend of `json` and `csv` is one query on `billing_log` by its `billing_month`
/// index, grouped by day in `neon_budget.timezone`.
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
