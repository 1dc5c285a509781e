//! Executions blocked (issue #13, part 5): every `budget_check` that answers `can_execute =
//! false` and every `budget_reserve` refused with 53000 is counted per day, decision, scope and
//! reason (`blocked_executions`), also when the refusing transaction is READ ONLY or rolls back,
//! and shown in every report format; allowed calls write nothing.
use neon_budget_integration::cluster::Cluster;
use neon_budget_integration::*;
use postgres::Client;
use std::time::{Duration, Instant};

/// The month `2026-…` of the test (now), a month budget of $10 and campaign `c1` with $5, of
/// which $4.50 is spent.
fn setup(c: &mut Client) {
    c.batch_execute(
        "SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 10);
         SELECT neon_budget.set_campaign('c1', 'C1', NULL, 5);
         SELECT neon_budget.track_cost('CONTENT', 1000, campaign_id => 'c1', cost => 4.5);",
    )
    .unwrap();
}

/// The view's rows of this month: `scope campaign decision reason count`.
fn blocked(c: &mut Client) -> Vec<String> {
    column(
        c,
        "SELECT scope || ' ' || COALESCE(campaign_id, '-') || ' ' || decision || ' ' || reason || ' ' || executions_blocked
           FROM neon_budget.blocked_executions WHERE month = neon_budget._current_month()
          ORDER BY scope DESC, campaign_id, decision, reason",
    )
}

fn total(c: &mut Client) -> i64 {
    int(c, "SELECT COALESCE(sum(executions_blocked), 0)::bigint FROM neon_budget.blocked_executions")
}

