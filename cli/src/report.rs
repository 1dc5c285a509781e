//! `neon-budget report`: the seed's `budget:report`. Writes the cost report of a month to
//! `LOG_DIR/cost-report-YYYY-MM.md` (or `.json`, `.csv`, `.html`), or to `--out`.
//!
//! The Markdown, JSON and CSV formats come from the extension (`budget_report(month, format)`),
//! so every client gets the same figures; the HTML page is built here from the JSON format
//! (see [`crate::html`]). A file is written whole or not at all.
use crate::conn;
use crate::output::{ensure_dir, write_atomic};
use crate::{Failure, Global};
use clap::ValueEnum;
use std::path::PathBuf;

/// Report formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The seed's Markdown report (budget_report(month, 'md')).
    Md,
    /// One JSON object with exact figures and the daily spend (budget_report(month, 'json')).
    Json,
    /// A flat CSV table with a header (budget_report(month, 'csv')).
    Csv,
    /// A self-contained HTML page with inline SVG charts, built from the JSON format.
    Html,
}

impl Format {
    /// The file extension (and the format's name).
    pub fn extension(self) -> &'static str {
        match self {
            Format::Md => "md",
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Html => "html",
        }
    }
}

/// Options of `report`.
#[derive(clap::Args)]
pub struct Args {
    /// Billing month, YYYY-MM (default: the current month in the server's neon_budget.timezone).
    #[arg(long, value_name = "YYYY-MM")]
    pub month: Option<String>,
    /// Report format: md (Markdown), json, csv or html (a self-contained page with charts).
    #[arg(long, value_enum, default_value_t = Format::Md, value_name = "FORMAT")]
    pub format: Format,
    /// Write the report to FILE ("-" = standard output) instead of
    /// LOG_DIR/cost-report-YYYY-MM.EXT. The file's directory must exist; the file is replaced
    /// whole or left untouched.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub use neon_budget_common::month::is_valid_month;

/// Fetches the report of `month` in `format` from the extension (html: the json format,
/// rendered here).
pub fn fetch(client: &mut postgres::Client, month: &str, format: Format) -> Result<String, Failure> {
    let sql_format = match format {
        Format::Html => "json",
        f => f.extension(),
    };
    let row = if format == Format::Md {
        // The one-argument call works with every version of the extension.
        client.query_one("SELECT neon_budget.budget_report($1)", &[&month])
    } else {
        client.query_one("SELECT neon_budget.budget_report($1, $2)", &[&month, &sql_format])
    }
    .map_err(|e| conn::db_failure(&format!("budget_report('{month}', '{sql_format}')"), &e))?;
    let text: String = row.get(0);
    match format {
        Format::Html => {
            let value: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| Failure::failed(format!("budget_report returned JSON that does not parse: {e}")))?;
            crate::html::render(&value)
        }
        Format::Json if !text.ends_with('\n') => Ok(text + "\n"),
        _ => Ok(text),
    }
}

/// Runs `report`; returns 0 when the report was written.
pub fn run(g: &Global, args: Args) -> Result<i32, Failure> {
    if let Some(m) = &args.month {
        if !is_valid_month(m) {
            return Err(Failure::bad_input(format!(
                "invalid --month {m:?}: a billing month is written YYYY-MM, with a four-digit year and a month from 01 to 12 (e.g. 2024-01)."
            )));
        }
    }
    let mut client = conn::connect(g.database_url.as_deref())?;
    let min = (args.format != Format::Md).then_some(conn::REPORT_FORMATS_VERSION);
    conn::require_extension(&mut client, min)?;
    let month = match &args.month {
        Some(m) => m.clone(),
        None => client
            .query_one("SELECT neon_budget._current_month()", &[])
            .map_err(|e| conn::db_failure("reading the current month", &e))?
            .get(0),
    };
    let body = fetch(&mut client, &month, args.format)?;

    let path = match &args.out {
        Some(p) if p.as_os_str() == "-" => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(body.as_bytes())
                .and_then(|_| out.flush())
                .map_err(|e| Failure::failed(format!("cannot write the report to standard output: {e}")))?;
            return Ok(crate::exit::OK);
        }
        Some(p) => p.clone(),
        None => {
            ensure_dir(&g.log_dir)?;
            g.log_dir.join(format!("cost-report-{month}.{}", args.format.extension()))
        }
    };
    write_atomic(&path, body.as_bytes())?;
    if g.json {
        println!(
            "{}",
            serde_json::json!({"month": month, "format": args.format.extension(), "file": path.display().to_string(), "bytes": body.len()})
        );
    } else if !g.quiet {
        println!("📈 Cost report of {month} ({}) written to {} ({} bytes)", args.format.extension(), path.display(), body.len());
    }
    Ok(crate::exit::OK)
}

#[cfg(test)]
mod tests {
    #[test]
    fn months() {
        for m in ["2024-01", "2024-12", "0001-01", "9999-12"] {
            assert!(super::is_valid_month(m), "{m}");
        }
        for m in ["2024-13", "24-01", "2024-00", "2024-1", "2024/01", "0000-01", "", "2024-01-01", "２０２４-01"] {
            assert!(!super::is_valid_month(m), "{m}");
        }
    }
}
