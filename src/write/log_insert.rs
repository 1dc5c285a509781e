//! The `track_cost` fast path: one `billing_log` row inserted with PostgreSQL's heap and index
//! API instead of an SQL `INSERT`, the way PostgreSQL inserts its own catalog rows
//! (`CatalogTupleInsert`: `simple_heap_insert`, WAL-logged and visible to logical decoding,
//! then one entry per index with its unique check).
//!
//! An SQL `INSERT` run through SPI starts an executor for every call, and PostgreSQL 15 then
//! re-reads and re-plans the table's eight CHECK constraints and the WHEN clause of its BEFORE
//! trigger from their stored text, builds the statement's transition table and fires the
//! AFTER STATEMENT trigger through it: about a third of `track_cost`'s time. `track_cost` has
//! already validated every argument against the same rules, so it writes the row itself and
//! applies it to the aggregates directly (`triggers::apply_one`, as the trigger would).
//!
//! This is only done while `billing_log` is exactly as the extension created it, recognised by
//! definitions (`write/log_shape.rs`): anything a DBA may have added or changed that an `INSERT` would
//! run, and this path would not, sends the call to the SQL `INSERT` instead ([`insert`] gives
//! the row back, with the reason, before writing anything). So do `session_replication_role =
//! replica` and a value that a CHECK constraint would refuse (a billing month outside
//! `YYYY-MM`: the SQL path then raises the constraint's own error). Which path each write took,
//! and why, is counted in `write_path_stats` (`write/path_stats.rs`).
//!
//! A row with an `execution_id` takes this path too, when the caller's dirty probe found no
//! trace of the id (`execution_ids::retired`): it is inserted as PostgreSQL inserts a row of
//! `INSERT ... ON CONFLICT DO NOTHING`, speculatively, so that two calls racing with the same
//! new id never both record it and neither gets a unique violation ([`insert_speculative`]):
//! the loser's row is killed before anyone can see it, and its call then takes the SQL path,
//! which waits for the winner and returns the winner's row.
use crate::month::is_valid_month;
use crate::pg::backend_cache::{attnum, oid};
use crate::pg::cache::{Cache, Follows};
use pgrx::prelude::*;
use pgrx::{AnyNumeric, JsonB, PgTupleDesc};
use std::cell::RefCell;

/// Whether billing_log is as the extension made it, or why not.
type Shape = Result<(), String>;

thread_local! {
    /// Whether billing_log is as the extension made it (`write/log_shape.rs`; the reason when not),
    /// for the log generation it was found in.
    static SHAPE: RefCell<Option<(u64, Shape)>> = const { RefCell::new(None) };
    /// The sequence of the identity column `id`, per invalidation generation.
    static ID_SEQUENCE: RefCell<Cache<(), pg_sys::Oid>> = RefCell::new(Cache::new(Follows::Settings, 1));
}

/// One execution as `track_cost` records it (validated; `cost` in dollars, `created_at`
/// resolved, `billing_month` its `YYYY-MM` in `neon_budget.timezone`). An `execution_id` must
/// be one that a dirty probe found no trace of (`execution_ids::retired` / `traced`).
pub struct NewRow<'a> {
    pub agent_type: &'a str,
    pub campaign_id: Option<&'a str>,
    pub execution_id: Option<&'a str>,
    pub tokens: i64,
    pub cost: AnyNumeric,
    /// The agent rate `cost` was priced at (dollars per 1,000 tokens); None for a cost the
    /// caller reported.
    pub cost_per_1k_tokens: Option<AnyNumeric>,
    pub task: Option<&'a str>,
    pub impact_score: Option<f64>,
    pub conversion_achieved: Option<bool>,
    pub quality_score: Option<f64>,
    pub retry_count: Option<i32>,
    pub execution_time_ms: Option<i64>,
    pub metadata: Option<JsonB>,
    pub created_at: TimestampWithTimeZone,
    pub billing_month: String,
    /// The model that did the work (`billing_log.model`).
    pub model: Option<&'a str>,
    /// Input (uncached), output and cached-input tokens, given together.
    pub parts: Option<crate::model_prices::Parts>,
    /// The `effective_from` of the model price `cost` was priced at; None otherwise.
    pub model_price_from: Option<TimestampWithTimeZone>,
}

