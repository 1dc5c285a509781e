//! Connection settings: `--database-url` / `DATABASE_URL`, else the libpq `PG*` variables.
use postgres::{Client, Config, NoTls};

/// Builds the connection configuration. A given URL or connection string wins; otherwise
/// `PGHOST` (default `localhost`; a path means a Unix socket directory), `PGPORT` (5432),
/// `PGUSER` (the OS user), `PGPASSWORD` and `PGDATABASE` (the user name) are used.
pub fn config(database_url: Option<&str>) -> Result<Config, String> {
    if let Some(url) = database_url {
        return url.parse::<Config>().map_err(|e| format!("invalid --database-url / DATABASE_URL: {e}"));
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut cfg = Config::new();
    let host = env("PGHOST").unwrap_or_else(|| "localhost".to_string());
    for h in host.split(',') {
        cfg.host(h);
    }
    if let Some(port) = env("PGPORT") {
        cfg.port(port.parse().map_err(|_| format!("PGPORT is not a port number: {port}"))?);
    }
    let user = env("PGUSER").or_else(|| env("USER")).unwrap_or_else(|| "postgres".to_string());
    cfg.user(&user);
    if let Some(pw) = env("PGPASSWORD") {
        cfg.password(pw);
    }
    cfg.dbname(&env("PGDATABASE").unwrap_or(user));
    cfg.application_name("neon-budget");
    Ok(cfg)
}

/// Connects, or returns a message that says what failed and what to check.
pub fn connect(database_url: Option<&str>) -> Result<Client, String> {
    let cfg = config(database_url)?;
    cfg.connect(NoTls).map_err(|e| {
        format!("cannot connect to PostgreSQL: {e}. Check --database-url / DATABASE_URL or PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE.")
    })
}
