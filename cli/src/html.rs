//! The HTML cost report: one self-contained page (no script, no external stylesheet, font,
//! image or any other request; a Content-Security-Policy forbids them too) built from the
//! extension's JSON report, with inline SVG charts: a color-coded utilization gauge, spend per
//! campaign against its budget, cost per agent type, and daily and cumulative spend through the
//! month.
//!
//! Every figure shown is formatted from the exact decimal text of the JSON report (as the
//! Markdown report rounds it). Floats are used only to size the drawing (bar lengths, arcs,
//! scales), never for a figure that is shown.
use crate::money::{count, dollars, for_drawing, percent};
use crate::Failure;
use serde_json::Value;
use std::fmt::Write;

/// Escapes text for HTML and SVG content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The exact decimal text of a JSON number (or string); `None` for null or anything else.
fn dec(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if crate::money::is_decimal(s) => Some(s.clone()),
        _ => None,
    }
}

fn dec0(v: &Value) -> String {
    dec(v).unwrap_or_else(|| "0".to_string())
}

fn text(v: &Value) -> String {
    v.as_str().map(str::to_string).unwrap_or_default()
}

/// Color of a level (and of spend without a budget).
fn level_color(level: &str) -> &'static str {
    match level {
        "ok" => "#2e9d4e",
        "warning" => "#d4a300",
        "critical" => "#f07800",
        "exceeded" => "#d32f2f",
        _ => "#4f6bd8",
    }
}

/// Colors of the agent bars, in turn.
const PALETTE: &[&str] = &["#4f6bd8", "#17a2b8", "#8e5cd9", "#e76f51", "#2a9d8f", "#c2185b", "#6d8b3c", "#b5651d"];

/// Cuts long labels for the charts (the full text is in the tables and the bar's tooltip).
fn short(label: &str, max: usize) -> String {
    if label.chars().count() <= max {
        label.to_string()
    } else {
        let mut s: String = label.chars().take(max - 1).collect();
        s.push('…');
        s
    }
}

/// Formats an f64 coordinate for SVG.
fn c(v: f64) -> String {
    format!("{:.1}", if v.is_finite() { v } else { 0.0 })
}

/// The utilization gauge: a half circle filled to the month's utilization (full at 100% and
/// over), in the color of its status, with marks at the warning threshold and at 95%.
fn gauge(utilization: &str, status: &str, threshold: &str) -> String {
    // Drawing only: the ratio sizes the arc; the figure shown is formatted from the exact text.
    let ratio = (for_drawing(utilization) / 100.0).clamp(0.0, 1.0);
    let (cx, cy, r) = (120.0_f64, 128.0_f64, 92.0_f64);
    let arc = format!("M {} {} A {r} {r} 0 0 1 {} {}", c(cx - r), c(cy), c(cx + r), c(cy));
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="gauge" viewBox="0 0 240 160" width="300" height="200" role="img" aria-label="Utilization {pct}, {status}">"#,
        pct = escape(&percent(utilization)),
        status = escape(status)
    );
    let _ = write!(svg, r##"<path d="{arc}" fill="none" stroke="#e6e8ee" stroke-width="24"/>"##);
    let _ = write!(
        svg,
        r#"<path d="{arc}" fill="none" stroke="{color}" stroke-width="24" pathLength="100" stroke-dasharray="{len} 100"/>"#,
        color = level_color(status),
        len = c(ratio * 100.0)
    );
    for (fraction, label) in [(for_drawing(threshold), "warning"), (0.95, "critical")] {
        let angle = std::f64::consts::PI * (1.0 - fraction.clamp(0.0, 1.0));
        let (x1, y1) = (cx + (r - 16.0) * angle.cos(), cy - (r - 16.0) * angle.sin());
        let (x2, y2) = (cx + (r + 16.0) * angle.cos(), cy - (r + 16.0) * angle.sin());
        let _ = write!(
            svg,
            r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#333" stroke-width="2"><title>{label} level</title></line>"##,
            c(x1),
            c(y1),
            c(x2),
            c(y2)
        );
    }
    let _ = write!(
        svg,
        r##"<text x="{cx}" y="{}" text-anchor="middle" font-size="30" font-weight="700" fill="#1f2430">{}</text>"##,
        c(cy - 22.0),
        escape(&percent(utilization))
    );
    let _ = write!(
        svg,
        r#"<text x="{cx}" y="{}" text-anchor="middle" font-size="14" font-weight="700" fill="{}">{}</text>"#,
        c(cy + 4.0),
        level_color(status),
        escape(&status.to_uppercase())
    );
    let _ = write!(
        svg,
        r##"<text x="{}" y="{}" text-anchor="middle" font-size="11" fill="#666">0%</text><text x="{}" y="{}" text-anchor="middle" font-size="11" fill="#666">100%</text>"##,
        c(cx - r),
        c(cy + 22.0),
        c(cx + r),
        c(cy + 22.0)
    );
    svg.push_str("</svg>");
    svg
}

