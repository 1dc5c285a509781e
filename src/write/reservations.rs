//! Reservations (pre-authorization): hard caps that concurrency cannot break.
//!
//! `budget_check` followed by `track_cost` lets N agents that all checked at 99% spend past the
//! cap together. `budget_reserve` instead holds the estimated cost against the month's and the
//! campaign's budget. `track_cost(reservation_id => id)` settles a reservation (the actual cost
//! replaces the estimate, atomically, in the same transaction), `budget_release(id)` cancels
//! it, and an expired reservation stops counting at once, without any job.
//!
//! How concurrent reservations never jointly pass a budget, without queueing on each other's
//! transactions: a reservation is decided under a per-month lock that is held only while it is
//! decided and written (tens of µs), not until its transaction ends. The decision counts
//! committed spend plus every live reservation that a transaction may still commit: the
//! reservation table is read with PostgreSQL's dirty snapshot (`write/state.rs`), which sees
//! the rows of transactions still in progress. So the next reservation, made as soon as the
//! lock is released, already counts this one, whether or not its transaction has committed;
//! a reservation left in an open transaction holds its estimate but blocks nobody. When that
//! transaction rolls back, or its backend exits or crashes, its row is dead and its estimate
//! is free again, with no job and no cleanup.
use crate::error::{raise, spi, spi_opt, Code};
use crate::gucs;
use crate::money;
use crate::month;
use crate::rates::cached_rate;
use crate::write::state::State;
use pgrx::datetime::Interval;
use pgrx::prelude::*;
use pgrx::AnyNumeric;

/// The lock that decides the reservations of `month` one at a time (class `Reservations`,
/// `pg/locks.rs`): transaction-level, released by [`reserve`] as soon as its reservation is
/// written (or by the rollback of an error in between).
fn month_lock(month: &str) -> pg_sys::LOCKTAG {
    crate::pg::locks::tag(crate::pg::locks::Class::Reservations, crate::pg::locks::hash_key(&format!("neon_budget.month:{month}")))
}

/// `budget_reserve` with checked arguments: 22023 for a ttl that is
/// not positive, 0A000 outside READ COMMITTED, 53000 when the estimate does not fit.
pub fn reserve(
    agent_type: &str,
    estimated_tokens: i64,
    campaign_id: Option<&str>,
    ttl: Interval,
    estimated_cost: Option<AnyNumeric>,
) -> Option<i64> {
    let positive: bool = spi(Spi::get_one_with_args("SELECT $1 OPERATOR(pg_catalog.>) interval '0'", &[ttl.into()])).unwrap_or(false);
    if !positive {
        raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            "ttl must be a positive interval",
            "Pass how long the reservation may wait for its execution, e.g. '15 minutes'.",
        );
    }
    let rate = cached_rate(agent_type);
    if !gucs::enabled() {
        return None;
    }
    if unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32 {
        raise(
            Code::ERRCODE_FEATURE_NOT_SUPPORTED,
            "budget_reserve needs a READ COMMITTED transaction",
            "Reserve in its own READ COMMITTED transaction (the default isolation level), before the work.",
        );
    }
    let estimate = estimated_cost.unwrap_or_else(|| money::cost_for_tokens(estimated_tokens, rate));
    let month = month::current_month();
    crate::settings::ensure_month(&month);
    let lock = month_lock(&month);
    // Waits only for reservations being decided now, never for a transaction to end.
    crate::pg::locks::wait_now(&lock);
    // Read under the lock: every reservation decided before, committed or not (dirty snapshot).
    let state = State::read(&month, campaign_id);
    if !state.override_enabled && state.blocks(&estimate) {
        let m = &state.month_scope;
        let mut detail = format!(
            "month {month}: budget {}, spent {}, reserved {}; estimate {}",
            money::dollars(&m.budget, 2),
            money::dollars(&m.spent, 2),
            money::dollars(&m.reserved, 2),
            money::dollars(&estimate, 4)
        );
        if let Some(c) = state.campaign_scope() {
            detail.push_str(&format!(
                "; campaign {}: budget {}, spent {}, reserved {}",
                campaign_id.unwrap_or(""),
                money::dollars(&c.budget, 2),
                money::dollars(&c.spent, 2),
                money::dollars(&c.reserved, 2)
            ));
        }
        pgrx::pg_sys::panic::ErrorReport::new(
            Code::ERRCODE_INSUFFICIENT_RESOURCES,
            "budget exceeded: the reservation does not fit in the remaining budget",
            "neon_budget",
        )
        .set_detail(detail)
        .set_hint("Wait for reservations to settle or expire, lower the estimate, raise the budget, or turn on the override.")
        .report(PgLogLevel::ERROR);
    }
    let id = spi_opt(Spi::get_one_with_args::<i64>(
        "INSERT INTO neon_budget.reservation (month, campaign_id, agent_type, estimated_tokens, estimated_cost, expires_at, created_by)
         VALUES ($1, $2, $3, $4, $5, pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+) $6, $7)
         RETURNING id",
        &[
            month.as_str().into(),
            campaign_id.into(),
            agent_type.into(),
            estimated_tokens.into(),
            estimate.into(),
            ttl.into(),
            crate::pg::owner::caller_name().into(),
        ],
    ));
    // The row is in the table (and the index) now: the next decision's dirty read counts it.
    crate::pg::locks::release(&lock);
    if state.expired_reservations {
        // Expired reservations no longer count; remove those nobody is settling right now.
        spi(Spi::run_with_args(
            "DELETE FROM neon_budget.reservation d WHERE d.id IN (
                SELECT r.id FROM neon_budget.reservation r
                 WHERE r.month OPERATOR(pg_catalog.=) $1 AND r.expires_at OPERATOR(pg_catalog.<=) pg_catalog.clock_timestamp()
                   FOR UPDATE SKIP LOCKED)",
            &[month.as_str().into()],
        ));
    }
    id
}

/// `budget_release`: [`settle`] by another name.
pub fn release(reservation_id: i64) -> bool {
    settle(reservation_id)
}

/// Removes a reservation (settled by track_cost or released); true when it was live. Only the
/// role that made it ([`crate::pg::owner::caller`] at `budget_reserve`), a member of
/// `neon_budget_admin` or a superuser may: anyone else gets 42501 and nothing changes.
pub fn settle(reservation_id: i64) -> bool {
    // One statement: a refusal below raises an error, whose rollback puts the row back.
    let row: Option<(Option<String>, Option<bool>)> = spi(Spi::connect_mut(|client| {
        let t = client.update(
            "DELETE FROM neon_budget.reservation r WHERE r.id OPERATOR(pg_catalog.=) $1
             RETURNING r.created_by, r.expires_at OPERATOR(pg_catalog.>) pg_catalog.clock_timestamp()",
            None,
            &[reservation_id.into()],
        )?;
        if t.is_empty() {
            return Ok(None);
        }
        let first = t.first();
        Ok(Some((first.get(1)?, first.get(2)?)))
    }));
    let Some((made_by, live)) = row else {
        return false;
    };
    if made_by.as_deref() != Some(crate::pg::owner::caller_name().as_str()) && !crate::pg::owner::caller_is_admin() {
        raise(
            Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("reservation {reservation_id} was made by another role"),
            "Only the role that made a reservation, or a member of neon_budget_admin, may settle or release it.",
        );
    }
    live.unwrap_or(false)
}
