//! Alert levels and NOTIFY payloads.
//!
//! Levels (source: the seed's "Alert Thresholds"): `warning` at the month's alert threshold
//! (default 80%), `critical` at 95%, `exceeded` at 100% of the budget. The triggers in
//! `sql/aggregates.sql` ask [`reached_levels`] which levels a spend has reached and send each one
//! not yet sent, once per scope and month, on the channel `neon_budget_alerts`.
use crate::error::{spi, spi_opt};
use crate::money;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::AnyNumeric;

/// The NOTIFY channel alerts are sent on.
pub const CHANNEL: &str = "neon_budget_alerts";

/// PostgreSQL refuses NOTIFY payloads of 8000 bytes or more; payloads stay below this.
const MAX_PAYLOAD_BYTES: usize = 7900;

/// An alert level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Warning,
    Critical,
    Exceeded,
}

impl Level {
    /// The level's name as stored in `alert_log.level` and sent in payloads.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Warning => "warning",
            Level::Critical => "critical",
            Level::Exceeded => "exceeded",
        }
    }
}

thread_local! {
    /// 0.95, the critical level's fraction (parsed once per backend).
    static CRITICAL_FRACTION: AnyNumeric = AnyNumeric::try_from("0.95").expect("constant numeric");
}

/// The three levels with their amounts in dollars against `budget` (warning at `threshold` ×
/// budget, critical at 0.95 × budget, exceeded at the budget), lowest amount first (a
/// threshold above 0.95 puts the warning after critical). Exact numeric products.
fn level_amounts(budget: &AnyNumeric, threshold: &AnyNumeric) -> [(AnyNumeric, Level); 3] {
    let warning = threshold.clone() * budget.clone();
    let critical = CRITICAL_FRACTION.with(|f| f.clone()) * budget.clone();
    let exceeded = budget.clone();
    if warning <= critical {
        [(warning, Level::Warning), (critical, Level::Critical), (exceeded, Level::Exceeded)]
    } else {
        [(critical, Level::Critical), (warning, Level::Warning), (exceeded, Level::Exceeded)]
    }
}

/// The levels that `spent` dollars reach against `budget` dollars with the warning level at
/// `threshold` (a fraction in (0,1]), in the order of the amounts they stand for. Comparisons
/// are products, not quotients, so they are exact: spent ≥ threshold × budget, and so on.
pub fn reached_levels(spent: &AnyNumeric, budget: &AnyNumeric, threshold: &AnyNumeric) -> Vec<Level> {
    level_amounts(budget, threshold).into_iter().filter(|(amount, _)| spent >= amount).map(|(_, level)| level).collect()
}

/// The amount in dollars of the lowest level not in `sent` against `budget` dollars (warning at
/// `threshold`), or None when all three were sent.
pub fn next_level_amount(budget: &AnyNumeric, threshold: &AnyNumeric, sent: &[String]) -> Option<AnyNumeric> {
    level_amounts(budget, threshold).into_iter().find(|(_, level)| !sent.iter().any(|l| l == level.as_str())).map(|(amount, _)| amount)
}

/// The status of a spend: the highest level reached, or `ok`.
pub fn status(spent: &AnyNumeric, budget: &AnyNumeric, threshold: &AnyNumeric) -> &'static str {
    status_of(&reached_levels(spent, budget, threshold))
}

/// The status for the levels a spend reached ([`reached_levels`]): the most severe, or `ok`.
pub fn status_of(reached: &[Level]) -> &'static str {
    [Level::Exceeded, Level::Critical, Level::Warning].into_iter().find(|l| reached.contains(l)).map_or("ok", Level::as_str)
}

fn json_number(n: &AnyNumeric) -> serde_json::Value {
    // arbitrary_precision keeps the exact decimal text of the numeric; a non-finite value
    // (which the tables' CHECKs keep out) would be sent as a string rather than fail.
    let text = n.to_string();
    match text.parse() {
        Ok(number) => serde_json::Value::Number(number),
        Err(_) => serde_json::Value::String(text),
    }
}

