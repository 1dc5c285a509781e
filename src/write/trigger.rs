//! Aggregate maintenance: one statement-level AFTER trigger on `billing_log` for INSERT
//! (single-row, multi-row, COPY), UPDATE, DELETE and TRUNCATE.
//!
//! Each statement's rows (its transition tables) are grouped by (month, campaign, agent type)
//! and added (+1 for new rows, -1 for old rows) to the per-slot aggregate tables
//! `_month_spend`, `_campaign_spend` and `_agent_spend` in ONE statement, so a statement touches
//! each aggregate row once whatever its row count; the writer's slot is its backend id, so
//! concurrent writers never update the same row (see `write/slots.rs`). Everything happens in the
//! writing transaction: a ROLLBACK (or ROLLBACK TO SAVEPOINT) undoes the aggregates with the rows.
//! The same statement returns the alert levels that became due (see `alerts.rs`); it is
//! prepared once per backend (`pg/plans.rs`).
//!
//! A single-row INSERT (every `track_cost`) takes the fast path instead: the row is read from
//! the transition table in Rust, added to the backend's slot rows with the heap API
//! (`write/slots.rs`, SQL upserts as the fallback), and the exact totals are read for the alert
//! check by primary-key lookups (`pg/table_scan.rs`) unless `write/scope_cache.rs` knows the scope has
//! nothing left to send or the backend's escrow grant covers the write (`write/alert_grants.rs`).
//! The statement path spends outside grants, so it revokes them.
use super::{alert_grants, apply_one, scope_cache, slots, OneRow};
use crate::alerts;
use crate::error::spi;
use crate::pg::owner;
use crate::pg::plans::{self, oid};
use pgrx::prelude::*;
use pgrx::{AnyNumeric, PgTupleDesc};

/// The statement that applies a statement's rows to the aggregates: `{aggregates}` are the
/// CTEs `d`, `dz` and one upsert per aggregate that
/// `neon_budget_common::aggregates::bulk_apply_ctes` generates over the signed rows (`s` = +1
/// or -1, then every billing_log column). Returns the alert levels due: reached
/// by a month or budgeted campaign whose spend this statement raised, and not yet sent (month
/// scope first, then campaigns; levels in order). It is one statement so that the common case,
/// nothing due, costs one plan execution.
const APPLY_TEMPLATE: &str = "
WITH {aggregates},
new_months AS (
    INSERT INTO neon_budget.monthly_budget_setting (month, total_budget, alert_threshold)
    SELECT DISTINCT dz.billing_month, neon_budget._default_monthly_budget(), neon_budget._default_alert_threshold()
      FROM dz
     WHERE $2 AND NOT EXISTS (SELECT 1 FROM neon_budget.monthly_budget_setting s
                               WHERE s.month OPERATOR(pg_catalog.=) dz.billing_month)
    ON CONFLICT (month) DO NOTHING),
-- Alerts: spend after this statement = what this statement's snapshot sees (committed spend and
-- this transaction's earlier statements) + this statement's delta. Only scopes whose spend went up.
grown_months AS (
    SELECT dz.billing_month, sum(dz.cost) AS delta FROM dz GROUP BY dz.billing_month
    HAVING sum(dz.cost) OPERATOR(pg_catalog.>) 0),
grown_campaigns AS (
    SELECT dz.campaign_id, dz.billing_month, sum(dz.cost) AS delta FROM dz
     WHERE dz.campaign_id IS NOT NULL GROUP BY dz.campaign_id, dz.billing_month
    HAVING sum(dz.cost) OPERATOR(pg_catalog.>) 0),
scopes AS (
    SELECT 'month'::text AS scope, ''::text AS scope_key, g.billing_month AS month,
           COALESCE(s.total_budget, neon_budget._default_monthly_budget()) AS budget,
           COALESCE(s.alert_threshold, neon_budget._default_alert_threshold()) AS threshold,
           g.delta OPERATOR(pg_catalog.+) (SELECT COALESCE(sum(x.cost), 0) FROM neon_budget._month_spend x
                       WHERE x.billing_month OPERATOR(pg_catalog.=) g.billing_month) AS spent
      FROM grown_months g
      LEFT JOIN neon_budget.monthly_budget_setting s ON s.month OPERATOR(pg_catalog.=) g.billing_month
    UNION ALL
    SELECT 'campaign', g.campaign_id, g.billing_month, c.monthly_budget,
           COALESCE(s.alert_threshold, neon_budget._default_alert_threshold()),
           g.delta OPERATOR(pg_catalog.+) (SELECT COALESCE(sum(x.cost), 0) FROM neon_budget._campaign_spend x
                       WHERE x.campaign_id OPERATOR(pg_catalog.=) g.campaign_id
                         AND x.billing_month OPERATOR(pg_catalog.=) g.billing_month)
      FROM grown_campaigns g
      JOIN neon_budget.campaign c ON c.campaign_id OPERATOR(pg_catalog.=) g.campaign_id
      LEFT JOIN neon_budget.monthly_budget_setting s ON s.month OPERATOR(pg_catalog.=) g.billing_month
     WHERE c.monthly_budget IS NOT NULL)
