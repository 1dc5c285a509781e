//! Output helpers: the emoji and color of each budget level, the lines of cost anomalies, JSON
//! numbers from decimal text, and files written whole or not at all.
use crate::money::dollars;
use crate::{ColorChoice, Failure, Global};
use std::io::{IsTerminal, Write};
use std::path::Path;

/// The emoji of a level, as in the seed's console output: ✅ ok, 🟡 warning, 🟠 critical,
/// 🔴 exceeded; 📈 forecast and 🔎 anomaly (a cost anomaly).
pub fn emoji(level: &str) -> &'static str {
    match level {
        "ok" => "✅",
        "warning" => "🟡",
        "critical" => "🟠",
        "exceeded" => "🔴",
        "forecast" => "📈",
        "anomaly" => "🔎",
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
        "anomaly" => "spend far above its own baseline (cost anomaly)",
        _ => "unknown level",
    }
}

/// One line of user text (campaign ids and names, agent types and execution ids may hold line
/// breaks): every control character becomes a space.
pub fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// The text of a JSON number (its exact digits, as serde_json's `arbitrary_precision` keeps
/// them) or string; `None` for `null`, a missing key or anything else.
pub fn json_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// What a cost anomaly (level `anomaly`) is about, from its `scope`, `campaign_id` and
/// `details`: the campaign (`campaign-2`, or `campaign-2 "Ad Optimization"` when
/// `campaign_name` is given and differs from the id), `agent type SEO`, or
/// `execution of agent type CONTENT`. The campaign id falls back to `details.scope_key`, the
/// execution's agent type to `details.scope_key` when `details.agent_type` is missing.
pub fn anomaly_subject(scope: &str, campaign_id: Option<&str>, campaign_name: Option<&str>, details: &serde_json::Value) -> String {
    let key = json_text(&details["scope_key"]).unwrap_or_else(|| "?".to_string());
    match scope {
        "campaign" => {
            let id = campaign_id.map(str::to_string).unwrap_or(key);
            let label = campaign_label("campaign", &one_line(&id));
            match campaign_name {
                Some(name) if name != id => format!("{label} \"{}\"", one_line(name)),
                _ => label,
            }
        }
        "agent_type" => format!("agent type {}", one_line(&key)),
        "execution" => format!("execution of agent type {}", one_line(&json_text(&details["agent_type"]).unwrap_or(key))),
        other => format!("{} {}", one_line(other), one_line(&key)),
    }
}

/// The figures of a cost anomaly, after its subject and day. `spent` is `alert_log.spent` as
/// exact decimal text (dollars): the day's spend, or the execution's cost for scope
/// `execution`. A day anomaly (scopes `campaign`, `agent_type`):
/// `spent $73.73 in the day, baseline median $10.30 over 14 days (score 19.18)`, with
/// `(flat baseline)` when `details.score` is null (the baseline's deviation is 0). An execution
/// anomaly: `cost $2.75, 50.08× its typical $0.0549 (execution_id abc, billing_log id 123)`,
/// without `execution_id abc, ` when it is null; the typical cost has 4 decimals (a cent would
/// hide it). A missing figure prints as `-`.
pub fn anomaly_figures(scope: &str, spent: &str, details: &serde_json::Value) -> String {
    let figure = |k: &str| json_text(&details[k]).unwrap_or_else(|| "-".to_string());
    let money = |k: &str, places: usize| json_text(&details[k]).map(|t| dollars(&t, places)).unwrap_or_else(|| "-".to_string());
    if scope == "execution" {
        let execution = match json_text(&details["execution_id"]) {
            Some(e) => format!("execution_id {}, ", one_line(&e)),
            None => String::new(),
        };
        format!(
            "cost {}, {}× its typical {} ({execution}billing_log id {})",
            dollars(spent, 2),
            figure("ratio"),
            money("typical_cost", 4),
            figure("billing_log_id")
        )
    } else {
        let score = match json_text(&details["score"]) {
            Some(s) => format!("score {s}"),
            None => "flat baseline".to_string(),
        };
        format!(
            "spent {} in the day, baseline median {} over {} days ({score})",
            dollars(spent, 2),
            money("baseline_median", 2),
            figure("baseline_days")
        )
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
