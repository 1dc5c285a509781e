//! PostgreSQL plumbing, with no budget logic: the bounded per-backend caches in their memory
//! context ([`cache`]), their invalidation ([`invalidation`]), catalog lookups ([`backend_cache`]), index scans of system and extension tables without the executor
//! ([`table_scan`]), running as the extension's owner ([`owner`]), kept SPI plans ([`plans`]),
//! SPI helpers for triggers ([`spi`]), every advisory-lock class ([`locks`]), the check that
//! the installed SQL matches the library ([`schema_version`]), and every call that differs
//! between PostgreSQL major versions ([`compat`]). It uses only `crate::error`.
pub mod backend_cache;
pub mod cache;
pub mod compat;
pub mod invalidation;
pub mod locks;
pub mod owner;
pub mod plans;
pub mod schema_version;
pub mod spi;
pub mod table_scan;
