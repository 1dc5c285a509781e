//! The `neon_budget.*` GUCs (the seed's environment variables). No other module touches the
//! statics; each has a typed getter that validates the setting.
//!
//! All are `SUSET`: only a superuser (or `ALTER SYSTEM` / `ALTER DATABASE ... SET` by one) can
//! change them, because each one can lift or move a budget.
use crate::error::{raise, Code};
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::AnyNumeric;
use pgrx::{pg_guard, pg_sys};
use std::ffi::CString;

/// `neon_budget.enabled` (default on): when off, `budget_check` always allows and `track_cost`
/// records nothing (the seed's `ENABLE_BUDGET_TRACKING=false`).
static ENABLED: GucSetting<bool> = GucSetting::<bool>::new(true);
/// `neon_budget.enable_override` (default off): the emergency override for every month
/// (the seed's `ENABLE_BUDGET_OVERRIDE`).
static ENABLE_OVERRIDE: GucSetting<bool> = GucSetting::<bool>::new(false);
/// `neon_budget.max_monthly_budget` (default `1000`, dollars): the budget a month gets when it
/// is first used (the seed's `MAX_MONTHLY_BUDGET`). A string so that it stays an exact decimal.
static MAX_MONTHLY_BUDGET: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"1000"));
/// `neon_budget.default_alert_threshold` (default `0.8`, a fraction in (0,1]): the warning level
/// a month gets when it is first used (the seed's `DEFAULT_ALERT_THRESHOLD`).
static DEFAULT_ALERT_THRESHOLD: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"0.8"));
/// `neon_budget.timezone` (default `UTC`): the zone whose calendar months are billing months.
static TIMEZONE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"UTC"));

/// `neon_budget.max_clock_skew` (default 300 seconds; -1 turns the check off): how far ahead of
/// the server's clock a recorded `created_at` may be (clients' clocks drift); later ones are
/// refused (22008).
static MAX_CLOCK_SKEW: GucSetting<i32> = GucSetting::<i32>::new(300);

/// `neon_budget.forecast_window_days` (default 7, 1..31): how many complete days before today the
/// month-end forecast's daily mean is taken over (src/forecast.rs).
static FORECAST_WINDOW_DAYS: GucSetting<i32> = GucSetting::<i32>::new(7);
/// `neon_budget.forecast_min_elapsed` (default 0.2, 0..1): the share of a month's days that must
/// be complete before it is forecast (src/forecast.rs); a share, not money.
static FORECAST_MIN_ELAPSED: GucSetting<f64> = GucSetting::<f64>::new(0.2);

/// `neon_budget.anomaly_detection` (default on): cost anomalies are looked for and alerted on
/// (src/anomaly/).
static ANOMALY_DETECTION: GucSetting<bool> = GucSetting::<bool>::new(true);
/// `neon_budget.anomaly_threshold` (default `6`): the robust score a day's spend must reach over
/// its baseline, `(x - median) / (1.4826 × MAD)` (src/anomaly/mod.rs). An exact decimal > 0.
static ANOMALY_THRESHOLD: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"6"));
/// `neon_budget.anomaly_min_increase` (default `1`): how far above its baseline median a day's
/// spend must be, as a fraction of that median (1: at least double). An exact decimal >= 0.
static ANOMALY_MIN_INCREASE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"1"));
/// `neon_budget.anomaly_min_dollars` (default `10`, dollars): how many dollars above its
/// baseline median a day's spend must be, so that small noise never alerts. >= 0.
static ANOMALY_MIN_DOLLARS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"10"));
/// `neon_budget.anomaly_execution_factor` (default `20`): how many times its agent type's mean
/// cost per execution one execution must cost to be an anomaly. An exact decimal > 0.
static ANOMALY_EXECUTION_FACTOR: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"20"));
/// `neon_budget.anomaly_execution_min_dollars` (default `1`, dollars): the least cost of an
/// execution anomaly; cheaper executions are never looked at (and cost nothing to check). >= 0.
static ANOMALY_EXECUTION_MIN_DOLLARS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"1"));

