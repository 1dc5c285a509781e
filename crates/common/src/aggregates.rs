//! The maintained aggregates, declared once.
//!
//! Every total that `budget_check`, the alerts and the reports read is a sum over
//! `billing_log` kept in an aggregate table, one row per key, month and backend slot
//! (`_month_spend`, `_campaign_spend`, `_agent_spend`, `_day_spend`), plus what `purge_before`
//! moved out of the log (`purged_spend`, `purged_day_spend`). This module says once which
//! tables there are, their keys, and which sums each keeps ([`SUMS`], [`AGGREGATES`],
//! [`PURGED`]); the SQL that writes and checks them is generated from it:
//!
//! - the aggregate trigger's bulk statement ([`bulk_apply_ctes`]) and the single-row upsert of
//!   the write path ([`single_row_upsert_sql`]);
//! - `budget_verify`'s comparison with the log ([`compare_sql`]) and `budget_rebuild`'s
//!   correction ([`correction_sql`]);
//! - `purge_before`'s move of deleted rows to the purged sums ([`purge_ctes`]);
//! - the test oracle, a fresh `GROUP BY` over `billing_log` against the views ([`oracle_sql`]).
//!
//! The tables and views themselves are created by SQL files (`sql/bootstrap.sql`,
//! `sql/finalize.sql` and the upgrade scripts); an integration test compares their columns with
//! this declaration on fresh and on upgraded databases. Adding an aggregate (or a sum) means
//! editing this file and those SQL files, nothing else.
//!
//! SQL here is run by the extension as its owner with a safe `search_path`; operators in
//! `ON CONFLICT ... SET` are schema-qualified as in the rest of the extension.

/// One sum kept per key.
#[derive(Debug)]
pub struct Sum {
    /// Its column in the aggregate and purged tables.
    pub column: &'static str,
    /// `bigint` counter (true) or `numeric` (false).
    pub counter: bool,
    /// Its value for one `billing_log` row `r` (SQL; never NULL).
    pub per_row: &'static str,
}

/// Every sum, in the order the tables declare them. An aggregate keeps the first
/// [`Aggregate::sums`] of them: cost (dollars), tokens, executions for all; the agent
/// aggregate also the sums behind success rate, average quality, retries and execution time.
pub const SUMS: [Sum; 10] = [
    Sum { column: "cost", counter: false, per_row: "r.cost" },
    Sum { column: "tokens", counter: false, per_row: "r.tokens" },
    Sum { column: "executions", counter: true, per_row: "1" },
    Sum { column: "successes", counter: true, per_row: "CASE WHEN r.conversion_achieved THEN 1 ELSE 0 END" },
    Sum { column: "failures", counter: true, per_row: "CASE WHEN NOT r.conversion_achieved THEN 1 ELSE 0 END" },
    Sum { column: "quality_sum", counter: false, per_row: "COALESCE(r.quality_score::numeric, 0)" },
    Sum { column: "quality_count", counter: true, per_row: "CASE WHEN r.quality_score IS NOT NULL THEN 1 ELSE 0 END" },
    Sum { column: "retry_sum", counter: false, per_row: "COALESCE(r.retry_count, 0)::numeric" },
    Sum { column: "execution_time_sum", counter: false, per_row: "COALESCE(r.execution_time_ms, 0)::numeric" },
    Sum { column: "execution_time_count", counter: true, per_row: "CASE WHEN r.execution_time_ms IS NOT NULL THEN 1 ELSE 0 END" },
];

/// The keys a `billing_log` row is aggregated by, with their value for row `r` (SQL), in the
/// order of the single-row upsert's parameters ([`single_row_upsert_sql`]).
pub const ROW_KEYS: [(&str, &str); 5] = [
    ("billing_month", "r.billing_month"),
    ("billing_day", "neon_budget._billing_day(r.created_at)"),
    ("campaign_id", "r.campaign_id"),
    ("agent_type", "r.agent_type"),
    // The campaign or '' for none, for the aggregate that keeps rows without a campaign too.
    ("campaign_key", "COALESCE(r.campaign_id, '')"),
];

/// The key that may be NULL in a log row: rows without it are left out of the aggregates it
/// keys (executions with no campaign).
pub const NULLABLE_KEY: &str = "campaign_id";

