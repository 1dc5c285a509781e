//! Aggregate slots and the heap fast path that writes them.
//!
//! The maintained aggregates keep one row per (key, month, slot) and a writer only ever
//! updates its own slot's rows, so concurrent writers never wait on each other's row locks.
//! The slot is the backend's id ([`current`]), which is unique among the backends running at
//! once and reused after a backend exits, so a key has at most `max_connections` slot rows.
//!
//! The write fast path of the aggregates: a backend updates its OWN slot rows
//! of `_month_spend`, `_campaign_spend`, `_agent_spend`, `_day_spend` and `_campaign_agent_day_spend`
//! with PostgreSQL's heap API instead of
//! an SQL upsert, the way PostgreSQL updates its own catalogs (`CatalogTupleUpdate`: a normal
//! MVCC update, WAL-logged, HOT when it can be, index entries when it cannot). This removes the
//! executor start-up, planning checks and index searches of three `INSERT ... ON CONFLICT DO
//! UPDATE` statements from every `track_cost`.
//!
//! The backend remembers the TID (ctid) of the latest version of each of its slot rows. Before
//! it updates one it re-reads the row at that TID under a buffer lock and uses it only if it is
//! still the row it expects (same key and slot) and updatable now (`HeapTupleSatisfiesUpdate`
//! is `TM_Ok`: not deleted or updated since, not locked by another transaction, not from a
//! rolled-back (sub)transaction; or `TM_BeingModified` by this transaction's own row lock).
//! Anything else (first write of a key, a rollback, a `budget_rebuild`, a prepared transaction
//! holding the row, an SQL-path write of the row) makes [`try_apply`] return `false` before it
//! changes anything, and the caller applies the row with SQL, which also returns the new TIDs.
//! Only the backend that owns a slot writes its rows outside `budget_rebuild`, which locks
//! `billing_log` against writers, so a validated row cannot change before it is updated.
use crate::error::{raise, Code};
use crate::pg::backend_cache::{self, attnum};
use crate::pg::cache::{self, Cache, CacheAlloc, Follows, Text};
use hashbrown::Equivalent;
use pgrx::prelude::*;
use pgrx::{AnyNumeric, PgTupleDesc};
use std::cell::RefCell;
use std::hash::{Hash, Hasher};

/// This backend's aggregate slot: its backend id, 1..MaxBackends.
pub fn current() -> i32 {
    crate::pg::compat::backend_id()
}

/// The five aggregate tables, in the order of [`Rels`] and of
/// `neon_budget_common::aggregates::AGGREGATES`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Table {
    Month = 0,
    Campaign = 1,
    Agent = 2,
    Day = 3,
    /// `_campaign_agent_day_spend`: per campaign ('' = none), agent type and day.
    CampaignAgentDay = 4,
}

impl Table {
    /// Every table, in `AGGREGATES` order.
    pub const ALL: [Table; 5] = [Table::Month, Table::Campaign, Table::Agent, Table::Day, Table::CampaignAgentDay];
}

/// OIDs of the slot tables and of `alert_state` (whose relcache invalidation is the extension's
/// "budget settings changed" signal, see `write/scope_cache.rs`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Rels {
    pub slot_tables: [pg_sys::Oid; 5],
    pub alert_state: pg_sys::Oid,
}

/// One change to a column of a slot row.
#[derive(Clone)]
pub enum Delta {
    /// Add to a `numeric` column (None: add nothing).
    Num(&'static str, Option<AnyNumeric>),
    /// Add to a `bigint` column.
    Int(&'static str, i64),
    /// Set a `numeric` column (the alert grant, `write/alert_grants.rs`).
    Set(&'static str, AnyNumeric),
}

/// The key of one of this backend's slot rows: its table and its text key columns (e.g.
/// `("billing_month", "2026-11")`). It is also the borrowed form of [`SlotKey`], so looking a
/// row's TID up allocates nothing.
pub struct Key<'a> {
    pub table: Table,
    pub columns: &'a [(&'static str, &'a str)],
}

impl<'a> Key<'a> {
    pub fn new(table: Table, columns: &'a [(&'static str, &'a str)]) -> Self {
        Key { table, columns }
    }

    fn to_key(&self) -> SlotKey {
        let mut values = allocator_api2::vec::Vec::with_capacity_in(self.columns.len(), CacheAlloc);
        values.extend(self.columns.iter().map(|(_, v)| Text::new(v)));
        SlotKey { table: self.table, values }
    }
}

/// A slot row's key as cached: its table and the values of its key columns, in the caches'
/// memory context.
#[derive(PartialEq, Eq)]
pub struct SlotKey {
    table: Table,
    values: allocator_api2::vec::Vec<Text, CacheAlloc>,
}

impl Hash for SlotKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u8(self.table as u8);
        for v in self.values.iter() {
            v.as_str().hash(state);
        }
    }
}

