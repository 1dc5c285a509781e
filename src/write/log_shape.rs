//! Whether `billing_log` is as the extension made it, recognised by **definitions**, never by
//! names: the heap-API fast path (`write/log_insert.rs`) writes a row without the executor, so it may
//! only run while an SQL `INSERT` would do nothing more than it does. A DBA's CHECK constraint
//! that keeps an original name but says something else, a trigger renamed to one of the
//! extension's names, or an index whose predicate changed all send writes to the SQL `INSERT`.
//!
//! What is compared (once per relcache generation of `billing_log`, by the caller):
//! - CHECK constraints: the set of their expressions as PostgreSQL deparses them
//!   (`deparse_expression`, as `pg_get_constraintdef` shows them), against [`OWN_CHECKS`];
//! - triggers: each one's function (`neon_budget._billing_log_before_insert` or
//!   `neon_budget._billing_log_changed`), timing, level and events (`tgtype`), transition
//!   tables, no WHEN clause, arguments or column list, not a constraint trigger, enabled on
//!   origin: exactly [`OWN_TRIGGERS`], one each;
//! - indexes: plain columns, no exclusion constraint, and no predicate except one unique index
//!   on `(execution_id)` whose predicate deparses to `(execution_id IS NOT NULL)`;
//! - columns (name, type, no type modifier, NOT NULL-ness, not generated), row-level security,
//!   rules, partitions.
//!
//! Each check gives the reason it fails, which `write_path_stats` shows DBAs.
use pgrx::prelude::*;
use pgrx::PgTupleDesc;
use std::ffi::CStr;

/// The CHECK constraints `sql/bootstrap.sql` creates on `billing_log`, as PostgreSQL 15
/// deparses them (`pg_get_constraintdef` without `CHECK`).
pub const OWN_CHECKS: [&str; 13] = [
    "(tokens >= 0)",
    "((cost >= (0)::numeric) AND (cost < 'Infinity'::numeric))",
    "((impact_score >= (0)::double precision) AND (impact_score <= (1)::double precision))",
    "((quality_score >= (0)::double precision) AND (quality_score <= (1)::double precision))",
    "(retry_count >= 0)",
    "(execution_time_ms >= 0)",
    "(billing_month ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'::text)",
    "((cost_per_1k_tokens >= (0)::numeric) AND (cost_per_1k_tokens < 'Infinity'::numeric))",
    "(model <> ''::text)",
    "(input_tokens >= 0)",
    "(output_tokens >= 0)",
    "(cached_tokens >= 0)",
    "(((input_tokens IS NULL) AND (output_tokens IS NULL) AND (cached_tokens IS NULL)) OR ((input_tokens IS NOT NULL) AND (output_tokens IS NOT NULL) AND (cached_tokens IS NOT NULL) AND (tokens = ((input_tokens + output_tokens) + cached_tokens))))",
];

/// The triggers `sql/finalize.sql` creates on `billing_log`: function (in schema
/// `neon_budget`), `tgtype` (PostgreSQL's TRIGGER_TYPE_* bits: 7 = BEFORE INSERT FOR EACH ROW,
/// 4 / 16 / 8 / 32 = AFTER INSERT / UPDATE / DELETE / TRUNCATE FOR EACH STATEMENT), and the
/// OLD and NEW transition table names.
pub const OWN_TRIGGERS: [(&str, i16, Option<&str>, Option<&str>); 5] = [
    ("_billing_log_before_insert", 7, None, None),
    ("_billing_log_changed", 4, None, Some("new_rows")),
    ("_billing_log_changed", 16, Some("old_rows"), Some("new_rows")),
    ("_billing_log_changed", 8, Some("old_rows"), None),
    ("_billing_log_changed", 32, None, None),
];

/// The predicate of the partial unique index on `execution_id`, as deparsed.
const EXECUTION_ID_PREDICATE: &str = "(execution_id IS NOT NULL)";

/// The columns of `billing_log` (all of them: the row is formed in full), with their types and
/// whether they are NOT NULL (no type modifiers).
pub const COLUMNS: [(&str, pg_sys::Oid, bool); 21] = [
    ("id", pg_sys::INT8OID, true),
    ("agent_type", pg_sys::TEXTOID, true),
    ("campaign_id", pg_sys::TEXTOID, false),
    ("tokens", pg_sys::INT8OID, true),
    ("cost", pg_sys::NUMERICOID, true),
    ("task", pg_sys::TEXTOID, false),
    ("execution_id", pg_sys::TEXTOID, false),
    ("impact_score", pg_sys::FLOAT8OID, false),
    ("conversion_achieved", pg_sys::BOOLOID, false),
    ("quality_score", pg_sys::FLOAT8OID, false),
    ("retry_count", pg_sys::INT4OID, false),
    ("execution_time_ms", pg_sys::INT8OID, false),
    ("metadata", pg_sys::JSONBOID, false),
    ("created_at", pg_sys::TIMESTAMPTZOID, true),
    ("billing_month", pg_sys::TEXTOID, true),
    ("cost_per_1k_tokens", pg_sys::NUMERICOID, false),
    ("model", pg_sys::TEXTOID, false),
    ("input_tokens", pg_sys::INT8OID, false),
    ("output_tokens", pg_sys::INT8OID, false),
    ("cached_tokens", pg_sys::INT8OID, false),
    ("model_price_from", pg_sys::TIMESTAMPTZOID, false),
];