/// One maintained aggregate.
#[derive(Debug)]
pub struct Aggregate {
    /// Its name in `budget_verify`'s output and its view.
    pub name: &'static str,
    /// The table of per-slot rows.
    pub table: &'static str,
    /// Key columns (from [`ROW_KEYS`]), without `slot`; always has `billing_month`.
    pub keys: &'static [&'static str],
    /// How many of [`SUMS`] it keeps.
    pub sums: usize,
    /// Columns of the table that are neither keys, `slot` nor sums (escrow grant caps).
    pub other_columns: &'static [&'static str],
    /// The purged table that holds its share of purged rows, and the filter (SQL over that
    /// table's columns, or empty) that selects the rows belonging to it.
    pub purged: (&'static str, &'static str),
    /// Its view: name, the view's columns for the keys, then for the sums.
    pub view: (&'static str, &'static [&'static str], &'static [&'static str]),
    /// Which rows of the view the oracle compares (SQL over the view's columns, or empty).
    pub view_filter: &'static str,
}

/// The maintained aggregates.
pub const AGGREGATES: [Aggregate; 5] = [
    Aggregate {
        name: "monthly_budget",
        table: "_month_spend",
        keys: &["billing_month"],
        sums: 3,
        other_columns: &["alert_cap"],
        purged: ("purged_spend", ""),
        view: ("monthly_budget", &["month"], &["total_spent", "total_tokens", "executions"]),
        view_filter: "executions <> 0 OR total_spent <> 0",
    },
    Aggregate {
        name: "campaign_cost",
        table: "_campaign_spend",
        keys: &["campaign_id", "billing_month"],
        sums: 3,
        other_columns: &["alert_cap"],
        purged: ("purged_spend", "campaign_id <> ''"),
        view: ("campaign_cost", &["campaign_id", "month"], &["total_cost", "total_tokens", "executions"]),
        view_filter: "",
    },
    Aggregate {
        name: "agent_cost",
        table: "_agent_spend",
        keys: &["agent_type", "billing_month"],
        sums: 10,
        other_columns: &[],
        purged: ("purged_spend", ""),
        view: (
            "agent_cost",
            &["agent_type", "month"],
            &[
                "total_cost",
                "total_tokens",
                "executions",
                "successes",
                "failures",
                "quality_sum",
                "quality_count",
                "retry_sum",
                "execution_time_ms_sum",
                "execution_time_count",
            ],
        ),
        view_filter: "",
    },
    Aggregate {
        name: "daily_cost",
        table: "_day_spend",
        keys: &["billing_month", "billing_day"],
        sums: 3,
        other_columns: &[],
        purged: ("purged_day_spend", ""),
        view: ("daily_cost", &["month", "day"], &["total_cost", "total_tokens", "executions"]),
        view_filter: "",
    },
    // Per campaign ('' = none), agent type and day: the daily series that forecasts and cost
    // anomalies read (campaign_daily_cost and agent_daily_cost sum it).
    Aggregate {
        name: "campaign_agent_daily_cost",
        table: "_campaign_agent_day_spend",
        keys: &["campaign_key", "agent_type", "billing_month", "billing_day"],
        sums: 3,
        other_columns: &[],
        purged: ("purged_campaign_agent_day_spend", ""),
        view: ("campaign_agent_daily_cost", &["campaign_id", "agent_type", "month", "day"], &["total_cost", "total_tokens", "executions"]),
        view_filter: "",
    },
];

/// A table of purged sums: its keys with their value for a deleted row `r`, and how many of
/// [`SUMS`] it keeps.
#[derive(Debug)]
pub struct PurgedTable {
    pub table: &'static str,
    pub keys: &'static [(&'static str, &'static str)],
    pub sums: usize,
}

/// Where `purge_before` keeps the sums of the rows it deletes.
pub const PURGED: [PurgedTable; 3] = [
    PurgedTable {
        table: "purged_spend",
        keys: &[("billing_month", "r.billing_month"), ("campaign_id", "COALESCE(r.campaign_id, '')"), ("agent_type", "r.agent_type")],
        sums: 10,
    },
    PurgedTable { table: "purged_day_spend", keys: &[("billing_month", "r.billing_month"), ("billing_day", ROW_KEYS[1].1)], sums: 3 },
    PurgedTable {
        table: "purged_campaign_agent_day_spend",
        keys: &[
            ("billing_month", "r.billing_month"),
            ("billing_day", ROW_KEYS[1].1),
            ("campaign_key", ROW_KEYS[4].1),
            ("agent_type", "r.agent_type"),
        ],
        sums: 3,
    },
];

impl Aggregate {
    /// The sums it keeps.
    pub fn sums(&self) -> &'static [Sum] {
        &SUMS[..self.sums]
    }

    /// Its keys other than `billing_month`, in declaration order (none for the month
    /// aggregate).
    pub fn other_keys(&self) -> Vec<&'static str> {
        self.keys.iter().copied().filter(|k| *k != "billing_month").collect()
    }

    /// `budget_verify`'s `key` of a row, as SQL over `exprs` (one per [`Self::other_keys`]):
    /// `''` without other keys, the key itself with one, else the text form of the array of
    /// them (`{camp,AGENT,2026-11-03}`), which [`Self::key_part`] reads back.
    pub fn key_text(&self, exprs: &[String]) -> String {
        match exprs {
            [] => "''".to_string(),
            [one] => one.clone(),
            many => format!("ARRAY[{}]::text", many.join(", ")),
        }
    }

    /// SQL for key column `column` (not `billing_month`) read back from `budget_verify`'s
    /// `key` text `key` (see [`Self::key_text`]).
    pub fn key_part(&self, key: &str, column: &str) -> String {
        let others = self.other_keys();
        if others.len() == 1 {
            return key.to_string();
        }
        let i = others.iter().position(|k| *k == column).expect("a key of the aggregate") + 1;
        format!("({key}::text[])[{i}]")
    }
}