SELECT sc.scope, sc.scope_key, sc.month, l.level, sc.spent, sc.budget
  FROM scopes sc
 CROSS JOIN LATERAL pg_catalog.unnest(neon_budget._reached_levels(sc.spent, sc.budget, sc.threshold))
       WITH ORDINALITY AS l(level, ord)
  LEFT JOIN neon_budget.alert_state a
         ON a.scope OPERATOR(pg_catalog.=) sc.scope AND a.scope_key OPERATOR(pg_catalog.=) sc.scope_key
        AND a.month OPERATOR(pg_catalog.=) sc.month
 WHERE a.levels_sent IS NULL OR NOT (l.level OPERATOR(pg_catalog.=) ANY (a.levels_sent))
 ORDER BY sc.scope DESC, sc.scope_key, sc.month, l.ord";

const INSERT_SRC: &str = "SELECT 1 AS s, n.* FROM new_rows n";
const DELETE_SRC: &str = "SELECT -1 AS s, o.* FROM old_rows o";
const UPDATE_SRC: &str = "SELECT 1 AS s, n.* FROM new_rows n UNION ALL SELECT -1 AS s, o.* FROM old_rows o";

thread_local! {
    /// [`APPLY_TEMPLATE`] for INSERT, DELETE and UPDATE, with the aggregates' CTEs generated
    /// from their one declaration (`neon_budget_common::aggregates`).
    static APPLY_SQL: [String; 3] = [INSERT_SRC, DELETE_SRC, UPDATE_SRC]
        .map(|src| APPLY_TEMPLATE.replace("{aggregates}", &neon_budget_common::aggregates::bulk_apply_ctes(src)));
}

/// Reads the only row of a one-row transition table, without SQL.
///
/// # Safety
/// `store` must be the statement's NEW transition table of `rel` (a tuplestore of its rows).
unsafe fn read_single_row(rel: pg_sys::Relation, store: *mut pg_sys::Tuplestorestate) -> Option<OneRow> {
    let tupdesc = (*rel).rd_att;
    let slot = pg_sys::MakeSingleTupleTableSlot(tupdesc, &pg_sys::TTSOpsMinimalTuple);
    pg_sys::tuplestore_rescan(store);
    let found = pg_sys::tuplestore_gettupleslot(store, true, false, slot);
    let row = if found {
        let desc = PgTupleDesc::from_pg_unchecked(tupdesc);
        let attnum = |name: &'static str| crate::pg::backend_cache::attnum(&desc, name);
        let get = |name: &'static str| -> (pg_sys::Datum, bool) {
            let mut isnull = false;
            let d = pg_sys::slot_getattr(slot, attnum(name), &mut isnull);
            (d, isnull)
        };
        macro_rules! val {
            ($t:ty, $name:expr) => {{
                let (d, n) = get($name);
                <$t as FromDatum>::from_datum(d, n)
            }};
        }
        let created_at = val!(TimestampWithTimeZone, "created_at");
        Some(OneRow {
            billing_month: val!(String, "billing_month").unwrap_or_default(),
            billing_day: created_at.map(|t| crate::month::day_of(t.into())).unwrap_or_default(),
            campaign_id: val!(String, "campaign_id"),
            agent_type: val!(String, "agent_type").unwrap_or_default(),
            cost: val!(AnyNumeric, "cost").unwrap_or_default(),
            tokens: val!(i64, "tokens").unwrap_or(0),
            conversion_achieved: val!(bool, "conversion_achieved"),
            quality_score: val!(f64, "quality_score"),
            retry_count: val!(i32, "retry_count"),
            execution_time_ms: val!(i64, "execution_time_ms"),
            id: val!(i64, "id"),
            execution_id: val!(String, "execution_id"),
        })
    } else {
        None
    };
    pg_sys::ExecDropSingleTupleTableSlot(slot);
    pg_sys::tuplestore_rescan(store);
    row
}

