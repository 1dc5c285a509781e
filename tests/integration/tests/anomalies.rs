//! Cost anomalies (issue #13, part 4): days far above their own 14-day baseline per agent type
//! and campaign, and single executions far above their agent type's mean, on the real trace
//! and on hand-made series. Expected figures were computed independently (Python `decimal`
//! over the same CSV and mapping, the rules of src/anomaly/mod.rs).
use neon_budget_integration::cluster::Cluster;
use neon_budget_integration::*;
use std::io::Write;
use std::time::Duration;

/// The Azure LLM inference trace (demo/data, CC BY 4.0): 19,366 requests.
const TRACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../demo/data/AzureLLMInferenceTrace_conv.csv");

/// Loads the trace into `billing_log` over March 2025 (31 days), as `neon-budget replay
/// --spread-over-month` lays a trace over a month: request `n` (1-based, file order) at
/// 2025-03-01 + its offset from the first request × (31 days / the trace's span), in whole
/// microseconds; agent type `n - 1` mod 6 of CONTENT, SEO, EMAIL_MARKETING, AD, DESIGN,
/// CUSTOMER_SUPPORT; campaign-`((n - 1) mod 4) + 1`; tokens = context + generated, priced at
/// the default rates. PostgreSQL's COPY reads the CSV; one multi-row INSERT writes the log.
fn load_trace(c: &mut postgres::Client) {
    c.batch_execute("CREATE TEMP TABLE trace (n bigint GENERATED ALWAYS AS IDENTITY, ts timestamp, ctx bigint, gen bigint)").unwrap();
    let mut w = c.copy_in("COPY trace (ts, ctx, gen) FROM STDIN (FORMAT csv, HEADER true)").unwrap();
    w.write_all(&std::fs::read(TRACE).unwrap()).unwrap();
    w.finish().unwrap();
    c.batch_execute(
        "INSERT INTO neon_budget.billing_log (agent_type, campaign_id, tokens, created_at, execution_id)
         SELECT (ARRAY['CONTENT','SEO','EMAIL_MARKETING','AD','DESIGN','CUSTOMER_SUPPORT'])[(t.n - 1) % 6 + 1],
                'campaign-' || ((t.n - 1) % 4 + 1), t.ctx + t.gen,
                '2025-03-01 00:00+00'::timestamptz
                  + (floor(extract(epoch FROM t.ts - s.t0) * 1000000 * 2678400000000 / s.span))::bigint * interval '1 microsecond',
                'trace-' || t.n
           FROM trace t, (SELECT min(ts) AS t0, extract(epoch FROM max(ts) - min(ts)) * 1000000 AS span FROM trace) s",
    )
    .unwrap();
}

fn anomaly_count(c: &mut postgres::Client) -> i64 {
    int(c, "SELECT count(*) FROM neon_budget.alert_log WHERE level = 'anomaly'")
}

/// Replayed as is, the trace has no anomaly: no day of an agent type or campaign, no execution.
#[test]
fn the_trace_as_is_has_no_anomaly() {
    let mut db = TestDb::new("anomaly_trace_clean");
    load_trace(&mut db.client);
    assert_eq!(int(&mut db.client, "SELECT count(*) FROM neon_budget.billing_log"), 19366);
    assert_eq!(text(&mut db.client, "SELECT sum(cost)::text FROM neon_budget.billing_log").unwrap(), "1279.62747");
    assert_eq!(int(&mut db.client, "SELECT count(*) FROM neon_budget.detect_anomalies('2025-03-01', '2025-03-31')"), 0);
    assert_eq!(anomaly_count(&mut db.client), 0);
    assert_eq!(int(&mut db.client, "SELECT count(*) FROM neon_budget._anomaly_scan WHERE billing_day LIKE '2025-03-%'"), 31);
    assert_oracle(&mut db.client);
}