/// Each refusing scope counts once with its reason; allowed answers write nothing; a refused
/// reservation (its transaction rolled back by 53000) is written by the backend's next call;
/// every report format shows the counts.
#[test]
fn refusals_are_counted_per_scope_and_reason() {
    let mut db = TestDb::new("blocked_counts");
    let c = &mut db.client;
    setup(c);
    // Allowed: nothing is written.
    for _ in 0..5 {
        assert!(boolean(c, "SELECT can_execute FROM neon_budget.budget_check('c1', 'CONTENT', 1000)"));
    }
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget._blocked_count"), 0);
    // $4 more would pass the campaign's $5 (not the month's $10): the campaign refuses.
    assert!(!boolean(c, "SELECT can_execute FROM neon_budget.budget_check('c1', 'CONTENT', 100000)"));
    assert!(!boolean(c, "SELECT can_execute FROM neon_budget.budget_check('c1', 'CONTENT', 100000)"));
    assert_eq!(blocked(c), vec!["campaign c1 budget_check estimate_too_large 2"]);
    // The month's $10 reached: every check refuses, the month because it is reached.
    c.batch_execute("SELECT neon_budget.track_cost('CONTENT', 1000, campaign_id => 'c2', cost => 5.5)").unwrap();
    assert!(!boolean(c, "SELECT can_execute FROM neon_budget.budget_check('c1')"));
    assert!(!boolean(c, "SELECT can_execute FROM neon_budget.budget_check('c1', 'CONTENT', 100000)"));
    // A reservation refused by both scopes: counted, written by the next call (a track_cost).
    assert_eq!(sqlstate(c.batch_execute("SELECT neon_budget.budget_reserve('CONTENT', 100000, 'c1')")), "53000");
    c.batch_execute("SELECT neon_budget.track_cost('CONTENT', 1, cost => 0)").unwrap();
    assert_eq!(
        blocked(c),
        vec![
            "month - budget_check budget_reached 2",
            "month - budget_reserve budget_reached 1",
            "campaign c1 budget_check estimate_too_large 3",
            "campaign c1 budget_reserve estimate_too_large 1",
        ]
    );
    // The override allows, and is not counted.
    c.batch_execute("SELECT neon_budget.set_budget_override(true, 'incident 7')").unwrap();
    assert!(boolean(c, "SELECT can_execute FROM neon_budget.budget_check('c1', 'CONTENT', 100000)"));
    assert_eq!(total(c), 7);

    // Reports: JSON, CSV and Markdown.
    assert_eq!(
        column(
            c,
            "SELECT b->>'scope' || ' ' || COALESCE(b->>'campaign_id', '-') || ' ' || (b->>'decision') || ' ' || (b->>'reason') || ' ' || (b->>'executions_blocked')
               FROM jsonb_array_elements(neon_budget.budget_report(format => 'json')::jsonb -> 'blocked') b"
        ),
        vec![
            "month - budget_check budget_reached 2",
            "month - budget_reserve budget_reached 1",
            "campaign c1 budget_check estimate_too_large 3",
            "campaign c1 budget_reserve estimate_too_large 1",
        ]
    );
    let month = current_month(c);
    let csv = text(c, "SELECT neon_budget.budget_report(format => 'csv')").unwrap();
    assert!(csv.starts_with("section,key,name,type,cost,budget,remaining,utilization_percentage,status,alert_threshold,tokens,executions,avg_cost_per_execution,successes,failures,success_rate_percentage,retries,scope,decision,reason,daily_mean,window_days,days_left,projected_spend,projected_exhausted_on,over_budget\r\n"));
    let rows: Vec<&str> = csv.lines().filter(|l| l.starts_with("blocked,")).collect();
    assert_eq!(
        rows,
        vec![
            format!("blocked,{month},,,,,,,,,,2,,,,,,month,budget_check,budget_reached,,,,,,"),
            format!("blocked,{month},,,,,,,,,,1,,,,,,month,budget_reserve,budget_reached,,,,,,"),
            "blocked,c1,,,,,,,,,,3,,,,,,campaign,budget_check,estimate_too_large,,,,,,".to_string(),
            "blocked,c1,,,,,,,,,,1,,,,,,campaign,budget_reserve,estimate_too_large,,,,,,".to_string(),
        ]
    );
    let md = text(c, "SELECT neon_budget.budget_report()").unwrap();
    assert!(
        md.contains(
            "## 🚫 Executions Blocked\n\n- Month: 2 by budget_check (budget reached)\n- Month: 1 by budget_reserve (budget reached)\n\
             - Campaign c1: 3 by budget_check (estimate too large)\n- Campaign c1: 1 by budget_reserve (estimate too large)\n\n"
        ),
        "{md}"
    );
    // A month without refusals has no such section.
    assert!(!text(c, "SELECT neon_budget.budget_report('2020-01')").unwrap().contains("Executions Blocked"));

    // Readers read the view; nobody but the extension writes the counts.
    let mut reader = login_role(&mut db, "blocked_reader", Some("neon_budget_reader"));
    assert_eq!(int(&mut reader, "SELECT sum(executions_blocked)::bigint FROM neon_budget.blocked_executions"), 7);
    let mut writer = login_role(&mut db, "blocked_writer", Some("neon_budget_writer"));
    assert_eq!(sqlstate(writer.batch_execute("DELETE FROM neon_budget._blocked_count")), "42501");
    assert_eq!(sqlstate(writer.batch_execute("SELECT * FROM neon_budget._blocked_count")), "42501");
}

/// A refusal in a READ ONLY transaction is written by the backend's next call in a read-write
/// one; a refusal written by a transaction or a savepoint that then rolls back is written again.
#[test]
fn read_only_and_rolled_back_refusals_are_still_counted() {
    let mut db = TestDb::new("blocked_read_only");
    let c = &mut db.client;
    setup(c);
    let refused = "SELECT can_execute FROM neon_budget.budget_check('c1', 'CONTENT', 100000)";
    c.batch_execute("BEGIN READ ONLY").unwrap();
    assert!(!boolean(c, refused));
    c.batch_execute("COMMIT").unwrap();
    assert_eq!(total(c), 0, "a READ ONLY transaction writes nothing");
    // The next call in a read-write transaction writes it (here an allowed check).
    assert!(boolean(c, "SELECT can_execute FROM neon_budget.budget_check('c1')"));
    assert_eq!(total(c), 1);
    // Written, then rolled back: pending again, written by the next call.
    c.batch_execute("BEGIN").unwrap();
    assert!(!boolean(c, refused));
    c.batch_execute("ROLLBACK").unwrap();
    assert_eq!(total(c), 1);
    // A savepoint rolled back inside a committed transaction.
    c.batch_execute("BEGIN; SAVEPOINT s").unwrap();
    assert!(!boolean(c, refused));
    c.batch_execute("ROLLBACK TO SAVEPOINT s; COMMIT").unwrap();
    assert_eq!(total(c), 1);
    c.batch_execute("SELECT neon_budget.budget_check('c1')").unwrap();
    assert_eq!(total(c), 3);
    assert_eq!(blocked(c), vec!["campaign c1 budget_check estimate_too_large 3"]);
}

