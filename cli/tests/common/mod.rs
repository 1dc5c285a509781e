//! Shared helpers of the neon-budget client tests: a fresh database with the extension per test
//! in a real cluster (started by `scripts/test_cli.sh`), the binary run as a process in a
//! working directory of its own, and long-running `listen` processes.
//!
//! The cluster is reached with the libpq connection string in `NEON_BUDGET_TEST_DSN` (default
//! `host=/tmp/nbcli port=5494 user=postgres`).
#![allow(dead_code)]
use postgres::{Client, NoTls};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Connection string of the test cluster (without `dbname`).
pub fn dsn() -> String {
    std::env::var("NEON_BUDGET_TEST_DSN").unwrap_or_else(|_| "host=/tmp/nbcli port=5494 user=postgres".to_string())
}

/// The built `neon-budget` binary.
pub fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("neon-budget")
}

/// A database of its own for one test (`nbcli_<name>`, with the extension unless asked not to)
/// and a temporary working directory in which the client runs (so `logs/budget/` lands there).
pub struct TestDb {
    pub name: String,
    pub client: Client,
    pub dsn_base: String,
    pub dir: tempfile::TempDir,
}

impl TestDb {
    /// A fresh database with `CREATE EXTENSION neon_budget`.
    pub fn new(name: &str) -> TestDb {
        Self::create(name, &dsn(), true)
    }

    /// A fresh database without the extension.
    pub fn without_extension(name: &str) -> TestDb {
        Self::create(name, &dsn(), false)
    }

    /// A fresh database in the cluster at `dsn_base`.
    pub fn create(name: &str, dsn_base: &str, extension: bool) -> TestDb {
        let name = format!("nbcli_{name}");
        let mut admin = Client::connect(&format!("{dsn_base} dbname=postgres"), NoTls)
            .unwrap_or_else(|e| panic!("cannot connect to the test cluster at '{dsn_base}': {e}. Run scripts/test_cli.sh."));
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).unwrap();
        admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let mut client = Client::connect(&format!("{dsn_base} dbname={name}"), NoTls).unwrap();
        if extension {
            client.batch_execute("CREATE EXTENSION neon_budget").unwrap_or_else(|e| {
                panic!("CREATE EXTENSION neon_budget failed: {}. Install it: cargo pgrx install --release --pg-config /usr/lib/postgresql/15/bin/pg_config", e.as_db_error().map(|d| d.to_string()).unwrap_or(e.to_string()))
            });
        }
        TestDb { name, client, dsn_base: dsn_base.to_string(), dir: tempfile::tempdir().unwrap() }
    }

    /// Connection string of this test's database.
    pub fn dsn(&self) -> String {
        format!("{} dbname={}", self.dsn_base, self.name)
    }

    /// Another connection to this test's database.
    pub fn connect(&self) -> Client {
        Client::connect(&self.dsn(), NoTls).unwrap()
    }

    /// The default log directory of the client run in this test's working directory.
    pub fn log_dir(&self) -> PathBuf {
        self.dir.path().join("logs/budget")
    }

    /// `neon-budget` in this test's working directory, connected to its database with
    /// `--database-url`, with no connection variables inherited from the environment.
    pub fn cmd(&self) -> assert_cmd::Command {
        let mut c = assert_cmd::Command::new(bin());
        clean_env(c.current_dir(self.dir.path()).arg("--database-url").arg(self.dsn()));
        c.timeout(Duration::from_secs(60));
        c
    }

    /// Runs SQL statements.
    pub fn sql(&mut self, sql: &str) {
        self.client.batch_execute(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// A single text value (cast in the query).
    pub fn text(&mut self, sql: &str) -> String {
        self.client.query_one(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}")).get(0)
    }

    /// A single bigint value.
    pub fn int(&mut self, sql: &str) -> i64 {
        self.client.query_one(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}")).get(0)
    }

    /// The current billing month.
    pub fn month(&mut self) -> String {
        self.text("SELECT neon_budget._current_month()")
    }

    /// Sets the current month's budget (dollars) and threshold.
    pub fn budget(&mut self, dollars: &str, threshold: &str) {
        self.sql(&format!("SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), {dollars}, {threshold})"));
    }

    /// Records one execution of `cost` dollars (agent CONTENT) for `campaign` (or none).
    pub fn spend(&mut self, cost: &str, campaign: Option<&str>) {
        let campaign = campaign.map(|c| format!("'{c}'")).unwrap_or_else(|| "NULL".to_string());
        self.sql(&format!("SELECT neon_budget.track_cost('CONTENT', 1000, {campaign}, cost => {cost})"));
    }

    /// PostgreSQL's `round(numeric, places)` of a decimal text, with thousands separators
    /// (the Markdown report's formatting).
    pub fn pg_round(&mut self, value: &str, places: i32) -> String {
        let r: String = self.client.query_one("SELECT round($1::text::numeric, $2)::text", &[&value, &places]).unwrap().get(0);
        group(&r)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test database {} and directory {} kept for inspection", self.name, self.dir.path().display());
            let _kept = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap()).keep();
            return;
        }
        if let Ok(mut admin) = Client::connect(&format!("{} dbname=postgres", self.dsn_base), NoTls) {
            let _ignored_cleanup = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}

/// Removes the connection variables a developer's shell may have set.
pub fn clean_env(c: &mut assert_cmd::Command) -> &mut assert_cmd::Command {
    for k in [
        "DATABASE_URL",
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGPASSWORD",
        "PGDATABASE",
        "PGAPPNAME",
        "NO_COLOR",
        "MAX_MONTHLY_BUDGET",
        "DEFAULT_ALERT_THRESHOLD",
    ] {
        c.env_remove(k);
    }
    c
}

/// Thousands separators in the integer part.
pub fn group(plain: &str) -> String {
    let (sign, digits) = plain.strip_prefix('-').map(|d| ("-", d)).unwrap_or(("", plain));
    let (int, frac) = digits.split_once('.').map(|(i, f)| (i, Some(f))).unwrap_or((digits, None));
    let mut g = String::new();
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            g.push(',');
        }
        g.push(ch);
    }
    match frac {
        Some(f) => format!("{sign}{g}.{f}"),
        None => format!("{sign}{g}"),
    }
}

