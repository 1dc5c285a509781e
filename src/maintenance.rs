//! Verification, repair and data retention (GDPR): `budget_verify`, `budget_rebuild`,
//! `anonymize_before` and `purge_before`.
//!
//! The maintained aggregates always equal a fresh `GROUP BY` over `billing_log` plus what
//! `purge_before` removed from the log (kept per month, campaign and agent type in
//! `purged_spend`), so that purging detail rows never changes a total that reports show.
use crate::error::{spi, spi_opt};
use crate::restore::PurgeGuard;
use pgrx::prelude::*;

/// The expected aggregates (log + purged) and the stored ones, as JSON per key, for one month
/// (`$1`, NULL = all months).
const COMPARE: &str = "
WITH exp_month AS (
    SELECT m AS month, sum(c) AS cost, sum(t) AS tokens, sum(n) AS executions FROM (
        SELECT billing_month AS m, sum(cost) c, sum(tokens)::numeric t, count(*)::numeric n FROM neon_budget.billing_log WHERE ($1 IS NULL OR billing_month = $1) GROUP BY 1
        UNION ALL SELECT billing_month, sum(cost), sum(tokens), sum(executions) FROM neon_budget.purged_spend WHERE ($1 IS NULL OR billing_month = $1) GROUP BY 1) x
    GROUP BY m),
got_month AS (SELECT billing_month AS month, sum(cost) AS cost, sum(tokens) AS tokens, sum(executions)::numeric AS executions
                FROM neon_budget._month_spend WHERE ($1 IS NULL OR billing_month = $1) GROUP BY 1),
exp_campaign AS (
    SELECT k, m AS month, sum(c) AS cost, sum(t) AS tokens, sum(n) AS executions FROM (
        SELECT campaign_id AS k, billing_month AS m, sum(cost) c, sum(tokens)::numeric t, count(*)::numeric n
          FROM neon_budget.billing_log WHERE ($1 IS NULL OR billing_month = $1) AND campaign_id IS NOT NULL GROUP BY 1, 2
        UNION ALL SELECT campaign_id, billing_month, sum(cost), sum(tokens), sum(executions)
          FROM neon_budget.purged_spend WHERE ($1 IS NULL OR billing_month = $1) AND campaign_id <> '' GROUP BY 1, 2) x
    GROUP BY k, m),
got_campaign AS (SELECT campaign_id AS k, billing_month AS month, sum(cost) AS cost, sum(tokens) AS tokens,
                        sum(executions)::numeric AS executions FROM neon_budget._campaign_spend WHERE ($1 IS NULL OR billing_month = $1) GROUP BY 1, 2),
exp_agent AS (
    SELECT k, m AS month, sum(c) AS cost, sum(t) AS tokens, sum(n) AS executions, sum(su) AS successes, sum(f) AS failures,
           sum(qs) AS quality_sum, sum(qc) AS quality_count, sum(rs) AS retry_sum, sum(es) AS execution_time_sum,
           sum(ec) AS execution_time_count FROM (
        SELECT agent_type AS k, billing_month AS m, sum(cost) c, sum(tokens)::numeric t, count(*)::numeric n,
               count(*) FILTER (WHERE conversion_achieved)::numeric su, count(*) FILTER (WHERE NOT conversion_achieved)::numeric f,
               COALESCE(sum(quality_score::numeric), 0) qs, count(quality_score)::numeric qc,
               COALESCE(sum(retry_count), 0)::numeric rs, COALESCE(sum(execution_time_ms), 0)::numeric es,
               count(execution_time_ms)::numeric ec
          FROM neon_budget.billing_log WHERE ($1 IS NULL OR billing_month = $1) GROUP BY 1, 2
        UNION ALL SELECT agent_type, billing_month, sum(cost), sum(tokens), sum(executions), sum(successes), sum(failures),
               sum(quality_sum), sum(quality_count), sum(retry_sum), sum(execution_time_sum), sum(execution_time_count)
          FROM neon_budget.purged_spend WHERE ($1 IS NULL OR billing_month = $1) GROUP BY 1, 2) x
    GROUP BY k, m),
