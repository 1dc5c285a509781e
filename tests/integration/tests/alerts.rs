//! Budget alerts: alert_log rows and NOTIFY neon_budget_alerts payloads.
use neon_budget_integration::*;
use postgres::Client;
use std::time::Duration;

const WAIT: Duration = Duration::from_millis(400);

/// The (scope, level) of each payload received, in order.
fn levels(payloads: &[String]) -> Vec<String> {
    payloads
        .iter()
        .map(|p| {
            let v: serde_json::Value = serde_json::from_str(p).unwrap();
            format!("{}:{}", v["scope"].as_str().unwrap(), v["level"].as_str().unwrap())
        })
        .collect()
}

/// Checks one payload with PostgreSQL's exact numerics: its fields equal the alert_log row it
/// names and the given values, and it has no other fields.
#[allow(clippy::too_many_arguments)]
fn assert_payload(
    c: &mut Client,
    payload: &str,
    scope: &str,
    campaign: Option<&str>,
    month: &str,
    level: &str,
    spent: &str,
    budget: &str,
    utilization: &str,
) {
    let sql = "SELECT (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(p) k)
                  = ARRAY['alert_id', 'budget', 'campaign_id', 'level', 'month', 'scope', 'spent', 'utilization']
                AND p->>'scope' = $2 AND (p->>'campaign_id') IS NOT DISTINCT FROM $3 AND p->>'month' = $4
                AND p->>'level' = $5
                AND (p->>'spent')::numeric = $6::text::numeric AND (p->>'budget')::numeric = $7::text::numeric
                AND (p->>'utilization')::numeric = $8::text::numeric
                AND jsonb_typeof(p->'spent') = 'number' AND jsonb_typeof(p->'alert_id') = 'number'
                AND EXISTS (SELECT 1 FROM neon_budget.alert_log a
                             WHERE a.id = (p->>'alert_id')::bigint AND a.scope = $2 AND a.campaign_id IS NOT DISTINCT FROM $3
                               AND a.month = $4 AND a.level = $5 AND a.spent = $6::text::numeric AND a.budget = $7::text::numeric
                               AND a.utilization = $8::text::numeric)
           FROM (SELECT $1::text::jsonb AS p) x";
    let ok: bool = c.query_one(sql, &[&payload, &scope, &campaign, &month, &level, &spent, &budget, &utilization]).unwrap().get(0);
    assert!(ok, "payload {payload} is not {scope} {campaign:?} {month} {level} spent {spent} budget {budget} utilization {utilization}");
}

#[test]
fn month_levels_fire_once_each() {
    let mut db = TestDb::new("alerts_month_levels");
    let mut l = listener(&db);
    let c = &mut db.client;
    c.batch_execute("SELECT neon_budget.set_monthly_budget('2024-09', 100)").unwrap();
    assert_eq!(raw_alerts_received(&mut l, WAIT).len(), 0);
    let at = "created_at => '2024-09-10 00:00+00'";

    track_cost(c, &format!("'CONTENT', 1000, task => 'secret task', metadata => '{{\"secret\": 1}}', cost => 79.99, {at}"));
    assert_eq!(raw_alerts_received(&mut l, WAIT), Vec::<String>::new());
    // 80.00: warning.
    track_cost(c, &format!("'CONTENT', 1000, task => 'secret task', metadata => '{{\"secret\": 1}}', cost => 0.01, {at}"));
    let got = raw_alerts_received(&mut l, WAIT);
    assert_eq!(levels(&got), vec!["month:warning"]);
    assert_payload(c, &got[0], "month", None, "2024-09", "warning", "80.00", "100", "80.00");
    assert!(!got[0].contains("secret"), "payload carries task or metadata: {}", got[0]);
    // Up to 94.99: nothing more.
    track_cost(c, &format!("'CONTENT', 1000, cost => 14.99, {at}"));
    assert_eq!(raw_alerts_received(&mut l, WAIT), Vec::<String>::new());
    // 95.00: critical.
    track_cost(c, &format!("'CONTENT', 1000, cost => 0.01, {at}"));
    let got = raw_alerts_received(&mut l, WAIT);
    assert_eq!(levels(&got), vec!["month:critical"]);
    assert_payload(c, &got[0], "month", None, "2024-09", "critical", "95", "100", "95");
    // 100.00: exceeded.
    track_cost(c, &format!("'CONTENT', 1000, cost => 5, {at}"));
    let got = raw_alerts_received(&mut l, WAIT);
    assert_eq!(levels(&got), vec!["month:exceeded"]);
    assert_payload(c, &got[0], "month", None, "2024-09", "exceeded", "100", "100", "100");
    // Past the budget: nothing more.
    track_cost(c, &format!("'CONTENT', 1000, cost => 10, {at}"));
    track_cost(c, &format!("'CONTENT', 1000, cost => 10, {at}"));
    assert_eq!(raw_alerts_received(&mut l, WAIT), Vec::<String>::new());
    assert_eq!(text(c, "SELECT string_agg(level, ',' ORDER BY id) FROM neon_budget.alert_log").unwrap(), "warning,critical,exceeded");
    assert_sql(c, "SELECT alert_levels_sent = '{warning,critical,exceeded}' FROM neon_budget.monthly_budget WHERE month = '2024-09'");
    assert_oracle(c);
}