/// With a spike injected (campaign-2's 2025-03-21 × 10: its executions recorded ten times; one
/// DESIGN execution × 50, through track_cost) exactly these anomalies are found: that campaign
/// day, the three agent types' days it inflates, and the execution. Each is sent once, with its
/// figures, to alert_log, audit_log and NOTIFY.
#[test]
fn a_spike_on_the_trace_gives_exactly_its_anomalies() {
    let mut db = TestDb::new("anomaly_trace_spike");
    load_trace(&mut db.client);
    let mut l = listener(&db);
    db.client
        .batch_execute(
            "INSERT INTO neon_budget.billing_log (agent_type, campaign_id, tokens, created_at)
             SELECT b.agent_type, b.campaign_id, b.tokens, b.created_at FROM neon_budget.billing_log b, generate_series(1, 9)
              WHERE b.campaign_id = 'campaign-2' AND b.created_at >= '2025-03-21 00:00+00' AND b.created_at < '2025-03-22 00:00+00'",
        )
        .unwrap();
    // Request 4097 (DESIGN, campaign-1, 2025-03-08, 1,425 tokens) once more with 50 × its tokens.
    let spike = text(
        &mut db.client,
        "SELECT (neon_budget.track_cost('DESIGN', 50 * b.tokens, campaign_id => b.campaign_id, execution_id => 'spike',
                                        created_at => b.created_at + interval '1 microsecond')).cost::text
           FROM neon_budget.billing_log b WHERE b.execution_id = 'trace-4097'",
    );
    assert_eq!(spike.as_deref(), Some("4.9875"));
    // The execution anomaly is sent at once, by the write.
    let sent = alerts_received(&mut l, Duration::from_millis(500));
    assert_eq!(sent.len(), 1, "{sent:?}");
    let p = &sent[0];
    assert_eq!((p["level"].as_str(), p["scope"].as_str(), p["month"].as_str()), (Some("anomaly"), Some("execution"), Some("2025-03")));
    assert!(p["budget"].is_null() && p["utilization"].is_null() && p["campaign_id"].is_null(), "{p}");
    let d = &p["details"];
    assert_eq!(d["kind"], "execution");
    assert_eq!(
        (d["scope_key"].as_str(), d["day"].as_str(), d["execution_id"].as_str()),
        (Some("DESIGN"), Some("2025-03-08"), Some("spike"))
    );
    assert_eq!(d["campaign_id"], "campaign-1");
    assert_eq!(
        (d["cost"].to_string(), d["typical_cost"].to_string(), d["ratio"].to_string()),
        ("4.9875".into(), "0.095791".into(), "52.07".into())
    );
    assert_eq!(
        (d["executions_in_baseline"].as_i64(), d["factor"].to_string(), d["min_dollars"].to_string()),
        (Some(3227), "20".into(), "1".into())
    );

    // The day anomalies, found by the scan of March (exact figures, dollars).
    let expected = "VALUES
        ('agent_type', 'AD', '2025-03-21', 36.90966, 9.84243, 2.52573, 27.06723, 7.23),
        ('agent_type', 'CUSTOMER_SUPPORT', '2025-03-21', 28.33012, 6.84518, 1.41468, 21.48494, 10.24),
        ('agent_type', 'SEO', '2025-03-21', 15.55542, 5.06100, 1.10529, 10.49442, 6.40),
        ('campaign', 'campaign-2', '2025-03-21', 73.72850, 10.29660, 2.230795, 63.43190, 19.18)";
    let found = "SELECT scope, scope_key, day, spent, baseline_median, baseline_mad, excess, score
                   FROM neon_budget.detect_anomalies('2025-03-01', '2025-03-31')";
    for (a, b) in [(found, expected), (expected, found)] {
        let stray = int(&mut db.client, &format!("SELECT count(*) FROM (({a}) EXCEPT ({b})) x"));
        assert_eq!(stray, 0, "{a}\nEXCEPT\n{b}");
    }
    assert_eq!(int(&mut db.client, &format!("SELECT count(*) FROM ({found}) x")), 4);
    let day_alerts = alerts_received(&mut l, Duration::from_millis(500));
    assert_eq!(day_alerts.len(), 4, "{day_alerts:?}");
    let c2 = day_alerts.iter().find(|p| p["scope"] == "campaign").unwrap();
    assert_eq!((c2["campaign_id"].as_str(), c2["details"]["score"].to_string()), (Some("campaign-2"), "19.18".to_string()));
    assert_eq!(c2["details"]["baseline_median"].to_string(), "10.2966");

    // Once per scope and day: a second scan sends nothing and names the same alerts.
    assert_eq!(anomaly_count(&mut db.client), 5);
    assert_eq!(int(&mut db.client, "SELECT count(alert_id) FROM neon_budget.detect_anomalies('2025-03-01', '2025-03-31')"), 4);
    assert_eq!(anomaly_count(&mut db.client), 5);
    assert!(alerts_received(&mut l, Duration::from_millis(300)).is_empty());
    // Each is in audit_log too ("cost anomalies" in the seed's audit trail), with its alert id.
    assert_eq!(
        column(&mut db.client, "SELECT target FROM neon_budget.audit_log WHERE action = 'cost_anomaly' ORDER BY id"),
        vec![
            "execution DESIGN 2025-03-08",
            "agent_type AD 2025-03-21",
            "agent_type CUSTOMER_SUPPORT 2025-03-21",
            "agent_type SEO 2025-03-21",
            "campaign campaign-2 2025-03-21"
        ]
    );
    assert_sql(
        &mut db.client,
        "SELECT bool_and((a.new_value->>'alert_id')::bigint = l.id AND a.new_value - 'alert_id' = l.details)
           FROM neon_budget.audit_log a JOIN neon_budget.alert_log l
             ON a.target = l.scope || ' ' || (l.details->>'scope_key') || ' ' || (l.details->>'day')
          WHERE a.action = 'cost_anomaly'",
    );
    // A stricter threshold finds fewer (score 6.40 and 7.23 fall under 8).
    db.client.batch_execute("SET neon_budget.anomaly_threshold = '8'").unwrap();
    assert_eq!(
        column(&mut db.client, "SELECT scope_key FROM neon_budget.detect_anomalies('2025-03-01', '2025-03-31') ORDER BY 1"),
        vec!["CUSTOMER_SUPPORT", "campaign-2"]
    );
    assert_oracle(&mut db.client);
}

