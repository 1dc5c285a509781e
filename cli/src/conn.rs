//! Connection settings and errors: `--database-url` / `DATABASE_URL`, with the libpq `PG*`
//! variables filling in what it leaves out; checks that the extension is installed; turns
//! server errors into [`Failure`]s that say what to do.
use crate::{exit, Failure};
use postgres::config::Host;
use postgres::{Client, Config, NoTls};
use std::time::Duration;

/// The extension version whose `budget_report(month, format)` has the `json` and `csv` formats.
pub const REPORT_FORMATS_VERSION: &str = "0.2.0";

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

/// Builds the connection configuration, as libpq does: the URL or connection string first, then
/// `PGHOST` (default: the Unix socket directory `/var/run/postgresql` when it exists, else
/// `localhost`), `PGPORT` (5432), `PGUSER` (the OS user), `PGPASSWORD`, `PGDATABASE` (the user
/// name), `PGAPPNAME` (`neon-budget`) and `PGCONNECT_TIMEOUT` (10 seconds) for what it leaves
/// out.
pub fn config(database_url: Option<&str>) -> Result<Config, Failure> {
    let mut cfg = match database_url {
        Some(url) => url.parse::<Config>().map_err(|e| {
            Failure::bad_input(format!(
                "invalid --database-url / DATABASE_URL: {e}. Write a connection string such as \
                 \"host=/var/run/postgresql dbname=app\" or a URL such as postgresql://user@host:5432/app."
            ))
        })?,
        None => Config::new(),
    };
    if cfg.get_hosts().is_empty() {
        let host = env("PGHOST").unwrap_or_else(|| {
            if std::path::Path::new("/var/run/postgresql").is_dir() {
                "/var/run/postgresql".to_string()
            } else {
                "localhost".to_string()
            }
        });
        for h in host.split(',') {
            cfg.host(h);
        }
    }
    if cfg.get_ports().is_empty() {
        if let Some(port) = env("PGPORT") {
            let p = port.parse().map_err(|_| Failure::bad_input(format!("PGPORT is not a port number: {port:?}. Set it to e.g. 5432.")))?;
            cfg.port(p);
        }
    }
    if cfg.get_user().is_none() {
        let user = env("PGUSER").or_else(|| env("USER")).unwrap_or_else(|| "postgres".to_string());
        cfg.user(&user);
    }
    if cfg.get_password().is_none() {
        if let Some(pw) = env("PGPASSWORD") {
            cfg.password(pw);
        }
    }
    if cfg.get_dbname().is_none() {
        let db = env("PGDATABASE").unwrap_or_else(|| cfg.get_user().unwrap_or("postgres").to_string());
        cfg.dbname(&db);
    }
    if cfg.get_application_name().is_none() {
        cfg.application_name(&env("PGAPPNAME").unwrap_or_else(|| "neon-budget".to_string()));
    }
    if cfg.get_connect_timeout().is_none() {
        let secs = env("PGCONNECT_TIMEOUT").and_then(|s| s.parse::<u64>().ok()).unwrap_or(10);
        cfg.connect_timeout(Duration::from_secs(secs.max(1)));
    }
    Ok(cfg)
}

/// Where a configuration points, for messages (never the password).
pub fn describe(cfg: &Config) -> String {
    let hosts: Vec<String> = cfg
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    format!(
        "database \"{}\" as user \"{}\" on {} port {port}",
        cfg.get_dbname().unwrap_or("?"),
        cfg.get_user().unwrap_or("?"),
        hosts.join(",")
    )
}

/// Connects, or fails with [`exit::UNAVAILABLE`] and a message that says what failed (server
/// unreachable, password refused, unknown database or role) and what to check.
pub fn connect(database_url: Option<&str>) -> Result<Client, Failure> {
    let cfg = config(database_url)?;
    cfg.connect(NoTls).map_err(|e| connect_failure(&cfg, &e))
}

fn connect_failure(cfg: &Config, e: &postgres::Error) -> Failure {
    let target = describe(cfg);
    if let Some(db) = e.as_db_error().filter(|db| db.code().code() == "42501") {
        // "permission denied for database": no CONNECT privilege.
        let detail = db.detail().map(|d| format!(" ({d})")).unwrap_or_default();
        return Failure::permission_denied(format!(
            "cannot connect to PostgreSQL ({target}): {}{detail} (42501): have an administrator run \
             GRANT CONNECT ON DATABASE {} TO {};",
            db.message(),
            quote_ident(cfg.get_dbname().unwrap_or("?")),
            quote_ident(cfg.get_user().unwrap_or("?"))
        ));
    }
    let settings = "--database-url / DATABASE_URL or PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE";
    let what = match e.as_db_error() {
        Some(db) => {
            let advice = match db.code().code() {
                "28P01" => format!(
                    "the password was refused. Check the password (PGPASSWORD or the password in --database-url / DATABASE_URL) for user \"{}\".",
                    cfg.get_user().unwrap_or("?")
                ),
                "28000" => "the login was refused (unknown role or no pg_hba.conf entry). Check the user and that the server allows this client.".to_string(),
                "3D000" => "the database does not exist. Check the database name (PGDATABASE or the dbname in --database-url).".to_string(),
                "57P03" => "the server is starting up or shutting down. Try again in a moment.".to_string(),
                "53300" => "the server has no free connection slot. Try again later or raise max_connections.".to_string(),
                _ => format!("check {settings}."),
            };
            format!("{} ({}): {advice}", db.message(), db.code().code())
        }
        None => {
            let text = e.to_string();
            if text.contains("password missing") {
                "the server asks for a password and none was given: set PGPASSWORD or put the password in --database-url / DATABASE_URL."
                    .to_string()
            } else {
                format!("{}: is the server running and accepting connections there? Check {settings}.", error_text(e))
            }
        }
    };
    Failure::unavailable(format!("cannot connect to PostgreSQL ({target}): {what}"))
}

