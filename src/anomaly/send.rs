//! Sending a cost anomaly: once per scope and day, an `alert_log` row of level `anomaly`, an
//! `audit_log` entry `cost_anomaly`, and `NOTIFY neon_budget_alerts`, all in the caller's
//! transaction (a rollback sends nothing).
use crate::alerts;
use crate::error::{spi, spi_opt};
use crate::pg::locks::{self, Class};
use pgrx::spi::SpiClient;
use pgrx::AnyNumeric;

/// One cost anomaly, ready to send.
#[derive(Debug, Clone)]
pub struct Anomaly {
    /// `campaign` or `agent_type` (a day's spend), or `execution` (an execution of an agent
    /// type): `alert_log.scope`.
    pub scope: &'static str,
    /// The campaign id or agent type: `details.scope_key`.
    pub scope_key: String,
    /// The day, `YYYY-MM-DD` in `neon_budget.timezone`: `details.day`.
    pub day: String,
    /// Dollars: the day's spend, or the execution's cost (`alert_log.spent`).
    pub spent: AnyNumeric,
    /// The figures that triggered it (`alert_log.details`); `kind`, `scope_key` and `day` are
    /// added by [`send`].
    pub details: serde_json::Value,
}

impl Anomaly {
    /// `details` with `kind` (`day` or `execution`), `scope_key` and `day`.
    fn full_details(&self) -> serde_json::Value {
        let mut d = self.details.clone();
        d["kind"] = serde_json::Value::from(if self.scope == "execution" { "execution" } else { "day" });
        d["scope_key"] = serde_json::Value::from(self.scope_key.as_str());
        d["day"] = serde_json::Value::from(self.day.as_str());
        d
    }
}

/// Sends `a` unless it was sent already (or another transaction is sending it now): returns
/// the new `alert_log.id`, or None. Runs in the caller's SPI connection, as the extension's
/// owner. Once per scope and day: the unique index `alert_log_anomaly_once` on (scope,
/// `details->>'scope_key'`, `details->>'day'`) of level `anomaly` rows decides, after a
/// transaction-level advisory lock tried once (so concurrent senders never wait on each other).
pub fn send(client: &mut SpiClient<'_>, a: &Anomaly) -> Option<i64> {
    if !locks::try_xact(client, Class::AlertClaim, &format!("anomaly:{}:{}:{}", a.scope, a.scope_key, a.day)) {
        return None;
    }
    let details = a.full_details();
    let month = &a.day[..a.day.len().saturating_sub(3)];
    let campaign_id = (a.scope == "campaign").then_some(a.scope_key.as_str());
    let id: Option<i64> = spi_opt(
        client
            .update(
                "INSERT INTO neon_budget.alert_log (scope, campaign_id, month, level, spent, budget, utilization, details)
                 VALUES ($1, $2, $3, 'anomaly', $4, NULL, NULL, $5)
                 ON CONFLICT (scope, (details OPERATOR(pg_catalog.->>) 'scope_key'), (details OPERATOR(pg_catalog.->>) 'day'))
                    WHERE level OPERATOR(pg_catalog.=) 'anomaly' DO NOTHING
                 RETURNING id",
                None,
                &[a.scope.into(), campaign_id.into(), month.into(), a.spent.clone().into(), pgrx::JsonB(details.clone()).into()],
            )
            .and_then(|t| if t.is_empty() { Ok(None) } else { t.first().get_one() }),
    );
    let id = id?;
    let mut audited = details.clone();
    audited["alert_id"] = serde_json::Value::from(id);
    spi(client.update(
        "INSERT INTO neon_budget.audit_log (action, target, old_value, new_value) VALUES ('cost_anomaly', $1, NULL, $2)",
        None,
        &[format!("{} {} {}", a.scope, a.scope_key, a.day).into(), pgrx::JsonB(audited).into()],
    ));
    let body = alerts::payload(id, a.scope, campaign_id, month, "anomaly", &a.spent, None, None, Some(&details));
    spi(client.update("SELECT pg_catalog.pg_notify($1, $2)", None, &[alerts::CHANNEL.into(), body.into()]));
    Some(id)
}

/// The id of the `anomaly` alert already sent for `scope`, `scope_key` and `day`, if any.
pub fn sent_id(client: &mut SpiClient<'_>, scope: &str, scope_key: &str, day: &str) -> Option<i64> {
    spi_opt(
        client
            .select(
                "SELECT id FROM neon_budget.alert_log
                  WHERE level OPERATOR(pg_catalog.=) 'anomaly' AND scope OPERATOR(pg_catalog.=) $1
                    AND details OPERATOR(pg_catalog.->>) 'scope_key' OPERATOR(pg_catalog.=) $2
                    AND details OPERATOR(pg_catalog.->>) 'day' OPERATOR(pg_catalog.=) $3",
                None,
                &[scope.into(), scope_key.into(), day.into()],
            )
            .and_then(|t| if t.is_empty() { Ok(None) } else { t.first().get_one() }),
    )
}

/// An exact JSON number for `n` (dollars or a score): its decimal text.
pub fn number(n: &AnyNumeric) -> serde_json::Value {
    let text = n.to_string();
    text.parse().map(serde_json::Value::Number).unwrap_or(serde_json::Value::String(text))
}