/// The first write of a day scores the day before, once per database; a rollback undoes the
/// scan (the next write does it again); a second session finds it done.
#[test]
fn the_first_write_of_a_day_scores_yesterday_once() {
    let mut db = TestDb::new("anomaly_daily_scan");
    // 14 days of $20 before yesterday, and $200 yesterday, for campaign c-auto and agent CONTENT.
    let history = "INSERT INTO neon_budget.billing_log (agent_type, campaign_id, tokens, cost, created_at)
                   SELECT 'CONTENT', 'c-auto', 0, CASE WHEN k = 1 THEN 200 ELSE 20 END, now() - k * interval '1 day'
                     FROM generate_series(1, 15) k";
    let yesterday = text(&mut db.client, "SELECT to_char(now() - interval '1 day', 'YYYY-MM-DD')").unwrap();
    db.client.batch_execute(&format!("BEGIN; {history}; ROLLBACK")).unwrap();
    assert_eq!(anomaly_count(&mut db.client), 0);
    assert_eq!(int(&mut db.client, "SELECT count(*) FROM neon_budget._anomaly_scan"), 0);
    db.client.batch_execute(history).unwrap();
    assert_eq!(
        column(
            &mut db.client,
            "SELECT scope || ' ' || (details->>'scope_key') || ' ' || (details->>'day') || ' ' || spent || ' ' || (details->>'baseline_median')
               FROM neon_budget.alert_log WHERE level = 'anomaly' ORDER BY id"
        ),
        vec![format!("agent_type CONTENT {yesterday} 200 20"), format!("campaign c-auto {yesterday} 200 20")]
    );
    // The first scan of a database scores the last 7 complete days.
    assert_eq!(
        column(&mut db.client, "SELECT billing_day FROM neon_budget._anomaly_scan ORDER BY 1"),
        column(&mut db.client, "SELECT to_char(now() - k * interval '1 day', 'YYYY-MM-DD') FROM generate_series(7, 1, -1) k")
    );
    // Another session's write and check find the day scanned: nothing more.
    let mut other = db.connect();
    track_cost(&mut other, "'CONTENT', 1000, campaign_id => 'c-auto'");
    other.batch_execute("SELECT * FROM neon_budget.budget_check('c-auto')").unwrap();
    assert_eq!(anomaly_count(&mut db.client), 2);
    assert_oracle(&mut db.client);
}

