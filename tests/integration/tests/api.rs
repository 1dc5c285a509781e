//! The SQL API: track_cost, budget_check, the admin functions and the dashboard views.
use neon_budget_integration::*;
use postgres::Client;
use std::sync::mpsc;
use std::time::Duration;

/// One `budget_check` row, numbers as `trim_scale(...)::text` (NULL as "NULL").
#[derive(Debug, PartialEq)]
struct Check {
    can_execute: bool,
    status: String,
    month: String,
    total_budget: String,
    total_spent: String,
    remaining: String,
    utilization_percentage: String,
    override_enabled: bool,
    campaign_id: Option<String>,
    campaign_budget: String,
    campaign_spent: String,
    estimated_cost: String,
}

fn budget_check(c: &mut Client, args: &str) -> Check {
    let r = c
        .query_one(
            &format!(
                "SELECT can_execute, status, month, trim_scale(total_budget)::text, trim_scale(total_spent)::text,
                        trim_scale(remaining)::text, utilization_percentage::text, override_enabled, campaign_id,
                        COALESCE(trim_scale(campaign_budget)::text, 'NULL'), COALESCE(trim_scale(campaign_spent)::text, 'NULL'),
                        trim_scale(estimated_cost)::text
                   FROM neon_budget.budget_check({args})"
            ),
            &[],
        )
        .unwrap();
    Check {
        can_execute: r.get(0),
        status: r.get(1),
        month: r.get(2),
        total_budget: r.get(3),
        total_spent: r.get(4),
        remaining: r.get(5),
        utilization_percentage: r.get(6),
        override_enabled: r.get(7),
        campaign_id: r.get(8),
        campaign_budget: r.get(9),
        campaign_spent: r.get(10),
        estimated_cost: r.get(11),
    }
}

