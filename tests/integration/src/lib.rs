//! Shared helpers of the neon_budget integration tests: a fresh database per test in a real
//! cluster (started by `scripts/test.sh`), SQLSTATE assertions, and the aggregate oracle.
//!
//! The cluster is reached with the libpq-style connection string in `NEON_BUDGET_TEST_DSN`
//! (default `host=/tmp/nbtest port=5498 user=postgres`).
use postgres::{Client, NoTls};
use std::time::Duration;

pub mod cluster;
pub mod sessions;
pub use sessions::*;

/// Connection string of the test cluster (without `dbname`).
pub fn dsn() -> String {
    std::env::var("NEON_BUDGET_TEST_DSN").unwrap_or_else(|_| "host=/tmp/nbtest port=5498 user=postgres".to_string())
}

/// A database of its own for one test, with the extension installed. Dropped when the test
/// passes; kept (for inspection) when it fails.
pub struct TestDb {
    pub name: String,
    pub client: Client,
}

impl TestDb {
    /// Creates database `nbt_<name>` (dropping a leftover one) and `CREATE EXTENSION neon_budget`.
    pub fn new(name: &str) -> TestDb {
        let name = format!("nbt_{name}");
        let mut admin = Client::connect(&format!("{} dbname=postgres", dsn()), NoTls)
            .unwrap_or_else(|e| panic!("cannot connect to the test cluster at '{}': {e}. Run scripts/test.sh.", dsn()));
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).unwrap();
        // NEON_BUDGET_TEST_TEMPLATE names a database whose extension was installed at an older
        // version and upgraded (scripts/upgrade_test.sh): every test then runs on the upgraded
        // schema instead of a fresh install.
        let template = std::env::var("NEON_BUDGET_TEST_TEMPLATE").ok().filter(|t| !t.is_empty());
        match &template {
            Some(t) => admin.batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {t}")).unwrap(),
            None => admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap(),
        }
        let mut client = Client::connect(&format!("{} dbname={name}", dsn()), NoTls).unwrap();
        if template.is_none() {
            client.batch_execute("CREATE EXTENSION neon_budget").unwrap();
        }
        TestDb { name, client }
    }

    /// [`TestDb::new`] with some data first (a budget for 2024-01, campaign `c` with a budget
    /// of 10, one CONTENT execution of 1,000 tokens in it), so that "nothing written" checks
    /// compare non-empty tables.
    pub fn seeded(name: &str) -> TestDb {
        let mut db = TestDb::new(name);
        db.client
            .batch_execute(
                "SELECT neon_budget.set_monthly_budget('2024-01', 100);
                 SELECT neon_budget.set_campaign('c', 'C', NULL, 10);
                 SELECT neon_budget.track_cost('CONTENT', 1000, campaign_id => 'c', created_at => '2024-01-10 00:00+00');",
            )
            .unwrap();
        db
    }

    /// Lets this database record executions at any `created_at` (the superuser setting
    /// `neon_budget.max_clock_skew = -1`), for tests of months far ahead; this connection and
    /// every later one.
    pub fn allow_future_created_at(&mut self) {
        self.client
            .batch_execute(&format!(
                "ALTER DATABASE {} SET neon_budget.max_clock_skew = -1; SET neon_budget.max_clock_skew = -1",
                self.name
            ))
            .unwrap();
    }

    /// Another connection to this test's database.
    pub fn connect(&self) -> Client {
        Client::connect(&format!("{} dbname={}", dsn(), self.name), NoTls).unwrap()
    }

    /// Connection string of this test's database.
    pub fn dsn(&self) -> String {
        format!("{} dbname={}", dsn(), self.name)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test database {} kept for inspection", self.name);
            return;
        }
        if let Ok(mut admin) = Client::connect(&format!("{} dbname=postgres", dsn()), NoTls) {
            let _ignored_cleanup = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}

/// Creates (once per cluster) a LOGIN role `name`, member of `member_of` when given, lets it
/// connect to `db` and returns a connection as that role. Roles are cluster-wide: give each test
/// its own names.
pub fn login_role(db: &mut TestDb, name: &str, member_of: Option<&str>) -> Client {
    db.client
        .batch_execute(&format!(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{name}') THEN CREATE ROLE {name} LOGIN; END IF;
             END $$;
             GRANT CONNECT, CREATE ON DATABASE {db} TO {name};
             {grant}",
            db = db.name,
            grant = member_of.map(|r| format!("GRANT {r} TO {name};")).unwrap_or_default()
        ))
        .unwrap();
    Client::connect(&format!("{} dbname={} user={name}", dsn().replace("user=postgres", ""), db.name), NoTls).unwrap()
}