#[test]
fn campaign_levels_fire_once_each() {
    let mut db = TestDb::new("alerts_campaign_levels");
    let mut l = listener(&db);
    let c = &mut db.client;
    c.batch_execute(
        "SELECT neon_budget.set_monthly_budget('2024-09', 1000);
         SELECT neon_budget.set_campaign('cmp', 'Campaign', 'SEO', 10);",
    )
    .unwrap();
    let at = "created_at => '2024-09-10 00:00+00'";
    track_cost(c, &format!("'SEO', 1, campaign_id => 'cmp', cost => 7.99, {at}"));
    track_cost(c, &format!("'SEO', 1, campaign_id => 'other', cost => 50, {at}"));
    assert_eq!(raw_alerts_received(&mut l, WAIT), Vec::<String>::new());
    track_cost(c, &format!("'SEO', 1, campaign_id => 'cmp', cost => 0.01, {at}"));
    let got = raw_alerts_received(&mut l, WAIT);
    assert_eq!(levels(&got), vec!["campaign:warning"]);
    assert_payload(c, &got[0], "campaign", Some("cmp"), "2024-09", "warning", "8.00", "10", "80");
    track_cost(c, &format!("'SEO', 1, campaign_id => 'cmp', cost => 1.2, {at}"));
    assert_eq!(raw_alerts_received(&mut l, WAIT), Vec::<String>::new());
    track_cost(c, &format!("'SEO', 1, campaign_id => 'cmp', cost => 0.3, {at}"));
    let got = raw_alerts_received(&mut l, WAIT);
    assert_eq!(levels(&got), vec!["campaign:critical"]);
    assert_payload(c, &got[0], "campaign", Some("cmp"), "2024-09", "critical", "9.5", "10", "95");
    track_cost(c, &format!("'SEO', 1, campaign_id => 'cmp', cost => 0.6, {at}"));
    let got = raw_alerts_received(&mut l, WAIT);
    assert_eq!(levels(&got), vec!["campaign:exceeded"]);
    assert_payload(c, &got[0], "campaign", Some("cmp"), "2024-09", "exceeded", "10.1", "10", "101");
    track_cost(c, &format!("'SEO', 1, campaign_id => 'cmp', cost => 3, {at}"));
    assert_eq!(raw_alerts_received(&mut l, WAIT), Vec::<String>::new());
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.alert_log"), 3);
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.alert_log WHERE scope = 'campaign' AND campaign_id = 'cmp'"), 3);
    assert_oracle(c);
}

#[test]
fn one_execution_past_every_level_sends_all_three_in_order() {
    let mut db = TestDb::new("alerts_jump");
    let mut l = listener(&db);
    let c = &mut db.client;
    c.batch_execute(
        "SELECT neon_budget.set_monthly_budget('2024-09', 100);
         SELECT neon_budget.set_campaign('cmp', 'Campaign', NULL, 1000);",
    )
    .unwrap();
    track_cost(c, "'CONTENT', 1000, campaign_id => 'cmp', cost => 150, created_at => '2024-09-10 00:00+00'");
    let got = raw_alerts_received(&mut l, WAIT);
    assert_eq!(levels(&got), vec!["month:warning", "month:critical", "month:exceeded"]);
    for (p, level) in got.iter().zip(["warning", "critical", "exceeded"]) {
        assert_payload(c, p, "month", None, "2024-09", level, "150", "100", "150");
    }
    assert_eq!(text(c, "SELECT string_agg(level, ',' ORDER BY id) FROM neon_budget.alert_log").unwrap(), "warning,critical,exceeded");
    // The ids in the payloads are the alert_log rows in order.
    let ids: Vec<i64> = got.iter().map(|p| serde_json::from_str::<serde_json::Value>(p).unwrap()["alert_id"].as_i64().unwrap()).collect();
    let log_ids: Vec<i64> = c.query("SELECT id FROM neon_budget.alert_log ORDER BY id", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, log_ids);
    // The campaign (150 of 1000) did not alert.
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.alert_log WHERE scope = 'campaign'"), 0);
    assert_oracle(c);
}

