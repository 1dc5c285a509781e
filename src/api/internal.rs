//! Functions that the extension's own SQL calls (views, SQL triggers, the bulk aggregate
//! statement, `budget_verify`): named with a leading `_`, granted to no one, not part of the
//! API. Each is a thin wrapper over the domain or write-path function it names.
use pgrx::prelude::*;
use pgrx::AnyNumeric;

/// `neon_budget._reached_levels(spent numeric, budget numeric, threshold numeric) -> text[]`:
/// the alert levels reached, lowest amount first (see [`crate::alerts::reached_levels`]).
#[pg_extern(immutable, parallel_safe, strict, name = "_reached_levels")]
fn reached_levels_sql(spent: AnyNumeric, budget: AnyNumeric, threshold: AnyNumeric) -> Vec<String> {
    crate::alerts::reached_levels(&spent, &budget, &threshold).into_iter().map(|l| l.as_str().to_string()).collect()
}

/// `neon_budget._status(spent numeric, budget numeric, threshold numeric) -> text`:
/// `ok`, `warning`, `critical` or `exceeded`.
#[pg_extern(immutable, parallel_safe, strict, name = "_status")]
fn status_sql(spent: AnyNumeric, budget: AnyNumeric, threshold: AnyNumeric) -> &'static str {
    crate::alerts::status(&spent, &budget, &threshold)
}

/// `neon_budget._alert_payload(...) -> text`: see [`crate::alerts::payload`].
#[pg_extern(immutable, parallel_safe, name = "_alert_payload")]
#[allow(clippy::too_many_arguments)]
fn payload_sql(
    alert_id: i64,
    scope: &str,
    campaign_id: Option<&str>,
    month: &str,
    level: &str,
    spent: AnyNumeric,
    budget: AnyNumeric,
    utilization: AnyNumeric,
) -> String {
    crate::alerts::payload(alert_id, scope, campaign_id, month, level, &spent, Some(&budget), Some(&utilization), None)
}

/// `neon_budget._check_alerts(scope text, scope_key text, month text, spent numeric, budget numeric,
/// threshold numeric) -> void`: sends every level that `spent` reaches against `budget` (dollars)
/// and that was not sent yet for this scope and month. A NULL budget never alerts.
#[pg_extern(volatile, parallel_unsafe, name = "_check_alerts")]
fn check_alerts_sql(scope: &str, scope_key: &str, month: &str, spent: AnyNumeric, budget: Option<AnyNumeric>, threshold: AnyNumeric) {
    crate::alerts::send_reached(scope, scope_key, month, spent, budget, threshold)
}

/// `neon_budget._default_monthly_budget() -> numeric`: `neon_budget.max_monthly_budget` in dollars.
#[pg_extern(stable, parallel_safe, name = "_default_monthly_budget")]
fn default_monthly_budget_sql() -> AnyNumeric {
    crate::gucs::max_monthly_budget()
}

/// `neon_budget._default_alert_threshold() -> numeric`: `neon_budget.default_alert_threshold`.
#[pg_extern(stable, parallel_safe, name = "_default_alert_threshold")]
fn default_alert_threshold_sql() -> AnyNumeric {
    crate::gucs::default_alert_threshold()
}

/// `neon_budget._cost_for_tokens(tokens bigint, cost_per_1k_tokens numeric) -> numeric`:
/// dollars for `tokens` at a rate in dollars per 1,000 tokens, exact.
#[pg_extern(immutable, parallel_safe, strict, name = "_cost_for_tokens")]
fn cost_for_tokens_sql(tokens: i64, cost_per_1k_tokens: AnyNumeric) -> AnyNumeric {
    crate::money::cost_for_tokens(tokens, cost_per_1k_tokens)
}

/// `neon_budget._billing_day(created_at timestamptz) -> text`: [`crate::month::day_of`], `YYYY-MM-DD` in
/// `neon_budget.timezone`.
#[pg_extern(stable, strict, parallel_safe, name = "_billing_day")]
fn billing_day_sql(created_at: TimestampWithTimeZone) -> String {
    crate::month::day_of(created_at.into())
}

/// `neon_budget._timezone() -> text`: the validated value of `neon_budget.timezone`, used by
/// the billing-month trigger. Loading it also loads the library, so the GUCs exist.
#[pg_extern(stable, parallel_safe, name = "_timezone")]
fn timezone_setting() -> String {
    crate::gucs::timezone()
}

/// `neon_budget._current_month() -> text`: the current billing month, `YYYY-MM`.
#[pg_extern(stable, parallel_safe, name = "_current_month")]
fn current_month_sql() -> String {
    crate::month::current_month()
}

