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
//! its own row is caught after the insert (40001: retry, and the retry then finds the digest):
//! retention takes no lock that writers wait for, so an insert of an id whose row a retention
//! is rewriting or deleting waits on the unique index for it, and then goes in. Retention sends
//! a relcache invalidation of `purged_execution_id` when it commits (before its row locks are
//! released), which bumps this backend's retention generation (`backend_cache.rs`); the
//! statement-level AFTER INSERT trigger compares it with the generation of the statement's
//! first probe and re-checks its new ids only when it moved ([`recheck_inserted`]). Probes use
//! the latest snapshot, so they see retention committed after a REPEATABLE READ transaction's
//! snapshot too. Callers cannot send ids of the digest form (22023); a restore can.
use crate::error::{raise, Code};
use hmac::{Hmac, KeyInit, Mac};
use pgrx::prelude::*;
use sha2::Sha256;
use std::cell::{Cell, RefCell};

/// The prefix of a digest in `billing_log.execution_id` and `purged_execution_id.digest`.
pub const PREFIX: &str = "nb-anon:";

thread_local! {
    /// The database's key, read once per backend (it changes only when a restore loads a dump's
    /// key into a new database).
    static KEY: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
    /// The retention generation at the first probe since the last AFTER INSERT check.
    static PROBED_AT: Cell<Option<u64>> = const { Cell::new(None) };
}

fn retention_generation() -> u64 {
    crate::backend_cache::retention_generation(crate::backend_cache::oid(c"purged_execution_id"))
}

/// Called by `anonymize_before` and `purge_before`: when this transaction commits, every
/// backend's retention generation moves, and inserts that waited for it re-check their ids.
pub fn signal_retention() {
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(crate::backend_cache::oid(c"purged_execution_id")) };
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

/// Looks up digest `d` among anonymized rows and purged ids, under the latest snapshot (every
/// commit so far, whatever the isolation level). Notes the probe for [`recheck_inserted`].
pub fn retired(d: &str) -> Option<Retired> {
    if PROBED_AT.with(|p| p.get()).is_none() {
        let g = retention_generation();
        PROBED_AT.with(|p| p.set(Some(g)));
    }
    let snapshot = crate::table_scan::Snapshot::latest();
    if crate::table_scan::exists_text_eq(&snapshot, c"purged_execution_id", c"purged_execution_id_pkey", &[("digest", d)]) {
        return Some(Retired::Purged);
    }
    if !crate::table_scan::exists_text_eq(&snapshot, c"billing_log", c"billing_log_execution_id_key", &[("execution_id", d)]) {
        return None;
    }
    drop(snapshot);
    // The anonymized row, as the caller's statement sees it (REPEATABLE READ: its snapshot may
    // predate the anonymization, and then the retry must be retried).
    let row: Option<pgrx::composite_type!('static, "billing_log")> = crate::owner::as_owner(|| {
        crate::error::spi_opt(Spi::get_one_with_args(
            "SELECT b FROM neon_budget.billing_log b WHERE b.execution_id OPERATOR(pg_catalog.=) $1",
            &[d.into()],
        ))
    });
    Some(Retired::Anonymized(row.unwrap_or_else(|| serialization_failure())))
}

fn serialization_failure() -> ! {
    raise(
        Code::ERRCODE_T_R_SERIALIZATION_FAILURE,
        "execution_id was anonymized or purged while this transaction recorded it",
        "Retry the transaction: track_cost then returns the earlier record and records nothing; an INSERT or COPY of the id fails with 23505.",
    )
}

/// Called by the statement-level AFTER INSERT trigger of `billing_log`: if an
/// `anonymize_before` or `purge_before` committed since this statement first probed an id (an
/// insert that waited for it on the unique index then went in), re-checks the statement's new
/// ids and raises 40001 for one whose earlier record was retired. Costs nothing otherwise.
pub fn recheck_inserted(trigger: &pgrx::PgTrigger<'_>) {
    let Some(probed) = PROBED_AT.with(|p| p.take()) else {
        return;
    };
    // Retention's invalidation is in the queue before its locks are released.
    unsafe { pg_sys::AcceptInvalidationMessages() };
    if retention_generation() == probed {
        return;
    }
    let ids: Vec<String> = crate::owner::as_owner(|| {
        Spi::connect(|client| {
            let rc = unsafe {
                pg_sys::SPI_register_trigger_data(trigger.trigger_data() as *const pg_sys::TriggerData as *mut pg_sys::TriggerData)
            };
            if rc < 0 {
                raise(Code::ERRCODE_INTERNAL_ERROR, format!("SPI_register_trigger_data failed: {rc}"), "This is a bug in neon_budget.");
            }
            crate::error::spi(
                client
                    .select(
                        "SELECT n.execution_id FROM new_rows n
                          WHERE n.execution_id IS NOT NULL AND NOT pg_catalog.starts_with(n.execution_id, $1)",
                        None,
                        &[PREFIX.into()],
                    )
                    .and_then(|t| t.map(|r| r.get::<String>(1).map(Option::unwrap_or_default)).collect::<Result<Vec<_>, _>>()),
            )
        })
    });
    let snapshot = crate::table_scan::Snapshot::latest();
    for id in ids {
        let d = digest(&id);
        if crate::table_scan::exists_text_eq(&snapshot, c"purged_execution_id", c"purged_execution_id_pkey", &[("digest", &d)])
            || crate::table_scan::exists_text_eq(&snapshot, c"billing_log", c"billing_log_execution_id_key", &[("execution_id", &d)])
        {
            serialization_failure();
        }
    }
}

/// `neon_budget._execution_digest(execution_id text) -> text`: [`digest`], for
/// `anonymize_before` and `purge_before`.
#[pg_extern(volatile, strict, parallel_restricted, name = "_execution_digest")]
fn execution_digest_sql(execution_id: &str) -> String {
    digest(execution_id)
}