#[test]
fn track_cost_returns_the_row_with_exact_cost() {
    let mut db = TestDb::new("api_track_cost_row");
    let c = &mut db.client;
    let cur = current_month(c);

    // 418 CONTENT tokens at $0.04 / 1K = $0.01672, exactly.
    let r = c
        .query_one(
            "SELECT id, agent_type, tokens, cost::text, billing_month, campaign_id, execution_id
               FROM neon_budget.track_cost('CONTENT', 418)",
            &[],
        )
        .unwrap();
    let id1: i64 = r.get(0);
    assert_eq!(r.get::<_, String>(1), "CONTENT");
    assert_eq!(r.get::<_, i64>(2), 418);
    assert_eq!(r.get::<_, String>(3), "0.01672");
    assert_eq!(r.get::<_, String>(4), cur);
    assert_eq!(r.get::<_, Option<String>>(5), None);
    assert_eq!(r.get::<_, Option<String>>(6), None);
    assert_sql(c, &format!("SELECT cost = 0.01672 AND created_at <= now() FROM neon_budget.billing_log WHERE id = {id1}"));

    // DESIGN at $0.07: 1234 tokens = $0.08638.
    assert_eq!(text(c, "SELECT cost::text FROM neon_budget.track_cost('DESIGN', 1234)").unwrap(), "0.08638");
    // 2,230,750 tokens at $0.04 = $89.23.
    assert_sql(c, "SELECT cost = 89.23 FROM neon_budget.track_cost('CONTENT', 2230750)");

    // A provider-reported cost overrides the rate.
    assert_eq!(text(c, "SELECT cost::text FROM neon_budget.track_cost('CONTENT', 1000, cost => 0.0123)").unwrap(), "0.0123");
    assert_sql(c, "SELECT cost = 0 FROM neon_budget.track_cost('CONTENT', 5000, cost => 0)");

    // Every optional field is stored and returned; billing_month comes from created_at.
    let r = c
        .query_one(
            "SELECT id, campaign_id, task, execution_id, impact_score, conversion_achieved, quality_score,
                    retry_count, execution_time_ms, metadata::text, created_at = '2024-03-10 12:00+00', billing_month,
                    cost::text, tokens
               FROM neon_budget.track_cost('SEO', 2000, campaign_id => 'camp-1', task => 'write blog post',
                    execution_id => 'exec-1', impact_score => 0.75, conversion_achieved => true,
                    quality_score => 0.5, retry_count => 2, execution_time_ms => 1234,
                    metadata => '{\"model\": \"m1\", \"n\": [1, 2]}', created_at => '2024-03-10 12:00+00')",
            &[],
        )
        .unwrap();
    let id: i64 = r.get(0);
    assert_eq!(r.get::<_, Option<String>>(1).as_deref(), Some("camp-1"));
    assert_eq!(r.get::<_, Option<String>>(2).as_deref(), Some("write blog post"));
    assert_eq!(r.get::<_, Option<String>>(3).as_deref(), Some("exec-1"));
    assert_eq!(r.get::<_, Option<f64>>(4), Some(0.75));
    assert_eq!(r.get::<_, Option<bool>>(5), Some(true));
    assert_eq!(r.get::<_, Option<f64>>(6), Some(0.5));
    assert_eq!(r.get::<_, Option<i32>>(7), Some(2));
    assert_eq!(r.get::<_, Option<i64>>(8), Some(1234));
    assert_eq!(r.get::<_, Option<String>>(9).as_deref(), Some(r#"{"n": [1, 2], "model": "m1"}"#));
    assert!(r.get::<_, bool>(10));
    assert_eq!(r.get::<_, String>(11), "2024-03");
    assert_eq!(r.get::<_, String>(12), "0.06");
    assert_eq!(r.get::<_, i64>(13), 2000);
    // The stored row is the returned row.
    assert_sql(
        c,
        &format!(
            "SELECT campaign_id = 'camp-1' AND task = 'write blog post' AND execution_id = 'exec-1'
                    AND impact_score = 0.75 AND conversion_achieved AND quality_score = 0.5 AND retry_count = 2
                    AND execution_time_ms = 1234 AND metadata = '{{\"model\": \"m1\", \"n\": [1, 2]}}'::jsonb
                    AND created_at = '2024-03-10 12:00+00' AND billing_month = '2024-03' AND cost = 0.06
               FROM neon_budget.billing_log WHERE id = {id}"
        ),
    );
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.billing_log"), 6);
    assert_sql(
        c,
        "SELECT trim_scale(total_cost)::text = '0.06' FROM neon_budget.campaign_cost WHERE campaign_id = 'camp-1' AND month = '2024-03'",
    );
    assert_sql(
        c,
        &format!("SELECT total_spent = 0.01672 + 0.08638 + 89.23 + 0.0123 + 0 FROM neon_budget.monthly_budget WHERE month = '{cur}'"),
    );
    assert_oracle(c);
}

#[test]
fn execution_id_is_idempotent() {
    let mut db = TestDb::new("api_idempotent");
    let c = &mut db.client;
    let a = c
        .query_one(
            "SELECT id, cost::text FROM neon_budget.track_cost('CONTENT', 1000, campaign_id => 'c', execution_id => 'retry-1',
                    created_at => '2024-05-05 10:00+00')",
            &[],
        )
        .unwrap();
    assert_oracle(c);
    // The retry has other figures: the first row wins, nothing is written.
    let b = c
        .query_one(
            "SELECT id, cost::text FROM neon_budget.track_cost('CONTENT', 9000, campaign_id => 'c', execution_id => 'retry-1',
                    created_at => '2024-05-05 10:00+00')",
            &[],
        )
        .unwrap();
    assert_eq!(a.get::<_, i64>(0), b.get::<_, i64>(0));
    assert_eq!(a.get::<_, String>(1), "0.04");
    assert_eq!(b.get::<_, String>(1), "0.04");
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.billing_log"), 1);
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.billing_log WHERE execution_id = 'retry-1'"), 1);
    assert_sql(
        c,
        "SELECT total_spent = 0.04 AND executions = 1 AND total_tokens = 1000 FROM neon_budget.monthly_budget WHERE month = '2024-05'",
    );
    assert_sql(
        c,
        "SELECT total_cost = 0.04 AND executions = 1 FROM neon_budget.campaign_cost WHERE campaign_id = 'c' AND month = '2024-05'",
    );
    assert_sql(
        c,
        "SELECT total_cost = 0.04 AND executions = 1 FROM neon_budget.agent_cost WHERE agent_type = 'CONTENT' AND month = '2024-05'",
    );
    // A retry in a later explicit transaction, with another agent type, writes nothing either.
    c.batch_execute("BEGIN; SELECT neon_budget.track_cost('SEO', 1, execution_id => 'retry-1'); COMMIT;").unwrap();
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.billing_log"), 1);
    assert_oracle(c);
}