impl Hash for Key<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u8(self.table as u8);
        for (_, v) in self.columns {
            v.hash(state);
        }
    }
}

impl Equivalent<SlotKey> for Key<'_> {
    fn equivalent(&self, key: &SlotKey) -> bool {
        self.table == key.table
            && self.columns.len() == key.values.len()
            && self.columns.iter().zip(key.values.iter()).all(|((_, a), b)| *a == b.as_str())
    }
}

thread_local! {
    /// The TID of the latest version of each of this backend's slot rows.
    static TIDS: RefCell<Cache<SlotKey, pg_sys::ItemPointerData>> = RefCell::new(Cache::new(Follows::Settings, cache::PER_CAMPAIGN));
}

/// The OIDs of the extension's slot tables and `alert_state`, looked up once per backend (and
/// again after an invalidation, e.g. DROP and CREATE EXTENSION in the same session); their
/// invalidations are the ones that empty the backend's caches (`pg/backend_cache.rs`).
pub fn rels() -> Rels {
    let w = backend_cache::watched();
    Rels { slot_tables: [w[0], w[1], w[2], w[3], w[4]], alert_state: w[crate::pg::invalidation::ALERT_STATE] }
}

/// Forgets the TIDs of this backend's slot rows (after it rewrote them with SQL).
pub fn forget_tids() {
    TIDS.with(|t| t.borrow_mut().clear());
}

/// Remembers the TID of the latest version of one of this backend's slot rows (from the SQL
/// path's `RETURNING ctid`).
pub fn remember(key: &Key<'_>, tid: pg_sys::ItemPointerData) {
    TIDS.with(|t| t.borrow_mut().insert(key.to_key(), tid));
}

/// A validated slot row: its TID and a palloc'd copy of its current version.
struct Fetched {
    tid: pg_sys::ItemPointerData,
    copy: pg_sys::HeapTuple,
}

/// Reads the row at `tid` of `rel` and returns a copy if it is the expected key of this slot
/// and updatable by this transaction now.
unsafe fn fetch(rel: pg_sys::Relation, tid: pg_sys::ItemPointerData, key: &Key<'_>, slot: i32) -> Option<Fetched> {
    let blk = pgrx::itemptr::item_pointer_get_block_number(&tid);
    let off = pgrx::itemptr::item_pointer_get_offset_number(&tid);
    if off == 0 || blk >= pg_sys::RelationGetNumberOfBlocksInFork(rel, pg_sys::ForkNumber::MAIN_FORKNUM) {
        return None;
    }
    let buf = pg_sys::ReadBuffer(rel, blk);
    // Prune dead versions of the page's HOT chains when it is getting full, as an index fetch
    // does: the update below then stays on the page (HOT, no index entry, no bloat).
    pg_sys::heap_page_prune_opt(rel, buf);
    pg_sys::LockBuffer(buf, pg_sys::BUFFER_LOCK_SHARE as i32);
    let page = pg_sys::BufferGetPage(buf);
    let mut copy = std::ptr::null_mut();
    if off <= pg_sys::PageGetMaxOffsetNumber(page) {
        let lp = pg_sys::PageGetItemId(page, off);
        if (*lp).lp_flags() == pg_sys::LP_NORMAL {
            let mut tuple = pg_sys::HeapTupleData {
                t_len: (*lp).lp_len(),
                t_self: tid,
                t_tableOid: (*rel).rd_id,
                t_data: pg_sys::PageGetItem(page, lp) as pg_sys::HeapTupleHeader,
            };
            let res = pg_sys::HeapTupleSatisfiesUpdate(&mut tuple, pg_sys::GetCurrentCommandId(false), buf);
            if res == pg_sys::TM_Result::TM_Ok || (res == pg_sys::TM_Result::TM_BeingModified && locked_by_us(tuple.t_data)) {
                copy = pg_sys::heap_copytuple(&mut tuple);
            }
        }
    }
    pg_sys::UnlockReleaseBuffer(buf);
    if copy.is_null() {
        return None;
    }
    // Same key and slot? (A TID can be reused for another row after VACUUM.)
    let desc = PgTupleDesc::from_pg_unchecked((*rel).rd_att);
    for (col, want) in key.columns.iter().copied().map(|(c, v)| (c, Some(v))).chain([("slot", None)]) {
        let attnum = attnum(&desc, col);
        let mut isnull = false;
        let d = pg_sys::heap_getattr(copy, attnum, (*rel).rd_att, &mut isnull);
        let same = match want {
            Some(v) => <&str as FromDatum>::from_datum(d, isnull) == Some(v),
            None => <i32 as FromDatum>::from_datum(d, isnull) == Some(slot),
        };
        if !same {
            return None;
        }
    }
    Some(Fetched { tid, copy })
}

