//! SPI plumbing shared by the trigger functions.
use crate::error::{raise, Code};
use pgrx::prelude::*;

/// Makes `trigger`'s transition tables (`new_rows`, `old_rows`) visible, under those names, to
/// the statements run on the SPI connection that is open now (call it inside
/// `Spi::connect`/`Spi::connect_mut`).
///
/// Errors: XX000 if PostgreSQL refuses (a bug: the trigger has no transition tables).
pub fn register_trigger_data(trigger: &pgrx::PgTrigger<'_>) {
    let rc = unsafe { pg_sys::SPI_register_trigger_data(trigger.trigger_data() as *const pg_sys::TriggerData as *mut pg_sys::TriggerData) };
    if rc < 0 {
        raise(Code::ERRCODE_INTERNAL_ERROR, format!("SPI_register_trigger_data failed: {rc}"), "This is a bug in neon_budget.");
    }
}
