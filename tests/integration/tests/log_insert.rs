//! track_cost writes its billing_log row with the heap and index API (src/log_insert.rs) while
//! the table is as the extension made it. These tests check the row and its index entries,
//! and that whatever a DBA adds to billing_log (a trigger, a CHECK constraint, an index on an
//! expression) still applies to every track_cost call, as it would to an INSERT.
use neon_budget_integration::*;
use postgres::Client;

const CALL: &str =
    "SELECT id FROM neon_budget.track_cost('CONTENT', 1000, campaign_id => 'c1', task => 'Write', created_at => '2024-09-10 00:00+00')";

fn track(c: &mut Client) -> i64 {
    c.query_one(CALL, &[]).unwrap().get(0)
}

/// Every index of billing_log has exactly the entries of its rows (amcheck's heapallindexed),
/// and the returned row is the stored one.
#[test]
fn rows_and_index_entries_are_complete() {
    let db = TestDb::new("log_insert_indexes");
    let mut c = db.connect();
    c.batch_execute("CREATE EXTENSION amcheck").unwrap();
    // A plain index a DBA added is maintained by the fast path too.
    c.batch_execute("CREATE INDEX billing_log_created_idx ON neon_budget.billing_log (created_at)").unwrap();
    let mut ids = Vec::new();
    for _ in 0..300 {
        ids.push(track(&mut c));
    }
    // And one with an execution_id (the SQL path: the partial unique index gets its entry).
    c.batch_execute("SELECT neon_budget.track_cost('SEO', 10, execution_id => 'e-1', created_at => '2024-09-10 00:00+00')").unwrap();
    let returned: String = c
        .query_one(
            "SELECT (t.id, t.agent_type, t.campaign_id, t.tokens, t.cost, t.task, t.billing_month, t.created_at)::text
               FROM neon_budget.track_cost('CONTENT', 2000, campaign_id => 'c2', task => 'x', created_at => '2024-09-30 23:00+00') t",
            &[],
        )
        .unwrap()
        .get(0);
    let stored = text(
        &mut c,
        "SELECT (id, agent_type, campaign_id, tokens, cost, task, billing_month, created_at)::text
           FROM neon_budget.billing_log ORDER BY id DESC LIMIT 1",
    )
    .unwrap();
    assert_eq!(returned, stored);
    assert!(returned.contains(",0.08,x,2024-09,"), "{returned}");
    for index in ["billing_log_pkey", "billing_log_month_campaign_idx", "billing_log_execution_id_key", "billing_log_created_idx"] {
        c.batch_execute(&format!("SELECT bt_index_parent_check('neon_budget.{index}', heapallindexed => true)")).unwrap();
    }
    c.batch_execute("SET enable_seqscan = off; SET enable_bitmapscan = off").unwrap();
    assert_eq!(int(&mut c, "SELECT count(*) FROM neon_budget.billing_log WHERE billing_month = '2024-09' AND campaign_id = 'c1'"), 300);
    assert_eq!(int(&mut c, &format!("SELECT count(*) FROM neon_budget.billing_log WHERE id = {}", ids[150])), 1);
    assert_eq!(int(&mut c, "SELECT count(*) FROM neon_budget.billing_log WHERE execution_id = 'e-1'"), 1);
    assert_oracle(&mut c);
}

/// An id already taken (rows written with explicit ids) is refused as by INSERT: 23505.
#[test]
fn a_taken_id_is_a_unique_violation() {
    let db = TestDb::new("log_insert_unique");
    let mut c = db.connect();
    let first = track(&mut c);
    c.batch_execute(&format!(
        "SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence('neon_budget.billing_log', 'id'), {first}, false)"
    ))
    .unwrap();
    assert_eq!(sqlstate(c.query_one(CALL, &[])), "23505");
    assert_eq!(int(&mut c, "SELECT count(*) FROM neon_budget.billing_log"), 1);
    assert_oracle(&mut c);
}

/// A DBA's row trigger on billing_log fires for track_cost's rows.
#[test]
fn a_trigger_added_by_a_dba_fires() {
    let db = TestDb::new("log_insert_trigger");
    let mut c = db.connect();
    c.batch_execute(
        "CREATE TABLE public.seen (id bigint);
         CREATE FUNCTION public.remember() RETURNS trigger LANGUAGE plpgsql AS
           $$BEGIN INSERT INTO public.seen VALUES (NEW.id); RETURN NEW; END$$;
         CREATE TRIGGER remember AFTER INSERT ON neon_budget.billing_log FOR EACH ROW EXECUTE FUNCTION public.remember();",
    )
    .unwrap();
    let id = track(&mut c);
    assert_eq!(int(&mut c, &format!("SELECT count(*) FROM public.seen WHERE id = {id}")), 1);
    assert_oracle(&mut c);
}