/// One row of a horizontal bar chart.
struct Bar {
    /// The label left of the bar.
    label: String,
    /// The bar's tooltip.
    tip: String,
    /// The figures right of the bar.
    value: String,
    /// The bar's length as a fraction of the chart's scale (drawing only).
    len: f64,
    /// The bar's color.
    color: String,
    /// The budget's length (a light track and a mark), if there is a budget.
    budget: Option<f64>,
}

/// Horizontal bars, one row per [`Bar`].
fn hbars(aria: &str, rows: &[Bar]) -> String {
    let (label_w, bar_w, row_h) = (230.0_f64, 380.0_f64, 34.0_f64);
    let height = row_h * rows.len() as f64 + 10.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="bars" viewBox="0 0 860 {h}" width="860" height="{h}" role="img" aria-label="{aria}">"#,
        h = c(height),
        aria = escape(aria)
    );
    for (i, Bar { label, tip, value, len, color, budget }) in rows.iter().enumerate() {
        let y = 5.0 + row_h * i as f64;
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" text-anchor="end" font-size="13" fill="#1f2430">{}<title>{}</title></text>"##,
            c(label_w - 10.0),
            c(y + 21.0),
            escape(&short(label, 30)),
            escape(tip)
        );
        if let Some(b) = budget {
            let _ = write!(
                svg,
                r##"<rect x="{label_w}" y="{}" width="{}" height="22" rx="3" fill="#eceef4"/>"##,
                c(y + 5.0),
                c(b.clamp(0.0, 1.0) * bar_w)
            );
        }
        let _ = write!(
            svg,
            r#"<rect x="{label_w}" y="{}" width="{}" height="22" rx="3" fill="{color}"><title>{}</title></rect>"#,
            c(y + 5.0),
            c((len.clamp(0.0, 1.0) * bar_w).max(1.5)),
            escape(&format!("{tip}: {value}"))
        );
        if let Some(b) = budget {
            let x = label_w + b.clamp(0.0, 1.0) * bar_w;
            let _ = write!(
                svg,
                r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#1f2430" stroke-width="2"><title>budget</title></line>"##,
                c(x),
                c(y + 1.0),
                c(x),
                c(y + 31.0)
            );
        }
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" font-size="13" fill="#1f2430">{}</text>"##,
            c(label_w + bar_w + 10.0),
            c(y + 21.0),
            escape(value)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Daily spend as columns (left scale) and cumulative spend as a line against the month's
