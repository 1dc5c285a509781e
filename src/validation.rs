//! Every rule about what a caller sends (the `require_*` functions) and the error each raises:
//! NULLs (22004), numbers out of range (22003), invalid values (22023), identifier lengths
//! (22001), billing months (22007) and the time window of `created_at` (22008).
//! `track_cost`, `budget_check`, `budget_reserve`, the admin setters and the BEFORE INSERT
//! trigger of `billing_log` (direct INSERT and COPY) all call these, so each path refuses the
//! same input with the same SQLSTATE and hint.
use crate::error::{raise, Code};
use crate::gucs;
use pgrx::prelude::*;
use pgrx::AnyNumeric;

/// Raises 22004 (null_value_not_allowed) when a required argument is NULL.
pub fn required<T>(arg: &str, value: Option<T>) -> T {
    value.unwrap_or_else(|| {
        raise(Code::ERRCODE_NULL_VALUE_NOT_ALLOWED, format!("{arg} must not be NULL"), format!("Pass a value for {arg}."))
    })
}

/// Returns `text` when it is a valid billing month (`crate::month::is_valid_month`), else raises SQLSTATE 22007
/// (invalid_datetime_format) naming the argument.
pub fn require_month(arg: &str, text: &str) -> String {
    if crate::month::is_valid_month(text) {
        text.to_string()
    } else {
        raise(
            Code::ERRCODE_INVALID_DATETIME_FORMAT,
            format!("invalid {arg} \"{text}\": a billing month is written YYYY-MM"),
            "Use a four-digit year and a two-digit month from 01 to 12, e.g. '2024-01'.",
        )
    }
}

/// Raises 22003 when a score (`impact_score`, `quality_score`) is outside 0..1.
pub fn require_score(arg: &str, value: Option<f64>) {
    if let Some(v) = value {
        if !(0.0..=1.0).contains(&v) {
            raise(
                Code::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
                format!("{arg} must be between 0 and 1, not {v}"),
                format!("{arg} is a fraction: 0 is worst, 1 is best."),
            );
        }
    }
}

/// Raises 22003 when `negative`: a count of what an execution used (`tokens`, `cost`,
/// `retry_count`, `execution_time_ms`) below zero, shown as `shown`.
pub fn require_non_negative(arg: &str, negative: bool, shown: impl std::fmt::Display) {
    if negative {
        raise(
            Code::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
            format!("{arg} must not be negative, not {shown}"),
            format!("{arg} counts what an execution used; record a correction by UPDATE of billing_log as an admin."),
        );
    }
}

/// Raises 22003 when `negative`: an estimate (`estimated_tokens`, `estimated_cost`) below zero.
pub fn require_estimate(arg: &str, negative: bool, shown: impl std::fmt::Display) {
    if negative {
        raise(
            Code::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
            format!("{arg} must not be negative, not {shown}"),
            format!("{arg} is what the execution is expected to use."),
        );
    }
}

/// Raises 22003 for a `cost` that is not a finite, non-negative dollar amount.
pub fn require_cost(cost: &AnyNumeric) {
    if !crate::money::is_finite(cost) {
        raise(
            Code::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
            format!("cost must be a finite number of dollars, not {cost}"),
            "Pass the cost in dollars, e.g. 0.0123.",
        );
    }
    require_non_negative("cost", *cost < AnyNumeric::from(0), cost);
}

/// Raises 22023 for a budget (dollars) that is not finite and greater than zero.
pub fn require_positive_money(arg: &str, value: &AnyNumeric) {
    if !crate::money::is_finite(value) || *value <= AnyNumeric::from(0) {
        raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("{arg} must be a finite dollar amount greater than zero, not {value}"),
            "Budgets are in dollars, e.g. 1000 or 250.50; to remove a campaign's limit pass NULL.",
        );
    }
}

/// Raises 22023 for an alert threshold outside (0, 1].
pub fn require_threshold(value: &AnyNumeric) {
    if value.is_nan() || *value <= AnyNumeric::from(0) || *value > AnyNumeric::from(1) {
        raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("alert_threshold must be a fraction in (0,1], not {value}"),
            "Pass e.g. 0.8 to warn at 80% of the budget.",
        );
    }
}

/// Raises 22023 for a campaign id of an execution that is empty or blank (NULL means "no
/// campaign").
pub fn require_execution_campaign(campaign_id: Option<&str>) {
    if campaign_id.is_some_and(|id| id.trim().is_empty()) {
        raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            "campaign_id must not be empty or blank",
            "Pass NULL for an execution that belongs to no campaign.",
        );
    }
}

/// Checks a campaign id argument of an admin setter: 22004 NULL, 22023 empty or blank, 22001
/// too long.
pub fn require_campaign_id(campaign_id: Option<&str>) -> &str {
    let campaign_id = required("campaign_id", campaign_id);
    if campaign_id.trim().is_empty() {
        raise(Code::ERRCODE_INVALID_PARAMETER_VALUE, "campaign_id must not be empty", "Pass the id your agents send as campaign_id.");
    }
    require_length("campaign_id", campaign_id, MAX_ID_CHARS);
    campaign_id
}

/// Longest `campaign_id` and `execution_id`, in characters. Both are keys of btree indexes
/// (`billing_log_month_campaign_idx`, `campaign_pkey`, the slot tables, the `execution_id`
/// unique index), whose entries cannot exceed about 2,700 bytes (a third of a page); 200
/// characters are at most 800 bytes in UTF-8.
pub const MAX_ID_CHARS: usize = 200;
/// Longest `agent_type`, in characters (a key of `agent_rate` and `_agent_spend`).
pub const MAX_AGENT_TYPE_CHARS: usize = 100;
/// Longest campaign `name` and `campaign_type`, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest override `reason`, in characters.
pub const MAX_REASON_CHARS: usize = 1000;

