//! Which path writes take (issue #11): the heap-API fast path of `track_cost` runs only while
//! `billing_log` is as the extension made it, recognised by **definitions**, not names; every
//! change that must turn it off does, a rename does not, and `write_path_stats` shows DBAs the
//! path and the reason. (The upgrade test runs this file on upgraded databases too, and
//! dump_restore.rs checks the path after pg_restore.)
use neon_budget_integration::*;

/// One write by a new session (whose first write of a path and reason is counted at once), and
/// the path and reason it was counted under.
fn path_of(db: &TestDb, sql: &str) -> (String, String) {
    let mut c = db.connect();
    let before: i64 = c.query_one("SELECT COALESCE(sum(writes), 0)::bigint FROM neon_budget.write_path_stats", &[]).unwrap().get(0);
    c.batch_execute(sql).unwrap();
    let rows = c
        .query(
            "SELECT s.path, s.reason, sum(s.writes)::bigint FROM neon_budget._write_path_stats s
              WHERE s.slot = neon_budget._slot() GROUP BY 1, 2 ORDER BY max(s.last_write) DESC, 1, 2",
            &[],
        )
        .unwrap();
    let after: i64 = c.query_one("SELECT COALESCE(sum(writes), 0)::bigint FROM neon_budget.write_path_stats", &[]).unwrap().get(0);
    assert_eq!(after - before, 1, "{sql} was counted once");
    (rows[0].get(0), rows[0].get(1))
}

const TRACK: &str = "SELECT neon_budget.track_cost('CONTENT', 1000, campaign_id => 'c1', cost => 0.5)";

fn heap() -> (String, String) {
    ("heap".into(), "track_cost".into())
}

#[test]
fn each_write_is_counted_under_its_path() {
    let mut db = TestDb::new("wp_paths");
    assert_eq!(path_of(&db, TRACK), heap());
    // A new execution_id takes the fast path too (issue #12), its retry the SQL path.
    assert_eq!(path_of(&db, "SELECT neon_budget.track_cost('CONTENT', 1000, cost => 0.5, execution_id => 'e-1')"), heap());
    assert_eq!(
        path_of(&db, "INSERT INTO neon_budget.billing_log (agent_type, tokens, cost) VALUES ('CONTENT', 1, 0.25)"),
        ("sql".into(), "INSERT or COPY".into())
    );
    let mut c = db.connect();
    c.batch_execute("INSERT INTO neon_budget.billing_log (agent_type, tokens, cost) SELECT 'CONTENT', 1, 0.25 FROM generate_series(1, 5)")
        .unwrap();
    assert_eq!(int(&mut c, "SELECT writes FROM neon_budget.write_path_stats WHERE reason = 'INSERT or COPY'"), 6);
    assert_eq!(int(&mut c, "SELECT sum(writes)::bigint FROM neon_budget.write_path_stats"), 8);
    // Readers may not see it; admins may.
    let mut reader = login_role(&mut db, "wp_reader", Some("neon_budget_reader"));
    assert_eq!(sqlstate(reader.query("SELECT * FROM neon_budget.write_path_stats", &[])), "42501");
    let mut admin = login_role(&mut db, "wp_admin", Some("neon_budget_admin"));
    assert_eq!(int(&mut admin, "SELECT sum(writes)::bigint FROM neon_budget.write_path_stats"), 8);
    assert_oracle(&mut c);
}