/// A backend that refused in READ ONLY transactions (default_transaction_read_only, as on a
/// read-only connection) and a refused reservation are written when the backend exits.
#[test]
fn pending_refusals_are_written_when_the_backend_exits() {
    let mut db = TestDb::new("blocked_exit");
    setup(&mut db.client);
    {
        let mut ro = db.connect();
        ro.batch_execute("SET default_transaction_read_only = on").unwrap();
        for _ in 0..3 {
            assert!(!boolean(&mut ro, "SELECT can_execute FROM neon_budget.budget_check('c1', 'CONTENT', 100000)"));
        }
        let mut rw = db.connect();
        assert_eq!(sqlstate(rw.batch_execute("SELECT neon_budget.budget_reserve('CONTENT', 100000, 'c1')")), "53000");
    }
    let c = &mut db.client;
    let deadline = Instant::now() + Duration::from_secs(10);
    while total(c) < 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(blocked(c), vec!["campaign c1 budget_check estimate_too_large 3", "campaign c1 budget_reserve estimate_too_large 1"]);
}

/// Eight sessions refusing at once: each writes its own rows (no waits), and the sum is exact.
#[test]
fn concurrent_refusals_add_up() {
    let mut db = TestDb::new("blocked_concurrent");
    setup(&mut db.client);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let mut s = db.connect();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    assert!(!boolean(&mut s, "SELECT can_execute FROM neon_budget.budget_check('c1', 'CONTENT', 100000)"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(blocked(&mut db.client), vec!["campaign c1 budget_check estimate_too_large 400"]);
    assert_sql(&mut db.client, "SELECT count(*) = 0 FROM neon_budget.budget_verify()");
}

/// A client gone in the middle of a transaction that had written its refusal (the transaction
/// is rolled back when its backend exits): the count is written at exit all the same.
#[test]
fn a_client_gone_mid_transaction_is_still_counted() {
    let mut db = TestDb::new("blocked_gone");
    setup(&mut db.client);
    for _ in 0..3 {
        let mut s = db.connect();
        s.batch_execute("BEGIN").unwrap();
        assert!(!boolean(&mut s, "SELECT can_execute FROM neon_budget.budget_check('c1', 'CONTENT', 100000)"));
    }
    let c = &mut db.client;
    let deadline = Instant::now() + Duration::from_secs(10);
    while total(c) < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(blocked(c), vec!["campaign c1 budget_check estimate_too_large 3"]);
}

/// With prepared transactions allowed, a refusal inside a transaction block is not written
/// there: a transaction prepared after it holds no counter row, so a later backend with the
/// same slot never waits for it, and ROLLBACK PREPARED loses nothing.
#[test]
fn prepared_transactions_never_hold_a_count() {
    let cluster = Cluster::create("/tmp/nb_blocked_2pc", 5477);
    let mut admin = cluster.connect("postgres");
    admin.batch_execute("ALTER SYSTEM SET max_prepared_transactions = 4").unwrap();
    drop(admin);
    cluster.stop();
    cluster.start();
    let mut c = cluster.connect("postgres");
    c.batch_execute("CREATE EXTENSION neon_budget").unwrap();
    setup(&mut c);
    let refuse = "SELECT can_execute FROM neon_budget.budget_check('c1', 'CONTENT', 100000)";
    for name in ["p1", "p2"] {
        let mut s = cluster.connect("postgres");
        s.batch_execute("BEGIN").unwrap();
        assert!(!boolean(&mut s, refuse));
        s.batch_execute(&format!("PREPARE TRANSACTION '{name}'")).unwrap();
    }
    // New sessions (backend slots of the ones that prepared) refuse without waiting.
    for _ in 0..4 {
        let mut s = cluster.connect("postgres");
        s.batch_execute("SET statement_timeout = '5s'").unwrap();
        assert!(!boolean(&mut s, refuse));
    }
    c.batch_execute("ROLLBACK PREPARED 'p1'").unwrap();
    c.batch_execute("COMMIT PREPARED 'p2'").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while total(&mut c) < 6 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(blocked(&mut c), vec!["campaign c1 budget_check estimate_too_large 6"]);
    drop(c);
    cluster.stop();
}