/// SCENARIOS.md 5: spend reaches 81%; twenty more small executions follow; exactly one warning.
#[test]
fn no_alert_storm() {
    let mut db = TestDb::new("alerts_storm");
    let mut l = listener(&db);
    let c = &mut db.client;
    c.batch_execute("SELECT neon_budget.set_monthly_budget('2024-09', 100)").unwrap();
    track_cost(c, "'CONTENT', 1000, cost => 81, created_at => '2024-09-10 00:00+00'");
    for i in 0..20 {
        track_cost(c, &format!("'CONTENT', 10, cost => 0.05, execution_id => 'small-{i}', created_at => '2024-09-11 00:00+00'"));
    }
    // The same twenty as one multi-row INSERT.
    c.batch_execute(
        "INSERT INTO neon_budget.billing_log (agent_type, tokens, cost, created_at)
         SELECT 'SEO', 10, 0.05, '2024-09-12 00:00+00' FROM generate_series(1, 20)",
    )
    .unwrap();
    let got = raw_alerts_received(&mut l, WAIT);
    assert_eq!(levels(&got), vec!["month:warning"]);
    assert_payload(c, &got[0], "month", None, "2024-09", "warning", "81", "100", "81");
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.alert_log WHERE month = '2024-09' AND level = 'warning'"), 1);
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.alert_log"), 1);
    assert_sql(c, "SELECT total_spent = 83 AND executions = 41 FROM neon_budget.monthly_budget WHERE month = '2024-09'");
    assert_oracle(c);
}

#[test]
fn rolled_back_write_sends_nothing() {
    let mut db = TestDb::new("alerts_rollback");
    let mut l = listener(&db);
    let c = &mut db.client;
    c.batch_execute(
        "SELECT neon_budget.set_monthly_budget('2024-09', 100);
         SELECT neon_budget.set_campaign('cmp', 'Campaign', NULL, 10);",
    )
    .unwrap();
    c.batch_execute("BEGIN").unwrap();
    track_cost(c, "'CONTENT', 1000, campaign_id => 'cmp', cost => 150, created_at => '2024-09-10 00:00+00'");
    c.batch_execute("ROLLBACK").unwrap();
    c.batch_execute("BEGIN; SAVEPOINT a").unwrap();
    track_cost(c, "'CONTENT', 1000, campaign_id => 'cmp', cost => 150, created_at => '2024-09-10 00:00+00'");
    c.batch_execute("ROLLBACK TO SAVEPOINT a; COMMIT").unwrap();
    assert_eq!(raw_alerts_received(&mut l, WAIT), Vec::<String>::new());
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.alert_log"), 0);
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.billing_log"), 0);
    assert_oracle(c);
}

