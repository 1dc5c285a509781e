//! Issue #13, part 3: the per-campaign, per-agent daily aggregate that forecasts read, and the
//! month-end forecast in `budget_forecast`, `budget_check` and the report, on the current
//! month of the test cluster's clock.
use neon_budget_integration::*;

/// Spend on three days by two campaigns, none and two agent types, through every entry path
/// (track_cost, a one-row INSERT, a multi-row INSERT, COPY): the views hold exact sums, survive
/// purge_before, and budget_rebuild repairs a damaged row of the three-key aggregate (its key
/// goes through budget_verify's text form and back).
#[test]
fn daily_series_per_campaign_and_agent_type() {
    let mut db = TestDb::new("daily_series");
    let c = &mut db.client;
    c.batch_execute(
        "SELECT neon_budget.set_agent_rate('A', 0.01, '2020-01-01');
         SELECT neon_budget.set_agent_rate('B', 0.02, '2020-01-01');
         SELECT neon_budget.track_cost('A', 1000, campaign_id => 'x', created_at => '2026-03-01 10:00+00');
         SELECT neon_budget.track_cost('A', 3000, campaign_id => 'x', created_at => '2026-03-01 23:59:59.999999+00');
         SELECT neon_budget.track_cost('B', 1000, created_at => '2026-03-02 00:00+00');
         INSERT INTO neon_budget.billing_log (agent_type, tokens, campaign_id, created_at) VALUES ('B', 500, 'y', '2026-03-02 12:00+00');
         INSERT INTO neon_budget.billing_log (agent_type, tokens, campaign_id, created_at)
         VALUES ('A', 2000, 'y', '2026-03-03 08:00+00'), ('A', 2000, NULL, '2026-03-03 09:00+00');",
    )
    .unwrap();
    {
        let mut w = c.copy_in("COPY neon_budget.billing_log (agent_type, tokens, campaign_id, created_at) FROM STDIN").unwrap();
        std::io::Write::write_all(&mut w, b"B\t7000\tx\t2026-03-03 20:00+00\n").unwrap();
        w.finish().unwrap();
    }
    let rows = "SELECT string_agg(campaign_id || '|' || agent_type || '|' || day || '|' || total_cost || '|' || executions, ' '
                        ORDER BY campaign_id, agent_type, day)
                  FROM neon_budget.campaign_agent_daily_cost WHERE month = '2026-03'";
    let expected = "|A|2026-03-03|0.02|1 |B|2026-03-02|0.02|1 x|A|2026-03-01|0.04|2 x|B|2026-03-03|0.14|1 \
                    y|A|2026-03-03|0.02|1 y|B|2026-03-02|0.01|1";
    assert_eq!(text(c, rows).unwrap(), expected);
    assert_eq!(
        column(c, "SELECT campaign_id || ' ' || day || ' ' || total_cost FROM neon_budget.campaign_daily_cost ORDER BY 1"),
        ["x 2026-03-01 0.04", "x 2026-03-03 0.14", "y 2026-03-02 0.01", "y 2026-03-03 0.02"]
    );
    assert_eq!(
        column(c, "SELECT agent_type || ' ' || day || ' ' || total_cost || ' ' || executions FROM neon_budget.agent_daily_cost ORDER BY 1"),
        ["A 2026-03-01 0.04 2", "A 2026-03-03 0.04 2", "B 2026-03-02 0.03 2", "B 2026-03-03 0.14 1"]
    );
    assert_oracle(c);
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.budget_verify()"), 0);

    // Retention keeps the series.
    assert_eq!(int(c, "SELECT neon_budget.purge_before('2026-03-03')"), 4);
    assert_eq!(text(c, rows).unwrap(), expected);
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.budget_verify()"), 0);

    // A damaged row is found with its three keys and repaired.
    c.batch_execute(
        "UPDATE neon_budget._campaign_agent_day_spend SET cost = cost + 1
          WHERE campaign_key = 'x' AND agent_type = 'B' AND billing_day = '2026-03-03'",
    )
    .unwrap();
    assert_eq!(
        column(c, "SELECT aggregate || ' ' || key FROM neon_budget.budget_verify('2026-03')"),
        ["campaign_agent_daily_cost {x,B,2026-03-03}"]
    );
    assert_eq!(int(c, "SELECT neon_budget.budget_rebuild('2026-03')"), 1);
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.budget_verify()"), 0);
    assert_eq!(text(c, rows).unwrap(), expected);
    // Keys with the array's own punctuation round-trip too.
    c.batch_execute(
        r#"SELECT neon_budget.track_cost('A', 1000, campaign_id => 'a,"b"{c} d', created_at => '2026-03-04 10:00+00');
           UPDATE neon_budget._campaign_agent_day_spend SET cost = cost + 1 WHERE billing_day = '2026-03-04';"#,
    )
    .unwrap();
    assert_eq!(int(c, "SELECT neon_budget.budget_rebuild('2026-03')"), 1);
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.budget_verify()"), 0);
    assert_eq!(
        text(c, r#"SELECT total_cost::text FROM neon_budget.campaign_daily_cost WHERE campaign_id = 'a,"b"{c} d'"#).unwrap(),
        "0.01"
    );
}

