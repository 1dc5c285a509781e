//! "The same execution_id twice records once", also after retention.
//!
//! `anonymize_before` must remove execution ids (they can be personal data), and `purge_before`
//! deletes rows; either would let a late retry of the same execution record it again. So neither
//! forgets an id: it keeps a **keyed digest** of it instead, HMAC-SHA-256 (RFC 2104) of the id
//! under a random per-database key (`_execution_id_key`, readable only by the extension's
//! owner), written as `nb-anon:<64 hex digits>`. An anonymized row's `execution_id` becomes its
//! digest; a purged row's digest goes to `purged_execution_id`. Every entry path checks a new id's
//! digest against both: `track_cost` returns the anonymized row (or NULL for a purged one) and
//! records nothing; a direct `INSERT` or `COPY` fails with 23505. A retry racing the retention of
//! its own row is caught by a second check after the insert (40001: retry, and the retry then
//! finds the digest). Callers cannot send ids of the digest form (22023); a restore can.
use crate::error::{raise, Code};
use hmac::{Hmac, KeyInit, Mac};
use pgrx::prelude::*;
use sha2::Sha256;
use std::cell::RefCell;

/// The prefix of a digest in `billing_log.execution_id` and `purged_execution_id.digest`.
pub const PREFIX: &str = "nb-anon:";

thread_local! {
    /// The database's key, read once per backend (it changes only when a restore loads a dump's
    /// key into a new database).
    static KEY: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

fn key() -> Vec<u8> {
    if let Some(k) = KEY.with(|k| k.borrow().clone()) {
        return k;
    }
    let k: Option<Vec<u8>> = crate::owner::as_owner(|| {
        Spi::get_one("SELECT k.key FROM neon_budget._execution_id_key k WHERE k.id OPERATOR(pg_catalog.=) 1")
            .unwrap_or_else(|e| crate::error::spi(Err(e)))
    });
    let k = k.unwrap_or_else(|| {
        raise(
            Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "neon_budget._execution_id_key holds no key",
            "Restore it from the dump this database came from; without it, anonymized execution ids cannot be recognised.",
        )
    });
    KEY.with(|c| *c.borrow_mut() = Some(k.clone()));
    k
}

/// The keyed digest of `id` (`nb-anon:` and 64 hex digits); an id already in that form is its
/// own digest.
pub fn digest(id: &str) -> String {
    if id.starts_with(PREFIX) {
        return id.to_string();
    }
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key()).expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    let bytes = mac.finalize().into_bytes();
    let mut out = String::with_capacity(PREFIX.len() + 64);
    out.push_str(PREFIX);
    for b in bytes.iter() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Raises 22023 for an id of the digest form sent by a caller (only a restore may write one).
pub fn require_plain(id: &str) {
    if id.starts_with(PREFIX) && !crate::restore::restoring() {
        raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("execution_id must not begin with \"{PREFIX}\""),
            "That prefix marks the digests of anonymized execution ids; send your own id.",
        );
    }
}

/// Where an earlier record of an id went, by its digest `d`: an anonymized `billing_log` row
/// (its datum, as `SELECT b`), or a purged one.
pub enum Retired {
    Anonymized(pgrx::composite_type!('static, "billing_log")),
    Purged,
}

/// Looks up digest `d` among anonymized rows and purged ids (with the caller's snapshot rules:
/// a new statement in READ COMMITTED sees every commit before it). Runs as the extension's owner.
pub fn retired(d: &str) -> Option<Retired> {
    crate::owner::as_owner(|| {
        let row: Option<pgrx::composite_type!('static, "billing_log")> = crate::error::spi_opt(Spi::get_one_with_args(
            "SELECT b FROM neon_budget.billing_log b WHERE b.execution_id OPERATOR(pg_catalog.=) $1",
            &[d.into()],
        ));
        if let Some(row) = row {
            return Some(Retired::Anonymized(row));
        }
        let purged: bool = crate::error::spi(Spi::get_one_with_args::<bool>(
            "SELECT EXISTS (SELECT 1 FROM neon_budget.purged_execution_id p WHERE p.digest OPERATOR(pg_catalog.=) $1)",
            &[d.into()],
        ))
        .unwrap_or(false);
        purged.then_some(Retired::Purged)
    })
}

/// `neon_budget._execution_digest(execution_id text) -> text`: [`digest`], for
/// `anonymize_before` and `purge_before`.
#[pg_extern(volatile, strict, parallel_restricted, name = "_execution_digest")]
fn execution_digest_sql(execution_id: &str) -> String {
    digest(execution_id)
}
