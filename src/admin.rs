//! Admin functions (the dashboard's "Budget Controls" panel). Each validates its arguments,
//! changes settings under a row lock and writes `audit_log` (who: `session_user`, when, old and
//! new values as JSON) in the same transaction.
use crate::api::required;
use crate::error::{raise, spi, spi_opt, Code};
use crate::gucs;
use crate::month;
use pgrx::prelude::*;
use pgrx::AnyNumeric;

fn require_positive_money(arg: &str, value: &AnyNumeric) {
    if !crate::money::is_finite(value) || *value <= AnyNumeric::from(0) {
        raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("{arg} must be a finite dollar amount greater than zero, not {value}"),
            "Budgets are in dollars, e.g. 1000 or 250.50; to remove a campaign's limit pass NULL.",
        );
    }
}

fn require_threshold(value: &AnyNumeric) {
    if value.is_nan() || *value <= AnyNumeric::from(0) || *value > AnyNumeric::from(1) {
        raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("alert_threshold must be a fraction in (0,1], not {value}"),
            "Pass e.g. 0.8 to warn at 80% of the budget.",
        );
    }
}

fn audit(action: &str, target: &str, old_value_sql: &str, new_value_sql: &str, args: Vec<pgrx::datum::DatumWithOid<'_>>) {
    let sql = format!(
        "INSERT INTO neon_budget.audit_log (action, target, old_value, new_value) VALUES ('{action}', $1, ({old_value_sql}), ({new_value_sql}))"
    );
    let mut all = vec![target.into()];
    all.extend(args);
    spi(Spi::run_with_args(&sql, &all));
}

/// `set_monthly_budget(month text, total_budget numeric, alert_threshold numeric DEFAULT NULL) -> void`
///
/// Sets the budget (dollars) of a billing month (`YYYY-MM`) and, when given, its alert threshold
/// (a fraction in (0,1]; NULL keeps the current one, or `neon_budget.default_alert_threshold`
/// for a new month). Raising the budget re-arms the alert levels the month no longer reaches;
/// lowering it sends the levels it now reaches. Writes `audit_log`.
///
/// Errors: 22007 for a malformed month (`2024-13`, `24-01`); 22023 for a budget ≤ 0 or a
/// threshold outside (0,1]; 22004 for a NULL month or budget.
#[pg_extern(volatile, parallel_unsafe)]
fn set_monthly_budget(
    month: Option<&str>,
    total_budget: Option<AnyNumeric>,
    alert_threshold: default!(Option<AnyNumeric>, "NULL"),
) {
    crate::error::require_writable("set_monthly_budget()");
    let month = month::require_month("month", required("month", month));
    let total_budget = required("total_budget", total_budget);
    require_positive_money("total_budget", &total_budget);
    if let Some(t) = &alert_threshold {
        require_threshold(t);
    }
    ensure_month(&month);
    let old = "SELECT pg_catalog.to_jsonb(s) FROM neon_budget.monthly_budget_setting s WHERE s.month OPERATOR(pg_catalog.=) $1";
    let old_value: Option<pgrx::JsonB> = spi_opt(Spi::get_one_with_args(&format!("{old} FOR UPDATE"), &[month.as_str().into()]));
    spi(Spi::run_with_args(
        "UPDATE neon_budget.monthly_budget_setting
            SET total_budget = $2, alert_threshold = COALESCE($3, alert_threshold), updated_at = pg_catalog.now()
          WHERE month OPERATOR(pg_catalog.=) $1",
        &[month.as_str().into(), total_budget.into(), alert_threshold.into()],
    ));
    audit("set_monthly_budget", &month, "SELECT $2", old, vec![old_value.into()]);
    rearm_month(&month);
}

/// `neon_budget._ensure_month(month text) -> void`: creates the settings row of `month` from
/// the GUCs `neon_budget.max_monthly_budget` and `neon_budget.default_alert_threshold` when it
/// does not exist yet. Safe when many sessions do it at once (`INSERT ... ON CONFLICT DO NOTHING`).
#[pg_extern(volatile, parallel_unsafe, name = "_ensure_month")]
pub(crate) fn ensure_month(month: &str) {
    spi(Spi::run_with_args(
        "INSERT INTO neon_budget.monthly_budget_setting (month, total_budget, alert_threshold)
         VALUES ($1, $2, $3) ON CONFLICT (month) DO NOTHING",
        &[month.into(), gucs::max_monthly_budget().into(), gucs::default_alert_threshold().into()],
    ));
}

