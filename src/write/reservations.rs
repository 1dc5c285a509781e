//! Reservations (pre-authorization): hard caps that concurrency cannot break.
//!
//! `budget_check` followed by `track_cost` lets N agents that all checked at 99% spend past the
//! cap together. `budget_reserve` instead holds the estimated cost against the month's and the
//! campaign's budget. `track_cost(reservation_id => id)` settles a reservation (the actual cost
//! replaces the estimate, atomically, in the same transaction), `budget_release(id)` cancels
//! it, and an expired reservation stops counting at once, without any job.
//!
//! How concurrent reservations never jointly pass a budget, without queueing on each other's
//! transactions. Every decision counts committed spend plus every live reservation that a
//! transaction may still commit: the reservation table is read with PostgreSQL's dirty snapshot
//! (`write/state.rs`), which sees the rows of transactions still in progress. A reservation is
//! decided in one of two ways, under a per-month advisory lock held only while it is decided
//! (tens of µs), never until its transaction ends:
//!
//! 1. **Alongside the others** (the lock in SHARE mode, which any number of deciders hold at
//!    once): the reservation is written first, in a subtransaction, and then the state is read
//!    with it counted. If it fits, it is kept. Safe without any mutual exclusion: of any set of
//!    reservations admitted this way, the last one to read the state read after all the others
//!    were written, so it counted them all, and it fit.
//! 2. **Alone**, when it did not fit alongside (the subtransaction is rolled back, so its row is
//!    dead at once): the lock in EXCLUSIVE mode waits until no decision of kind 1 is in flight,
//!    so the state it reads holds only reservations already admitted. The decision is exact:
//!    near the cap, a reservation is refused only when it really does not fit.
//!
//! A reservation left in an open transaction holds its estimate but blocks no one. When that
//! transaction rolls back, or its backend exits or crashes, its row is dead and its estimate is
//! free again, with no job and no cleanup.
use crate::error::{raise, spi, spi_opt, Code};
use crate::gucs;
use crate::money;
use crate::month;
use crate::pg::plans::{self, oid};
use crate::rates::rate_now;
use crate::write::state::State;
use pgrx::datetime::Interval;
use pgrx::prelude::*;
use pgrx::{AnyNumeric, PgOid};

/// Writes a reservation (`$1` month, `$2` campaign, `$3` agent type, `$4` tokens, `$5` dollars,
/// `$6` ttl, `$7` the role that made it) and returns its id. Kept prepared per backend.
const INSERT_RESERVATION: &str = "INSERT INTO neon_budget.reservation
        (month, campaign_id, agent_type, estimated_tokens, estimated_cost, expires_at, created_by)
     VALUES ($1, $2, $3, $4, $5, pg_catalog.clock_timestamp() OPERATOR(pg_catalog.+) $6, $7)
     RETURNING id";

/// Removes reservation `$1`, returning who made it and whether it was still live.
const DELETE_RESERVATION: &str = "DELETE FROM neon_budget.reservation r WHERE r.id OPERATOR(pg_catalog.=) $1
     RETURNING r.created_by, r.expires_at OPERATOR(pg_catalog.>) pg_catalog.clock_timestamp()";

