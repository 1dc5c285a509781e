//! `neon-budget`: the command-line client of the neon_budget PostgreSQL extension.
//!
//! Connects with `--database-url` / `DATABASE_URL` (a libpq connection string or URL), the
//! usual `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD` and `PGDATABASE` variables filling in what
//! it leaves out. Commands: `check` (status and exit code per level), `report` (Markdown, JSON,
//! CSV or HTML cost report), `listen` (alerts to `logs/budget/`) and `replay` (the demo's
//! workload generator). Money is in dollars and months are `YYYY-MM` throughout.
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

mod check;
mod conn;
mod html;
mod listen;
mod money;
mod output;
mod replay;
mod report;

/// Exit codes of every command.
pub mod exit {
    /// Success; for `check`, the status is `ok`.
    pub const OK: i32 = 0;
    /// `check`: the status is `warning` or `critical`.
    pub const WARNING: i32 = 1;
    /// `check`: the status is `exceeded`.
    pub const EXCEEDED: i32 = 2;
    /// The server cannot be reached or refuses the login, or the extension is missing or too old.
    pub const UNAVAILABLE: i32 = 3;
    /// Bad input: an unknown option or value, a malformed month, an output file that cannot be
    /// written, an unreadable trace.
    pub const BAD_INPUT: i32 = 4;
    /// Anything else: an unexpected server error, a log file that cannot be written.
    pub const FAILED: i32 = 5;
}

/// Why a command failed: the exit code and a message that says what failed and what to do.
#[derive(Debug)]
pub struct Failure {
    /// One of the [`exit`] codes.
    pub code: i32,
    /// What failed and what to do about it.
    pub message: String,
}

impl Failure {
    /// A failure with exit code `code`.
    pub fn new(code: i32, message: impl Into<String>) -> Failure {
        Failure { code, message: message.into() }
    }
    /// Bad input ([`exit::BAD_INPUT`]).
    pub fn bad_input(message: impl Into<String>) -> Failure {
        Failure::new(exit::BAD_INPUT, message)
    }
    /// The server or the extension is unavailable ([`exit::UNAVAILABLE`]).
    pub fn unavailable(message: impl Into<String>) -> Failure {
        Failure::new(exit::UNAVAILABLE, message)
    }
    /// Any other failure ([`exit::FAILED`]).
    pub fn failed(message: impl Into<String>) -> Failure {
        Failure::new(exit::FAILED, message)
    }
}

/// When to color the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Color when standard output is a terminal and `NO_COLOR` is not set.
    Auto,
    /// Always color (ANSI escapes).
    Always,
    /// Never color.
    Never,
}

/// Command-line client of the neon_budget PostgreSQL extension: check the month's budget,
/// write cost reports, listen for alerts, replay a workload.
///
/// Exit codes: 0 ok; 1 warning or critical (check); 2 exceeded (check); 3 cannot connect, or the
/// extension is missing or too old; 4 bad input (option, month, output file, trace); 5 other
/// failures.
#[derive(Parser)]
#[command(name = "neon-budget", version, about, long_about, args_override_self = true)]
pub struct Cli {
    /// Options shared by every command.
    #[command(flatten)]
    pub global: Global,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command (they may be given before or after the command name).
#[derive(clap::Args, Clone, Debug)]
pub struct Global {
    /// libpq connection string ("host=/tmp port=5432 dbname=app") or postgresql:// URL. What it
    /// leaves out comes from PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGAPPNAME and
    /// PGCONNECT_TIMEOUT, as with psql.
    #[arg(long, env = "DATABASE_URL", global = true, value_name = "URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Print nothing on standard output (errors still go to standard error; the exit code tells
    /// the result). For replay: print only the final summary.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// Print machine-readable JSON on standard output instead of text (one object; for listen,
    /// one object per alert and line).
    #[arg(long, global = true)]
    pub json: bool,
    /// Directory of the alert logs, alert files, listener state and default report files.
    #[arg(long, global = true, value_name = "DIR", default_value = "logs/budget")]
    pub log_dir: PathBuf,
    /// Color the level emoji lines: auto (when standard output is a terminal and NO_COLOR is not
    /// set), always or never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
}

/// The commands.
#[derive(Subcommand)]
pub enum Command {
    /// Print the current month's budget status (color and emoji per level), the remaining budget
    /// and every campaign over its warning level. Exit code: 0 ok, 1 warning or critical,
    /// 2 exceeded, 3 cannot connect or the extension is missing.
    Check(check::Args),
    /// Write the cost report of a month (Markdown, JSON, CSV or a self-contained HTML page with
    /// charts) to LOG_DIR/cost-report-YYYY-MM.EXT, or to --out.
    Report(report::Args),
    /// Listen for budget alerts (LISTEN neon_budget_alerts) and write each one once: a line on
    /// standard output, a line in LOG_DIR/budget-alerts.log (month) or campaign-alerts.log
    /// (campaign), and LOG_DIR/alert-TIMESTAMP-ID.json for critical and exceeded alerts. Catches
    /// up from alert_log on start and after every reconnect. Stops on SIGINT or SIGTERM.
    Listen(listen::Args),
    /// Replay an LLM request trace (Azure LLM inference trace CSV format: TIMESTAMP,
    /// ContextTokens, GeneratedTokens) as agent executions: each request asks budget_check()
    /// and, when allowed, records its cost with track_cost().
    Replay(replay::Args),
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print on stdout and succeed; a usage error is bad input (4),
            // not clap's default 2, which `check` uses for "exceeded".
            let _printed = e.print();
            std::process::exit(if e.use_stderr() { exit::BAD_INPUT } else { exit::OK });
        }
    };
    let (name, result) = match cli.command {
        Command::Check(args) => ("check", check::run(&cli.global, args)),
        Command::Report(args) => ("report", report::run(&cli.global, args)),
        Command::Listen(args) => ("listen", listen::run(&cli.global, args)),
        Command::Replay(args) => ("replay", replay::run(&cli.global, args)),
    };
    let code = match result {
        Ok(code) => code,
        Err(f) => {
            eprintln!("neon-budget {name}: {}", f.message);
            f.code
        }
    };
    std::process::exit(code);
}