/// Raises 22001 (string_data_right_truncation) when `value` has more than `max` characters.
pub fn require_length(arg: &str, value: &str, max: usize) {
    // A UTF-8 character is at least one byte: most values are decided without counting.
    if value.len() > max && value.chars().count() > max {
        raise(
            Code::ERRCODE_STRING_DATA_RIGHT_TRUNCATION,
            format!("{arg} is {} characters long; at most {max} are accepted", value.chars().count()),
            format!("Use a shorter {arg} (an id, not a description; put details in task or metadata)."),
        );
    }
}

/// [`require_length`] for an optional argument.
pub fn require_length_opt(arg: &str, value: Option<&str>, max: usize) {
    if let Some(v) = value {
        require_length(arg, v, max);
    }
}

/// `campaign_id` (≤ [`MAX_ID_CHARS`]) and `agent_type` (≤ [`MAX_AGENT_TYPE_CHARS`]) of a
/// call that names them.
pub fn require_keys(campaign_id: Option<&str>, agent_type: Option<&str>) {
    require_length_opt("campaign_id", campaign_id, MAX_ID_CHARS);
    require_length_opt("agent_type", agent_type, MAX_AGENT_TYPE_CHARS);
}

/// Raises 22008 (datetime_field_overflow) for a `created_at` that no billing month can take:
/// infinite, before the year 1 (a `YYYY` month cannot say BC), or further ahead of the server's
/// clock than `neon_budget.max_clock_skew` (seconds; default 300, -1 for no limit). The last catches epoch
/// milliseconds passed as seconds (`to_timestamp(1764460800000)` is in the year 57,900) and
/// typos such as `2999-01-01`, which would count in a month nobody checks.
pub fn require_created_at(ts: &TimestampWithTimeZone) {
    // 0001-01-01 00:00:00 UTC in microseconds since 2000-01-01 UTC (PostgreSQL's epoch):
    // 730119 days. Earlier instants are BC in UTC.
    const YEAR_1_UTC: i64 = -730_119 * 86_400 * 1_000_000;
    if ts.is_infinity() || ts.is_neg_infinity() || pg_sys::TimestampTz::from(*ts) < YEAR_1_UTC {
        raise(
            Code::ERRCODE_DATETIME_FIELD_OVERFLOW,
            format!("created_at {ts} has no billing month"),
            "Pass a finite time from the year 1 on, or leave created_at out for now().",
        );
    }
    let Some(skew) = gucs::max_clock_skew_seconds() else {
        return;
    };
    let now = unsafe { pg_sys::GetCurrentTimestamp() };
    let latest = now.saturating_add(skew.saturating_mul(1_000_000));
    if pg_sys::TimestampTz::from(*ts) > latest {
        raise(
            Code::ERRCODE_DATETIME_FIELD_OVERFLOW,
            format!("created_at {ts} is in the future"),
            format!(
                "created_at may be at most neon_budget.max_clock_skew ({skew} s) ahead of the server's clock. \
                 Epoch milliseconds passed as seconds give such times: divide by 1000, or leave created_at out for now()."
            ),
        );
    }
}

/// Raises 22023 for an empty or blank `agent_type`; `hint` says what to pass.
pub fn require_agent_type(agent_type: &str, hint: &str) {
    if agent_type.trim().is_empty() {
        raise(Code::ERRCODE_INVALID_PARAMETER_VALUE, "agent_type must not be empty", hint);
    }
}

/// Raises 22023 for a rate (dollars per 1,000 tokens) that is not a finite amount ≥ 0.
pub fn require_rate(rate: &AnyNumeric) {
    if !crate::money::is_finite(rate) || *rate < AnyNumeric::from(0) {
        raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("cost_per_1k_tokens must be zero or more dollars, not {rate}"),
            "Pass the price of 1,000 tokens in dollars, e.g. 0.04.",
        );
    }
}

/// Raises 22023 for a time of `name` that is `infinity` or `-infinity` (a rate takes effect at
/// a real instant).
pub fn require_finite_time(name: &str, ts: &TimestampWithTimeZone) {
    if ts.is_infinity() || ts.is_neg_infinity() {
        raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("{name} must be a finite time, not {ts}"),
            "Pass the instant the rate takes effect, e.g. '2026-01-01 00:00+00', or leave it out for now().",
        );
    }
}

/// Raises 22023 unless `since` is before `before` (a window `[since, before)` of `created_at`).
pub fn require_window(since: &TimestampWithTimeZone, before: &TimestampWithTimeZone) {
    if pg_sys::TimestampTz::from(*since) >= pg_sys::TimestampTz::from(*before) {
        raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("since ({since}) must be before before ({before})"),
            "Pass the window of created_at to re-price as [since, before), e.g. '2026-11-01', '2026-12-01'.",
        );
    }
}

/// Raises 22023 when the override is turned on without a reason, 22001 for a reason over
/// [`MAX_REASON_CHARS`].
pub fn require_override_reason(enabled: bool, reason: Option<&str>) {
    if enabled && reason.map(str::trim).unwrap_or("").is_empty() {
        raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            "turning the budget override on needs a reason",
            "Say why, e.g. set_budget_override(true, 'incident 42: investigating runaway agent').",
        );
    }
    require_length_opt("reason", reason, MAX_REASON_CHARS);
}