/// The JSON payload of an alert: `{"alert_id", "scope", "campaign_id", "month", "level",
/// "spent", "budget", "utilization"}`, money in dollars and utilization in percent, as exact
/// JSON numbers (budget and utilization null for an `anomaly`, which has no budget), plus
/// `"details"` when the alert has them (a `forecast` alert: see [`forecast_due`]; an `anomaly`:
/// src/anomaly/send.rs). It never carries `task` or `metadata`. A campaign id too long for PostgreSQL's
/// 8000-byte NOTIFY limit is cut (on a character boundary) and `"campaign_id_truncated": true`
/// is added; amounts too long for the limit (thousands of digits) are sent as null with
/// `"figures_in_alert_log": true`. `alert_id` finds the whole row in `alert_log`.
#[allow(clippy::too_many_arguments)] // one argument per field of the payload
pub fn payload(
    alert_id: i64,
    scope: &str,
    campaign_id: Option<&str>,
    month: &str,
    level: &str,
    spent: &AnyNumeric,
    budget: Option<&AnyNumeric>,
    utilization: Option<&AnyNumeric>,
    details: Option<&serde_json::Value>,
) -> String {
    let build = |campaign: Option<&str>, truncated: bool, no_figures: bool| {
        let figure = |n: Option<&AnyNumeric>| match n {
            Some(n) if !no_figures => json_number(n),
            _ => serde_json::Value::Null,
        };
        let mut obj = serde_json::json!({
            "alert_id": alert_id,
            "scope": scope,
            "campaign_id": campaign,
            "month": month,
            "level": level,
            "spent": figure(Some(spent)),
            "budget": figure(budget),
            "utilization": figure(utilization),
        });
        if let Some(d) = details.filter(|_| !no_figures) {
            obj["details"] = d.clone();
        }
        if truncated {
            obj["campaign_id_truncated"] = serde_json::Value::Bool(true);
        }
        if no_figures {
            obj["figures_in_alert_log"] = serde_json::Value::Bool(true);
        }
        obj.to_string()
    };
    let full = build(campaign_id, false, false);
    if full.len() <= MAX_PAYLOAD_BYTES {
        return full;
    }
    let id = campaign_id.unwrap_or("");
    // Escaping can grow a character to 6 bytes: cut generously, then shrink until it fits.
    let mut keep = id.len().min(MAX_PAYLOAD_BYTES / 8);
    loop {
        while !id.is_char_boundary(keep) {
            keep -= 1;
        }
        let candidate = build(campaign_id.map(|_| &id[..keep]), keep < id.len(), false);
        if candidate.len() <= MAX_PAYLOAD_BYTES {
            return candidate;
        }
        if keep == 0 {
            // Even the figures are too long (amounts of thousands of digits): send them as
            // null; alert_log holds them in full.
            return build(campaign_id.map(|_| ""), !id.is_empty(), true);
        }
        keep /= 2;
    }
}

/// An alert level that a scope has reached and that was not sent when last looked at.
pub struct Due {
    /// `month` or `campaign`.
    pub scope: String,
    /// `''` for the month scope, else the campaign id.
    pub scope_key: String,
    /// Billing month, `YYYY-MM`.
    pub month: String,
    /// `warning`, `critical` or `exceeded`.
    pub level: String,
    /// Spend in dollars when it was found due.
    pub spent: AnyNumeric,
    /// Budget in dollars.
    pub budget: AnyNumeric,
    /// What `alert_log.details` keeps and the payload carries (None for levels).
    pub details: Option<serde_json::Value>,
}

/// The level name of the month-end forecast alert, kept with the levels sent in `alert_state`.
pub const FORECAST: &str = "forecast";

