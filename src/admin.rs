//! Admin functions (the dashboard's "Budget Controls" panel). Each validates its arguments,
//! changes settings under a row lock and writes `audit_log` (who: `session_user`, when, old and
//! new values as JSON) in the same transaction.
use crate::api::required;
use crate::error::{raise, spi, spi_opt, Code};
use crate::gucs;
use crate::month;
use crate::validation;
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

/// `set_monthly_budget(month text, total_budget numeric DEFAULT NULL, alert_threshold numeric DEFAULT NULL) -> void`
///
/// Sets the budget (dollars) and the alert threshold (a fraction in (0,1]) of a billing month
/// (`YYYY-MM`). An argument left out (or NULL) keeps what the month has: for a month not used
/// yet, `neon_budget.max_monthly_budget` and `neon_budget.default_alert_threshold`. Any change
/// re-arms and re-evaluates the alert levels of the month and of every campaign with spend or
/// alerts in it (the threshold is theirs too): levels no longer reached can fire again, and
/// levels the change makes reached are sent when it commits. Writes `audit_log`.
///
/// Errors: 22007 for a malformed month (`2024-13`, `24-01`); 22023 for a budget ≤ 0 or a
/// threshold outside (0,1]; 22004 for a NULL month.
#[pg_extern(volatile, parallel_unsafe)]
fn set_monthly_budget(
    month: Option<&str>,
    total_budget: default!(Option<AnyNumeric>, "NULL"),
    alert_threshold: default!(Option<AnyNumeric>, "NULL"),
) {
    crate::error::require_writable("set_monthly_budget()");
    crate::schema_version::require_current();
    let month = month::require_month("month", required("month", month));
    if let Some(b) = &total_budget {
        require_positive_money("total_budget", b);
    }
    if let Some(t) = &alert_threshold {
        require_threshold(t);
    }
    ensure_month(&month);
    let old = "SELECT pg_catalog.to_jsonb(s) FROM neon_budget.monthly_budget_setting s WHERE s.month OPERATOR(pg_catalog.=) $1";
    let old_value: Option<pgrx::JsonB> = spi_opt(Spi::get_one_with_args(&format!("{old} FOR UPDATE"), &[month.as_str().into()]));
    spi(Spi::run_with_args(
        "UPDATE neon_budget.monthly_budget_setting
            SET total_budget = COALESCE($2, total_budget), alert_threshold = COALESCE($3, alert_threshold),
                updated_at = pg_catalog.now()
          WHERE month OPERATOR(pg_catalog.=) $1",
        &[month.as_str().into(), total_budget.into(), alert_threshold.into()],
    ));
    audit("set_monthly_budget", &month, "SELECT $2", old, vec![old_value.into()]);
    rearm(Some(&month), None);
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

/// Re-arming after a change to a budget or a threshold: in every scope whose levels depend on
/// it, the levels no longer reached are removed from `alert_state` (so they can fire again),
/// and the levels now reached and not sent are sent at once (a lowered budget or threshold
/// alerts when the change commits, without waiting for the next execution).
///
/// `month` given: that month's scope and every campaign scope of that month (the month's
/// threshold is theirs too). `campaign_id` given: that campaign's scope in every month it has
/// spend or alert state in.
fn rearm(month: Option<&str>, campaign_id: Option<&str>) {
    // The scopes with their budget, threshold and spend now.
    const CUR: &str = "WITH keys AS (
            SELECT 'month'::text AS scope, ''::text AS scope_key, $1::text AS month WHERE $1::text IS NOT NULL
            UNION
            SELECT 'campaign', cs.campaign_id, cs.billing_month FROM neon_budget._campaign_spend cs
             WHERE ($1::text IS NULL OR cs.billing_month OPERATOR(pg_catalog.=) $1)
               AND ($2::text IS NULL OR cs.campaign_id OPERATOR(pg_catalog.=) $2)
            UNION
            SELECT 'campaign', a.scope_key, a.month FROM neon_budget.alert_state a
             WHERE a.scope = 'campaign'
               AND ($1::text IS NULL OR a.month OPERATOR(pg_catalog.=) $1)
               AND ($2::text IS NULL OR a.scope_key OPERATOR(pg_catalog.=) $2)),
        cur AS (
            SELECT k.scope, k.scope_key, k.month,
                   CASE WHEN k.scope = 'month' THEN COALESCE(s.total_budget, neon_budget._default_monthly_budget())
                        ELSE c.monthly_budget END AS budget,
                   COALESCE(s.alert_threshold, neon_budget._default_alert_threshold()) AS threshold,
                   CASE WHEN k.scope = 'month'
                        THEN (SELECT COALESCE(sum(m.cost), 0) FROM neon_budget._month_spend m
                               WHERE m.billing_month OPERATOR(pg_catalog.=) k.month)
                        ELSE (SELECT COALESCE(sum(cs.cost), 0) FROM neon_budget._campaign_spend cs
                               WHERE cs.campaign_id OPERATOR(pg_catalog.=) k.scope_key
                                 AND cs.billing_month OPERATOR(pg_catalog.=) k.month) END AS spent
              FROM keys k
              LEFT JOIN neon_budget.monthly_budget_setting s ON s.month OPERATOR(pg_catalog.=) k.month
              LEFT JOIN neon_budget.campaign c ON k.scope = 'campaign' AND c.campaign_id OPERATOR(pg_catalog.=) k.scope_key) ";
    spi(Spi::run_with_args(
        &format!(
            "{CUR} UPDATE neon_budget.alert_state a
               SET levels_sent = CASE WHEN cur.budget IS NULL THEN '{{}}'::text[] ELSE ARRAY(
                    SELECT l FROM pg_catalog.unnest(a.levels_sent) l
                     WHERE l OPERATOR(pg_catalog.=) ANY (neon_budget._reached_levels(cur.spent, cur.budget, cur.threshold))) END
              FROM cur
             WHERE a.scope OPERATOR(pg_catalog.=) cur.scope AND a.scope_key OPERATOR(pg_catalog.=) cur.scope_key
               AND a.month OPERATOR(pg_catalog.=) cur.month
               AND a.levels_sent OPERATOR(pg_catalog.<>) CASE WHEN cur.budget IS NULL THEN '{{}}'::text[] ELSE ARRAY(
                    SELECT l FROM pg_catalog.unnest(a.levels_sent) l
                     WHERE l OPERATOR(pg_catalog.=) ANY (neon_budget._reached_levels(cur.spent, cur.budget, cur.threshold))) END"
        ),
        &[month.into(), campaign_id.into()],
    ));
    // A separate statement: it must see the re-armed rows, and may claim them.
    spi(Spi::run_with_args(
        &format!(
            "{CUR} SELECT neon_budget._check_alerts(cur.scope, cur.scope_key, cur.month, cur.spent, cur.budget, cur.threshold)
               FROM cur WHERE cur.budget IS NOT NULL ORDER BY cur.scope DESC, cur.scope_key"
        ),
        &[month.into(), campaign_id.into()],
    ));
}

