//! Lock behaviour: writers that record spend for several campaigns in different orders inside
//! explicit transactions never deadlock (each backend updates only its own aggregate rows) and
//! their totals are exact; the row lock that set_monthly_budget waits for obeys lock_timeout
//! (55P03). budget_reserve's lock: `reservations.rs`.
use neon_budget_integration::*;
use postgres::{Client, NoTls};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const THREADS: usize = 4;
const TXS: usize = 50;
const CALLS: usize = 3;
const CAMPAIGNS: [&str; 4] = ["A", "B", "C", "D"];

/// Tokens per execution of a campaign: A 100, B 200, C 300, D 400 (CONTENT, $0.04 / 1K tokens).
fn tokens(campaign: &str) -> i64 {
    100 * (CAMPAIGNS.iter().position(|c| *c == campaign).unwrap() as i64 + 1)
}

/// Thread k's campaign order: rotated by k, and reversed for odd k, so that every pair of
/// threads meets the campaigns in different orders.
fn order(k: usize) -> Vec<&'static str> {
    let mut o: Vec<&str> = (0..4).map(|i| CAMPAIGNS[(i + k) % 4]).collect();
    if k % 2 == 1 {
        o.reverse();
    }
    o
}

/// An error with its SQLSTATE, message, detail and context (where the server was).
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!(
            "{} {}; detail: {}; context: {}",
            d.code().code(),
            d.message(),
            d.detail().unwrap_or("-"),
            d.where_().unwrap_or("-").replace('\n', " / ")
        ),
        None => e.to_string(),
    }
}

#[derive(Default, Debug)]
struct Outcome {
    deadlocks: usize,
    serialization_failures: usize,
    commits: usize,
}

/// 50 transactions of thread k, each recording CALLS executions per campaign in the thread's
/// order; a transaction failing with 40P01 or 40001 is retried (same execution ids).
fn writer(dsn: String, k: usize, start: Arc<AtomicBool>) -> Outcome {
    let mut c = Client::connect(&dsn, NoTls).unwrap();
    c.batch_execute("SET statement_timeout = '30s'").unwrap();
    let stmt =
        c.prepare("SELECT (neon_budget.track_cost('CONTENT', $1::bigint, campaign_id => $2::text, execution_id => $3::text)).id").unwrap();
    let mut out = Outcome::default();
    while !start.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    for t in 0..TXS {
        let mut attempts = 0;
        loop {
            attempts += 1;
            assert!(attempts <= 20, "thread {k} transaction {t}: 20 attempts failed");
            let r = (|| -> Result<(), postgres::Error> {
                let mut tx = c.transaction()?;
                for camp in order(k) {
                    for j in 0..CALLS {
                        let id: Option<i64> = tx.query_one(&stmt, &[&tokens(camp), &camp, &format!("dl-{k}-{t}-{camp}-{j}")])?.get(0);
                        assert!(id.is_some());
                    }
                }
                tx.commit()
            })();
            match r {
                Ok(()) => {
                    out.commits += 1;
                    break;
                }
                Err(e) => match e.code().map(|s| s.code()) {
                    Some("40P01") => {
                        eprintln!("thread {k} transaction {t}: {}", describe(&e));
                        out.deadlocks += 1;
                    }
                    Some("40001") => out.serialization_failures += 1,
                    _ => panic!("thread {k} transaction {t}: {e:?}"),
                },
            }
        }
    }
    out
}

