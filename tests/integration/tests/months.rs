//! Billing months: time zones, months fixed at write time, rollover, first use of a month and
//! concurrent first writers.
use neon_budget_integration::*;
use std::sync::{Arc, Barrier};

#[test]
fn new_york_month_boundaries() {
    let mut db = TestDb::new("months_new_york");
    let c = &mut db.client;
    c.batch_execute("SET neon_budget.timezone = 'America/New_York'").unwrap();
    // 03:00 UTC on Feb 1st is 22:00 on Jan 31st in New York; 05:00 UTC is midnight.
    assert_eq!(
        text(c, "SELECT billing_month FROM neon_budget.track_cost('CONTENT', 1000, cost => 1, created_at => '2024-02-01 03:00+00')")
            .unwrap(),
        "2024-01"
    );
    assert_eq!(
        text(c, "SELECT billing_month FROM neon_budget.track_cost('CONTENT', 1000, cost => 2, created_at => '2024-02-01 05:00+00')")
            .unwrap(),
        "2024-02"
    );
    // The same rule for a direct INSERT (billing_month set by the trigger).
    c.batch_execute(
        "INSERT INTO neon_budget.billing_log (agent_type, tokens, cost, created_at, task) VALUES
            ('SEO', 1, 4, '2024-02-01 04:59:59+00', 'jan'),
            ('SEO', 1, 8, '2024-01-01 04:59:59+00', 'dec'),
            ('SEO', 1, 16, '2024-01-01 05:00:00+00', 'jan2')",
    )
    .unwrap();
    let months: Vec<String> = c
        .query("SELECT task || '=' || billing_month FROM neon_budget.billing_log WHERE task IS NOT NULL ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(months, vec!["jan=2024-01", "dec=2023-12", "jan2=2024-01"]);
    assert_sql(c, "SELECT total_spent = 21 AND executions = 3 FROM neon_budget.monthly_budget WHERE month = '2024-01'");
    assert_sql(c, "SELECT total_spent = 2 AND executions = 1 FROM neon_budget.monthly_budget WHERE month = '2024-02'");
    assert_sql(c, "SELECT total_spent = 8 AND executions = 1 FROM neon_budget.monthly_budget WHERE month = '2023-12'");
    // The current month follows the zone too.
    assert_sql(c, "SELECT neon_budget._current_month() = to_char(now() AT TIME ZONE 'America/New_York', 'YYYY-MM')");
    assert_sql(c, "SELECT month = to_char(now() AT TIME ZONE 'America/New_York', 'YYYY-MM') FROM neon_budget.budget_check()");
    let report = text(c, "SELECT neon_budget.budget_report('2024-01')").unwrap();
    assert!(report.contains("- Total Spent: $21.00\n"), "{report}");
    assert!(report.contains("- Total Executions: 3\n"), "{report}");
    assert_oracle(c);
}

#[test]
fn tokyo_month_boundaries() {
    let mut db = TestDb::new("months_tokyo");
    let c = &mut db.client;
    c.batch_execute("SET neon_budget.timezone = 'Asia/Tokyo'").unwrap();
    // 15:00 UTC on Jan 31st is midnight of Feb 1st in Tokyo (UTC+9).
    assert_eq!(
        text(c, "SELECT billing_month FROM neon_budget.track_cost('CONTENT', 1000, cost => 1, created_at => '2024-01-31 14:59:59+00')")
            .unwrap(),
        "2024-01"
    );
    assert_eq!(
        text(c, "SELECT billing_month FROM neon_budget.track_cost('CONTENT', 1000, cost => 2, created_at => '2024-01-31 15:00+00')")
            .unwrap(),
        "2024-02"
    );
    c.batch_execute(
        "INSERT INTO neon_budget.billing_log (agent_type, tokens, cost, created_at) VALUES
            ('SEO', 1, 4, '2024-12-31 15:00+00'), ('SEO', 1, 8, '2024-12-31 14:00+00')",
    )
    .unwrap();
    assert_sql(c, "SELECT total_spent = 4 FROM neon_budget.monthly_budget WHERE month = '2025-01'");
    assert_sql(c, "SELECT total_spent = 8 FROM neon_budget.monthly_budget WHERE month = '2024-12'");
    assert_sql(c, "SELECT total_spent = 1 FROM neon_budget.monthly_budget WHERE month = '2024-01'");
    assert_sql(c, "SELECT total_spent = 2 FROM neon_budget.monthly_budget WHERE month = '2024-02'");
    assert_sql(c, "SELECT neon_budget._current_month() = to_char(now() AT TIME ZONE 'Asia/Tokyo', 'YYYY-MM')");
    assert_oracle(c);
}

#[test]
fn a_rows_month_stays_fixed_when_the_zone_changes() {
    let mut db = TestDb::new("months_fixed");
    let c = &mut db.client;
    c.batch_execute(
        "SET neon_budget.timezone = 'America/New_York';
         SELECT neon_budget.track_cost('CONTENT', 1000, campaign_id => 'a', execution_id => 'e1', created_at => '2024-02-01 03:00+00');",
    )
    .unwrap();
    let snap = aggregates_snapshot(c);
    c.batch_execute("SET neon_budget.timezone = 'Asia/Tokyo'").unwrap();
    assert_eq!(text(c, "SELECT billing_month FROM neon_budget.billing_log WHERE execution_id = 'e1'").unwrap(), "2024-01");
    assert_eq!(aggregates_snapshot(c), snap);
    // The retry of that execution returns it unchanged.
    assert_eq!(
        text(
            c,
            "SELECT billing_month FROM neon_budget.track_cost('CONTENT', 1000, execution_id => 'e1', created_at => '2024-02-01 03:00+00')"
        )
        .unwrap(),
        "2024-01"
    );
    // A later correction of its cost stays in its month.
    c.batch_execute("UPDATE neon_budget.billing_log SET cost = 0.5 WHERE execution_id = 'e1'").unwrap();
    assert_eq!(text(c, "SELECT billing_month FROM neon_budget.billing_log WHERE execution_id = 'e1'").unwrap(), "2024-01");
    assert_sql(c, "SELECT total_spent = 0.5 AND executions = 1 FROM neon_budget.monthly_budget WHERE month = '2024-01'");
    // The same instant written now counts in Tokyo's February.
    assert_eq!(
        text(c, "SELECT billing_month FROM neon_budget.track_cost('CONTENT', 1000, created_at => '2024-02-01 03:00+00')").unwrap(),
        "2024-02"
    );
    assert_sql(c, "SELECT total_spent = 0.5 AND executions = 1 FROM neon_budget.monthly_budget WHERE month = '2024-01'");
    assert_sql(c, "SELECT total_spent = 0.04 AND executions = 1 FROM neon_budget.monthly_budget WHERE month = '2024-02'");
    // Another session (default zone) reads the same months.
    let mut other = db.connect();
    assert_sql(&mut other, "SELECT string_agg(billing_month, ',' ORDER BY id) = '2024-01,2024-02' FROM neon_budget.billing_log");
    assert_oracle_after_zone_change(&mut other);
    assert_oracle_after_zone_change(&mut db.client);
}

#[test]
fn month_rollover_unblocks() {
    let mut db = TestDb::new("months_rollover");
    let c = &mut db.client;
    let tz = "America/New_York";
    c.batch_execute(&format!("SET neon_budget.timezone = '{tz}'")).unwrap();
    let cur = text(c, "SELECT neon_budget._current_month()").unwrap();
    let prev = text(c, &format!("SELECT to_char(date_trunc('month', now() AT TIME ZONE '{tz}') - interval '1 month', 'YYYY-MM')")).unwrap();
    // 23:59 on the last day of the previous month, New York time.
    let last_minute = format!("(date_trunc('month', now() AT TIME ZONE '{tz}') - interval '1 minute') AT TIME ZONE '{tz}'");
    let first_instant = format!("date_trunc('month', now() AT TIME ZONE '{tz}') AT TIME ZONE '{tz}'");
    c.batch_execute(&format!(
        "SELECT neon_budget.set_monthly_budget('{prev}', 10);
         SELECT neon_budget.set_monthly_budget('{cur}', 10);
         SELECT neon_budget.track_cost('CONTENT', 1000, cost => 10, created_at => {last_minute});"
    ))
    .unwrap();
    assert_sql(c, &format!("SELECT status = 'exceeded' AND total_spent = 10 FROM neon_budget.monthly_overview WHERE month = '{prev}'"));
    assert_sql(c, &format!("SELECT billing_month = '{prev}' FROM neon_budget.billing_log"));
    // The current month is untouched: allowed, no override.
    assert_sql(
        c,
        &format!(
            "SELECT can_execute AND status = 'ok' AND month = '{cur}' AND total_spent = 0 AND remaining = 10 AND NOT override_enabled
           FROM neon_budget.budget_check(NULL, 'CONTENT', 1000)"
        ),
    );
    // The first execution at 00:00 on the 1st counts in the new month.
    assert_eq!(
        text(c, &format!("SELECT billing_month FROM neon_budget.track_cost('CONTENT', 1000, created_at => {first_instant})")).unwrap(),
        cur
    );
    assert_sql(c, "SELECT can_execute AND status = 'ok' AND total_spent = 0.04 FROM neon_budget.budget_check(NULL, 'CONTENT', 1000)");
    assert_sql(c, &format!("SELECT total_spent = 10 FROM neon_budget.monthly_budget WHERE month = '{prev}'"));
    assert_oracle(c);
}

#[test]
fn a_new_month_gets_its_settings_on_first_use() {
    let mut db = TestDb::new("months_first_use");
    db.allow_future_created_at();
    let c = &mut db.client;
    let cur = text(c, "SELECT neon_budget._current_month()").unwrap();
    c.batch_execute("SET neon_budget.max_monthly_budget = '250.50'").unwrap();
    // budget_check shows the budget a month would get, without creating it.
    assert_sql(c, "SELECT total_budget = 250.50 AND remaining = 250.50 FROM neon_budget.budget_check()");
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.monthly_budget_setting"), 0);

    c.batch_execute("SELECT neon_budget.track_cost('CONTENT', 1000, created_at => '2031-07-04 12:00+00')").unwrap();
    assert_sql(
        c,
        "SELECT total_budget = 250.50 AND alert_threshold = 0.8 AND NOT override_enabled AND override_reason IS NULL
           FROM neon_budget.monthly_budget_setting WHERE month = '2031-07'",
    );
    c.batch_execute("SELECT neon_budget.track_cost('CONTENT', 1000)").unwrap();
    assert_sql(c, &format!("SELECT total_budget = 250.50 FROM neon_budget.monthly_budget_setting WHERE month = '{cur}'"));
    assert_sql(c, "SELECT total_budget = 250.50 AND total_spent = 0.04 AND remaining = 250.46 FROM neon_budget.budget_check()");

    // Other GUC values apply to months first used after the change only.
    c.batch_execute(
        "SET neon_budget.max_monthly_budget = '75';
         SET neon_budget.default_alert_threshold = '0.9';
         SELECT neon_budget.track_cost('CONTENT', 1000, created_at => '2031-08-04 12:00+00');
         SELECT neon_budget.set_monthly_budget('2031-09', 500);",
    )
    .unwrap();
    assert_sql(c, "SELECT total_budget = 75 AND alert_threshold = 0.9 FROM neon_budget.monthly_budget_setting WHERE month = '2031-08'");
    assert_sql(c, "SELECT total_budget = 500 AND alert_threshold = 0.9 FROM neon_budget.monthly_budget_setting WHERE month = '2031-09'");
    assert_sql(c, "SELECT total_budget = 250.50 AND alert_threshold = 0.8 FROM neon_budget.monthly_budget_setting WHERE month = '2031-07'");
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.monthly_budget_setting"), 4);

    // A new month's first execution can alert at once, against the budget it was given.
    c.batch_execute(
        "SET neon_budget.max_monthly_budget = '250.50';
         RESET neon_budget.default_alert_threshold;
         SELECT neon_budget.track_cost('CONTENT', 1, cost => 200.40, created_at => '2031-10-01 00:00+00');",
    )
    .unwrap();
    assert_sql(
        c,
        "SELECT count(*) = 1 AND min(level) = 'warning' AND min(spent) = 200.40 AND min(budget) = 250.50 AND min(utilization) = 80
           FROM neon_budget.alert_log WHERE month = '2031-10'",
    );
    assert_oracle(c);
}

#[test]
fn concurrent_first_writers_of_a_new_month() {
    let mut db = TestDb::new("months_concurrent_first");
    db.allow_future_created_at();
    let threads = 8;
    let per_thread = 25;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let mut conn = db.connect();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                conn.batch_execute("SET neon_budget.max_monthly_budget = '300'").unwrap();
                barrier.wait();
                for _ in 0..per_thread {
                    // 250 CONTENT tokens = $0.01.
                    conn.execute(
                        "SELECT neon_budget.track_cost('CONTENT', 250, campaign_id => $1, created_at => '2032-03-15 12:00+00')",
                        &[&format!("c{}", i % 2)],
                    )
                    .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut db = db;
    let c = &mut db.client;
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.monthly_budget_setting"), 1);
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.monthly_budget WHERE month = '2032-03'"), 1);
    assert_sql(
        c,
        "SELECT total_budget = 300 AND total_spent = 2.00 AND total_tokens = 50000 AND executions = 200
           FROM neon_budget.monthly_budget WHERE month = '2032-03'",
    );
    assert_sql(c, "SELECT total_cost = 1 AND executions = 100 FROM neon_budget.campaign_cost WHERE campaign_id = 'c0'");
    assert_sql(c, "SELECT total_cost = 1 AND executions = 100 FROM neon_budget.campaign_cost WHERE campaign_id = 'c1'");
    assert_sql(c, "SELECT total_cost = 2 AND executions = 200 FROM neon_budget.agent_cost WHERE agent_type = 'CONTENT'");
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.billing_log"), 200);
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.alert_log"), 0);
    assert_oracle(c);
}
