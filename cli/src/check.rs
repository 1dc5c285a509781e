//! `neon-budget check`: the seed's `budget:check`. Prints the current month's status with the
//! color and emoji of its level, the remaining budget, and every campaign over its warning
//! level; the exit code tells the level (0 ok, 1 warning or critical, 2 exceeded, 3 cannot
//! connect or the extension is missing, 6 permission denied). With `--init`, first creates the
//! month's budget row when it is missing (the seed's "initialize monthly budget" step).
//!
//! Needs `neon_budget_reader`; `--init` needs `neon_budget_admin`, checked before anything else
//! so that a reader's `check --init` fails every time, not only on the first run of a month.
use crate::conn;
use crate::money::{dollars, percent};
use crate::output::{campaign_label, emoji, json_decimal, meaning, paint, use_color};
use crate::{exit, Failure, Global};
use postgres::Client;

/// Options of `check`.
#[derive(clap::Args)]
pub struct Args {
    /// Also check this campaign (its campaign_id): its spend, budget and remaining budget are
    /// shown, and the status (and exit code) is the worse of the month's and the campaign's.
    #[arg(long, value_name = "ID")]
    pub campaign: Option<String>,
    /// First create the current month's budget row when it is missing, with --max-monthly-budget
    /// (MAX_MONTHLY_BUDGET) and --alert-threshold (DEFAULT_ALERT_THRESHOLD), else the server's
    /// neon_budget.max_monthly_budget and neon_budget.default_alert_threshold. An existing row
    /// is never changed. Needs the neon_budget_admin role (exit 6 without it, even when the row
    /// exists).
    #[arg(long)]
    pub init: bool,
    /// With --init: the month's budget in dollars, e.g. 1000 or 2500.50.
    #[arg(long, env = "MAX_MONTHLY_BUDGET", value_name = "DOLLARS")]
    pub max_monthly_budget: Option<String>,
    /// With --init: the warning level as a fraction of the budget in (0,1], e.g. 0.8 for 80%.
    #[arg(long, env = "DEFAULT_ALERT_THRESHOLD", value_name = "FRACTION")]
    pub alert_threshold: Option<String>,
}

/// The exit code of a status: 0 ok, 1 warning or critical, 2 exceeded.
pub fn exit_code(status: &str) -> i32 {
    match status {
        "ok" => exit::OK,
        "warning" | "critical" => exit::WARNING,
        _ => exit::EXCEEDED,
    }
}

/// `budget_check()`'s row, money as exact decimal text (dollars).
struct Status {
    can_execute: bool,
    status: String,
    month: String,
    total_budget: String,
    total_spent: String,
    remaining: String,
    /// Percent, 2 decimals (budget_check()'s), for JSON.
    utilization: String,
    /// Percent, exact, for the text (rounded once, to 1 decimal).
    utilization_exact: String,
    override_enabled: bool,
    reserved: String,
    campaign_budget: Option<String>,
    campaign_spent: Option<String>,
    campaign_reserved: Option<String>,
    campaign_remaining: Option<String>,
    campaign_utilization: Option<String>,
    campaign_utilization_exact: Option<String>,
}

/// A campaign over its warning level.
struct OverCampaign {
    campaign_id: String,
    name: String,
    cost: String,
    budget: String,
    /// Percent, 2 decimals (as the month's), for JSON.
    utilization: String,
    /// Percent, exact, for the text.
    utilization_exact: String,
    status: String,
}

