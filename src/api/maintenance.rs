//! Verification, repair and data retention (GDPR): `budget_verify`, `budget_rebuild`,
//! `anonymize_before` and `purge_before`. Argument checks here; the work in
//! [`crate::maintenance`].
use crate::maintenance;
use crate::validation;
use pgrx::prelude::*;

/// `budget_verify(month text DEFAULT NULL)` returns every maintained aggregate row that differs
/// from what `billing_log` (plus `purged_spend`) says it should be: `aggregate`
/// (`monthly_budget`, `campaign_cost`, `agent_cost`, `daily_cost`), `key` (campaign id, agent
/// type or day `YYYY-MM-DD`, `''` for the month), `month` (`YYYY-MM`), `expected` and `stored` (JSON of the sums: cost in
/// dollars, tokens, executions, ...). Empty when all agree. Reads the whole log of the month:
/// an admin check, not a hot path.
///
/// Errors: 22007 for a malformed month.
#[pg_extern(volatile, parallel_unsafe)]
fn budget_verify(
    month: default!(Option<&str>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(aggregate, String),
        name!(key, String),
        name!(month, String),
        name!(expected, Option<pgrx::JsonB>),
        name!(stored, Option<pgrx::JsonB>),
    ),
> {
    crate::pg::schema_version::require_current();
    let month = month.map(|m| validation::require_month("month", m));
    TableIterator::new(maintenance::verify(month.as_deref()))
}

/// `budget_rebuild(month text) -> bigint`: makes a month's maintained aggregates equal to what
/// `billing_log` (plus `purged_spend`, `purged_day_spend` and `purged_campaign_agent_day_spend`) says, and returns how many
/// aggregate rows it corrected (0 when `budget_verify(month)` is empty). Writes `audit_log` with
/// the differences it found.
///
/// Writers never wait for it. It reads the month's differences in one snapshot, in which every
/// committed write's log row and aggregate update are both present or both absent (they commit
/// together), and adds each difference to the key's slot-0 row, which no writer updates. Two
/// rebuilds of the same month take turns (an advisory lock), and each reads after the other's
/// commit. It reads only the month's rows.
///
/// Errors: 22007 for a malformed month; 22004 for NULL; 40001 in REPEATABLE READ or
/// SERIALIZABLE when another rebuild of the month committed after this transaction's snapshot.
#[pg_extern(volatile, parallel_unsafe)]
fn budget_rebuild(month: Option<&str>) -> i64 {
    crate::error::require_writable("budget_rebuild()");
    crate::pg::schema_version::require_current();
    let month = validation::require_month("month", validation::required("month", month));
    maintenance::rebuild(&month)
}

/// `anonymize_before(cutoff timestamptz) -> bigint`: clears `task` and `metadata` of every
/// `billing_log` row created before `cutoff` and replaces its `execution_id` with the id's keyed
/// digest (`nb-anon:...`, `execution_ids.rs`: a retry of the execution still records once), and
/// returns how many rows it changed. Totals do not change. Writes `audit_log`.
///
/// Errors: 22004 for NULL.
#[pg_extern(volatile, parallel_unsafe)]
fn anonymize_before(cutoff: Option<TimestampWithTimeZone>) -> i64 {
    crate::error::require_writable("anonymize_before()");
    crate::pg::schema_version::require_current();
    maintenance::anonymize_before(validation::required("cutoff", cutoff))
}

/// `purge_before(cutoff timestamptz) -> bigint`: deletes every `billing_log` row created before
/// `cutoff` and returns how many. Monthly, campaign, agent and daily totals do not change: the
/// purged rows' sums move to `purged_spend`, `purged_day_spend` and
/// `purged_campaign_agent_day_spend`, and their execution ids'
/// keyed digests to `purged_execution_id` (a retry still records once). Writes `audit_log`.
///
/// Writers never wait for it: it takes no table lock beyond the ROW EXCLUSIVE of any DELETE,
/// and works in batches of 1024 pages (one statement each, a TID range scan), each moving
/// exactly the rows it deleted, then one statement over the whole table for rows that an
/// UPDATE moved back to a page already passed (normally a scan that deletes nothing). Only a
/// write to a row being purged (an UPDATE of it, or a retry of its execution_id, which then
/// gets 40001) waits, until the purge commits. `purge_before` and `anonymize_before` calls
/// take turns (an advisory lock). Every row created before `cutoff` that existed when it
/// started is gone; rows written while it runs may stay.
///
/// Errors: 22004 for NULL.
#[pg_extern(volatile, parallel_unsafe)]
fn purge_before(cutoff: Option<TimestampWithTimeZone>) -> i64 {
    crate::error::require_writable("purge_before()");
    crate::pg::schema_version::require_current();
    maintenance::purge_before(validation::required("cutoff", cutoff))
}