#[test]
fn raising_the_budget_rearms_levels() {
    let mut db = TestDb::new("alerts_rearm");
    let mut l = listener(&db);
    let c = &mut db.client;
    let at = "created_at => '2024-09-10 00:00+00'";
    c.batch_execute("SELECT neon_budget.set_monthly_budget('2024-09', 100)").unwrap();
    track_cost(c, &format!("'CONTENT', 1000, cost => 150, {at}"));
    assert_eq!(levels(&raw_alerts_received(&mut l, WAIT)), vec!["month:warning", "month:critical", "month:exceeded"]);
    // 150 of 1000: every level is re-armed, nothing is sent.
    c.batch_execute("SELECT neon_budget.set_monthly_budget('2024-09', 1000)").unwrap();
    assert_eq!(raw_alerts_received(&mut l, WAIT), Vec::<String>::new());
    assert_sql(c, "SELECT alert_levels_sent = '{}' FROM neon_budget.monthly_budget WHERE month = '2024-09'");
    track_cost(c, &format!("'CONTENT', 1000, cost => 649.99, {at}"));
    assert_eq!(raw_alerts_received(&mut l, WAIT), Vec::<String>::new());
    // Each level fires again when crossed again.
    track_cost(c, &format!("'CONTENT', 1000, cost => 0.01, {at}"));
    let got = raw_alerts_received(&mut l, WAIT);
    assert_eq!(levels(&got), vec!["month:warning"]);
    assert_payload(c, &got[0], "month", None, "2024-09", "warning", "800", "1000", "80");
    track_cost(c, &format!("'CONTENT', 1000, cost => 150, {at}"));
    assert_eq!(levels(&raw_alerts_received(&mut l, WAIT)), vec!["month:critical"]);
    track_cost(c, &format!("'CONTENT', 1000, cost => 50, {at}"));
    let got = raw_alerts_received(&mut l, WAIT);
    assert_eq!(levels(&got), vec!["month:exceeded"]);
    assert_payload(c, &got[0], "month", None, "2024-09", "exceeded", "1000", "1000", "100");
    // Raising it to 1100 (90.9%) re-arms critical and exceeded and keeps the warning sent.
    c.batch_execute("SELECT neon_budget.set_monthly_budget('2024-09', 1100)").unwrap();
    assert_eq!(raw_alerts_received(&mut l, WAIT), Vec::<String>::new());
    assert_sql(c, "SELECT alert_levels_sent = '{warning}' FROM neon_budget.monthly_budget WHERE month = '2024-09'");
    track_cost(c, &format!("'CONTENT', 1000, cost => 45, {at}"));
    let got = raw_alerts_received(&mut l, WAIT);
    assert_eq!(levels(&got), vec!["month:critical"]);
    assert_payload(c, &got[0], "month", None, "2024-09", "critical", "1045", "1100", "95");
    assert_eq!(
        text(c, "SELECT string_agg(level, ',' ORDER BY id) FROM neon_budget.alert_log").unwrap(),
        "warning,critical,exceeded,warning,critical,exceeded,critical"
    );

    // The same for a campaign, in another month (default budget 1000: no month alerts).
    let at = "created_at => '2024-10-10 00:00+00'";
    c.batch_execute("SELECT neon_budget.set_campaign('cmp', 'Campaign', NULL, 10)").unwrap();
    track_cost(c, &format!("'SEO', 1, campaign_id => 'cmp', cost => 9, {at}"));
    assert_eq!(levels(&raw_alerts_received(&mut l, WAIT)), vec!["campaign:warning"]);
    c.batch_execute("SELECT neon_budget.set_campaign('cmp', 'Campaign', NULL, 20)").unwrap();
    assert_eq!(raw_alerts_received(&mut l, WAIT), Vec::<String>::new());
    track_cost(c, &format!("'SEO', 1, campaign_id => 'cmp', cost => 7, {at}"));
    let got = raw_alerts_received(&mut l, WAIT);
    assert_eq!(levels(&got), vec!["campaign:warning"]);
    assert_payload(c, &got[0], "campaign", Some("cmp"), "2024-10", "warning", "16", "20", "80");
    // Removing the campaign's limit (explicitly: set_campaign without a budget keeps it)
    // re-arms everything and sends nothing.
    c.batch_execute("SELECT neon_budget.set_campaign('cmp', 'Campaign', NULL, NULL)").unwrap();
    assert_sql(c, "SELECT monthly_budget = 20 FROM neon_budget.campaign WHERE campaign_id = 'cmp'");
    c.batch_execute("SELECT neon_budget.clear_campaign_budget('cmp')").unwrap();
    track_cost(c, &format!("'SEO', 1, campaign_id => 'cmp', cost => 100, {at}"));
    assert_eq!(raw_alerts_received(&mut l, WAIT), Vec::<String>::new());
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.alert_log WHERE scope = 'campaign'"), 2);
    assert_oracle(c);
}

