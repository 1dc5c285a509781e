//! `budget_report(month, 'csv')`: the report as one flat CSV table.
use super::*;

/// Columns of the CSV report, in order. Every row fills `section` and `key`; the other columns
/// are filled where they apply to the row's section and empty otherwise:
///
/// | section | key | filled |
/// | --- | --- | --- |
/// | `overview` (one row) | the month `YYYY-MM` | `cost` (total spent), `budget`, `remaining`, `utilization_percentage`, `status`, `alert_threshold`, `tokens`, `executions` |
/// | `campaign` (highest cost first) | campaign id | `name`, `type`, `cost`, `budget`, `remaining`, `utilization_percentage`, `status` (the last four empty = no limit), `tokens`, `executions` |
/// | `agent` (highest cost first) | agent type | `cost`, `tokens`, `executions`, `avg_cost_per_execution`, `successes`, `failures`, `success_rate_percentage` (empty = not reported), `retries` |
/// | `day` (every day of the month) | `YYYY-MM-DD` | `cost`, `tokens`, `executions` |
/// | `blocked` (month scope first) | the month `YYYY-MM`, or the campaign id | `scope` (`month`, `campaign`), `decision` (`budget_check`, `budget_reserve`), `reason` (`budget_reached`, `estimate_too_large`), `executions` (executions blocked) |
/// | `forecast` (month first, then campaigns with a budget; none unless the month is the current one and enough of its days are complete) | the month `YYYY-MM`, or the campaign id | `scope`, `cost` (spent to date), `budget`, `daily_mean`, `window_days`, `days_left`, `projected_spend`, `projected_exhausted_on` (`YYYY-MM-DD`, empty = not within the month), `over_budget` (`true`, `false`) |
/// | `suggestion` | 1, 2, … | `name` (the suggestion's text) |
///
/// Money is in dollars and percentages in percent, as exact unrounded decimals (`.` as the
/// decimal point, no thousands separators, no `$`). Fields are quoted as RFC 4180 says (a field
/// with a comma, a quote or a line break is quoted, quotes doubled). Text that starts with `=`,
/// `+`, `-`, `@`, a tab or a carriage return (which a spreadsheet would run as a formula) in the
/// `key`, `name` and `type` columns is prefixed with `'`.
pub const CSV_COLUMNS: &[&str] = &[
    "section",
    "key",
    "name",
    "type",
    "cost",
    "budget",
    "remaining",
    "utilization_percentage",
    "status",
    "alert_threshold",
    "tokens",
    "executions",
    "avg_cost_per_execution",
    "successes",
    "failures",
    "success_rate_percentage",
    "retries",
    "scope",
    "decision",
    "reason",
    "daily_mean",
    "window_days",
    "days_left",
    "projected_spend",
    "projected_exhausted_on",
    "over_budget",
];

/// One CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180).
pub(super) fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

/// User-supplied text for a CSV cell: a leading `=`, `+`, `-`, `@`, tab or carriage return
/// (a spreadsheet formula) is defused with a `'` prefix.
pub(super) fn csv_text(value: &str) -> String {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_string()
    }
}

/// A CSV row of [`CSV_COLUMNS`] from `(column, value)` pairs; columns not given are empty.
/// Panics on an unknown column name (a bug, caught by the tests).
pub(super) fn csv_row(out: &mut String, cells: &[(&str, String)]) {
    let mut row = vec![String::new(); CSV_COLUMNS.len()];
    for (col, value) in cells {
        let i = CSV_COLUMNS.iter().position(|c| c == col).unwrap_or_else(|| panic!("unknown CSV column {col}"));
        row[i] = csv_field(value);
    }
    out.push_str(&row.join(","));
    out.push_str("\r\n");
}

pub(super) fn render_csv(d: &ReportData) -> String {
    let mut out = String::new();
    out.push_str(&CSV_COLUMNS.join(","));
    out.push_str("\r\n");
    csv_row(
        &mut out,
        &[
            ("section", "overview".into()),
            ("key", d.month.clone()),
            ("cost", exact(&d.spent)),
            ("budget", exact(&d.budget)),
            ("remaining", exact(&(d.budget.clone() - d.spent.clone()))),
            ("utilization_percentage", exact(&pct_of(&d.spent, &d.budget))),
            ("status", d.status().into()),
            ("alert_threshold", exact(&d.threshold)),
            ("tokens", exact(&d.tokens)),
            ("executions", d.executions.to_string()),
        ],
    );
    for c in &d.campaigns {
        let mut cells = vec![
            ("section", "campaign".to_string()),
            ("key", csv_text(&c.campaign_id)),
            ("name", csv_text(&c.name)),
            ("type", c.kind.as_deref().map(csv_text).unwrap_or_default()),
            ("cost", exact(&c.cost)),
            ("tokens", exact(&c.tokens)),
            ("executions", c.executions.to_string()),
        ];
        if let Some(b) = &c.budget {
            cells.push(("budget", exact(b)));
            cells.push(("remaining", exact(&(b.clone() - c.cost.clone()))));
            cells.push(("utilization_percentage", exact(&pct_of(&c.cost, b))));
            cells.push(("status", alerts::status(&c.cost, b, &d.threshold).to_string()));
        }
        csv_row(&mut out, &cells);
    }
    for a in &d.agents {
        csv_row(
            &mut out,
            &[
                ("section", "agent".into()),
                ("key", csv_text(&a.agent_type)),
                ("cost", exact(&a.cost)),
                ("tokens", exact(&a.tokens)),
                ("executions", a.executions.to_string()),
                ("avg_cost_per_execution", exact(&a.avg_cost())),
                ("successes", a.successes.to_string()),
                ("failures", a.failures.to_string()),
                ("success_rate_percentage", a.success_rate().as_ref().map(exact).unwrap_or_default()),
                ("retries", exact(&a.retry_sum)),
            ],
        );
    }
    for day in &d.days {
        csv_row(
            &mut out,
            &[
                ("section", "day".into()),
                ("key", day.date.clone()),
                ("cost", exact(&day.cost)),
                ("tokens", exact(&day.tokens)),
                ("executions", day.executions.to_string()),
            ],
        );
    }
    for b in &d.blocked {
        csv_row(
            &mut out,
            &[
                ("section", "blocked".into()),
                ("key", csv_text(b.campaign_id.as_deref().unwrap_or(&d.month))),
                ("scope", b.scope.clone()),
                ("decision", b.decision.clone()),
                ("reason", b.reason.clone()),
                ("executions", b.count.to_string()),
            ],
        );
    }
    for f in &d.forecasts {
        let p = &f.projection;
        csv_row(
            &mut out,
            &[
                ("section", "forecast".into()),
                ("key", csv_text(f.campaign_id.as_deref().unwrap_or(&d.month))),
                ("scope", if f.campaign_id.is_some() { "campaign" } else { "month" }.into()),
                ("cost", exact(&p.spent)),
                ("budget", f.budget.as_ref().map(exact).unwrap_or_default()),
                ("daily_mean", exact(&p.daily_mean)),
                ("window_days", p.window_days.to_string()),
                ("days_left", p.days_left.to_string()),
                ("projected_spend", exact(&p.projected)),
                ("projected_exhausted_on", p.exhausted_on.clone().unwrap_or_default()),
                ("over_budget", p.over_budget.to_string()),
            ],
        );
    }
    for (i, s) in suggestions(d, plain).iter().enumerate() {
        csv_row(&mut out, &[("section", "suggestion".into()), ("key", (i + 1).to_string()), ("name", csv_text(s))]);
    }
    out
}