fn row_key(column: &str) -> &'static str {
    ROW_KEYS.iter().find(|(c, _)| *c == column).map(|(_, e)| *e).expect("a key of ROW_KEYS")
}

fn sum_of(s: &Sum, expr: &str) -> String {
    if s.counter {
        format!("sum({expr})::bigint")
    } else {
        format!("sum({expr})")
    }
}

fn add_set(alias: &str, sums: &[Sum]) -> String {
    sums.iter().map(|s| format!("{c} = {alias}.{c} OPERATOR(pg_catalog.+) EXCLUDED.{c}", c = s.column)).collect::<Vec<_>>().join(", ")
}

fn columns(sums: &[Sum]) -> String {
    sums.iter().map(|s| s.column).collect::<Vec<_>>().join(", ")
}

/// The CTEs of the aggregate trigger's bulk statement, for the signed rows `{src}` (`s` = +1
/// for a new row, -1 for an old one, then every `billing_log` column), writing slot `$1`:
/// `d` (the signed sums per row key), `dz` (those not all zero) and one upsert per aggregate.
/// The caller adds its own CTEs after them (they may read `dz`).
pub fn bulk_apply_ctes(src: &str) -> String {
    let keys: Vec<String> = ROW_KEYS.iter().map(|(c, e)| format!("{e} AS {c}")).collect();
    let sums: Vec<String> = SUMS.iter().map(|s| format!("{} AS {}", sum_of(s, &format!("r.s * {}", s.per_row)), s.column)).collect();
    let zeros = vec!["0"; SUMS.len()].join(", ");
    let d_cols: Vec<String> = SUMS.iter().map(|s| format!("d.{}", s.column)).collect();
    let mut out = format!(
        "d AS MATERIALIZED (
    SELECT {keys}, {sums}
      FROM ({src}) r
     GROUP BY {groups}),
dz AS MATERIALIZED (
    SELECT * FROM d WHERE ({d_cols}) OPERATOR(pg_catalog.<>) ({zeros}))",
        keys = keys.join(", "),
        sums = sums.join(", "),
        d_cols = d_cols.join(", "),
        groups = (1..=ROW_KEYS.len()).map(|n| n.to_string()).collect::<Vec<_>>().join(", "),
    );
    for (i, a) in AGGREGATES.iter().enumerate() {
        let dz_keys: Vec<String> = a.keys.iter().map(|k| format!("dz.{k}")).collect();
        let filter = if a.keys.contains(&NULLABLE_KEY) { format!(" WHERE dz.{NULLABLE_KEY} IS NOT NULL") } else { String::new() };
        let sums: Vec<String> = a.sums().iter().map(|s| sum_of(s, &format!("dz.{}", s.column))).collect();
        out.push_str(&format!(
            ",
agg{i} AS (
    INSERT INTO neon_budget.{table} AS t ({keys}, slot, {cols})
    SELECT {dz_keys}, $1, {sums} FROM dz{filter} GROUP BY {dz_keys}
    ON CONFLICT ({keys}, slot) DO UPDATE SET {set})",
            table = a.table,
            keys = a.keys.join(", "),
            cols = columns(a.sums()),
            dz_keys = dz_keys.join(", "),
            sums = sums.join(", "),
            set = add_set("t", a.sums()),
        ));
    }
    out
}

