//! Helpers for tests that run several sessions at once: a session's backend pid, and waiting
//! (by polling from another session) until a session is blocked on a lock.
use postgres::Client;
use std::time::{Duration, Instant};

/// The backend pid of the session `c`, to watch it from another session.
pub fn backend_pid(c: &mut Client) -> i32 {
    c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0)
}

/// Runs the boolean query `sql` on `c` every 10 ms until it returns true or `within` has
/// passed, and tells whether it returned true.
pub fn became_true(c: &mut Client, sql: &str, within: Duration) -> bool {
    let start = Instant::now();
    loop {
        let v: Option<bool> = c.query_one(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}")).get(0);
        if v == Some(true) {
            return true;
        }
        if start.elapsed() >= within {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until the session with `pid` waits for a lock (a row lock, a transaction or an
/// advisory lock), at most 10 s; panics if it never does.
#[track_caller]
pub fn wait_until_blocked(c: &mut Client, pid: i32) {
    let sql = format!("SELECT COALESCE(bool_or(wait_event_type = 'Lock'), false) FROM pg_stat_activity WHERE pid = {pid}");
    assert!(became_true(c, &sql, Duration::from_secs(10)), "session {pid} never waited for a lock");
}