/// Today's day of the month, the month's length and the current billing month (UTC, the
/// default `neon_budget.timezone`).
fn calendar(c: &mut postgres::Client) -> (i64, i64, String) {
    let row = c
        .query_one(
            "SELECT extract(day FROM now() AT TIME ZONE 'UTC')::bigint,
                    extract(day FROM date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month - 1 day')::bigint,
                    neon_budget._current_month()",
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

/// The forecast on the current month, with a one-day window (yesterday) so that the expected
/// figures hold on any day of any month: 30 dollars yesterday, 1,000 on an earlier day (outside
/// the window), 5 today. Projected = spent + 30 × the days after today; against a budget one
/// dollar below it, the budget runs out on the month's last day.
#[test]
fn month_end_forecast_on_the_current_month() {
    let mut db = TestDb::new("forecast_now");
    let c = &mut db.client;
    let (today, days, month) = calendar(c);
    c.batch_execute(
        "ALTER DATABASE nbt_forecast_now SET neon_budget.forecast_window_days = 1;
         ALTER DATABASE nbt_forecast_now SET neon_budget.forecast_min_elapsed = 0;
         SET neon_budget.forecast_window_days = 1; SET neon_budget.forecast_min_elapsed = 0;
         SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 100000);
         SELECT neon_budget.set_campaign('fc', 'Forecast', NULL, 10000);
         SELECT neon_budget.track_cost('CONTENT', 0, campaign_id => 'fc', cost => 5);",
    )
    .unwrap();
    if today == 1 {
        // No complete day yet: nothing is forecast.
        assert_eq!(int(c, "SELECT count(*) FROM neon_budget.budget_forecast()"), 0);
        assert_sql(c, "SELECT projected_spend IS NULL AND campaign_projected_spend IS NULL FROM neon_budget.budget_check('fc')");
        return;
    }
    c.batch_execute(
        "SELECT neon_budget.track_cost('CONTENT', 0, campaign_id => 'fc', cost => 30,
                created_at => date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '1 hour')",
    )
    .unwrap();
    let mut spent = 35;
    if today >= 3 {
        c.batch_execute(
            "SELECT neon_budget.track_cost('CONTENT', 0, campaign_id => 'fc', cost => 1000,
                    created_at => date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '30 hours')",
        )
        .unwrap();
        spent += 1000;
    }
    let days_left = days - today;
    let forecasts = "SELECT count(*) FROM neon_budget.alert_log WHERE level = 'forecast'";
    let mut listen = listener(&db);
    let c = &mut db.client;

    // A budget the projection stays within: no forecast alert, from the change or a check.
    c.batch_execute(&format!("SELECT neon_budget.set_monthly_budget('{month}', {})", spent + 30 * days_left + 100)).unwrap();
    c.batch_execute("SELECT * FROM neon_budget.budget_check('fc')").unwrap();
    assert_eq!(int(c, forecasts), 0);
    // A write of 101 dollars today pushes the projection past it: the write sends the alert
    // (once), with its figures.
    c.batch_execute("SELECT neon_budget.track_cost('CONTENT', 0, campaign_id => 'fc', cost => 101)").unwrap();
    spent += 101;
    let projected = spent + 30 * days_left;
    assert_eq!(int(c, forecasts), 1);
    assert_eq!(
        text(
            c,
            "SELECT concat_ws(' ', scope, spent, budget, details->>'projected_spend', details->>'daily_mean',
                              details->>'window_days', details->>'days_left', details->>'projected_exhausted_on')
               FROM neon_budget.alert_log WHERE level = 'forecast'"
        )
        .unwrap(),
        format!("month {spent} {} {projected} 30 1 {days_left} {month}-{days:02}", projected - 101 + 100)
    );
    c.batch_execute("SELECT * FROM neon_budget.budget_check('fc'); SELECT neon_budget.track_cost('CONTENT', 0, cost => 0)").unwrap();
    assert_eq!(int(c, forecasts), 1);
    // Re-armed when a budget change brings the projection within it; a budget below the
    // projection alerts when the change commits.
    let budget = projected - 1;
    c.batch_execute(&format!(
        "SELECT neon_budget.set_monthly_budget('{month}', {});
         SELECT neon_budget.set_monthly_budget('{month}', {budget});",
        projected + 50
    ))
    .unwrap();
    assert_eq!(int(c, forecasts), 2);
    let last_day = format!("{month}-{days:02}");
    let payloads = raw_alerts_received(&mut listen, std::time::Duration::from_millis(500));
    let forecast_payloads: Vec<serde_json::Value> =
        payloads.iter().map(|p| serde_json::from_str::<serde_json::Value>(p).unwrap()).filter(|p| p["level"] == "forecast").collect();
    assert_eq!(forecast_payloads.len(), 2, "{payloads:?}");
    assert_eq!(forecast_payloads[1]["details"]["projected_spend"].to_string(), projected.to_string());
    assert_eq!(forecast_payloads[1]["details"]["projected_exhausted_on"], serde_json::json!(last_day));
    assert_eq!(forecast_payloads[1]["budget"].to_string(), budget.to_string());
    let rows = column(
        c,
        "SELECT concat_ws(' ', scope, campaign_id, budget, spent, daily_mean, window_days, days_left, projected_spend,
                          projected_exhausted_on, over_budget)
           FROM neon_budget.budget_forecast()",
    );
    assert_eq!(
        rows,
        [
            format!("month {budget} {spent} 30 1 {days_left} {projected} {last_day} t"),
            format!("campaign fc 10000 {spent} 30 1 {days_left} {projected} f"),
        ]
    );
    assert_eq!(
        text(
            c,
            "SELECT concat_ws(' ', projected_spend, projected_exhausted_on, campaign_projected_spend,
                              coalesce(campaign_projected_exhausted_on, '-'))
               FROM neon_budget.budget_check('fc')"
        )
        .unwrap(),
        format!("{projected} {last_day} {projected} -")
    );
    // A campaign without a budget has no forecast.
    assert_sql(c, "SELECT campaign_projected_spend IS NULL FROM neon_budget.budget_check('no-budget')");

    // Every report format shows it.
    let md = text(c, "SELECT neon_budget.budget_report()").unwrap();
    assert!(
        md.contains(&format!("- Forecast: ${}.00 at month end ($30.00/day, last day; budget runs out {last_day})", group(projected))),
        "{md}"
    );
    assert!(md.contains(&format!("- Forecast: ${}.00 at month end ($30.00/day, last day; within budget)", group(projected))), "{md}");
    let json: serde_json::Value = serde_json::from_str(&text(c, "SELECT neon_budget.budget_report(format => 'json')").unwrap()).unwrap();
    assert_eq!(json["forecast"][0]["projected_spend"].to_string(), projected.to_string());
    assert_eq!(json["forecast"][0]["projected_exhausted_on"], serde_json::json!(last_day));
    assert_eq!(json["forecast"][1]["campaign_id"], serde_json::json!("fc"));
    assert_eq!(json["forecast"][1]["over_budget"], serde_json::json!(false));
    let csv = text(c, "SELECT neon_budget.budget_report(format => 'csv')").unwrap();
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| l.starts_with("forecast,")).collect();
    assert_eq!(
        lines,
        [
            format!("forecast,{month},,,{spent},{budget},,,,,,,,,,,,month,,,30,1,{days_left},{projected},{last_day},true"),
            format!("forecast,fc,,,{spent},10000,,,,,,,,,,,,campaign,,,30,1,{days_left},{projected},,false"),
        ]
    );

    // A past month is not forecast; the settings are a superuser's.
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.budget_forecast('2020-01')"), 0);
    let mut reader = login_role(&mut db, "nb_forecast_reader", Some("neon_budget_reader"));
    assert_eq!(int(&mut reader, "SELECT count(*) FROM neon_budget.budget_forecast()"), 2);
    // (Once the library is loaded: before, PostgreSQL keeps any SET as a placeholder, which it
    // discards with a warning when the library defines the setting.)
    assert_eq!(sqlstate(reader.batch_execute("SET neon_budget.forecast_window_days = 3")), "42501");
    assert_eq!(sqlstate(reader.batch_execute("SET neon_budget.forecast_min_elapsed = 0.5")), "42501");
    assert_eq!(sqlstate(reader.batch_execute("SELECT neon_budget.budget_forecast('2026-13')")), "22007");
}

/// 1234567 -> "1,234,567".
fn group(n: i64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