/// Off, nothing is looked for; under REPEATABLE READ the scan steps aside until a later call.
#[test]
fn detection_off_and_repeatable_read_step_aside() {
    let mut db = TestDb::new("anomaly_off");
    let history = "INSERT INTO neon_budget.billing_log (agent_type, campaign_id, tokens, cost, created_at)
                   SELECT 'CONTENT', 'c-off', 0, CASE WHEN k = 1 THEN 200 ELSE 20 END, now() - k * interval '1 day'
                     FROM generate_series(1, 15) k";
    db.client.batch_execute(&format!("SET neon_budget.anomaly_detection = off; {history}")).unwrap();
    assert_eq!(anomaly_count(&mut db.client), 0);
    assert_eq!(int(&mut db.client, "SELECT count(*) FROM neon_budget._anomaly_scan"), 0);
    db.client
        .batch_execute("RESET neon_budget.anomaly_detection; BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT neon_budget.track_cost('CONTENT', 1000); COMMIT")
        .unwrap();
    assert_eq!(anomaly_count(&mut db.client), 0);
    // The next READ COMMITTED call scans.
    db.client.batch_execute("SELECT * FROM neon_budget.budget_check()").unwrap();
    assert_eq!(anomaly_count(&mut db.client), 2);
}

/// A multi-row INSERT or COPY looks at its dearest execution of each agent type and day; the
/// executions of an agent type and day alert once.
#[test]
fn execution_anomalies_on_every_entry_path_once_per_agent_type_and_day() {
    let mut db = TestDb::new("anomaly_executions");
    let mut l = listener(&db);
    db.client
        .batch_execute(
            "INSERT INTO neon_budget.billing_log (agent_type, tokens, cost, created_at)
             SELECT 'SEO', 0, 0.05, '2025-03-05 10:00+00' FROM generate_series(1, 200)",
        )
        .unwrap();
    // 99 executions of history would be too few; 200 are enough. Mean without the spike:
    // (200 × 0.05 + 0.05) / 201 = 0.05; 3.00 × 201 / 10.05 = 60.
    db.client
        .batch_execute(
            "INSERT INTO neon_budget.billing_log (agent_type, tokens, cost, created_at, execution_id)
             VALUES ('SEO', 0, 3.00, '2025-03-06 10:00+00', 'big'), ('SEO', 0, 0.05, '2025-03-06 10:00+00', 'small')",
        )
        .unwrap();
    let sent = alerts_received(&mut l, Duration::from_millis(500));
    assert_eq!(sent.len(), 1, "{sent:?}");
    let d = &sent[0]["details"];
    assert_eq!((d["execution_id"].as_str(), d["day"].as_str()), (Some("big"), Some("2025-03-06")));
    assert_eq!(
        (d["typical_cost"].to_string(), d["ratio"].to_string(), d["executions_in_baseline"].as_i64()),
        ("0.05".into(), "60".into(), Some(201))
    );
    // The same agent type and day again: no second alert; another day: one more.
    track_cost(&mut db.client, "'SEO', 0, cost => 5, created_at => '2025-03-06 11:00+00'");
    assert!(alerts_received(&mut l, Duration::from_millis(300)).is_empty());
    track_cost(&mut db.client, "'SEO', 0, cost => 5, created_at => '2025-03-07 11:00+00'");
    assert_eq!(alerts_received(&mut l, Duration::from_millis(500)).len(), 1);
    // Under the dollar minimum, however far above the mean: never.
    track_cost(&mut db.client, "'SEO', 0, cost => 0.99, created_at => '2025-03-08 11:00+00'");
    assert!(alerts_received(&mut l, Duration::from_millis(300)).is_empty());
    assert_eq!(anomaly_count(&mut db.client), 2);
    assert_oracle(&mut db.client);
}

