//! Hard caps without a queue: a reservation made in a transaction that stays open holds its
//! estimate at once and blocks no other session's reservations; its estimate comes back when
//! the transaction rolls back or its backend is killed; the lock that decides reservations is
//! held only while one is decided, and a wait for it obeys lock_timeout (55P03). Concurrent
//! reservations never jointly pass a cap (also `tests/isolation/specs/reserve_*.spec`).
use neon_budget_integration::*;
use postgres::Client;
use std::time::{Duration, Instant};

/// Cap $10.00 on campaign `cap`, $9.50 of it spent: $0.50 of headroom.
fn capped(name: &str) -> TestDb {
    let mut db = TestDb::new(name);
    db.client
        .batch_execute(
            "SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 1000);
             SELECT neon_budget.set_campaign('cap', 'Capped', 'TEST', 10.00);
             SELECT neon_budget.track_cost('CONTENT', 0, campaign_id => 'cap', cost => 9.50);",
        )
        .unwrap();
    db
}

/// `budget_reserve` of `cost` dollars on campaign `cap` in session `c`: its SQLSTATE
/// ("00000" when it reserved) and how long the call took.
fn reserve(c: &mut Client, cost: &str) -> (String, Duration) {
    let start = Instant::now();
    let r = c.query_one(&format!("SELECT neon_budget.budget_reserve('CONTENT', 0, 'cap', estimated_cost => {cost})"), &[]);
    let code = match r {
        Ok(row) => {
            assert!(row.get::<_, Option<i64>>(0).is_some(), "a reservation id");
            "00000".to_string()
        }
        Err(e) => sqlstate::<()>(Err(e)),
    };
    (code, start.elapsed())
}

/// What budget_check says is held on `cap`: committed spend plus live reservations.
fn held(c: &mut Client) -> String {
    text(c, "SELECT (campaign_spent + campaign_reserved)::text FROM neon_budget.budget_check('cap')").unwrap()
}

#[test]
fn an_open_reservation_holds_its_estimate_and_blocks_no_one() {
    let mut db = capped("reserve_open");
    let mut s1 = db.connect();
    let mut s2 = db.connect();
    s1.batch_execute("BEGIN").unwrap();
    assert_eq!(reserve(&mut s1, "0.30").0, "00000");
    // Session 2 decides without waiting for session 1's open transaction (a wait of more than
    // 200 ms would fail with 55P03), and counts session 1's uncommitted $0.30.
    s2.batch_execute("SET lock_timeout = '200ms'").unwrap();
    let (code, took) = reserve(&mut s2, "0.30");
    assert_eq!(code, "53000", "0.30 + 0.30 does not fit in 0.50 (after {took:?})");
    let (code, took) = reserve(&mut s2, "0.20");
    assert_eq!(code, "00000", "after {took:?}");
    assert_eq!(held(&mut s2), "10.00", "9.50 + 0.30 (open) + 0.20");
    assert_eq!(reserve(&mut s2, "0.01").0, "53000");
    // Session 1 rolls back: its estimate comes back at once.
    s1.batch_execute("ROLLBACK").unwrap();
    assert_eq!(held(&mut s2), "9.70");
    assert_eq!(reserve(&mut s2, "0.30").0, "00000");
    assert_eq!(reserve(&mut s2, "0.01").0, "53000");
    assert_eq!(int(&mut db.client, "SELECT count(*) FROM neon_budget.reservation"), 2);
    assert_oracle(&mut db.client);
}

#[test]
fn a_killed_backend_gives_its_reservation_back() {
    let mut db = capped("reserve_killed");
    let mut s1 = db.connect();
    let mut s2 = db.connect();
    let pid1 = backend_pid(&mut s1);
    s1.batch_execute("BEGIN").unwrap();
    assert_eq!(reserve(&mut s1, "0.40").0, "00000");
    assert_eq!(reserve(&mut s2, "0.20").0, "53000", "session 1 holds 0.40 of 0.50");
    assert_sql(&mut db.client, &format!("SELECT pg_terminate_backend({pid1})"));
    assert!(wait_gone_backend(&mut db.client, pid1), "backend {pid1} did not exit");
    assert!(s1.batch_execute("SELECT 1").is_err(), "session 1 is gone");
    // Its 0.40 is free again; the cap still holds.
    assert_eq!(held(&mut s2), "9.50");
    assert_eq!(reserve(&mut s2, "0.20").0, "00000");
    assert_eq!(reserve(&mut s2, "0.20").0, "00000");
    assert_eq!(reserve(&mut s2, "0.20").0, "53000");
    assert_eq!(held(&mut s2), "9.90");
    assert_eq!(int(&mut db.client, "SELECT count(*) FROM neon_budget.reservation"), 2);
}

/// Waits (at most 10 s) until the backend `pid` is no longer in pg_stat_activity.
fn wait_gone_backend(c: &mut Client, pid: i32) -> bool {
    became_true(c, &format!("SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = {pid})"), Duration::from_secs(10))
}

/// The second key of the reservation lock of `month`: FNV-1a of `neon_budget.month:<month>`
/// (`src/pg/locks.rs`), as the int4 that `pg_advisory_xact_lock(int, int)` takes.
fn month_lock_key(month: &str) -> i32 {
    format!("neon_budget.month:{month}").bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193)) as i32
}

