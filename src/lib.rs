//! neon_budget: track and cap what AI agents spend, inside PostgreSQL.
//!
//! Spend is recorded in `neon_budget.billing_log`, aggregated in the same transaction by the
//! write path, checked by `budget_check`, alerted on with `NOTIFY neon_budget_alerts`, and
//! reported by `budget_report`. This file only declares the modules and the SQL files.
//!
//! # Layers
//! A module uses only modules listed below it; `scripts/module_graph.py` (run by the tests)
//! fails on any circle.
//!
//! | layer | modules | holds |
//! |---|---|---|
//! | SQL API | [`api`] | every `#[pg_extern]`: argument checks and one call below |
//! | features | [`maintenance`], [`report`] | verify, rebuild, retention; the cost report |
//! | write path | [`write`] | applying rows to the aggregates, alert grants, budget state, reservations |
//! | domain | [`rate_changes`], [`settings`], [`execution_ids`], [`restore`], [`rates`], [`alerts`], [`forecast`], [`validation`], [`month`], [`money`], [`gucs`] | budget rules, each in its own module |
//! | plumbing | [`pg`] | caches, scans, locks, plans, version-specific calls |
//! | errors | [`error`] | SQLSTATE errors and SPI error handling |
//!
//! The SQL objects are created by `sql/bootstrap.sql` (tables), the generated functions,
//! `sql/finalize.sql` (triggers, views), `sql/comments.sql` and, last,
//! `sql/roles_and_grants.sql` (roles and privileges; every upgrade script ends with it).
// pgrx's TableIterator<(name!(...), ...)> result types and per-backend caches keyed by tuples.
#![allow(clippy::type_complexity)]

use pgrx::prelude::*;

// Layers, top to bottom; a module uses only the ones below it (no circles).
mod alerts;
mod anomaly;
mod api;
mod error;
mod execution_ids;
mod forecast;
mod gucs;
mod maintenance;
mod model_prices;
mod money;
mod month;
mod pg;
mod rate_changes;
mod rates;
mod report;
mod restore;
mod settings;
mod validation;
mod write;

::pgrx::pg_module_magic!();

extension_sql_file!("../sql/bootstrap.sql", name = "bootstrap", bootstrap);
extension_sql_file!(
    "../sql/finalize.sql",
    name = "schema_objects",
    requires = [
        write::trigger::_billing_log_changed,
        write::before_insert::_billing_log_before_insert,
        write::scope_cache::_budget_settings_changed,
        api::internal::status_sql,
        api::internal::reached_levels_sql,
        api::internal::billing_day_sql,
        api::internal::restoring_sql,
        api::internal::timezone_setting,
        api::internal::current_month_sql,
        api::internal::default_monthly_budget_sql,
        api::internal::default_alert_threshold_sql,
        api::internal::slot_sql,
        api::internal::execution_digest_sql,
        api::internal::ensure_month,
        api::internal::check_alerts_sql,
        api::internal::cost_for_tokens_sql,
        api::internal::payload_sql
    ]
);
// Roles and privileges, last: the same file ends every upgrade script.
extension_sql_file!("../sql/roles_and_grants.sql", name = "roles_and_grants", finalize);
extension_sql_file!(
    "../sql/comments.sql",
    name = "comments",
    requires = [
        api::tracking::track_cost_v2,
        api::checking::budget_check_v2,
        api::reservations::budget_reserve,
        api::reservations::budget_release,
        api::report::budget_report_v3,
        api::report::budget_forecast,
        api::admin::set_monthly_budget,
        api::admin::set_campaign,
        api::admin::clear_campaign_budget,
        api::admin::set_agent_rate_v2,
        api::admin::reprice_billing_log,
        api::admin::set_budget_override,
        api::anomalies::detect_anomalies,
        api::admin::set_model_price
    ]
);

/// Called by PostgreSQL when the library is loaded: registers the `neon_budget.*` GUCs.
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::init();
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    // The #[pg_test] functions live beside the logic they test (see each module's `tests`);
    // pgrx needs this module to exist in the crate root.
}

/// Used by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