/// `set_campaign(campaign_id text, name text DEFAULT NULL, campaign_type text DEFAULT NULL, monthly_budget numeric DEFAULT NULL) -> void`
///
/// Creates or updates a campaign: display name, type (e.g. `CONTENT_GENERATION`) and monthly
/// budget in dollars. An argument left out (or NULL) keeps the campaign's stored value, so a
/// rename never lifts a cap; a new campaign without a budget has no limit (never blocks, never
/// alerts). To remove a budget, call `clear_campaign_budget(campaign_id)`. A budget change
/// re-arms and re-evaluates the campaign's alert levels in every month it has spend in. Writes
/// `audit_log`.
///
/// Errors: 22004 for a NULL campaign_id, or a NULL name for a new campaign; 22023 for an empty
/// campaign_id or a budget ≤ 0; 22001 for a campaign_id over 200 characters or a name or type
/// over 200.
#[pg_extern(volatile, parallel_unsafe)]
fn set_campaign(
    campaign_id: Option<&str>,
    name: default!(Option<&str>, "NULL"),
    campaign_type: default!(Option<&str>, "NULL"),
    monthly_budget: default!(Option<AnyNumeric>, "NULL"),
) {
    crate::error::require_writable("set_campaign()");
    crate::schema_version::require_current();
    let campaign_id = require_campaign_id(campaign_id);
    validation::require_length_opt("name", name, validation::MAX_NAME_CHARS);
    validation::require_length_opt("campaign_type", campaign_type, validation::MAX_NAME_CHARS);
    if let Some(b) = &monthly_budget {
        require_positive_money("monthly_budget", b);
    }
    let old_value = lock_campaign(campaign_id);
    if old_value.is_none() && name.is_none() {
        raise(
            Code::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            format!("campaign \"{campaign_id}\" does not exist yet: a new campaign needs a name"),
            "Pass a name, e.g. set_campaign('camp-1', 'Spring launch', 'CONTENT_GENERATION', 500).",
        );
    }
    // An existing campaign (its row locked above) is updated; a new one is inserted, and a
    // concurrent creator of the same id makes this an update of its row.
    let sql = if old_value.is_some() {
        "UPDATE neon_budget.campaign AS c
            SET name = COALESCE($2, c.name), campaign_type = COALESCE($3, c.campaign_type),
                monthly_budget = COALESCE($4, c.monthly_budget), updated_at = pg_catalog.now()
          WHERE c.campaign_id OPERATOR(pg_catalog.=) $1"
    } else {
        "INSERT INTO neon_budget.campaign AS c (campaign_id, name, campaign_type, monthly_budget)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (campaign_id) DO UPDATE
            SET name = COALESCE($2, c.name), campaign_type = COALESCE($3, c.campaign_type),
                monthly_budget = COALESCE($4, c.monthly_budget), updated_at = pg_catalog.now()"
    };
    spi(Spi::run_with_args(sql, &[campaign_id.into(), name.into(), campaign_type.into(), monthly_budget.clone().into()]));
    audit_campaign("set_campaign", campaign_id, old_value);
    if monthly_budget.is_some() {
        rearm(None, Some(campaign_id));
    }
}