got_agent AS (SELECT agent_type AS k, billing_month AS month, sum(cost) AS cost, sum(tokens) AS tokens,
                     sum(executions)::numeric AS executions, sum(successes)::numeric AS successes, sum(failures)::numeric AS failures,
                     sum(quality_sum) AS quality_sum, sum(quality_count)::numeric AS quality_count, sum(retry_sum) AS retry_sum,
                     sum(execution_time_sum) AS execution_time_sum, sum(execution_time_count)::numeric AS execution_time_count
                FROM neon_budget._agent_spend WHERE ($1 IS NULL OR billing_month = $1) GROUP BY 1, 2),
exp_day AS (
    SELECT k, m AS month, sum(c) AS cost, sum(t) AS tokens, sum(n) AS executions FROM (
        SELECT neon_budget._billing_day(created_at) AS k, billing_month AS m, sum(cost) c, sum(tokens)::numeric t, count(*)::numeric n
          FROM neon_budget.billing_log WHERE ($1 IS NULL OR billing_month = $1) GROUP BY 1, 2
        UNION ALL SELECT billing_day, billing_month, sum(cost), sum(tokens), sum(executions)
          FROM neon_budget.purged_day_spend WHERE ($1 IS NULL OR billing_month = $1) GROUP BY 1, 2) x
    GROUP BY k, m),
got_day AS (SELECT billing_day AS k, billing_month AS month, sum(cost) AS cost, sum(tokens) AS tokens,
                   sum(executions)::numeric AS executions FROM neon_budget._day_spend WHERE ($1 IS NULL OR billing_month = $1) GROUP BY 1, 2),
pairs AS (
    SELECT 'monthly_budget'::text AS aggregate, ''::text AS key, COALESCE(e.month, g.month) AS month,
           CASE WHEN e.month IS NULL THEN NULL ELSE pg_catalog.jsonb_build_object('cost', e.cost, 'tokens', e.tokens, 'executions', e.executions) END AS expected,
           CASE WHEN g.month IS NULL THEN NULL ELSE pg_catalog.jsonb_build_object('cost', g.cost, 'tokens', g.tokens, 'executions', g.executions) END AS stored
      FROM exp_month e FULL JOIN got_month g ON g.month = e.month
    UNION ALL
    SELECT 'campaign_cost', COALESCE(e.k, g.k), COALESCE(e.month, g.month),
           CASE WHEN e.k IS NULL THEN NULL ELSE pg_catalog.jsonb_build_object('cost', e.cost, 'tokens', e.tokens, 'executions', e.executions) END,
           CASE WHEN g.k IS NULL THEN NULL ELSE pg_catalog.jsonb_build_object('cost', g.cost, 'tokens', g.tokens, 'executions', g.executions) END
      FROM exp_campaign e FULL JOIN got_campaign g ON g.k = e.k AND g.month = e.month
    UNION ALL
    SELECT 'agent_cost', COALESCE(e.k, g.k), COALESCE(e.month, g.month),
           CASE WHEN e.k IS NULL THEN NULL ELSE pg_catalog.to_jsonb(e) - 'k' - 'month' END,
           CASE WHEN g.k IS NULL THEN NULL ELSE pg_catalog.to_jsonb(g) - 'k' - 'month' END
      FROM exp_agent e FULL JOIN got_agent g ON g.k = e.k AND g.month = e.month
    UNION ALL
    SELECT 'daily_cost', COALESCE(e.k, g.k), COALESCE(e.month, g.month),
           CASE WHEN e.k IS NULL THEN NULL ELSE pg_catalog.jsonb_build_object('cost', e.cost, 'tokens', e.tokens, 'executions', e.executions) END,
           CASE WHEN g.k IS NULL THEN NULL ELSE pg_catalog.jsonb_build_object('cost', g.cost, 'tokens', g.tokens, 'executions', g.executions) END
      FROM exp_day e FULL JOIN got_day g ON g.k = e.k AND g.month = e.month)