/// Inserts `row` into `billing_log` and applies it to the aggregates and alerts; returns the
/// new row as a composite datum, or gives `row` back (having written nothing visible) when the
/// SQL `INSERT` must be used (see the module docs), or when a concurrent call inserted the same
/// `execution_id` first ([`insert_speculative`]; the SQL `INSERT ... ON CONFLICT DO NOTHING`
/// then waits for it and returns its row). Errors are those of the INSERT: 23505 for an `id`
/// already taken (ids written by hand), 22003 from the aggregate counters.
pub fn insert(mut row: NewRow<'_>) -> Result<pg_sys::Datum, Box<(NewRow<'_>, String)>> {
    if !is_valid_month(&row.billing_month) {
        return Err(Box::new((row, "the billing month is not YYYY-MM".into())));
    }
    unsafe {
        if pg_sys::SessionReplicationRole == pg_sys::SESSION_REPLICATION_ROLE_REPLICA as i32 {
            return Err(Box::new((row, "session_replication_role is replica".into())));
        }
        let relid = oid(c"billing_log");
        // The lock keeps billing_log's definition as it is until the transaction ends, and
        // taking it processed every change committed before.
        let rel = pg_sys::table_open(relid, pg_sys::RowExclusiveLock as i32);
        let generation = crate::pg::backend_cache::log_generation(relid);
        let known = SHAPE.with(|s| s.borrow().as_ref().filter(|(g, _)| *g == generation).map(|(_, shape)| shape.clone()));
        let table = match &known {
            Some(shape) => shape.clone(),
            None => crate::write::log_shape::check_table(rel),
        };
        let indexes = if table.is_ok() { pg_sys::CatalogOpenIndexes(rel) } else { std::ptr::null_mut() };
        let shape = match (known, table) {
            (Some(shape), _) => shape,
            (None, table) => {
                // Checked once per relcache generation of billing_log.
                let shape = table.and_then(|()| crate::write::log_shape::check_indexes(rel, indexes));
                SHAPE.with(|s| *s.borrow_mut() = Some((generation, shape.clone())));
                shape
            }
        };
        if let Err(reason) = shape {
            if !indexes.is_null() {
                pg_sys::CatalogCloseIndexes(indexes);
            }
            pg_sys::table_close(rel, pg_sys::NoLock as i32);
            return Err(Box::new((row, reason)));
        }
        let tupdesc = (*rel).rd_att;
        let desc = PgTupleDesc::from_pg_unchecked(tupdesc);
        let natts = (*tupdesc).natts as usize;
        let mut values = vec![pg_sys::Datum::from(0usize); natts];
        let mut nulls = vec![true; natts];
        let mut set = |name: &'static str, d: Option<pg_sys::Datum>| {
            let i = attnum(&desc, name) as usize - 1;
            if let Some(d) = d {
                values[i] = d;
                nulls[i] = false;
            }
        };
        let id: Option<i64> = pgrx::direct_function_call(pg_sys::nextval_oid, &[id_sequence(rel).into_datum()]);
        set("id", id.into_datum());
        set("agent_type", row.agent_type.into_datum());
        set("campaign_id", row.campaign_id.into_datum());
        set("execution_id", row.execution_id.into_datum());
        set("tokens", row.tokens.into_datum());
        set("cost", row.cost.clone().into_datum());
        set("cost_per_1k_tokens", row.cost_per_1k_tokens.clone().into_datum());
        set("model", row.model.into_datum());
        set("input_tokens", row.parts.map(|p| p.input).into_datum());
        set("output_tokens", row.parts.map(|p| p.output).into_datum());
        set("cached_tokens", row.parts.map(|p| p.cached).into_datum());
        set("model_price_from", row.model_price_from.into_datum());
        set("task", row.task.into_datum());
        set("impact_score", row.impact_score.into_datum());
        set("conversion_achieved", row.conversion_achieved.into_datum());
        set("quality_score", row.quality_score.into_datum());
        set("retry_count", row.retry_count.into_datum());
        set("execution_time_ms", row.execution_time_ms.into_datum());
        // Given back with the row for the SQL path when a concurrent insertion of the same
        // execution_id wins (the only way back after this point); else moved.
        let metadata = if row.execution_id.is_some() { row.metadata.as_ref().map(|j| JsonB(j.0.clone())) } else { row.metadata.take() };
        set("metadata", metadata.into_datum());
        set("created_at", row.created_at.into_datum());
        set("billing_month", row.billing_month.as_str().into_datum());
        let tuple = pg_sys::heap_form_tuple(tupdesc, values.as_mut_ptr(), nulls.as_mut_ptr());
        let conflict = match row.execution_id {
            None => {
                pg_sys::simple_heap_insert(rel, tuple);
                insert_index_entries(rel, indexes, tuple, false);
                false
            }
            Some(_) => insert_speculative(rel, indexes, tuple),
        };
        pg_sys::CatalogCloseIndexes(indexes);
        if conflict {
            pg_sys::table_close(rel, pg_sys::NoLock as i32);
            return Err(Box::new((row, "a concurrent call was recording the same execution_id".into())));
        }
        let datum = pg_sys::heap_copy_tuple_as_datum(tuple, tupdesc);
        pg_sys::table_close(rel, pg_sys::NoLock as i32);
        // As after the INSERT statement: the row is visible to what follows.
        pg_sys::CommandCounterIncrement();
        super::apply_one(&super::OneRow {
            billing_day: crate::month::day_of(row.created_at.into()),
            billing_month: row.billing_month,
            campaign_id: row.campaign_id.map(str::to_string),
            agent_type: row.agent_type.to_string(),
            cost: row.cost,
            tokens: row.tokens,
            conversion_achieved: row.conversion_achieved,
            quality_score: row.quality_score,
            retry_count: row.retry_count,
            execution_time_ms: row.execution_time_ms,
            id,
            execution_id: row.execution_id.map(str::to_string),
        });
        crate::write::path_stats::count(crate::write::path_stats::HEAP, "track_cost", 1);
        Ok(datum)
    }
}