unsafe fn cstr(p: *const std::ffi::c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// `expr` (a node) deparsed as PostgreSQL shows it for table `rel` (column names unqualified).
unsafe fn deparse(rel: pg_sys::Relation, expr: *mut pg_sys::Node) -> String {
    let context = pg_sys::deparse_context_for((*(*rel).rd_rel).relname.data.as_ptr(), (*rel).rd_id);
    cstr(pg_sys::deparse_expression(expr, context, false, false))
}

/// `Ok(())` when the table `rel` (`billing_log`, opened by the caller) has only what the
/// extension created, or the first difference found, in words.
///
/// # Safety
/// `rel` must be an open relation.
pub unsafe fn check_table(rel: pg_sys::Relation) -> Result<(), String> {
    let form = (*rel).rd_rel;
    if (*form).relkind != pg_sys::RELKIND_RELATION as std::ffi::c_char || (*form).relispartition {
        return Err("billing_log is partitioned or a partition".into());
    }
    if (*form).relrowsecurity {
        return Err("row-level security is enabled on billing_log".into());
    }
    if !(*rel).rd_rules.is_null() {
        return Err("billing_log has a rule".into());
    }
    // Every column as created: name, type, no type modifier, NULL-ness (an ALTER COLUMN ...
    // TYPE or SET NOT NULL would need the executor's coercion or check).
    let tupdesc = (*rel).rd_att;
    let desc = PgTupleDesc::from_pg_unchecked(tupdesc);
    let live: Vec<_> = desc.iter().filter(|a| !a.is_dropped()).collect();
    for a in &live {
        let as_created = COLUMNS.iter().any(|(name, typ, not_null)| {
            a.name() == *name && a.atttypid == *typ && a.atttypmod == -1 && a.attnotnull == *not_null && a.attgenerated == 0
        });
        if !as_created {
            return Err(format!("column {} is not as the extension created it", a.name()));
        }
    }
    if live.len() != COLUMNS.len() {
        return Err("billing_log lacks a column the extension created".into());
    }
    let constr = (*tupdesc).constr;
    if constr.is_null() {
        return Err("billing_log has no constraints".into());
    }
    if (*constr).has_generated_stored {
        return Err("billing_log has a generated column".into());
    }
    // CHECK constraints, by what they say.
    let checks = std::slice::from_raw_parts((*constr).check, (*constr).num_check as usize);
    let mut expected: Vec<&str> = OWN_CHECKS.to_vec();
    for c in checks {
        let def = deparse(rel, pg_sys::stringToNode(c.ccbin) as *mut pg_sys::Node);
        match expected.iter().position(|e| *e == def) {
            Some(i) => {
                expected.swap_remove(i);
            }
            None => return Err(format!("CHECK constraint {} is {def}, which the extension did not create", cstr(c.ccname))),
        }
    }
    if let Some(missing) = expected.first() {
        return Err(format!("the CHECK constraint {missing} is missing"));
    }
    check_triggers(rel)
}

unsafe fn check_triggers(rel: pg_sys::Relation) -> Result<(), String> {
    let trigdesc = (*rel).trigdesc;
    if trigdesc.is_null() {
        return Err("billing_log has none of the extension's triggers".into());
    }
    let ours = pg_sys::get_namespace_oid(c"neon_budget".as_ptr(), false);
    let triggers = std::slice::from_raw_parts((*trigdesc).triggers, (*trigdesc).numtriggers as usize);
    let mut expected: Vec<_> = OWN_TRIGGERS.to_vec();
    for t in triggers {
        let name = cstr(t.tgname);
        if t.tgenabled as u8 != pg_sys::TRIGGER_FIRES_ON_ORIGIN {
            return Err(format!("trigger {name} is disabled or fires only on replicas"));
        }
        let function = cstr(pg_sys::get_func_name(t.tgfoid));
        let plain = pg_sys::get_func_namespace(t.tgfoid) == ours
            && t.tgqual.is_null()
            && t.tgnargs == 0
            && t.tgnattr == 0
            && t.tgconstraint == pg_sys::InvalidOid
            && !t.tgisinternal;
        let old = (!t.tgoldtable.is_null()).then(|| cstr(t.tgoldtable));
        let new = (!t.tgnewtable.is_null()).then(|| cstr(t.tgnewtable));
        let found = if plain {
            expected
                .iter()
                .position(|(f, ty, o, n)| *f == function && *ty == t.tgtype && o.map(str::to_string) == old && n.map(str::to_string) == new)
        } else {
            None
        };
        match found {
            Some(i) => {
                expected.swap_remove(i);
            }
            None => return Err(format!("trigger {name} (function {function}) is not one of the extension's")),
        }
    }
    if !expected.is_empty() {
        return Err("one of the extension's triggers on billing_log is missing".into());
    }
    Ok(())
}

/// `Ok(())` when every index of `billing_log` can be maintained by the fast path: plain
/// columns, no exclusion constraint, and no predicate except that of the extension's unique
/// index on `(execution_id)` ([`is_execution_id_index`]).
///
/// # Safety
/// `indexes` must be the open indexes of `rel`.
pub unsafe fn check_indexes(rel: pg_sys::Relation, indexes: pg_sys::CatalogIndexState) -> Result<(), String> {
    for i in 0..(*indexes).ri_NumIndices as usize {
        let index = *(*indexes).ri_IndexRelationDescs.add(i);
        let info = *(*indexes).ri_IndexRelationInfo.add(i);
        let name = cstr((*(*index).rd_rel).relname.data.as_ptr());
        if !(*info).ii_Expressions.is_null() {
            return Err(format!("index {name} has expressions"));
        }
        if !(*info).ii_ExclusionOps.is_null() {
            return Err(format!("index {name} is an exclusion constraint"));
        }
        if !(*info).ii_Predicate.is_null() && !is_execution_id_index(rel, info) {
            return Err(format!("index {name} is partial and not the extension's execution_id index"));
        }
    }
    Ok(())
}

thread_local! {
    /// [`execution_id_index`] for the `billing_log` generation it was found in.
    static EXECUTION_ID_INDEX: std::cell::Cell<Option<(u64, pg_sys::Oid)>> = const { std::cell::Cell::new(None) };
}

/// The OID of `billing_log`'s unique index on `execution_id` (`WHERE execution_id IS NOT NULL`),
/// recognised by its definition ([`is_execution_id_index`]) whatever its name, looked up once per
/// relcache generation of `billing_log`. The execution_id probes (`crate::execution_ids`) read it.
///
/// Errors: 55000 (object_not_in_prerequisite_state) when `billing_log` has no such index (a DBA
/// dropped it): without it, "the same execution_id twice records once" cannot hold.
pub fn execution_id_index() -> pg_sys::Oid {
    unsafe {
        let relid = crate::pg::backend_cache::oid(c"billing_log");
        let rel = pg_sys::table_open(relid, pg_sys::AccessShareLock as i32);
        let generation = crate::pg::backend_cache::log_generation(relid);
        if let Some((g, index)) = EXECUTION_ID_INDEX.with(|c| c.get()) {
            if g == generation {
                pg_sys::table_close(rel, pg_sys::NoLock as i32);
                return index;
            }
        }
        let list = pg_sys::RelationGetIndexList(rel);
        let mut found = None;
        for i in 0..if list.is_null() { 0 } else { (*list).length as usize } {
            let index_oid = (*(*list).elements.add(i)).oid_value;
            let index = pg_sys::index_open(index_oid, pg_sys::AccessShareLock as i32);
            if is_execution_id_index(rel, pg_sys::BuildIndexInfo(index)) {
                found = Some(index_oid);
            }
            pg_sys::index_close(index, pg_sys::NoLock as i32);
        }
        pg_sys::table_close(rel, pg_sys::NoLock as i32);
        let Some(index) = found else {
            crate::error::raise(
                crate::error::Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                "neon_budget.billing_log has no unique index on execution_id WHERE execution_id IS NOT NULL",
                "Recreate it: CREATE UNIQUE INDEX ON neon_budget.billing_log (execution_id) WHERE execution_id IS NOT NULL; without it an execution_id cannot record once.",
            )
        };
        EXECUTION_ID_INDEX.with(|c| c.set(Some((generation, index))));
        index
    }
}

/// Whether an index is the extension's partial unique index: unique, one key column
/// `execution_id`, predicate `execution_id IS NOT NULL` (false for every row the fast path
/// writes, so such a row has no entry in it).
///
/// # Safety
/// `info` must describe an index of `rel`.
pub unsafe fn is_execution_id_index(rel: pg_sys::Relation, info: *mut pg_sys::IndexInfo) -> bool {
    if !(*info).ii_Unique || (*info).ii_NumIndexKeyAttrs != 1 || (*info).ii_NumIndexAttrs != 1 || (*info).ii_Predicate.is_null() {
        return false;
    }
    let desc = PgTupleDesc::from_pg_unchecked((*rel).rd_att);
    let column = (*info).ii_IndexAttrNumbers[0] as usize;
    if desc.get(column.wrapping_sub(1)).map(|a| a.name() != "execution_id").unwrap_or(true) {
        return false;
    }
    let predicate = pg_sys::make_ands_explicit((*info).ii_Predicate) as *mut pg_sys::Node;
    deparse(rel, predicate) == EXECUTION_ID_PREDICATE
}
