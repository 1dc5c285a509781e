//! The maintained aggregates' tables and views, as SQL creates them (fresh install, or an
//! upgrade when `NEON_BUDGET_TEST_TEMPLATE` is set), have exactly the keys and sums of their
//! one declaration in `neon_budget_common::aggregates`, from which the extension generates
//! every statement that writes or checks them.
use neon_budget_common::aggregates::{AGGREGATES, PURGED, SUMS};
use neon_budget_integration::TestDb;

/// `(column, type)` of a relation of the extension, in column order.
fn columns(c: &mut postgres::Client, relation: &str) -> Vec<(String, String)> {
    c.query(
        "SELECT a.attname::text, pg_catalog.format_type(a.atttypid, NULL)
           FROM pg_catalog.pg_attribute a
          WHERE a.attrelid = ('neon_budget.' || $1)::regclass AND a.attnum > 0 AND NOT a.attisdropped
          ORDER BY a.attnum",
        &[&relation],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

fn sum_type(counter: bool) -> String {
    if counter { "bigint" } else { "numeric" }.to_string()
}

#[test]
fn aggregate_tables_match_their_declaration() {
    let mut db = TestDb::new("aggregate_shape");
    for a in &AGGREGATES {
        let mut expected: Vec<(String, String)> = a.keys.iter().map(|k| (k.to_string(), "text".to_string())).collect();
        expected.push(("slot".into(), "integer".into()));
        expected.extend(a.sums().iter().map(|s| (s.column.to_string(), sum_type(s.counter))));
        expected.extend(a.other_columns.iter().map(|c| (c.to_string(), "numeric".to_string())));
        let mut got = columns(&mut db.client, a.table);
        expected.sort();
        got.sort();
        assert_eq!(got, expected, "neon_budget.{} differs from its declaration", a.table);

        // The view shows every key and sum under the declared names.
        let (view, keys, sums) = a.view;
        let view_columns: Vec<String> = columns(&mut db.client, view).into_iter().map(|(c, _)| c).collect();
        for c in keys.iter().chain(sums.iter()) {
            assert!(view_columns.iter().any(|v| v == c), "view neon_budget.{view} has no column {c}: {view_columns:?}");
        }
    }
    for p in &PURGED {
        let mut expected: Vec<(String, String)> = p.keys.iter().map(|(k, _)| (k.to_string(), "text".to_string())).collect();
        expected.extend(SUMS[..p.sums].iter().map(|s| (s.column.to_string(), sum_type(s.counter))));
        let mut got = columns(&mut db.client, p.table);
        expected.sort();
        got.sort();
        assert_eq!(got, expected, "neon_budget.{} differs from its declaration", p.table);
    }
}

/// Every declared sum and key reaches the aggregates on both write paths: one row written by
/// `track_cost` (the heap fast path) and the same row in a multi-row INSERT (the trigger's
/// bulk statement), with every optional column set, then `budget_verify` is empty and the
/// agent aggregate holds each sum exactly.
#[test]
fn every_declared_sum_is_maintained_on_both_paths() {
    let mut db = TestDb::new("aggregate_sums");
    let c = &mut db.client;
    c.batch_execute(
        "SELECT neon_budget.set_agent_rate('SHAPE', 0.04);
         SELECT neon_budget.track_cost('SHAPE', 1000, campaign_id => 'camp', conversion_achieved => true,
                quality_score => 0.5, retry_count => 2, execution_time_ms => 120);
         INSERT INTO neon_budget.billing_log (agent_type, tokens, campaign_id, conversion_achieved, quality_score,
                retry_count, execution_time_ms)
         VALUES ('SHAPE', 3000, 'camp', false, 0.25, 1, 80), ('SHAPE', 500, NULL, NULL, NULL, NULL, NULL);",
    )
    .unwrap();
    let verify: i64 = c.query_one("SELECT count(*) FROM neon_budget.budget_verify()", &[]).unwrap().get(0);
    assert_eq!(verify, 0);
    let cols: Vec<String> = SUMS.iter().map(|s| format!("sum({})::text", s.column)).collect();
    let row = c.query_one(&format!("SELECT {} FROM neon_budget._agent_spend WHERE agent_type = 'SHAPE'", cols.join(", ")), &[]).unwrap();
    let got: Vec<String> = (0..SUMS.len()).map(|i| row.get(i)).collect();
    // cost 0.04 + 0.12 + 0.02, tokens, executions, successes, failures, quality 0.5 + 0.25,
    // quality_count, retries 2 + 1, execution time 120 + 80 ms, execution_time_count.
    assert_eq!(got, ["0.18", "4500", "3", "1", "1", "0.75", "2", "3", "200", "2"]);
    neon_budget_integration::assert_oracle(c);
}
