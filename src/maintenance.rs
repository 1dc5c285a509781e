//! Verification, repair and data retention (GDPR): `budget_verify`, `budget_rebuild`,
//! `anonymize_before` and `purge_before`.
//!
//! The maintained aggregates always equal a fresh `GROUP BY` over `billing_log` plus what
//! `purge_before` removed from the log (kept per month, campaign and agent type in
//! `purged_spend`), so that purging detail rows never changes a total that reports show.
use crate::error::{spi, spi_opt};
use crate::restore::PurgeGuard;
use pgrx::prelude::*;

thread_local! {
    /// `budget_verify`'s statement and `budget_rebuild`'s correction, generated once per
    /// backend from the declaration of the aggregates (`neon_budget_common::aggregates`).
    static COMPARE: String = neon_budget_common::aggregates::compare_sql();
    static CORRECTION: String = neon_budget_common::aggregates::correction_sql();
    /// One batch of `purge_before` (see [`purge_batch_sql`]).
    static PURGE_BATCH: String = purge_batch_sql();
}

/// The rows of `budget_verify(month)`: every aggregate row that
/// differs from the log, as (aggregate, key, month, expected, stored).
pub fn verify(month: Option<&str>) -> Vec<(String, String, String, Option<pgrx::JsonB>, Option<pgrx::JsonB>)> {
    spi(Spi::connect(|client| {
        client
            .select(COMPARE.with(|sql| sql.clone()).as_str(), None, &[month.into()])?
            .map(|r| {
                Ok((
                    r.get::<String>(1)?.unwrap_or_default(),
                    r.get::<String>(2)?.unwrap_or_default(),
                    r.get::<String>(3)?.unwrap_or_default(),
                    r.get::<pgrx::JsonB>(4)?,
                    r.get::<pgrx::JsonB>(5)?,
                ))
            })
            .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    }))
}

/// `budget_rebuild(month)` for a valid `YYYY-MM`: the number of
/// aggregate rows corrected.
pub fn rebuild(month: &str) -> i64 {
    // Two rebuilds of one month take turns.
    crate::pg::locks::wait_xact(crate::pg::locks::Class::Rebuild, &format!("neon_budget.rebuild:{month}"));
    let differences: Option<pgrx::JsonB> =
        spi_opt(Spi::get_one_with_args("SELECT pg_catalog.jsonb_agg(v) FROM neon_budget.budget_verify($1) v", &[month.into()]));
    let written: i64 = match &differences {
        None => 0,
        Some(d) => {
            // The month's totals change: every backend re-reads them (and its alert grants).
            crate::write::scope_cache::invalidate_all();
            spi(Spi::get_one_with_args::<i64>(&CORRECTION.with(|sql| sql.clone()), &[pgrx::JsonB(d.0.clone()).into()])).unwrap_or(0)
        }
    };
    spi(Spi::run_with_args(
        "INSERT INTO neon_budget.audit_log (action, target, old_value, new_value)
         VALUES ('budget_rebuild', $1, pg_catalog.jsonb_build_object('differences', $2),
                 pg_catalog.jsonb_build_object('rows_written', $3))",
        &[month.into(), differences.into(), written.into()],
    ));
    written
}

/// `anonymize_before(cutoff)`: the number of rows anonymized.
pub fn anonymize_before(cutoff: TimestampWithTimeZone) -> i64 {
    crate::pg::locks::wait_xact(crate::pg::locks::Class::Retention, "neon_budget.retention");
    let n: i64 = spi(Spi::get_one_with_args::<i64>(
        "WITH u AS (UPDATE neon_budget.billing_log
                       SET task = NULL, metadata = NULL, execution_id = neon_budget._execution_digest(execution_id)
                     WHERE created_at < $1
                       AND (task IS NOT NULL OR metadata IS NOT NULL
                            OR (execution_id IS NOT NULL AND NOT pg_catalog.starts_with(execution_id, 'nb-anon:')))
                     RETURNING 1)
         SELECT count(*) FROM u",
        &[cutoff.into()],
    ))
    .unwrap_or(0);
    audit_retention("anonymize_before", cutoff, n);
    n
}

/// Pages of `billing_log` that one `purge_before` statement visits (8 MB: about 40 000 rows).
const PURGE_BATCH_PAGES: i64 = 1024;

/// One batch of `purge_before`: deletes the rows created before `$1` on pages `$2` to `$3 - 1`
/// and moves exactly the deleted rows' sums to the purged tables (`neon_budget_common::aggregates::PURGED`) and their
/// ids' digests to `purged_execution_id`, in one statement; returns how many it deleted.
fn purge_batch_sql() -> String {
    format!(
        "WITH d AS (DELETE FROM neon_budget.billing_log
            WHERE ctid >= ('(' OPERATOR(pg_catalog.||) $2 OPERATOR(pg_catalog.||) ',0)')::pg_catalog.tid
              AND ctid < ('(' OPERATOR(pg_catalog.||) $3 OPERATOR(pg_catalog.||) ',0)')::pg_catalog.tid
              AND created_at < $1
        RETURNING *),
{purged},
i AS (INSERT INTO neon_budget.purged_execution_id (digest, billing_month)
      SELECT neon_budget._execution_digest(execution_id), billing_month FROM d WHERE execution_id IS NOT NULL
      ON CONFLICT (digest) DO NOTHING)
SELECT count(*) FROM d",
        purged = neon_budget_common::aggregates::purge_ctes()
    )
}

/// `purge_before(cutoff)`: the number of rows purged.
pub fn purge_before(cutoff: TimestampWithTimeZone) -> i64 {
    // Retention calls take turns (two of them in one transaction each could otherwise lock
    // the same old rows in opposite orders).
    crate::pg::locks::wait_xact(crate::pg::locks::Class::Retention, "neon_budget.retention");
    let pages: i64 = spi(Spi::get_one::<i64>(
        "SELECT pg_catalog.pg_relation_size('neon_budget.billing_log'::pg_catalog.regclass)
                OPERATOR(pg_catalog./) pg_catalog.current_setting('block_size')::bigint",
    ))
    .unwrap_or(0);
    let _guard = PurgeGuard::new();
    let sql = PURGE_BATCH.with(Clone::clone);
    let mut n = 0i64;
    let mut first = 0i64;
    while first < pages {
        let last = first + PURGE_BATCH_PAGES;
        n += spi(Spi::get_one_with_args::<i64>(sql.as_str(), &[cutoff.into(), first.into(), last.into()])).unwrap_or(0);
        first = last;
    }
    // A row that an UPDATE committed between two batches moved to a page already passed would
    // stay: one statement over the whole table, which follows such updates, takes the rest.
    n += spi(Spi::get_one_with_args::<i64>(sql.as_str(), &[cutoff.into(), 0i64.into(), (u32::MAX as i64).into()])).unwrap_or(0);
    audit_retention("purge_before", cutoff, n);
    n
}

fn audit_retention(action: &str, cutoff: TimestampWithTimeZone, rows: i64) {
    spi(Spi::run_with_args(
        "INSERT INTO neon_budget.audit_log (action, target, old_value, new_value)
         VALUES ($1, $2::text, NULL, pg_catalog.jsonb_build_object('rows', $3))",
        &[action.into(), cutoff.into(), rows.into()],
    ));
}