/// An SQL identifier as it must be written: bare when it is a plain lower-case name, else in
/// double quotes (`alice`, `"Bob"`, `"a""b"`).
pub fn quote_ident(name: &str) -> String {
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// The full text of an error, its sources included.
pub fn error_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// Compares dotted versions numerically (`0.10.0` > `0.2.0`).
pub fn version_at_least(version: &str, min: &str) -> bool {
    let parts = |v: &str| -> Vec<u64> { v.split(['.', '-']).map(|p| p.parse().unwrap_or(0)).collect() };
    let (a, b) = (parts(version), parts(min));
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (a.get(i).copied().unwrap_or(0), b.get(i).copied().unwrap_or(0));
        if x != y {
            return x > y;
        }
    }
    true
}

/// Checks that the neon_budget extension is installed in the connected database (and, when
/// `min_version` is given, at least that version); returns its version. Fails with
/// [`exit::UNAVAILABLE`] and the SQL to run otherwise.
pub fn require_extension(client: &mut Client, min_version: Option<&str>) -> Result<String, Failure> {
    let row = client
        .query_one("SELECT current_database()::text, (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'neon_budget')", &[])
        .map_err(|e| db_failure("reading pg_extension", &e))?;
    let db: String = row.get(0);
    let version: Option<String> = row.get(1);
    let Some(version) = version else {
        return Err(Failure::unavailable(format!(
            "the neon_budget extension is not installed in database \"{db}\": connect to it as a superuser and run \
             CREATE EXTENSION neon_budget; (first install the extension's files on the server: \
             cargo pgrx install --release --pg-config /usr/lib/postgresql/15/bin/pg_config), \
             or point --database-url / PGDATABASE at the database that has it."
        )));
    };
    if let Some(min) = min_version {
        if !version_at_least(&version, min) {
            return Err(Failure::unavailable(format!(
                "database \"{db}\" has neon_budget {version}; this needs {min} or later: install the new version on the server \
                 and run ALTER EXTENSION neon_budget UPDATE; in that database."
            )));
        }
    }
    Ok(version)
}

/// A failed statement as a [`Failure`] with an exit code that fits: the connection lost or the
/// extension's library missing → [`exit::UNAVAILABLE`]; bad data (SQLSTATE class 22) →
/// [`exit::BAD_INPUT`]; an unknown function → [`exit::UNAVAILABLE`] (extension too old);
/// permission denied (42501) → [`exit::PERMISSION_DENIED`] (`main` adds the role the command
/// needs); otherwise [`exit::FAILED`]. The message keeps the server's message, detail and hint.
pub fn db_failure(context: &str, e: &postgres::Error) -> Failure {
    let Some(db) = e.as_db_error() else {
        return Failure::unavailable(format!(
            "{context}: lost the connection to the server ({}). Check that it is running, then run the command again.",
            error_text(e)
        ));
    };
    let code = db.code().code();
    let mut text = format!("{context}: {} (SQLSTATE {code})", db.message());
    if let Some(d) = db.detail() {
        text.push_str(&format!("; detail: {d}"));
    }
    if let Some(h) = db.hint() {
        text.push_str(&format!("; hint: {h}"));
    }
    let exit_code = match code {
        c if c.starts_with("22") => exit::BAD_INPUT,
        "42883" | "42P01" | "3F000" => {
            text.push_str(
                ". The neon_budget extension in this database looks older than this client: run ALTER EXTENSION neon_budget UPDATE;",
            );
            exit::UNAVAILABLE
        }
        "58P01" => {
            text.push_str(". The extension's library is missing on the server: install it (cargo pgrx install --release) and try again.");
            exit::UNAVAILABLE
        }
        "42501" => {
            text.push('.');
            exit::PERMISSION_DENIED
        }
        c if c.starts_with("08") || c.starts_with("57") => exit::UNAVAILABLE,
        _ => exit::FAILED,
    };
    Failure::new(exit_code, text)
}
