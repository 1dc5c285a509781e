//! SCENARIOS.md 3, 6, 9 and 10, with the exact values asserted.
use neon_budget_integration::*;
use postgres::Client;

/// Scenario 3: the same execution reported twice records one row and counts once; a
/// superuser's UPDATE of a logged cost changes every aggregate by exactly the difference.
#[test]
fn scenario_3_duplicate_execution_and_cost_correction() {
    let mut db = TestDb::new("scenario_3");
    let c = &mut db.client;
    let cur = current_month(c);
    c.batch_execute(&format!(
        "SELECT neon_budget.set_monthly_budget('{cur}', 100);
         SELECT neon_budget.set_campaign('a', 'A', NULL, 50);
         SELECT neon_budget.track_cost('CONTENT', 1000, campaign_id => 'a', execution_id => 'run-7');
         SELECT neon_budget.track_cost('CONTENT', 1000, campaign_id => 'a', execution_id => 'run-7');
         SELECT neon_budget.track_cost('SEO', 2000, campaign_id => 'b');
         SELECT neon_budget.track_cost('CONTENT', 500, campaign_id => 'a');"
    ))
    .unwrap();
    // Client retry in a later transaction, too.
    c.batch_execute("SELECT neon_budget.track_cost('CONTENT', 1000, campaign_id => 'a', execution_id => 'run-7')").unwrap();
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.billing_log"), 3);
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.billing_log WHERE execution_id = 'run-7'"), 1);
    // 0.04 + 0.06 + 0.02.
    assert_sql(c, "SELECT total_spent = 0.12 AND campaign_spent = 0.06 FROM neon_budget.budget_check('a')");
    assert_sql(c, &format!("SELECT executions = 3 FROM neon_budget.monthly_budget WHERE month = '{cur}'"));
    assert_sql(c, "SELECT executions = 2 FROM neon_budget.campaign_cost WHERE campaign_id = 'a'");
    assert_oracle(c);

    let before = |c: &mut Client, sql: &str| text(c, sql).unwrap();
    let month_q = format!("SELECT total_spent::text FROM neon_budget.monthly_budget WHERE month = '{cur}'");
    let camp_a = "SELECT total_cost::text FROM neon_budget.campaign_cost WHERE campaign_id = 'a'";
    let camp_b = "SELECT total_cost::text FROM neon_budget.campaign_cost WHERE campaign_id = 'b'";
    let agent_content = "SELECT total_cost::text FROM neon_budget.agent_cost WHERE agent_type = 'CONTENT'";
    let agent_seo = "SELECT total_cost::text FROM neon_budget.agent_cost WHERE agent_type = 'SEO'";
    let overview = format!("SELECT total_spent::text FROM neon_budget.monthly_overview WHERE month = '{cur}'");
    let olds: Vec<String> =
        [month_q.as_str(), camp_a, camp_b, agent_content, agent_seo, overview.as_str()].iter().map(|q| before(c, q)).collect();

    // The correction: 0.04 -> 0.29.
    c.batch_execute("UPDATE neon_budget.billing_log SET cost = 0.29 WHERE execution_id = 'run-7'").unwrap();
    for (q, (old, diff)) in [month_q.as_str(), camp_a, camp_b, agent_content, agent_seo, overview.as_str()]
        .iter()
        .zip(olds.iter().zip(["0.25", "0.25", "0", "0.25", "0", "0.25"]))
    {
        assert_sql(c, &format!("SELECT ({q})::numeric - {old} = {diff}"));
    }
    assert_sql(c, "SELECT total_spent = 0.37 AND campaign_spent = 0.31 FROM neon_budget.budget_check('a')");
    assert_sql(c, &format!("SELECT executions = 3 AND total_tokens = 3500 FROM neon_budget.monthly_budget WHERE month = '{cur}'"));
    assert_sql(c, "SELECT executions = 2 AND total_tokens = 1500 FROM neon_budget.campaign_cost WHERE campaign_id = 'a'");
    assert_oracle(c);
    // The retry still returns the (corrected) single row.
    assert_sql(c, "SELECT cost = 0.29 FROM neon_budget.track_cost('CONTENT', 1000, execution_id => 'run-7')");
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.billing_log"), 3);
    assert_oracle(c);
}

