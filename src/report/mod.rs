//! `budget_report`: the seed's cost report ("Report Contents") in Markdown, JSON or CSV, read
//! from the maintained aggregates only (the daily spend of JSON and CSV from the per-day one).
use crate::alerts;
use crate::error::spi;
use crate::gucs;
use crate::money::{dollars, group_thousands, percent, trim_scale};
use pgrx::prelude::*;
use pgrx::AnyNumeric;
use std::fmt::Write;

mod csv;
mod json;
use csv::render_csv;
#[cfg(any(test, feature = "pg_test"))]
use csv::{csv_field, csv_row, csv_text, CSV_COLUMNS};
use json::render_json;

/// Escapes text that comes from users (campaign names, types, agent types) so that it cannot
/// change the structure of the Markdown, and escapes nothing else, so that the raw text reads
/// cleanly in psql (`CONTENT_GENERATION`, `(no cap)` stay as they are). Following CommonMark:
/// - line breaks become spaces, other control characters are dropped;
/// - `\`, `` ` ``, `*`, `[`, `]`, `<`, `>`, `#` and `~` are always escaped (code, emphasis,
///   links, HTML, heading closers, strikethrough);
/// - `_` only where it could open or close emphasis: not between two letters or digits;
/// - `&` only where it could start an entity (`&copy;`, `&#169;`);
/// - a leading `-`, `+` or `=`, or the `.` or `)` of a leading number (`1.`), which would start a
///   list or an underline.
pub fn escape_markdown(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() + 8);
    let word = |c: Option<&char>| c.is_some_and(|c| c.is_alphanumeric());
    let digits = chars.iter().take_while(|c| c.is_ascii_digit()).count();
    for (i, &ch) in chars.iter().enumerate() {
        let escape = match ch {
            '\\' | '`' | '*' | '[' | ']' | '<' | '>' | '#' | '~' => true,
            '_' => !(i > 0 && word(chars.get(i - 1)) && word(chars.get(i + 1))),
            '&' => chars.get(i + 1).is_some_and(|c| c.is_alphanumeric() || *c == '#'),
            '-' | '+' | '=' => i == 0,
            '.' | ')' => digits > 0 && i == digits,
            _ => false,
        };
        match ch {
            '\n' | '\r' | '\t' => out.push(' '),
            c if c.is_control() => {}
            c => {
                if escape {
                    out.push('\\');
                }
                out.push(c);
            }
        }
    }
    out
}

/// Text as it is, for the JSON and CSV formats (their encoders do the escaping).
fn plain(text: &str) -> String {
    text.to_string()
}

fn n(s: &str) -> AnyNumeric {
    AnyNumeric::try_from(s).expect("constant numeric")
}

fn pct_of(part: &AnyNumeric, whole: &AnyNumeric) -> AnyNumeric {
    part.clone() / whole.clone() * AnyNumeric::from(100)
}

/// The output formats of `budget_report`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The seed's Markdown report.
    Markdown,
    /// One JSON object (see [`render_json`]).
    Json,
    /// A flat CSV table with a header (see [`csv::CSV_COLUMNS`]).
    Csv,
}

