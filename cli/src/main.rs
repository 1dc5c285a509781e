//! `neon-budget`: the command-line client of the neon_budget PostgreSQL extension.
//!
//! Connects with `--database-url` / `DATABASE_URL` (a libpq connection string or URL), or else
//! the usual `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD` and `PGDATABASE` variables.
use clap::{Parser, Subcommand};

mod conn;
mod replay;

/// Command-line client of the neon_budget PostgreSQL extension.
#[derive(Parser)]
#[command(name = "neon-budget", version, about)]
struct Cli {
    /// libpq connection string or postgresql:// URL; overrides the PG* variables.
    #[arg(long, env = "DATABASE_URL", global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replay an LLM request trace (Azure LLM inference trace CSV format: TIMESTAMP,
    /// ContextTokens, GeneratedTokens) as agent executions: each request asks budget_check()
    /// and, when allowed, records its cost with track_cost().
    Replay(replay::Args),
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Replay(args) => replay::run(cli.database_url.as_deref(), args),
    };
    std::process::exit(code);
}