#[test]
fn execution_id_race_between_open_transactions() {
    let mut db = TestDb::new("api_idempotent_race");
    let mut a = db.connect();
    let mut b = db.connect();
    a.batch_execute("BEGIN").unwrap();
    let first: i64 = a
        .query_one(
            "SELECT id FROM neon_budget.track_cost('CONTENT', 1000, campaign_id => 'race', execution_id => 'race-1',
                    created_at => '2024-06-01 12:00+00')",
            &[],
        )
        .unwrap()
        .get(0);
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        b.batch_execute("BEGIN").unwrap();
        let r = b
            .query_one(
                "SELECT id, tokens, cost::text FROM neon_budget.track_cost('CONTENT', 5000, campaign_id => 'race',
                        execution_id => 'race-1', created_at => '2024-06-01 12:00+00')",
                &[],
            )
            .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1), r.get::<_, String>(2)));
        tx.send(()).unwrap();
        let r = r.unwrap();
        b.batch_execute("COMMIT").unwrap();
        r
    });
    // The second call waits for the first transaction.
    assert!(
        rx.recv_timeout(Duration::from_millis(800)).is_err(),
        "the second track_cost with the same execution_id returned while the first was uncommitted"
    );
    a.batch_execute("COMMIT").unwrap();
    let (id, tokens, cost) = handle.join().unwrap();
    assert_eq!((id, tokens, cost.as_str()), (first, 1000, "0.04"));
    let c = &mut db.client;
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.billing_log"), 1);
    assert_sql(c, "SELECT total_spent = 0.04 AND executions = 1 FROM neon_budget.monthly_budget WHERE month = '2024-06'");
    assert_sql(c, "SELECT total_cost = 0.04 AND executions = 1 FROM neon_budget.campaign_cost WHERE campaign_id = 'race'");
    assert_oracle(c);
}

