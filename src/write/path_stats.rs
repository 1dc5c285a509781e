//! Which path each write took, counted per database for DBAs (`neon_budget.write_path_stats`,
//! readable by `neon_budget_admin`): `heap` (a `track_cost` row written with the heap API,
//! `write/log_insert.rs`) or `sql` (an SQL `INSERT`: `INSERT`, `COPY`, or a `track_cost` that could
//! not take the heap path), with the reason (`track_cost: <why>`, or `INSERT or COPY`).
//!
//! Each backend counts in memory and adds its counts to its own rows of `_write_path_stats`
//! (one per slot, path and reason, so backends never wait on each other) at the first write of
//! a path and reason it had not counted yet, then at most once a second. The counts are
//! therefore approximate: a backend's last second of writes is missing after it exits, and the
//! counts it added inside a transaction that rolled back are gone.
use crate::error::spi;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The heap-API path of `track_cost`.
pub const HEAP: &str = "heap";
/// The SQL `INSERT` path.
pub const SQL: &str = "sql";

/// How often a backend adds its counts at most (new paths and reasons are added at once).
const FLUSH_EVERY: Duration = Duration::from_secs(1);

struct Counts {
    /// Writes not yet added, per path and reason.
    pending: HashMap<&'static str, HashMap<String, i64>>,
    /// The paths and reasons this backend has added a count of before.
    seen: HashMap<&'static str, std::collections::HashSet<String>>,
    last_flush: Option<Instant>,
}

thread_local! {
    static COUNTS: RefCell<Counts> = RefCell::new(Counts { pending: HashMap::new(), seen: HashMap::new(), last_flush: None });
    /// The reason `track_cost` takes the SQL path, for the AFTER INSERT trigger to count under,
    /// with the start of the client statement it belongs to (a reason left by a call that
    /// failed before its INSERT must not label a later statement).
    static SQL_REASON: RefCell<Option<(String, i64)>> = const { RefCell::new(None) };
}

/// Counts `writes` rows written by `path` for `reason`; adds the counts to `_write_path_stats`
/// when due (see the module docs), in the current transaction, as the extension's owner.
pub fn count(path: &'static str, reason: &str, writes: i64) {
    let due = COUNTS.with(|c| {
        let mut c = c.borrow_mut();
        // The reason is copied only the first time it is pending: no allocation per write.
        let per_reason = c.pending.entry(path).or_default();
        match per_reason.get_mut(reason) {
            Some(n) => *n += writes,
            None => {
                per_reason.insert(reason.to_string(), writes);
            }
        }
        let new = !c.seen.get(path).is_some_and(|s| s.contains(reason));
        new || c.last_flush.is_none_or(|t| t.elapsed() >= FLUSH_EVERY)
    });
    if due {
        flush();
    }
}

fn flush() {
    let (paths, reasons, writes): (Vec<String>, Vec<String>, Vec<i64>) = COUNTS.with(|c| {
        let c = c.borrow();
        let mut paths = Vec::new();
        let mut reasons = Vec::new();
        let mut writes = Vec::new();
        for (p, per_reason) in &c.pending {
            for (r, n) in per_reason {
                paths.push(p.to_string());
                reasons.push(r.clone());
                writes.push(*n);
            }
        }
        (paths, reasons, writes)
    });
    if paths.is_empty() {
        return;
    }
    crate::pg::owner::as_owner(|| {
        spi(Spi::run_with_args(
            "INSERT INTO neon_budget._write_path_stats AS s (slot, path, reason, writes, last_write)
             SELECT $1, p, r, w, pg_catalog.now() FROM ROWS FROM (pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::text[]), pg_catalog.unnest($4::bigint[])) AS u(p, r, w)
             ON CONFLICT (slot, path, reason) DO UPDATE
                SET writes = s.writes OPERATOR(pg_catalog.+) EXCLUDED.writes, last_write = EXCLUDED.last_write",
            &[crate::write::slots::current().into(), paths.into(), reasons.into(), writes.into()],
        ))
    });
    COUNTS.with(|c| {
        let mut c = c.borrow_mut();
        let flushed: Vec<_> = c.pending.drain().collect();
        for (p, per_reason) in flushed {
            c.seen.entry(p).or_default().extend(per_reason.into_keys());
        }
        c.last_flush = Some(Instant::now());
    });
}

/// Notes why `track_cost` is about to write through an SQL `INSERT`.
pub fn set_sql_reason(reason: String) {
    SQL_REASON.with(|r| *r.borrow_mut() = Some((reason, statement_start())));
}

fn statement_start() -> i64 {
    unsafe { pg_sys::GetCurrentStatementStartTimestamp() }
}

/// Counts the rows an SQL `INSERT` statement wrote (from the AFTER INSERT trigger): under the
/// reason `track_cost` noted, or `INSERT or COPY`.
pub fn count_sql_insert(rows: i64) {
    let reason = SQL_REASON
        .with(|r| r.borrow_mut().take())
        .filter(|(_, at)| *at == statement_start())
        .map(|(r, _)| format!("track_cost: {r}"))
        .unwrap_or_else(|| "INSERT or COPY".to_string());
    if rows > 0 {
        count(SQL, &reason, rows);
    }
}