/// Runs `sql`, expects SQLSTATE `code`, and checks that no table or aggregate changed.
#[track_caller]
pub fn rejects(c: &mut Client, sql: &str, code: &str) {
    let before = table_counts(c);
    let snap = aggregates_snapshot(c);
    let got = sqlstate(c.batch_execute(sql));
    assert_eq!(got, code, "{sql}");
    assert_eq!(table_counts(c), before, "{sql} wrote something");
    assert_eq!(aggregates_snapshot(c), snap, "{sql} changed an aggregate");
}

/// The SQLSTATE of a failed statement; panics when it succeeded or failed without one.
pub fn sqlstate<T: std::fmt::Debug>(r: Result<T, postgres::Error>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.code().unwrap_or_else(|| panic!("error without SQLSTATE: {e}")).code().to_string(),
    }
}

/// A single text value of a query (numeric and other types cast to text in the query).
pub fn text(c: &mut Client, sql: &str) -> Option<String> {
    c.query_one(sql, &[]).unwrap().get(0)
}

/// A single bigint value of a query.
pub fn int(c: &mut Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).unwrap().get(0)
}

/// The first column of every row of a query, as text (cast to text in the query), in the
/// query's order.
pub fn column(c: &mut Client, sql: &str) -> Vec<String> {
    c.query(sql, &[]).unwrap().iter().map(|r| r.get(0)).collect()
}

/// The current billing month (`neon_budget._current_month()`, in `neon_budget.timezone`).
pub fn current_month(c: &mut Client) -> String {
    text(c, "SELECT neon_budget._current_month()").unwrap()
}

/// Runs `SELECT neon_budget.track_cost(<args>)`, e.g. `track_cost(c, "'CONTENT', 1000, cost => 5")`.
pub fn track_cost(c: &mut Client, args: &str) {
    c.batch_execute(&format!("SELECT neon_budget.track_cost({args})")).unwrap();
}

/// The aggregate oracle: each maintained aggregate (`monthly_budget` totals, `campaign_cost`,
/// `agent_cost`, `daily_cost`, `campaign_agent_daily_cost`) equals a fresh `GROUP BY` over `billing_log`, compared both ways with
/// `EXCEPT ALL`. Panics listing the differing rows.
pub fn assert_oracle(c: &mut Client) {
    oracle(c, true);
}

/// [`assert_oracle`] for a test that changed `neon_budget.timezone` after writing: a row's day
/// is fixed in the zone in force when it was written, which a fresh `GROUP BY` in the new zone
/// cannot reproduce, so the days are checked to add up to each month's totals instead.
pub fn assert_oracle_after_zone_change(c: &mut Client) {
    oracle(c, false);
    let sql = "SELECT month || ': days ' || d.cost::text || ' vs month ' || m.total_spent::text
                 FROM (SELECT month, sum(total_cost) AS cost, sum(executions) AS n FROM neon_budget.daily_cost GROUP BY 1) d
                 FULL JOIN neon_budget.monthly_budget m USING (month)
                WHERE (d.cost, d.n) IS DISTINCT FROM (m.total_spent, m.executions)
                  AND NOT (d.month IS NULL AND m.executions = 0)";
    let diffs: Vec<String> = c.query(sql, &[]).unwrap().iter().map(|r| r.get(0)).collect();
    assert!(diffs.is_empty(), "days do not add up to their months:\n{}", diffs.join("\n"));
}

fn oracle(c: &mut Client, with_days: bool) {
    // A fresh GROUP BY over billing_log and the view of each aggregate, generated from their
    // one declaration.
    let pairs = neon_budget_common::aggregates::oracle_sql();
    for (name, fresh, kept) in pairs {
        let by_day = neon_budget_common::aggregates::AGGREGATES.iter().any(|a| a.name == name && a.keys.contains(&"billing_day"));
        if by_day && !with_days {
            continue;
        }
        let sql = format!(
            "SELECT 'missing from {name}: ' || (f)::text FROM (({fresh}) EXCEPT ALL ({kept})) f
             UNION ALL
             SELECT 'extra in {name}: ' || (k)::text FROM (({kept}) EXCEPT ALL ({fresh})) k"
        );
        let diffs: Vec<String> = c.query(&sql, &[]).unwrap().iter().map(|r| r.get(0)).collect();
        assert!(diffs.is_empty(), "aggregate oracle failed:\n{}", diffs.join("\n"));
    }
    // Months without executions hold no spend.
    let stray = int(c, "SELECT count(*) FROM neon_budget.monthly_budget WHERE executions = 0 AND total_spent <> 0");
    assert_eq!(stray, 0, "a month without executions shows spend");
}

