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
    /// Permission denied (SQLSTATE 42501, in every command and at connection time): the login
    /// role lacks the neon_budget role the command needs (see [`crate::role`]) or may not
    /// connect to the database.
    pub const PERMISSION_DENIED: i32 = 6;
}

/// The extension's roles, each including the one before: the role each command needs.
pub mod role {
    /// `check`, `report`, `listen`: the views, `alert_log`, `budget_check`, `budget_report`.
    pub const READER: &str = "neon_budget_reader";
    /// `replay`: reader + `track_cost`.
    pub const WRITER: &str = "neon_budget_writer";
    /// `check --init`: writer + `set_monthly_budget`.
    pub const ADMIN: &str = "neon_budget_admin";
}

/// The exit codes and roles, shown after the top-level help.
const AFTER_HELP: &str = "\
Roles (an administrator grants them: GRANT neon_budget_reader TO alice;):
  check, report, listen   neon_budget_reader
  check --init            neon_budget_admin
  replay                  neon_budget_writer
  neon_budget_admin includes neon_budget_writer, which includes neon_budget_reader.

Exit codes (the same in every command):
  0  success; for check, the status is ok
  1  check: the status is warning or critical
  2  check: the status is exceeded
  3  cannot connect (server unreachable, login refused), or the extension is missing or too old
  4  bad input: an unknown option or value, a malformed month, an output file that cannot be
     written, an unreadable trace
  5  any other failure: an unexpected server error, a log file that cannot be written
  6  permission denied (SQLSTATE 42501): the login role lacks the role the command needs, or
     may not connect to the database";

/// `check`'s role and exit codes, after its help.
const CHECK_AFTER_HELP: &str = "\
Role: neon_budget_reader; with --init, neon_budget_admin (it creates the month's budget row with
set_monthly_budget, and is refused without that role even when the row exists).

Exit codes:
  0  ok
  1  warning or critical
  2  exceeded
  3  cannot connect, or the extension is missing or too old
  4  bad input (an option, --max-monthly-budget, --alert-threshold)
  5  any other failure
  6  permission denied (SQLSTATE 42501): the login role is not a member of neon_budget_reader
     (neon_budget_admin with --init)";

/// `report`'s role and exit codes, after its help.
const REPORT_AFTER_HELP: &str = "\
Role: neon_budget_reader.

Exit codes:
  0  the report was written
  3  cannot connect, or the extension is missing or too old for the format
  4  bad input (an option, --month, an output file that cannot be written)
  5  any other failure
  6  permission denied (SQLSTATE 42501): the login role is not a member of neon_budget_reader";

/// `listen`'s role and exit codes, after its help.
const LISTEN_AFTER_HELP: &str = "\
Role: neon_budget_reader (it reads alert_log and campaign; it writes nothing in the database).

Exit codes:
  0  stopped by SIGINT or SIGTERM, or (--once) caught up
  3  the first connection failed, or the extension is missing (later connection losses are
     retried); with --once, the connection was lost
  4  bad input (an option, an invalid state file, a log directory that cannot be created)
  5  any other failure (an alert or the state cannot be written)
  6  permission denied (SQLSTATE 42501), at any time, reconnections included (never retried):
     the login role is not a member of neon_budget_reader";

/// `replay`'s role and exit codes, after its help.
const REPLAY_AFTER_HELP: &str = "\
Role: neon_budget_writer (budget_check and track_cost).

Exit codes:
  0  every request was replayed
  3  cannot connect, the connection was lost, or the extension is missing
  4  bad input (an option, an unreadable trace, a value the server refuses)
  5  any other failure
  6  permission denied (SQLSTATE 42501): the login role is not a member of neon_budget_writer";

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
    /// Permission denied ([`exit::PERMISSION_DENIED`]); `main` adds the role the command needs.
    pub fn permission_denied(message: impl Into<String>) -> Failure {
        Failure::new(exit::PERMISSION_DENIED, message)
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
#[derive(Parser)]
#[command(name = "neon-budget", version, about, long_about, args_override_self = true, after_help = AFTER_HELP)]
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
    /// 2 exceeded, 3-6 as below. Role: neon_budget_reader; with --init, neon_budget_admin.
    #[command(after_help = CHECK_AFTER_HELP)]
    Check(check::Args),
    /// Write the cost report of a month (Markdown, JSON, CSV or a self-contained HTML page with
    /// charts) to LOG_DIR/cost-report-YYYY-MM.EXT, or to --out. Role: neon_budget_reader.
    #[command(after_help = REPORT_AFTER_HELP)]
    Report(report::Args),
    /// Listen for budget alerts (LISTEN neon_budget_alerts; levels warning, critical, exceeded,
    /// forecast, and anomaly for a cost anomaly of a campaign, an agent type or an execution) and
    /// write each one once: a line on standard output, a line in LOG_DIR/budget-alerts.log
    /// (month; anomalies of an agent type or an execution) or campaign-alerts.log (campaign),
    /// and LOG_DIR/alert-TIMESTAMP-ID.json for critical and exceeded alerts. Catches
    /// up from alert_log on start and after every reconnect. Stops on SIGINT or SIGTERM. Role:
    /// neon_budget_reader.
    #[command(after_help = LISTEN_AFTER_HELP)]
    Listen(listen::Args),
    /// Replay an LLM request trace (Azure LLM inference trace CSV format: TIMESTAMP,
    /// ContextTokens, GeneratedTokens) as agent executions: each request asks budget_check()
    /// and, when allowed, records its cost with track_cost(). Role: neon_budget_writer.
    #[command(after_help = REPLAY_AFTER_HELP)]
    Replay(replay::Args),
}

/// What a permission denied needs: the role of `command` and how to get it, for the login user.
fn role_advice(database_url: Option<&str>, command: &str, role: &str) -> String {
    let user = conn::config(database_url).ok().and_then(|c| c.get_user().map(str::to_string));
    let grantee = user.as_deref().map(conn::quote_ident).unwrap_or_else(|| "USER".to_string());
    format!(
        " `neon-budget {command}` needs a login role that is a member of {role}: have an administrator run \
         GRANT {role} TO {grantee}; or connect as a user that has it (--database-url / DATABASE_URL, PGUSER)."
    )
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
    // The command's name, and what it is called with the role it needs.
    let (name, (command, role), result) = match cli.command {
        Command::Check(args) => {
            let need = if args.init { ("check --init", role::ADMIN) } else { ("check", role::READER) };
            ("check", need, check::run(&cli.global, args))
        }
        Command::Report(args) => ("report", ("report", role::READER), report::run(&cli.global, args)),
        Command::Listen(args) => ("listen", ("listen", role::READER), listen::run(&cli.global, args)),
        Command::Replay(args) => ("replay", ("replay", role::WRITER), replay::run(&cli.global, args)),
    };
    let code = match result {
        Ok(code) => code,
        Err(mut f) => {
            if f.code == exit::PERMISSION_DENIED {
                f.message.push_str(&role_advice(cli.global.database_url.as_deref(), command, role));
            }
            eprintln!("neon-budget {name}: {}", f.message);
            f.code
        }
    };
    std::process::exit(code);
}
