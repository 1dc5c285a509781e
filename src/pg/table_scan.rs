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

    /// A snapshot of everything committed now (`GetLatestSnapshot`), and this transaction's own
    /// changes: what a per-backend cache of settings must read, whatever the transaction's
    /// isolation level (a REPEATABLE READ snapshot may predate changes whose invalidations
    /// this backend has already processed).
    pub fn latest() -> Snapshot {
        unsafe {
            pg_sys::CommandCounterIncrement();
            Snapshot(pg_sys::RegisterSnapshot(pg_sys::GetLatestSnapshot()), None)
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

/// The sum of the numeric column `column` (dollars, PostgreSQL's exact `numeric_add` on the
/// stored values) over the rows of slot table `table` whose text key columns equal `keys`,
/// visible to `snapshot`, read with [`newest_versions`] through its primary key, whose
/// leading columns must be the key columns. Raises 55000 when the primary key is not of a
/// slot table's shape.
pub fn sum_numeric_newest_first(
    snapshot: &Snapshot,
    table: &'static CStr,
    keys: &[(&'static str, &str)],
    column: &'static str,
) -> pgrx::AnyNumeric {
    let mut total = pgrx::AnyNumeric::from(0).into_datum().expect("numeric datum");
    unsafe {
        let rel = pg_sys::table_open(oid(table), pg_sys::AccessShareLock as i32);
        let desc = pgrx::PgTupleDesc::from_pg_unchecked((*rel).rd_att);
        let value_attnum = attnum(&desc, column);
        let scankeys = text_keys(&desc, keys, true);
        newest_versions(snapshot.0, rel, &scankeys, |tts| {
            let mut isnull = false;
            let d = pg_sys::slot_getattr(tts, value_attnum, &mut isnull);
            if !isnull {
                total =
                    pgrx::direct_function_call_as_datum(pg_sys::numeric_add, &[Some(total), Some(d)]).expect("numeric_add of two numerics");
            }
        });
        pg_sys::table_close(rel, pg_sys::NoLock as i32);
        pgrx::AnyNumeric::from_datum(total, false).expect("numeric sum")
    }
}

/// Calls `each` with every row of slot table `rel` visible to `snapshot` (among those whose
/// key columns match `scankeys`, which are on index column numbers and fix every key column
/// or none), found through the table's primary key, which must be the table's text key
/// columns followed by `slot` (raises 55000 otherwise; primary-key columns are never NULL).
///
/// Newest first, so that the cost does not grow with the dead versions that a long-held
/// snapshot elsewhere keeps (every write updates its slot row; each page of versions adds an
/// index entry, and each entry leads to a chain of versions). The primary key is walked
/// backward; its entries of one (key, slot) are adjacent, ordered by heap position, so the
/// newest version comes first. Under an MVCC snapshot a slot row has at most one visible
/// version, so once it is found the rest of that (key, slot) is skipped: its next few entries
/// are passed by comparing their key and slot (read from the index entry) without visiting
/// the heap, and past [`DESCEND_AFTER`] of them the index is descended anew to the entries
/// below it: `slot <= found - 1` when `scankeys` fix every key column (one scope, as
/// `budget_check` reads), else the row comparison `(key columns, slot) < (found key, found
/// slot)` (a whole table, as the views read). So the cost stays within a few entries and one
/// descent per visible row, whatever the number of dead versions.
///
/// # Safety
/// `rel` must be open (at least ACCESS SHARE) and `snapshot` an MVCC snapshot that stays valid
/// during the call.
pub unsafe fn newest_versions(
    snapshot: pg_sys::Snapshot,
    rel: pg_sys::Relation,
    scankeys: &[pg_sys::ScanKeyData],
    mut each: impl FnMut(*mut pg_sys::TupleTableSlot),
) {
    let desc = pgrx::PgTupleDesc::from_pg_unchecked((*rel).rd_att);
    let slot_attnum = attnum(&desc, "slot") as i16;
    let pkey = pg_sys::RelationGetPrimaryKeyIndex(rel);
    let irel = if pkey == pg_sys::InvalidOid { std::ptr::null_mut() } else { pg_sys::index_open(pkey, pg_sys::AccessShareLock as i32) };
    let shape_ok = !irel.is_null() && {
        let n = (*(*irel).rd_index).indnkeyatts as usize;
        let indkey = (*(*irel).rd_index).indkey.values.as_slice(n);
        n > scankeys.len()
            && indkey[n - 1] == slot_attnum
            && desc.get(slot_attnum as usize - 1).map(|a| a.atttypid) == Some(pg_sys::INT4OID)
            && indkey[..n - 1].iter().all(|a| *a > 0 && desc.get(*a as usize - 1).map(|att| att.atttypid) == Some(pg_sys::TEXTOID))
    };
    if !shape_ok {
        crate::error::raise(
            crate::error::Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            format!(
                "the primary key of neon_budget.{} is not (key columns, slot)",
                std::ffi::CStr::from_ptr((*(*rel).rd_rel).relname.data.as_ptr()).to_string_lossy()
            ),
            "Run ALTER EXTENSION neon_budget UPDATE; in this database (it keeps every recorded cent).",
        );
    }
    let nkeys = (*(*irel).rd_index).indnkeyatts as usize - 1;
    // The row comparison below covers every key column from the first: callers fix all of
    // them (one scope) or none (a whole table).
    assert!(scankeys.is_empty() || scankeys.len() == nkeys, "newest_versions: fix every key column or none");
    let one_scope = scankeys.len() == nkeys;
    // The given keys, then the bound below which the next visible row is looked for: at first
    // every slot; the row comparison's members live in `row` while the scan uses them.
    let mut keys: Vec<pg_sys::ScanKeyData> = scankeys.to_vec();
    keys.push(slot_at_most(nkeys as i16 + 1, i32::MAX));
    let mut row: Vec<pg_sys::ScanKeyData> = Vec::new();
    let scan = pg_sys::index_beginscan(rel, irel, snapshot, keys.len() as i32, 0);
    (*scan).xs_want_itup = true;
    pg_sys::index_rescan(scan, keys.as_mut_ptr(), keys.len() as i32, std::ptr::null_mut(), 0);
    let tts = pg_sys::table_slot_create(rel, std::ptr::null_mut());
    let mut values = [pg_sys::Datum::from(0usize); pg_sys::INDEX_MAX_KEYS as usize];
    let mut nulls = [false; pg_sys::INDEX_MAX_KEYS as usize];
    // The (key, slot) whose visible row was found last (as bytes, see `key_bytes`), the current
    // entry's, and how many entries of the found one were passed since.
    let mut found: Option<Vec<u8>> = None;
    let mut entry: Vec<u8> = Vec::new();
    let mut passed = 0;
    loop {
        pgrx::check_for_interrupts!();
        let tid = pg_sys::index_getnext_tid(scan, pg_sys::ScanDirection::BackwardScanDirection);
        if tid.is_null() {
            break;
        }
        pg_sys::index_deform_tuple((*scan).xs_itup, (*scan).xs_itupdesc, values.as_mut_ptr(), nulls.as_mut_ptr());
        key_bytes(&mut entry, &values[..=nkeys], if one_scope { 0 } else { nkeys });
        if found.as_ref() == Some(&entry) {
            // An older version of a row already found: walk on, or after a few, descend below it.
            passed += 1;
            if passed >= DESCEND_AFTER {
                let Some(slot) = i32::from_datum(values[nkeys], nulls[nkeys]) else { break };
                let below = if one_scope {
                    let Some(next) = slot.checked_sub(1) else { break };
                    slot_at_most(nkeys as i16 + 1, next)
                } else {
                    let members = row_below(irel, &values[..=nkeys]);
                    let header = row_header(&members);
                    row = members;
                    header
                };
                *keys.last_mut().expect("the bound") = below;
                pg_sys::index_rescan(scan, keys.as_mut_ptr(), keys.len() as i32, std::ptr::null_mut(), 0);
                passed = 0;
            }
            continue;
        }
        if pg_sys::index_fetch_heap(scan, tts) {
            each(tts);
            found = Some(std::mem::take(&mut entry));
            passed = 0;
        }
    }
    drop(row);
    pg_sys::ExecDropSingleTupleTableSlot(tts);
    pg_sys::index_endscan(scan);
    pg_sys::index_close(irel, pg_sys::NoLock as i32);
}

/// After how many index entries of a row already found [`newest_versions`] descends the
/// index anew below that row instead of walking on: an entry costs a fraction of a descent,
/// so a row with few old versions is walked past and one with many is skipped.
const DESCEND_AFTER: u32 = 2;

/// Writes into `out` the bytes of a primary-key entry's first `text_keys` text values and its
/// slot (`values`: the entry's key columns, then the slot), each text as its length and data.
/// Equal bytes mean equal values; equal values stored differently would only cost
/// [`newest_versions`] a heap visit that finds nothing visible.
unsafe fn key_bytes(out: &mut Vec<u8>, values: &[pg_sys::Datum], text_keys: usize) {
    out.clear();
    for value in &values[..text_keys] {
        let text = pg_sys::pg_detoast_datum_packed(value.cast_mut_ptr());
        let len = pgrx::varlena::varsize_any_exhdr(text);
        out.extend_from_slice(&(len as u32).to_le_bytes());
        out.extend_from_slice(std::slice::from_raw_parts(pgrx::varlena::vardata_any(text) as *const u8, len));
    }
    out.extend_from_slice(&(values[values.len() - 1].value() as u32).to_le_bytes());
}

/// A scan key `slot <= at_most` on index column `column` (1-based), for [`newest_versions`].
unsafe fn slot_at_most(column: i16, at_most: i32) -> pg_sys::ScanKeyData {
    let mut key = std::mem::MaybeUninit::<pg_sys::ScanKeyData>::zeroed().assume_init();
    pg_sys::ScanKeyEntryInitialize(
        &mut key,
        0,
        column,
        pg_sys::BTLessEqualStrategyNumber as u16,
        pg_sys::InvalidOid,
        pg_sys::InvalidOid,
        pg_sys::Oid::from(pg_sys::F_INT4LE),
        pg_sys::Datum::from(at_most),
    );
    key
}

/// The members of the row comparison `(key columns, slot) < (values)` on index `irel`'s
/// columns (text keys with their index collation, then the int4 slot, last in `values`), as
/// the executor builds them for `ROW(...) < ROW(...)` (each member with its type's btree
/// three-way comparison function, which nbtree calls for row members); the text values are
/// copied, since the index entry they come from does not outlive the next rescan.
unsafe fn row_below(irel: pg_sys::Relation, values: &[pg_sys::Datum]) -> Vec<pg_sys::ScanKeyData> {
    let n = values.len();
    (0..n)
        .map(|i| {
            let last = i == n - 1;
            let flags = pg_sys::SK_ROW_MEMBER | if last { pg_sys::SK_ROW_END } else { 0 };
            let (collation, procedure, argument) = if last {
                (pg_sys::InvalidOid, pg_sys::F_BTINT4CMP, values[i])
            } else {
                let copy = pg_sys::pg_detoast_datum_copy(values[i].cast_mut_ptr());
                (*(*irel).rd_indcollation.add(i), pg_sys::F_BTTEXTCMP, pg_sys::Datum::from(copy))
            };
            let mut key = std::mem::MaybeUninit::<pg_sys::ScanKeyData>::zeroed().assume_init();
            pg_sys::ScanKeyEntryInitialize(
                &mut key,
                flags as i32,
                i as i16 + 1,
                pg_sys::BTLessStrategyNumber as u16,
                pg_sys::InvalidOid,
                collation,
                pg_sys::Oid::from(procedure),
                argument,
            );
            key
        })
        .collect()
}

/// The header scan key of the row comparison whose members are `members` (see [`row_below`]),
/// filled in by hand as the executor does: `ScanKeyEntryInitialize` asserts that a key without
/// a function is an IS NULL test.
fn row_header(members: &[pg_sys::ScanKeyData]) -> pg_sys::ScanKeyData {
    let mut key: pg_sys::ScanKeyData = unsafe { std::mem::MaybeUninit::zeroed().assume_init() };
    key.sk_flags = pg_sys::SK_ROW_HEADER as i32;
    key.sk_attno = members[0].sk_attno;
    key.sk_strategy = pg_sys::BTLessStrategyNumber as u16;
    key.sk_argument = pg_sys::Datum::from(members.as_ptr());
    key
}

/// Equality scan keys on text columns `keys` of the table described by `desc`, each with the
/// column's collation: on table attribute numbers (for `systable_beginscan`, which maps them to
/// the index's), or on index column numbers 1, 2, ... when `on_index_columns` (for
/// `index_rescan`; the keys must then be the index's leading columns, in order).
unsafe fn text_keys(desc: &pgrx::PgTupleDesc<'_>, keys: &[(&'static str, &str)], on_index_columns: bool) -> Vec<pg_sys::ScanKeyData> {
    let mut scankeys: Vec<pg_sys::ScanKeyData> = Vec::with_capacity(keys.len());
    for (i, (column, value)) in keys.iter().enumerate() {
        let attnum = attnum(desc, column) as i16;
        // The column's collation, which its index is sorted by (ScanKeyInit would use "C",
        // which is only right for catalogs and C-collation databases).
        let collation = desc.get(attnum as usize - 1).map(|a| a.attcollation).unwrap_or(pg_sys::DEFAULT_COLLATION_OID);
        let mut key = std::mem::MaybeUninit::<pg_sys::ScanKeyData>::zeroed().assume_init();
        pg_sys::ScanKeyEntryInitialize(
            &mut key,
            0,
            if on_index_columns { i as i16 + 1 } else { attnum },
            pg_sys::BTEqualStrategyNumber as u16,
            pg_sys::InvalidOid,
            collation,
            pg_sys::Oid::from(pg_sys::F_TEXTEQ),
            value.into_datum().expect("text datum"),
        );
        scankeys.push(key);
    }
    scankeys
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
        let desc = pgrx::PgTupleDesc::from_pg_unchecked((*rel).rd_att);
        let mut scankeys = text_keys(&desc, keys, false);
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