/// `clear_campaign_budget(campaign_id text) -> void`
///
/// Removes a campaign's monthly budget: from now on it has no limit (never blocks, never
/// alerts) until `set_campaign` gives it one again. The explicit way to lift a cap (leaving
/// `monthly_budget` out of `set_campaign` keeps it). Writes `audit_log`.
///
/// Errors: 22004 for a NULL campaign_id; 22023 for an empty one; 22001 for one over 200
/// characters; 42704 for a campaign that does not exist.
#[pg_extern(volatile, parallel_unsafe)]
fn clear_campaign_budget(campaign_id: Option<&str>) {
    crate::error::require_writable("clear_campaign_budget()");
    crate::schema_version::require_current();
    let campaign_id = require_campaign_id(campaign_id);
    let Some(old_value) = lock_campaign(campaign_id) else {
        raise(
            Code::ERRCODE_UNDEFINED_OBJECT,
            format!("campaign \"{campaign_id}\" does not exist"),
            "SELECT campaign_id FROM neon_budget.campaign lists the campaigns.",
        );
    };
    spi(Spi::run_with_args(
        "UPDATE neon_budget.campaign SET monthly_budget = NULL, updated_at = pg_catalog.now()
          WHERE campaign_id OPERATOR(pg_catalog.=) $1",
        &[campaign_id.into()],
    ));
    audit_campaign("clear_campaign_budget", campaign_id, Some(old_value));
    rearm(None, Some(campaign_id));
}

/// Checks a campaign id argument: 22004 NULL, 22023 empty or blank, 22001 too long.
fn require_campaign_id(campaign_id: Option<&str>) -> &str {
    let campaign_id = required("campaign_id", campaign_id);
    if campaign_id.trim().is_empty() {
        raise(Code::ERRCODE_INVALID_PARAMETER_VALUE, "campaign_id must not be empty", "Pass the id your agents send as campaign_id.");
    }
    validation::require_length("campaign_id", campaign_id, validation::MAX_ID_CHARS);
    campaign_id
}