/// The identity sequence of `billing_log.id`, looked up once per invalidation generation (and
/// again if it was dropped since).
unsafe fn id_sequence(rel: pg_sys::Relation) -> pg_sys::Oid {
    let cached = ID_SEQUENCE.with(|s| s.borrow_mut().get(&()).copied());
    if let Some(seq) = cached {
        if pg_sys::SearchSysCacheExists(pg_sys::SysCacheIdentifier::RELOID as i32, seq.into(), 0.into(), 0.into(), 0.into()) {
            return seq;
        }
    }
    let desc = PgTupleDesc::from_pg_unchecked((*rel).rd_att);
    let seq = pg_sys::getIdentitySequence((*rel).rd_id, attnum(&desc, "id") as i16, false);
    ID_SEQUENCE.with(|s| s.borrow_mut().insert((), seq));
    seq
}

/// Inserts `tup`, a row with an execution_id, as PostgreSQL's `INSERT ... ON CONFLICT DO
/// NOTHING` does (`ExecInsert` in `nodeModifyTable.c`, after its pre-check, which the caller
/// made: `execution_ids::retired` probed the id with a dirty snapshot and found no trace):
/// a speculative heap insertion under this transaction's speculative insertion lock, its index
/// entries with the execution_id index's unique check deferred (`UNIQUE_CHECK_PARTIAL`), then
/// the insertion confirmed (`heap_finish_speculative`). When another transaction inserted the
/// same id since the probe, the insertion is killed instead (`heap_abort_speculative`: the row
/// never becomes visible to anyone, and a waiter on the lock goes on) and true is returned.
unsafe fn insert_speculative(rel: pg_sys::Relation, indexes: pg_sys::CatalogIndexState, tup: pg_sys::HeapTuple) -> bool {
    let xid = pg_sys::GetCurrentTransactionId();
    let token = pg_sys::SpeculativeInsertionLockAcquire(xid);
    // HeapTupleHeaderSetSpeculativeToken: heap_insert keeps this t_ctid for a speculative row.
    pgrx::itemptr::item_pointer_set_all(&mut (*(*tup).t_data).t_ctid, token, pg_sys::SpecTokenOffsetNumber as u16);
    pg_sys::heap_insert(rel, tup, pg_sys::GetCurrentCommandId(true), pg_sys::HEAP_INSERT_SPECULATIVE as i32, std::ptr::null_mut());
    let unique = insert_index_entries(rel, indexes, tup, true);
    if unique {
        pg_sys::heap_finish_speculative(rel, &mut (*tup).t_self);
    } else {
        pg_sys::heap_abort_speculative(rel, &mut (*tup).t_self);
    }
    pg_sys::SpeculativeInsertionLockRelease(xid);
    !unique
}

