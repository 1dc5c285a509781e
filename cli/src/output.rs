//! Output helpers: the emoji and color of each budget level, JSON numbers from decimal text, and
//! files written whole or not at all.
use crate::{ColorChoice, Failure, Global};
use std::io::{IsTerminal, Write};
use std::path::Path;

/// The emoji of a level, as in the seed's console output: ✅ ok, 🟡 warning, 🟠 critical,
/// 🔴 exceeded.
pub fn emoji(level: &str) -> &'static str {
    match level {
        "ok" => "✅",
        "warning" => "🟡",
        "critical" => "🟠",
        "exceeded" => "🔴",
        "forecast" => "📈",
        _ => "❔",
    }
}

/// What a level means for the operator (the seed's "Alert Thresholds").
pub fn meaning(level: &str) -> &'static str {
    match level {
        "ok" => "within budget",
        "warning" => "yellow alert, normal operation continues",
        "critical" => "orange alert, consider action",
        "exceeded" => "red alert, executions blocked unless the override is enabled",
        "forecast" => "the month-end projection passes the budget",
        _ => "unknown level",
    }
}

/// A campaign's id or name after the word `word` ("Campaign" or "campaign"), unless it already
/// starts with that word (`campaign-1`, `Campaign A`, `CAMPAIGN_X`): then it stands alone, so
/// no label reads "Campaign Campaign A".
pub fn campaign_label(word: &str, id_or_name: &str) -> String {
    let starts_with_word = id_or_name.get(..8).is_some_and(|head| head.eq_ignore_ascii_case("campaign"))
        && !id_or_name[8..].starts_with(|c: char| c.is_alphabetic());
    if starts_with_word {
        id_or_name.to_string()
    } else {
        format!("{word} {id_or_name}")
    }
}

/// The ANSI color of a level: green, yellow, orange (256-color 208) or red.
fn ansi(level: &str) -> &'static str {
    match level {
        "ok" => "\x1b[32m",
        "warning" => "\x1b[33m",
        "critical" => "\x1b[38;5;208m",
        "exceeded" => "\x1b[31m",
        _ => "",
    }
}

/// Whether to color standard output, per `--color`.
pub fn use_color(g: &Global) -> bool {
    match g.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    }
}

/// `text` in the color of `level` (bold) when `color` is on.
pub fn paint(text: &str, level: &str, color: bool) -> String {
    let code = ansi(level);
    if color && !code.is_empty() {
        format!("\x1b[1m{code}{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// A decimal text (as the server prints `numeric`) as an exact JSON number (serde_json's
/// `arbitrary_precision` keeps the digits); `null` for `None`, a string if it is not a number.
pub fn json_decimal(text: Option<&str>) -> serde_json::Value {
    match text {
        None => serde_json::Value::Null,
        Some(t) => match t.parse::<serde_json::Number>() {
            Ok(n) => serde_json::Value::Number(n),
            Err(_) => serde_json::Value::String(t.to_string()),
        },
    }
}

/// Writes `data` to `path` whole or not at all: into a temporary file in the same directory,
/// flushed to disk, then renamed over `path`. On any failure the temporary file is removed and
/// `path` is untouched. Fails with bad input (exit 4) naming the path and what to do.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), Failure> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        Failure::bad_input(format!("cannot write {}: {what}: {e}. Choose a file in an existing, writable directory.", path.display()))
    };
    if path.is_dir() {
        return Err(Failure::bad_input(format!(
            "cannot write {}: it is a directory. Give a file name, e.g. --out {}/report.md.",
            path.display(),
            path.display()
        )));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".neon-budget-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| fail("cannot create a file in its directory", &e))?;
    tmp.write_all(data).map_err(|e| fail("write failed", &e))?;
    tmp.as_file().sync_all().map_err(|e| fail("flush failed", &e))?;
    // Temporary files are created 0600; a report is an ordinary file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _best_effort = tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644));
    }
    tmp.persist(path).map_err(|e| fail("rename failed", &e.error))?;
    Ok(())
}

/// Creates the log directory (and its parents) when missing.
pub fn ensure_dir(dir: &Path) -> Result<(), Failure> {
    std::fs::create_dir_all(dir).map_err(|e| {
        Failure::bad_input(format!("cannot create the log directory {}: {e}. Choose another with --log-dir DIR.", dir.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::campaign_label;

    #[test]
    fn campaign_labels_never_repeat_the_word() {
        assert_eq!(campaign_label("Campaign", "c1"), "Campaign c1");
        assert_eq!(campaign_label("Campaign", "campaign-1"), "campaign-1");
        assert_eq!(campaign_label("campaign", "Campaign A"), "Campaign A");
        assert_eq!(campaign_label("campaign", "CAMPAIGN_7"), "CAMPAIGN_7");
        assert_eq!(campaign_label("campaign", "campaign"), "campaign");
        assert_eq!(campaign_label("Campaign", "Campaigns 2024"), "Campaign Campaigns 2024");
        assert_eq!(campaign_label("Campaign", "Launch Campaign"), "Campaign Launch Campaign");
        assert_eq!(campaign_label("Campaign", "Campañ"), "Campaign Campañ");
        assert_eq!(campaign_label("Campaign", "é"), "Campaign é");
    }
}
