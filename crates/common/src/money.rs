//! Money and percentages as exact decimal text. Nothing here computes money with floats: the
//! server sends `numeric` as text (or as exact JSON numbers), and these functions only round
//! and format that text, digit by digit, as PostgreSQL's `round(numeric, n)` does (half away
//! from zero). The extension formats its reports and the client its output with them.

/// A decimal split into sign, integer digits and fraction digits; `None` when `text` is not a
/// plain decimal (`-12.50`, `0.8`, `1000`; no exponent).
fn split(text: &str) -> Option<(bool, String, String)> {
    let t = text.trim();
    let (neg, rest) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = rest.split_once('.').unwrap_or((rest, ""));
    if (int.is_empty() && frac.is_empty()) || !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let int = int.trim_start_matches('0');
    Some((neg, if int.is_empty() { "0".to_string() } else { int.to_string() }, frac.to_string()))
}

/// Whether `text` is a plain decimal number (what [`round`] accepts).
pub fn is_decimal(text: &str) -> bool {
    split(text).is_some()
}

/// Rounds a decimal to `places` fraction digits, half away from zero, and always shows exactly
/// `places` digits (`round("0.571987", 4)` = `"0.5720"`, `round("-12.5", 2)` = `"-12.50"`).
/// Text that is not a decimal is returned unchanged.
pub fn round(text: &str, places: usize) -> String {
    let Some((neg, int, frac)) = split(text) else {
        return text.to_string();
    };
    let mut digits: Vec<u8> = int.bytes().map(|b| b - b'0').collect();
    let mut fr: Vec<u8> = frac.bytes().map(|b| b - b'0').collect();
    let round_up = fr.len() > places && fr[places] >= 5;
    fr.resize(places, 0);
    digits.extend_from_slice(&fr);
    if round_up {
        let mut i = digits.len();
        loop {
            if i == 0 {
                digits.insert(0, 1);
                break;
            }
            i -= 1;
            if digits[i] == 9 {
                digits[i] = 0;
            } else {
                digits[i] += 1;
                break;
            }
        }
    }
    let split_at = digits.len() - places;
    let int_part: String = digits[..split_at].iter().map(|d| (d + b'0') as char).collect();
    let frac_part: String = digits[split_at..].iter().map(|d| (d + b'0') as char).collect();
    let zero = digits.iter().all(|d| *d == 0);
    let sign = if neg && !zero { "-" } else { "" };
    if places == 0 {
        format!("{sign}{int_part}")
    } else {
        format!("{sign}{int_part}.{frac_part}")
    }
}

/// Inserts thousands separators into the integer part (`"2230750"` → `"2,230,750"`,
/// `"-1234.50"` → `"-1,234.50"`).
pub fn group_thousands(plain: &str) -> String {
    let (sign, digits) = match plain.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", plain),
    };
    let (int_part, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let mut grouped = String::with_capacity(int_part.len() + int_part.len() / 3);
    for (i, ch) in int_part.chars().enumerate() {
        if i > 0 && (int_part.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

/// Dollars as in the seed's report: `$1,000.00`, `-$12.50`, with `places` decimals.
pub fn dollars(text: &str, places: usize) -> String {
    let r = round(text, places);
    match r.strip_prefix('-') {
        Some(abs) => format!("-${}", group_thousands(abs)),
        None => format!("${}", group_thousands(&r)),
    }
}

/// A percentage with one decimal: `44.615` → `44.6%`.
pub fn percent(text: &str) -> String {
    format!("{}%", round(text, 1))
}

/// A count with thousands separators (`1247` → `1,247`).
pub fn count(text: &str) -> String {
    group_thousands(&round(text, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_matches_postgres() {
        assert_eq!(round("0.571987", 4), "0.5720");
        assert_eq!(round("89.23", 2), "89.23");
        assert_eq!(round("1000", 2), "1000.00");
        assert_eq!(round("44.615", 1), "44.6");
        assert_eq!(round("44.65", 1), "44.7");
        assert_eq!(round("99.95", 1), "100.0");
        assert_eq!(round("9.999", 2), "10.00");
        assert_eq!(round("-12.5", 2), "-12.50");
        assert_eq!(round("-0.004", 2), "0.00");
        assert_eq!(round("-0.005", 2), "-0.01");
        assert_eq!(round(".5", 0), "1");
        assert_eq!(round("007.10", 1), "7.1");
        assert_eq!(round("abc", 2), "abc");
        assert!(!is_decimal("1e5"));
        assert!(is_decimal("2500.50"));
    }

    #[test]
    fn formatting() {
        assert_eq!(dollars("1000", 2), "$1,000.00");
        assert_eq!(dollars("1234567.005", 2), "$1,234,567.01");
        assert_eq!(dollars("-12.5", 2), "-$12.50");
        assert_eq!(dollars("0.571987", 4), "$0.5720");
        assert_eq!(percent("24.756"), "24.8%");
        assert_eq!(count("2230750"), "2,230,750");
        assert_eq!(count("999"), "999");
    }
}
