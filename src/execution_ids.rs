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
//! its own row is caught after the insert (40001: retry, and the retry then finds the digest).
//!
//! Retention takes no lock that writers wait for, so an insert can race the retention of its
//! id's earlier record: the retention deletes or rewrites that row, the insert's unique check
//! waits for it (or, in the instant between its commit and its leaving the process array,
//! does not), and then the insert goes in. So every probe ([`retired`]) reads with PostgreSQL's
//! dirty snapshot, as unique checks do: besides committed rows it sees the versions of
//! transactions in progress. When it finds any trace of the id (its plain row, or its digest
//! being written), the statement's AFTER INSERT trigger re-checks its new ids
//! ([`recheck_inserted`]), waiting for a retention still in progress, and raises 40001 for an
//! id that was retired. A new id (the usual case) leaves no trace and costs no re-check.
//! Callers cannot send ids of the digest form (22023); a restore can.
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
    /// The start of the client statement in which a probe found a trace of its id (see the
    /// module docs): that statement's new ids are then re-checked. A mark left by a call that
    /// returned early or failed does not apply to a later statement.
    static RECHECK: Cell<Option<pg_sys::TimestampTz>> = const { Cell::new(None) };
}

fn key() -> Vec<u8> {
    if let Some(k) = KEY.with(|k| k.borrow().clone()) {
        return k;
    }
    let k: Option<Vec<u8>> = crate::pg::owner::as_owner(|| {
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

/// Where a retired id's digest is found, as (table, unique index, column): purged ids, then
/// anonymized `billing_log` rows, in `billing_log`'s unique index on `execution_id`, whose OID
/// the caller gives (`write::log_shape::execution_id_index` finds it by its definition, so a
/// DBA may rename it).
fn digest_homes(log_index: pg_sys::Oid) -> [(&'static std::ffi::CStr, pg_sys::Oid, &'static str); 2] {
    [
        (c"purged_execution_id", crate::pg::backend_cache::oid(c"purged_execution_id_pkey"), "digest"),
        (c"billing_log", log_index, "execution_id"),
    ]
}

/// Where an earlier record of an execution went: an anonymized `billing_log` row (its datum,
/// as `SELECT b`), or a purged one.
pub enum Retired {
    Anonymized(pgrx::composite_type!('static, "billing_log")),
    Purged,
}

/// Where an earlier record of execution `id` (a plain id) went: looks its digest up among
/// anonymized rows and purged ids. A committed record decides; one being written by a
/// retention in progress, or the id's own row (which a retention may be deleting), marks the
/// statement for [`recheck_inserted`]. Runs without SQL, except to read an anonymized row.
/// `log_index`: the OID of `billing_log`'s unique index on `execution_id`.
pub fn retired(id: &str, log_index: pg_sys::Oid) -> Option<Retired> {
    use crate::pg::table_scan::{find_dirty, Found};
    let d = digest(id);
    let homes = digest_homes(log_index);
    let [purged, anonymized] = homes.map(|(table, index, column)| find_dirty(table, index, &[(column, &d)]));
    let (_, index, column) = homes[1];
    let own = find_dirty(c"billing_log", index, &[(column, id)]);
    if purged != Found::Nothing || anonymized != Found::Nothing || own != Found::Nothing {
        RECHECK.with(|r| r.set(Some(unsafe { pg_sys::GetCurrentStatementStartTimestamp() })));
    }
    if purged == Found::Committed {
        return Some(Retired::Purged);
    }
    if anonymized != Found::Committed {
        return None;
    }
    // The anonymized row, as the caller's statement sees it (REPEATABLE READ: its snapshot may
    // predate the anonymization, and then the retry must be retried).
    let row: Option<pgrx::composite_type!('static, "billing_log")> = crate::pg::owner::as_owner(|| {
        crate::error::spi_opt(Spi::get_one_with_args(
            "SELECT b FROM neon_budget.billing_log b WHERE b.execution_id OPERATOR(pg_catalog.=) $1",
            &[d.as_str().into()],
        ))
    });
    Some(Retired::Anonymized(row.unwrap_or_else(|| serialization_failure())))
}

/// Whether a probe of the current statement ([`retired`]) found a trace of its id: its row,
/// committed or being written, or a retention writing its digest. A write of such an id must
/// take the SQL `INSERT`, whose statement trigger re-checks it ([`recheck_inserted`]).
pub fn traced() -> bool {
    RECHECK.with(|r| r.get()) == Some(unsafe { pg_sys::GetCurrentStatementStartTimestamp() })
}

fn serialization_failure() -> ! {
    raise(
        Code::ERRCODE_T_R_SERIALIZATION_FAILURE,
        "execution_id was anonymized or purged while this transaction recorded it",
        "Retry the transaction: track_cost then returns the earlier record and records nothing; an INSERT or COPY of the id fails with 23505.",
    )
}

/// Whether digest `d` is retired, once every retention in progress that writes it has ended
/// (waiting for each, as a unique check does).
fn retired_after_waiting(d: &str, log_index: pg_sys::Oid) -> bool {
    use crate::pg::table_scan::{find_dirty, Found};
    for (table, index, column) in digest_homes(log_index) {
        loop {
            match find_dirty(table, index, &[(column, d)]) {
                Found::Nothing => break,
                Found::Committed => return true,
                Found::InProgress(xid) => unsafe {
                    pg_sys::XactLockTableWait(xid, std::ptr::null_mut(), std::ptr::null_mut(), pg_sys::XLTW_Oper::XLTW_None)
                },
            }
        }
    }
    false
}

/// Called by the statement-level AFTER INSERT trigger of `billing_log`: when a probe of this
/// statement found a trace of its id (see the module docs), re-checks the statement's new
/// plain ids, waiting for retentions in progress, and raises 40001 for one whose earlier
/// record was retired. Costs nothing otherwise. `log_index` gives the index as for [`retired`]
/// (called only when there is something to re-check).
pub fn recheck_inserted(trigger: &pgrx::PgTrigger<'_>, log_index: impl FnOnce() -> pg_sys::Oid) {
    if RECHECK.with(|r| r.take()) != Some(unsafe { pg_sys::GetCurrentStatementStartTimestamp() }) {
        return;
    }
    let ids: Vec<String> = crate::pg::owner::as_owner(|| {
        Spi::connect(|client| {
            crate::pg::spi::register_trigger_data(trigger);
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
    let log_index = if ids.is_empty() { pg_sys::InvalidOid } else { log_index() };
    for id in ids {
        if retired_after_waiting(&digest(&id), log_index) {
            serialization_failure();
        }
    }
}