/// 6. A failed execution with retries counts its whole cost everywhere and counts as a failure.
#[test]
fn scenario_6_failures_cost_money() {
    let mut db = TestDb::new("scenario_6");
    let c = &mut db.client;
    let cur = current_month(c);
    c.batch_execute(&format!(
        "SELECT neon_budget.set_monthly_budget('{cur}', 100);
         SELECT neon_budget.set_campaign('c6', 'Six', NULL, 10);
         SELECT neon_budget.track_cost('CONTENT', 5000, campaign_id => 'c6', conversion_achieved => false, retry_count => 2);
         SELECT neon_budget.track_cost('CONTENT', 2500, campaign_id => 'c6', conversion_achieved => true, retry_count => 0);"
    ))
    .unwrap();
    // 0.20 + 0.10.
    assert_sql(c, "SELECT total_spent = 0.3 AND campaign_spent = 0.3 FROM neon_budget.budget_check('c6')");
    assert_sql(c, "SELECT total_cost = 0.3 AND executions = 2 FROM neon_budget.campaign_cost WHERE campaign_id = 'c6'");
    assert_eq!(
        text(
            c,
            &format!(
                "SELECT concat_ws('|', trim_scale(total_cost), executions, success_rate, avg_retries, trim_scale(avg_cost))
               FROM neon_budget.agent_analytics WHERE agent_type = 'CONTENT' AND month = '{cur}'"
            )
        )
        .unwrap(),
        "0.3|2|50.0|1.00|0.15"
    );
    assert_sql(c, "SELECT successes = 1 AND failures = 1 AND retry_sum = 2 FROM neon_budget.agent_cost WHERE agent_type = 'CONTENT'");
    let report = text(c, "SELECT neon_budget.budget_report()").unwrap();
    assert!(report.contains("- Success Rate: 50.0%"), "{report}");
    assert!(report.contains("- Total Spent: $0.30"), "{report}");
    // A failed execution's cost blocks the campaign just like a successful one.
    c.batch_execute(
        "SELECT neon_budget.track_cost('CONTENT', 1, campaign_id => 'c6', cost => 9.7, conversion_achieved => false, retry_count => 2)",
    )
    .unwrap();
    assert_sql(c, "SELECT NOT can_execute AND status = 'exceeded' AND campaign_spent = 10 FROM neon_budget.budget_check('c6')");
    assert_eq!(
        text(c, &format!("SELECT success_rate::text FROM neon_budget.agent_analytics WHERE agent_type = 'CONTENT' AND month = '{cur}'"))
            .unwrap(),
        "33.3"
    );
    assert_oracle(c);
}

