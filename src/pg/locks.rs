//! Every advisory lock neon_budget takes, in one place. Each is transaction-level and
//! two-keyed, as `pg_advisory_xact_lock(int, int)`: the first key is the lock's [`Class`], the
//! second a hash of what it protects (`hashtext` of a text key, or FNV-1a for the settlement
//! lock, which is taken without SQL). So they never collide with each other or with an
//! application's one-key advisory locks, and `pg_locks` shows them as `advisory` with
//! `classid` = the class.
//!
//! | class | protects | how it is taken |
//! |---|---|---|
//! | `0x4e420001` reservations | deciding reservations of a month (`budget_reserve`): SHARE while deciding alongside others, EXCLUSIVE to decide alone near the cap; FNV-1a; released as soon as the decision is written | waits (respects `lock_timeout`) |
//! | `0x4e420002` alert claim | claiming the levels of one scope and month (`alerts::claim_and_send`), or a cost anomaly of one scope and day (`anomaly::send`) | tried once, never waits |
//! | `0x4e420003` grant settlement | settling one scope's alert grants (`write/alert_grants.rs`) | tried for up to 20 ms, never queued |
//! | `0x4e420004` rebuild | `budget_rebuild` of one month | waits |
//! | `0x4e420005` agent rate | rate changes and re-pricing of one agent type (`set_agent_rate`, `reprice_billing_log`) | waits |
//! | `0x4e420006` retention | `purge_before` and `anonymize_before` of the database (they take turns) | waits |
//! | `0x4e420007` anomaly scan | scoring the complete days of the database for cost anomalies (`anomaly::days`) | the automatic scan tries once and never waits; `detect_anomalies` waits |
use crate::error::{spi, spi_opt};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;

/// The first key of each of neon_budget's advisory locks ("NB" and a number).
#[derive(Clone, Copy, Debug)]
#[repr(i32)]
pub enum Class {
    Reservations = 0x4e42_0001,
    AlertClaim = 0x4e42_0002,
    GrantSettlement = 0x4e42_0003,
    Rebuild = 0x4e42_0004,
    AgentRate = 0x4e42_0005,
    Retention = 0x4e42_0006,
    AnomalyScan = 0x4e42_0007,
}

/// Takes the lock of `class` and `key` until the transaction ends, waiting for it like any
/// lock (so `lock_timeout` applies: 55P03).
pub fn wait_xact(class: Class, key: &str) {
    spi(Spi::run_with_args("SELECT pg_catalog.pg_advisory_xact_lock($1, pg_catalog.hashtext($2))", &[(class as i32).into(), key.into()]));
}

/// Tries the lock of `class` and `key` once (until the transaction ends); whether it was
/// taken. Runs in the caller's SPI connection.
pub fn try_xact(client: &mut SpiClient<'_>, class: Class, key: &str) -> bool {
    let got: Option<bool> = spi_opt(
        client
            .update("SELECT pg_catalog.pg_try_advisory_xact_lock($1, pg_catalog.hashtext($2))", None, &[(class as i32).into(), key.into()])
            .and_then(|t| t.first().get_one()),
    );
    got == Some(true)
}

/// The lock tag of `class` and `hash` in this database, as `SET_LOCKTAG_ADVISORY(tag,
/// MyDatabaseId, class, hash, 2)` does for `pg_advisory_xact_lock(int, int)`; for locks taken
/// without SQL ([`try_now`]).
pub fn tag(class: Class, hash: u32) -> pg_sys::LOCKTAG {
    let mut tag: pg_sys::LOCKTAG = unsafe { std::mem::zeroed() };
    tag.locktag_field1 = unsafe { pg_sys::MyDatabaseId }.to_u32();
    tag.locktag_field2 = class as i32 as u32;
    tag.locktag_field3 = hash;
    tag.locktag_field4 = 2;
    tag.locktag_type = pg_sys::LockTagType::LOCKTAG_ADVISORY as u8;
    tag.locktag_lockmethodid = pg_sys::USER_LOCKMETHOD as u8;
    tag
}

/// The second key of a lock taken without SQL: FNV-1a of `key`'s bytes (the same on every
/// backend and platform).
pub fn hash_key(key: &str) -> u32 {
    key.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// Takes `tag` in `mode` (e.g. `pg_sys::ShareLock`, which any number of holders share, or
/// `pg_sys::ExclusiveLock`, which waits for them all), transaction-level, waiting for it like
/// any lock (so `lock_timeout` applies: 55P03, and the deadlock detector sees the wait).
/// Release it with [`release_mode`] as soon as what it protects is written; an error in
/// between releases it with the rollback.
pub fn wait_mode(tag: &pg_sys::LOCKTAG, mode: u32) {
    unsafe { pg_sys::LockAcquire(tag, mode as i32, false, false) };
}

/// Releases `tag` held in `mode` (taken with [`wait_mode`]) before the transaction ends.
pub fn release_mode(tag: &pg_sys::LOCKTAG, mode: u32) {
    unsafe { pg_sys::LockRelease(tag, mode as i32, false) };
}

/// Tries `tag` in exclusive mode, transaction-level, without waiting; whether it was taken.
pub fn try_now(tag: &pg_sys::LOCKTAG) -> bool {
    unsafe { pg_sys::LockAcquire(tag, pg_sys::ExclusiveLock as i32, false, true) != pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL }
}

/// Releases `tag` (taken with [`try_now`]) before the transaction ends.
pub fn release(tag: &pg_sys::LOCKTAG) {
    unsafe { pg_sys::LockRelease(tag, pg_sys::ExclusiveLock as i32, false) };
}
