//! Model prices (issue #13, part 2): what providers publish, per model, in dollars per
//! 1,000,000 input, output and cached-input tokens, as a history (`model_price`: one row per
//! model and `effective_from`), like the agent rates (`crate::rates`). The price **in force at**
//! an instant is the row with the latest `effective_from` at or before it. A row that names a
//! model with a price in force at its `created_at` costs the exact sum of its three parts:
//!
//! `cost = (input_tokens × input_per_1m + output_tokens × output_per_1m + cached_tokens ×
//! cached_input_per_1m) / 1,000,000`
//!
//! where `input_tokens` are the input tokens not read from the provider's cache and
//! `cached_tokens` those that were (OpenAI's usage reports `prompt_tokens` including
//! `cached_tokens`; Anthropic's reports them apart: record the uncached input as
//! `input_tokens`). Any other row keeps the agent type's rate, the seed's default.
//!
//! Histories are read with the latest snapshot through the primary key and cached per backend
//! until a change to `model_price` is committed (its rows' triggers send the settings
//! invalidation, as `agent_rate`'s do).
//!
//! # Still to do (issue #13, part 2)
//! Re-pricing rows priced by a model after a price correction (`reprice_billing_log` handles
//! agent rates only); a per-model aggregate (`_model_spend`: model, month, slot; cost, tokens,
//! the three parts, executions) with its purged sums, view and report sections (Markdown,
//! JSON, CSV); the demo's dated example price table.
use crate::pg::cache::{self, Cache, CacheAlloc, Follows, Num, Text};
use crate::pg::table_scan::{scan_text_eq, Snapshot};
use pgrx::prelude::*;
use pgrx::AnyNumeric;

/// One model price: dollars per 1,000,000 input, output and cached-input tokens.
#[derive(Debug, Clone)]
pub struct Price {
    pub input_per_1m: AnyNumeric,
    pub output_per_1m: AnyNumeric,
    pub cached_input_per_1m: AnyNumeric,
}

/// The tokens of one execution in three parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts {
    /// Input tokens not read from the provider's cache.
    pub input: i64,
    pub output: i64,
    /// Input tokens read from the provider's cache.
    pub cached: i64,
}

impl Parts {
    /// Their total, the row's `tokens` (None on overflow).
    pub fn total(&self) -> Option<i64> {
        self.input.checked_add(self.output)?.checked_add(self.cached)
    }
}

thread_local! {
    /// 1,000,000, parsed once per backend.
    static MILLION: AnyNumeric = AnyNumeric::from(1_000_000);
}

/// The exact cost in dollars of `parts` at `price` (see the module docs), trailing zeros of the
/// scale dropped.
pub fn cost_of(parts: &Parts, price: &Price) -> AnyNumeric {
    let sum = AnyNumeric::from(parts.input) * price.input_per_1m.clone()
        + AnyNumeric::from(parts.output) * price.output_per_1m.clone()
        + AnyNumeric::from(parts.cached) * price.cached_input_per_1m.clone();
    crate::money::trim_scale(sum / MILLION.with(|m| m.clone()))
}

/// The price of a model in force at an instant, and since when (its `effective_from`, kept in
/// `billing_log.model_price_from`).
#[derive(Debug, Clone)]
pub struct InForce {
    pub price: Price,
    pub effective_from: TimestampWithTimeZone,
}

/// The token parts of a row from its arguments or columns: `input`, `output` and `cached`
/// given together (one left out counts 0 when another is given), checked against `tokens`.
/// Returns the row's `tokens` (their total when `tokens` is None) and the parts (None when no
/// part was given).
///
/// Errors: 22003 for a negative part or a total past bigint; 22023 for `tokens` that is not
/// the parts' total; 22004 for no `tokens` and no part.
pub fn resolve_tokens(tokens: Option<i64>, input: Option<i64>, output: Option<i64>, cached: Option<i64>) -> (i64, Option<Parts>) {
    use crate::error::{raise, Code};
    if input.is_none() && output.is_none() && cached.is_none() {
        return (crate::validation::required("tokens", tokens), None);
    }
    for (name, v) in [("input_tokens", input), ("output_tokens", output), ("cached_tokens", cached)] {
        if let Some(v) = v.filter(|v| *v < 0) {
            raise(Code::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE, format!("{name} must not be negative, not {v}"), "Token counts are 0 or more.");
        }
    }
    let parts = Parts { input: input.unwrap_or(0), output: output.unwrap_or(0), cached: cached.unwrap_or(0) };
    let Some(total) = parts.total() else {
        raise(
            Code::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
            "input_tokens + output_tokens + cached_tokens is out of range for bigint",
            "Pass real token counts.",
        )
    };
    match tokens {
        Some(t) if t != total => raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "tokens {t} is not input_tokens + output_tokens + cached_tokens ({} + {} + {} = {total})",
                parts.input, parts.output, parts.cached
            ),
            "Leave tokens out (NULL) when you pass the parts: it is their total.",
        ),
        _ => (total, Some(parts)),
    }
}