/// Creates the current month's budget row when missing; returns `Some(month)` when it did.
fn init_month(client: &mut Client, args: &Args) -> Result<Option<String>, Failure> {
    for (name, value) in [
        ("--max-monthly-budget / MAX_MONTHLY_BUDGET", &args.max_monthly_budget),
        ("--alert-threshold / DEFAULT_ALERT_THRESHOLD", &args.alert_threshold),
    ] {
        if let Some(v) = value {
            if !crate::money::is_decimal(v) {
                return Err(Failure::bad_input(format!("{name} must be a decimal number, not {v:?} (e.g. 1000 or 0.8).")));
            }
        }
    }
    // set_monthly_budget is the admin role's: refused up front, whether or not the row exists.
    let row = client
        .query_one(
            "SELECT current_user::text,
                    pg_catalog.has_schema_privilege('neon_budget', 'USAGE')
                    AND COALESCE(bool_and(pg_catalog.has_function_privilege(p.oid, 'EXECUTE')), false)
               FROM pg_catalog.pg_proc p
              WHERE p.pronamespace = 'neon_budget'::regnamespace AND p.proname = 'set_monthly_budget'",
            &[],
        )
        .map_err(|e| conn::db_failure("--init: reading the privileges", &e))?;
    if !row.get::<_, bool>(1) {
        return Err(Failure::permission_denied(format!(
            "--init: permission denied: it creates the month's budget row with neon_budget.set_monthly_budget(), which user \"{}\" may not execute (SQLSTATE 42501).",
            row.get::<_, String>(0)
        )));
    }
    let mut tx = client.transaction().map_err(|e| conn::db_failure("--init", &e))?;
    // Concurrent `check --init`s create the row once.
    tx.execute("SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('neon-budget check --init'))", &[])
        .map_err(|e| conn::db_failure("--init", &e))?;
    let row = tx
        .query_one(
            "SELECT m.month, EXISTS (SELECT 1 FROM neon_budget.monthly_budget_setting s WHERE s.month = m.month)
               FROM (SELECT neon_budget._current_month() AS month) m",
            &[],
        )
        .map_err(|e| conn::db_failure("--init: reading the month's budget row", &e))?;
    let month: String = row.get(0);
    if row.get::<_, bool>(1) {
        return Ok(None);
    }
    tx.execute(
        // NULL threshold: set_monthly_budget uses neon_budget.default_alert_threshold.
        "SELECT neon_budget.set_monthly_budget($1,
                  COALESCE($2::text::numeric, pg_catalog.current_setting('neon_budget.max_monthly_budget')::numeric),
                  $3::text::numeric)",
        &[&month, &args.max_monthly_budget, &args.alert_threshold],
    )
    .map_err(|e| conn::db_failure(&format!("--init: creating the budget of {month}"), &e))?;
    tx.commit().map_err(|e| conn::db_failure("--init: commit", &e))?;
    Ok(Some(month))
}

fn read_status(client: &mut Client, campaign: Option<&str>) -> Result<Status, Failure> {
    let r = client
        .query_one(
            "SELECT can_execute, status, month, total_budget::text, total_spent::text, remaining::text,
                    utilization_percentage::text, override_enabled, reserved::text,
                    campaign_budget::text, campaign_spent::text, campaign_reserved::text,
                    (campaign_budget - campaign_spent - COALESCE(campaign_reserved, 0))::text,
                    pg_catalog.round(campaign_spent / campaign_budget * 100, 2)::text,
                    COALESCE((total_spent / NULLIF(total_budget, 0) * 100)::text, utilization_percentage::text),
                    (campaign_spent / NULLIF(campaign_budget, 0) * 100)::text
               FROM neon_budget.budget_check(campaign_id => $1)",
            &[&campaign],
        )
        .map_err(|e| conn::db_failure("budget_check()", &e))?;
    Ok(Status {
        can_execute: r.get(0),
        status: r.get(1),
        month: r.get(2),
        total_budget: r.get(3),
        total_spent: r.get(4),
        remaining: r.get(5),
        utilization: r.get(6),
        override_enabled: r.get(7),
        reserved: r.get(8),
        campaign_budget: r.get(9),
        campaign_spent: r.get(10),
        campaign_reserved: r.get(11),
        campaign_remaining: r.get(12),
        campaign_utilization: r.get(13),
        utilization_exact: r.get(14),
        campaign_utilization_exact: r.get(15),
    })
}

fn campaigns_over_warning(client: &mut Client, month: &str) -> Result<Vec<OverCampaign>, Failure> {
    let rows = client
        .query(
            "WITH c AS (
                 SELECT cc.campaign_id, COALESCE(c.name, cc.campaign_id) AS name, cc.total_cost, c.monthly_budget,
                        neon_budget._status(cc.total_cost, c.monthly_budget,
                            COALESCE(s.alert_threshold,
                                     pg_catalog.current_setting('neon_budget.default_alert_threshold')::numeric)) AS status
                   FROM neon_budget.campaign_cost cc
                   JOIN neon_budget.campaign c ON c.campaign_id = cc.campaign_id
                   LEFT JOIN neon_budget.monthly_budget_setting s ON s.month = cc.month
                  WHERE cc.month = $1 AND c.monthly_budget IS NOT NULL)
             SELECT campaign_id, name, total_cost::text, monthly_budget::text,
                    -- 2 decimals, as budget_check()'s utilization_percentage of the month.
                    pg_catalog.round(total_cost / monthly_budget * 100, 2)::text, status,
                    (total_cost / monthly_budget * 100)::text
               FROM c WHERE status <> 'ok'
              ORDER BY total_cost / monthly_budget DESC, campaign_id",
            &[&month],
        )
        .map_err(|e| conn::db_failure("reading campaign spend", &e))?;
    Ok(rows
        .iter()
        .map(|r| OverCampaign {
            campaign_id: r.get(0),
            name: r.get(1),
            cost: r.get(2),
            budget: r.get(3),
            utilization: r.get(4),
            status: r.get(5),
            utilization_exact: r.get(6),
        })
        .collect())
}