/// The trigger function `neon_budget._billing_log_changed()` (statement level, AFTER INSERT /
/// UPDATE / DELETE with transition tables `new_rows` / `old_rows`, and AFTER TRUNCATE).
#[pg_trigger]
fn _billing_log_changed<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, pgrx::PgTriggerError> {
    crate::pg::schema_version::require_current();
    let op = trigger.op()?;
    // purge_before keeps the totals: the purged rows' sums already moved to purged_spend.
    if matches!(op, PgTriggerOperation::Delete) && crate::restore::purging() {
        return Ok(None);
    }
    let which = match op {
        PgTriggerOperation::Insert => 0,
        PgTriggerOperation::Delete => 1,
        PgTriggerOperation::Update => 2,
        PgTriggerOperation::Truncate => {
            scope_cache::invalidate_all();
            owner::as_owner(|| {
                spi(Spi::run(
                    "DELETE FROM neon_budget._month_spend; DELETE FROM neon_budget._campaign_spend;
                     DELETE FROM neon_budget._agent_spend; DELETE FROM neon_budget._day_spend;
                     DELETE FROM neon_budget._campaign_agent_day_spend",
                ))
            });
            return Ok(None);
        }
    };
    if which == 0 {
        // An insert that waited for a retention of its execution_id's earlier record.
        crate::execution_ids::recheck_inserted(trigger, super::log_shape::execution_id_index);
        let td = trigger.trigger_data();
        let store = td.tg_newtable;
        if !store.is_null() {
            crate::write::path_stats::count_sql_insert(unsafe { pg_sys::tuplestore_tuple_count(store) });
        }
        if !store.is_null() && unsafe { pg_sys::tuplestore_tuple_count(store) } == 1 {
            if let Some(row) = unsafe { read_single_row(td.tg_relation, store) } {
                apply_one(&row);
                return Ok(None);
            }
        }
    }
    // This statement reads the totals of every scope whose spend it raises and sends the
    // levels due; other backends' caches (which only say "nothing left to send") stay valid.
    // This backend re-reads at its next write, and re-checks the TIDs of the slot rows the
    // statement rewrites.
    scope_cache::clear();
    slots::forget_tids();
    // Spend raised outside any grant (see write/alert_grants.rs).
    if which != 1 {
        alert_grants::revoke();
    }
    let dearest: Vec<Dearest> = owner::as_owner(|| {
        Spi::connect_mut(|client| {
            // Makes the transition tables visible to the statements below under their names.
            crate::pg::spi::register_trigger_data(trigger);
            let apply = APPLY_SQL.with(|s| plans::plan(client, &s[which], &[oid::INT4, oid::BOOL]));
            let restoring = crate::restore::restoring();
            let due: Vec<alerts::Due> =
                spi(client.update(&*apply, None, &[slots::current().into(), (!restoring).into()]).and_then(|table| {
                    table
                        .map(|row| {
                            Ok(alerts::Due {
                                scope: row.get::<String>(1)?.unwrap_or_default(),
                                scope_key: row.get::<String>(2)?.unwrap_or_default(),
                                month: row.get::<String>(3)?.unwrap_or_default(),
                                level: row.get::<String>(4)?.unwrap_or_default(),
                                spent: row.get(5)?.unwrap_or_default(),
                                budget: row.get(6)?.unwrap_or_default(),
                                details: None,
                            })
                        })
                        .collect::<Result<Vec<_>, pgrx::spi::Error>>()
                }));
            if !restoring {
                for d in &due {
                    alerts::claim_and_send(client, d);
                }
            }
            // The dearest new execution of each agent type and day, for the anomaly check below.
            if which == 0 && !restoring && crate::gucs::anomaly_detection() {
                let min = crate::gucs::anomaly_settings().execution_min_dollars;
                let plan = plans::plan(client, DEAREST_SQL, &[oid::NUMERIC]);
                spi(client.select(&*plan, None, &[min.into()]).and_then(|table| {
                    table
                        .map(|row| {
                            Ok(Dearest {
                                agent_type: row.get(1)?.unwrap_or_default(),
                                billing_month: row.get(2)?.unwrap_or_default(),
                                billing_day: row.get(3)?.unwrap_or_default(),
                                cost: row.get(4)?.unwrap_or_default(),
                                campaign_id: row.get(5)?,
                                id: row.get(6)?,
                                execution_id: row.get(7)?,
                            })
                        })
                        .collect::<Result<Vec<_>, pgrx::spi::Error>>()
                }))
            } else {
                Vec::new()
            }
        })
    });
    if !crate::restore::restoring() {
        for d in &dearest {
            crate::anomaly::execution::check(&crate::anomaly::execution::Execution {
                agent_type: &d.agent_type,
                billing_month: &d.billing_month,
                billing_day: &d.billing_day,
                cost: &d.cost,
                campaign_id: d.campaign_id.as_deref(),
                id: d.id,
                execution_id: d.execution_id.as_deref(),
            });
        }
        crate::anomaly::days::scan_if_new_day();
    }
    Ok(None)
}

/// The new rows' dearest execution per agent type and day (in `neon_budget.timezone`) costing
/// at least `$1` dollars: what a multi-row INSERT or COPY gives the execution anomaly check.
const DEAREST_SQL: &str = "
SELECT DISTINCT ON (n.agent_type, d.day) n.agent_type, n.billing_month, d.day, n.cost, n.campaign_id, n.id, n.execution_id
  FROM new_rows n
 CROSS JOIN LATERAL (SELECT pg_catalog.to_char(n.created_at AT TIME ZONE neon_budget._timezone(), 'YYYY-MM-DD') AS day) d
 WHERE n.cost OPERATOR(pg_catalog.>=) $1
 ORDER BY n.agent_type, d.day, n.cost DESC";

/// A row of [`DEAREST_SQL`].
struct Dearest {
    agent_type: String,
    billing_month: String,
    billing_day: String,
    cost: AnyNumeric,
    campaign_id: Option<String>,
    id: Option<i64>,
    execution_id: Option<String>,
}
