//! Sending a cost anomaly: once per scope and day, an `alert_log` row of level `anomaly`, an
//! `audit_log` entry `cost_anomaly`, and `NOTIFY neon_budget_alerts`, all in the caller's
//! transaction (a rollback sends nothing).
//!
//! An anomaly that cannot be sent now is **deferred** in backend memory and sent by a later
//! call of this backend ([`retry_deferred`], at its next write or `budget_check` that may
//! send): when another transaction holds the claim of the same scope and day (it may roll
//! back), and inside a transaction block that could become a prepared transaction
//! (`PREPARE TRANSACTION` refuses a transaction that sent a NOTIFY). An execution's anomaly
//! is sent only once the transaction that recorded the execution has committed
//! (`pg_xact_status`), and dropped when it rolled back. At most [`MAX_DEFERRED`] wait.
use crate::alerts;
use crate::error::{spi, spi_opt};
use crate::pg::locks::{self, Class};
use pgrx::prelude::*;
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
    /// Whether it describes a write of the current transaction (an execution): deferred, it is
    /// sent only if that transaction commits.
    pub of_this_transaction: bool,
}

/// Most anomalies a backend keeps deferred (the oldest is dropped beyond).
pub const MAX_DEFERRED: usize = 256;

/// An anomaly waiting to be sent, with the transaction (`xid8` text) it depends on.
struct Deferred {
    anomaly: Anomaly,
    xid: Option<String>,
}

thread_local! {
    static DEFERRED: std::cell::RefCell<Vec<Deferred>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Keeps `a` to be sent by a later call ([`retry_deferred`]).
pub fn defer(client: &mut SpiClient<'_>, a: &Anomaly) {
    let xid: Option<String> = if a.of_this_transaction {
        spi_opt(client.select("SELECT pg_catalog.pg_current_xact_id_if_assigned()::text", None, &[]).and_then(|t| t.first().get_one()))
    } else {
        None
    };
    DEFERRED.with(|d| {
        let mut d = d.borrow_mut();
        if d.len() >= MAX_DEFERRED {
            d.remove(0);
        }
        d.push(Deferred { anomaly: a.clone(), xid });
    });
}

/// Sends the deferred anomalies whose transaction committed, drops those whose transaction
/// rolled back, and keeps the others. Cheap when none wait. Call only where [`send`] may run.
pub fn retry_deferred() {
    if DEFERRED.with(|d| d.borrow().is_empty()) {
        return;
    }
    let waiting: Vec<Deferred> = DEFERRED.with(|d| std::mem::take(&mut *d.borrow_mut()));
    crate::pg::owner::as_owner(|| {
        Spi::connect_mut(|client| {
            for w in waiting {
                let status: Option<String> = match &w.xid {
                    None => Some("committed".to_string()),
                    Some(xid) => spi_opt(
                        client
                            .select("SELECT pg_catalog.pg_xact_status($1::text::pg_catalog.xid8)", None, &[xid.as_str().into()])
                            .and_then(|t| t.first().get_one()),
                    ),
                };
                match status.as_deref() {
                    Some("committed") => {
                        // Sent, or found sent, or deferred again (another claimant now).
                        let a = Anomaly { of_this_transaction: false, ..w.anomaly };
                        send(client, &a);
                    }
                    Some("in progress") => DEFERRED.with(|d| d.borrow_mut().push(w)),
                    // Rolled back (or too old to know): the execution was never recorded.
                    _ => {}
                }
            }
        })
    });
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

/// Sends `a` unless it was sent already: returns the new `alert_log.id`, or None. Runs in the
/// caller's SPI connection, as the extension's owner. Once per scope and day: the unique index
/// `alert_log_anomaly_once` on (scope, `details->>'scope_key'`, `details->>'day'`) of level
/// `anomaly` rows decides, after a transaction-level advisory lock tried once, so concurrent
/// senders never wait on each other: when another transaction holds it, `a` is deferred
/// ([`defer`]), as it is in a transaction block that could be prepared.
pub fn send(client: &mut SpiClient<'_>, a: &Anomaly) -> Option<i64> {
    if crate::error::in_preparable_block() {
        defer(client, a);
        return None;
    }
    if !locks::try_xact(client, Class::AlertClaim, &format!("anomaly:{}:{}:{}", a.scope, a.scope_key, a.day)) {
        defer(client, a);
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