/// `neon_budget._execution_digest(execution_id text) -> text`: [`crate::execution_ids::digest`],
/// for `anonymize_before` and `purge_before`.
#[pg_extern(volatile, strict, parallel_restricted, name = "_execution_digest")]
fn execution_digest_sql(execution_id: &str) -> String {
    crate::execution_ids::digest(execution_id)
}

/// `neon_budget._restoring() -> boolean`: [`crate::restore::restoring`], for the SQL trigger
/// on `purged_spend`.
#[pg_extern(volatile, parallel_restricted, name = "_restoring")]
fn restoring_sql() -> bool {
    crate::restore::restoring()
}

/// `neon_budget._slot() -> integer`: this backend's aggregate slot
/// ([`crate::write::slots::current`]).
#[pg_extern(volatile, parallel_unsafe, name = "_slot")]
fn slot_sql() -> i32 {
    crate::write::slots::current()
}

/// `neon_budget._ensure_month(month text) -> void`: [`crate::settings::ensure_month`] (the
/// Rust name keeps the C symbol `ensure_month_wrapper` that installed versions call).
#[pg_extern(volatile, parallel_unsafe, name = "_ensure_month")]
fn ensure_month(month: &str) {
    crate::settings::ensure_month(month)
}

/// `pg_finfo` record of [`slot_rows`] (a version-1 C function).
#[no_mangle]
#[doc(hidden)]
pub extern "C" fn pg_finfo_slot_rows() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

/// `neon_budget._month_spend_rows()`, `_campaign_spend_rows()`, `_agent_spend_rows()`,
/// `_day_spend_rows()` and `_campaign_agent_day_spend_rows()`, no arguments, each `-> SETOF` the slot table whose row type it returns
/// (`sql/finalize.sql`): that table's rows visible to the statement's snapshot, read newest
/// first ([`crate::pg::table_scan::newest_versions`]), so that the views over them (`monthly_budget`,
/// `campaign_cost`, `agent_cost`, `daily_cost`, `campaign_agent_daily_cost`) stay fast while a long-held snapshot keeps every
/// old version of the slot rows. Reads as its caller, without privilege checks on the table (as
/// the views do); granted to `neon_budget_reader`, like the views. Errors: 42809 when declared
/// to return the row type of a table other than the five slot tables; 55000 when that table's
/// primary key is not (key columns, slot).
///
/// # Safety
/// Called by PostgreSQL's function manager with a valid `fcinfo`.
#[no_mangle]
#[pg_guard]
pub unsafe extern "C-unwind" fn slot_rows(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    use crate::pg::backend_cache::oid;
    let mut result_type = pg_sys::InvalidOid;
    let mut tupdesc: pg_sys::TupleDesc = std::ptr::null_mut();
    pg_sys::get_call_result_type(fcinfo, &mut result_type, &mut tupdesc);
    let relid = pg_sys::get_typ_typrelid(result_type);
    let tables = [c"_month_spend", c"_campaign_spend", c"_agent_spend", c"_day_spend", c"_campaign_agent_day_spend"];
    if relid == pg_sys::InvalidOid || !tables.iter().any(|t| oid(t) == relid) {
        crate::error::raise(
            crate::error::Code::ERRCODE_WRONG_OBJECT_TYPE,
            "neon_budget's slot_rows reads only the slot tables _month_spend, _campaign_spend, _agent_spend, _day_spend and _campaign_agent_day_spend",
            "Declare it RETURNS SETOF one of those tables, as sql/finalize.sql does.",
        );
    }
    pg_sys::InitMaterializedSRF(fcinfo, 0);
    let rsinfo = (*fcinfo).resultinfo as *mut pg_sys::ReturnSetInfo;
    let (store, result_desc) = ((*rsinfo).setResult, (*rsinfo).setDesc);
    let rel = pg_sys::table_open(relid, pg_sys::AccessShareLock as i32);
    // Values, not the stored tuple: a row written before a column was added with a default
    // (alert_cap, in 0.2.0) does not hold that column, and only the table's own descriptor
    // knows its default.
    crate::pg::table_scan::newest_versions(pg_sys::GetActiveSnapshot(), rel, &[], |tts| {
        pg_sys::slot_getallattrs(tts);
        pg_sys::tuplestore_putvalues(store, result_desc, (*tts).tts_values, (*tts).tts_isnull);
    });
    pg_sys::table_close(rel, pg_sys::NoLock as i32);
    pg_sys::Datum::from(0usize)
}
