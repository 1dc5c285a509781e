//! Reading a few rows of the extension's small tables by an index, without the executor:
//! PostgreSQL's `systable_beginscan` (the scan it uses for its own catalogs, which works on any
//! table with a btree index) under an MVCC snapshot. `budget_check` reads its whole state this
//! way (a dozen index lookups), which costs a fraction of one prepared SQL statement's executor
//! start-up.
//!
//! Visibility is that of a statement run through SPI at this point: a new snapshot (READ
//! COMMITTED) or the transaction's (REPEATABLE READ and up), after a command counter increment,
//! so this transaction's earlier writes are seen. Keys compare with the column's collation. Tables are locked
//! ACCESS SHARE until the end of the transaction, as the executor does. No privilege checks
//! are made: callers are the extension's own functions, which decide what they return.
use crate::pg::backend_cache::{attnum, oid};
use pgrx::prelude::*;
use std::ffi::CStr;

/// A snapshot for a read now (see the module docs), or a dirty one; a registered snapshot is
/// unregistered when dropped.
pub struct Snapshot(pg_sys::Snapshot, Option<Box<pg_sys::SnapshotData>>);

impl Snapshot {
    pub fn take() -> Snapshot {
        unsafe {
            // As SPI does before a statement: this transaction's earlier writes become visible.
            pg_sys::CommandCounterIncrement();
            Snapshot(pg_sys::RegisterSnapshot(pg_sys::GetTransactionSnapshot()), None)
        }
    }

    /// PostgreSQL's dirty snapshot (`InitDirtySnapshot`): every row version that is committed
    /// and not deleted by a committed transaction, or written by a transaction in progress,
    /// including this one's latest. An index scan with it returns each such version (both
    /// versions of a row that a transaction in progress updated).
    pub fn dirty() -> Snapshot {
        let mut data: Box<pg_sys::SnapshotData> = Box::new(unsafe { std::mem::zeroed() });
        data.snapshot_type = pg_sys::SnapshotType::SNAPSHOT_DIRTY;
        let ptr: *mut pg_sys::SnapshotData = &mut *data;
        Snapshot(ptr, Some(data))
    }
}

impl Snapshot {
    /// For a dirty snapshot, after a row was returned: the transaction still in progress that
    /// inserted or is deleting it (PostgreSQL sets the snapshot's `xmin` / `xmax` so), if any.
    pub fn in_progress(&self) -> Option<pg_sys::TransactionId> {
        let data = self.1.as_ref()?;
        [data.xmin, data.xmax].into_iter().find(|x| *x != pg_sys::InvalidTransactionId)
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        if self.1.is_none() {
            unsafe { pg_sys::UnregisterSnapshot(self.0) }
        }
    }
}

/// A column of a scanned row.
pub struct Row {
    tuple: pg_sys::HeapTuple,
    desc: pg_sys::TupleDesc,
}

impl Row {
    /// The value of column `name`.
    pub fn get<T: FromDatum>(&self, name: &'static str) -> Option<T> {
        let (d, isnull) = self.datum(name);
        unsafe { T::from_datum(d, isnull) }
    }

    /// The raw datum of column `name` and whether it is NULL; valid while the row is.
    fn datum(&self, name: &'static str) -> (pg_sys::Datum, bool) {
        unsafe {
            let attnum = attnum(&pgrx::PgTupleDesc::from_pg_unchecked(self.desc), name);
            let mut isnull = false;
            let d = pg_sys::heap_getattr(self.tuple, attnum, self.desc, &mut isnull);
            (d, isnull)
        }
    }
}

