//! What the neon_budget extension, its command-line client (`neon-budget`) and its
//! integration tests share, in pure Rust (no PostgreSQL, no allocation of money as floats):
//!
//! - [`money`]: exact decimal text: rounding half away from zero, thousands grouping, dollars,
//!   percentages;
//! - [`month`]: billing months (`YYYY-MM`);
//! - [`aggregates`]: the one declaration of the maintained aggregates (tables, keys, sums) and
//!   the SQL generated from it.
pub mod aggregates;
pub mod money;
pub mod month;
