//! Alert levels and NOTIFY payloads.
//!
//! Levels (source: the seed's "Alert Thresholds"): `warning` at the month's alert threshold
//! (default 80%), `critical` at 95%, `exceeded` at 100% of the budget. The triggers in
//! `sql/aggregates.sql` ask [`reached_levels`] which levels a spend has reached and send each one
//! not yet sent, once per scope and month, on the channel `neon_budget_alerts`.
use pgrx::prelude::*;
use pgrx::AnyNumeric;


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

fn num(s: &str) -> AnyNumeric {
    AnyNumeric::try_from(s).expect("constant numeric")
}

/// The levels that `spent` dollars reach against `budget` dollars with the warning level at
/// `threshold` (a fraction in (0,1]), in the order of the amounts they stand for. Comparisons
/// are products, not quotients, so they are exact: spent ≥ threshold × budget, and so on.
pub fn reached_levels(spent: &AnyNumeric, budget: &AnyNumeric, threshold: &AnyNumeric) -> Vec<Level> {
    let mut levels = vec![
        (threshold.clone(), Level::Warning),
        (num("0.95"), Level::Critical),
        (num("1"), Level::Exceeded),
    ];
    levels.sort_by(|a, b| a.0.cmp(&b.0));
    levels
        .into_iter()
        .filter(|(fraction, _)| *spent >= fraction.clone() * budget.clone())
        .map(|(_, level)| level)
        .collect()
}

/// The status of a spend: the highest level reached, or `ok`.
pub fn status(spent: &AnyNumeric, budget: &AnyNumeric, threshold: &AnyNumeric) -> &'static str {
    let reached = reached_levels(spent, budget, threshold);
    if reached.contains(&Level::Exceeded) {
        "exceeded"
    } else if reached.contains(&Level::Critical) {
        "critical"
    } else if reached.contains(&Level::Warning) {
        "warning"
    } else {
        "ok"
    }
}

/// `neon_budget._reached_levels(spent numeric, budget numeric, threshold numeric) -> text[]`:
/// the alert levels reached, lowest amount first (see [`reached_levels`]).
#[pg_extern(immutable, parallel_safe, strict, name = "_reached_levels")]
fn reached_levels_sql(spent: AnyNumeric, budget: AnyNumeric, threshold: AnyNumeric) -> Vec<String> {
    reached_levels(&spent, &budget, &threshold)
        .into_iter()
        .map(|l| l.as_str().to_string())
        .collect()
}

/// `neon_budget._status(spent numeric, budget numeric, threshold numeric) -> text`:
/// `ok`, `warning`, `critical` or `exceeded`.
#[pg_extern(immutable, parallel_safe, strict, name = "_status")]
fn status_sql(spent: AnyNumeric, budget: AnyNumeric, threshold: AnyNumeric) -> &'static str {
    status(&spent, &budget, &threshold)
}

fn json_number(n: &AnyNumeric) -> serde_json::Value {
    // arbitrary_precision keeps the exact decimal text of the numeric.
    serde_json::Value::Number(n.to_string().parse().expect("numeric text is a JSON number"))
}

/// The JSON payload of an alert: `{"alert_id", "scope", "campaign_id", "month", "level",
/// "spent", "budget", "utilization"}`, money in dollars and utilization in percent, as exact
/// JSON numbers. It never carries `task` or `metadata`. A campaign id too long for PostgreSQL's
/// 8000-byte NOTIFY limit is cut (on a character boundary) and `"campaign_id_truncated": true`
/// is added; `alert_id` finds the whole row in `alert_log`.
pub fn payload(
    alert_id: i64,
    scope: &str,
    campaign_id: Option<&str>,
    month: &str,
    level: &str,
    spent: &AnyNumeric,
    budget: &AnyNumeric,
    utilization: &AnyNumeric,
) -> String {
    let build = |campaign: Option<&str>, truncated: bool| {
        let mut obj = serde_json::json!({
            "alert_id": alert_id,
            "scope": scope,
            "campaign_id": campaign,
            "month": month,
            "level": level,
            "spent": json_number(spent),
            "budget": json_number(budget),
            "utilization": json_number(utilization),
        });
        if truncated {
            obj["campaign_id_truncated"] = serde_json::Value::Bool(true);
        }
        obj.to_string()
    };
    let full = build(campaign_id, false);
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
        let candidate = build(Some(&id[..keep]), true);
        if candidate.len() <= MAX_PAYLOAD_BYTES || keep == 0 {
            return candidate;
        }
        keep /= 2;
    }
}

/// `neon_budget._alert_payload(...) -> text`: see [`payload`].
#[pg_extern(immutable, parallel_safe, name = "_alert_payload")]
#[allow(clippy::too_many_arguments)]
fn payload_sql(
    alert_id: i64,
    scope: &str,
    campaign_id: Option<&str>,
    month: &str,
    level: &str,
    spent: AnyNumeric,
    budget: AnyNumeric,
    utilization: AnyNumeric,
) -> String {
    payload(alert_id, scope, campaign_id, month, level, &spent, &budget, &utilization)
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::*;

    fn levels(spent: &str, budget: &str, threshold: &str) -> Vec<&'static str> {
        reached_levels(&num(spent), &num(budget), &num(threshold))
            .into_iter()
            .map(Level::as_str)
            .collect()
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
        assert_eq!(status(&num("0.30"), &num("0.30"), &num("0.8")), "exceeded");
        assert_eq!(status(&num("0"), &num("10"), &num("0.8")), "ok");
    }

    #[pg_test]
    fn payload_is_json_and_bounded() {
        let p = payload(7, "campaign", Some("c-1"), "2024-01", "warning", &num("160.5"), &num("200"), &num("80.25"));
        let v: serde_json::Value = serde_json::from_str(&p).unwrap();
        assert_eq!(v["spent"].to_string(), "160.5");
        assert_eq!(v["campaign_id"], "c-1");
        assert_eq!(v["alert_id"], 7);

        let long = "\"ü".repeat(5000);
        let p = payload(8, "campaign", Some(&long), "2024-01", "exceeded", &num("1"), &num("1"), &num("100"));
        assert!(p.len() < 8000, "payload is {} bytes", p.len());
        let v: serde_json::Value = serde_json::from_str(&p).unwrap();
        assert_eq!(v["campaign_id_truncated"], true);
        assert!(long.starts_with(v["campaign_id"].as_str().unwrap()));
    }
}