/// Registers the GUCs; called once from `_PG_init`.
pub fn init() {
    GucRegistry::define_bool_guc(
        c"neon_budget.enabled",
        c"Records spend and enforces budgets.",
        c"When off, budget_check always allows and track_cost records nothing.",
        &ENABLED,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"neon_budget.enable_override",
        c"Emergency override of every monthly and campaign budget.",
        c"When on, budget_check allows executions past any budget (alerts still fire).",
        &ENABLE_OVERRIDE,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"neon_budget.max_monthly_budget",
        c"Budget in dollars that a month gets when it is first used.",
        c"An exact decimal greater than zero, e.g. '1000' or '2500.50'.",
        &MAX_MONTHLY_BUDGET,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"neon_budget.default_alert_threshold",
        c"Warning level, as a fraction of the budget, that a month gets when it is first used.",
        c"A decimal in (0,1], e.g. '0.8' for 80%.",
        &DEFAULT_ALERT_THRESHOLD,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"neon_budget.timezone",
        c"Time zone whose calendar months are the billing months.",
        c"Any zone name PostgreSQL accepts, e.g. 'UTC' or 'America/New_York'.",
        &TIMEZONE,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"neon_budget.max_clock_skew",
        c"How far ahead of the server's clock a recorded created_at may be.",
        c"Executions with a later created_at are refused with SQLSTATE 22008 (e.g. epoch milliseconds passed as seconds); -1 accepts any.",
        &MAX_CLOCK_SKEW,
        -1,
        i32::MAX,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"neon_budget.forecast_window_days",
        c"Complete days before today whose mean daily spend the month-end forecast uses.",
        c"The forecast is spend to date plus this mean times the days left in the month.",
        &FORECAST_WINDOW_DAYS,
        1,
        31,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_float_guc(
        c"neon_budget.forecast_min_elapsed",
        c"Share of a month's days that must be complete before the month is forecast.",
        c"0.2: 6 complete days of a 30-day month (at least one day in any case).",
        &FORECAST_MIN_ELAPSED,
        0.0,
        1.0,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_bool_guc(
        c"neon_budget.anomaly_detection",
        c"Looks for cost anomalies and alerts on them.",
        c"Days far above their own 14-day baseline, per agent type and campaign, and single executions far above their agent type's mean.",
        &ANOMALY_DETECTION,
        GucContext::Suset,
        GucFlags::default(),
    );
    for (name, short, long, setting, positive) in [
        (
            c"neon_budget.anomaly_threshold",
            c"Robust score a day's spend must reach over its 14-day baseline to be a cost anomaly.",
            c"Score = (spend - median) / (1.4826 x MAD of the baseline days); an exact decimal greater than zero, e.g. '6'.",
            &ANOMALY_THRESHOLD,
            true,
        ),
        (
            c"neon_budget.anomaly_min_increase",
            c"How far above its baseline median a day's spend must be to be a cost anomaly, as a fraction of the median.",
            c"An exact decimal, at least zero: '1' means at least double the median.",
            &ANOMALY_MIN_INCREASE,
            false,
        ),
        (
            c"neon_budget.anomaly_min_dollars",
            c"Dollars above its baseline median a day's spend must be to be a cost anomaly.",
            c"An exact decimal, at least zero, e.g. '10': small noise never alerts.",
            &ANOMALY_MIN_DOLLARS,
            false,
        ),
        (
            c"neon_budget.anomaly_execution_factor",
            c"How many times its agent type's mean cost one execution must cost to be a cost anomaly.",
            c"An exact decimal greater than zero, e.g. '20'.",
            &ANOMALY_EXECUTION_FACTOR,
            true,
        ),
        (
            c"neon_budget.anomaly_execution_min_dollars",
            c"Least cost in dollars of an execution anomaly.",
            c"An exact decimal, at least zero, e.g. '1'; cheaper executions are not looked at.",
            &ANOMALY_EXECUTION_MIN_DOLLARS,
            false,
        ),
    ] {
        // A value that is not a decimal in range is refused when set (SQLSTATE 22023), so that
        // a typo never makes writes fail later.
        let check: pg_sys::GucStringCheckHook = Some(if positive { check_positive_decimal } else { check_decimal });
        unsafe {
            GucRegistry::define_string_guc_with_hooks(name, short, long, setting, GucContext::Suset, GucFlags::default(), check, None, None)
        };
    }
}

/// Whether `text` is a plain decimal (digits, at most one point), and, with `positive`, not zero.
fn decimal_text_ok(text: &str, positive: bool) -> bool {
    let t = text.trim();
    let shape = !t.is_empty()
        && t.chars().filter(|c| *c == '.').count() <= 1
        && t.chars().all(|c| c.is_ascii_digit() || c == '.')
        && t.chars().any(|c| c.is_ascii_digit());
    shape && (!positive || t.chars().any(|c| ('1'..='9').contains(&c)))
}

/// Check hook of a GUC that must be a plain decimal: refuses another value when it is set.
unsafe fn check_decimal_value(newval: *mut *mut std::ffi::c_char, positive: bool) -> bool {
    let value = unsafe { newval.as_ref().filter(|p| !p.is_null()).map(|p| std::ffi::CStr::from_ptr(*p).to_string_lossy().into_owned()) };
    match value {
        None => true,
        Some(v) if decimal_text_ok(&v, positive) => true,
        Some(_) => {
            let hint = if positive { c"Use a decimal greater than zero, e.g. '6'." } else { c"Use a decimal of zero or more, e.g. '10'." };
            unsafe { pg_sys::GUC_check_errhint_string = pg_sys::pstrdup(hint.as_ptr()) };
            false
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn check_positive_decimal(
    newval: *mut *mut std::ffi::c_char,
    _extra: *mut *mut std::ffi::c_void,
    _source: pg_sys::GucSource::Type,
) -> bool {
    unsafe { check_decimal_value(newval, true) }
}

#[pg_guard]
unsafe extern "C-unwind" fn check_decimal(
    newval: *mut *mut std::ffi::c_char,
    _extra: *mut *mut std::ffi::c_void,
    _source: pg_sys::GucSource::Type,
) -> bool {
    unsafe { check_decimal_value(newval, false) }
}

/// `neon_budget.anomaly_detection`.
pub fn anomaly_detection() -> bool {
    ANOMALY_DETECTION.get()
}

/// `neon_budget.anomaly_execution_min_dollars` as set (text), to know when a parsed copy is
/// stale.
pub fn anomaly_execution_min_dollars_text() -> Option<CString> {
    ANOMALY_EXECUTION_MIN_DOLLARS.get()
}

/// The sensitivity of cost anomaly detection (src/anomaly/), from the `neon_budget.anomaly_*`
/// GUCs, each an exact decimal.
#[derive(Debug, Clone)]
pub struct AnomalySettings {
    /// `neon_budget.anomaly_threshold`: robust score, > 0.
    pub threshold: AnyNumeric,
    /// `neon_budget.anomaly_min_increase`: fraction of the baseline median, >= 0.
    pub min_increase: AnyNumeric,
    /// `neon_budget.anomaly_min_dollars`: dollars, >= 0.
    pub min_dollars: AnyNumeric,
    /// `neon_budget.anomaly_execution_factor`: times the mean, > 0.
    pub execution_factor: AnyNumeric,
    /// `neon_budget.anomaly_execution_min_dollars`: dollars, >= 0.
    pub execution_min_dollars: AnyNumeric,
}

/// The `neon_budget.anomaly_*` settings; raises 22023 naming the first one that is not an
/// exact decimal in its range.
pub fn anomaly_settings() -> AnomalySettings {
    let zero = AnyNumeric::from(0);
    let get = |setting: &GucSetting<Option<CString>>, name: &str, default: &str, positive: bool| {
        let text = string_setting(setting, default);
        match parse_decimal(&text) {
            Some(n) if n > zero || (!positive && n == zero) => n,
            _ => raise(
                Code::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("neon_budget.{name} must be a decimal {} zero, not \"{text}\"", if positive { "greater than" } else { "at least" }),
                format!("SET neon_budget.{name} = '{default}' (as a superuser)."),
            ),
        }
    };
    AnomalySettings {
        threshold: get(&ANOMALY_THRESHOLD, "anomaly_threshold", "6", true),
        min_increase: get(&ANOMALY_MIN_INCREASE, "anomaly_min_increase", "1", false),
        min_dollars: get(&ANOMALY_MIN_DOLLARS, "anomaly_min_dollars", "10", false),
        execution_factor: get(&ANOMALY_EXECUTION_FACTOR, "anomaly_execution_factor", "20", true),
        execution_min_dollars: get(&ANOMALY_EXECUTION_MIN_DOLLARS, "anomaly_execution_min_dollars", "1", false),
    }
}

/// `neon_budget.forecast_window_days`.
pub fn forecast_window_days() -> u32 {
    FORECAST_WINDOW_DAYS.get().clamp(1, 31) as u32
}

/// How many complete days a month of `days` days needs before it is forecast:
/// `ceil(neon_budget.forecast_min_elapsed × days)`, at least 1.
pub fn forecast_min_complete_days(days: u32) -> u32 {
    let share = FORECAST_MIN_ELAPSED.get().clamp(0.0, 1.0);
    // Less a hair, so that a share that is a whole number of days in decimal (0.2 × 30) is not
    // rounded up by the binary product's last bit.
    ((share * f64::from(days) - 1e-9).ceil() as u32).max(1)
}

/// `neon_budget.max_clock_skew` in seconds; None when it is -1 (no limit).
pub fn max_clock_skew_seconds() -> Option<i64> {
    let s = MAX_CLOCK_SKEW.get();
    (s >= 0).then_some(i64::from(s))
}

/// `neon_budget.enabled`.
pub fn enabled() -> bool {
    ENABLED.get()
}

/// `neon_budget.enable_override`.
pub fn override_all_months() -> bool {
    ENABLE_OVERRIDE.get()
}

fn string_setting(setting: &GucSetting<Option<CString>>, default: &str) -> String {
    setting.get().map(|s| s.to_string_lossy().trim().to_string()).filter(|s| !s.is_empty()).unwrap_or_else(|| default.to_string())
}

/// Parses a plain decimal (digits, at most one point) without going through a float.
fn parse_decimal(text: &str) -> Option<AnyNumeric> {
    let ok = !text.is_empty()
        && text.chars().filter(|c| *c == '.').count() <= 1
        && text.chars().all(|c| c.is_ascii_digit() || c == '.')
        && text.chars().any(|c| c.is_ascii_digit());
    if ok {
        AnyNumeric::try_from(text).ok()
    } else {
        None
    }
}

/// `neon_budget.max_monthly_budget` in dollars; raises 22023 when it is not a positive decimal.
pub fn max_monthly_budget() -> AnyNumeric {
    let text = string_setting(&MAX_MONTHLY_BUDGET, "1000");
    match parse_decimal(&text) {
        Some(n) if n > AnyNumeric::from(0) => n,
        _ => raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("neon_budget.max_monthly_budget must be a dollar amount greater than zero, not \"{text}\""),
            "SET neon_budget.max_monthly_budget = '1000' (as a superuser).",
        ),
    }
}

/// `neon_budget.default_alert_threshold` as a fraction; raises 22023 outside (0,1].
pub fn default_alert_threshold() -> AnyNumeric {
    let text = string_setting(&DEFAULT_ALERT_THRESHOLD, "0.8");
    match parse_decimal(&text) {
        Some(n) if n > AnyNumeric::from(0) && n <= AnyNumeric::from(1) => n,
        _ => raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("neon_budget.default_alert_threshold must be a fraction in (0,1], not \"{text}\""),
            "SET neon_budget.default_alert_threshold = '0.8' (as a superuser).",
        ),
    }
}

/// `neon_budget.timezone` (validated by PostgreSQL where it is used: SQLSTATE 22023 for an
/// unknown zone).
pub fn timezone() -> String {
    string_setting(&TIMEZONE, "UTC")
}