/// The `forecast` alert of a scope whose month-end projection `p` passes its `budget` (dollars):
/// sent once per scope and month, like a level, with `details` `{"projected_spend",
/// "daily_mean", "window_days", "days_left", "projected_exhausted_on"}` (dollars, days,
/// `YYYY-MM-DD` or null); `spent` is the spend to date.
pub fn forecast_due(scope: &str, scope_key: &str, month: &str, p: &crate::forecast::Projection, budget: &AnyNumeric) -> Due {
    Due {
        scope: scope.to_string(),
        scope_key: scope_key.to_string(),
        month: month.to_string(),
        level: FORECAST.to_string(),
        spent: p.spent.clone(),
        budget: budget.clone(),
        details: Some(serde_json::json!({
            "projected_spend": json_number(&p.projected),
            "daily_mean": json_number(&p.daily_mean),
            "window_days": p.window_days,
            "days_left": p.days_left,
            "projected_exhausted_on": p.exhausted_on,
        })),
    }
}

/// Adds to `due` the levels in `reached` (what `spent` reaches against `budget`, from
/// [`reached_levels`]) that are not in `sent`.
#[allow(clippy::too_many_arguments)]
pub fn collect_due(
    due: &mut Vec<Due>,
    scope: &str,
    scope_key: &str,
    month: &str,
    reached: &[Level],
    spent: &AnyNumeric,
    budget: &AnyNumeric,
    sent: &[String],
) {
    for level in reached {
        if !sent.iter().any(|l| l == level.as_str()) {
            due.push(Due {
                scope: scope.to_string(),
                scope_key: scope_key.to_string(),
                month: month.to_string(),
                level: level.as_str().to_string(),
                spent: spent.clone(),
                budget: budget.clone(),
                details: None,
            });
        }
    }
}

/// Sends a due level exactly once: claims it in `alert_state` with a conditional upsert (a
/// concurrent claimant of the same level waits for this transaction and then finds it sent),
/// and when this transaction won the claim, writes `alert_log` and sends
/// `NOTIFY neon_budget_alerts` with [`payload`]. All in the caller's transaction: a rollback
/// sends nothing and un-claims the level.
pub fn claim_and_send(client: &mut SpiClient<'_>, d: &Due) {
    // Only one transaction at a time claims levels of a scope and month; the others skip rather
    // than wait (waiting on each other's claims in different orders could deadlock). A skipped
    // level is sent by the transaction holding the claim, or, if that one rolls back or was
    // claiming another level, by the next write or budget_check that finds it due.
    if !crate::pg::locks::try_xact(client, crate::pg::locks::Class::AlertClaim, &format!("{}:{}:{}", d.scope, d.scope_key, d.month)) {
        return;
    }
    let claimed: Option<bool> = spi_opt(
        client
            .update(
                "INSERT INTO neon_budget.alert_state AS s (scope, scope_key, month, levels_sent)
                 VALUES ($1, $2, $3, ARRAY[$4])
                 ON CONFLICT (scope, scope_key, month) DO UPDATE
                    SET levels_sent = s.levels_sent OPERATOR(pg_catalog.||) EXCLUDED.levels_sent
                  WHERE NOT ($4 OPERATOR(pg_catalog.=) ANY (s.levels_sent))
                 RETURNING true",
                None,
                &[d.scope.as_str().into(), d.scope_key.as_str().into(), d.month.as_str().into(), d.level.as_str().into()],
            )
            .and_then(|t| t.first().get_one()),
    );
    if claimed != Some(true) {
        return;
    }
    let utilization = money::round(d.spent.clone() / d.budget.clone() * AnyNumeric::from(100), 2);
    let campaign_id = (d.scope == "campaign").then_some(d.scope_key.as_str());
    let id: i64 = spi(client
        .update(
            "INSERT INTO neon_budget.alert_log (scope, campaign_id, month, level, spent, budget, utilization, details)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
            None,
            &[
                d.scope.as_str().into(),
                campaign_id.into(),
                d.month.as_str().into(),
                d.level.as_str().into(),
                d.spent.clone().into(),
                d.budget.clone().into(),
                utilization.clone().into(),
                d.details.clone().map(pgrx::JsonB).into(),
            ],
        )
        .and_then(|t| t.first().get_one()))
    .expect("INSERT ... RETURNING id returns the id");
    let body = payload(id, &d.scope, campaign_id, &d.month, &d.level, &d.spent, Some(&d.budget), Some(&utilization), d.details.as_ref());
    spi(client.update("SELECT pg_catalog.pg_notify($1, $2)", None, &[CHANNEL.into(), body.into()]));
}