#[test]
fn a_wait_for_the_reservation_lock_obeys_lock_timeout() {
    let mut db = capped("reserve_lock_timeout");
    let month = current_month(&mut db.client);
    let mut s1 = db.connect();
    let mut s2 = db.connect();
    // Someone holds the month's reservation lock by hand (only that can hold it for long).
    s1.batch_execute(&format!("BEGIN; SELECT pg_advisory_xact_lock({}, {})", 0x4e42_0001, month_lock_key(&month))).unwrap();
    s2.batch_execute("SET statement_timeout = '20s'; SET lock_timeout = '200ms'").unwrap();
    let (code, took) = reserve(&mut s2, "0.01");
    assert_eq!(code, "55P03", "lock_not_available");
    assert!(took >= Duration::from_millis(150) && took < Duration::from_secs(2), "failed after {took:?}");
    assert_eq!(int(&mut s2, "SELECT count(*) FROM neon_budget.reservation"), 0, "the failed call wrote nothing");
    // Without a timeout it waits on that advisory lock, and goes on when it is released.
    s2.batch_execute("SET lock_timeout = 0").unwrap();
    let pid2 = backend_pid(&mut s2);
    let h = std::thread::spawn(move || reserve(&mut s2, "0.01").0);
    let c = &mut db.client;
    let waits = format!(
        "SELECT count(*) = 1 FROM pg_locks WHERE pid = {pid2} AND NOT granted AND locktype = 'advisory' AND classid = {}",
        0x4e42_0001
    );
    assert!(became_true(c, &waits, Duration::from_secs(5)), "session 2 never waited on the reservation lock");
    s1.batch_execute("COMMIT").unwrap();
    assert_eq!(h.join().unwrap(), "00000");
    // Released as soon as the reservation was written: nothing of class 0x4e420001 is held in
    // this database (other tests' databases share pg_locks).
    assert_sql(
        c,
        &format!(
            "SELECT count(*) = 0 FROM pg_locks WHERE locktype = 'advisory' AND classid = {}
                AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            0x4e42_0001
        ),
    );
    assert_eq!(held(c), "9.51");
}

#[test]
fn a_reservation_in_an_open_transaction_releases_the_lock_at_once() {
    let mut db = capped("reserve_lock_released");
    let mut s1 = db.connect();
    let pid1 = backend_pid(&mut s1);
    s1.batch_execute("BEGIN").unwrap();
    assert_eq!(reserve(&mut s1, "0.10").0, "00000");
    // The transaction is still open; the lock that decided it is not held any more.
    assert_sql(
        &mut db.client,
        &format!("SELECT count(*) = 0 FROM pg_locks WHERE locktype = 'advisory' AND classid = {} AND pid = {pid1}", 0x4e42_0001),
    );
    assert_sql(&mut db.client, &format!("SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'transactionid' AND pid = {pid1}"));
    // Settling in the same transaction replaces the estimate with the actual cost.
    let id = int(&mut s1, "SELECT max(id) FROM neon_budget.reservation");
    assert_eq!(
        text(
            &mut s1,
            &format!(
                "SELECT cost::text FROM neon_budget.track_cost('CONTENT', 0, campaign_id => 'cap', cost => 0.07, reservation_id => {id})"
            )
        )
        .as_deref(),
        Some("0.07")
    );
    assert_eq!(held(&mut s1), "9.57");
    s1.batch_execute("COMMIT").unwrap();
    assert_eq!(held(&mut db.client), "9.57");
    assert_eq!(int(&mut db.client, "SELECT count(*) FROM neon_budget.reservation"), 0);
    assert_oracle(&mut db.client);
}

/// Sixteen sessions reserve $0.10 each at the same moment (a barrier) against $0.50 of
/// headroom, in open transactions, twenty rounds: every round exactly five are admitted (never
/// more: the cap holds; never fewer: a reservation that did not fit alongside the others is
/// decided again alone, exactly), then all roll back.
#[test]
fn sixteen_racing_reservations_admit_exactly_what_fits() {
    const SESSIONS: usize = 16;
    const ROUNDS: usize = 20;
    let db = capped("reserve_race16");
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(SESSIONS));
    let admitted = std::sync::Arc::new(std::sync::Mutex::new(vec![0usize; ROUNDS]));
    let handles: Vec<_> = (0..SESSIONS)
        .map(|_| {
            let mut c = db.connect();
            let barrier = barrier.clone();
            let admitted = admitted.clone();
            std::thread::spawn(move || {
                for round in 0..ROUNDS {
                    c.batch_execute("BEGIN").unwrap();
                    barrier.wait();
                    let (code, _) = reserve(&mut c, "0.10");
                    assert!(code == "00000" || code == "53000", "unexpected {code}");
                    if code == "00000" {
                        admitted.lock().unwrap()[round] += 1;
                    }
                    // Everyone has decided before anyone rolls back.
                    barrier.wait();
                    c.batch_execute("ROLLBACK").unwrap();
                    barrier.wait();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(*admitted.lock().unwrap(), vec![5; ROUNDS]);
}