/// detect_anomalies: SQLSTATEs, nothing written when refused, admin only.
#[test]
fn detect_anomalies_refuses_bad_ranges_and_other_roles() {
    let mut db = TestDb::seeded("anomaly_bad");
    rejects(&mut db.client, "SELECT * FROM neon_budget.detect_anomalies(NULL)", "22004");
    rejects(&mut db.client, "SELECT * FROM neon_budget.detect_anomalies('2025-03-01', current_date)", "22023");
    rejects(&mut db.client, "SELECT * FROM neon_budget.detect_anomalies('2025-03-02', '2025-03-01')", "22023");
    rejects(&mut db.client, "SELECT * FROM neon_budget.detect_anomalies('2024-01-01', '2025-01-01')", "22023");
    rejects(&mut db.client, "SELECT * FROM neon_budget.detect_anomalies('2025-03-01', 'infinity')", "22023");
    rejects(
        &mut db.client,
        "SET neon_budget.anomaly_threshold = 'x'; SELECT * FROM neon_budget.detect_anomalies('2025-03-01', '2025-03-02')",
        "22023",
    );
    db.client.batch_execute("RESET neon_budget.anomaly_threshold").unwrap();
    // A setting out of its range is refused when set, never later by a write.
    for bad in ["anomaly_threshold = '0'", "anomaly_min_dollars = '-1'", "anomaly_execution_factor = '1e3'", "anomaly_min_increase = ''"] {
        assert_eq!(sqlstate(db.client.batch_execute(&format!("SET neon_budget.{bad}"))), "22023", "{bad}");
    }
    db.client.batch_execute("SET neon_budget.anomaly_min_increase = '0'; SET neon_budget.anomaly_execution_min_dollars = '0.5'").unwrap();
    db.client.batch_execute("RESET neon_budget.anomaly_min_increase; RESET neon_budget.anomaly_execution_min_dollars").unwrap();
    rejects(&mut db.client, "SELECT * FROM neon_budget.detect_anomalies('0001-01-01 BC', '0001-01-01 BC')", "22023");
    rejects(&mut db.client, "SELECT * FROM neon_budget.detect_anomalies('5874897-12-31')", "22023");
    db.client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ").unwrap();
    assert_eq!(sqlstate(db.client.batch_execute("SELECT * FROM neon_budget.detect_anomalies('2025-03-01', '2025-03-02')")), "0A000");
    db.client.batch_execute("ROLLBACK").unwrap();
    db.client.batch_execute("BEGIN READ ONLY").unwrap();
    assert_eq!(sqlstate(db.client.batch_execute("SELECT * FROM neon_budget.detect_anomalies('2025-03-01', '2025-03-02')")), "25006");
    db.client.batch_execute("ROLLBACK").unwrap();
    let mut writer = login_role(&mut db, "nb_anomaly_writer", Some("neon_budget_writer"));
    assert_eq!(sqlstate(writer.batch_execute("SELECT * FROM neon_budget.detect_anomalies('2025-03-01', '2025-03-02')")), "42501");
    // Once the library is loaded (any call), its settings are a superuser's.
    writer.batch_execute("SELECT * FROM neon_budget.budget_check()").unwrap();
    assert_eq!(sqlstate(writer.batch_execute("SET neon_budget.anomaly_threshold = '100'")), "42501");
    let mut admin = login_role(&mut db, "nb_anomaly_admin", Some("neon_budget_admin"));
    assert_eq!(int(&mut admin, "SELECT count(*) FROM neon_budget.detect_anomalies('2025-03-01', '2025-03-02')"), 0);
}

/// The mean is read at the write that may be an anomaly, never taken from a stale copy: after
/// 100 executions of $0.10 and 200 of $1.50 in one session, $2.50 is 2.4 × the mean, no anomaly.
#[test]
fn an_execution_is_judged_on_the_mean_of_its_time() {
    let mut db = TestDb::new("anomaly_fresh_mean");
    let mut l = listener(&db);
    db.client
        .batch_execute(
            "SELECT count(*) FROM (SELECT neon_budget.track_cost('DESIGN', 10, cost => 0.1) FROM generate_series(1, 100)) s;
             SELECT count(*) FROM (SELECT neon_budget.track_cost('DESIGN', 10, cost => 1.5) FROM generate_series(1, 200)) s;
             SELECT neon_budget.track_cost('DESIGN', 10, cost => 2.5);",
        )
        .unwrap();
    assert!(alerts_received(&mut l, Duration::from_millis(300)).is_empty());
    // $31 is 29.86 × the mean of the 301 before it ($312.50 / 301): one.
    track_cost(&mut db.client, "'DESIGN', 10, cost => 31");
    let sent = alerts_received(&mut l, Duration::from_millis(500));
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (sent[0]["details"]["executions_in_baseline"].as_i64(), sent[0]["details"]["ratio"].to_string()),
        (Some(301), "29.86".into())
    );
}

