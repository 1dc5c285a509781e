//! Prepared SPI plans kept for the life of the backend, so the hot path (track_cost and the
//! aggregate triggers) parses and plans each statement once per connection, as PL/pgSQL does.
//! PostgreSQL's plan cache revalidates them when the objects they use change.
use pgrx::spi::{OwnedPreparedStatement, SpiClient};
use pgrx::PgOid;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

thread_local! {
    // Keyed by the address of the SQL text: every statement is a `'static` constant (or lives in
    // a thread-local for the backend's life), so the address identifies it without hashing it.
    static PLANS: RefCell<HashMap<usize, Rc<OwnedPreparedStatement>>> = RefCell::new(HashMap::new());
}

/// The kept plan of `sql` with argument types `args`, prepared on first use in this backend.
/// `sql` must live as long as the backend (a constant). A prepare error (e.g. a missing object)
/// is raised as the ERROR PostgreSQL reports.
pub fn plan(client: &SpiClient<'_>, sql: &str, args: &[PgOid]) -> Rc<OwnedPreparedStatement> {
    let key = sql.as_ptr() as usize;
    if let Some(p) = PLANS.with(|p| p.borrow().get(&key).cloned()) {
        return p;
    }
    let prepared = crate::error::spi(client.prepare_mut(sql, args)).keep();
    let prepared = Rc::new(prepared);
    PLANS.with(|p| p.borrow_mut().insert(key, prepared.clone()));
    prepared
}

/// Argument type shorthands.
pub mod oid {
    use pgrx::pg_sys::BuiltinOid;
    use pgrx::PgOid;
    pub const TEXT: PgOid = PgOid::BuiltIn(BuiltinOid::TEXTOID);
    pub const INT4: PgOid = PgOid::BuiltIn(BuiltinOid::INT4OID);
    pub const INT8: PgOid = PgOid::BuiltIn(BuiltinOid::INT8OID);
    pub const NUMERIC: PgOid = PgOid::BuiltIn(BuiltinOid::NUMERICOID);
    pub const FLOAT8: PgOid = PgOid::BuiltIn(BuiltinOid::FLOAT8OID);
    pub const BOOL: PgOid = PgOid::BuiltIn(BuiltinOid::BOOLOID);
    pub const JSONB: PgOid = PgOid::BuiltIn(BuiltinOid::JSONBOID);
    pub const TIMESTAMPTZ: PgOid = PgOid::BuiltIn(BuiltinOid::TIMESTAMPTZOID);
}
