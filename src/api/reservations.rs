//! Hard caps: `budget_reserve` and `budget_release`. Argument checks here; the reservations in
//! [`crate::write::reservations`].
use crate::validation;
use crate::write::reservations;
use pgrx::datetime::Interval;
use pgrx::prelude::*;
use pgrx::AnyNumeric;

/// `budget_reserve(agent_type text, estimated_tokens bigint, campaign_id text DEFAULT NULL,
/// ttl interval DEFAULT '15 minutes', estimated_cost numeric DEFAULT NULL) -> bigint`
///
/// Reserves the estimated cost of an execution against the current month's budget and, when
/// given, the campaign's, and returns the reservation id; pass it to
/// `track_cost(..., reservation_id => id)` to settle it, or to `budget_release(id)` to cancel.
/// The estimate is `estimated_cost` (dollars) when given, else `estimated_tokens` at the agent
/// type's current rate. The reservation stops counting `ttl` after it was made.
/// Refused when committed spend plus live reservations plus this estimate would pass the
/// month's or the campaign's budget (or has reached it), unless the override is on. The
/// reservations of a month are decided one at a time under a lock held only while one is
/// decided and written (tens of µs, not until commit); each decision counts every live
/// reservation, including those of transactions still open, so concurrent reservations never
/// jointly pass a budget and a reservation in an open transaction blocks no one. Its estimate
/// comes back when its transaction rolls back or its backend exits or crashes. Returns
/// NULL and holds nothing when `neon_budget.enabled` is off.
///
/// Errors: 53000 (insufficient_resources) when the budget cannot cover the estimate, with the
/// figures in the detail; 22004 NULL agent_type or estimated_tokens; 22003 negative tokens or
/// cost; 22023 a ttl that is not positive, or an empty campaign_id;
/// 42704 unknown agent type; 22001 a campaign_id over 200 characters or an agent_type over 100;
/// 0A000 inside a REPEATABLE READ or SERIALIZABLE transaction (its snapshot could not see
/// reservations committed while it waited).
#[pg_extern(volatile, parallel_unsafe)]
fn budget_reserve(
    agent_type: Option<&str>,
    estimated_tokens: Option<i64>,
    campaign_id: default!(Option<&str>, "NULL"),
    ttl: default!(Option<Interval>, "'15 minutes'"),
    estimated_cost: default!(Option<AnyNumeric>, "NULL"),
) -> Option<i64> {
    crate::error::require_writable("budget_reserve()");
    crate::pg::schema_version::require_current();
    let agent_type = validation::required("agent_type", agent_type);
    let estimated_tokens = validation::required("estimated_tokens", estimated_tokens);
    validation::require_estimate("estimated_tokens", estimated_tokens < 0, estimated_tokens);
    if let Some(c) = &estimated_cost {
        validation::require_estimate("estimated_cost", !crate::money::is_finite(c) || *c < AnyNumeric::from(0), c);
    }
    validation::require_keys(campaign_id, Some(agent_type));
    validation::require_execution_campaign(campaign_id);
    let ttl = ttl.unwrap_or_else(|| Interval::new(0, 0, 15 * 60 * 1_000_000).expect("15 minutes"));
    reservations::reserve(agent_type, estimated_tokens, campaign_id, ttl, estimated_cost)
}

/// `budget_release(reservation_id bigint) -> boolean`: cancels a reservation; true when it was
/// live (held budget), false when it was unknown, settled, released or expired.
///
/// Errors: 42501 when the reservation was made by another role and the caller is not a member
/// of `neon_budget_admin` (nothing is released).
#[pg_extern(volatile, parallel_unsafe)]
fn budget_release(reservation_id: i64) -> bool {
    crate::error::require_writable("budget_release()");
    crate::pg::schema_version::require_current();
    reservations::release(reservation_id)
}