#[test]
fn budget_check_fields_and_statuses() {
    let mut db = TestDb::new("api_budget_check_fields");
    let c = &mut db.client;
    let cur = current_month(c);

    // A month not used yet shows the budget it would get.
    let k = budget_check(c, "");
    assert_eq!(
        k,
        Check {
            can_execute: true,
            status: "ok".into(),
            month: cur.clone(),
            total_budget: "1000".into(),
            total_spent: "0".into(),
            remaining: "1000".into(),
            utilization_percentage: "0.00".into(),
            override_enabled: false,
            campaign_id: None,
            campaign_budget: "NULL".into(),
            campaign_spent: "NULL".into(),
            estimated_cost: "0".into(),
        }
    );

    c.batch_execute(&format!(
        "SELECT neon_budget.set_monthly_budget('{cur}', 100);
         SELECT neon_budget.set_campaign('camp', 'Camp', 'CONTENT_GENERATION', 10);
         SELECT neon_budget.track_cost('CONTENT', 1000, campaign_id => 'camp', cost => 5);"
    ))
    .unwrap();
    let k = budget_check(c, "'camp', 'CONTENT', 1000");
    assert_eq!(
        k,
        Check {
            can_execute: true,
            status: "ok".into(),
            month: cur.clone(),
            total_budget: "100".into(),
            total_spent: "5".into(),
            remaining: "95".into(),
            utilization_percentage: "5.00".into(),
            override_enabled: false,
            campaign_id: Some("camp".into()),
            campaign_budget: "10".into(),
            campaign_spent: "5".into(),
            estimated_cost: "0.04".into(),
        }
    );
    // A campaign without a budget row: no limit, its spend still shown.
    c.batch_execute("SELECT neon_budget.track_cost('SEO', 1000, campaign_id => 'free', cost => 1.5)").unwrap();
    let k = budget_check(c, "'free'");
    assert_eq!((k.campaign_budget.as_str(), k.total_spent.as_str(), k.can_execute), ("NULL", "6.5", true));
    assert_sql(c, "SELECT campaign_spent = 1.5 FROM neon_budget.budget_check('free')");

    // The campaign reaches 80% (8/10): warning, while the month is at 9.5%.
    c.batch_execute("SELECT neon_budget.track_cost('CONTENT', 10, campaign_id => 'camp', cost => 3)").unwrap();
    let k = budget_check(c, "'camp'");
    assert_eq!(
        (k.status.as_str(), k.can_execute, k.campaign_spent.as_str(), k.utilization_percentage.as_str()),
        ("warning", true, "8", "9.50")
    );
    assert_eq!(budget_check(c, "").status, "ok");
    // 95%: critical.
    c.batch_execute("SELECT neon_budget.track_cost('CONTENT', 10, campaign_id => 'camp', cost => 1.5)").unwrap();
    assert_eq!(budget_check(c, "'camp'").status, "critical");
    // The month at 80% exactly: warning for the month, critical stays for the campaign.
    c.batch_execute("SELECT neon_budget.track_cost('SEO', 10, cost => 69)").unwrap();
    let k = budget_check(c, "");
    assert_eq!(
        (k.status.as_str(), k.total_spent.as_str(), k.remaining.as_str(), k.utilization_percentage.as_str()),
        ("warning", "80", "20", "80.00")
    );
    assert_eq!(budget_check(c, "'camp'").status, "critical");
    // Month at 95.005%: critical; 2-decimal utilization.
    c.batch_execute("SELECT neon_budget.track_cost('SEO', 10, cost => 15.005)").unwrap();
    let k = budget_check(c, "");
    assert_eq!((k.status.as_str(), k.utilization_percentage.as_str(), k.remaining.as_str()), ("critical", "95.01", "4.995"));
    assert_oracle(c);
}

#[test]
fn budget_check_blocks_at_and_past_the_budget() {
    let mut db = TestDb::new("api_budget_check_blocks");
    let c = &mut db.client;
    let cur = current_month(c);
    c.batch_execute(&format!(
        "SELECT neon_budget.set_monthly_budget('{cur}', 10);
         SELECT neon_budget.track_cost('CONTENT', 1000, cost => 9.99);"
    ))
    .unwrap();
    // 9.99 + 0.04 would pass 10: blocked.
    let k = budget_check(c, "NULL, 'CONTENT', 1000");
    assert_eq!((k.can_execute, k.status.as_str(), k.estimated_cost.as_str()), (false, "critical", "0.04"));
    // 9.99 + 0.01 is exactly 10: allowed.
    let k = budget_check(c, "NULL, 'CONTENT', 250");
    assert_eq!((k.can_execute, k.estimated_cost.as_str()), (true, "0.01"));
    // 251 tokens = 0.01004: blocked.
    assert!(!budget_check(c, "NULL, 'CONTENT', 251").can_execute);
    // No estimate: allowed below the budget.
    assert!(budget_check(c, "").can_execute);
    // Spend reaches the budget: blocked even with no estimate.
    c.batch_execute("SELECT neon_budget.track_cost('CONTENT', 250)").unwrap();
    let k = budget_check(c, "");
    assert_eq!(
        (k.can_execute, k.status.as_str(), k.total_spent.as_str(), k.remaining.as_str(), k.utilization_percentage.as_str()),
        (false, "exceeded", "10", "0", "100.00")
    );
    assert_oracle(c);
}

