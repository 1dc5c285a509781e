//! Rules every entry path applies to what a caller sends: identifier lengths and the time window
//! of `created_at`. `track_cost`, `budget_check`, `budget_reserve`, the admin setters and the
//! BEFORE INSERT trigger of `billing_log` (direct INSERT and COPY) all call these, so each path
//! refuses the same input with the same SQLSTATE and hint.
use crate::error::{raise, Code};
use crate::gucs;
use pgrx::prelude::*;

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