/// budget (dashed; right scale).
fn daily_chart(days: &[Value], budget: &str, spent: &str) -> String {
    let (left, top, w, h) = (70.0_f64, 20.0_f64, 700.0_f64, 200.0_f64);
    let n = days.len().max(1) as f64;
    // Drawing only: f64 sizes the columns and the cumulative line; shown figures are exact text.
    let costs: Vec<f64> = days.iter().map(|d| for_drawing(&dec0(&d["cost"]))).collect();
    let max_day = costs.iter().cloned().fold(0.0_f64, f64::max);
    let max_day_text =
        days.iter().map(|d| dec0(&d["cost"])).max_by(|a, b| for_drawing(a).total_cmp(&for_drawing(b))).unwrap_or_else(|| "0".to_string());
    let total: f64 = costs.iter().sum();
    let scale_cum = total.max(for_drawing(budget)).max(f64::MIN_POSITIVE);
    // The right scale's top, shown exactly: the month's spend or its budget, whichever is larger.
    let scale_cum_text = if for_drawing(spent) > for_drawing(budget) { spent } else { budget };
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="daily" viewBox="0 0 860 270" width="860" height="270" role="img" aria-label="Daily spend through the month">"#
    );
    let _ = write!(
        svg,
        r##"<line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="#999"/><line x1="{left}" y1="{top}" x2="{left}" y2="{}" stroke="#999"/>"##,
        c(top + h),
        c(left + w),
        c(top + h),
        c(top + h)
    );
    let _ = write!(
        svg,
        r##"<text x="{}" y="{}" text-anchor="end" font-size="11" fill="#555">{}</text><text x="{}" y="{}" text-anchor="end" font-size="11" fill="#555">$0</text>"##,
        c(left - 6.0),
        c(top + 4.0),
        escape(&dollars(&max_day_text, 2)),
        c(left - 6.0),
        c(top + h + 4.0)
    );
    let slot = w / n;
    let label_every = (days.len() / 10).max(1);
    let mut cumulative = 0.0_f64;
    let mut points = Vec::new();
    for (i, (d, cost)) in days.iter().zip(&costs).enumerate() {
        let x = left + slot * i as f64;
        let bar_h = if max_day > 0.0 { cost / max_day * h } else { 0.0 };
        let date = text(&d["date"]);
        let _ = write!(
            svg,
            r##"<rect x="{}" y="{}" width="{}" height="{}" fill="#4f6bd8"><title>{}: {} ({} executions)</title></rect>"##,
            c(x + slot * 0.12),
            c(top + h - bar_h),
            c(slot * 0.76),
            c(bar_h),
            escape(&date),
            escape(&dollars(&dec0(&d["cost"]), 2)),
            escape(&count(&dec0(&d["executions"])))
        );
        let day_of_month = date.rsplit('-').next().unwrap_or("").trim_start_matches('0').to_string();
        if i == 0 || (i + 1) % label_every == 0 {
            let _ = write!(
                svg,
                r##"<text x="{}" y="{}" text-anchor="middle" font-size="11" fill="#555">{}</text>"##,
                c(x + slot / 2.0),
                c(top + h + 16.0),
                escape(&day_of_month)
            );
        }
        cumulative += cost;
        points.push(format!("{},{}", c(x + slot / 2.0), c(top + h - cumulative / scale_cum * h)));
    }
    let budget_y = top + h - for_drawing(budget) / scale_cum * h;
    let _ = write!(
        svg,
        r##"<line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="#d32f2f" stroke-dasharray="6 4" stroke-width="1.5"><title>monthly budget {}</title></line>"##,
        c(budget_y),
        c(left + w),
        c(budget_y),
        escape(&dollars(budget, 2))
    );
    let _ = write!(
        svg,
        r##"<polyline points="{}" fill="none" stroke="#f07800" stroke-width="2.5"><title>cumulative spend</title></polyline>"##,
        points.join(" ")
    );
    let _ = write!(
        svg,
        r##"<text x="{}" y="{}" text-anchor="end" font-size="11" fill="#d32f2f" stroke="#fff" stroke-width="3" paint-order="stroke">budget {}</text>"##,
        c(left + w - 4.0),
        c(budget_y - 5.0),
        escape(&dollars(budget, 2))
    );
    let _ = write!(
        svg,
        r##"<line x1="{}" y1="{top}" x2="{}" y2="{}" stroke="#999"/><text x="{}" y="{}" font-size="11" fill="#555">{}</text><text x="{}" y="{}" font-size="11" fill="#555">$0</text>"##,
        c(left + w),
        c(left + w),
        c(top + h),
        c(left + w + 6.0),
        c(top + 4.0),
        escape(&dollars(scale_cum_text, 2)),
        c(left + w + 6.0),
        c(top + h + 4.0)
    );
    let _ = write!(
        svg,
        r##"<g font-size="12" fill="#333"><rect x="{left}" y="248" width="12" height="12" fill="#4f6bd8"/><text x="{}" y="258">daily spend (left scale)</text><line x1="{}" y1="254" x2="{}" y2="254" stroke="#f07800" stroke-width="2.5"/><text x="{}" y="258">cumulative spend (right scale)</text><line x1="{}" y1="254" x2="{}" y2="254" stroke="#d32f2f" stroke-dasharray="6 4"/><text x="{}" y="258">monthly budget (right scale)</text></g>"##,
        c(left + 18.0),
        c(left + 200.0),
        c(left + 224.0),
        c(left + 230.0),
        c(left + 440.0),
        c(left + 464.0),
        c(left + 470.0)
    );
    svg.push_str("</svg>");
    svg
}

