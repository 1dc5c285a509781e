//! Running the privileged part of a SECURITY INVOKER function as the extension's owner.
//!
//! `budget_check` reads its state without SQL (`pg/table_scan.rs`) and the aggregate trigger's
//! fast path writes with the heap API (`write/slots.rs`), so neither needs privileges for the
//! common case and both run as their caller, without the cost of a SECURITY DEFINER call (a
//! GUC nesting level and a new `search_path` on every call). Only when they run SQL (a missed
//! alert to send, the trigger's SQL paths) do they switch,
//! exactly as PostgreSQL's `fmgr_security_definer` does for a whole call: to the owner of the
//! `neon_budget` schema, with `search_path` pinned to `pg_catalog, neon_budget, pg_temp`, both
//! restored afterwards (and by the transaction or subtransaction abort on an error).
use pgrx::prelude::*;

/// The owner of the `neon_budget` schema (the role that created the extension).
fn schema_owner() -> pg_sys::Oid {
    unsafe {
        let ns = pg_sys::get_namespace_oid(c"neon_budget".as_ptr(), false);
        let tuple = pg_sys::SearchSysCache1(pg_sys::SysCacheIdentifier::NAMESPACEOID as i32, pg_sys::Datum::from(ns));
        if tuple.is_null() {
            crate::error::raise(
                crate::error::Code::ERRCODE_INVALID_SCHEMA_NAME,
                "schema neon_budget does not exist",
                "Reinstall the extension: CREATE EXTENSION neon_budget;",
            );
        }
        let form = pg_sys::GETSTRUCT(tuple) as *const pg_sys::FormData_pg_namespace;
        let owner = (*form).nspowner;
        pg_sys::ReleaseSysCache(tuple);
        owner
    }
}

/// Runs `f` as the extension's owner with the extension's pinned `search_path`.
pub fn as_owner<R>(f: impl FnOnce() -> R) -> R {
    let owner = schema_owner();
    let mut saved_user = pg_sys::InvalidOid;
    let mut saved_context = 0;
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context);
    }
    let nest = unsafe { pg_sys::NewGUCNestLevel() };
    unsafe {
        pg_sys::SetUserIdAndSecContext(owner, saved_context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32);
        pg_sys::set_config_option(
            c"search_path".as_ptr(),
            c"pg_catalog, neon_budget, pg_temp".as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
    }
    // As in fmgr_security_definer: on an error, the (sub)transaction abort restores both.
    let result = f();
    unsafe {
        pg_sys::AtEOXact_GUC(true, nest);
        pg_sys::SetUserIdAndSecContext(saved_user, saved_context);
    }
    result
}

/// The role a call acts for: `current_user` outside any SECURITY DEFINER function (what `SET
/// ROLE` chose; PostgreSQL's `GetOuterUserId`), whatever function of the extension runs now.
pub fn caller() -> pg_sys::Oid {
    unsafe { pg_sys::GetOuterUserId() }
}

/// The name of [`caller`].
pub fn caller_name() -> String {
    unsafe {
        let name = pg_sys::GetUserNameFromId(caller(), false);
        std::ffi::CStr::from_ptr(name).to_string_lossy().into_owned()
    }
}

/// Whether [`caller`] is a superuser or has the privileges of `neon_budget_admin`.
pub fn caller_is_admin() -> bool {
    unsafe {
        let caller = caller();
        if pg_sys::superuser_arg(caller) {
            return true;
        }
        let admin = pg_sys::get_role_oid(c"neon_budget_admin".as_ptr(), true);
        admin != pg_sys::InvalidOid && pg_sys::has_privs_of_role(caller, admin)
    }
}
