//! Agent rates: the price of 1,000 tokens of an agent type, in dollars (`agent_rate`), read
//! with SQL and cached per backend until a change to `agent_rate` is committed.
use crate::error::{raise, spi_opt, Code};
use crate::pg::cache::{self, Cache, Follows, Num, Text};
use crate::pg::plans::{self, oid};
use pgrx::prelude::*;
use pgrx::AnyNumeric;

thread_local! {
    /// Current rates by agent type (any change to `agent_rate` invalidates them).
    static RATES: std::cell::RefCell<Cache<Text, Num>> = std::cell::RefCell::new(Cache::new(Follows::Settings, cache::PER_AGENT_TYPE));
}

/// The current rate of `agent_type` in dollars per 1,000 tokens, or SQLSTATE 42704
/// (undefined_object) when the agent type has no rate.
pub fn current_rate(agent_type: &str) -> AnyNumeric {
    let rate: Option<AnyNumeric> = Spi::connect(|client| {
        let p = plans::plan(client, SELECT_RATE, &[oid::TEXT]);
        spi_opt(client.select(&*p, None, &[agent_type.into()]).and_then(|t| t.first().get_one()))
    });
    rate.unwrap_or_else(|| {
        raise(
            Code::ERRCODE_UNDEFINED_OBJECT,
            format!("unknown agent type \"{agent_type}\""),
            "Give it a rate first: SELECT neon_budget.set_agent_rate('MY_AGENT', 0.04);",
        )
    })
}

const SELECT_RATE: &str = "SELECT r.cost_per_1k_tokens FROM neon_budget.agent_rate r
  WHERE r.agent_type OPERATOR(pg_catalog.=) $1
  ORDER BY r.effective_from DESC LIMIT 1";

/// The current rate of `agent_type` (as [`current_rate`]), from this backend's cache when no
/// change to `agent_rate` was committed since it was read.
pub fn cached_rate(agent_type: &str) -> AnyNumeric {
    // Registers which relations' invalidations count (again after DROP and CREATE EXTENSION).
    crate::pg::backend_cache::watched();
    let generation = crate::pg::backend_cache::generation();
    if let Some(rate) = RATES.with(|r| r.borrow_mut().get(agent_type).map(Num::get)) {
        return rate;
    }
    let rate = current_rate(agent_type);
    // Only if no invalidation arrived while reading it.
    if crate::pg::backend_cache::generation() == generation {
        RATES.with(|r| r.borrow_mut().insert(Text::new(agent_type), Num::new(&rate)));
    }
    rate
}