/// One statement that adds one row to this backend's slot rows of every aggregate and returns
/// their new TIDs (one column per aggregate, in [`AGGREGATES`] order; NULL where the row has no
/// key, i.e. no campaign). Parameters: `$1` slot (integer); `$2`.. the [`ROW_KEYS`] values
/// (text); then the [`SUMS`] values (`bigint` for counters, `numeric` otherwise).
pub fn single_row_upsert_sql() -> String {
    let key_param = |k: &str| format!("${}", 2 + ROW_KEYS.iter().position(|(c, _)| *c == k).expect("a row key"));
    let sum_param = |i: usize| format!("${}", 2 + ROW_KEYS.len() + i);
    let mut ctes = Vec::new();
    let mut tids = Vec::new();
    for (i, a) in AGGREGATES.iter().enumerate() {
        let keys: Vec<String> = a.keys.iter().map(|k| key_param(k)).collect();
        let sums: Vec<String> = (0..a.sums).map(sum_param).collect();
        let filter = if a.keys.contains(&NULLABLE_KEY) { format!(" WHERE {} IS NOT NULL", key_param(NULLABLE_KEY)) } else { String::new() };
        ctes.push(format!(
            "agg{i} AS (
    INSERT INTO neon_budget.{table} AS t ({key_cols}, slot, {cols})
    SELECT {keys}, $1, {sums}{filter}
    ON CONFLICT ({key_cols}, slot) DO UPDATE SET {set}
    RETURNING t.ctid)",
            table = a.table,
            key_cols = a.keys.join(", "),
            cols = columns(a.sums()),
            keys = keys.join(", "),
            sums = sums.join(", "),
            set = add_set("t", a.sums()),
        ));
        tids.push(format!("(SELECT agg{i}.ctid FROM agg{i})"));
    }
    format!("WITH {} SELECT {}", ctes.join(",\n"), tids.join(", "))
}

/// `budget_verify`'s statement: for month `$1` (NULL = all), every aggregate row whose stored
/// sums differ from the log's plus the purged ones, as (aggregate, key, month, expected,
/// stored) with the sums as JSON objects (`key` is `''` for the month aggregate).
pub fn compare_sql() -> String {
    let mut ctes = Vec::new();
    let mut pairs = Vec::new();
    for (i, a) in AGGREGATES.iter().enumerate() {
        let others = a.other_keys();
        let key_expr = a.key_text(&others.iter().map(|k| row_key(k).to_string()).collect::<Vec<_>>());
        let purged_key = a.key_text(&others.iter().map(|k| k.to_string()).collect::<Vec<_>>());
        let not_null = if a.keys.contains(&NULLABLE_KEY) { format!(" AND r.{NULLABLE_KEY} IS NOT NULL") } else { String::new() };
        let purged_filter = if a.purged.1.is_empty() { String::new() } else { format!(" AND {}", a.purged.1) };
        let log_sums: Vec<String> = a.sums().iter().map(|s| format!("sum({})::numeric AS {}", s.per_row, s.column)).collect();
        let purged_sums: Vec<String> = a.sums().iter().map(|s| format!("sum({})::numeric", s.column)).collect();
        let outer: Vec<String> = a.sums().iter().map(|s| format!("sum(x.{c}) AS {c}", c = s.column)).collect();
        let got: Vec<String> = a.sums().iter().map(|s| format!("sum({c})::numeric AS {c}", c = s.column)).collect();
        ctes.push(format!(
            "exp{i} AS (
    SELECT x.k, x.month, {outer} FROM (
        SELECT {key_expr} AS k, r.billing_month AS month, {log_sums}
          FROM neon_budget.billing_log r WHERE ($1 IS NULL OR r.billing_month = $1){not_null} GROUP BY 1, 2
        UNION ALL
        SELECT {purged_key}, billing_month, {purged_sums}
          FROM neon_budget.{purged} WHERE ($1 IS NULL OR billing_month = $1){purged_filter} GROUP BY 1, 2) x
    GROUP BY x.k, x.month),
got{i} AS (
    SELECT {got_key} AS k, billing_month AS month, {got}
      FROM neon_budget.{table} WHERE ($1 IS NULL OR billing_month = $1) GROUP BY 1, 2)",
            outer = outer.join(", "),
            log_sums = log_sums.join(", "),
            purged_sums = purged_sums.join(", "),
            purged = a.purged.0,
            got_key = purged_key,
            got = got.join(", "),
            table = a.table,
        ));
        let json = |alias: &str| {
            let fields: Vec<String> = a.sums().iter().map(|s| format!("'{c}', {alias}.{c}", c = s.column)).collect();
            format!("CASE WHEN {alias}.k IS NULL THEN NULL ELSE pg_catalog.jsonb_build_object({}) END", fields.join(", "))
        };
        pairs.push(format!(
            "SELECT '{name}'::text AS aggregate, COALESCE(e.k, g.k)::text AS key, COALESCE(e.month, g.month) AS month,
           {exp} AS expected, {got} AS stored
      FROM exp{i} e FULL JOIN got{i} g ON g.k = e.k AND g.month = e.month",
            name = a.name,
            exp = json("e"),
            got = json("g"),
        ));
    }
    format!(
        "WITH {ctes},
pairs AS (
    {pairs})
SELECT aggregate, key, month, expected, stored FROM pairs
 WHERE ($1 IS NULL OR month = $1)
   AND expected IS DISTINCT FROM stored
   -- stored sums of zero (every row of the key deleted) are the same as no row
   AND NOT (expected IS NULL
            AND NOT EXISTS (SELECT 1 FROM pg_catalog.jsonb_each_text(stored) v WHERE v.value::numeric <> 0))
 ORDER BY month, aggregate, key",
        ctes = ctes.join(",\n"),
        pairs = pairs.join("\n    UNION ALL\n    "),
    )
}