/// An anomaly another transaction was claiming when it was found is not lost when that one
/// rolls back: the finder sends it at its next call, once its own execution has committed;
/// and one whose execution rolled back is never sent.
#[test]
fn a_claim_that_rolls_back_does_not_lose_an_anomaly() {
    let mut db = TestDb::new("anomaly_deferred");
    db.client
        .batch_execute("SELECT count(*) FROM (SELECT neon_budget.track_cost('DESIGN', 10, cost => 0.1) FROM generate_series(1, 100)) s")
        .unwrap();
    let mut a = db.connect();
    let mut b = db.connect();
    a.batch_execute("BEGIN; SELECT neon_budget.track_cost('DESIGN', 10, cost => 5, execution_id => 'A')").unwrap();
    b.batch_execute("SELECT neon_budget.track_cost('DESIGN', 10, cost => 5, execution_id => 'B')").unwrap();
    a.batch_execute("ROLLBACK").unwrap();
    assert_eq!(anomaly_count(&mut db.client), 0);
    // B's next call (any write or check) sends it.
    b.batch_execute("SELECT * FROM neon_budget.budget_check()").unwrap();
    assert_eq!(
        text(&mut db.client, "SELECT details->>'execution_id' FROM neon_budget.alert_log WHERE level = 'anomaly'").as_deref(),
        Some("B")
    );
    // Deferred in a transaction that then rolls back: never sent.
    let day = "created_at => now() + interval '1 day'";
    db.client.batch_execute("SET neon_budget.max_clock_skew = -1").unwrap();
    a.batch_execute("SET neon_budget.max_clock_skew = -1").unwrap();
    b.batch_execute("SET neon_budget.max_clock_skew = -1").unwrap();
    a.batch_execute(&format!("BEGIN; SELECT neon_budget.track_cost('DESIGN', 10, cost => 6, execution_id => 'A2', {day})")).unwrap();
    b.batch_execute(&format!("BEGIN; SELECT neon_budget.track_cost('DESIGN', 10, cost => 6, execution_id => 'B2', {day}); ROLLBACK"))
        .unwrap();
    a.batch_execute("ROLLBACK").unwrap();
    b.batch_execute("SELECT * FROM neon_budget.budget_check()").unwrap();
    assert_eq!(anomaly_count(&mut db.client), 1);
}

/// With prepared transactions allowed, an anomaly found in a transaction block is sent by a
/// later call outside one (PREPARE TRANSACTION refuses a transaction that sent a NOTIFY), and
/// the daily scan waits for such a call too.
#[test]
fn prepared_transactions_are_never_refused_for_an_anomaly() {
    let cluster = Cluster::create("/tmp/nb_anomaly_2pc", 5478);
    let mut admin = cluster.connect("postgres");
    admin.batch_execute("ALTER SYSTEM SET max_prepared_transactions = 4").unwrap();
    drop(admin);
    cluster.stop();
    cluster.start();
    let mut c = cluster.connect("postgres");
    c.batch_execute("CREATE EXTENSION neon_budget").unwrap();
    // Yesterday is a day anomaly (not scanned yet), and DESIGN has a mean of $0.10.
    c.batch_execute(
        "SET neon_budget.anomaly_detection = off;
         INSERT INTO neon_budget.billing_log (agent_type, campaign_id, tokens, cost, created_at)
         SELECT 'CONTENT', 'c-2pc', 0, CASE WHEN k = 1 THEN 200 ELSE 20 END, now() - k * interval '1 day' FROM generate_series(1, 15) k;
         INSERT INTO neon_budget.billing_log (agent_type, tokens, cost) SELECT 'DESIGN', 10, 0.1 FROM generate_series(1, 100);",
    )
    .unwrap();
    let mut s = cluster.connect("postgres");
    s.batch_execute("BEGIN; SELECT neon_budget.track_cost('DESIGN', 10, cost => 5); PREPARE TRANSACTION 'p1'").unwrap();
    assert_eq!(anomaly_count(&mut c), 0);
    assert_eq!(int(&mut c, "SELECT count(*) FROM neon_budget._anomaly_scan"), 0);
    c.batch_execute("COMMIT PREPARED 'p1'").unwrap();
    // The next call of that session outside a transaction block scans and sends.
    s.batch_execute("SELECT * FROM neon_budget.budget_check()").unwrap();
    assert_eq!(
        column(&mut c, "SELECT scope || ' ' || (details->>'scope_key') FROM neon_budget.alert_log WHERE level = 'anomaly' ORDER BY scope"),
        vec!["agent_type CONTENT", "campaign c-2pc", "execution DESIGN"]
    );
    drop((c, s));
    cluster.stop();
}
