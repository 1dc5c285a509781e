//! pg_dump of a database with the extension and data, restored into a new database with
//! pg_restore, gives identical reports, budgets, rates, campaigns, reservations and alert state
//! (issue 4).
use neon_budget_integration::*;
use std::process::Command;

fn socket_and_port() -> (String, String) {
    (
        std::env::var("NEON_BUDGET_TEST_DIR").unwrap_or_else(|_| "/tmp/nbtest".into()),
        std::env::var("NEON_BUDGET_TEST_PORT").unwrap_or_else(|_| "5498".into()),
    )
}

/// Everything a user can see, as text, for comparison.
fn snapshot(c: &mut postgres::Client) -> Vec<Vec<String>> {
    vec![
        column(c, "SELECT b::text FROM neon_budget.billing_log b ORDER BY id"),
        column(c, "SELECT m::text FROM neon_budget.monthly_budget m ORDER BY month"),
        column(c, "SELECT c::text FROM neon_budget.campaign c ORDER BY campaign_id"),
        column(c, "SELECT r::text FROM neon_budget.agent_rate r ORDER BY agent_type, effective_from"),
        column(c, "SELECT a::text FROM neon_budget.alert_log a ORDER BY id"),
        column(c, "SELECT a::text FROM neon_budget.alert_state a ORDER BY scope, scope_key, month"),
        column(c, "SELECT a::text FROM neon_budget.audit_log a ORDER BY id"),
        column(c, "SELECT r::text FROM neon_budget.reservation r ORDER BY id"),
        column(c, "SELECT p::text FROM neon_budget.purged_spend p ORDER BY billing_month, campaign_id, agent_type"),
        column(c, "SELECT x::text FROM neon_budget.campaign_cost x ORDER BY campaign_id, month"),
        column(c, "SELECT x::text FROM neon_budget.agent_analytics x ORDER BY agent_type, month"),
        column(c, "SELECT neon_budget.budget_report('2024-01') || neon_budget.budget_report('2024-02') || neon_budget.budget_report()"),
    ]
}