/// The bug: a DBA's stricter CHECK that kept the original name was bypassed by the fast path
/// (it recognised the constraints by name), so a row breaking it was recorded.
#[test]
fn a_stricter_check_under_the_original_name_is_enforced() {
    let db = TestDb::new("wp_check");
    let mut c = db.connect();
    c.batch_execute(
        "ALTER TABLE neon_budget.billing_log DROP CONSTRAINT billing_log_cost_check,
           ADD CONSTRAINT billing_log_cost_check CHECK (cost >= 0 AND cost < 100)",
    )
    .unwrap();
    rejects(&mut c, "SELECT neon_budget.track_cost('CONTENT', 1000, cost => 150)", "23514");
    assert_eq!(
        path_of(&db, TRACK),
        (
            "sql".into(),
            "track_cost: CHECK constraint billing_log_cost_check is ((cost >= (0)::numeric) AND (cost < (100)::numeric)), which the extension did not create".into()
        )
    );
    assert_eq!(int(&mut c, "SELECT count(*) FROM neon_budget.billing_log"), 1);
    // The extension's definition again, under another name: the fast path is back.
    c.batch_execute(
        "ALTER TABLE neon_budget.billing_log DROP CONSTRAINT billing_log_cost_check,
           ADD CONSTRAINT cost_is_money CHECK (cost >= 0 AND cost < 'Infinity')",
    )
    .unwrap();
    assert_eq!(path_of(&db, TRACK), heap());
    assert_oracle(&mut c);
}

/// Renames change nothing; every change of a definition that an INSERT would run and the fast
/// path would not turns it off, with its reason.
#[test]
fn changed_definitions_turn_the_fast_path_off_and_renames_do_not() {
    let cases: [(&str, &str, Option<&str>); 8] = [
        ("ALTER TABLE neon_budget.billing_log RENAME CONSTRAINT billing_log_tokens_check TO tokens_ok", "", None),
        ("ALTER TRIGGER billing_log_after_insert ON neon_budget.billing_log RENAME TO aggregates_on_insert", "", None),
        ("ALTER INDEX neon_budget.billing_log_execution_id_key RENAME TO one_row_per_execution", "", None),
        (
            "ALTER TABLE neon_budget.billing_log ADD CONSTRAINT small CHECK (tokens < 1000000)",
            "",
            Some("track_cost: CHECK constraint small is (tokens < 1000000), which the extension did not create"),
        ),
        (
            "ALTER TABLE neon_budget.billing_log DISABLE TRIGGER billing_log_after_update",
            "",
            Some("track_cost: trigger billing_log_after_update is disabled or fires only on replicas"),
        ),
        (
            // A trigger under one of the extension's names that runs something else.
            "CREATE FUNCTION public.audit_truncate() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
             DROP TRIGGER billing_log_after_truncate ON neon_budget.billing_log;
             CREATE TRIGGER billing_log_after_truncate AFTER TRUNCATE ON neon_budget.billing_log
               FOR EACH STATEMENT EXECUTE FUNCTION public.audit_truncate()",
            "",
            Some("track_cost: trigger billing_log_after_truncate (function audit_truncate) is not one of the extension's"),
        ),
        (
            // The execution_id index under its name, with another predicate: the fast path
            // would have skipped entries this index needs.
            "DROP INDEX neon_budget.billing_log_execution_id_key;
             CREATE UNIQUE INDEX billing_log_execution_id_key ON neon_budget.billing_log (execution_id) WHERE campaign_id IS NOT NULL",
            "",
            Some("track_cost: index billing_log_execution_id_key is partial and not the extension's execution_id index"),
        ),
        (
            "CREATE INDEX by_lower_agent ON neon_budget.billing_log (lower(agent_type))",
            "",
            Some("track_cost: index by_lower_agent has expressions"),
        ),
    ];
    for (i, (change, _, reason)) in cases.iter().enumerate() {
        let db = TestDb::new(&format!("wp_change_{i}"));
        let mut c = db.connect();
        c.batch_execute(change).unwrap();
        let got = path_of(&db, TRACK);
        match reason {
            None => assert_eq!(got, heap(), "after: {change}"),
            Some(r) => assert_eq!(got, ("sql".to_string(), r.to_string()), "after: {change}"),
        }
        assert_eq!(text(&mut c, "SELECT sum(cost)::text FROM neon_budget.billing_log").as_deref(), Some("0.5"));
        assert_oracle(&mut c);
    }
}