/// Collects the payloads of NOTIFY neon_budget_alerts that `listener` (which ran
/// `LISTEN neon_budget_alerts`) receives within `wait`.
pub fn alerts_received(listener: &mut Client, wait: Duration) -> Vec<serde_json::Value> {
    use postgres::fallible_iterator::FallibleIterator;
    let mut out = Vec::new();
    let mut notifications = listener.notifications();
    let mut it = notifications.timeout_iter(wait);
    while let Some(n) = it.next().unwrap() {
        assert_eq!(n.channel(), "neon_budget_alerts");
        out.push(serde_json::from_str(n.payload()).unwrap_or_else(|e| panic!("payload is not JSON ({e}): {}", n.payload())));
    }
    out
}

/// Like [`alerts_received`], but the raw payload texts (so that exact decimals can be checked
/// by PostgreSQL, e.g. `SELECT ($1::jsonb->>'spent')::numeric = 80`).
pub fn raw_alerts_received(listener: &mut Client, wait: Duration) -> Vec<String> {
    use postgres::fallible_iterator::FallibleIterator;
    let mut out = Vec::new();
    let mut notifications = listener.notifications();
    let mut it = notifications.timeout_iter(wait);
    while let Some(n) = it.next().unwrap() {
        assert_eq!(n.channel(), "neon_budget_alerts");
        out.push(n.payload().to_string());
    }
    out
}

/// A connection to this test's database that ran `LISTEN neon_budget_alerts`.
pub fn listener(db: &TestDb) -> Client {
    let mut l = db.connect();
    l.batch_execute("LISTEN neon_budget_alerts").unwrap();
    l
}

/// A single boolean value of a query.
pub fn boolean(c: &mut Client, sql: &str) -> bool {
    c.query_one(sql, &[]).unwrap().get(0)
}

/// Asserts that a boolean query returns true, naming the query when it does not.
#[track_caller]
pub fn assert_sql(c: &mut Client, sql: &str) {
    let v: Option<bool> = c.query_one(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e} {:?}", e.as_db_error())).get(0);
    assert_eq!(v, Some(true), "not true: {sql}");
}

/// Row counts of every table the extension writes, for "nothing was written" checks.
pub fn table_counts(c: &mut Client) -> Vec<(String, i64)> {
    ["billing_log", "audit_log", "alert_log", "alert_state", "campaign", "monthly_budget_setting", "agent_rate"]
        .iter()
        .map(|t| (t.to_string(), int(c, &format!("SELECT count(*) FROM neon_budget.{t}"))))
        .collect()
}

/// Every maintained aggregate and alert state, as text lines, for "nothing changed" checks.
pub fn aggregates_snapshot(c: &mut Client) -> Vec<String> {
    c.query(
        "SELECT 'month ' || (m.month, m.total_budget, m.total_spent, m.total_tokens, m.executions,
                             m.alert_threshold, m.alert_levels_sent, m.override_enabled)::text
           FROM neon_budget.monthly_budget m
         UNION ALL SELECT 'campaign ' || (cc.*)::text FROM neon_budget.campaign_cost cc
         UNION ALL SELECT 'agent ' || (ac.*)::text FROM neon_budget.agent_cost ac
         UNION ALL SELECT 'state ' || (s.*)::text FROM neon_budget.alert_state s
         ORDER BY 1",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// splitmix64: tiny, seedable, good enough to pick test actions.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }
    /// True with probability `pct` percent.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}

/// `scope:level:spent` of each alert payload received, in order (spent as sent, exact).
pub fn alert_levels(payloads: &[String]) -> Vec<String> {
    payloads
        .iter()
        .map(|p| {
            let v: serde_json::Value = serde_json::from_str(p).unwrap();
            format!("{}:{}:{}", v["scope"].as_str().unwrap(), v["level"].as_str().unwrap(), v["spent"])
        })
        .collect()
}
