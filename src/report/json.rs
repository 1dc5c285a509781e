//! `budget_report(month, 'json')`: the report as one JSON object with exact numbers.
use super::*;

/// A numeric as an exact JSON number (serde_json's `arbitrary_precision` keeps the decimal
/// text; no float is involved).
pub fn json_number(n: &AnyNumeric) -> serde_json::Value {
    serde_json::Value::Number(exact(n).parse().expect("numeric text is a JSON number"))
}

fn json_opt(n: Option<&AnyNumeric>) -> serde_json::Value {
    n.map(json_number).unwrap_or(serde_json::Value::Null)
}

/// The JSON report: one object
/// `{"month", "timezone", "overview", "campaigns", "agents", "suggestions", "daily", "blocked",
/// "forecast"}`.
///
/// - `overview`: `total_budget`, `total_spent`, `remaining` (dollars), `utilization_percentage`
///   (percent, unrounded), `total_executions`, `total_tokens`, `alert_threshold` (0..1],
///   `status` (`ok`, `warning`, `critical`, `exceeded`);
/// - `campaigns` (highest cost first): `campaign_id`, `name`, `campaign_type`, `cost`, `budget`
///   (null = no limit), `remaining`, `utilization_percentage`, `status` (null without a budget),
///   `tokens`, `executions`;
/// - `agents` (highest cost first): `agent_type`, `cost`, `tokens`, `executions`,
///   `avg_cost_per_execution` (unrounded), `successes`, `failures`, `success_rate_percentage`
///   (null when no execution reports `conversion_achieved`), `retries`;
/// - `suggestions`: the report's suggestions as plain text (empty when there are none);
/// - `daily`: every day of the month in order, `{"date": "YYYY-MM-DD", "cost", "tokens",
///   "executions"}`, days in `timezone`.
///
/// - `blocked`: executions blocked in the month, `{"scope": "month" | "campaign", "campaign_id"
///   (null for the month), "decision": "budget_check" | "budget_reserve", "reason":
///   "budget_reached" | "estimate_too_large", "executions_blocked"}`, month scope first.
///
/// - `forecast`: month-end forecasts (`crate::forecast`'s method), the month first, then every
///   campaign with a budget: `{"scope": "month" | "campaign", "campaign_id" (null for the month),
///   "budget", "spent", "daily_mean", "window_days", "days_left", "projected_spend",
///   "projected_exhausted_on" ("YYYY-MM-DD" or null), "over_budget"}`; empty unless the month is
///   the current one and enough of its days are complete.
///
/// Money is in dollars and every figure is an exact JSON number (never a float); the
/// Markdown report shows the same figures rounded.
pub(super) fn render_json(d: &ReportData) -> serde_json::Value {
    use serde_json::json;
    let remaining = d.budget.clone() - d.spent.clone();
    let campaigns: Vec<_> = d
        .campaigns
        .iter()
        .map(|c| {
            json!({
                "campaign_id": c.campaign_id,
                "name": c.name,
                "campaign_type": c.kind,
                "cost": json_number(&c.cost),
                "budget": json_opt(c.budget.as_ref()),
                "remaining": json_opt(c.budget.as_ref().map(|b| b.clone() - c.cost.clone()).as_ref()),
                "utilization_percentage": json_opt(c.budget.as_ref().map(|b| pct_of(&c.cost, b)).as_ref()),
                "status": c.budget.as_ref().map(|b| alerts::status(&c.cost, b, &d.threshold)),
                "tokens": json_number(&c.tokens),
                "executions": c.executions,
            })
        })
        .collect();
    let agents: Vec<_> = d
        .agents
        .iter()
        .map(|a| {
            json!({
                "agent_type": a.agent_type,
                "cost": json_number(&a.cost),
                "tokens": json_number(&a.tokens),
                "executions": a.executions,
                "avg_cost_per_execution": json_number(&a.avg_cost()),
                "successes": a.successes,
                "failures": a.failures,
                "success_rate_percentage": json_opt(a.success_rate().as_ref()),
                "retries": json_number(&a.retry_sum),
            })
        })
        .collect();
    let daily: Vec<_> = d
        .days
        .iter()
        .map(|day| {
            json!({
                "date": day.date,
                "cost": json_number(&day.cost),
                "tokens": json_number(&day.tokens),
                "executions": day.executions,
            })
        })
        .collect();
    let blocked: Vec<_> = d
        .blocked
        .iter()
        .map(|b| {
            json!({
                "scope": b.scope,
                "campaign_id": b.campaign_id,
                "decision": b.decision,
                "reason": b.reason,
                "executions_blocked": b.count,
            })
        })
        .collect();
    let forecast: Vec<_> = d
        .forecasts
        .iter()
        .map(|f| {
            let p = &f.projection;
            json!({
                "scope": if f.campaign_id.is_some() { "campaign" } else { "month" },
                "campaign_id": f.campaign_id,
                "budget": json_opt(f.budget.as_ref()),
                "spent": json_number(&p.spent),
                "daily_mean": json_number(&p.daily_mean),
                "window_days": p.window_days,
                "days_left": p.days_left,
                "projected_spend": json_number(&p.projected),
                "projected_exhausted_on": p.exhausted_on,
                "over_budget": p.over_budget,
            })
        })
        .collect();
    json!({
        "month": d.month,
        "timezone": gucs::timezone(),
        "overview": {
            "total_budget": json_number(&d.budget),
            "total_spent": json_number(&d.spent),
            "remaining": json_number(&remaining),
            "utilization_percentage": json_number(&pct_of(&d.spent, &d.budget)),
            "total_executions": d.executions,
            "total_tokens": json_number(&d.tokens),
            "alert_threshold": json_number(&d.threshold),
            "status": d.status(),
        },
        "campaigns": campaigns,
        "agents": agents,
        "suggestions": suggestions(d, plain),
        "daily": daily,
        "blocked": blocked,
        "forecast": forecast,
    })
}