/// Locks a campaign's row for this transaction and returns it as JSON (None: no such campaign).
fn lock_campaign(campaign_id: &str) -> Option<pgrx::JsonB> {
    spi_opt(Spi::get_one_with_args(
        "SELECT pg_catalog.to_jsonb(c) FROM neon_budget.campaign c WHERE c.campaign_id OPERATOR(pg_catalog.=) $1 FOR UPDATE",
        &[campaign_id.into()],
    ))
}

/// Audits a campaign change: the row before (`old_value`) and after.
fn audit_campaign(action: &str, campaign_id: &str, old_value: Option<pgrx::JsonB>) {
    audit(
        action,
        campaign_id,
        "SELECT $2",
        "SELECT pg_catalog.to_jsonb(c) FROM neon_budget.campaign c WHERE c.campaign_id OPERATOR(pg_catalog.=) $1",
        vec![old_value.into()],
    );
}

/// `set_agent_rate(agent_type text, cost_per_1k_tokens numeric) -> void`
///
/// Sets the rate of an agent type (new or existing) in dollars per 1,000 tokens, effective now.
/// Only executions recorded after the change use it: logged costs never change. Writes
/// `audit_log`.
///
/// Errors: 22004 for NULL arguments; 22023 for an empty agent type or a negative rate; 22001
/// for an agent type over 100 characters.
#[pg_extern(volatile, parallel_unsafe)]
fn set_agent_rate(agent_type: Option<&str>, cost_per_1k_tokens: Option<AnyNumeric>) {
    crate::error::require_writable("set_agent_rate()");
    crate::schema_version::require_current();
    let agent_type = required("agent_type", agent_type);
    let rate = required("cost_per_1k_tokens", cost_per_1k_tokens);
    if agent_type.trim().is_empty() {
        raise(Code::ERRCODE_INVALID_PARAMETER_VALUE, "agent_type must not be empty", "Pass a name such as 'CONTENT'.");
    }
    validation::require_length("agent_type", agent_type, validation::MAX_AGENT_TYPE_CHARS);
    if !crate::money::is_finite(&rate) || rate < AnyNumeric::from(0) {
        raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("cost_per_1k_tokens must be zero or more dollars, not {rate}"),
            "Pass the price of 1,000 tokens in dollars, e.g. 0.04.",
        );
    }
    // Serialize rate changes of one agent type.
    crate::locks::wait_xact(crate::locks::Class::AgentRate, &format!("neon_budget.agent_rate:{agent_type}"));
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
/// required to turn it on; turning it off without one keeps the last reason on record. Writes
/// `audit_log`. (The GUC `neon_budget.enable_override` turns the
/// override on for every month.)
///
/// Errors: 22004 for a NULL `enabled`; 22023 when turning it on without a reason; 22001 for a
/// reason over 1,000 characters.
#[pg_extern(volatile, parallel_unsafe)]
fn set_budget_override(enabled: Option<bool>, reason: default!(Option<&str>, "NULL")) {
    crate::error::require_writable("set_budget_override()");
    crate::schema_version::require_current();
    let enabled = required("enabled", enabled);
    if enabled && reason.map(str::trim).unwrap_or("").is_empty() {
        raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            "turning the budget override on needs a reason",
            "Say why, e.g. set_budget_override(true, 'incident 42: investigating runaway agent').",
        );
    }
    validation::require_length_opt("reason", reason, validation::MAX_REASON_CHARS);
    let month = month::current_month();
    ensure_month(&month);
    let old = "SELECT pg_catalog.jsonb_build_object('override_enabled', s.override_enabled, 'override_reason', s.override_reason)
                 FROM neon_budget.monthly_budget_setting s WHERE s.month OPERATOR(pg_catalog.=) $1";
    let old_value: Option<pgrx::JsonB> = spi_opt(Spi::get_one_with_args(&format!("{old} FOR UPDATE"), &[month.as_str().into()]));
    spi(Spi::run_with_args(
        "UPDATE neon_budget.monthly_budget_setting
            SET override_enabled = $2, override_reason = COALESCE($3, override_reason), updated_at = pg_catalog.now()
          WHERE month OPERATOR(pg_catalog.=) $1",
        &[month.as_str().into(), enabled.into(), reason.into()],
    ));
    audit("set_budget_override", &month, "SELECT $2", old, vec![old_value.into()]);
}