#[test]
fn budget_check_blocks_on_the_campaign_budget() {
    let mut db = TestDb::new("api_budget_check_campaign");
    let c = &mut db.client;
    c.batch_execute(
        "SELECT neon_budget.set_campaign('cap', 'Capped', NULL, 1);
         SELECT neon_budget.track_cost('CONTENT', 1000, campaign_id => 'cap', cost => 0.99);",
    )
    .unwrap();
    let k = budget_check(c, "'cap', 'CONTENT', 250");
    assert_eq!(
        (k.can_execute, k.status.as_str(), k.campaign_spent.as_str(), k.estimated_cost.as_str()),
        (true, "critical", "0.99", "0.01")
    );
    assert!(!budget_check(c, "'cap', 'CONTENT', 251").can_execute);
    // The month is far from its budget: other campaigns are not blocked.
    assert!(budget_check(c, "'other', 'CONTENT', 251").can_execute);
    assert!(budget_check(c, "NULL, 'CONTENT', 251").can_execute);
    c.batch_execute("SELECT neon_budget.track_cost('CONTENT', 250, campaign_id => 'cap')").unwrap();
    let k = budget_check(c, "'cap'");
    assert_eq!((k.can_execute, k.status.as_str(), k.campaign_spent.as_str()), (false, "exceeded", "1"));
    // The month's own status stays ok.
    assert_eq!(budget_check(c, "").status, "ok");
    assert_oracle(c);
}

#[test]
fn budget_override_by_function_and_by_guc() {
    let mut db = TestDb::new("api_override");
    let c = &mut db.client;
    let cur = current_month(c);
    c.batch_execute(&format!(
        "SELECT neon_budget.set_monthly_budget('{cur}', 10);
         SELECT neon_budget.set_campaign('cap', 'Capped', NULL, 1);
         SELECT neon_budget.track_cost('CONTENT', 1000, campaign_id => 'cap', cost => 10);"
    ))
    .unwrap();
    let k = budget_check(c, "'cap'");
    assert_eq!((k.can_execute, k.override_enabled), (false, false));

    c.batch_execute("SELECT neon_budget.set_budget_override(true, 'incident 42: launch day')").unwrap();
    let k = budget_check(c, "'cap', 'CONTENT', 100000");
    assert_eq!((k.can_execute, k.override_enabled, k.status.as_str()), (true, true, "exceeded"));
    assert_sql(c, &format!(
        "SELECT override_enabled AND override_reason = 'incident 42: launch day' FROM neon_budget.monthly_budget_setting WHERE month = '{cur}'"
    ));
    assert_sql(c, &format!("SELECT override_enabled FROM neon_budget.monthly_overview WHERE month = '{cur}'"));
    // Alerts still fire and spend is still recorded under the override.
    c.batch_execute("SELECT neon_budget.track_cost('CONTENT', 1000, campaign_id => 'cap', cost => 1)").unwrap();
    assert_sql(c, "SELECT total_spent = 11 FROM neon_budget.budget_check()");

    c.batch_execute("SELECT neon_budget.set_budget_override(false)").unwrap();
    let k = budget_check(c, "'cap'");
    assert_eq!((k.can_execute, k.override_enabled), (false, false));

    c.batch_execute("SET neon_budget.enable_override = on").unwrap();
    let k = budget_check(c, "'cap', 'CONTENT', 100000");
    assert_eq!((k.can_execute, k.override_enabled), (true, true));
    c.batch_execute("RESET neon_budget.enable_override").unwrap();
    assert!(!budget_check(c, "").can_execute);
    assert_oracle(c);
}