SELECT aggregate, key, month, expected, stored FROM pairs
 WHERE ($1 IS NULL OR month = $1)
   AND expected IS DISTINCT FROM stored
   -- stored sums of zero (every row of the key deleted) are the same as no row
   AND NOT (expected IS NULL
            AND NOT EXISTS (SELECT 1 FROM pg_catalog.jsonb_each_text(stored) v WHERE v.value::numeric <> 0))
 ORDER BY month, aggregate, key";

/// The rows of `budget_verify(month)` (`crate::api::maintenance`): every aggregate row that
/// differs from the log, as (aggregate, key, month, expected, stored).
pub fn verify(month: Option<&str>) -> Vec<(String, String, String, Option<pgrx::JsonB>, Option<pgrx::JsonB>)> {
    spi(Spi::connect(|client| {
        client
            .select(COMPARE, None, &[month.into()])?
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

/// The aggregate tables, the `budget_verify` name of each, and their sum columns (`true`: a
/// bigint counter).
const AGGREGATES: [(&str, &str, &str, &[(&str, bool)]); 4] = [
    ("monthly_budget", "_month_spend", "billing_month, slot", &[("cost", false), ("tokens", false), ("executions", true)]),
    ("campaign_cost", "_campaign_spend", "campaign_id, billing_month, slot", &[("cost", false), ("tokens", false), ("executions", true)]),
    (
        "agent_cost",
        "_agent_spend",
        "agent_type, billing_month, slot",
        &[
            ("cost", false),
            ("tokens", false),
            ("executions", true),
            ("successes", true),
            ("failures", true),
            ("quality_sum", false),
            ("quality_count", true),
            ("retry_sum", false),
            ("execution_time_sum", false),
            ("execution_time_count", true),
        ],
    ),
    ("daily_cost", "_day_spend", "billing_month, billing_day, slot", &[("cost", false), ("tokens", false), ("executions", true)]),
];

/// One statement that adds, per differing key of `$1` (the JSON array of `budget_verify` rows),
/// expected minus stored to the key's slot-0 row (a slot no backend writes: backends have ids
/// from 1), and returns how many rows it wrote.
fn correction_sql() -> String {
    let mut ctes = vec!["d AS (SELECT x.aggregate, x.key, x.month, COALESCE(x.expected, '{}') AS e, COALESCE(x.stored, '{}') AS s
                 FROM pg_catalog.jsonb_to_recordset($1) AS x(aggregate text, key text, month text, expected jsonb, stored jsonb))"
        .to_string()];
    let mut counts = Vec::new();
    for (i, (aggregate, table, key_cols, sums)) in AGGREGATES.iter().enumerate() {
        let key_values = match *table {
            "_month_spend" => "d.month, 0",
            "_day_spend" => "d.month, d.key, 0",
            _ => "d.key, d.month, 0",
        };
        let cols: Vec<&str> = sums.iter().map(|(c, _)| *c).collect();
        let deltas: Vec<String> = sums
            .iter()
            .map(|(c, int)| {
                let delta = format!("COALESCE((d.e->>'{c}')::numeric, 0) - COALESCE((d.s->>'{c}')::numeric, 0)");
                if *int {
                    format!("({delta})::bigint")
                } else {
                    delta
                }
            })
            .collect();
        let sets: Vec<String> = cols.iter().map(|c| format!("{c} = t.{c} + EXCLUDED.{c}")).collect();
        ctes.push(format!(
            "c{i} AS (INSERT INTO neon_budget.{table} AS t ({key_cols}, {cols})
                      SELECT {key_values}, {deltas} FROM d WHERE d.aggregate = '{aggregate}'
                      ON CONFLICT ({key_cols}) DO UPDATE SET {sets} RETURNING 1)",
            cols = cols.join(", "),
            deltas = deltas.join(", "),
            sets = sets.join(", "),
        ));
        counts.push(format!("(SELECT count(*) FROM c{i})"));
    }
    format!("WITH {} SELECT {}", ctes.join(",\n"), counts.join(" + "))
}

/// `budget_rebuild(month)` (`crate::api::maintenance`) for a valid `YYYY-MM`: the number of
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
            spi(Spi::get_one_with_args::<i64>(&correction_sql(), &[pgrx::JsonB(d.0.clone()).into()])).unwrap_or(0)
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

/// `anonymize_before(cutoff)` (`crate::api::maintenance`): the number of rows anonymized.
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
/// and moves exactly the deleted rows' sums to `purged_spend` and `purged_day_spend` and their
/// ids' digests to `purged_execution_id`, in one statement; returns how many it deleted.
const PURGE_BATCH: &str = "
WITH d AS (DELETE FROM neon_budget.billing_log
            WHERE ctid >= ('(' OPERATOR(pg_catalog.||) $2 OPERATOR(pg_catalog.||) ',0)')::pg_catalog.tid
              AND ctid < ('(' OPERATOR(pg_catalog.||) $3 OPERATOR(pg_catalog.||) ',0)')::pg_catalog.tid
              AND created_at < $1
        RETURNING *),
s AS (INSERT INTO neon_budget.purged_spend AS p (billing_month, campaign_id, agent_type, cost, tokens, executions,
             successes, failures, quality_sum, quality_count, retry_sum, execution_time_sum, execution_time_count)
      SELECT billing_month, COALESCE(campaign_id, ''), agent_type, sum(cost), sum(tokens), count(*),
             count(*) FILTER (WHERE conversion_achieved), count(*) FILTER (WHERE NOT conversion_achieved),
             COALESCE(sum(quality_score::numeric), 0), count(quality_score), COALESCE(sum(retry_count), 0),
             COALESCE(sum(execution_time_ms), 0), count(execution_time_ms)
        FROM d GROUP BY billing_month, COALESCE(campaign_id, ''), agent_type
      ON CONFLICT (billing_month, campaign_id, agent_type) DO UPDATE SET
         cost = p.cost + EXCLUDED.cost, tokens = p.tokens + EXCLUDED.tokens, executions = p.executions + EXCLUDED.executions,
         successes = p.successes + EXCLUDED.successes, failures = p.failures + EXCLUDED.failures,
         quality_sum = p.quality_sum + EXCLUDED.quality_sum, quality_count = p.quality_count + EXCLUDED.quality_count,
         retry_sum = p.retry_sum + EXCLUDED.retry_sum, execution_time_sum = p.execution_time_sum + EXCLUDED.execution_time_sum,
         execution_time_count = p.execution_time_count + EXCLUDED.execution_time_count),
y AS (INSERT INTO neon_budget.purged_day_spend AS p (billing_month, billing_day, cost, tokens, executions)
      SELECT billing_month, neon_budget._billing_day(created_at), sum(cost), sum(tokens), count(*) FROM d GROUP BY 1, 2
      ON CONFLICT (billing_month, billing_day) DO UPDATE SET
         cost = p.cost + EXCLUDED.cost, tokens = p.tokens + EXCLUDED.tokens, executions = p.executions + EXCLUDED.executions),
i AS (INSERT INTO neon_budget.purged_execution_id (digest, billing_month)
      SELECT neon_budget._execution_digest(execution_id), billing_month FROM d WHERE execution_id IS NOT NULL
      ON CONFLICT (digest) DO NOTHING)
SELECT count(*) FROM d";

/// `purge_before(cutoff)` (`crate::api::maintenance`): the number of rows purged.
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
    let mut n = 0i64;
    let mut first = 0i64;
    while first < pages {
        let last = first + PURGE_BATCH_PAGES;
        n += spi(Spi::get_one_with_args::<i64>(PURGE_BATCH, &[cutoff.into(), first.into(), last.into()])).unwrap_or(0);
        first = last;
    }
    // A row that an UPDATE committed between two batches moved to a page already passed would
    // stay: one statement over the whole table, which follows such updates, takes the rest.
    n += spi(Spi::get_one_with_args::<i64>(PURGE_BATCH, &[cutoff.into(), 0i64.into(), (u32::MAX as i64).into()])).unwrap_or(0);
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