/// Re-arming: after a budget change, the levels a scope no longer reaches are removed from
/// `alert_state` (so they can fire again), and the levels it now reaches and has not sent are
/// sent at once (a lowered budget alerts without waiting for the next execution).
fn rearm_month(month: &str) {
    spi(Spi::run_with_args(
        "WITH cur AS (
            SELECT s.month, s.total_budget AS budget, s.alert_threshold AS threshold,
                   (SELECT COALESCE(sum(m.cost), 0) FROM neon_budget._month_spend m
                     WHERE m.billing_month OPERATOR(pg_catalog.=) s.month) AS spent
              FROM neon_budget.monthly_budget_setting s WHERE s.month OPERATOR(pg_catalog.=) $1)
         UPDATE neon_budget.alert_state a
            SET levels_sent = ARRAY(SELECT l FROM pg_catalog.unnest(a.levels_sent) l
                 WHERE l OPERATOR(pg_catalog.=) ANY (neon_budget._reached_levels(cur.spent, cur.budget, cur.threshold)))
           FROM cur
          WHERE a.scope = 'month' AND a.scope_key = '' AND a.month OPERATOR(pg_catalog.=) cur.month",
        &[month.into()],
    ));
    // A separate statement: it must see the re-armed row, and may claim it.
    spi(Spi::run_with_args(
        "SELECT neon_budget._check_alerts('month', '', s.month,
                (SELECT COALESCE(sum(m.cost), 0) FROM neon_budget._month_spend m
                  WHERE m.billing_month OPERATOR(pg_catalog.=) s.month),
                s.total_budget, s.alert_threshold)
           FROM neon_budget.monthly_budget_setting s WHERE s.month OPERATOR(pg_catalog.=) $1",
        &[month.into()],
    ));
}

/// Campaign counterpart of [`rearm_month`].
fn rearm_campaign(campaign_id: &str) {
    // The months the campaign has spend or alert state in, with its budget and spend there.
    const CUR: &str = "WITH cur AS (
            SELECT s.month, c.monthly_budget AS budget, s.alert_threshold AS threshold,
                   (SELECT COALESCE(sum(cs.cost), 0) FROM neon_budget._campaign_spend cs
                     WHERE cs.campaign_id OPERATOR(pg_catalog.=) c.campaign_id
                       AND cs.billing_month OPERATOR(pg_catalog.=) s.month) AS spent
              FROM neon_budget.campaign c
              JOIN neon_budget.monthly_budget_setting s
                ON s.month IN (SELECT cs.billing_month FROM neon_budget._campaign_spend cs
                                WHERE cs.campaign_id OPERATOR(pg_catalog.=) c.campaign_id
                               UNION SELECT a.month FROM neon_budget.alert_state a
                                WHERE a.scope = 'campaign' AND a.scope_key OPERATOR(pg_catalog.=) c.campaign_id)
             WHERE c.campaign_id OPERATOR(pg_catalog.=) $1) ";
    spi(Spi::run_with_args(
        &format!(
            "{CUR} UPDATE neon_budget.alert_state a
               SET levels_sent = CASE WHEN cur.budget IS NULL THEN '{{}}'::text[] ELSE ARRAY(
                    SELECT l FROM pg_catalog.unnest(a.levels_sent) l
                     WHERE l OPERATOR(pg_catalog.=) ANY (neon_budget._reached_levels(cur.spent, cur.budget, cur.threshold))) END
              FROM cur
             WHERE a.scope = 'campaign' AND a.scope_key OPERATOR(pg_catalog.=) $1 AND a.month OPERATOR(pg_catalog.=) cur.month"
        ),
        &[campaign_id.into()],
    ));
    // A separate statement: it must see the re-armed rows, and may claim them.
    spi(Spi::run_with_args(
        &format!(
            "{CUR} SELECT neon_budget._check_alerts('campaign', $1, cur.month, cur.spent, cur.budget, cur.threshold)
               FROM cur WHERE cur.budget IS NOT NULL"
        ),
        &[campaign_id.into()],
    ));
}

/// `set_campaign(campaign_id text, name text, campaign_type text DEFAULT NULL, monthly_budget numeric DEFAULT NULL) -> void`
///
/// Creates or updates a campaign: display name, type (e.g. `CONTENT_GENERATION`) and monthly
/// budget in dollars (NULL = no limit: never blocks, never alerts). Raising the budget re-arms
/// the campaign's alert levels it no longer reaches. Writes `audit_log`.
///
/// Errors: 22004 for a NULL campaign_id or name; 22023 for an empty campaign_id or a budget ≤ 0.
#[pg_extern(volatile, parallel_unsafe)]
fn set_campaign(
    campaign_id: Option<&str>,
    name: Option<&str>,
    campaign_type: default!(Option<&str>, "NULL"),
    monthly_budget: default!(Option<AnyNumeric>, "NULL"),
) {
    crate::error::require_writable("set_campaign()");
    let campaign_id = required("campaign_id", campaign_id);
    let name = required("name", name);
    if campaign_id.trim().is_empty() {
        raise(Code::ERRCODE_INVALID_PARAMETER_VALUE, "campaign_id must not be empty", "Pass the id your agents send as campaign_id.");
    }
    if let Some(b) = &monthly_budget {
        require_positive_money("monthly_budget", b);
    }
    let old_value: Option<pgrx::JsonB> = spi_opt(Spi::get_one_with_args(
        "SELECT pg_catalog.to_jsonb(c) FROM neon_budget.campaign c WHERE c.campaign_id OPERATOR(pg_catalog.=) $1 FOR UPDATE",
        &[campaign_id.into()],
    ));
    spi(Spi::run_with_args(
        "INSERT INTO neon_budget.campaign AS c (campaign_id, name, campaign_type, monthly_budget)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (campaign_id) DO UPDATE
            SET name = EXCLUDED.name, campaign_type = EXCLUDED.campaign_type,
                monthly_budget = EXCLUDED.monthly_budget, updated_at = pg_catalog.now()",
        &[campaign_id.into(), name.into(), campaign_type.into(), monthly_budget.into()],
    ));
    audit(
        "set_campaign",
        campaign_id,
        "SELECT $2",
        "SELECT pg_catalog.to_jsonb(c) FROM neon_budget.campaign c WHERE c.campaign_id OPERATOR(pg_catalog.=) $1",
        vec![old_value.into()],
    );
    rearm_campaign(campaign_id);
}

