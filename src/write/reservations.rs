//! Reservations (pre-authorization): hard caps that concurrency cannot break.
//!
//! `budget_check` followed by `track_cost` lets N agents that all checked at 99% spend past the
//! cap together. `budget_reserve` instead holds the estimated cost against the month's and the
//! campaign's budget; reservations of one month are decided one at a time (a transaction-level
//! advisory lock per month), each against committed spend plus live reservations, so
//! concurrent reservations can never jointly pass a budget. `track_cost(reservation_id => id)`
//! settles a reservation (the actual cost replaces the estimate, atomically, in the same
//! transaction), `budget_release(id)` cancels it, and an expired reservation stops counting at
//! once, without any job.
use crate::error::{raise, spi, spi_opt, Code};
use crate::gucs;
use crate::money;
use crate::month;
use crate::rates::cached_rate;
use crate::write::state::State;
use pgrx::datetime::Interval;
use pgrx::prelude::*;
use pgrx::AnyNumeric;

/// Takes the transaction-level advisory lock that serializes reservations of `month`.
/// Waits like any lock (and so respects `lock_timeout`).
fn lock_month(month: &str) {
    crate::pg::locks::wait_xact(crate::pg::locks::Class::Reservations, &format!("neon_budget.month:{month}"));
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
    lock_month(&month);
    // Read after the lock: every reservation committed before it was granted is visible now.
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
    // Expired reservations of this month no longer count; remove them while holding the lock.
    spi(Spi::run_with_args(
        "DELETE FROM neon_budget.reservation r
          WHERE r.month OPERATOR(pg_catalog.=) $1 AND r.expires_at OPERATOR(pg_catalog.<=) pg_catalog.clock_timestamp()",
        &[month.as_str().into()],
    ));
    spi_opt(Spi::get_one_with_args::<i64>(
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
    ))
}

/// `budget_release`: [`settle`] by another name.
pub fn release(reservation_id: i64) -> bool {
    settle(reservation_id)
}

/// Removes a reservation (settled by track_cost or released); true when it was live. Only the
/// role that made it ([`crate::pg::owner::caller`] at `budget_reserve`), a member of
/// `neon_budget_admin` or a superuser may: anyone else gets 42501 and nothing changes.
pub fn settle(reservation_id: i64) -> bool {
    let row: Option<(Option<String>, Option<bool>)> = spi(Spi::connect_mut(|client| {
        let t = client.update(
            "SELECT r.created_by, r.expires_at OPERATOR(pg_catalog.>) pg_catalog.clock_timestamp()
               FROM neon_budget.reservation r WHERE r.id OPERATOR(pg_catalog.=) $1 FOR UPDATE",
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
    spi(Spi::run_with_args("DELETE FROM neon_budget.reservation r WHERE r.id OPERATOR(pg_catalog.=) $1", &[reservation_id.into()]));
    live.unwrap_or(false)
}
