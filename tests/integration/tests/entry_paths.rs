//! Writes to billing_log that bypass track_cost (SCENARIOS.md 8), corrections by UPDATE,
//! DELETE and TRUNCATE, and rolled back writes (SCENARIOS.md 2).
use neon_budget_integration::*;
use postgres::Client;
use std::io::Write;
use std::time::Duration;

const WAIT: Duration = Duration::from_millis(400);

/// The aggregates of one month as text lines without the month, to compare months.
fn month_aggregates(c: &mut Client, month: &str) -> Vec<String> {
    c.query(
        "SELECT 'month ' || concat_ws('|', trim_scale(total_spent), total_tokens, executions, alert_levels_sent)
           FROM neon_budget.monthly_budget WHERE month = $1
         UNION ALL
         SELECT 'campaign ' || concat_ws('|', campaign_id, trim_scale(total_cost), total_tokens, executions)
           FROM neon_budget.campaign_cost WHERE month = $1
         UNION ALL
         SELECT 'agent ' || concat_ws('|', agent_type, trim_scale(total_cost), total_tokens, executions, successes, failures,
                trim_scale(quality_sum), quality_count, retry_sum, execution_time_ms_sum, execution_time_count)
           FROM neon_budget.agent_cost WHERE month = $1
         UNION ALL
         SELECT 'alert ' || concat_ws('|', scope, campaign_id, level, trim_scale(spent), trim_scale(budget), utilization)
           FROM neon_budget.alert_log WHERE month = $1
         ORDER BY 1",
        &[&month],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[test]
fn multi_row_insert_and_copy_match_track_cost() {
    let mut db = TestDb::new("entry_insert_copy");
    let mut l = listener(&db);
    let c = &mut db.client;
    c.batch_execute("SELECT neon_budget.set_monthly_budget(m, 0.18) FROM unnest(ARRAY['2024-06', '2024-07', '2024-08']) m;").unwrap();

    // Reference: four executions through track_cost.
    c.batch_execute(
        "SELECT neon_budget.track_cost('CONTENT', 1000, campaign_id => 'a', conversion_achieved => true, quality_score => 0.8,
                retry_count => 0, execution_time_ms => 100, created_at => '2024-06-03 10:00+00');
         SELECT neon_budget.track_cost('CONTENT', 2500, campaign_id => 'b', conversion_achieved => false, retry_count => 3,
                created_at => '2024-06-04 10:00+00');
         SELECT neon_budget.track_cost('SEO', 418, quality_score => 0.25, execution_time_ms => 50, created_at => '2024-06-05 10:00+00');
         SELECT neon_budget.track_cost('SEO', 0, campaign_id => 'a', created_at => '2024-06-30 23:59:59+00');",
    )
    .unwrap();
    assert_oracle(c);

    // The same executions with one multi-row INSERT, billing_month left to the trigger.
    c.batch_execute(
        "INSERT INTO neon_budget.billing_log
                (agent_type, campaign_id, tokens, cost, conversion_achieved, quality_score, retry_count, execution_time_ms, created_at)
         VALUES ('CONTENT', 'a', 1000, 0.04, true, 0.8, 0, 100, '2024-07-03 10:00+00'),
                ('CONTENT', 'b', 2500, 0.1, false, NULL, 3, NULL, '2024-07-04 10:00+00'),
                ('SEO', NULL, 418, 0.01254, NULL, 0.25, NULL, 50, '2024-07-05 10:00+00'),
                ('SEO', 'a', 0, 0, NULL, NULL, NULL, NULL, '2024-07-31 23:59:59+00')",
    )
    .unwrap();
    assert_eq!(
        text(c, "SELECT string_agg(DISTINCT billing_month, ',') FROM neon_budget.billing_log WHERE created_at >= '2024-07-01 00:00+00' AND created_at < '2024-08-01 00:00+00'").unwrap(),
        "2024-07"
    );
    assert_oracle(c);

    // And with COPY.
    {
        let mut w = c
            .copy_in(
                "COPY neon_budget.billing_log
                    (agent_type, campaign_id, tokens, cost, conversion_achieved, quality_score, retry_count, execution_time_ms, created_at)
                 FROM STDIN WITH (FORMAT csv)",
            )
            .unwrap();
        w.write_all(
            b"CONTENT,a,1000,0.04,true,0.8,0,100,2024-08-03 10:00+00\n\
              CONTENT,b,2500,0.1,false,,3,,2024-08-04 10:00+00\n\
              SEO,,418,0.01254,,0.25,,50,2024-08-05 10:00+00\n\
              SEO,a,0,0,,,,,2024-08-31 23:59:59+00\n",
        )
        .unwrap();
        assert_eq!(w.finish().unwrap(), 4);
    }
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.billing_log WHERE billing_month = '2024-08'"), 4);
    assert_oracle(c);

    let reference = month_aggregates(c, "2024-06");
    assert_eq!(
        reference,
        vec![
            "agent CONTENT|0.14|3500|2|1|1|0.8|1|3|100|1",
            "agent SEO|0.01254|418|2|0|0|0.25|1|0|50|1",
            // 0.15254 of 0.18 is 84.74%: the warning alert.
            "alert month|warning|0.15254|0.18|84.74",
            "campaign a|0.04|1000|2",
            "campaign b|0.1|2500|1",
            "month 0.15254|3918|4|{warning}",
        ]
    );
    assert_eq!(month_aggregates(c, "2024-07"), reference, "multi-row INSERT differs from track_cost");
    assert_eq!(month_aggregates(c, "2024-08"), reference, "COPY differs from track_cost");
    // One warning per month, sent on the channel too.
    let got = alerts_received(&mut l, WAIT);
    let mut months: Vec<(String, String)> =
        got.iter().map(|v| (v["month"].as_str().unwrap().to_string(), v["level"].as_str().unwrap().to_string())).collect();
    months.sort();
    assert_eq!(
        months,
        vec![
            ("2024-06".to_string(), "warning".to_string()),
            ("2024-07".to_string(), "warning".to_string()),
            ("2024-08".to_string(), "warning".to_string())
        ]
    );
    assert_oracle(c);
}

#[test]
fn update_of_cost_changes_aggregates_by_the_difference() {
    let mut db = TestDb::new("entry_update_cost");
    let c = &mut db.client;
    c.batch_execute(
        "SELECT neon_budget.track_cost('CONTENT', 1000, campaign_id => 'a', execution_id => 'fix-me', created_at => '2024-02-10 00:00+00');
         SELECT neon_budget.track_cost('CONTENT', 2000, campaign_id => 'a', created_at => '2024-02-11 00:00+00');
         SELECT neon_budget.track_cost('SEO', 3000, campaign_id => 'b', created_at => '2024-02-12 00:00+00');",
    )
    .unwrap();
    // 0.04 + 0.08 + 0.09.
    assert_sql(c, "SELECT total_spent = 0.21 FROM neon_budget.monthly_budget WHERE month = '2024-02'");
    c.batch_execute("UPDATE neon_budget.billing_log SET cost = 0.2875 WHERE execution_id = 'fix-me'").unwrap();
    assert_sql(
        c,
        "SELECT total_spent = 0.4575 AND executions = 3 AND total_tokens = 6000 FROM neon_budget.monthly_budget WHERE month = '2024-02'",
    );
    assert_sql(
        c,
        "SELECT total_cost = 0.3675 AND executions = 2 AND total_tokens = 3000 FROM neon_budget.campaign_cost WHERE campaign_id = 'a'",
    );
    assert_sql(c, "SELECT total_cost = 0.09 FROM neon_budget.campaign_cost WHERE campaign_id = 'b'");
    assert_sql(c, "SELECT total_cost = 0.3675 AND executions = 2 FROM neon_budget.agent_cost WHERE agent_type = 'CONTENT'");
    assert_oracle(c);
    // Down again, below the original.
    c.batch_execute("UPDATE neon_budget.billing_log SET cost = 0.01, tokens = 10 WHERE execution_id = 'fix-me'").unwrap();
    assert_sql(c, "SELECT total_spent = 0.18 AND total_tokens = 5010 FROM neon_budget.monthly_budget WHERE month = '2024-02'");
    // An UPDATE of every row at once.
    c.batch_execute("UPDATE neon_budget.billing_log SET cost = cost * 2").unwrap();
    assert_sql(c, "SELECT total_spent = 0.36 FROM neon_budget.monthly_budget WHERE month = '2024-02'");
    // An UPDATE that changes no aggregated column changes nothing.
    let snap = aggregates_snapshot(c);
    c.batch_execute("UPDATE neon_budget.billing_log SET task = 'renamed', metadata = '{\"x\": 1}'").unwrap();
    assert_eq!(aggregates_snapshot(c), snap);
    assert_oracle(c);
}

#[test]
fn update_moves_rows_between_campaigns_agents_and_months() {
    let mut db = TestDb::new("entry_update_move");
    let c = &mut db.client;
    c.batch_execute(
        "SELECT neon_budget.track_cost('CONTENT', 1000, campaign_id => 'a', execution_id => 'mv', conversion_achieved => true,
                quality_score => 0.5, retry_count => 1, execution_time_ms => 10, created_at => '2024-02-10 00:00+00');
         SELECT neon_budget.track_cost('SEO', 2000, campaign_id => 'b', created_at => '2024-02-11 00:00+00');",
    )
    .unwrap();
    c.batch_execute("UPDATE neon_budget.billing_log SET campaign_id = 'b', agent_type = 'SEO' WHERE execution_id = 'mv'").unwrap();
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.campaign_cost WHERE campaign_id = 'a'"), 0);
    assert_sql(
        c,
        "SELECT total_cost = 0.1 AND executions = 2 AND total_tokens = 3000 FROM neon_budget.campaign_cost WHERE campaign_id = 'b'",
    );
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.agent_cost WHERE agent_type = 'CONTENT'"), 0);
    assert_sql(
        c,
        "SELECT total_cost = 0.1 AND executions = 2 AND successes = 1 AND quality_count = 1 AND quality_sum = 0.5
                AND retry_sum = 1 AND execution_time_ms_sum = 10
           FROM neon_budget.agent_cost WHERE agent_type = 'SEO' AND month = '2024-02'",
    );
    assert_sql(c, "SELECT total_spent = 0.1 AND executions = 2 FROM neon_budget.monthly_budget WHERE month = '2024-02'");
    assert_oracle(c);
    // To no campaign, then to another month.
    c.batch_execute("UPDATE neon_budget.billing_log SET campaign_id = NULL WHERE execution_id = 'mv'").unwrap();
    assert_sql(c, "SELECT total_cost = 0.06 AND executions = 1 FROM neon_budget.campaign_cost WHERE campaign_id = 'b'");
    assert_oracle(c);
    c.batch_execute("UPDATE neon_budget.billing_log SET billing_month = '2024-03', campaign_id = 'c' WHERE execution_id = 'mv'").unwrap();
    assert_sql(c, "SELECT total_spent = 0.06 AND executions = 1 FROM neon_budget.monthly_budget WHERE month = '2024-02'");
    assert_sql(c, "SELECT total_spent = 0.04 AND executions = 1 FROM neon_budget.monthly_budget WHERE month = '2024-03'");
    assert_sql(c, "SELECT total_cost = 0.04 FROM neon_budget.campaign_cost WHERE campaign_id = 'c' AND month = '2024-03'");
    assert_oracle(c);
}