fn run_writers(db: &TestDb) -> Vec<Outcome> {
    let start = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..THREADS)
        .map(|k| {
            let (dsn, start) = (db.dsn(), start.clone());
            std::thread::spawn(move || writer(dsn, k, start))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    start.store(true, Ordering::SeqCst);
    handles.into_iter().map(|h| h.join().expect("writer panicked")).collect()
}

/// The exact totals of a complete run: per campaign 4 × 50 × 3 = 600 executions.
fn assert_exact_totals(c: &mut Client) {
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.billing_log"), (THREADS * TXS * CALLS * 4) as i64);
    assert_eq!(
        column(
            c,
            "SELECT campaign_id || ' ' || trim_scale(total_cost) || ' ' || total_tokens || ' ' || executions
               FROM neon_budget.campaign_cost WHERE month = neon_budget._current_month() ORDER BY 1"
        ),
        vec!["A 2.4 60000 600", "B 4.8 120000 600", "C 7.2 180000 600", "D 9.6 240000 600"]
    );
    assert_sql(
        c,
        "SELECT total_spent = 24.0 AND total_tokens = 600000 AND executions = 2400
           FROM neon_budget.monthly_budget WHERE month = neon_budget._current_month()",
    );
    assert_sql(
        c,
        "SELECT total_cost = 24.0 AND total_tokens = 600000 AND executions = 2400
           FROM neon_budget.agent_cost WHERE agent_type = 'CONTENT' AND month = neon_budget._current_month()",
    );
    assert_sql(c, "SELECT total_spent = 24.0 FROM neon_budget.budget_check()");
    for (camp, spent) in [("A", "2.4"), ("B", "4.8"), ("C", "7.2"), ("D", "9.6")] {
        assert_sql(c, &format!("SELECT campaign_spent = {spent} FROM neon_budget.budget_check('{camp}')"));
    }
    assert_oracle(c);
}

fn report(outcomes: &[Outcome]) -> (usize, usize) {
    for (k, o) in outcomes.iter().enumerate() {
        eprintln!("thread {k} ({:?}): {o:?}", order(k));
        assert_eq!(o.commits, TXS);
    }
    (outcomes.iter().map(|o| o.deadlocks).sum(), outcomes.iter().map(|o| o.serialization_failures).sum())
}

#[test]
fn campaigns_in_rotated_orders_never_deadlock() {
    let mut db = TestDb::new("deadlock_rotated");
    db.client
        .batch_execute(
            "SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 1000);
             SELECT neon_budget.set_campaign(c, 'Campaign ' || c, NULL, 500) FROM unnest(ARRAY['A', 'B', 'C', 'D']) c;",
        )
        .unwrap();
    let (deadlocks, serialization_failures) = report(&run_writers(&db));
    assert_exact_totals(&mut db.client);
    assert_eq!(int(&mut db.client, "SELECT count(*) FROM neon_budget.alert_log"), 0);
    assert_eq!(serialization_failures, 0, "READ COMMITTED writers got 40001");
    assert_eq!(deadlocks, 0, "writers deadlocked {deadlocks} times");
}

/// The same writers while the month and every campaign cross warning, critical and exceeded:
/// the alert claims (alert_state) are the only rows writers share.
#[test]
fn campaigns_in_rotated_orders_crossing_alert_levels_never_deadlock() {
    let mut db = TestDb::new("deadlock_alerts");
    db.client
        .batch_execute(
            "SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 20);
             SELECT neon_budget.set_campaign('A', 'A', NULL, 2), neon_budget.set_campaign('B', 'B', NULL, 4),
                    neon_budget.set_campaign('C', 'C', NULL, 6), neon_budget.set_campaign('D', 'D', NULL, 8);",
        )
        .unwrap();
    let (deadlocks, serialization_failures) = report(&run_writers(&db));
    let c = &mut db.client;
    // Levels that concurrent transactions crossed together are sent by the next budget_check.
    for camp in CAMPAIGNS {
        c.batch_execute(&format!("SELECT neon_budget.budget_check('{camp}')")).unwrap();
    }
    assert_exact_totals(c);
    // Every level of the month and of each campaign exactly once.
    assert_eq!(
        column(
            c,
            "SELECT scope || ' ' || COALESCE(campaign_id, '-') || ' ' || level || ' ' || count(*)
               FROM neon_budget.alert_log GROUP BY scope, campaign_id, level ORDER BY 1"
        ),
        vec![
            "campaign A critical 1",
            "campaign A exceeded 1",
            "campaign A warning 1",
            "campaign B critical 1",
            "campaign B exceeded 1",
            "campaign B warning 1",
            "campaign C critical 1",
            "campaign C exceeded 1",
            "campaign C warning 1",
            "campaign D critical 1",
            "campaign D exceeded 1",
            "campaign D warning 1",
            "month - critical 1",
            "month - exceeded 1",
            "month - warning 1",
        ]
    );
    assert_eq!(serialization_failures, 0, "READ COMMITTED writers got 40001");
    assert_eq!(deadlocks, 0, "writers deadlocked {deadlocks} times (see the 40P01 errors above)");
}

/// The smallest case of the above: two transactions each cross the warning level of one
/// campaign and then record spend for the other's campaign, which in their own snapshots
/// crosses that campaign's warning too.
#[test]
fn crossing_two_campaigns_levels_in_opposite_orders_does_not_deadlock() {
    let mut db = TestDb::new("deadlock_opposite");
    let mut t1 = db.connect();
    let mut t2 = db.connect();
    let c = &mut db.client;
    c.batch_execute(
        "SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 1000);
         SELECT neon_budget.set_campaign('X', 'X', NULL, 1), neon_budget.set_campaign('Y', 'Y', NULL, 1);
         SELECT neon_budget.track_cost('CONTENT', 0, campaign_id => 'X', cost => 0.79);
         SELECT neon_budget.track_cost('CONTENT', 0, campaign_id => 'Y', cost => 0.79);",
    )
    .unwrap();
    t1.batch_execute("SET statement_timeout = '20s'; BEGIN; SELECT neon_budget.track_cost('CONTENT', 0, campaign_id => 'X', cost => 0.02)")
        .unwrap();
    t2.batch_execute("SET statement_timeout = '20s'; BEGIN; SELECT neon_budget.track_cost('CONTENT', 0, campaign_id => 'Y', cost => 0.02)")
        .unwrap();
    // T1 records for Y (in another thread: it may wait for T2), then T2 records for X.
    let h = std::thread::spawn(move || {
        let r = t1.batch_execute("SELECT neon_budget.track_cost('CONTENT', 0, campaign_id => 'Y', cost => 0.02)");
        let r = r.and_then(|_| t1.batch_execute("COMMIT"));
        if r.is_err() {
            let _ignored = t1.batch_execute("ROLLBACK");
        }
        r
    });
    std::thread::sleep(Duration::from_millis(300));
    let r2 = t2
        .batch_execute("SELECT neon_budget.track_cost('CONTENT', 0, campaign_id => 'X', cost => 0.02)")
        .and_then(|_| t2.batch_execute("COMMIT"));
    if r2.is_err() {
        let _ignored = t2.batch_execute("ROLLBACK");
    }
    let r1 = h.join().unwrap();
    let code = |r: &Result<(), postgres::Error>| r.as_ref().err().map(describe);
    assert!(r1.is_ok() && r2.is_ok(), "transaction 1: {:?}, transaction 2: {:?}", code(&r1), code(&r2));
    assert_sql(c, "SELECT total_cost = 0.83 FROM neon_budget.campaign_cost WHERE campaign_id = 'X'");
    assert_sql(c, "SELECT total_cost = 0.83 FROM neon_budget.campaign_cost WHERE campaign_id = 'Y'");
    assert_eq!(column(c, "SELECT campaign_id || ' ' || level FROM neon_budget.alert_log ORDER BY 1"), vec!["X warning", "Y warning"]);
    assert_oracle(c);
}

/// Runs `sql` on `c` and returns its SQLSTATE and how long it took to fail.
fn fails_within(c: &mut Client, sql: &str) -> (String, Duration) {
    let start = Instant::now();
    let code = sqlstate(c.batch_execute(sql));
    (code, start.elapsed())
}

#[test]
fn set_monthly_budget_waiting_for_the_settings_row_obeys_lock_timeout() {
    let mut db = TestDb::new("lock_timeout_budget");
    db.client.batch_execute("SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 100)").unwrap();
    let audits = int(&mut db.client, "SELECT count(*) FROM neon_budget.audit_log WHERE action = 'set_monthly_budget'");
    assert_eq!(audits, 1);
    let mut s1 = db.connect();
    let mut s2 = db.connect();
    s1.batch_execute("BEGIN; SELECT month FROM neon_budget.monthly_budget_setting WHERE month = neon_budget._current_month() FOR UPDATE")
        .unwrap();
    s2.batch_execute("SET statement_timeout = '20s'; SET lock_timeout = '200ms'").unwrap();
    let (code, took) = fails_within(&mut s2, "SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 500)");
    assert_eq!(code, "55P03", "lock_not_available");
    assert!(took >= Duration::from_millis(150) && took < Duration::from_secs(1), "failed after {took:?}");
    // The failed call changed nothing.
    let c = &mut db.client;
    assert_sql(c, "SELECT total_budget = 100 FROM neon_budget.monthly_budget_setting WHERE month = neon_budget._current_month()");
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.audit_log WHERE action = 'set_monthly_budget'"), 1);
    // Once the row is free the same call succeeds.
    s1.batch_execute("ROLLBACK").unwrap();
    s2.batch_execute("SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 500)").unwrap();
    assert_sql(c, "SELECT total_budget = 500 FROM neon_budget.budget_check()");
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.audit_log WHERE action = 'set_monthly_budget'"), 2);
}