/// A DBA's CHECK constraint applies to track_cost's rows: 23514, nothing written.
#[test]
fn a_check_constraint_added_by_a_dba_applies() {
    let db = TestDb::new("log_insert_check");
    let mut c = db.connect();
    c.batch_execute("ALTER TABLE neon_budget.billing_log ADD CONSTRAINT small CHECK (tokens < 500)").unwrap();
    assert_eq!(sqlstate(c.query_one(CALL, &[])), "23514");
    assert_eq!(int(&mut c, "SELECT count(*) FROM neon_budget.billing_log"), 0);
    assert_eq!(int(&mut c, "SELECT count(*) FROM neon_budget._month_spend"), 0);
}

/// An index on an expression gets its entries (the call goes through INSERT).
#[test]
fn an_expression_index_added_by_a_dba_is_maintained() {
    let db = TestDb::new("log_insert_expression_index");
    let mut c = db.connect();
    c.batch_execute("CREATE EXTENSION amcheck; CREATE INDEX task_lower ON neon_budget.billing_log (lower(task))").unwrap();
    track(&mut c);
    track(&mut c);
    c.batch_execute("SELECT bt_index_parent_check('neon_budget.task_lower', heapallindexed => true)").unwrap();
    c.batch_execute("SET enable_seqscan = off; SET enable_bitmapscan = off").unwrap();
    assert_eq!(int(&mut c, "SELECT count(*) FROM neon_budget.billing_log WHERE lower(task) = 'write'"), 2);
    assert_oracle(&mut c);
}

/// With the aggregate trigger disabled by a DBA, track_cost's rows are not aggregated, exactly
/// as an INSERT's would not be.
#[test]
fn a_disabled_aggregate_trigger_is_respected() {
    let db = TestDb::new("log_insert_disabled");
    let mut c = db.connect();
    track(&mut c);
    c.batch_execute("ALTER TABLE neon_budget.billing_log DISABLE TRIGGER billing_log_after_insert").unwrap();
    track(&mut c);
    assert_eq!(text(&mut c, "SELECT total_spent::text FROM neon_budget.monthly_budget WHERE month = '2024-09'").as_deref(), Some("0.04"));
    assert_eq!(int(&mut c, "SELECT count(*) FROM neon_budget.billing_log"), 2);
}

/// Column changes a DBA may make apply to track_cost's rows as to an INSERT's: NOT NULL
/// (23502), a narrower type (22003), an exclusion constraint (23P01); and a column dropped and
/// re-added under the same name gets the value (column numbers follow the table).
#[test]
fn column_changes_by_a_dba_apply() {
    let db = TestDb::new("log_insert_columns");
    let mut c = db.connect();
    track(&mut c);
    c.batch_execute("ALTER TABLE neon_budget.billing_log ALTER COLUMN execution_time_ms SET NOT NULL").unwrap_err();
    c.batch_execute("ALTER TABLE neon_budget.billing_log ALTER COLUMN impact_score SET NOT NULL").unwrap_err();
    c.batch_execute(
        "UPDATE neon_budget.billing_log SET retry_count = 0; ALTER TABLE neon_budget.billing_log ALTER COLUMN retry_count SET NOT NULL",
    )
    .unwrap();
    assert_eq!(sqlstate(c.query_one(CALL, &[])), "23502");
    c.batch_execute("ALTER TABLE neon_budget.billing_log ALTER COLUMN retry_count DROP NOT NULL").unwrap();
    c.batch_execute("ALTER TABLE neon_budget.billing_log ALTER COLUMN execution_time_ms TYPE integer").unwrap();
    assert_eq!(
        sqlstate(c.query_one("SELECT id FROM neon_budget.track_cost('CONTENT', 10, execution_time_ms => 5000000000)", &[])),
        "22003"
    );
    c.batch_execute(
        "ALTER TABLE neon_budget.billing_log ADD COLUMN t2 text;
         UPDATE neon_budget.billing_log SET t2 = task;
         ALTER TABLE neon_budget.billing_log DROP COLUMN task;
         ALTER TABLE neon_budget.billing_log RENAME t2 TO task;",
    )
    .unwrap();
    assert_eq!(text(&mut c, "SELECT (neon_budget.track_cost('CONTENT', 10, task => 'moved')).task").as_deref(), Some("moved"));
    c.batch_execute("ALTER TABLE neon_budget.billing_log ADD CONSTRAINT one_task EXCLUDE USING btree (task WITH =)").unwrap();
    assert_eq!(sqlstate(c.query_one("SELECT id FROM neon_budget.track_cost('CONTENT', 10, task => 'moved')", &[])), "23P01");
    assert_oracle(&mut c);
}

/// A connection that only reads keeps following settings changes after the extension was
/// dropped and created again by another session.
#[test]
fn a_reader_follows_settings_after_the_extension_is_recreated() {
    let db = TestDb::new("log_insert_recreated");
    let mut r = db.connect();
    let mut admin = db.connect();
    track(&mut r);
    admin.batch_execute("DROP EXTENSION neon_budget; CREATE EXTENSION neon_budget").unwrap();
    let budget = |c: &mut Client| text(c, "SELECT total_budget::text FROM neon_budget.budget_check()").unwrap();
    let before = budget(&mut r);
    admin.batch_execute("SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 123)").unwrap();
    assert_ne!(before, "123");
    assert_eq!(budget(&mut r), "123");
}