#[test]
fn disabled_tracking_allows_and_records_nothing() {
    let mut db = TestDb::new("api_disabled");
    let c = &mut db.client;
    let cur = current_month(c);
    c.batch_execute(&format!(
        "SELECT neon_budget.set_monthly_budget('{cur}', 10);
         SELECT neon_budget.track_cost('CONTENT', 1000, cost => 10);"
    ))
    .unwrap();
    assert!(!budget_check(c, "").can_execute);
    let before = table_counts(c);
    let snap = aggregates_snapshot(c);

    c.batch_execute("SET neon_budget.enabled = off").unwrap();
    assert!(budget_check(c, "NULL, 'CONTENT', 1000000").can_execute);
    assert!(boolean(c, "SELECT neon_budget.track_cost('CONTENT', 1000) IS NULL"));
    assert!(boolean(
        c,
        "SELECT neon_budget.track_cost('SEO', 5, campaign_id => 'x', execution_id => 'e-off', created_at => '2030-01-01 00:00+00') IS NULL"
    ));
    assert_eq!(table_counts(c), before);
    assert_eq!(aggregates_snapshot(c), snap);

    c.batch_execute("RESET neon_budget.enabled").unwrap();
    assert!(!budget_check(c, "").can_execute);
    // The execution id was not taken while disabled.
    assert_sql(c, "SELECT cost = 0.00015 FROM neon_budget.track_cost('SEO', 5, execution_id => 'e-off')");
    assert_oracle(c);
}

