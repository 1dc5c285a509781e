//! Billing months: `YYYY-MM` text.

/// Whether `text` is a billing month: exactly `YYYY-MM` with year 0001..9999 and month 01..12
/// (`2024-01`; not `2024-13`, `24-01`, `2024-1` or `2024-01-01`).
pub fn is_valid_month(text: &str) -> bool {
    let b = text.as_bytes();
    if b.len() != 7 || b[4] != b'-' || !b.iter().enumerate().all(|(i, c)| i == 4 || c.is_ascii_digit()) {
        return false;
    }
    let year: u32 = text[..4].parse().unwrap_or(0);
    let month: u32 = text[5..].parse().unwrap_or(0);
    year >= 1 && (1..=12).contains(&month)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_months() {
        for m in ["2024-01", "2024-12", "1969-07", "9999-12", "0001-01"] {
            assert!(is_valid_month(m), "{m}");
        }
        for m in ["2024-13", "24-01", "2024-00", "2024-1", "2024/01", "0000-01", " 2024-01", "2024-01-01", "", "２０２４-01"] {
            assert!(!is_valid_month(m), "{m}");
        }
    }
}