/// Files in `dir` (names), sorted; empty when it does not exist.
pub fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Lines of a file (empty when it does not exist).
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).map(|t| t.lines().map(str::to_string).collect()).unwrap_or_default()
}

/// Waits until `cond` holds, up to `secs` seconds; panics with `what` otherwise.
pub fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {secs} s waiting for {what}");
}

/// A running `neon-budget listen` process with its output collected.
pub struct Listening {
    pub child: Child,
    pub stdout: Arc<Mutex<String>>,
    pub stderr: Arc<Mutex<String>>,
}

fn collect(r: impl std::io::Read + Send + 'static) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let b = buf.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            let mut s = b.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    buf
}

impl Listening {
    /// Starts `neon-budget --database-url DSN [extra...] listen [args...]` in `dir` and waits
    /// until it has caught up and listens.
    pub fn start(dir: &Path, dsn: &str, extra: &[&str]) -> Listening {
        let mut child = std::process::Command::new(bin())
            .current_dir(dir)
            .env_remove("DATABASE_URL")
            .env_remove("PGHOST")
            .env_remove("PGPORT")
            .args(["--database-url", dsn])
            .args(extra)
            .args(["listen", "--poll-interval", "1", "--max-backoff", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start neon-budget listen");
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        let l = Listening { child, stdout, stderr };
        let err = l.stderr.clone();
        wait_for(30, "listen to start", || err.lock().unwrap().contains("listening on"));
        l
    }

    /// Stops it with SIGTERM and returns its exit code.
    pub fn stop(mut self) -> Option<i32> {
        let _sent = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until {
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100)); // let the readers drain
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _killed = self.child.kill();
        panic!("listen did not stop on SIGTERM; stderr:\n{}", self.stderr.lock().unwrap());
    }

    /// Standard error so far.
    pub fn err(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Standard output so far.
    pub fn out(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _killed = self.child.kill();
        let _reaped = self.child.wait();
    }
}

/// The `[alert_id=N]` marks of the lines of a log file.
pub fn logged_ids(path: &Path) -> Vec<i64> {
    lines(path).iter().filter_map(|l| l.split("[alert_id=").nth(1)?.split(']').next()?.parse().ok()).collect()
}

/// A login role of one test (roles are cluster-wide: each test uses a name of its own), with
/// CONNECT on the test's database and membership in the given neon_budget roles only; dropped
/// (with its privileges) when dropped. Declare it after its [`TestDb`], so that it is dropped
/// first, while the database still exists.
pub struct LoginRole {
    pub name: String,
    db_dsn: String,
}

impl LoginRole {
    /// `nbcli_role_<name>`, a member of `member_of` (none: no neon_budget role at all).
    pub fn new(db: &mut TestDb, name: &str, member_of: &[&str]) -> LoginRole {
        let name = format!("nbcli_role_{name}");
        // A role left by an interrupted run loses what it had.
        db.sql(&format!(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = '{name}') THEN
                 CREATE ROLE {name} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
               END IF;
             END $$;
             SET client_min_messages = error;
             REVOKE neon_budget_reader, neon_budget_writer, neon_budget_admin FROM {name};
             RESET client_min_messages;
             GRANT CONNECT ON DATABASE {db} TO {name};
             {grants}",
            db = db.name,
            grants = member_of.iter().map(|r| format!("GRANT {r} TO {name};")).collect::<String>()
        ));
        LoginRole { name, db_dsn: db.dsn() }
    }

    /// The test database's connection string, logging in as this role.
    pub fn dsn(&self) -> String {
        format!("{} user={}", self.db_dsn, self.name)
    }
}

impl Drop for LoginRole {
    fn drop(&mut self) {
        // Its sessions first (a listener may still be connected), then its privileges in the
        // test database (CONNECT), then the role.
        if let Ok(mut admin) = Client::connect(&self.db_dsn, NoTls) {
            let _ignored_cleanup = admin.batch_execute(&format!(
                "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity WHERE usename = '{n}';
                 DROP OWNED BY {n}; DROP ROLE IF EXISTS {n};",
                n = self.name
            ));
        }
    }
}