#[test]
fn delete_and_truncate() {
    let mut db = TestDb::new("entry_delete_truncate");
    let c = &mut db.client;
    c.batch_execute(
        "SELECT neon_budget.track_cost('CONTENT', 1000 * g, campaign_id => 'a', created_at => '2024-02-10 00:00+00')
           FROM generate_series(1, 5) g;
         SELECT neon_budget.track_cost('SEO', 1000, campaign_id => 'b', created_at => '2024-03-10 00:00+00');",
    )
    .unwrap();
    // 0.04 * (1+2+3+4+5) = 0.60.
    assert_sql(c, "SELECT total_spent = 0.6 AND executions = 5 FROM neon_budget.monthly_budget WHERE month = '2024-02'");
    c.batch_execute("DELETE FROM neon_budget.billing_log WHERE tokens IN (2000, 5000)").unwrap();
    assert_sql(
        c,
        "SELECT total_spent = 0.32 AND executions = 3 AND total_tokens = 8000 FROM neon_budget.monthly_budget WHERE month = '2024-02'",
    );
    assert_sql(c, "SELECT total_cost = 0.32 AND executions = 3 FROM neon_budget.campaign_cost WHERE campaign_id = 'a'");
    assert_sql(c, "SELECT total_cost = 0.32 AND executions = 3 FROM neon_budget.agent_cost WHERE agent_type = 'CONTENT'");
    assert_oracle(c);
    c.batch_execute("DELETE FROM neon_budget.billing_log WHERE campaign_id = 'b'").unwrap();
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.campaign_cost WHERE campaign_id = 'b'"), 0);
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.agent_cost WHERE agent_type = 'SEO'"), 0);
    assert_sql(c, "SELECT total_spent = 0 AND executions = 0 FROM neon_budget.monthly_budget WHERE month = '2024-03'");
    assert_oracle(c);

    c.batch_execute("TRUNCATE neon_budget.billing_log").unwrap();
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.campaign_cost"), 0);
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.agent_cost"), 0);
    assert_sql(c, "SELECT bool_and(total_spent = 0 AND executions = 0 AND total_tokens = 0) FROM neon_budget.monthly_budget");
    assert_oracle(c);
    // Writing after the TRUNCATE starts from zero.
    c.batch_execute("SELECT neon_budget.track_cost('CONTENT', 1000, campaign_id => 'a', created_at => '2024-02-10 00:00+00')").unwrap();
    assert_sql(c, "SELECT total_spent = 0.04 AND executions = 1 FROM neon_budget.monthly_budget WHERE month = '2024-02'");
    assert_oracle(c);
    // A rolled back TRUNCATE keeps everything.
    let snap = aggregates_snapshot(c);
    c.batch_execute("BEGIN; TRUNCATE neon_budget.billing_log; ROLLBACK;").unwrap();
    assert_eq!(aggregates_snapshot(c), snap);
    assert_oracle(c);
}