/// One line of user text (campaign ids and names may hold line breaks).
fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Runs `check`; returns the exit code of the status.
pub fn run(g: &Global, args: Args) -> Result<i32, Failure> {
    let mut client = conn::connect(g.database_url.as_deref())?;
    conn::require_extension(&mut client, None)?;
    let initialized = if args.init { Some(init_month(&mut client, &args)?) } else { None };
    let s = read_status(&mut client, args.campaign.as_deref())?;
    let over = campaigns_over_warning(&mut client, &s.month)?;
    let code = exit_code(&s.status);

    if g.quiet {
        return Ok(code);
    }
    if g.json {
        let campaign = args.campaign.as_ref().map(|id| {
            serde_json::json!({
                "campaign_id": id,
                "budget": json_decimal(s.campaign_budget.as_deref()),
                "spent": json_decimal(s.campaign_spent.as_deref()),
                "reserved": json_decimal(s.campaign_reserved.as_deref()),
                "remaining": json_decimal(s.campaign_remaining.as_deref()),
                "utilization_percentage": json_decimal(s.campaign_utilization.as_deref()),
            })
        });
        let over_json: Vec<_> = over
            .iter()
            .map(|c| {
                serde_json::json!({
                    "campaign_id": c.campaign_id, "name": c.name, "status": c.status,
                    "cost": json_decimal(Some(&c.cost)), "budget": json_decimal(Some(&c.budget)),
                    "utilization_percentage": json_decimal(Some(&c.utilization)),
                })
            })
            .collect();
        let out = serde_json::json!({
            "month": s.month,
            "status": s.status,
            "can_execute": s.can_execute,
            "override_enabled": s.override_enabled,
            "total_budget": json_decimal(Some(&s.total_budget)),
            "total_spent": json_decimal(Some(&s.total_spent)),
            "reserved": json_decimal(Some(&s.reserved)),
            "remaining": json_decimal(Some(&s.remaining)),
            "utilization_percentage": json_decimal(Some(&s.utilization)),
            "campaign": campaign,
            "campaigns_over_warning": over_json,
            "initialized": initialized.map(|m| m.is_some()),
            "exit_code": code,
        });
        println!("{out}");
        return Ok(code);
    }

    let color = use_color(g);
    if let Some(Some(month)) = &initialized {
        println!("🆕 Initialized the budget of {month}.");
    } else if initialized.is_some() {
        println!("ℹ️  The budget of {} already exists; left as it is.", s.month);
    }
    let headline = format!("{} Budget {}: {} — {}", emoji(&s.status), s.month, s.status.to_uppercase(), meaning(&s.status));
    println!("{}", paint(&headline, &s.status, color));
    println!("   Total budget:  {}", dollars(&s.total_budget, 2));
    println!("   Spent:         {} ({})", dollars(&s.total_spent, 2), percent(&s.utilization_exact));
    if !s.reserved.trim_start_matches(['0', '.']).is_empty() {
        println!("   Reserved:      {}", dollars(&s.reserved, 2));
    }
    println!("   Remaining:     {}", dollars(&s.remaining, 2));
    let allowed = match (s.can_execute, s.override_enabled) {
        (true, true) => "yes (override enabled)",
        (true, false) => "yes",
        (false, _) => "no: the budget is spent",
    };
    println!("   Executions allowed: {allowed}");
    if let Some(id) = &args.campaign {
        match (&s.campaign_budget, &s.campaign_spent) {
            (Some(b), spent) => println!(
                "   {}: {} of {} ({}), remaining {}",
                campaign_label("Campaign", &one_line(id)),
                dollars(spent.as_deref().unwrap_or("0"), 2),
                dollars(b, 2),
                percent(s.campaign_utilization_exact.as_deref().unwrap_or("0")),
                dollars(s.campaign_remaining.as_deref().unwrap_or("0"), 2)
            ),
            (None, spent) => println!(
                "   {}: {} spent, no limit",
                campaign_label("Campaign", &one_line(id)),
                dollars(spent.as_deref().unwrap_or("0"), 2)
            ),
        }
    }
    if over.is_empty() {
        println!("   No campaign is over its warning level.");
    } else {
        println!("   Campaigns over their warning level:");
        for c in &over {
            let line = format!(
                "   {} {} ({}): {} of {} ({}), {}",
                emoji(&c.status),
                one_line(&c.name),
                one_line(&c.campaign_id),
                dollars(&c.cost, 2),
                dollars(&c.budget, 2),
                percent(&c.utilization_exact),
                c.status
            );
            println!("{}", paint(&line, &c.status, color));
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    #[test]
    fn exit_codes() {
        assert_eq!(super::exit_code("ok"), 0);
        assert_eq!(super::exit_code("warning"), 1);
        assert_eq!(super::exit_code("critical"), 1);
        assert_eq!(super::exit_code("exceeded"), 2);
    }
}
