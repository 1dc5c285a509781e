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

/// The number of days of billing month `month` (`YYYY-MM`, Gregorian calendar: February has 29
/// days in years divisible by 4, except centuries not divisible by 400); None when `month` is
/// not a billing month.
pub fn days_in_month(month: &str) -> Option<u32> {
    if !is_valid_month(month) {
        return None;
    }
    let year: u32 = month[..4].parse().ok()?;
    let m: u32 = month[5..].parse().ok()?;
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    Some(match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    })
}

/// The day `day` (1-based) of `month` as `YYYY-MM-DD`, the billing-day form.
pub fn day_of_month(month: &str, day: u32) -> String {
    format!("{month}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_lengths() {
        let got: Vec<u32> = ["2026-01", "2026-02", "2024-02", "1900-02", "2000-02", "2026-04", "2026-12"]
            .iter()
            .map(|m| days_in_month(m).unwrap())
            .collect();
        assert_eq!(got, [31, 28, 29, 28, 29, 30, 31]);
        assert_eq!(days_in_month("2026-13"), None);
        assert_eq!(day_of_month("2026-03", 7), "2026-03-07");
    }

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