/// One model's prices, oldest first: `effective_from` (microseconds since 2000-01-01 UTC) and
/// the three prices.
pub struct History(allocator_api2::vec::Vec<(pg_sys::TimestampTz, [Num; 3]), CacheAlloc>);

impl History {
    fn entry(&self, i: usize) -> InForce {
        let (from, [a, b, c]) = &self.0[i];
        InForce {
            price: Price { input_per_1m: a.get(), output_per_1m: b.get(), cached_input_per_1m: c.get() },
            effective_from: TimestampWithTimeZone::try_from(*from).expect("a stored timestamptz"),
        }
    }

    fn at(&self, at: pg_sys::TimestampTz) -> Option<InForce> {
        let after = self.0.partition_point(|(from, _)| *from <= at);
        after.checked_sub(1).map(|i| self.entry(i))
    }

    fn exactly(&self, from: pg_sys::TimestampTz) -> Option<InForce> {
        self.0.iter().position(|(f, _)| *f == from).map(|i| self.entry(i))
    }
}

thread_local! {
    static PRICES: std::cell::RefCell<Cache<Text, History>> = std::cell::RefCell::new(Cache::new(Follows::Settings, cache::PER_AGENT_TYPE));
}

fn read_history(model: &str) -> History {
    let mut v = allocator_api2::vec::Vec::new_in(CacheAlloc);
    let snapshot = Snapshot::latest();
    scan_text_eq(&snapshot, c"model_price", c"model_price_pkey", &[("model", model)], |row| {
        let from: TimestampWithTimeZone = row.get("effective_from").expect("model_price.effective_from is NOT NULL");
        let get = |c: &'static str| -> AnyNumeric { row.get(c).expect("model_price prices are NOT NULL") };
        v.push((
            pg_sys::TimestampTz::from(from),
            [Num::new(&get("input_per_1m")), Num::new(&get("output_per_1m")), Num::new(&get("cached_input_per_1m"))],
        ));
    });
    History(v)
}

fn with_history<R>(model: &str, f: impl Fn(&History) -> R) -> R {
    unsafe { pg_sys::AcceptInvalidationMessages() };
    crate::pg::backend_cache::watched();
    let generation = crate::pg::backend_cache::generation();
    if let Some(found) = PRICES.with(|p| p.borrow_mut().get(model).map(&f)) {
        return found;
    }
    let history = read_history(model);
    let found = f(&history);
    if crate::pg::backend_cache::generation() == generation {
        PRICES.with(|p| p.borrow_mut().insert(Text::new(model), history));
    }
    found
}

/// The price of `model` in force at `at`; None when the model has none then (the agent type's
/// rate applies).
pub fn in_force(model: &str, at: TimestampWithTimeZone) -> Option<InForce> {
    let at = pg_sys::TimestampTz::from(at);
    with_history(model, |h| h.at(at))
}

/// The price of `model` that took effect at exactly `effective_from`, if there is one.
pub fn price_from(model: &str, effective_from: TimestampWithTimeZone) -> Option<InForce> {
    let from = pg_sys::TimestampTz::from(effective_from);
    with_history(model, |h| h.exactly(from))
}

/// Requires parts for a row priced by a model (22023 otherwise).
pub fn require_parts(model: &str, parts: Option<Parts>) -> Parts {
    parts.unwrap_or_else(|| {
        crate::error::raise(
            crate::error::Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("model \"{model}\" is priced per part: input_tokens, output_tokens and cached_tokens are needed"),
            "Pass the token parts the provider reported (input_tokens not cached, output_tokens, cached_tokens), or a cost.",
        )
    })
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;

    fn n(s: &str) -> AnyNumeric {
        AnyNumeric::try_from(s).unwrap()
    }

    /// A three-part cost, exact: 1,200 input at $2.50, 300 output at $10.00 and 800 cached at
    /// $1.25 per 1M tokens = (3000 + 3000 + 1000) / 1,000,000 = $0.007.
    #[pg_test]
    fn a_three_part_cost() {
        let price = Price { input_per_1m: n("2.50"), output_per_1m: n("10.00"), cached_input_per_1m: n("1.25") };
        let parts = Parts { input: 1200, output: 300, cached: 800 };
        assert_eq!(cost_of(&parts, &price).to_string(), "0.007");
        assert_eq!(parts.total(), Some(2300));
        assert_eq!(Parts { input: i64::MAX, output: 1, cached: 0 }.total(), None);
        // One token of each at prices with many decimals stays exact.
        let odd = Price { input_per_1m: n("0.15"), output_per_1m: n("0.6"), cached_input_per_1m: n("0.075") };
        assert_eq!(cost_of(&Parts { input: 1, output: 1, cached: 1 }, &odd).to_string(), "0.000000825");
    }
}
