//! Budget settings: monthly budgets, campaigns and the emergency override (the dashboard's
//! "Budget Controls" panel; agent rates are in `rate_changes.rs`). Each change is made under
//! a row lock and writes `audit_log` (who: `session_user`, when, old and new values as JSON) in the same
//! transaction; a change to a budget or threshold re-arms the alert levels it affects. The
//! callers (the SQL functions of the same names) have checked the arguments.
use crate::alerts;
use crate::error::{raise, spi, spi_opt, Code};
use crate::gucs;
use crate::month;
use pgrx::prelude::*;
use pgrx::AnyNumeric;

/// Writes one `audit_log` row: `action` on `target`, the old and new values given by the
/// queries `old_value_sql` and `new_value_sql` (`$1` is `target`, then `args`).
pub(crate) fn audit(action: &str, target: &str, old_value_sql: &str, new_value_sql: &str, args: Vec<pgrx::datum::DatumWithOid<'_>>) {
    let sql = format!(
        "INSERT INTO neon_budget.audit_log (action, target, old_value, new_value) VALUES ('{action}', $1, ({old_value_sql}), ({new_value_sql}))"
    );
    let mut all = vec![target.into()];
    all.extend(args);
    spi(Spi::run_with_args(&sql, &all));
}

/// `set_monthly_budget` with checked arguments: updates the month's
/// settings row under a row lock, audits, and re-arms the month's alert levels.
pub fn set_monthly_budget(month: &str, total_budget: Option<AnyNumeric>, alert_threshold: Option<AnyNumeric>) {
    ensure_month(month);
    let old = "SELECT pg_catalog.to_jsonb(s) FROM neon_budget.monthly_budget_setting s WHERE s.month OPERATOR(pg_catalog.=) $1";
    let old_value: Option<pgrx::JsonB> = spi_opt(Spi::get_one_with_args(&format!("{old} FOR UPDATE"), &[month.into()]));
    spi(Spi::run_with_args(
        "UPDATE neon_budget.monthly_budget_setting
            SET total_budget = COALESCE($2, total_budget), alert_threshold = COALESCE($3, alert_threshold),
                updated_at = pg_catalog.now()
          WHERE month OPERATOR(pg_catalog.=) $1",
        &[month.into(), total_budget.into(), alert_threshold.into()],
    ));
    audit("set_monthly_budget", month, "SELECT $2", old, vec![old_value.into()]);
    rearm(Some(month), None);
}

/// Creates the settings row of `month` (`YYYY-MM`) from the GUCs
/// `neon_budget.max_monthly_budget` and `neon_budget.default_alert_threshold` when it does not
/// exist yet. Safe when many sessions do it at once (`INSERT ... ON CONFLICT DO NOTHING`).
pub fn ensure_month(month: &str) {
    use crate::pg::plans::{self, oid};
    const ENSURE: &str = "INSERT INTO neon_budget.monthly_budget_setting (month, total_budget, alert_threshold)
         VALUES ($1, $2, $3) ON CONFLICT (month) DO NOTHING";
    Spi::connect_mut(|client| {
        let plan = plans::plan(client, ENSURE, &[oid::TEXT, oid::NUMERIC, oid::NUMERIC]);
        spi(client.update(&*plan, None, &[month.into(), gucs::max_monthly_budget().into(), gucs::default_alert_threshold().into()]));
    });
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
                     WHERE l OPERATOR(pg_catalog.=) ANY (neon_budget._reached_levels(cur.spent, cur.budget, cur.threshold))
                        OR l OPERATOR(pg_catalog.=) 'forecast') END
              FROM cur
             WHERE a.scope OPERATOR(pg_catalog.=) cur.scope AND a.scope_key OPERATOR(pg_catalog.=) cur.scope_key
               AND a.month OPERATOR(pg_catalog.=) cur.month
               AND a.levels_sent OPERATOR(pg_catalog.<>) CASE WHEN cur.budget IS NULL THEN '{{}}'::text[] ELSE ARRAY(
                    SELECT l FROM pg_catalog.unnest(a.levels_sent) l
                     WHERE l OPERATOR(pg_catalog.=) ANY (neon_budget._reached_levels(cur.spent, cur.budget, cur.threshold))
                        OR l OPERATOR(pg_catalog.=) 'forecast') END"
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
    rearm_forecasts(month, campaign_id);
}

/// Re-arming of the `forecast` alert (kept by the statements above): in the current month's
/// scopes that `month` or `campaign_id` name (see [`rearm`]), a scope whose month-end projection
/// no longer passes its new budget may send it again, and one whose projection now passes it
/// sends it at once. Other months are never forecast.
fn rearm_forecasts(month: Option<&str>, campaign_id: Option<&str>) {
    let current = month::current_month();
    if month.is_some_and(|m| m != current) {
        return;
    }
    let forecasts = crate::forecast::of_month(&current);
    Spi::connect_mut(|client| {
        for f in forecasts.iter().filter(|f| month.is_some() || f.campaign_id.as_deref() == campaign_id) {
            let (scope, key) = match &f.campaign_id {
                None => ("month", ""),
                Some(id) => ("campaign", id.as_str()),
            };
            match (&f.budget, f.projection.over_budget) {
                (Some(budget), true) => alerts::claim_and_send(client, &alerts::forecast_due(scope, key, &current, &f.projection, budget)),
                _ => {
                    spi(client.update(
                        "UPDATE neon_budget.alert_state a SET levels_sent = pg_catalog.array_remove(a.levels_sent, 'forecast')
                          WHERE a.scope OPERATOR(pg_catalog.=) $1 AND a.scope_key OPERATOR(pg_catalog.=) $2
                            AND a.month OPERATOR(pg_catalog.=) $3 AND 'forecast' OPERATOR(pg_catalog.=) ANY (a.levels_sent)",
                        None,
                        &[scope.into(), key.into(), current.as_str().into()],
                    ));
                }
            }
        }
    });
}

/// `set_campaign` with checked arguments: creates or updates the
/// campaign under a row lock (22004 for a new campaign without a name), audits, re-arms.
pub fn set_campaign(campaign_id: &str, name: Option<&str>, campaign_type: Option<&str>, monthly_budget: Option<AnyNumeric>) {
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

/// `clear_campaign_budget` for a checked id: 42704 for an unknown
/// campaign; audits and re-arms.
pub fn clear_campaign_budget(campaign_id: &str) {
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

/// `set_budget_override` with checked arguments, for the current month;
/// audits.
pub fn set_budget_override(enabled: bool, reason: Option<&str>) {
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