#[test]
fn rollback_leaves_aggregates_and_alerts_unchanged() {
    let mut db = TestDb::new("entry_rollback");
    let mut l = listener(&db);
    let c = &mut db.client;
    c.batch_execute(
        "SELECT neon_budget.set_monthly_budget('2024-09', 1);
         SELECT neon_budget.set_campaign('a', 'A', NULL, 1);
         SELECT neon_budget.track_cost('CONTENT', 1, campaign_id => 'a', execution_id => 'base', cost => 0.5, created_at => '2024-09-02 00:00+00');",
    )
    .unwrap();
    assert_eq!(alerts_received(&mut l, WAIT).len(), 0);
    let counts = table_counts(c);
    let snap = aggregates_snapshot(c);

    // Every kind of write, each crossing every level, then ROLLBACK.
    c.batch_execute("BEGIN").unwrap();
    c.batch_execute("SELECT neon_budget.track_cost('CONTENT', 1, campaign_id => 'a', cost => 0.6, created_at => '2024-09-03 00:00+00')")
        .unwrap();
    c.batch_execute(
        "INSERT INTO neon_budget.billing_log (agent_type, campaign_id, tokens, cost, created_at)
                     VALUES ('SEO', 'a', 1, 5, '2024-09-04 00:00+00'), ('SEO', 'b', 1, 5, '2024-10-04 00:00+00')",
    )
    .unwrap();
    c.batch_execute("UPDATE neon_budget.billing_log SET cost = 0.99 WHERE execution_id = 'base'").unwrap();
    assert!(int(c, "SELECT count(*) FROM neon_budget.alert_log") >= 6, "alerts are raised inside the transaction");
    c.batch_execute("DELETE FROM neon_budget.billing_log WHERE execution_id = 'base'").unwrap();
    c.batch_execute("ROLLBACK").unwrap();

    assert_eq!(table_counts(c), counts);
    assert_eq!(aggregates_snapshot(c), snap);
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.alert_log"), 0);
    assert_eq!(alerts_received(&mut l, WAIT), Vec::<serde_json::Value>::new());
    assert_oracle(c);

    // The levels were not used up by the rolled back transaction: reaching 80% now alerts once
    // for the month and once for the campaign.
    c.batch_execute("SELECT neon_budget.track_cost('CONTENT', 1, campaign_id => 'a', cost => 0.3, created_at => '2024-09-05 00:00+00')")
        .unwrap();
    let got = alerts_received(&mut l, WAIT);
    let mut levels: Vec<String> =
        got.iter().map(|v| format!("{}:{}", v["scope"].as_str().unwrap(), v["level"].as_str().unwrap())).collect();
    levels.sort();
    assert_eq!(levels, vec!["campaign:warning", "month:warning"]);
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.alert_log"), 2);
    assert_oracle(c);
}