/// `budget_rebuild`'s correction: one statement that adds, per differing key of `$1` (the JSON
/// array of `budget_verify` rows), expected minus stored to the key's slot-0 row (a slot no
/// backend writes: backends have ids from 1), and returns how many rows it wrote.
pub fn correction_sql() -> String {
    let mut ctes = vec!["d AS (SELECT x.aggregate, x.key, x.month, COALESCE(x.expected, '{}') AS e, COALESCE(x.stored, '{}') AS s
                 FROM pg_catalog.jsonb_to_recordset($1) AS x(aggregate text, key text, month text, expected jsonb, stored jsonb))"
        .to_string()];
    let mut counts = Vec::new();
    for (i, a) in AGGREGATES.iter().enumerate() {
        let key_values: Vec<String> =
            a.keys.iter().map(|k| if *k == "billing_month" { "d.month".to_string() } else { a.key_part("d.key", k) }).collect();
        let deltas: Vec<String> = a
            .sums()
            .iter()
            .map(|s| {
                let delta = format!("COALESCE((d.e->>'{c}')::numeric, 0) - COALESCE((d.s->>'{c}')::numeric, 0)", c = s.column);
                if s.counter {
                    format!("({delta})::bigint")
                } else {
                    delta
                }
            })
            .collect();
        ctes.push(format!(
            "c{i} AS (INSERT INTO neon_budget.{table} AS t ({keys}, slot, {cols})
                      SELECT {key_values}, 0, {deltas} FROM d WHERE d.aggregate = '{name}'
                      ON CONFLICT ({keys}, slot) DO UPDATE SET {set} RETURNING 1)",
            table = a.table,
            keys = a.keys.join(", "),
            cols = columns(a.sums()),
            key_values = key_values.join(", "),
            deltas = deltas.join(", "),
            name = a.name,
            set = add_set("t", a.sums()),
        ));
        counts.push(format!("(SELECT count(*) FROM c{i})"));
    }
    format!("WITH {} SELECT {}", ctes.join(",\n"), counts.join(" + "))
}

/// `purge_before`'s CTEs that add the sums of the deleted rows (CTE `d`, every `billing_log`
/// column) to the purged tables, one per [`PURGED`] table.
pub fn purge_ctes() -> String {
    let mut ctes = Vec::new();
    for (i, p) in PURGED.iter().enumerate() {
        let sums = &SUMS[..p.sums];
        let key_cols: Vec<&str> = p.keys.iter().map(|(c, _)| *c).collect();
        let key_exprs: Vec<&str> = p.keys.iter().map(|(_, e)| *e).collect();
        let groups: Vec<String> = (1..=p.keys.len()).map(|n| n.to_string()).collect();
        let values: Vec<String> = sums.iter().map(|s| sum_of(s, s.per_row)).collect();
        ctes.push(format!(
            "purged{i} AS (INSERT INTO neon_budget.{table} AS p ({keys}, {cols})
      SELECT {exprs}, {values} FROM d r GROUP BY {groups}
      ON CONFLICT ({keys}) DO UPDATE SET {set})",
            table = p.table,
            keys = key_cols.join(", "),
            cols = columns(sums),
            exprs = key_exprs.join(", "),
            values = values.join(", "),
            groups = groups.join(", "),
            set = add_set("p", sums),
        ));
    }
    ctes.join(",\n")
}