/// `set_agent_rate(agent_type text, cost_per_1k_tokens numeric) -> void`
///
/// Sets the rate of an agent type (new or existing) in dollars per 1,000 tokens, effective now.
/// Only executions recorded after the change use it: logged costs never change. Writes
/// `audit_log`.
///
/// Errors: 22004 for NULL arguments; 22023 for an empty agent type or a negative rate.
#[pg_extern(volatile, parallel_unsafe)]
fn set_agent_rate(agent_type: Option<&str>, cost_per_1k_tokens: Option<AnyNumeric>) {
    crate::error::require_writable("set_agent_rate()");
    let agent_type = required("agent_type", agent_type);
    let rate = required("cost_per_1k_tokens", cost_per_1k_tokens);
    if agent_type.trim().is_empty() {
        raise(Code::ERRCODE_INVALID_PARAMETER_VALUE, "agent_type must not be empty", "Pass a name such as 'CONTENT'.");
    }
    if !crate::money::is_finite(&rate) || rate < AnyNumeric::from(0) {
        raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("cost_per_1k_tokens must be zero or more dollars, not {rate}"),
            "Pass the price of 1,000 tokens in dollars, e.g. 0.04.",
        );
    }
    // Serialize rate changes of one agent type.
    spi(Spi::run_with_args(
        "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('neon_budget.agent_rate:' OPERATOR(pg_catalog.||) $1))",
        &[agent_type.into()],
    ));
    let old_rate: Option<AnyNumeric> = spi_opt(Spi::get_one_with_args(
        "SELECT r.cost_per_1k_tokens FROM neon_budget.agent_rate r WHERE r.agent_type OPERATOR(pg_catalog.=) $1
          ORDER BY r.effective_from DESC LIMIT 1",
        &[agent_type.into()],
    ));
    spi(Spi::run_with_args(
        "INSERT INTO neon_budget.agent_rate AS r (agent_type, cost_per_1k_tokens, effective_from)
         VALUES ($1, $2, pg_catalog.now())
         ON CONFLICT (agent_type, effective_from) DO UPDATE SET cost_per_1k_tokens = EXCLUDED.cost_per_1k_tokens",
        &[agent_type.into(), rate.clone().into()],
    ));
    audit(
        "set_agent_rate",
        agent_type,
        "SELECT pg_catalog.jsonb_build_object('cost_per_1k_tokens', $2::numeric)",
        "SELECT pg_catalog.jsonb_build_object('cost_per_1k_tokens', $3::numeric)",
        vec![old_rate.into(), rate.into()],
    );
}

/// `set_budget_override(enabled boolean, reason text DEFAULT NULL) -> void`
///
/// The emergency override of the current billing month: while on, `budget_check` allows
/// executions past the month's and every campaign's budget (alerts still fire). A reason is
/// required to turn it on. Writes `audit_log`. (The GUC `neon_budget.enable_override` turns the
/// override on for every month.)
///
/// Errors: 22004 for a NULL `enabled`; 22023 when turning it on without a reason.
#[pg_extern(volatile, parallel_unsafe)]
fn set_budget_override(enabled: Option<bool>, reason: default!(Option<&str>, "NULL")) {
    crate::error::require_writable("set_budget_override()");
    let enabled = required("enabled", enabled);
    if enabled && reason.map(str::trim).unwrap_or("").is_empty() {
        raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            "turning the budget override on needs a reason",
            "Say why, e.g. set_budget_override(true, 'incident 42: investigating runaway agent').",
        );
    }
    let month = month::current_month();
    ensure_month(&month);
    let old = "SELECT pg_catalog.jsonb_build_object('override_enabled', s.override_enabled, 'override_reason', s.override_reason)
                 FROM neon_budget.monthly_budget_setting s WHERE s.month OPERATOR(pg_catalog.=) $1";
    let old_value: Option<pgrx::JsonB> = spi_opt(Spi::get_one_with_args(&format!("{old} FOR UPDATE"), &[month.as_str().into()]));
    spi(Spi::run_with_args(
        "UPDATE neon_budget.monthly_budget_setting
            SET override_enabled = $2, override_reason = $3, updated_at = pg_catalog.now()
          WHERE month OPERATOR(pg_catalog.=) $1",
        &[month.as_str().into(), enabled.into(), reason.into()],
    ));
    audit("set_budget_override", &month, "SELECT $2", old, vec![old_value.into()]);
}