/// Whether `ttl` is longer than zero, as PostgreSQL compares intervals (`interval_cmp_value`:
/// a month counts 30 days, a day 24 hours).
fn is_positive(ttl: &Interval) -> bool {
    let micros = i128::from(ttl.months()) * 30 * 86_400_000_000 + i128::from(ttl.days()) * 86_400_000_000 + i128::from(ttl.micros());
    micros > 0
}

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
    if !is_positive(&ttl) {
        raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            "ttl must be a positive interval",
            "Pass how long the reservation may wait for its execution, e.g. '15 minutes'.",
        );
    }
    let rate = rate_now(agent_type);
    if !gucs::enabled() {
        return None;
    }
    // Blocked decisions counted earlier by this backend (write/blocked.rs).
    super::blocked::flush();
    if unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32 {
        raise(
            Code::ERRCODE_FEATURE_NOT_SUPPORTED,
            "budget_reserve needs a READ COMMITTED transaction",
            "Reserve in its own READ COMMITTED transaction (the default isolation level), before the work.",
        );
    }
    let estimate = estimated_cost.unwrap_or_else(|| money::cost_for_tokens(estimated_tokens, rate));
    let month = month::current_month();
    let lock = month_lock(&month);
    let new = Reservation { month: &month, campaign_id, agent_type, estimated_tokens, estimate: &estimate, ttl: &ttl };

    // 1. Alongside the others (SHARE): written first, then checked with it counted.
    crate::pg::locks::wait_mode(&lock, pg_sys::ShareLock);
    let admitted = in_subtransaction(|| {
        let id = new.insert();
        let mut state = State::read(&month, campaign_id);
        state.exclude_own(&estimate, campaign_id.is_some());
        let fits = state.override_enabled || !state.blocks(&estimate);
        (fits, (id, state.expired_reservations, state.month_known))
    });
    crate::pg::locks::release_mode(&lock, pg_sys::ShareLock);

    let (id, expired, month_known) = match admitted {
        Some(admitted) => admitted,
        None => {
            // 2. Alone (EXCLUSIVE): no other decision is in flight, so the state is exact.
            crate::pg::locks::wait_mode(&lock, pg_sys::ExclusiveLock);
            let state = State::read(&month, campaign_id);
            if !state.override_enabled && state.blocks(&estimate) {
                // Counted now, written by a later call: this refusal rolls its transaction back.
                super::blocked::count(super::blocked::Decision::BudgetReserve, &state.refusals(campaign_id, &estimate), false);
                refuse(&month, campaign_id, &estimate, &state);
            }
            let id = new.insert();
            crate::pg::locks::release_mode(&lock, pg_sys::ExclusiveLock);
            (id, state.expired_reservations, state.month_known)
        }
    };
    if !month_known {
        // The month's first use: its settings row, with the budget and threshold the decision
        // used (the GUCs'); after the lock, since it may wait for another transaction's insert.
        crate::settings::ensure_month(&month);
    }
    if expired {
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

/// A reservation to write: month (`YYYY-MM`), campaign, agent type, tokens, estimate (dollars)
/// and ttl.
struct Reservation<'a> {
    month: &'a str,
    campaign_id: Option<&'a str>,
    agent_type: &'a str,
    estimated_tokens: i64,
    estimate: &'a AnyNumeric,
    ttl: &'a Interval,
}

impl Reservation<'_> {
    /// Inserts the row (held from now on, by every later decision's dirty read); its id.
    fn insert(&self) -> Option<i64> {
        Spi::connect_mut(|client| {
            let insert = plans::plan(
                client,
                INSERT_RESERVATION,
                &[oid::TEXT, oid::TEXT, oid::TEXT, oid::INT8, oid::NUMERIC, PgOid::BuiltIn(pg_sys::BuiltinOid::INTERVALOID), oid::TEXT],
            );
            spi_opt(
                client
                    .update(
                        &*insert,
                        None,
                        &[
                            self.month.into(),
                            self.campaign_id.into(),
                            self.agent_type.into(),
                            self.estimated_tokens.into(),
                            self.estimate.clone().into(),
                            (*self.ttl).into(),
                            crate::pg::owner::caller_name().into(),
                        ],
                    )
                    .and_then(|t| t.first().get_one::<i64>()),
            )
        })
    }
}

/// Runs `f` in a subtransaction (as PL/pgSQL runs a block with an EXCEPTION clause): kept when
/// `f` says so (`(true, value)`: returns the value), rolled back otherwise (None), which makes
/// the rows it wrote dead at once, for every other session too. An error inside propagates and
/// aborts the whole transaction.
fn in_subtransaction<T>(f: impl FnOnce() -> (bool, T)) -> Option<T> {
    unsafe {
        let context = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(context);
        let (keep, value) = f();
        if keep {
            pg_sys::ReleaseCurrentSubTransaction();
        } else {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
        }
        pg_sys::MemoryContextSwitchTo(context);
        pg_sys::CurrentResourceOwner = owner;
        keep.then_some(value)
    }
}

/// Raises 53000 for an estimate that does not fit, with the figures of `state`.
fn refuse(month: &str, campaign_id: Option<&str>, estimate: &AnyNumeric, state: &State) -> ! {
    let m = &state.month_scope;
    let mut detail = format!(
        "month {month}: budget {}, spent {}, reserved {}; estimate {}",
        money::dollars(&m.budget, 2),
        money::dollars(&m.spent, 2),
        money::dollars(&m.reserved, 2),
        money::dollars(estimate, 4)
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
    unreachable!("ERROR does not return")
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
        let delete = plans::plan(client, DELETE_RESERVATION, &[oid::INT8]);
        let t = client.update(&*delete, None, &[reservation_id.into()])?;
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