/// The sum of the numeric column `column` over the rows [`scan_text_eq`] finds, in dollars
/// (PostgreSQL's exact `numeric_add`, on the stored values).
pub fn sum_numeric(
    snapshot: &Snapshot,
    table: &'static CStr,
    index: &'static CStr,
    keys: &[(&'static str, &str)],
    column: &'static str,
) -> pgrx::AnyNumeric {
    let mut total = pgrx::AnyNumeric::from(0).into_datum().expect("numeric datum");
    scan_text_eq(snapshot, table, index, keys, |r| {
        let (d, isnull) = r.datum(column);
        if !isnull {
            total = unsafe { pgrx::direct_function_call_as_datum(pg_sys::numeric_add, &[Some(total), Some(d)]) }
                .expect("numeric_add of two numerics");
        }
    });
    unsafe { pgrx::AnyNumeric::from_datum(total, false) }.expect("numeric sum")
}

/// What a dirty snapshot finds of the rows with these text column values (see
/// [`scan_text_eq`]).
#[derive(Debug, PartialEq)]
pub enum Found {
    /// No version that is committed, or written or deleted by a transaction in progress.
    Nothing,
    /// A committed version that no transaction in progress deletes.
    Committed,
    /// A version that this transaction in progress inserted or is deleting.
    InProgress(pg_sys::TransactionId),
}

/// Looks the rows up with PostgreSQL's dirty snapshot (as its unique checks do): committed
/// versions and those of transactions in progress, in the order of the index. A transaction
/// that committed but is not yet out of the process array still counts as in progress.
/// The index is given by its OID (the caller may have recognised it by its definition,
/// whatever its name).
pub fn find_dirty(table: &'static CStr, index_oid: pg_sys::Oid, keys: &[(&'static str, &str)]) -> Found {
    let snapshot = Snapshot::dirty();
    let mut found = Found::Nothing;
    scan_text_eq_at(&snapshot, table, index_oid, keys, |_| match snapshot.in_progress() {
        Some(xid) => found = Found::InProgress(xid),
        None if found == Found::Nothing => found = Found::Committed,
        None => {}
    });
    found
}

/// Calls `each` for every row of `table` visible to `snapshot` whose text columns equal the
/// given values (`(column, value)`), found with `index`, whose leading columns must be those
/// columns.
pub fn scan_text_eq(
    snapshot: &Snapshot,
    table: &'static CStr,
    index: &'static CStr,
    keys: &[(&'static str, &str)],
    each: impl FnMut(&Row),
) {
    scan_text_eq_at(snapshot, table, oid(index), keys, each)
}

/// [`scan_text_eq`] with the index given by its OID.
pub fn scan_text_eq_at(
    snapshot: &Snapshot,
    table: &'static CStr,
    index_oid: pg_sys::Oid,
    keys: &[(&'static str, &str)],
    mut each: impl FnMut(&Row),
) {
    let table_oid = oid(table);
    unsafe {
        let rel = pg_sys::table_open(table_oid, pg_sys::AccessShareLock as i32);
        let mut scankeys: Vec<pg_sys::ScanKeyData> = Vec::with_capacity(keys.len());
        let desc = pgrx::PgTupleDesc::from_pg_unchecked((*rel).rd_att);
        for (column, value) in keys {
            let attnum = attnum(&desc, column) as i16;
            // The column's collation, which its index is sorted by (ScanKeyInit would use "C",
            // which is only right for catalogs and C-collation databases).
            let collation = desc.get(attnum as usize - 1).map(|a| a.attcollation).unwrap_or(pg_sys::DEFAULT_COLLATION_OID);
            let mut key = std::mem::MaybeUninit::<pg_sys::ScanKeyData>::zeroed().assume_init();
            pg_sys::ScanKeyEntryInitialize(
                &mut key,
                0,
                attnum,
                pg_sys::BTEqualStrategyNumber as u16,
                pg_sys::InvalidOid,
                collation,
                pg_sys::Oid::from(pg_sys::F_TEXTEQ),
                value.into_datum().expect("text datum"),
            );
            scankeys.push(key);
        }
        let scan = pg_sys::systable_beginscan(rel, index_oid, true, snapshot.0, scankeys.len() as i32, scankeys.as_mut_ptr());
        loop {
            let tuple = pg_sys::systable_getnext(scan);
            if tuple.is_null() {
                break;
            }
            each(&Row { tuple, desc: (*rel).rd_att });
        }
        pg_sys::systable_endscan(scan);
        pg_sys::table_close(rel, pg_sys::NoLock as i32);
    }
}