/// 9. Exact money.
#[test]
fn scenario_9_exact_money() {
    let mut db = TestDb::new("scenario_9");
    let c = &mut db.client;
    let cur = current_month(c);
    // Three executions of $0.10, as provider costs and as 2,500 CONTENT tokens at $0.04 / 1K.
    c.batch_execute(
        "SELECT neon_budget.track_cost('CONTENT', 1, cost => 0.10, campaign_id => 'p', created_at => '2024-01-10 00:00+00') FROM generate_series(1, 3);
         SELECT neon_budget.track_cost('CONTENT', 2500, campaign_id => 'r', created_at => '2024-02-10 00:00+00') FROM generate_series(1, 3);",
    )
    .unwrap();
    for (m, camp) in [("2024-01", "p"), ("2024-02", "r")] {
        assert_sql(
            c,
            &format!(
                "SELECT total_spent = 0.30 AND trim_scale(total_spent)::text = '0.3' FROM neon_budget.monthly_budget WHERE month = '{m}'"
            ),
        );
        assert_sql(c, &format!("SELECT total_cost = 0.30 FROM neon_budget.campaign_cost WHERE campaign_id = '{camp}'"));
        assert_sql(c, &format!("SELECT total_cost = 0.30 FROM neon_budget.agent_cost WHERE month = '{m}'"));
        assert!(text(c, &format!("SELECT neon_budget.budget_report('{m}')")).unwrap().contains("- Total Spent: $0.30\n"));
    }
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.billing_log WHERE cost <> 0.1"), 0);

    // Ten thousand executions of $0.0001 in the current month, whose budget is $1.00.
    c.batch_execute(&format!(
        "SELECT neon_budget.set_monthly_budget('{cur}', 1.00);
         SELECT neon_budget.track_cost('CONTENT', 1, cost => 0.0001, campaign_id => 'tiny') FROM generate_series(1, 10000);"
    ))
    .unwrap();
    assert_sql(c, &format!("SELECT total_spent = 1 AND trim_scale(total_spent)::text = '1' AND executions = 10000 FROM neon_budget.monthly_budget WHERE month = '{cur}'"));
    assert_sql(c, "SELECT total_cost = 1.00 FROM neon_budget.campaign_cost WHERE campaign_id = 'tiny'");
    // Spend exactly equal to the budget: exceeded, blocked.
    assert_sql(
        c,
        "SELECT NOT can_execute AND status = 'exceeded' AND total_spent = 1 AND remaining = 0 AND utilization_percentage = 100
           FROM neon_budget.budget_check()",
    );
    assert_sql(c, &format!("SELECT status = 'exceeded' AND remaining = 0 FROM neon_budget.monthly_overview WHERE month = '{cur}'"));
    assert_eq!(
        text(c, &format!("SELECT string_agg(level, ',' ORDER BY id) FROM neon_budget.alert_log WHERE month = '{cur}'")).unwrap(),
        "warning,critical,exceeded"
    );
    assert_sql(c, &format!("SELECT spent = 1 FROM neon_budget.alert_log WHERE month = '{cur}' AND level = 'exceeded'"));
    assert_sql(c, &format!("SELECT spent = 0.8 FROM neon_budget.alert_log WHERE month = '{cur}' AND level = 'warning'"));
    assert_sql(c, &format!("SELECT spent = 0.95 FROM neon_budget.alert_log WHERE month = '{cur}' AND level = 'critical'"));
    assert!(text(c, "SELECT neon_budget.budget_report()").unwrap().contains("- Status: exceeded\n"));
    assert_oracle(c);
}

/// 9, campaign side: three executions of $0.10 against a $0.30 campaign budget.
#[test]
fn scenario_9_campaign_spend_equal_to_budget() {
    let mut db = TestDb::new("scenario_9_campaign");
    let c = &mut db.client;
    c.batch_execute(
        "SELECT neon_budget.set_campaign('thirty', 'Thirty cents', NULL, 0.30);
         SELECT neon_budget.track_cost('CONTENT', 2500, campaign_id => 'thirty') FROM generate_series(1, 2);",
    )
    .unwrap();
    // 0.20 + an estimate of exactly 0.10 reaches but does not pass the budget.
    assert_sql(c, "SELECT can_execute AND estimated_cost = 0.1 FROM neon_budget.budget_check('thirty', 'CONTENT', 2500)");
    c.batch_execute("SELECT neon_budget.track_cost('CONTENT', 2500, campaign_id => 'thirty')").unwrap();
    assert_sql(
        c,
        "SELECT NOT can_execute AND status = 'exceeded' AND campaign_spent = 0.30 AND campaign_budget = 0.3
           FROM neon_budget.budget_check('thirty')",
    );
    assert_sql(c, "SELECT utilization_percentage = 100 FROM neon_budget.campaign_breakdown WHERE campaign_id = 'thirty'");
    assert_eq!(
        text(c, "SELECT string_agg(level, ',' ORDER BY id) FROM neon_budget.alert_log WHERE scope = 'campaign'").unwrap(),
        "warning,critical,exceeded"
    );
    assert_oracle(c);
}

