//! Physical streaming replication: a hot standby answers budget_check, budget_report and the
//! dashboard views exactly as the primary does, refuses writes with 25006, and once promoted
//! holds all committed spend and records new spend.
use neon_budget_integration::cluster::Cluster;
use neon_budget_integration::*;
use postgres::Client;
use std::time::{Duration, Instant};

const PRIMARY_DIR: &str = "/tmp/nb_replica_primary";
const PRIMARY_PORT: u16 = 5481;
const STANDBY_DIR: &str = "/tmp/nb_replica_standby";
const STANDBY_PORT: u16 = 5482;

/// Waits until the standby has replayed everything the primary has written so far.
fn wait_replayed(primary: &mut Client, standby: &mut Client) {
    let lsn: String = primary.query_one("SELECT pg_current_wal_lsn()::text", &[]).unwrap().get(0);
    let start = Instant::now();
    loop {
        let done: bool = standby.query_one("SELECT COALESCE(pg_last_wal_replay_lsn() >= $1::text::pg_lsn, false)", &[&lsn]).unwrap().get(0);
        if done {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "the standby did not replay up to {lsn} in 20 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The rows of a query as text lines, sorted.
fn rows(c: &mut Client, sql: &str) -> Vec<String> {
    let mut v: Vec<String> = c
        .query(&format!("SELECT (x)::text FROM ({sql}) x"), &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| r.get(0))
        .collect();
    v.sort();
    v
}

/// Everything a reader sees, for comparing two servers.
const READS: &[&str] = &[
    "SELECT * FROM neon_budget.budget_check()",
    "SELECT * FROM neon_budget.budget_check('camp-a')",
    "SELECT * FROM neon_budget.budget_check('camp-b', 'CONTENT', 5000)",
    "SELECT * FROM neon_budget.budget_check('camp-c', 'DESIGN', 100000)",
    "SELECT * FROM neon_budget.budget_check('no-such-campaign')",
    // The reports without their executions blocked: a refusal is counted on the primary only
    // (write/blocked.rs), so the primary's own budget_check calls above add to its reports.
    "SELECT CASE WHEN position('## 🚫' IN r) > 0 THEN split_part(r, '## 🚫', 1) || '## 💡' || split_part(r, '## 💡', 2) ELSE r END
       FROM neon_budget.budget_report() r",
    "SELECT (neon_budget.budget_report(format => 'json')::jsonb - 'blocked')::text",
    "SELECT string_agg(l, E'\\n') FROM regexp_split_to_table(neon_budget.budget_report(format => 'csv'), E'\\r\\n') l WHERE l NOT LIKE 'blocked,%'",
    "SELECT * FROM neon_budget.monthly_overview",
    "SELECT * FROM neon_budget.campaign_breakdown",
    "SELECT * FROM neon_budget.agent_analytics",
    "SELECT * FROM neon_budget.monthly_budget",
    "SELECT * FROM neon_budget.campaign_cost",
    "SELECT * FROM neon_budget.agent_cost",
    "SELECT id, scope, campaign_id, month, level, spent, budget, utilization FROM neon_budget.alert_log",
    "SELECT * FROM neon_budget.alert_state",
];

fn snapshot(c: &mut Client) -> Vec<Vec<String>> {
    READS.iter().map(|sql| rows(c, sql)).collect()
}

fn assert_same(primary: &[Vec<String>], standby: &[Vec<String>]) {
    for (i, sql) in READS.iter().enumerate() {
        assert_eq!(standby[i], primary[i], "the standby differs from the primary in: {sql}");
    }
}

/// Sums of billing_log, as text (for exact comparison across servers).
const BILLING_SUMS: &str = "SELECT (SELECT count(*)::text || '|' || sum(cost)::text || '|' || sum(tokens)::text
                  FROM neon_budget.billing_log)
        || '|' || (SELECT string_agg(k || ':' || c || ':' || n, ',' ORDER BY k)
                     FROM (SELECT COALESCE(campaign_id, '-') AS k, sum(cost)::text AS c, count(*)::text AS n
                             FROM neon_budget.billing_log GROUP BY 1) x)
        || '|' || (SELECT string_agg(k || ':' || c || ':' || n, ',' ORDER BY k)
                     FROM (SELECT agent_type AS k, sum(cost)::text AS c, count(*)::text AS n
                             FROM neon_budget.billing_log GROUP BY 1) y)";

#[test]
fn standby_reads_like_the_primary_and_promotes_with_all_spend() {
    let primary = Cluster::create(PRIMARY_DIR, PRIMARY_PORT);
    let mut p = primary.connect("postgres");
    p.batch_execute("CREATE DATABASE replica").unwrap();
    let mut p = primary.connect("replica");
    p.batch_execute(
        "CREATE EXTENSION neon_budget;
         SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 100);
         SELECT neon_budget.set_campaign('camp-a', 'Launch *A*', 'product_launch', 1);
         SELECT neon_budget.set_campaign('camp-b', 'B', 'seo', 50);
         SELECT neon_budget.set_campaign('camp-c', 'C', NULL, NULL);",
    )
    .unwrap();

    let standby = Cluster::standby_of(&primary, STANDBY_DIR, STANDBY_PORT);
    let mut s = standby.connect("replica");
    assert!(boolean(&mut s, "SELECT pg_is_in_recovery()"));

    // A few hundred executions, each in its own transaction, over four agent types and four
    // campaigns (one without a campaign).
    let agents = ["CONTENT", "SEO", "EMAIL_MARKETING", "DESIGN"];
    let campaigns = [Some("camp-a"), Some("camp-b"), Some("camp-c"), None];
    let stmt = p
        .prepare(
            "SELECT neon_budget.track_cost($1::text, $2::bigint, campaign_id => $3::text, execution_id => $4::text,
                    conversion_achieved => $5::boolean, quality_score => $6::float8, retry_count => $7::int,
                    execution_time_ms => $8::bigint)",
        )
        .unwrap();
    for i in 0..300i64 {
        let agent = agents[(i % 4) as usize];
        let campaign = campaigns[((i / 4) % 4) as usize];
        let conversion = if i % 3 == 0 { None } else { Some(i % 3 == 1) };
        let quality = if i % 5 == 0 { None } else { Some((i % 10) as f64 / 10.0) };
        p.execute(&stmt, &[&agent, &(100 + 3 * i), &campaign, &format!("exec-{i}"), &conversion, &quality, &((i % 4) as i32), &(100 + i)])
            .unwrap();
    }
    // camp-a ($1) crossed all its levels on the primary.
    assert_eq!(int(&mut p, "SELECT count(*) FROM neon_budget.alert_log WHERE campaign_id = 'camp-a'"), 3);

    // Bring the month to just below its warning level, then two concurrent transactions cross
    // it together, each seeing only its own spend: the level is due but not sent, which a
    // budget_check on the primary would send (a write). The standby must still answer.
    let spent: String =
        text(&mut p, "SELECT total_spent::text FROM neon_budget.monthly_budget WHERE month = neon_budget._current_month()").unwrap();
    p.execute("SELECT neon_budget.track_cost('SEO', 0, execution_id => 'fill', cost => 79.5 - $1::text::numeric)", &[&spent]).unwrap();
    let mut p2 = primary.connect("replica");
    p.batch_execute("BEGIN; SELECT neon_budget.track_cost('SEO', 0, execution_id => 'together-1', cost => 0.3)").unwrap();
    p2.batch_execute("BEGIN; SELECT neon_budget.track_cost('SEO', 0, execution_id => 'together-2', cost => 0.3)").unwrap();
    p.batch_execute("COMMIT").unwrap();
    p2.batch_execute("COMMIT").unwrap();
    assert_sql(&mut p, "SELECT total_spent = 80.1 FROM neon_budget.monthly_budget WHERE month = neon_budget._current_month()");
    assert_eq!(int(&mut p, "SELECT count(*) FROM neon_budget.alert_log WHERE scope = 'month'"), 0, "the setup needs a missed level");

    wait_replayed(&mut p, &mut s);
    // On the standby, with the level due: budget_check answers (and writes nothing).
    assert_sql(&mut s, "SELECT status = 'warning' AND total_spent = 80.1 FROM neon_budget.budget_check()");
    let before = snapshot(&mut s);
    // The primary's budget_check sends the missed level; the standby then sees it too.
    assert_sql(&mut p, "SELECT status = 'warning' AND total_spent = 80.1 FROM neon_budget.budget_check()");
    assert_eq!(int(&mut p, "SELECT count(*) FROM neon_budget.alert_log WHERE scope = 'month'"), 1);
    let primary_view = snapshot(&mut p);
    // Apart from the alert, the standby read before equals the primary now.
    for (i, sql) in READS.iter().enumerate() {
        if !sql.contains("alert_") && !sql.contains("monthly_budget") {
            assert_eq!(before[i], primary_view[i], "the standby differs from the primary in: {sql}");
        }
    }
    wait_replayed(&mut p, &mut s);
    let standby_view = snapshot(&mut s);
    assert_same(&primary_view, &standby_view);

    // Exact values on the standby, against billing_log sums on the primary.
    let expect_month: String = text(&mut p, "SELECT sum(cost)::text FROM neon_budget.billing_log").unwrap();
    let expect_a: String = text(&mut p, "SELECT sum(cost)::text FROM neon_budget.billing_log WHERE campaign_id = 'camp-a'").unwrap();
    assert_eq!(expect_month.parse::<f64>().unwrap(), 80.1);
    let row = s
        .query_one(
            "SELECT can_execute, status, total_spent::text, campaign_spent::text, total_budget::text
               FROM neon_budget.budget_check('camp-a')",
            &[],
        )
        .unwrap();
    let (can, status, total, camp, budget): (bool, String, String, Option<String>, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    assert!(!can, "camp-a is over its $1 budget");
    assert_eq!(status, "exceeded");
    assert_sql(&mut s, &format!("SELECT '{total}'::numeric = '{expect_month}'::numeric"));
    assert_sql(&mut s, &format!("SELECT '{}'::numeric = '{expect_a}'::numeric", camp.unwrap()));
    assert_sql(&mut s, &format!("SELECT '{budget}'::numeric = 100"));
    assert_sql(
        &mut s,
        "SELECT can_execute AND status = 'warning' AND campaign_budget IS NULL
                AND campaign_spent = (SELECT sum(cost) FROM neon_budget.billing_log WHERE campaign_id = 'camp-c')
           FROM neon_budget.budget_check('camp-c')",
    );
    let report = text(&mut s, "SELECT neon_budget.budget_report()").unwrap();
    assert!(report.contains("Launch \\*A\\*"), "report on the standby:\n{report}");
    assert_oracle(&mut s);

    // Writes on the standby fail with 25006 (read_only_sql_transaction) and change nothing.
    let writes = [
        "SELECT neon_budget.track_cost('CONTENT', 100, campaign_id => 'camp-b')",
        // Even a repeated execution_id (which would record nothing).
        "SELECT neon_budget.track_cost('CONTENT', 100, execution_id => 'exec-1')",
        "SELECT neon_budget.budget_reserve('CONTENT', 100, 'camp-b')",
        "SELECT neon_budget.budget_release(1)",
        "SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 500)",
        "SELECT neon_budget.set_campaign('camp-d', 'D', NULL, 1)",
        "SELECT neon_budget.set_agent_rate('CONTENT', 0.05)",
        "SELECT neon_budget.set_budget_override(true, 'standby')",
        "INSERT INTO neon_budget.billing_log (agent_type, tokens, cost, billing_month) VALUES ('SEO', 1, 1, '2024-01')",
    ];
    let got: Vec<String> = writes
        .iter()
        .map(|sql| {
            let e = s.batch_execute(sql).expect_err(sql);
            let d = e.as_db_error().unwrap_or_else(|| panic!("{sql}: {e}"));
            format!("{} {}: {sql}", d.code().code(), d.message())
        })
        .collect();
    // Checked at the end, so that a wrong SQLSTATE does not hide what promotion does.
    let wrong_sqlstates = got.iter().any(|g| !g.starts_with("25006 "));
    assert_same(&primary_view, &snapshot(&mut s));

    // Failover: the primary stops, the standby is promoted.
    let primary_sums = text(&mut p, BILLING_SUMS).unwrap();
    let primary_count = int(&mut p, "SELECT count(*) FROM neon_budget.billing_log");
    assert_eq!(primary_count, 303);
    const BLOCKED: &str = "SELECT COALESCE(sum(blocked), 0)::bigint FROM neon_budget._blocked_count";
    let primary_blocked = int(&mut p, BLOCKED);
    assert!(primary_blocked > 0, "the primary counted its refused budget_check calls");
    drop(p);
    drop(p2);
    primary.stop();
    assert!(boolean(&mut s, "SELECT pg_promote(true, 30)"), "pg_promote failed");
    assert!(!boolean(&mut s, "SELECT pg_is_in_recovery()"));
    // The refusals this session saw as a standby are not counted, also once promoted: an
    // allowed check (which writes what a backend holds) adds nothing.
    s.batch_execute("SELECT neon_budget.budget_check()").unwrap();
    assert_eq!(int(&mut s, BLOCKED), primary_blocked);

    assert_eq!(text(&mut s, BILLING_SUMS).unwrap(), primary_sums);
    assert_same(&primary_view, &snapshot(&mut s));
    assert_oracle(&mut s);

    // The promoted server records spend: a repeated execution_id once, new ones on top.
    let exec1 = int(&mut s, "SELECT id FROM neon_budget.billing_log WHERE execution_id = 'exec-1'");
    assert_eq!(int(&mut s, "SELECT (neon_budget.track_cost('SEO', 1, execution_id => 'exec-1')).id"), exec1);
    let mut s2 = standby.connect("replica");
    s.batch_execute("SELECT neon_budget.track_cost('CONTENT', 1000, campaign_id => 'camp-b', execution_id => 'after-1')").unwrap();
    s2.batch_execute("SELECT neon_budget.track_cost('CONTENT', 2000, campaign_id => 'camp-c', execution_id => 'after-2')").unwrap();
    assert_eq!(int(&mut s, "SELECT count(*) FROM neon_budget.billing_log"), primary_count + 2);
    assert_sql(&mut s, &format!("SELECT total_spent = '{expect_month}'::numeric + 0.12 FROM neon_budget.budget_check()"));
    assert_sql(
        &mut s,
        "SELECT campaign_spent = (SELECT sum(cost) FROM neon_budget.billing_log WHERE campaign_id = 'camp-b')
           FROM neon_budget.budget_check('camp-b')",
    );
    // A reservation works on the promoted server (it writes).
    assert_sql(&mut s, "SELECT neon_budget.budget_reserve('CONTENT', 100, 'camp-b') IS NOT NULL");
    assert_oracle(&mut s);

    assert!(!wrong_sqlstates, "writes on the standby that did not fail with 25006:\n{}", got.join("\n"));
}
