//! `track_cost` with an `execution_id` on the fast path (issue #12): a new id is written with
//! the heap API as a speculative insertion, a retry returns the earlier row and writes nothing,
//! and calls racing with one new id record it exactly once, return the same row to every
//! caller, and raise no unique violation.
use neon_budget_integration::sessions::{backend_pid, wait_until_blocked};
use neon_budget_integration::*;
use std::sync::{Arc, Barrier};

/// `(id, execution_id)` of the row `track_cost` returned.
fn record(c: &mut postgres::Client, execution_id: &str) -> (i64, String) {
    let row = c
        .query_one(
            "SELECT (r).id, (r).execution_id FROM (SELECT neon_budget.track_cost('CONTENT', 1000, cost => 0.5, execution_id => $1) AS r) x",
            &[&execution_id],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

fn writes(c: &mut postgres::Client, path: &str, reason: &str) -> i64 {
    c.query_one(
        "SELECT COALESCE(sum(writes), 0)::bigint FROM neon_budget.write_path_stats WHERE path = $1 AND reason = $2",
        &[&path, &reason],
    )
    .unwrap()
    .get(0)
}

#[test]
fn a_new_id_takes_the_fast_path_and_its_retry_returns_the_same_row() {
    let db = TestDb::new("idem_retry");
    let mut c = db.connect();
    let first = record(&mut c, "e-1");
    assert_eq!(first.1, "e-1");
    assert_eq!(writes(&mut c, "heap", "track_cost"), 1);
    // The retry: the same row, nothing written.
    assert_eq!(record(&mut c, "e-1"), first);
    assert_eq!(int(&mut c, "SELECT count(*) FROM neon_budget.billing_log"), 1);
    assert_eq!(text(&mut c, "SELECT total_spent::text FROM neon_budget.monthly_budget").as_deref(), Some("0.5"));
    // The retry in the same transaction as the first call, and in a later one.
    c.batch_execute("BEGIN").unwrap();
    let second = record(&mut c, "e-2");
    assert_eq!(record(&mut c, "e-2"), second);
    c.batch_execute("COMMIT").unwrap();
    assert_eq!(record(&mut c, "e-2"), second);
    assert_eq!(int(&mut c, "SELECT count(*) FROM neon_budget.billing_log"), 2);
    // The unique index holds every id once, and amcheck finds heap and indexes consistent
    // (the speculative insertions were confirmed).
    c.batch_execute("CREATE EXTENSION IF NOT EXISTS amcheck").unwrap();
    c.batch_execute("SELECT bt_index_check('neon_budget.billing_log_execution_id_key', true)").unwrap();
    c.batch_execute("SELECT bt_index_check('neon_budget.billing_log_pkey', true)").unwrap();
    // A direct INSERT of a recorded id still fails as the unique index says.
    rejects(
        &mut c,
        "INSERT INTO neon_budget.billing_log (agent_type, tokens, cost, execution_id) VALUES ('CONTENT', 1, 0.25, 'e-1')",
        "23505",
    );
    assert_oracle(&mut c);
}

/// One call inserts a new id and holds its transaction open; a second call with the same id
/// waits for it. On commit the second call returns the first call's row; on rollback it
/// records its own. Neither raises an error.
#[test]
fn a_call_racing_an_open_insert_of_its_id_waits_and_returns_that_row() {
    let db = TestDb::new("idem_wait");
    for commit in [true, false] {
        let id = if commit { "race-commit" } else { "race-rollback" };
        let mut a = db.connect();
        let mut watcher = db.connect();
        a.batch_execute("BEGIN").unwrap();
        let from_a = record(&mut a, id);
        let dsn = db.dsn();
        let id_b = id.to_string();
        let b = std::thread::spawn(move || {
            let mut b = postgres::Client::connect(&dsn, postgres::NoTls).unwrap();
            let pid = backend_pid(&mut b);
            (pid, b.query_one(
                "SELECT (r).id, (r).execution_id FROM (SELECT neon_budget.track_cost('CONTENT', 1000, cost => 0.5, execution_id => $1) AS r) x",
                &[&id_b],
            ))
        });
        // b waits on a's row (its pid is the only other backend of this database running it)
        let pid: i32 = loop {
            let p: Option<i32> = watcher
                .query_opt(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE '%track_cost%' AND pid NOT IN (pg_backend_pid(), $1)",
                    &[&backend_pid(&mut a)],
                )
                .unwrap()
                .map(|r| r.get(0));
            if let Some(p) = p {
                break p;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        wait_until_blocked(&mut watcher, pid);
        a.batch_execute(if commit { "COMMIT" } else { "ROLLBACK" }).unwrap();
        let (_, got) = b.join().unwrap();
        let got = got.expect("the waiting call raises no error");
        let from_b: (i64, String) = (got.get(0), got.get(1));
        if commit {
            assert_eq!(from_b, from_a, "the waiting call returns the committed row");
        } else {
            assert_ne!(from_b.0, from_a.0, "after a rollback the waiting call records its own row");
        }
        assert_eq!(int(&mut watcher, &format!("SELECT count(*) FROM neon_budget.billing_log WHERE execution_id = '{id}'")), 1);
    }
    let mut c = db.connect();
    assert_oracle(&mut c);
}

/// Many sessions send the same new ids at the same moment (a barrier before each id), so their
/// probes find nothing and their speculative insertions race: every id is recorded once, every
/// caller gets that row, and no call fails.
#[test]
fn calls_racing_with_the_same_new_ids_record_each_once() {
    const SESSIONS: usize = 6;
    const IDS: usize = 150;
    let db = TestDb::new("idem_race");
    let barrier = Arc::new(Barrier::new(SESSIONS));
    let threads: Vec<_> = (0..SESSIONS)
        .map(|_| {
            let dsn = db.dsn();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut c = postgres::Client::connect(&dsn, postgres::NoTls).unwrap();
                let mut got = Vec::new();
                for i in 0..IDS {
                    barrier.wait();
                    got.push(record(&mut c, &format!("x-{i}")));
                }
                got
            })
        })
        .collect();
    let results: Vec<Vec<(i64, String)>> = threads.into_iter().map(|t| t.join().expect("no call failed")).collect();
    for i in 0..IDS {
        let first = &results[0][i];
        assert_eq!(first.1, format!("x-{i}"));
        for r in &results[1..] {
            assert_eq!(&r[i], first, "every caller of x-{i} got the same row");
        }
    }
    let mut c = db.connect();
    assert_eq!(int(&mut c, "SELECT count(*) FROM neon_budget.billing_log"), IDS as i64);
    assert_eq!(int(&mut c, "SELECT count(DISTINCT execution_id) FROM neon_budget.billing_log"), IDS as i64);
    assert_eq!(text(&mut c, "SELECT total_spent::text FROM neon_budget.monthly_budget").as_deref(), Some("75.0"));
    assert!(writes(&mut c, "heap", "track_cost") > 0, "the fast path was taken");
    // Row versions inserted into billing_log beyond its rows: the speculative insertions that
    // lost a race and were killed (the sessions have exited, so their statistics are flushed).
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let inserted = int(&mut c, "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relid = 'neon_budget.billing_log'::regclass");
    assert!(inserted >= IDS as i64, "{inserted} insertions counted");
    eprintln!("{IDS} ids raced by {SESSIONS} sessions: {} speculative insertions lost a race and were killed", inserted - IDS as i64);
    c.batch_execute("CREATE EXTENSION IF NOT EXISTS amcheck").unwrap();
    c.batch_execute("SELECT bt_index_check('neon_budget.billing_log_execution_id_key', true)").unwrap();
    assert_oracle(&mut c);
}

/// The bug: the probes of an execution_id found billing_log's unique index by its name, so a
/// DBA's `ALTER INDEX ... RENAME` made every call with an execution_id fail (with a hint to
/// run ALTER EXTENSION UPDATE). It is now recognised by its definition.
#[test]
fn the_execution_id_index_is_found_by_its_definition() {
    let db = TestDb::new("idem_rename");
    let mut c = db.connect();
    let first = record(&mut c, "r-1");
    c.batch_execute("ALTER INDEX neon_budget.billing_log_execution_id_key RENAME TO one_row_per_execution").unwrap();
    let mut fresh = db.connect();
    assert_eq!(record(&mut fresh, "r-1"), first, "a retry after the rename returns the first row");
    let second = record(&mut fresh, "r-2");
    assert_eq!(record(&mut c, "r-2"), second);
    // r-1 and r-2 were written on the fast path (each session counts its first write at once).
    assert_eq!(writes(&mut fresh, "heap", "track_cost"), 2);
    // A direct INSERT of a retired id is refused through the renamed index too.
    c.batch_execute("SELECT neon_budget.anonymize_before(now() + interval '1 day')").unwrap();
    rejects(
        &mut c,
        "INSERT INTO neon_budget.billing_log (agent_type, tokens, cost, execution_id) VALUES ('CONTENT', 1, 0.25, 'r-1')",
        "23505",
    );
    // Without the index, an execution_id cannot record once: refused with a hint, nothing written.
    c.batch_execute("DROP INDEX neon_budget.one_row_per_execution").unwrap();
    let mut after = db.connect();
    rejects(&mut after, "SELECT neon_budget.track_cost('CONTENT', 1000, cost => 0.5, execution_id => 'r-3')", "55000");
    assert_eq!(int(&mut after, "SELECT count(*) FROM neon_budget.billing_log"), 2);
    // Calls without an execution_id go on.
    after.batch_execute("SELECT neon_budget.track_cost('CONTENT', 1000, cost => 0.5)").unwrap();
    assert_oracle(&mut after);
}