/// 10. A rate change affects only later executions; history does not move.
#[test]
fn scenario_10_rates_change_history_does_not() {
    let mut db = TestDb::new("scenario_10");
    let c = &mut db.client;
    let cur = current_month(c);
    c.batch_execute(
        "SELECT neon_budget.set_monthly_budget('2024-01', 10);
         SELECT neon_budget.set_campaign('a', 'Alpha', 'CONTENT_GENERATION', 5);
         SELECT neon_budget.track_cost('CONTENT', 1000, campaign_id => 'a', execution_id => 'old-1', created_at => '2024-01-15 00:00+00');
         SELECT neon_budget.track_cost('SEO', 1000, campaign_id => 'a', created_at => '2024-01-16 00:00+00');
         SELECT neon_budget.track_cost('CONTENT', 1000, execution_id => 'now-1');",
    )
    .unwrap();
    let report_before = text(c, "SELECT neon_budget.budget_report('2024-01')").unwrap();
    let views = "SELECT string_agg(x, E'\\n' ORDER BY x) FROM (
                   SELECT (o.*)::text x FROM neon_budget.monthly_overview o WHERE month = '2024-01'
                   UNION ALL SELECT (b.*)::text FROM neon_budget.campaign_breakdown b WHERE month = '2024-01'
                   UNION ALL SELECT (a.*)::text FROM neon_budget.agent_analytics a WHERE month = '2024-01') v";
    let views_before = text(c, views).unwrap();

    c.batch_execute("SELECT neon_budget.set_agent_rate('CONTENT', 0.10)").unwrap();
    // Earlier rows keep their cost.
    assert_sql(c, "SELECT cost = 0.04 FROM neon_budget.billing_log WHERE execution_id = 'old-1'");
    assert_sql(c, "SELECT cost = 0.04 FROM neon_budget.billing_log WHERE execution_id = 'now-1'");
    // A retry of an earlier execution keeps its recorded cost.
    assert_sql(c, "SELECT cost = 0.04 FROM neon_budget.track_cost('CONTENT', 1000, execution_id => 'now-1')");
    // Later executions use the new rate; other agent types keep theirs.
    assert_eq!(text(c, "SELECT cost::text FROM neon_budget.track_cost('CONTENT', 1000, execution_id => 'now-2')").unwrap(), "0.1");
    assert_eq!(text(c, "SELECT cost::text FROM neon_budget.track_cost('SEO', 1000)").unwrap(), "0.03");
    assert_sql(c, "SELECT estimated_cost = 0.1 FROM neon_budget.budget_check(NULL, 'CONTENT', 1000)");
    assert_sql(c, &format!("SELECT total_spent = 0.17 AND executions = 3 FROM neon_budget.monthly_budget WHERE month = '{cur}'"));
    // Past months do not move.
    assert_eq!(text(c, "SELECT neon_budget.budget_report('2024-01')").unwrap(), report_before);
    assert_eq!(text(c, views).unwrap(), views_before);
    assert_sql(c, "SELECT total_spent = 0.07 FROM neon_budget.monthly_budget WHERE month = '2024-01'");

    // A second change, back down: still only later executions.
    c.batch_execute("SELECT neon_budget.set_agent_rate('CONTENT', 0.02)").unwrap();
    assert_eq!(text(c, "SELECT cost::text FROM neon_budget.track_cost('CONTENT', 1000)").unwrap(), "0.02");
    assert_sql(c, "SELECT cost = 0.1 FROM neon_budget.billing_log WHERE execution_id = 'now-2'");
    assert_eq!(text(c, "SELECT neon_budget.budget_report('2024-01')").unwrap(), report_before);
    assert_eq!(
        text(c, "SELECT string_agg(trim_scale(cost_per_1k_tokens)::text, ',' ORDER BY effective_from) FROM neon_budget.agent_rate WHERE agent_type = 'CONTENT'").unwrap(),
        "0.04,0.1,0.02"
    );
    assert_oracle(c);
}