#[test]
fn admin_functions_write_audit_log() {
    let mut db = TestDb::new("api_audit");
    let c = &mut db.client;
    let cur = current_month(c);
    c.batch_execute(
        "SELECT neon_budget.set_monthly_budget('2024-05', 500, 0.7);
         SELECT neon_budget.set_monthly_budget('2024-05', 750, 0.9);
         SELECT neon_budget.set_monthly_budget('2024-05', 800);",
    )
    .unwrap();
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.audit_log"), 3);
    assert_sql(
        c,
        "SELECT bool_and(action = 'set_monthly_budget' AND target = '2024-05' AND actor = session_user AND actor = 'postgres')
           FROM neon_budget.audit_log",
    );
    let audit_row =
        |c: &mut Client, n: i64| -> i64 { int(c, &format!("SELECT id FROM neon_budget.audit_log ORDER BY id OFFSET {} LIMIT 1", n - 1)) };
    let id1 = audit_row(c, 1);
    assert_sql(
        c,
        &format!(
            "SELECT (new_value->>'total_budget')::numeric = 500 AND (new_value->>'alert_threshold')::numeric = 0.7
                AND new_value->>'month' = '2024-05'
           FROM neon_budget.audit_log WHERE id = {id1}"
        ),
    );
    let id2 = audit_row(c, 2);
    assert_sql(
        c,
        &format!(
            "SELECT (old_value->>'total_budget')::numeric = 500 AND (old_value->>'alert_threshold')::numeric = 0.7
                AND (new_value->>'total_budget')::numeric = 750 AND (new_value->>'alert_threshold')::numeric = 0.9
           FROM neon_budget.audit_log WHERE id = {id2}"
        ),
    );
    let id3 = audit_row(c, 3);
    assert_sql(
        c,
        &format!(
            "SELECT (old_value->>'total_budget')::numeric = 750 AND (new_value->>'total_budget')::numeric = 800
                AND (new_value->>'alert_threshold')::numeric = 0.9
           FROM neon_budget.audit_log WHERE id = {id3}"
        ),
    );
    assert_sql(c, "SELECT total_budget = 800 AND alert_threshold = 0.9 FROM neon_budget.monthly_budget_setting WHERE month = '2024-05'");

    // set_campaign: new, then changed.
    c.batch_execute(
        "SELECT neon_budget.set_campaign('c1', 'Launch', 'CONTENT_GENERATION', 200);
         SELECT neon_budget.set_campaign('c1', 'Launch 2', 'SEO', NULL);",
    )
    .unwrap();
    assert_sql(
        c,
        "SELECT count(*) = 2 AND bool_and(target = 'c1' AND actor = session_user)
           FROM neon_budget.audit_log WHERE action = 'set_campaign'",
    );
    assert_sql(
        c,
        "SELECT old_value IS NULL AND new_value->>'name' = 'Launch' AND new_value->>'campaign_type' = 'CONTENT_GENERATION'
                AND (new_value->>'monthly_budget')::numeric = 200
           FROM neon_budget.audit_log WHERE action = 'set_campaign' ORDER BY id LIMIT 1",
    );
    assert_sql(
        c,
        "SELECT old_value->>'name' = 'Launch' AND (old_value->>'monthly_budget')::numeric = 200
                AND new_value->>'name' = 'Launch 2' AND new_value->>'campaign_type' = 'SEO'
                AND (new_value->>'monthly_budget')::numeric = 200
           FROM neon_budget.audit_log WHERE action = 'set_campaign' ORDER BY id DESC LIMIT 1",
    );

    // set_agent_rate: existing and new agent types.
    c.batch_execute(
        "SELECT neon_budget.set_agent_rate('CONTENT', 0.05);
         SELECT neon_budget.set_agent_rate('NEW_BOT', 0.123);",
    )
    .unwrap();
    assert_sql(
        c,
        "SELECT target = 'CONTENT' AND actor = session_user AND (old_value->>'cost_per_1k_tokens')::numeric = 0.04
                AND (new_value->>'cost_per_1k_tokens')::numeric = 0.05
           FROM neon_budget.audit_log WHERE action = 'set_agent_rate' ORDER BY id LIMIT 1",
    );
    assert_sql(
        c,
        "SELECT target = 'NEW_BOT' AND old_value->>'cost_per_1k_tokens' IS NULL
                AND (new_value->>'cost_per_1k_tokens')::numeric = 0.123
           FROM neon_budget.audit_log WHERE action = 'set_agent_rate' ORDER BY id DESC LIMIT 1",
    );
    assert_eq!(text(c, "SELECT cost::text FROM neon_budget.track_cost('NEW_BOT', 1000)").unwrap(), "0.123");

    // set_budget_override: on, then off.
    c.batch_execute(
        "SELECT neon_budget.set_budget_override(true, 'incident 7');
         SELECT neon_budget.set_budget_override(false);",
    )
    .unwrap();
    assert_sql(
        c,
        &format!(
            "SELECT target = '{cur}' AND actor = session_user
                AND old_value->'override_enabled' = 'false'::jsonb AND old_value->'override_reason' = 'null'::jsonb
                AND new_value->'override_enabled' = 'true'::jsonb AND new_value->>'override_reason' = 'incident 7'
           FROM neon_budget.audit_log WHERE action = 'set_budget_override' ORDER BY id LIMIT 1"
        ),
    );
    assert_sql(
        c,
        &format!(
            "SELECT target = '{cur}' AND old_value->'override_enabled' = 'true'::jsonb
                AND old_value->>'override_reason' = 'incident 7' AND new_value->'override_enabled' = 'false'::jsonb
           FROM neon_budget.audit_log WHERE action = 'set_budget_override' ORDER BY id DESC LIMIT 1"
        ),
    );
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.audit_log"), 9);
    // track_cost and budget_check are not admin actions.
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.audit_log WHERE action NOT IN ('set_monthly_budget', 'set_campaign', 'set_agent_rate', 'set_budget_override')"), 0);
    assert_oracle(c);
}

