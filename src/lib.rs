//! neon_budget: track and cap what AI agents spend, inside PostgreSQL.
//!
//! Spend is recorded in `neon_budget.billing_log`, aggregated by triggers in the same transaction
//! (`sql/aggregates.sql`), checked by `budget_check`, alerted on with
//! `NOTIFY neon_budget_alerts`, and reported by `budget_report`. This file only wires the modules
//! together; each concern has its own module.
// pgrx's TableIterator<(name!(...), ...)> result types and per-backend caches keyed by tuples.
#![allow(clippy::type_complexity)]

use pgrx::prelude::*;

mod admin;
mod alert_grants;
mod alert_watch;
mod alerts;
mod api;
mod backend_cache;
mod before_insert;
mod budget;
mod error;
mod execution_ids;
mod gucs;
mod locks;
mod log_insert;
mod log_shape;
mod maintenance;
mod money;
mod month;
mod owner;
mod pg_compat;
mod plans;
mod report;
mod reservations;
mod restore;
mod schema_version;
mod slot_rows;
mod slots;
mod table_scan;
mod triggers;
mod validation;
mod write_path_stats;

::pgrx::pg_module_magic!();

extension_sql_file!("../sql/bootstrap.sql", name = "bootstrap", bootstrap);
extension_sql_file!("../sql/finalize.sql", name = "finalize", finalize);
extension_sql_file!(
    "../sql/comments.sql",
    name = "comments",
    requires = [
        api::track_cost,
        budget::budget_check,
        reservations::budget_reserve,
        reservations::budget_release,
        report::budget_report_v3,
        admin::set_monthly_budget,
        admin::set_campaign,
        admin::clear_campaign_budget,
        admin::set_agent_rate,
        admin::set_budget_override
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