const STYLE: &str = "
body{margin:0;background:#f5f6fa;color:#1f2430;font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif}
main{max-width:920px;margin:0 auto;padding:24px}
h1{font-size:28px;margin:0 0 4px}
h2{font-size:20px;margin:0 0 12px}
.sub{color:#666;margin:0 0 20px}
section{background:#fff;border-radius:10px;box-shadow:0 1px 3px rgba(0,0,0,.12);padding:18px 22px;margin:0 0 18px}
.overview{display:flex;gap:24px;align-items:center;flex-wrap:wrap}
.overview ul{list-style:none;padding:0;margin:0;font-size:16px;line-height:1.8}
table{border-collapse:collapse;width:100%;font-size:14px;margin-top:10px}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e6e8ee}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px;font-weight:700}
svg{max-width:100%;height:auto;display:block}
details summary{cursor:pointer;color:#444;margin-top:8px}
footer{color:#777;font-size:12px;text-align:center;padding:8px}
";

fn badge(status: &str) -> String {
    format!(r#"<span class="badge" style="background:{}">{}</span>"#, level_color(status), escape(status))
}

/// Renders the page from the extension's JSON report (`budget_report(month, 'json')`).
pub fn render(report: &Value) -> Result<String, Failure> {
    let month = report["month"]
        .as_str()
        .ok_or_else(|| Failure::failed("budget_report's JSON has no \"month\": is the extension 0.2.0 or later?"))?;
    let o = &report["overview"];
    let status = text(&o["status"]);
    let budget = dec0(&o["total_budget"]);
    let spent = dec0(&o["total_spent"]);
    let utilization = dec0(&o["utilization_percentage"]);
    let threshold = dec0(&o["alert_threshold"]);
    let empty = Vec::new();
    let campaigns = report["campaigns"].as_array().unwrap_or(&empty);
    let agents = report["agents"].as_array().unwrap_or(&empty);
    let days = report["daily"].as_array().unwrap_or(&empty);
    let suggestions = report["suggestions"].as_array().unwrap_or(&empty);
    let timezone = text(&report["timezone"]);

    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Budget Report - {m}</title>
<style>{STYLE}</style></head>
<body><main>
<h1>Budget Report - {m}</h1>
<p class="sub">AI agent spend of {m} (days in {tz}); money in dollars.</p>
"#,
        m = escape(month),
        tz = escape(&timezone)
    );

    // Overview.
    let _ = write!(h, r#"<section class="overview" id="overview"><div>"#);
    h.push_str(&gauge(&utilization, &status, &threshold));
    let _ = write!(
        h,
        r#"</div><div><h2>📊 Monthly Overview</h2><ul>
<li>Total Budget: <b>{}</b></li>
<li>Total Spent: <b>{}</b></li>
<li>Utilization: <b>{}</b></li>
<li>Remaining: <b>{}</b></li>
<li>Total Executions: <b>{}</b></li>
<li>Status: {}</li>
</ul></div></section>
"#,
        dollars(&budget, 2),
        dollars(&spent, 2),
        percent(&utilization),
        escape(&dollars(&dec0(&o["remaining"]), 2)),
        count(&dec0(&o["total_executions"])),
        badge(&status)
    );

    // Campaigns.
    h.push_str(r#"<section id="campaigns"><h2>🎯 Campaign Breakdown</h2>"#);
    if campaigns.is_empty() {
        h.push_str("<p>No campaign spend this month.</p>");
    } else {
        // Drawing only: bar lengths relative to the largest cost or budget.
        let scale = campaigns
            .iter()
            .map(|c| for_drawing(&dec0(&c["cost"])).max(dec(&c["budget"]).map(|b| for_drawing(&b)).unwrap_or(0.0)))
            .fold(0.0_f64, f64::max)
            .max(f64::MIN_POSITIVE);
        let rows: Vec<_> = campaigns
            .iter()
            .map(|c| {
                let name = text(&c["name"]);
                let cost = dec0(&c["cost"]);
                let (value, budget_len, color) = match dec(&c["budget"]) {
                    Some(b) => (
                        format!("{} of {} ({})", dollars(&cost, 2), dollars(&b, 2), percent(&dec0(&c["utilization_percentage"]))),
                        Some(for_drawing(&b) / scale),
                        level_color(&text(&c["status"])).to_string(),
                    ),
                    None => (format!("{} (no limit)", dollars(&cost, 2)), None, level_color("").to_string()),
                };
                Bar {
                    label: name.clone(),
                    tip: format!("{name} ({})", text(&c["campaign_id"])),
                    value,
                    len: for_drawing(&cost) / scale,
                    color,
                    budget: budget_len,
                }
            })
            .collect();
        h.push_str(&hbars("Spend per campaign against its budget", &rows));
        h.push_str(r#"<table><thead><tr><th>Campaign</th><th>Type</th><th class="n">Cost</th><th class="n">Budget</th><th class="n">Utilization</th><th>Status</th></tr></thead><tbody>"#);
        for c in campaigns {
            let cost = dec0(&c["cost"]);
            let (b, u, s) = match dec(&c["budget"]) {
                Some(b) => (dollars(&b, 2), percent(&dec0(&c["utilization_percentage"])), badge(&text(&c["status"]))),
                None => ("no limit".to_string(), "".to_string(), "".to_string()),
            };
            let _ = write!(
                h,
                r#"<tr><td>{}<br><small>{}</small></td><td>{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td>{}</td></tr>"#,
                escape(&text(&c["name"])),
                escape(&text(&c["campaign_id"])),
                escape(&text(&c["campaign_type"])),
                dollars(&cost, 2),
                b,
                u,
                s
            );
        }
        h.push_str("</tbody></table>");
    }
    h.push_str("</section>\n");

    // Agents.
    h.push_str(r#"<section id="agents"><h2>🤖 Agent Usage</h2>"#);
    if agents.is_empty() {
        h.push_str("<p>No executions this month.</p>");
    } else {
        // Drawing only: bar lengths relative to the most expensive agent type.
        let scale = agents.iter().map(|a| for_drawing(&dec0(&a["cost"]))).fold(0.0_f64, f64::max).max(f64::MIN_POSITIVE);
        let rows: Vec<_> = agents
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let t = text(&a["agent_type"]);
                let cost = dec0(&a["cost"]);
                Bar {
                    label: t.clone(),
                    tip: t,
                    value: format!("{} · {} executions", dollars(&cost, 2), count(&dec0(&a["executions"]))),
                    len: for_drawing(&cost) / scale,
                    color: PALETTE[i % PALETTE.len()].to_string(),
                    budget: None,
                }
            })
            .collect();
        h.push_str(&hbars("Cost per agent type", &rows));
        h.push_str(r#"<table><thead><tr><th>Agent</th><th class="n">Total Cost</th><th class="n">Tokens Used</th><th class="n">Executions</th><th class="n">Avg Cost/Execution</th><th class="n">Success Rate</th></tr></thead><tbody>"#);
        for a in agents {
            let rate = dec(&a["success_rate_percentage"]).map(|r| percent(&r)).unwrap_or_else(|| "n/a".to_string());
            let _ = write!(
                h,
                r#"<tr><td>{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
                escape(&text(&a["agent_type"])),
                dollars(&dec0(&a["cost"]), 2),
                count(&dec0(&a["tokens"])),
                count(&dec0(&a["executions"])),
                dollars(&dec0(&a["avg_cost_per_execution"]), 4),
                rate
            );
        }
        h.push_str("</tbody></table>");
    }
    h.push_str("</section>\n");

    // Daily spend.
    h.push_str(r#"<section id="daily"><h2>📅 Daily Spend</h2>"#);
    h.push_str(&daily_chart(days, &budget, &spent));
    h.push_str(r#"<details><summary>Spend per day</summary><table><thead><tr><th>Day</th><th class="n">Cost</th><th class="n">Tokens</th><th class="n">Executions</th></tr></thead><tbody>"#);
    for d in days {
        let _ = write!(
            h,
            r#"<tr><td>{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
            escape(&text(&d["date"])),
            dollars(&dec0(&d["cost"]), 2),
            count(&dec0(&d["tokens"])),
            count(&dec0(&d["executions"]))
        );
    }
    h.push_str("</tbody></table></details></section>\n");

    // Suggestions.
    h.push_str(r#"<section id="suggestions"><h2>💡 Cost Optimization Suggestions</h2><ul>"#);
    if suggestions.is_empty() {
        h.push_str("<li>No action needed: spend is within every budget and no agent stands out.</li>");
    }
    for s in suggestions {
        let _ = write!(h, "<li>{}</li>", escape(&text(s)));
    }
    h.push_str("</ul></section>\n");
    let _ = write!(
        h,
        "<footer>neon_budget cost report of {} · generated by neon-budget from budget_report(month, 'json')</footer>\n</main></body></html>\n",
        escape(month)
    );
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(escape("<script>alert('x') & \"y\"</script>"), "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;");
    }

    #[test]
    fn page_is_self_contained() {
        let report: Value = serde_json::from_str(
            r#"{"month":"2024-01","timezone":"UTC","overview":{"total_budget":1000,"total_spent":247.56,"remaining":752.44,
                "utilization_percentage":24.756,"total_executions":1247,"total_tokens":100,"alert_threshold":0.8,"status":"ok"},
                "campaigns":[{"campaign_id":"c<1>","name":"<img src=x>","campaign_type":null,"cost":89.23,"budget":200,
                "remaining":110.77,"utilization_percentage":44.615,"status":"ok","tokens":1,"executions":1}],
                "agents":[{"agent_type":"CONTENT","cost":89.23,"tokens":2230750,"executions":156,"avg_cost_per_execution":0.571987,
                "successes":0,"failures":0,"success_rate_percentage":null,"retries":0}],
                "suggestions":["a & b"],"daily":[{"date":"2024-01-01","cost":0,"tokens":0,"executions":0},
                {"date":"2024-01-02","cost":247.56,"tokens":100,"executions":1247}]}"#,
        )
        .unwrap();
        let page = render(&report).unwrap();
        for needle in
            ["$1,000.00", "$247.56", "24.8%", "$752.44", "1,247", "$89.23", "$200.00", "44.6%", "2,230,750", "$0.5720", "a &amp; b"]
        {
            assert!(page.contains(needle), "missing {needle}");
        }
        assert!(!page.contains("<img"), "user text must be escaped");
        for banned in ["http:", "https:", "//", "<script", "<link", "@import", "url("] {
            assert!(!page.contains(banned), "page contains {banned}");
        }
    }
}