#[test]
fn dashboard_views_give_exact_figures() {
    let mut db = TestDb::new("api_views");
    let c = &mut db.client;
    c.batch_execute(
        "SELECT neon_budget.set_monthly_budget('2024-04', 200);
         SELECT neon_budget.set_campaign('a', 'Alpha', 'CONTENT_GENERATION', 100);
         SELECT neon_budget.set_campaign('b', 'Beta', NULL, NULL);
         SELECT neon_budget.track_cost('CONTENT', 1000, campaign_id => 'a', cost => 30, conversion_achieved => true,
                quality_score => 0.9, retry_count => 0, execution_time_ms => 1000, created_at => '2024-04-02 00:00+00');
         SELECT neon_budget.track_cost('CONTENT', 3000, campaign_id => 'a', cost => 20, conversion_achieved => false,
                quality_score => 0.6, retry_count => 2, execution_time_ms => 3000, created_at => '2024-04-03 00:00+00');
         SELECT neon_budget.track_cost('SEO', 500, campaign_id => 'b', cost => 10.5, conversion_achieved => true,
                retry_count => 1, created_at => '2024-04-04 00:00+00');
         SELECT neon_budget.track_cost('SEO', 250, campaign_id => 'zz', created_at => '2024-04-30 23:59:59+00');",
    )
    .unwrap();
    // zz: 250 SEO tokens at 0.03 = 0.0075.
    let total = "60.5075";
    assert_eq!(
        text(
            c,
            "SELECT concat_ws('|', trim_scale(total_budget), trim_scale(total_spent), utilization_percentage,
                   trim_scale(remaining), total_executions, status, override_enabled)
                   FROM neon_budget.monthly_overview WHERE month = '2024-04'"
        )
        .unwrap(),
        format!("200|{total}|30.3|139.4925|4|ok|f")
    );
    let rows: Vec<String> = c
        .query(
            "SELECT concat_ws('|', campaign_id, COALESCE(name, '-'), COALESCE(campaign_type, '-'), trim_scale(total_cost),
                    COALESCE(trim_scale(monthly_budget)::text, '-'), COALESCE(utilization_percentage::text, '-'),
                    total_tokens, executions)
               FROM neon_budget.campaign_breakdown WHERE month = '2024-04' ORDER BY campaign_id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(rows, vec!["a|Alpha|CONTENT_GENERATION|50|100|50.0|4000|2", "b|Beta|-|10.5|-|-|500|1", "zz|-|-|0.0075|-|-|250|1"]);
    let rows: Vec<String> = c
        .query(
            "SELECT concat_ws('|', agent_type, trim_scale(total_cost), executions, COALESCE(success_rate::text, '-'),
                    avg_cost, total_tokens, COALESCE(avg_quality::text, '-'), avg_retries,
                    COALESCE(avg_execution_time_ms::text, '-'))
               FROM neon_budget.agent_analytics WHERE month = '2024-04' ORDER BY agent_type",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    // CONTENT: 1 success of 2 reported; quality (0.9 + 0.6) / 2; retries 2 / 2; time 4000 / 2.
    // SEO: 1 success of 1 reported (NULL is not reported); 10.5075 / 2; retries 1 / 2.
    assert_eq!(rows, vec!["CONTENT|50|2|50.0|25.0000|4000|0.750|1.00|2000.0", "SEO|10.5075|2|100.0|5.2538|750|-|0.50|-"]);

    // Status follows the spend: 160 of 200 is warning, 190 critical, 200 exceeded.
    c.batch_execute("SELECT neon_budget.track_cost('AD', 1, cost => 99.4925, created_at => '2024-04-10 00:00+00')").unwrap();
    assert_sql(c, "SELECT status = 'warning' AND utilization_percentage = 80.0 AND remaining = 40 FROM neon_budget.monthly_overview WHERE month = '2024-04'");
    c.batch_execute("SELECT neon_budget.track_cost('AD', 1, cost => 30, created_at => '2024-04-10 00:00+00')").unwrap();
    assert_sql(c, "SELECT status = 'critical' FROM neon_budget.monthly_overview WHERE month = '2024-04'");
    c.batch_execute("SELECT neon_budget.track_cost('AD', 1, cost => 10, created_at => '2024-04-10 00:00+00')").unwrap();
    assert_sql(c, "SELECT status = 'exceeded' AND total_spent = 200 AND remaining = 0 AND utilization_percentage = 100.0 FROM neon_budget.monthly_overview WHERE month = '2024-04'");
    assert_oracle(c);
}