impl Format {
    /// Parses a format name: `md` (or `markdown`), `json` or `csv`, case-insensitive, surrounding
    /// blanks ignored. `None` for anything else.
    pub fn parse(name: &str) -> Option<Format> {
        match name.trim().to_ascii_lowercase().as_str() {
            "md" | "markdown" => Some(Format::Markdown),
            "json" => Some(Format::Json),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

/// One campaign with spend in the month.
struct CampaignLine {
    campaign_id: String,
    /// The campaign's name, or its id when it has no `campaign` row.
    name: String,
    kind: Option<String>,
    cost: AnyNumeric,
    budget: Option<AnyNumeric>,
    tokens: AnyNumeric,
    executions: i64,
}

impl CampaignLine {
    /// `Name (TYPE)`, each part passed through `esc`.
    fn label(&self, esc: fn(&str) -> String) -> String {
        match &self.kind {
            Some(k) => format!("{} ({})", esc(&self.name), esc(k)),
            None => esc(&self.name),
        }
    }
}

/// One agent type with executions in the month.
struct AgentLine {
    agent_type: String,
    cost: AnyNumeric,
    tokens: AnyNumeric,
    executions: i64,
    successes: i64,
    failures: i64,
    retry_sum: AnyNumeric,
}

impl AgentLine {
    /// Average cost per execution in dollars, unrounded.
    fn avg_cost(&self) -> AnyNumeric {
        self.cost.clone() / AnyNumeric::from(self.executions.max(1))
    }

    /// Percent of the executions that report `conversion_achieved` that succeeded; `None` when
    /// none reports it.
    fn success_rate(&self) -> Option<AnyNumeric> {
        (self.successes + self.failures > 0)
            .then(|| pct_of(&AnyNumeric::from(self.successes), &AnyNumeric::from(self.successes + self.failures)))
    }
}

/// Spend of one calendar day (`YYYY-MM-DD` in `neon_budget.timezone`).
struct DayLine {
    date: String,
    cost: AnyNumeric,
    tokens: AnyNumeric,
    executions: i64,
}

/// Refusals of one kind in the month (the `blocked_executions` view summed over days): under
/// which scope (`month`, or `campaign` with its id), by which call, for which reason.
struct BlockedLine {
    scope: String,
    campaign_id: Option<String>,
    decision: String,
    reason: String,
    count: i64,
}

impl BlockedLine {
    /// The scope in words: `Month` or `Campaign <id>`.
    fn label(&self, esc: fn(&str) -> String) -> String {
        match &self.campaign_id {
            Some(id) => format!("Campaign {}", esc(id)),
            None => "Month".to_string(),
        }
    }
}

/// Everything a report shows, read once.
struct ReportData {
    month: String,
    budget: AnyNumeric,
    threshold: AnyNumeric,
    spent: AnyNumeric,
    tokens: AnyNumeric,
    executions: i64,
    campaigns: Vec<CampaignLine>,
    agents: Vec<AgentLine>,
    /// Empty for the Markdown format, which does not show it.
    days: Vec<DayLine>,
    /// Executions blocked in the month (`write/blocked.rs`): month scope first, then campaigns.
    blocked: Vec<BlockedLine>,
    /// Month-end forecasts (`crate::forecast`): the month first, then campaigns with a budget;
    /// empty unless the month is the current one and enough of its days are complete.
    forecasts: Vec<crate::forecast::ScopeForecast>,
}

impl ReportData {
    fn status(&self) -> &'static str {
        alerts::status(&self.spent, &self.budget, &self.threshold)
    }
}

fn read(month: &str, with_days: bool) -> ReportData {
    type Overview = (Option<AnyNumeric>, Option<AnyNumeric>, Option<AnyNumeric>, Option<AnyNumeric>, Option<i64>);
    let (budget, threshold, spent, tokens, executions): Overview = spi(Spi::connect(|client| {
        let t = client
            .select(
                "SELECT mb.total_budget, mb.alert_threshold, mb.total_spent, mb.total_tokens, mb.executions
                   FROM (SELECT 1) one LEFT JOIN neon_budget.monthly_budget mb ON mb.month OPERATOR(pg_catalog.=) $1",
                Some(1),
                &[month.into()],
            )?
            .first();
        Ok::<Overview, pgrx::spi::Error>((t.get(1)?, t.get(2)?, t.get(3)?, t.get(4)?, t.get(5)?))
    }));

    let campaigns: Vec<CampaignLine> = spi(Spi::connect(|client| {
        client
            .select(
                "SELECT cc.campaign_id, COALESCE(c.name, cc.campaign_id), c.campaign_type, cc.total_cost, c.monthly_budget,
                        cc.total_tokens, cc.executions
                   FROM neon_budget.campaign_cost cc
                   LEFT JOIN neon_budget.campaign c ON c.campaign_id OPERATOR(pg_catalog.=) cc.campaign_id
                  WHERE cc.month OPERATOR(pg_catalog.=) $1
                  ORDER BY cc.total_cost DESC, cc.campaign_id",
                None,
                &[month.into()],
            )?
            .map(|row| {
                Ok(CampaignLine {
                    campaign_id: row.get(1)?.unwrap_or_default(),
                    name: row.get(2)?.unwrap_or_default(),
                    kind: row.get(3)?,
                    cost: row.get(4)?.unwrap_or_default(),
                    budget: row.get(5)?,
                    tokens: row.get(6)?.unwrap_or_default(),
                    executions: row.get(7)?.unwrap_or(0),
                })
            })
            .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    }));

    let agents: Vec<AgentLine> = spi(Spi::connect(|client| {
        client
            .select(
                "SELECT ac.agent_type, ac.total_cost, ac.total_tokens, ac.executions, ac.successes, ac.failures, ac.retry_sum
                   FROM neon_budget.agent_cost ac
                  WHERE ac.month OPERATOR(pg_catalog.=) $1
                  ORDER BY ac.total_cost DESC, ac.agent_type",
                None,
                &[month.into()],
            )?
            .map(|row| {
                Ok(AgentLine {
                    agent_type: row.get(1)?.unwrap_or_default(),
                    cost: row.get(2)?.unwrap_or_default(),
                    tokens: row.get(3)?.unwrap_or_default(),
                    executions: row.get(4)?.unwrap_or(0),
                    successes: row.get(5)?.unwrap_or(0),
                    failures: row.get(6)?.unwrap_or(0),
                    retry_sum: row.get(7)?.unwrap_or_default(),
                })
            })
            .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    }));

    let days = if with_days { read_days(month) } else { Vec::new() };
    let blocked: Vec<BlockedLine> = spi(Spi::connect(|client| {
        client
            .select(
                "SELECT b.scope, b.campaign_id, b.decision, b.reason, pg_catalog.sum(b.executions_blocked)::bigint
                   FROM neon_budget.blocked_executions b
                  WHERE b.month OPERATOR(pg_catalog.=) $1
                  GROUP BY 1, 2, 3, 4
                  ORDER BY b.scope DESC, b.campaign_id, b.decision, b.reason",
                None,
                &[month.into()],
            )?
            .map(|row| {
                Ok(BlockedLine {
                    scope: row.get(1)?.unwrap_or_default(),
                    campaign_id: row.get(2)?,
                    decision: row.get(3)?.unwrap_or_default(),
                    reason: row.get(4)?.unwrap_or_default(),
                    count: row.get(5)?.unwrap_or(0),
                })
            })
            .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    }));
    ReportData {
        month: month.to_string(),
        budget: budget.unwrap_or_else(gucs::max_monthly_budget),
        threshold: threshold.unwrap_or_else(gucs::default_alert_threshold),
        spent: spent.unwrap_or_default(),
        tokens: tokens.unwrap_or_default(),
        executions: executions.unwrap_or(0),
        campaigns,
        agents,
        days,
        blocked,
        forecasts: crate::forecast::of_month(month),
    }
}

/// The Markdown line of a forecast: `$1,160.00 at month end ($40.00/day, last 7 days; budget
/// runs out 2026-11-26)`.
fn forecast_text(p: &crate::forecast::Projection, has_budget: bool) -> String {
    let days = if p.window_days == 1 { "last day".to_string() } else { format!("last {} days", p.window_days) };
    let outcome = match (&p.exhausted_on, has_budget) {
        (Some(day), _) => format!("; budget runs out {day}"),
        (None, true) => "; within budget".to_string(),
        (None, false) => String::new(),
    };
    format!("{} at month end ({}/day, {days}{outcome})", dollars(&p.projected, 2), dollars(&p.daily_mean, 2))
}

/// Spend per calendar day of `month`: every day of the month, in order, with zeros for days
/// without spend, from the maintained per-day aggregate (`_day_spend`, the `daily_cost` view),
/// so the days survive `purge_before` and always add up to the month. A row counts on its day
/// in `neon_budget.timezone` when it was written; if the time zone changed since, its day may
/// fall outside the month (the month of a row is fixed when it is written): such days are
/// listed too, in order.
fn read_days(month: &str) -> Vec<DayLine> {
    spi(Spi::connect(|client| {
        client
            .select(
                "WITH spend AS (
                     SELECT s.billing_day AS day, pg_catalog.sum(s.cost) AS cost, pg_catalog.sum(s.tokens) AS tokens,
                            pg_catalog.sum(s.executions)::bigint AS executions
                       FROM neon_budget._day_spend s
                      WHERE s.billing_month OPERATOR(pg_catalog.=) $1
                      GROUP BY 1
                     HAVING pg_catalog.sum(s.executions) OPERATOR(pg_catalog.<>) 0
                         OR pg_catalog.sum(s.cost) OPERATOR(pg_catalog.<>) 0),
                 first AS (SELECT pg_catalog.to_date($1, 'YYYY-MM') AS d),
                 days AS (
                     SELECT pg_catalog.to_char(g.d, 'YYYY-MM-DD') AS day
                       FROM first, pg_catalog.generate_series(first.d::timestamp,
                                (first.d OPERATOR(pg_catalog.+) interval '1 month' OPERATOR(pg_catalog.-) interval '1 day')::timestamp,
                                interval '1 day') AS g(d))
                 SELECT COALESCE(days.day, spend.day), COALESCE(spend.cost, 0), COALESCE(spend.tokens, 0),
                        COALESCE(spend.executions, 0)
                   FROM days FULL JOIN spend ON spend.day OPERATOR(pg_catalog.=) days.day
                  ORDER BY 1",
                None,
                &[month.into()],
            )?
            .map(|row| {
                Ok(DayLine {
                    date: row.get(1)?.unwrap_or_default(),
                    cost: row.get(2)?.unwrap_or_default(),
                    tokens: row.get(3)?.unwrap_or_default(),
                    executions: row.get(4)?.unwrap_or(0),
                })
            })
            .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    }))
}

/// Renders the Markdown report of `month` (`YYYY-MM`).
pub fn render(month: &str) -> String {
    render_markdown(&read(month, false))
}

fn render_markdown(d: &ReportData) -> String {
    // The seed's emoji headings, where the client can receive them: PostgreSQL converts the
    // result to the client encoding, and WIN1252 or LATIN1 have no emoji (the conversion would
    // fail the whole report). Elsewhere the headings are plain text.
    let emoji = unsafe { pg_sys::pg_get_client_encoding() } == pg_sys::pg_enc::PG_UTF8 as i32;
    let (chart, target, robot, bulb) = if emoji { ("📊 ", "🎯 ", "🤖 ", "💡 ") } else { ("", "", "", "") };
    let (budget, spent, month) = (&d.budget, &d.spent, &d.month);
    let mut md = String::new();
    let _ = writeln!(md, "# Budget Report - {month}\n");
    let _ = writeln!(md, "## {chart}Monthly Overview\n");
    let _ = writeln!(md, "- Total Budget: {}", dollars(budget, 2));
    let _ = writeln!(md, "- Total Spent: {}", dollars(spent, 2));
    let _ = writeln!(md, "- Utilization: {}", percent(&pct_of(spent, budget)));
    let _ = writeln!(md, "- Remaining: {}", dollars(&(budget.clone() - spent.clone()), 2));
    let _ = writeln!(md, "- Total Executions: {}", group_thousands(&d.executions.to_string()));
    match d.forecasts.iter().find(|f| f.campaign_id.is_none()) {
        Some(f) => {
            let _ = writeln!(md, "- Status: {}", d.status());
            let _ = writeln!(md, "- Forecast: {}\n", forecast_text(&f.projection, true));
        }
        None => {
            let _ = writeln!(md, "- Status: {}\n", d.status());
        }
    }

    let _ = writeln!(md, "## {target}Campaign Breakdown\n");
    if d.campaigns.is_empty() {
        let _ = writeln!(md, "No campaign spend this month.\n");
    }
    for c in &d.campaigns {
        let _ = writeln!(md, "### {}\n", c.label(escape_markdown));
        let _ = writeln!(md, "- Cost: {}", dollars(&c.cost, 2));
        match &c.budget {
            Some(b) => {
                let _ = writeln!(md, "- Budget: {}", dollars(b, 2));
                let _ = writeln!(md, "- Utilization: {}", percent(&pct_of(&c.cost, b)));
                if let Some(f) = d.forecasts.iter().find(|f| f.campaign_id.as_deref() == Some(c.campaign_id.as_str())) {
                    let _ = writeln!(md, "- Forecast: {}", forecast_text(&f.projection, true));
                }
                let _ = writeln!(md);
            }
            None => {
                let _ = writeln!(md, "- Budget: no limit\n");
            }
        }
    }

    let _ = writeln!(md, "## {robot}Agent Usage\n");
    if d.agents.is_empty() {
        let _ = writeln!(md, "No executions this month.\n");
    }
    for a in &d.agents {
        let _ = writeln!(md, "### {}\n", escape_markdown(&a.agent_type));
        let _ = writeln!(md, "- Total Cost: {}", dollars(&a.cost, 2));
        let _ = writeln!(md, "- Tokens Used: {}", group_thousands(&a.tokens.to_string()));
        let _ = writeln!(md, "- Executions: {}", group_thousands(&a.executions.to_string()));
        let _ = writeln!(md, "- Avg Cost/Execution: {}", dollars(&a.avg_cost(), 4));
        if let Some(rate) = a.success_rate() {
            let _ = writeln!(md, "- Success Rate: {}", percent(&rate));
        }
        let _ = writeln!(md);
    }

    if !d.blocked.is_empty() {
        let stop = if emoji { "🚫 " } else { "" };
        let _ = writeln!(md, "## {stop}Executions Blocked\n");
        for b in &d.blocked {
            let _ = writeln!(
                md,
                "- {}: {} by {} ({})",
                b.label(escape_markdown),
                group_thousands(&b.count.to_string()),
                b.decision,
                b.reason.replace('_', " ")
            );
        }
        let _ = writeln!(md);
    }

    let _ = writeln!(md, "## {bulb}Cost Optimization Suggestions\n");
    let suggestions = suggestions(d, escape_markdown);
    if suggestions.is_empty() {
        let _ = writeln!(md, "- {NO_ACTION}");
    }
    for s in suggestions {
        let _ = writeln!(md, "- {s}");
    }
    md
}

/// The suggestion shown when there is nothing to suggest.
const NO_ACTION: &str = "No action needed: spend is within every budget and no agent stands out.";

/// Suggestions drawn from the data: budgets near their limit, agents with a high retry rate
/// (0.5 retries or more per execution) or a low success rate (under 50% of executions that
/// report `conversion_achieved`, at least 10 of them), and one agent type taking most spend.
/// User-supplied names go through `esc` (Markdown escaping, or none for JSON and CSV).
fn suggestions(d: &ReportData, esc: fn(&str) -> String) -> Vec<String> {
    let (spent, budget, threshold) = (&d.spent, &d.budget, &d.threshold);
    let mut out = Vec::new();
    let status = d.status();
    if status != "ok" {
        out.push(format!(
            "The month is at {} of its budget ({status}): review the top-spending campaigns and agents below, or raise the budget with set_monthly_budget.",
            percent(&pct_of(spent, budget))
        ));
    }
    for c in &d.campaigns {
        if let Some(b) = &c.budget {
            let campaign_status = alerts::status(&c.cost, b, threshold);
            if campaign_status != "ok" {
                // "Campaign Campaign A" reads badly: no prefix for a name that has the word.
                let label = c.label(esc);
                let named = if c.name.to_lowercase().starts_with("campaign") { label } else { format!("Campaign {label}") };
                let used = percent(&pct_of(&c.cost, b));
                out.push(if campaign_status == "exceeded" {
                    format!(
                        "{named} is at {used} of its budget: it is over budget, and its executions are blocked unless the override is on."
                    )
                } else {
                    format!("{named} is at {used} of its budget: it will be blocked at 100%.")
                });
            }
        }
    }
    for a in &d.agents {
        let execs = AnyNumeric::from(a.executions.max(1));
        if a.retry_sum.clone() / execs >= n("0.5") {
            out.push(format!(
                "{} retries often ({} retries over {} executions): optimize error handling; retries are paid for.",
                esc(&a.agent_type),
                group_thousands(&a.retry_sum.to_string()),
                group_thousands(&a.executions.to_string())
            ));
        }
        let reported = a.successes + a.failures;
        if reported >= 10 && a.successes * 2 < reported {
            out.push(format!(
                "{} succeeds in only {} of executions: review its prompts or model choice before spending more.",
                esc(&a.agent_type),
                percent(&pct_of(&AnyNumeric::from(a.successes), &AnyNumeric::from(reported)))
            ));
        }
    }
    if d.agents.len() > 1 && *spent > AnyNumeric::from(0) {
        let top = &d.agents[0];
        if top.cost.clone() * AnyNumeric::from(2) > spent.clone() {
            out.push(format!(
                "{} accounts for {} of spend: use prompt optimization, caching of repeated requests and a smaller model where it fits.",
                esc(&top.agent_type),
                percent(&pct_of(&top.cost, spent))
            ));
        }
    }
    out
}

/// Exact decimal text of a numeric without trailing zeros (`89.230` → `89.23`).
fn exact(n: &AnyNumeric) -> String {
    trim_scale(n.clone()).to_string()
}

/// The report of `month` (`YYYY-MM`) in `format`: what the SQL function `budget_report` returns.
pub fn render_as(month: &str, format: Format) -> String {
    match format {
        Format::Markdown => render(month),
        Format::Json => render_json(&read(month, true)).to_string(),
        Format::Csv => render_csv(&read(month, true)),
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::*;

    #[pg_test]
    fn markdown_escaping() {
        assert_eq!(escape_markdown("Q1 *launch*\n# x"), "Q1 \\*launch\\* \\# x");
        // Nothing that cannot change the structure is escaped.
        assert_eq!(escape_markdown("a'b\"c (no cap). Ads & more! {x} | y"), "a'b\"c (no cap). Ads & more! {x} | y");
        assert_eq!(escape_markdown("CONTENT_GENERATION"), "CONTENT_GENERATION");
        assert_eq!(escape_markdown("_x_ a_ _b"), "\\_x\\_ a\\_ \\_b");
        assert_eq!(escape_markdown("[x](y) <b> ~~s~~ `c` a\\b &amp;"), "\\[x\\](y) \\<b\\> \\~\\~s\\~\\~ \\`c\\` a\\\\b \\&amp;");
        assert_eq!(escape_markdown("- a"), "\\- a");
        assert_eq!(escape_markdown("12. b"), "12\\. b");
        assert_eq!(escape_markdown("1) c - d"), "1\\) c - d");
    }

    #[pg_test]
    fn format_names() {
        assert_eq!(Format::parse("md"), Some(Format::Markdown));
        assert_eq!(Format::parse(" Markdown "), Some(Format::Markdown));
        assert_eq!(Format::parse("JSON"), Some(Format::Json));
        assert_eq!(Format::parse("csv"), Some(Format::Csv));
        assert_eq!(Format::parse("html"), None);
        assert_eq!(Format::parse(""), None);
    }

    #[pg_test]
    fn csv_quoting() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_text("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(csv_text("-1"), "'-1");
        assert_eq!(csv_text("Q1 launch"), "Q1 launch");
        let mut row = String::new();
        csv_row(&mut row, &[("section", "agent".into()), ("retries", "3".into()), ("key", "a,b".into())]);
        // retries is the 17th column: 14 empty ones between key and it, every later one empty.
        assert_eq!(row, format!("agent,\"a,b\"{}3{}\r\n", ",".repeat(15), ",".repeat(CSV_COLUMNS.len() - 17)));
    }

    fn sample() -> ReportData {
        ReportData {
            month: "2024-01".into(),
            budget: n("1000"),
            threshold: n("0.8"),
            spent: n("247.56"),
            tokens: n("2230750"),
            executions: 1247,
            campaigns: vec![
                CampaignLine {
                    campaign_id: "q1".into(),
                    name: "Marketing, \"Q1\"".into(),
                    kind: Some("CONTENT_GENERATION".into()),
                    cost: n("189.23"),
                    budget: Some(n("200")),
                    tokens: n("2230750"),
                    executions: 156,
                },
                CampaignLine {
                    campaign_id: "free".into(),
                    name: "free".into(),
                    kind: None,
                    cost: n("1.5"),
                    budget: None,
                    tokens: n("10"),
                    executions: 1,
                },
            ],
            agents: vec![AgentLine {
                agent_type: "CONTENT".into(),
                cost: n("89.23"),
                tokens: n("2230750"),
                executions: 156,
                successes: 3,
                failures: 1,
                retry_sum: n("2"),
            }],
            blocked: vec![],
            forecasts: vec![],
            days: vec![
                DayLine { date: "2024-01-01".into(), cost: n("0"), tokens: n("0"), executions: 0 },
                DayLine { date: "2024-01-02".into(), cost: n("247.56"), tokens: n("2230750"), executions: 1247 },
            ],
        }
    }

    #[pg_test]
    fn json_is_exact() {
        let v = render_json(&sample());
        let text = v.to_string();
        // Exact decimals, never floats: 89.23 / 156 keeps every digit numeric division gives.
        assert!(text.contains("\"total_spent\":247.56"), "{text}");
        assert!(text.contains("\"remaining\":752.44"), "{text}");
        assert!(text.contains("\"utilization_percentage\":24.756"), "{text}");
        assert_eq!(v["overview"]["status"], "ok");
        assert_eq!(v["overview"]["alert_threshold"].to_string(), "0.8");
        assert_eq!(v["campaigns"][0]["utilization_percentage"].to_string(), "94.615");
        assert_eq!(v["campaigns"][0]["status"], "warning");
        assert_eq!(v["campaigns"][0]["name"], "Marketing, \"Q1\"");
        assert_eq!(v["campaigns"][1]["budget"], serde_json::Value::Null);
        assert_eq!(v["campaigns"][1]["status"], serde_json::Value::Null);
        assert!(v["agents"][0]["avg_cost_per_execution"].to_string().starts_with("0.57198717948717948"));
        assert_eq!(v["agents"][0]["success_rate_percentage"].to_string(), "75");
        assert_eq!(v["daily"].as_array().unwrap().len(), 2);
        assert_eq!(v["daily"][1]["cost"].to_string(), "247.56");
        // Suggestions are plain text in JSON (no Markdown escapes).
        let s = v["suggestions"].to_string();
        assert!(s.contains("Campaign Marketing, \\\"Q1\\\" (CONTENT_GENERATION) is at 94.6%"), "{s}");
    }

    #[pg_test]
    fn csv_table() {
        let csv = render_csv(&sample());
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines[0], CSV_COLUMNS.join(","));
        assert_eq!(lines[1], "overview,2024-01,,,247.56,1000,752.44,24.756,ok,0.8,2230750,1247,,,,,,,,,,,,,,");
        assert_eq!(
            lines[2],
            "campaign,q1,\"Marketing, \"\"Q1\"\"\",CONTENT_GENERATION,189.23,200,10.77,94.615,warning,,2230750,156,,,,,,,,,,,,,,"
        );
        assert_eq!(lines[3], "campaign,free,free,,1.5,,,,,,10,1,,,,,,,,,,,,,,");
        assert!(lines[4].starts_with("agent,CONTENT,,,89.23,,,,,,2230750,156,0.5719871794"), "{}", lines[4]);
        assert!(lines[4].ends_with(",3,1,75,2,,,,,,,,,"), "{}", lines[4]);
        assert_eq!(lines[5], "day,2024-01-01,,,0,,,,,,0,0,,,,,,,,,,,,,,");
        assert_eq!(lines[6], "day,2024-01-02,,,247.56,,,,,,2230750,1247,,,,,,,,,,,,,,");
        assert!(lines[7].starts_with("suggestion,1,\"Campaign Marketing"), "{}", lines[7]);
        assert_eq!(*lines.last().unwrap(), "");
        // Every row has the header's number of fields (quoted commas aside).
        assert_eq!(lines[3].split(',').count(), CSV_COLUMNS.len());
    }

    /// Executions blocked in every format: Markdown lists them (and has no section without
    /// any), JSON and CSV give each line.
    #[pg_test]
    fn blocked_in_every_format() {
        assert!(!render_markdown(&sample()).contains("Executions Blocked"));
        let mut d = sample();
        d.blocked = vec![
            BlockedLine {
                scope: "month".into(),
                campaign_id: None,
                decision: "budget_reserve".into(),
                reason: "budget_reached".into(),
                count: 1234,
            },
            BlockedLine {
                scope: "campaign".into(),
                campaign_id: Some("q_1*".into()),
                decision: "budget_check".into(),
                reason: "estimate_too_large".into(),
                count: 2,
            },
        ];
        let md = render_markdown(&d);
        assert!(
            md.contains("## 🚫 Executions Blocked\n\n- Month: 1,234 by budget_reserve (budget reached)\n- Campaign q_1\\*: 2 by budget_check (estimate too large)\n\n## 💡"),
            "{md}"
        );
        let v = render_json(&d);
        assert_eq!(v["blocked"][0]["executions_blocked"].to_string(), "1234");
        assert_eq!(v["blocked"][0]["campaign_id"], serde_json::Value::Null);
        assert_eq!(v["blocked"][1]["campaign_id"].as_str(), Some("q_1*"));
        let csv = render_csv(&d);
        let blocked: Vec<&str> = csv.split("\r\n").filter(|l| l.starts_with("blocked,")).collect();
        assert_eq!(
            blocked,
            vec![
                "blocked,2024-01,,,,,,,,,,1234,,,,,,month,budget_reserve,budget_reached,,,,,,",
                "blocked,q_1*,,,,,,,,,,2,,,,,,campaign,budget_check,estimate_too_large,,,,,,"
            ]
        );
    }

    /// Forecasts in every format, on crate::forecast's hand-computed series (November 2026,
    /// today the 11th, 280 dollars over the last 7 days, 400 spent: 1,160 at month end, a
    /// 1,000-dollar budget runs out on the 26th) for the month and a campaign within its budget.
    #[pg_test]
    fn forecasts_in_every_format() {
        use crate::forecast::{project, Calendar, ScopeForecast};
        let cal = Calendar::at("2026-11", "2026-11-11").unwrap();
        let w = cal.window(7, 6).unwrap();
        let mut d = sample();
        d.month = "2026-11".into();
        d.forecasts = vec![
            ScopeForecast {
                campaign_id: None,
                budget: Some(n("1000")),
                projection: project(&cal, &w, &n("400"), &n("280"), Some(&n("1000"))),
            },
            ScopeForecast {
                campaign_id: Some("q1".into()),
                budget: Some(n("2000")),
                projection: project(&cal, &w, &n("400"), &n("280"), Some(&n("2000"))),
            },
        ];
        let md = render_markdown(&d);
        assert!(
            md.contains("- Status: ok\n- Forecast: $1,160.00 at month end ($40.00/day, last 7 days; budget runs out 2026-11-26)\n\n"),
            "{md}"
        );
        assert!(
            md.contains("- Utilization: 94.6%\n- Forecast: $1,160.00 at month end ($40.00/day, last 7 days; within budget)\n\n"),
            "{md}"
        );
        let v = render_json(&d);
        assert_eq!(
            v["forecast"].to_string(),
            r#"[{"budget":1000,"campaign_id":null,"daily_mean":40,"days_left":19,"over_budget":true,"projected_exhausted_on":"2026-11-26","projected_spend":1160,"scope":"month","spent":400,"window_days":7},{"budget":2000,"campaign_id":"q1","daily_mean":40,"days_left":19,"over_budget":false,"projected_exhausted_on":null,"projected_spend":1160,"scope":"campaign","spent":400,"window_days":7}]"#
        );
        let csv = render_csv(&d);
        let rows: Vec<&str> = csv.split("\r\n").filter(|l| l.starts_with("forecast,")).collect();
        assert_eq!(
            rows,
            vec![
                "forecast,2026-11,,,400,1000,,,,,,,,,,,,month,,,40,7,19,1160,2026-11-26,true",
                "forecast,q1,,,400,2000,,,,,,,,,,,,campaign,,,40,7,19,1160,,false"
            ]
        );
        // Without forecasts (another month), no line, key or row.
        assert!(!render_markdown(&sample()).contains("Forecast"));
        assert_eq!(render_json(&sample())["forecast"].to_string(), "[]");
    }

    #[pg_test]
    fn markdown_unchanged_by_refactor() {
        let md = render_markdown(&sample());
        assert!(md.starts_with("# Budget Report - 2024-01\n\n## 📊 Monthly Overview\n\n- Total Budget: $1,000.00\n"));
        assert!(md.contains("### Marketing, \"Q1\" (CONTENT_GENERATION)\n\n- Cost: $189.23\n- Budget: $200.00\n- Utilization: 94.6%\n"));
        assert!(md.contains("### free\n\n- Cost: $1.50\n- Budget: no limit\n"));
        assert!(md.contains("- Avg Cost/Execution: $0.5720\n- Success Rate: 75.0%\n"));
        assert!(!md.contains("2024-01-02"), "the Markdown report has no daily spend");
    }
}