/// Sends every level that `spent` reaches against `budget` (dollars) with `threshold` and
/// that was not sent yet for this scope and month (claimed first, so each is sent once). A
/// NULL budget never alerts.
pub fn send_reached(scope: &str, scope_key: &str, month: &str, spent: AnyNumeric, budget: Option<AnyNumeric>, threshold: AnyNumeric) {
    let Some(budget) = budget else { return };
    let mut due = Vec::new();
    let reached = reached_levels(&spent, &budget, &threshold);
    collect_due(&mut due, scope, scope_key, month, &reached, &spent, &budget, &[]);
    if due.is_empty() {
        return;
    }
    // claim_and_send skips the levels already sent.
    Spi::connect_mut(|client| {
        for d in &due {
            claim_and_send(client, d);
        }
    });
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::*;

    fn num(s: &str) -> AnyNumeric {
        AnyNumeric::try_from(s).unwrap()
    }

    fn levels(spent: &str, budget: &str, threshold: &str) -> Vec<&'static str> {
        reached_levels(&num(spent), &num(budget), &num(threshold)).into_iter().map(Level::as_str).collect()
    }

    #[pg_test]
    fn level_boundaries_are_exact() {
        assert_eq!(levels("799.99", "1000", "0.8"), Vec::<&str>::new());
        assert_eq!(levels("800", "1000", "0.8"), vec!["warning"]);
        assert_eq!(levels("949.999999", "1000", "0.8"), vec!["warning"]);
        assert_eq!(levels("950", "1000", "0.8"), vec!["warning", "critical"]);
        // Spend exactly equal to the budget is exceeded (SCENARIOS.md 9).
        assert_eq!(levels("1000", "1000", "0.8"), vec!["warning", "critical", "exceeded"]);
        // A threshold above 95% sorts after critical.
        assert_eq!(levels("960", "1000", "0.97"), vec!["critical"]);
        assert_eq!(levels("970", "1000", "0.97"), vec!["critical", "warning"]);
        assert_eq!(status(&num("970"), &num("1000"), &num("0.97")), "critical");
        assert_eq!(status(&num("800"), &num("1000"), &num("0.8")), "warning");
        // The next level to send: the lowest amount not sent.
        let sent = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(next_level_amount(&num("1000"), &num("0.8"), &sent(&[])), Some(num("800")));
        assert_eq!(next_level_amount(&num("1000"), &num("0.8"), &sent(&["warning"])), Some(num("950")));
        assert_eq!(next_level_amount(&num("1000"), &num("0.97"), &sent(&["critical"])), Some(num("970")));
        assert_eq!(next_level_amount(&num("1000"), &num("0.8"), &sent(&["warning", "critical", "exceeded"])), None);
        assert_eq!(status(&num("0.30"), &num("0.30"), &num("0.8")), "exceeded");
        assert_eq!(status(&num("0"), &num("10"), &num("0.8")), "ok");
    }

    #[pg_test]
    fn payload_is_json_and_bounded() {
        let p = payload(7, "campaign", Some("c-1"), "2024-01", "warning", &num("160.5"), Some(&num("200")), Some(&num("80.25")), None);
        let v: serde_json::Value = serde_json::from_str(&p).unwrap();
        assert_eq!(v["spent"].to_string(), "160.5");
        assert_eq!(v["campaign_id"], "c-1");
        assert_eq!(v["alert_id"], 7);

        let long = "\"ü".repeat(5000);
        let p = payload(8, "campaign", Some(&long), "2024-01", "exceeded", &num("1"), Some(&num("1")), Some(&num("100")), None);
        assert!(p.len() < 8000, "payload is {} bytes", p.len());
        let v: serde_json::Value = serde_json::from_str(&p).unwrap();
        assert_eq!(v["campaign_id_truncated"], true);
        assert!(long.starts_with(v["campaign_id"].as_str().unwrap()));
    }
}