#[test]
fn dump_and_restore_keep_everything() {
    let mut src = TestDb::new("dump_src");
    let c = &mut src.client;
    c.batch_execute(
        "SELECT neon_budget.set_agent_rate('CONTENT', 0.05, '2024-01-01+00');
         SELECT neon_budget.set_agent_rate('NEW_AGENT', 0.11, '2024-01-01+00');
         SELECT neon_budget.set_monthly_budget('2024-01', 10, 0.5);
         SELECT neon_budget.set_monthly_budget('2024-02', 5000);
         SELECT neon_budget.set_campaign('c1', 'Launch \"Q1\" *bold*', 'CONTENT_GENERATION', 4);
         SELECT neon_budget.set_campaign('c2', 'No limit', NULL, NULL);
         SELECT neon_budget.track_cost('CONTENT', 1000 * g, campaign_id => 'c' || (g % 2 + 1), task => 't' || g,
                                       metadata => jsonb_build_object('g', g), execution_id => 'x' || g,
                                       created_at => ('2024-01-' || lpad((g % 28 + 1)::text, 2, '0') || ' 10:00+00')::timestamptz)
           FROM generate_series(1, 40) g;
         SELECT neon_budget.track_cost('NEW_AGENT', 2000, created_at => '2024-02-03 10:00+00');
         SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 100);
         SELECT neon_budget.set_budget_override(true, 'restore test');
         SELECT neon_budget.track_cost('SEO', 500, campaign_id => 'c1');
         SELECT neon_budget.budget_reserve('CONTENT', 1000, 'c2', ttl => '1 hour');
         SELECT neon_budget.purge_before('2024-01-05 00:00+00');
         SELECT neon_budget.anonymize_before('2024-01-10 00:00+00');",
    )
    .unwrap();
    assert!(int(c, "SELECT count(*) FROM neon_budget.alert_log") >= 4, "the data has alerts to keep");
    assert!(int(c, "SELECT count(*) FROM neon_budget.purged_spend") > 0, "the data has purged sums to keep");
    let before = snapshot(c);

    let (dir, port) = socket_and_port();
    let file = format!("/tmp/nbt_dump_{}.dump", std::process::id());
    let out = Command::new("/usr/lib/postgresql/15/bin/pg_dump")
        .args(["-h", &dir, "-p", &port, "-U", "postgres", "-Fc", "-f", &file, &src.name])
        .output()
        .unwrap();
    assert!(out.status.success(), "pg_dump failed: {}", String::from_utf8_lossy(&out.stderr));

    let mut dst = TestDb::new("dump_dst");
    dst.client.batch_execute("DROP EXTENSION neon_budget CASCADE; DROP SCHEMA neon_budget CASCADE").unwrap();
    // Under another application name: a restore is recognised by what only a superuser session
    // (with row_security off, as pg_restore sets it) can be, not by its name (issue #10).
    let out = Command::new("/usr/lib/postgresql/15/bin/pg_restore")
        .env("PGAPPNAME", "nightly_restore_job")
        .args(["-h", &dir, "-p", &port, "-U", "postgres", "--exit-on-error", "-d", &dst.name, &file])
        .output()
        .unwrap();
    let _removed = std::fs::remove_file(&file);
    assert!(out.status.success(), "pg_restore failed: {}", String::from_utf8_lossy(&out.stderr));

    let after = snapshot(&mut dst.client);
    let names = [
        "billing_log",
        "monthly_budget",
        "campaign",
        "agent_rate",
        "alert_log",
        "alert_state",
        "audit_log",
        "reservation",
        "purged_spend",
        "campaign_cost",
        "agent_analytics",
        "reports",
    ];
    for (i, name) in names.iter().enumerate() {
        assert_eq!(after[i], before[i], "{name} differs after pg_dump / pg_restore");
    }
    assert_eq!(int(&mut dst.client, "SELECT count(*) FROM neon_budget.budget_verify()"), 0);
    // The digest key came with the dump: retries of an anonymized (x8) and a purged (x1)
    // execution still record nothing.
    let rows_before = int(&mut dst.client, "SELECT count(*) FROM neon_budget.billing_log");
    assert!(int(&mut dst.client, "SELECT count(*) FROM neon_budget.billing_log WHERE execution_id LIKE 'nb-anon:%'") > 0);
    assert_sql(&mut dst.client, "SELECT (neon_budget.track_cost('CONTENT', 8000, execution_id => 'x8')).execution_id LIKE 'nb-anon:%'");
    assert_sql(&mut dst.client, "SELECT neon_budget.track_cost('CONTENT', 1000, execution_id => 'x1') IS NULL");
    assert_eq!(int(&mut dst.client, "SELECT count(*) FROM neon_budget.billing_log"), rows_before);
    // The restored database keeps working: new spend, budgets and the override as before.
    assert_sql(&mut dst.client, "SELECT override_enabled FROM neon_budget.budget_check()");
    dst.client.batch_execute("SELECT neon_budget.track_cost('CONTENT', 1000, created_at => '2024-02-04 10:00+00')").unwrap();
    assert_sql(&mut dst.client, "SELECT total_spent = 0.27 FROM neon_budget.monthly_budget WHERE month = '2024-02'");
    assert_eq!(int(&mut dst.client, "SELECT count(*) FROM neon_budget.budget_verify()"), 0);
    // ... and on the fast path: the restored billing_log is recognised as the extension's
    // (issue #11). Both track_cost calls since the restore took the heap path, none the SQL
    // path; the restore's own rows were COPY (write_path_stats itself is not dumped).
    let mut fresh = dst.connect();
    fresh.batch_execute("SELECT neon_budget.track_cost('CONTENT', 1000, created_at => '2024-02-04 11:00+00')").unwrap();
    assert_eq!(
        text(
            &mut fresh,
            "SELECT string_agg(path || ':' || reason || ':' || writes, ', ' ORDER BY path, reason) FROM neon_budget.write_path_stats"
        ),
        Some(format!("heap:track_cost:2, sql:INSERT or COPY:{rows_before}"))
    );
}