/// Whether the only lock on a row version is this transaction's own row lock (an `INSERT ...
/// ON CONFLICT DO UPDATE` of this transaction leaves one on the version it wrote):
/// `heap_update` proceeds over it, as it does for the SQL path's next update.
unsafe fn locked_by_us(t: pg_sys::HeapTupleHeader) -> bool {
    let infomask = u32::from((*t).t_infomask);
    let lock_only = infomask & pg_sys::HEAP_XMAX_LOCK_ONLY != 0
        || infomask & (pg_sys::HEAP_XMAX_IS_MULTI | pg_sys::HEAP_LOCK_MASK) == pg_sys::HEAP_XMAX_EXCL_LOCK;
    lock_only && infomask & pg_sys::HEAP_XMAX_IS_MULTI == 0 && pg_sys::TransactionIdIsCurrentTransactionId((*t).t_choice.t_heap.t_xmax)
}

/// Adds `deltas` to this backend's slot rows of `keys` (one per table) with the heap API.
/// Returns `false`, having changed nothing, when any of the rows is not known or not
/// updatable here (the caller then uses SQL). Raises 22003 if a bigint counter would overflow.
pub fn try_apply(rels: &Rels, slot: i32, rows: &[(Key<'_>, Vec<Delta>)]) -> bool {
    let tids: Vec<Option<pg_sys::ItemPointerData>> = TIDS.with(|t| {
        let mut t = t.borrow_mut();
        rows.iter().map(|(k, _)| t.get(k).copied()).collect()
    });
    if tids.iter().any(Option::is_none) {
        return false;
    }
    unsafe {
        // Rows this command wrote are not updatable by it (TM_Invisible): a new command id
        // makes the previous statement's writes (and the SQL path's) updatable.
        pg_sys::CommandCounterIncrement();
        let opened: Vec<pg_sys::Relation> =
            rows.iter().map(|(k, _)| pg_sys::table_open(rels.slot_tables[k.table as usize], pg_sys::RowExclusiveLock as i32)).collect();
        let mut fetched = Vec::with_capacity(rows.len());
        for ((rel, (key, _)), tid) in opened.iter().zip(rows).zip(&tids) {
            match fetch(*rel, tid.unwrap(), key, slot) {
                Some(f) => fetched.push(f),
                None => break,
            }
        }
        let ok = fetched.len() == rows.len();
        if ok {
            for ((rel, (key, deltas)), f) in opened.iter().zip(rows).zip(fetched) {
                let new_tid = update(*rel, f, deltas);
                TIDS.with(|t| {
                    if let Some(tid) = t.borrow_mut().get_mut(key) {
                        *tid = new_tid;
                    }
                });
            }
        }
        for rel in opened {
            pg_sys::table_close(rel, pg_sys::NoLock as i32);
        }
        ok
    }
}

/// Writes the new version of a fetched row with `deltas` added; returns its TID.
unsafe fn update(rel: pg_sys::Relation, f: Fetched, deltas: &[Delta]) -> pg_sys::ItemPointerData {
    let tupdesc = (*rel).rd_att;
    let natts = (*tupdesc).natts as usize;
    let mut values = vec![pg_sys::Datum::from(0usize); natts];
    let mut nulls = vec![false; natts];
    pg_sys::heap_deform_tuple(f.copy, tupdesc, values.as_mut_ptr(), nulls.as_mut_ptr());
    let desc = PgTupleDesc::from_pg_unchecked(tupdesc);
    for delta in deltas {
        match delta {
            Delta::Num(_, None) => {}
            Delta::Num(col, Some(add)) => {
                let i = attnum(&desc, col) as usize - 1;
                // numeric_add on the stored datum: PostgreSQL's exact numeric addition.
                let add = add.clone().into_datum().expect("numeric datum");
                values[i] = if nulls[i] {
                    add
                } else {
                    pgrx::direct_function_call_as_datum(pg_sys::numeric_add, &[Some(values[i]), Some(add)])
                        .expect("numeric_add of two numerics")
                };
                nulls[i] = false;
            }
            Delta::Set(col, value) => {
                let i = attnum(&desc, col) as usize - 1;
                values[i] = value.clone().into_datum().expect("numeric datum");
                nulls[i] = false;
            }
            Delta::Int(col, add) => {
                let i = attnum(&desc, col) as usize - 1;
                let old = i64::from_datum(values[i], nulls[i]).unwrap_or(0);
                let new = old.checked_add(*add).unwrap_or_else(|| {
                    raise(
                        Code::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
                        format!("aggregate counter {col} out of range"),
                        "The month's counters passed 2^63; split the history with purge_before.",
                    )
                });
                values[i] = new.into();
                nulls[i] = false;
            }
        }
    }
    let newtup = pg_sys::heap_form_tuple(tupdesc, values.as_mut_ptr(), nulls.as_mut_ptr());
    let mut otid = f.tid;
    crate::pg::compat::simple_heap_update(rel, &mut otid, newtup);
    // A HOT update (new version on the same page, no indexed column changed) needs no index
    // entries; otherwise insert them, as PostgreSQL's CatalogTupleUpdate does.
    if !pg_sys::HeapTupleHeaderIsHeapOnly((*newtup).t_data) {
        insert_index_entries(rel, newtup);
    }
    (*newtup).t_self
}

/// Inserts the index entries of a new (non-HOT) version `tup` of one of this backend's slot
/// rows of `rel` into all its indexes (the slot tables have only plain-column indexes without a
/// predicate: their primary keys, and `_campaign_agent_day_spend`'s index by agent type).
unsafe fn insert_index_entries(rel: pg_sys::Relation, tup: pg_sys::HeapTuple) {
    let indstate = pg_sys::CatalogOpenIndexes(rel);
    let slot = pg_sys::MakeSingleTupleTableSlot((*rel).rd_att, &pg_sys::TTSOpsHeapTuple);
    pg_sys::ExecStoreHeapTuple(tup, slot, false);
    for i in 0..(*indstate).ri_NumIndices as usize {
        let index = *(*indstate).ri_IndexRelationDescs.add(i);
        let info = *(*indstate).ri_IndexRelationInfo.add(i);
        if !(*info).ii_ReadyForInserts {
            // Being built concurrently: it takes no entries yet (as in ExecInsertIndexTuples).
            continue;
        }
        if !(*info).ii_Expressions.is_null() || !(*info).ii_Predicate.is_null() || !(*info).ii_ExclusionOps.is_null() {
            // Such an index needs an executor to evaluate; the slot tables only have their
            // primary keys, and an index added by hand must not be silently mis-maintained.
            raise(
                Code::ERRCODE_FEATURE_NOT_SUPPORTED,
                "an expression or partial index on a neon_budget aggregate table is not supported",
                "Drop the index you added to the neon_budget aggregate table (_month_spend, _campaign_spend, _agent_spend, _day_spend or _campaign_agent_day_spend).",
            );
        }
        let mut values = [pg_sys::Datum::from(0usize); pg_sys::INDEX_MAX_KEYS as usize];
        let mut isnull = [false; pg_sys::INDEX_MAX_KEYS as usize];
        pg_sys::FormIndexDatum(info, slot, std::ptr::null_mut(), values.as_mut_ptr(), isnull.as_mut_ptr());
        // No unique check: the new version keeps the key of the version it replaces, and only
        // this backend writes this key (its slot). A unique check would visit every older
        // version of the row still in the index, which a long-held snapshot keeps from being
        // removed: the cost of each update would grow with the snapshot's age. indexUnchanged
        // lets btree delete those older entries bottom-up once they are dead to everyone.
        pg_sys::index_insert(
            index,
            values.as_mut_ptr(),
            isnull.as_mut_ptr(),
            &mut (*tup).t_self,
            rel,
            pg_sys::IndexUniqueCheck::UNIQUE_CHECK_NO,
            true,
            info,
        );
    }
    pg_sys::ExecDropSingleTupleTableSlot(slot);
    pg_sys::CatalogCloseIndexes(indstate);
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::*;
    use neon_budget_common::aggregates::AGGREGATES;

    /// [`Table`], [`Rels`] and the watched relations follow the declared order of the
    /// aggregates, which the generated single-row upsert returns its TIDs in.
    #[pg_test]
    fn tables_follow_the_declaration() {
        let rels = rels();
        for (i, a) in AGGREGATES.iter().enumerate() {
            let oid: pg_sys::Oid =
                Spi::get_one(&format!("SELECT 'neon_budget.{}'::regclass::oid", a.table)).unwrap().expect("the table exists");
            assert_eq!(rels.slot_tables[i], oid, "{}", a.table);
            assert_eq!(Table::ALL[i] as usize, i);
        }
    }
}