/// The test oracle of each aggregate: (name, a fresh `GROUP BY` over `billing_log`, the same
/// figures read from its view), both as rows of the keys then the sums as `numeric`, to be
/// compared as sets. Valid while nothing was purged (purged rows are no longer in the log).
pub fn oracle_sql() -> Vec<(&'static str, String, String)> {
    AGGREGATES
        .iter()
        .map(|a| {
            let keys: Vec<&str> = a.keys.iter().map(|k| row_key(k)).collect();
            let sums: Vec<String> = a.sums().iter().map(|s| format!("sum({})::numeric", s.per_row)).collect();
            let not_null = if a.keys.contains(&NULLABLE_KEY) { format!(" WHERE r.{NULLABLE_KEY} IS NOT NULL") } else { String::new() };
            let groups: Vec<String> = (1..=keys.len()).map(|n| n.to_string()).collect();
            let expected = format!(
                "SELECT {keys}, {sums} FROM neon_budget.billing_log r{not_null} GROUP BY {groups}",
                keys = keys.join(", "),
                sums = sums.join(", "),
                groups = groups.join(", "),
            );
            let (view, view_keys, view_sums) = a.view;
            let stored_sums: Vec<String> = view_sums.iter().map(|c| format!("{c}::numeric")).collect();
            let filter = if a.view_filter.is_empty() { String::new() } else { format!(" WHERE {}", a.view_filter) };
            let stored = format!("SELECT {}, {} FROM neon_budget.{view}{filter}", view_keys.join(", "), stored_sums.join(", "));
            (a.name, expected, stored)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declaration_is_consistent() {
        for a in &AGGREGATES {
            assert!(a.keys.contains(&"billing_month"), "{}", a.name);
            assert!(a.keys.iter().all(|k| ROW_KEYS.iter().any(|(c, _)| c == k)), "{}", a.name);
            assert!(a.sums >= 3 && a.sums <= SUMS.len());
            assert_eq!(a.view.1.len(), a.keys.len(), "{}", a.name);
            assert_eq!(a.view.2.len(), a.sums, "{}", a.name);
            let purged = PURGED.iter().find(|p| p.table == a.purged.0).expect("a purged table");
            assert!(purged.sums >= a.sums, "{}", a.name);
            assert!(a.keys.iter().all(|k| purged.keys.iter().any(|(c, _)| c == k)), "{}", a.name);
        }
        assert_eq!(SUMS.iter().map(|s| s.column).collect::<Vec<_>>()[..3], ["cost", "tokens", "executions"]);
    }

    #[test]
    fn generated_sql_names_every_sum_of_every_aggregate() {
        let bulk = bulk_apply_ctes("SELECT 1");
        let single = single_row_upsert_sql();
        let compare = compare_sql();
        let correction = correction_sql();
        for a in &AGGREGATES {
            for sql in [&bulk, &single, &compare, &correction] {
                assert!(sql.contains(&format!("neon_budget.{}", a.table)), "{}", a.table);
            }
            assert!(compare.contains(&format!("'{}'::text AS aggregate", a.name)));
        }
        // $1 slot, $2..$6 keys, $7..$16 sums.
        assert!(single.contains("$16") && !single.contains("$17"));
        assert!(single.contains("WHERE $4 IS NOT NULL"), "{single}");
        let purge = purge_ctes();
        assert!(purge.contains("neon_budget.purged_spend") && purge.contains("neon_budget.purged_day_spend"));
        assert!(purge.contains("neon_budget.purged_campaign_agent_day_spend"));
        // A key of several columns round-trips through budget_verify's text key.
        let a = AGGREGATES.iter().find(|a| a.table == "_campaign_agent_day_spend").unwrap();
        assert_eq!(a.key_part("d.key", "agent_type"), "(d.key::text[])[2]");
        assert!(compare.contains("ARRAY[COALESCE(r.campaign_id, ''), r.agent_type, neon_budget._billing_day(r.created_at)]::text"));
        assert_eq!(oracle_sql().len(), AGGREGATES.len());
    }
}
