//! The SQL API: every `#[pg_extern]` function, one file per family. Each function checks its
//! arguments (`crate::validation`), the session (writable, schema version) and calls one
//! function of the layers below; the SQL-facing documentation of each is its doc comment here,
//! mirrored by `sql/comments.sql` (`COMMENT ON FUNCTION`).
//!
//! | file | functions |
//! |---|---|
//! | [`tracking`] | `track_cost` |
//! | [`checking`] | `budget_check` |
//! | [`reservations`] | `budget_reserve`, `budget_release` |
//! | [`admin`] | `set_monthly_budget`, `set_campaign`, `clear_campaign_budget`, `set_agent_rate`, `reprice_billing_log`, `set_budget_override` |
//! | [`maintenance`] | `budget_verify`, `budget_rebuild`, `anonymize_before`, `purge_before` |
//! | [`report`] | `budget_report`, `budget_forecast` |
//! | [`anomalies`] | `detect_anomalies` |
//! | [`internal`] | the `_`-prefixed helpers the extension's own SQL calls |
pub mod admin;
pub mod anomalies;
pub mod checking;
pub mod internal;
pub mod maintenance;
pub mod report;
pub mod reservations;
pub mod tracking;