/// Inserts the index entries of the new row `tup` (as `CatalogIndexInsert` does). The
/// execution_id index (the only partial index allowed, see write/log_shape.rs; its predicate
/// is `execution_id IS NOT NULL`) gets an entry only for a row with an execution_id
/// (`with_execution_id`), with its unique check deferred (`UNIQUE_CHECK_PARTIAL`): returns false
/// when that index may already hold the id (see [`insert_speculative`]), else true.
unsafe fn insert_index_entries(
    rel: pg_sys::Relation,
    indexes: pg_sys::CatalogIndexState,
    tup: pg_sys::HeapTuple,
    with_execution_id: bool,
) -> bool {
    let slot = pg_sys::MakeSingleTupleTableSlot((*rel).rd_att, &pg_sys::TTSOpsHeapTuple);
    pg_sys::ExecStoreHeapTuple(tup, slot, false);
    let mut unique_so_far = true;
    for i in 0..(*indexes).ri_NumIndices as usize {
        let index = *(*indexes).ri_IndexRelationDescs.add(i);
        let info = *(*indexes).ri_IndexRelationInfo.add(i);
        let execution_id_index = !(*info).ii_Predicate.is_null();
        if (execution_id_index && !with_execution_id) || !(*info).ii_ReadyForInserts {
            // The execution_id index for a row without one, or an index being built
            // concurrently, which takes no entries yet (as in ExecInsertIndexTuples).
            continue;
        }
        let mut values = [pg_sys::Datum::from(0usize); pg_sys::INDEX_MAX_KEYS as usize];
        let mut isnull = [false; pg_sys::INDEX_MAX_KEYS as usize];
        pg_sys::FormIndexDatum(info, slot, std::ptr::null_mut(), values.as_mut_ptr(), isnull.as_mut_ptr());
        let unique = if execution_id_index {
            pg_sys::IndexUniqueCheck::UNIQUE_CHECK_PARTIAL
        } else if (*info).ii_Unique {
            pg_sys::IndexUniqueCheck::UNIQUE_CHECK_YES
        } else {
            pg_sys::IndexUniqueCheck::UNIQUE_CHECK_NO
        };
        let no_conflict =
            pg_sys::index_insert(index, values.as_mut_ptr(), isnull.as_mut_ptr(), &mut (*tup).t_self, rel, unique, false, info);
        if execution_id_index && !no_conflict {
            unique_so_far = false;
        }
    }
    pg_sys::ExecDropSingleTupleTableSlot(slot);
    unique_so_far
}
