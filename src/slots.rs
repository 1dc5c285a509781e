//! Aggregate slots: the maintained aggregates keep one row per (key, month, slot) and a writer
//! only ever updates its own slot's rows, so concurrent writers never wait on each other's row
//! locks. The slot is the backend's id, which is unique among the backends running at once and
//! reused after a backend exits, so a key has at most `max_connections` slot rows.
use pgrx::prelude::*;

/// This backend's aggregate slot: its backend id, 1..MaxBackends.
pub fn current() -> i32 {
    crate::pg_compat::backend_id()
}

/// `neon_budget._slot() -> integer`: this backend's aggregate slot (see [`current`]).
#[pg_extern(volatile, parallel_unsafe, name = "_slot")]
fn slot_sql() -> i32 {
    current()
}
