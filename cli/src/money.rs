//! Money and percentages as exact decimal text: the shared functions of
//! [`neon_budget_common::money`] (the extension's reports format with the same ones), and the
//! one conversion to a float this client makes, for drawing.
pub use neon_budget_common::money::*;

/// A decimal as `f64`, for drawing only (bar lengths, chart scales): never used for a figure
/// that is shown or compared. Not a decimal → 0.
pub fn for_drawing(text: &str) -> f64 {
    text.trim().parse::<f64>().ok().filter(|v| v.is_finite()).unwrap_or(0.0)
}