/// set_monthly_budget / set_campaign: "lowering it sends the levels it now reaches" at once.
#[test]
fn lowering_the_budget_alerts_at_once() {
    let mut db = TestDb::new("alerts_lower");
    let mut l = listener(&db);
    let c = &mut db.client;
    let at = "created_at => '2024-09-10 00:00+00'";
    // A month that has never alerted: 90 of 1000, lowered to 100.
    c.batch_execute("SELECT neon_budget.set_monthly_budget('2024-08', 1000)").unwrap();
    track_cost(c, "'CONTENT', 1000, cost => 90, created_at => '2024-08-10 00:00+00'");
    c.batch_execute("SELECT neon_budget.set_monthly_budget('2024-08', 100)").unwrap();
    let got = raw_alerts_received(&mut l, WAIT);
    assert_eq!(levels(&got), vec!["month:warning"]);
    assert_payload(c, &got[0], "month", None, "2024-08", "warning", "90", "100", "90");

    // A month that already sent its warning: 160 of 200, lowered to 150.
    c.batch_execute("SELECT neon_budget.set_monthly_budget('2024-09', 200)").unwrap();
    track_cost(c, &format!("'CONTENT', 1000, cost => 160, {at}"));
    assert_eq!(levels(&raw_alerts_received(&mut l, WAIT)), vec!["month:warning"]);
    let r = c.batch_execute("SELECT neon_budget.set_monthly_budget('2024-09', 150)");
    assert!(
        r.is_ok(),
        "lowering the month's budget failed: {:?}",
        r.err().map(|e| e.as_db_error().map(|d| format!("{} {}", d.code().code(), d.message())))
    );
    let got = raw_alerts_received(&mut l, WAIT);
    assert_eq!(levels(&got), vec!["month:critical", "month:exceeded"]);
    assert_payload(c, &got[1], "month", None, "2024-09", "exceeded", "160", "150", "106.67");
    assert_oracle(c);
}

#[test]
fn lowering_a_campaign_budget_alerts_at_once() {
    let mut db = TestDb::new("alerts_lower_campaign");
    let mut l = listener(&db);
    let c = &mut db.client;
    c.batch_execute("SELECT neon_budget.set_campaign('cmp', 'Campaign', NULL, 20)").unwrap();
    track_cost(c, "'SEO', 1, campaign_id => 'cmp', cost => 16, created_at => '2024-09-10 00:00+00'");
    assert_eq!(levels(&raw_alerts_received(&mut l, WAIT)), vec!["campaign:warning"]);
    let r = c.batch_execute("SELECT neon_budget.set_campaign('cmp', 'Campaign', NULL, 10)");
    assert!(
        r.is_ok(),
        "lowering the campaign's budget failed: {:?}",
        r.err().map(|e| e.as_db_error().map(|d| format!("{} {}", d.code().code(), d.message())))
    );
    let got = raw_alerts_received(&mut l, WAIT);
    assert_eq!(levels(&got), vec!["campaign:critical", "campaign:exceeded"]);
    assert_payload(c, &got[1], "campaign", Some("cmp"), "2024-09", "exceeded", "16", "10", "160");
    assert_oracle(c);
}

/// SCENARIOS.md 7: a campaign without a budget never blocks and never alerts.
#[test]
fn campaign_without_budget_never_alerts() {
    let mut db = TestDb::new("alerts_null_budget");
    let mut l = listener(&db);
    let c = &mut db.client;
    let cur = text(c, "SELECT neon_budget._current_month()").unwrap();
    c.batch_execute(&format!(
        "SELECT neon_budget.set_monthly_budget('{cur}', 1000000);
         SELECT neon_budget.set_campaign('free', 'Free Campaign', 'SEO', NULL);"
    ))
    .unwrap();
    for _ in 0..3 {
        track_cost(c, "'SEO', 1000, campaign_id => 'free', cost => 5000");
    }
    track_cost(c, "'SEO', 1000, campaign_id => 'unregistered', cost => 2500");
    assert_eq!(raw_alerts_received(&mut l, WAIT), Vec::<String>::new());
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.alert_log"), 0);
    assert_sql(
        c,
        "SELECT can_execute AND status = 'ok' AND campaign_budget IS NULL AND campaign_spent = 15000
           FROM neon_budget.budget_check('free', 'SEO', 100000000)",
    );
    assert_sql(c, "SELECT can_execute AND campaign_spent = 2500 FROM neon_budget.budget_check('unregistered', 'SEO', 1000)");
    let report = text(c, "SELECT neon_budget.budget_report()").unwrap();
    assert!(report.contains("### Free Campaign (SEO)\n\n- Cost: $15,000.00\n- Budget: no limit\n"), "{report}");
    assert!(report.contains("### unregistered\n\n- Cost: $2,500.00\n- Budget: no limit\n"), "{report}");
    assert_sql(
        c,
        &format!(
            "SELECT total_cost = 15000 AND monthly_budget IS NULL AND utilization_percentage IS NULL
           FROM neon_budget.campaign_breakdown WHERE campaign_id = 'free' AND month = '{cur}'"
        ),
    );
    assert_oracle(c);
}