#[test]
fn rollback_to_savepoint_leaves_aggregates_and_alerts_unchanged() {
    let mut db = TestDb::new("entry_savepoint");
    let mut l = listener(&db);
    let c = &mut db.client;
    c.batch_execute("SELECT neon_budget.set_monthly_budget('2024-09', 1)").unwrap();

    c.batch_execute("BEGIN").unwrap();
    c.batch_execute("SELECT neon_budget.track_cost('CONTENT', 1, cost => 0.1, created_at => '2024-09-02 00:00+00')").unwrap();
    c.batch_execute("SAVEPOINT s1").unwrap();
    c.batch_execute(
        "SELECT neon_budget.track_cost('CONTENT', 1, execution_id => 'gone', cost => 0.95, created_at => '2024-09-03 00:00+00')",
    )
    .unwrap();
    c.batch_execute(
        "INSERT INTO neon_budget.billing_log (agent_type, tokens, cost, created_at)
                     VALUES ('SEO', 1, 5, '2024-09-04 00:00+00'), ('AD', 1, 5, '2024-09-04 00:00+00')",
    )
    .unwrap();
    c.batch_execute("SAVEPOINT s2").unwrap();
    c.batch_execute("UPDATE neon_budget.billing_log SET cost = cost + 1").unwrap();
    c.batch_execute("RELEASE SAVEPOINT s2").unwrap();
    c.batch_execute("ROLLBACK TO SAVEPOINT s1").unwrap();
    c.batch_execute("SELECT neon_budget.track_cost('SEO', 1, cost => 0.2, created_at => '2024-09-05 00:00+00')").unwrap();
    c.batch_execute("COMMIT").unwrap();

    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.billing_log"), 2);
    assert_sql(
        c,
        "SELECT total_spent = 0.3 AND executions = 2 AND alert_levels_sent = '{}' FROM neon_budget.monthly_budget WHERE month = '2024-09'",
    );
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.agent_cost WHERE agent_type = 'AD'"), 0);
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.alert_log"), 0);
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.alert_state WHERE levels_sent <> '{}'"), 0);
    assert_eq!(alerts_received(&mut l, WAIT), Vec::<serde_json::Value>::new());
    assert_oracle(c);

    // The execution id of the rolled back call is free again, and the levels fire when reached.
    c.batch_execute(
        "SELECT neon_budget.track_cost('CONTENT', 1, execution_id => 'gone', cost => 0.5, created_at => '2024-09-06 00:00+00')",
    )
    .unwrap();
    let got = alerts_received(&mut l, WAIT);
    let levels: Vec<&str> = got.iter().map(|v| v["level"].as_str().unwrap()).collect();
    assert_eq!(levels, vec!["warning"]);
    assert_sql(c, "SELECT total_spent = 0.8 FROM neon_budget.monthly_budget WHERE month = '2024-09'");
    assert_oracle(c);
}
