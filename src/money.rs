//! Cost arithmetic and money formatting. Money is PostgreSQL `numeric` end to end
//! ([`AnyNumeric`]); nothing here goes through a float.
use pgrx::prelude::*;
use pgrx::AnyNumeric;

/// Cost in dollars of `tokens` tokens at `rate_per_1k` dollars per 1,000 tokens:
/// `tokens × rate × 0.001`, exact (numeric multiplication never rounds).
/// Source of the rule: the seed's "Cost Constants" (agent cost rates per 1K tokens).
pub fn cost_for_tokens(tokens: i64, rate_per_1k: AnyNumeric) -> AnyNumeric {
    let per_token = PER_TOKEN.with(|p| p.clone());
    trim_scale(AnyNumeric::from(tokens) * rate_per_1k * per_token)
}

thread_local! {
    /// 0.001 (1 / 1,000 tokens), parsed once per backend.
    static PER_TOKEN: AnyNumeric = AnyNumeric::try_from("0.001").expect("0.001 is a valid numeric");
}

/// Drops trailing zeros after the decimal point (PostgreSQL's `trim_scale(numeric)`); the value
/// is unchanged.
pub fn trim_scale(n: AnyNumeric) -> AnyNumeric {
    unsafe { pgrx::direct_function_call::<AnyNumeric>(pg_sys::numeric_trim_scale, &[n.into_datum()]) }
        .expect("trim_scale of a non-NULL numeric is not NULL")
}

/// Whether `n` is a finite number (not NaN, Infinity or -Infinity, which PostgreSQL 14+
/// numeric can hold but no amount of money is).
pub fn is_finite(n: &AnyNumeric) -> bool {
    !n.is_nan() && !n.to_string().contains("Infinity")
}

/// Rounds `n` to `scale` decimal places, half away from zero (PostgreSQL's `round(numeric, int)`).
pub fn round(n: AnyNumeric, scale: i32) -> AnyNumeric {
    unsafe { pgrx::direct_function_call::<AnyNumeric>(pg_sys::numeric_round, &[n.into_datum(), scale.into_datum()]) }
        .expect("round(numeric, int) of a non-NULL numeric is not NULL")
}

/// Inserts thousands separators into a plain decimal string ([`neon_budget_common::money`]).
pub use neon_budget_common::money::group_thousands;

/// Formats dollars as in the seed's report: `$1,000.00`, `-$12.50`, with `decimals` places,
/// rounded half away from zero ([`neon_budget_common::money::dollars`] of the exact text).
pub fn dollars(n: &AnyNumeric, decimals: i32) -> String {
    neon_budget_common::money::dollars(&n.to_string(), decimals.max(0) as usize)
}

/// Formats a percentage with one decimal: `44.6%`.
pub fn percent(n: &AnyNumeric) -> String {
    neon_budget_common::money::percent(&n.to_string())
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::*;

    fn n(s: &str) -> AnyNumeric {
        AnyNumeric::try_from(s).unwrap()
    }

    #[pg_test]
    fn seed_sample_cost_is_exact() {
        // The seed's sample report: 2,230,750 CONTENT tokens at $0.04 / 1K = $89.23.
        assert_eq!(cost_for_tokens(2_230_750, n("0.04")), n("89.23"));
        assert_eq!(cost_for_tokens(418, n("0.04")).to_string(), "0.01672");
        assert_eq!(cost_for_tokens(0, n("0.07")), n("0"));
        // Near 2^63 tokens: still exact.
        assert_eq!(cost_for_tokens(i64::MAX, n("0.05")).to_string(), "461168601842738.79035");
    }

    #[pg_test]
    fn formatting() {
        assert_eq!(dollars(&n("1000"), 2), "$1,000.00");
        assert_eq!(dollars(&n("89.23"), 2), "$89.23");
        assert_eq!(dollars(&n("0.571987"), 4), "$0.5720");
        assert_eq!(dollars(&n("-12.5"), 2), "-$12.50");
        assert_eq!(dollars(&n("1234567.005"), 2), "$1,234,567.01");
        assert_eq!(group_thousands("2230750"), "2,230,750");
        assert_eq!(group_thousands("999"), "999");
        assert_eq!(percent(&n("44.615")), "44.6%");
    }
}
