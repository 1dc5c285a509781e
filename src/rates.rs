//! Agent rates: the price of 1,000 tokens of an agent type, in dollars, as a history
//! (`agent_rate`: one row per agent type and `effective_from`). The rate **in force at** an
//! instant is the row with the latest `effective_from` at or before it, so a row is priced at
//! the rate of the time its work was done (its `created_at`), a late report included, and a
//! rate scheduled for later does not apply before its time. Each agent type's history is read
//! with the latest snapshot (as a catalog is: rates are settings, so a REPEATABLE READ
//! transaction prices with the rates committed now) and cached per backend until a change to
//! `agent_rate` is committed.
use crate::error::{raise, Code};
use crate::pg::cache::{self, Cache, CacheAlloc, Follows, Num, Text};
use crate::pg::table_scan::{scan_text_eq, Snapshot};
use pgrx::prelude::*;
use pgrx::AnyNumeric;

/// One agent type's rates, oldest first: `effective_from` (microseconds since 2000-01-01 UTC,
/// PostgreSQL's `TimestampTz`; `i64::MIN` is `-infinity`) and dollars per 1,000 tokens.
pub struct History(allocator_api2::vec::Vec<(pg_sys::TimestampTz, Num), CacheAlloc>);

impl History {
    /// The rate in force at `at`: the latest entry with `effective_from <= at`.
    fn at(&self, at: pg_sys::TimestampTz) -> Option<AnyNumeric> {
        let after = self.0.partition_point(|(from, _)| *from <= at);
        after.checked_sub(1).map(|i| self.0[i].1.get())
    }

    /// When the first rate takes effect (None: no rate at all).
    fn first(&self) -> Option<pg_sys::TimestampTz> {
        self.0.first().map(|(from, _)| *from)
    }
}

thread_local! {
    /// Rate histories by agent type (any change to `agent_rate` invalidates them).
    static RATES: std::cell::RefCell<Cache<Text, History>> = std::cell::RefCell::new(Cache::new(Follows::Settings, cache::PER_AGENT_TYPE));
}

/// Reads `agent_type`'s history through `agent_rate`'s primary key `(agent_type,
/// effective_from)`, oldest first, with the latest snapshot (what is committed now, whatever
/// the transaction's isolation level), so that what is cached is never older than the
/// invalidations this backend has processed.
fn read_history(agent_type: &str) -> History {
    let mut v = allocator_api2::vec::Vec::new_in(CacheAlloc);
    let snapshot = Snapshot::latest();
    scan_text_eq(&snapshot, c"agent_rate", c"agent_rate_pkey", &[("agent_type", agent_type)], |row| {
        let from: TimestampWithTimeZone = row.get("effective_from").expect("agent_rate.effective_from is NOT NULL");
        let rate: AnyNumeric = row.get("cost_per_1k_tokens").expect("agent_rate.cost_per_1k_tokens is NOT NULL");
        v.push((pg_sys::TimestampTz::from(from), Num::new(&rate)));
    });
    History(v)
}

/// `f` of `agent_type`'s history, from this backend's cache when no change to `agent_rate`
/// was committed since it was read.
fn with_history<R>(agent_type: &str, f: impl Fn(&History) -> R) -> R {
    // Rate changes committed by others since this backend last looked (a statement of a
    // transaction that already holds its locks would not see them otherwise).
    unsafe { pg_sys::AcceptInvalidationMessages() };
    // Registers which relations' invalidations count (again after DROP and CREATE EXTENSION).
    crate::pg::backend_cache::watched();
    let generation = crate::pg::backend_cache::generation();
    if let Some(found) = RATES.with(|r| r.borrow_mut().get(agent_type).map(&f)) {
        return found;
    }
    let history = read_history(agent_type);
    let found = f(&history);
    // Only if no invalidation arrived while reading it.
    if crate::pg::backend_cache::generation() == generation {
        RATES.with(|r| r.borrow_mut().insert(Text::new(agent_type), history));
    }
    found
}

fn unknown(agent_type: &str) -> ! {
    raise(
        Code::ERRCODE_UNDEFINED_OBJECT,
        format!("unknown agent type \"{agent_type}\""),
        "Give it a rate first: SELECT neon_budget.set_agent_rate('MY_AGENT', 0.04);",
    )
}

/// The rate of `agent_type` in force at `at` (dollars per 1,000 tokens).
///
/// Errors: 42704 (undefined_object) when the agent type has no rate at all, or none in force
/// at `at` (its first rate takes effect later); the hint says how to give it one.
pub fn rate_at(agent_type: &str, at: TimestampWithTimeZone) -> AnyNumeric {
    let at_us = pg_sys::TimestampTz::from(at);
    match with_history(agent_type, |h| (h.at(at_us), h.first())) {
        (Some(rate), _) => rate,
        (None, None) => unknown(agent_type),
        (None, Some(_)) => raise(
            Code::ERRCODE_UNDEFINED_OBJECT,
            format!("agent type \"{agent_type}\" has no rate in force at {at}"),
            format!(
                "Its first rate takes effect later (SELECT * FROM neon_budget.agent_rate WHERE agent_type = {quoted}). \
                 Give it a rate from that time on: SELECT neon_budget.set_agent_rate({quoted}, 0.04, effective_from => '{at}');",
                quoted = crate::error::quote_literal(agent_type)
            ),
        ),
    }
}

/// The rate of `agent_type` in force now (at the transaction's start, PostgreSQL's `now()`),
/// as [`rate_at`]: what `budget_check` and `budget_reserve` price an estimate at.
pub fn rate_now(agent_type: &str) -> AnyNumeric {
    rate_at(agent_type, now())
}

/// The start of the current transaction (`now()`).
pub fn now() -> TimestampWithTimeZone {
    TimestampWithTimeZone::try_from(unsafe { pg_sys::GetCurrentTransactionStartTimestamp() }).expect("now() is a valid timestamptz")
}

/// Requires that `agent_type` has a rate at some time (42704 otherwise, as [`rate_at`]): a
/// row whose cost the caller reported is not priced, but its agent type must be known.
pub fn require_known(agent_type: &str) {
    if !with_history(agent_type, |h| h.first().is_some()) {
        unknown(agent_type)
    }
}
