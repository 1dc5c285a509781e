//! `budget_report`: the seed's Markdown cost report ("Report Contents"), read from the
//! maintained aggregates only.
use crate::alerts;
use crate::error::spi;
use crate::gucs;
use crate::money::{dollars, group_thousands, percent};
use crate::month;
use pgrx::prelude::*;
use pgrx::AnyNumeric;
use std::fmt::Write;

/// Escapes text that comes from users (campaign names, types, agent types) so that it cannot
/// change the structure of the Markdown: line breaks become spaces and Markdown punctuation is
/// backslash-escaped.
pub fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '\n' | '\r' | '\t' => out.push(' '),
            '\\' | '`' | '*' | '_' | '{' | '}' | '[' | ']' | '(' | ')' | '#' | '+' | '-' | '.' | '!' | '|'
            | '<' | '>' | '~' | '"' | '\'' | '&' => {
                out.push('\\');
                out.push(ch);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn n(s: &str) -> AnyNumeric {
    AnyNumeric::try_from(s).expect("constant numeric")
}

fn pct_of(part: &AnyNumeric, whole: &AnyNumeric) -> AnyNumeric {
    part.clone() / whole.clone() * AnyNumeric::from(100)
}

struct CampaignLine {
    label: String,
    cost: AnyNumeric,
    budget: Option<AnyNumeric>,
}

struct AgentLine {
    agent_type: String,
    cost: AnyNumeric,
    tokens: AnyNumeric,
    executions: i64,
    successes: i64,
    failures: i64,
    retry_sum: AnyNumeric,
}

/// Renders the report of `month` (`YYYY-MM`).
pub fn render(month: &str) -> String {
    type Overview = (Option<AnyNumeric>, Option<AnyNumeric>, Option<AnyNumeric>, Option<i64>);
    let (budget, threshold, spent, executions): Overview = spi(Spi::connect(|client| {
        let t = client
            .select(
                "SELECT mb.total_budget, mb.alert_threshold, mb.total_spent, mb.executions
                   FROM (SELECT 1) one LEFT JOIN neon_budget.monthly_budget mb ON mb.month OPERATOR(pg_catalog.=) $1",
                Some(1),
                &[month.into()],
            )?
            .first();
        Ok::<Overview, pgrx::spi::Error>((t.get(1)?, t.get(2)?, t.get(3)?, t.get(4)?))
    }));
    let budget = budget.unwrap_or_else(gucs::max_monthly_budget);
    let threshold = threshold.unwrap_or_else(gucs::default_alert_threshold);
    let spent = spent.unwrap_or_default();
    let executions = executions.unwrap_or(0);

    let campaigns: Vec<CampaignLine> = spi(Spi::connect(|client| {
        client
            .select(
                "SELECT COALESCE(c.name, cc.campaign_id), c.campaign_type, cc.total_cost, c.monthly_budget
                   FROM neon_budget.campaign_cost cc
                   LEFT JOIN neon_budget.campaign c ON c.campaign_id OPERATOR(pg_catalog.=) cc.campaign_id
                  WHERE cc.month OPERATOR(pg_catalog.=) $1
                  ORDER BY cc.total_cost DESC, cc.campaign_id",
                None,
                &[month.into()],
            )?
            .map(|row| {
                let name: String = row.get(1)?.unwrap_or_default();
                let kind: Option<String> = row.get(2)?;
                let label = match kind {
                    Some(k) => format!("{} ({})", escape_markdown(&name), escape_markdown(&k)),
                    None => escape_markdown(&name),
                };
                Ok(CampaignLine { label, cost: row.get(3)?.unwrap_or_default(), budget: row.get(4)? })
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

    let mut md = String::new();
    let _ = writeln!(md, "# Budget Report - {month}\n");
    let _ = writeln!(md, "## 📊 Monthly Overview\n");
    let _ = writeln!(md, "- Total Budget: {}", dollars(&budget, 2));
    let _ = writeln!(md, "- Total Spent: {}", dollars(&spent, 2));
    let _ = writeln!(md, "- Utilization: {}", percent(&pct_of(&spent, &budget)));
    let _ = writeln!(md, "- Remaining: {}", dollars(&(budget.clone() - spent.clone()), 2));
    let _ = writeln!(md, "- Total Executions: {}", group_thousands(&executions.to_string()));
    let _ = writeln!(md, "- Status: {}\n", alerts::status(&spent, &budget, &threshold));

    let _ = writeln!(md, "## 🎯 Campaign Breakdown\n");
    if campaigns.is_empty() {
        let _ = writeln!(md, "No campaign spend this month.\n");
    }
    for c in &campaigns {
        let _ = writeln!(md, "### {}\n", c.label);
        let _ = writeln!(md, "- Cost: {}", dollars(&c.cost, 2));
        match &c.budget {
            Some(b) => {
                let _ = writeln!(md, "- Budget: {}", dollars(b, 2));
                let _ = writeln!(md, "- Utilization: {}\n", percent(&pct_of(&c.cost, b)));
            }
            None => {
                let _ = writeln!(md, "- Budget: no limit\n");
            }
        }
    }

    let _ = writeln!(md, "## 🤖 Agent Usage\n");
    if agents.is_empty() {
        let _ = writeln!(md, "No executions this month.\n");
    }
    for a in &agents {
        let _ = writeln!(md, "### {}\n", escape_markdown(&a.agent_type));
        let _ = writeln!(md, "- Total Cost: {}", dollars(&a.cost, 2));
        let _ = writeln!(md, "- Tokens Used: {}", group_thousands(&a.tokens.to_string()));
        let _ = writeln!(md, "- Executions: {}", group_thousands(&a.executions.to_string()));
        let avg = a.cost.clone() / AnyNumeric::from(a.executions.max(1));
        let _ = writeln!(md, "- Avg Cost/Execution: {}", dollars(&avg, 4));
        if a.successes + a.failures > 0 {
            let rate = pct_of(&AnyNumeric::from(a.successes), &AnyNumeric::from(a.successes + a.failures));
            let _ = writeln!(md, "- Success Rate: {}", percent(&rate));
        }
        let _ = writeln!(md);
    }

    let _ = writeln!(md, "## 💡 Cost Optimization Suggestions\n");
    let suggestions = suggestions(&spent, &budget, &threshold, &campaigns, &agents);
    if suggestions.is_empty() {
        let _ = writeln!(md, "- No action needed: spend is within every budget and no agent stands out.");
    }
    for s in suggestions {
        let _ = writeln!(md, "- {s}");
    }
    md
}

/// Suggestions drawn from the data: budgets near their limit, agents with a high retry rate
/// (0.5 retries or more per execution) or a low success rate (under 50% of executions that
/// report `conversion_achieved`, at least 10 of them), and one agent type taking most spend.
fn suggestions(
    spent: &AnyNumeric,
    budget: &AnyNumeric,
    threshold: &AnyNumeric,
    campaigns: &[CampaignLine],
    agents: &[AgentLine],
) -> Vec<String> {
    let mut out = Vec::new();
    let status = alerts::status(spent, budget, threshold);
    if status != "ok" {
        out.push(format!(
            "The month is at {} of its budget ({status}): review the top-spending campaigns and agents below, or raise the budget with set_monthly_budget.",
            percent(&pct_of(spent, budget))
        ));
    }
    for c in campaigns {
        if let Some(b) = &c.budget {
            if alerts::status(&c.cost, b, threshold) != "ok" {
                out.push(format!("Campaign {} is at {} of its budget: it will be blocked at 100%.", c.label, percent(&pct_of(&c.cost, b))));
            }
        }
    }
    for a in agents {
        let execs = AnyNumeric::from(a.executions.max(1));
        if a.retry_sum.clone() / execs >= n("0.5") {
            out.push(format!(
                "{} retries often ({} retries over {} executions): optimize error handling; retries are paid for.",
                escape_markdown(&a.agent_type),
                group_thousands(&a.retry_sum.to_string()),
                group_thousands(&a.executions.to_string())
            ));
        }
        let reported = a.successes + a.failures;
        if reported >= 10 && a.successes * 2 < reported {
            out.push(format!(
                "{} succeeds in only {} of executions: review its prompts or model choice before spending more.",
                escape_markdown(&a.agent_type),
                percent(&pct_of(&AnyNumeric::from(a.successes), &AnyNumeric::from(reported)))
            ));
        }
    }
    if agents.len() > 1 && *spent > AnyNumeric::from(0) {
        let top = &agents[0];
        if top.cost.clone() * AnyNumeric::from(2) > spent.clone() {
            out.push(format!(
                "{} accounts for {} of spend: use prompt optimization, caching of repeated requests and a smaller model where it fits.",
                escape_markdown(&top.agent_type),
                percent(&pct_of(&top.cost, spent))
            ));
        }
    }
    out
}

/// `budget_report(month text DEFAULT NULL) -> text`
///
/// The Markdown cost report of a billing month (`YYYY-MM`; NULL = the current month in
/// `neon_budget.timezone`), as the seed's "Report Contents": monthly overview (budget, spent,
/// utilization, remaining, executions), campaign breakdown (name, type, cost, budget,
/// utilization), agent usage (cost, tokens, executions, average cost per execution, success rate)
/// and cost optimization suggestions drawn from the data. Money is in dollars. Reads only the
/// maintained aggregates. User-supplied names are escaped so they cannot break the Markdown.
///
/// Errors: 22007 for a malformed month.
#[pg_extern(stable, parallel_restricted)]
fn budget_report(month: default!(Option<&str>, "NULL")) -> String {
    let month = match month {
        Some(m) => month::require_month("month", m),
        None => month::current_month(),
    };
    render(&month)
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::*;

    #[pg_test]
    fn markdown_escaping() {
        assert_eq!(escape_markdown("Q1 *launch*\n# x"), "Q1 \\*launch\\* \\# x");
        assert_eq!(escape_markdown("a'b\"c"), "a\\'b\\\"c");
    }
}