/// Campaign ids are at most 200 characters (issue #10: longer ones broke index rows mid-write),
/// so a payload always carries the whole id: 200 characters of quotes and umlauts, which JSON
/// escapes, arrive in full. A 10,000-character id is refused before anything is written.
#[test]
fn longest_campaign_id_notifies_in_full() {
    let mut db = TestDb::new("alerts_long_campaign");
    let mut l = listener(&db);
    let c = &mut db.client;
    let id = "ü\"".repeat(100);
    assert_eq!(id.chars().count(), 200);
    c.execute("SELECT neon_budget.set_campaign($1, 'Long', NULL, 1)", &[&id]).unwrap();
    c.execute("SELECT neon_budget.track_cost('CONTENT', 1, campaign_id => $1, cost => 1, created_at => '2024-09-10 00:00+00')", &[&id])
        .unwrap();
    let got = raw_alerts_received(&mut l, WAIT);
    assert_eq!(levels(&got), vec!["campaign:warning", "campaign:critical", "campaign:exceeded"]);
    for p in &got {
        let v: serde_json::Value = serde_json::from_str(p).unwrap();
        assert_eq!(v["campaign_id"].as_str(), Some(id.as_str()));
        assert_eq!(v.get("campaign_id_truncated"), None);
        assert_eq!(v["month"], "2024-09");
    }
    let too_long = "ü\"".repeat(5000);
    assert_eq!(sqlstate(c.execute("SELECT neon_budget.set_campaign($1, 'Long', NULL, 1)", &[&too_long])), "22001");
    assert_eq!(sqlstate(c.execute("SELECT neon_budget.track_cost('CONTENT', 1, campaign_id => $1, cost => 1)", &[&too_long])), "22001");
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.alert_log"), 3);
    assert_oracle(c);
}

/// Two transactions that together cross the warning level, each seeing only its own spend, must
/// still produce the warning (once) when the second commits; the month's spend is then at 80%.
#[test]
fn concurrent_writers_crossing_a_level_together_still_alert() {
    // Two transactions each add $0.50 to $79.00 of a $100.00 month: together they reach the 80%
    // warning, but neither sees the other's spend when it writes, so neither sends it. The next
    // budget_check (which every execution asks first) sends it, once; so does the next write.
    let mut db = TestDb::new("alerts_concurrent_cross");
    let mut l = listener(&db);
    let mut a = db.connect();
    let mut b = db.connect();
    let c = &mut db.client;
    c.batch_execute(
        "SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 100);
         SELECT neon_budget.track_cost('CONTENT', 1, cost => 79);
         SELECT neon_budget.set_monthly_budget('2024-09', 100);
         SELECT neon_budget.track_cost('CONTENT', 1, cost => 79, created_at => '2024-09-10 00:00+00');",
    )
    .unwrap();
    for month_arg in ["", ", created_at => '2024-09-10 00:00+00'"] {
        a.batch_execute(&format!("BEGIN; SELECT neon_budget.track_cost('CONTENT', 1, cost => 0.5{month_arg})")).unwrap();
        b.batch_execute(&format!("BEGIN; SELECT neon_budget.track_cost('CONTENT', 1, cost => 0.5{month_arg})")).unwrap();
        a.batch_execute("COMMIT").unwrap();
        b.batch_execute("COMMIT").unwrap();
    }
    assert!(raw_alerts_received(&mut l, WAIT).is_empty(), "no writer saw the level reached");
    // The current month: the next budget_check sends the warning, once.
    assert_sql(c, "SELECT status = 'warning' AND total_spent = 80 FROM neon_budget.budget_check()");
    assert_sql(c, "SELECT status = 'warning' FROM neon_budget.budget_check()");
    assert_eq!(levels(&raw_alerts_received(&mut l, WAIT)), vec!["month:warning"]);
    // A past month: the next write to it sends the warning, once.
    c.batch_execute("SELECT neon_budget.track_cost('CONTENT', 1, cost => 0, created_at => '2024-09-11 00:00+00')").unwrap();
    c.batch_execute("SELECT neon_budget.track_cost('CONTENT', 1, cost => 0.01, created_at => '2024-09-11 00:00+00')").unwrap();
    assert_eq!(levels(&raw_alerts_received(&mut l, WAIT)), vec!["month:warning"]);
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.alert_log WHERE level = 'warning'"), 2);
    assert_oracle(c);
}
