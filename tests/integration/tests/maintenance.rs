//! Verification, repair and retention (issue 4): budget_verify, budget_rebuild,
//! anonymize_before, purge_before.
use neon_budget_integration::*;

fn load(c: &mut postgres::Client) {
    c.batch_execute(
        "SELECT neon_budget.set_monthly_budget('2024-01', 100);
         SELECT neon_budget.set_campaign('c1', 'Campaign one', 'TEST', 40);
         SELECT neon_budget.track_cost('CONTENT', 1000 * g, campaign_id => 'c' || (g % 2), task => 'task ' || g,
                                       metadata => jsonb_build_object('n', g), execution_id => 'e' || g,
                                       quality_score => 0.3, conversion_achieved => g % 3 = 0,
                                       created_at => ('2024-01-0' || (g % 9 + 1) || ' 12:00+00')::timestamptz)
           FROM generate_series(1, 50) g;",
    )
    .unwrap();
}

#[test]
fn verify_reports_corruption_and_rebuild_fixes_it() {
    let mut db = TestDb::new("maint_verify");
    let c = &mut db.client;
    load(c);
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.budget_verify()"), 0);
    // Corrupt two aggregates by hand, as a superuser.
    c.batch_execute(
        "UPDATE neon_budget._month_spend SET cost = cost + 1;
         UPDATE neon_budget._agent_spend SET successes = successes + 2;",
    )
    .unwrap();
    let diffs: Vec<(String, String, String, String)> = c
        .query(
            "SELECT aggregate, month, expected->>'cost', COALESCE(stored->>'cost', '') || '/' || COALESCE(stored->>'successes', '')
               FROM neon_budget.budget_verify('2024-01') ORDER BY aggregate",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        diffs,
        vec![
            ("agent_cost".into(), "2024-01".into(), "51.00".into(), "51.00/18".into()),
            ("monthly_budget".into(), "2024-01".into(), "51.00".into(), "52.00/".into()),
        ]
    );
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.budget_verify('2023-12')"), 0);
    // One row each of the month, its campaign and agent aggregates, and one per day with spend.
    let days = int(c, "SELECT count(DISTINCT neon_budget._billing_day(created_at)) FROM neon_budget.billing_log WHERE billing_month = '2024-01'");
    assert_eq!(int(c, "SELECT neon_budget.budget_rebuild('2024-01')"), 4 + days);
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.budget_verify()"), 0);
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.audit_log WHERE action = 'budget_rebuild' AND target = '2024-01'"), 1);
    assert_eq!(sqlstate(c.query("SELECT * FROM neon_budget.budget_verify('2024-13')", &[])), "22007");
    assert_eq!(sqlstate(c.query("SELECT neon_budget.budget_rebuild('24-01')", &[])), "22007");
    assert_oracle(c);
}

#[test]
fn anonymize_and_purge_keep_every_total() {
    let mut db = TestDb::new("maint_retention");
    let c = &mut db.client;
    load(c);
    let report = text(c, "SELECT neon_budget.budget_report('2024-01')").unwrap();
    let views = text(
        c,
        "SELECT string_agg(x::text, ';' ORDER BY x::text) FROM (
           SELECT m::text AS x FROM neon_budget.monthly_overview m WHERE month = '2024-01'
           UNION ALL SELECT c::text FROM neon_budget.campaign_breakdown c WHERE month = '2024-01'
           UNION ALL SELECT a::text FROM neon_budget.agent_analytics a WHERE month = '2024-01') v",
    );

    // Rows created before Jan 5th: 2024-01-01..04 (g % 9 in 0..3): 23 of 50.
    assert_eq!(int(c, "SELECT neon_budget.anonymize_before('2024-01-05 00:00+00')"), 23);
    // execution_id becomes its keyed digest (a retry still records once), never the id itself.
    assert_eq!(
        int(c, "SELECT count(*) FROM neon_budget.billing_log WHERE task IS NULL AND metadata IS NULL
                  AND (execution_id IS NULL OR execution_id LIKE 'nb-anon:%')"),
        23
    );
    assert_eq!(int(c, "SELECT neon_budget.anonymize_before('2024-01-05 00:00+00')"), 0, "nothing left to anonymize");
    assert_oracle(c);

    assert_eq!(int(c, "SELECT neon_budget.purge_before('2024-01-04 00:00+00')"), 17);
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.billing_log"), 33);
    assert_eq!(text(c, "SELECT neon_budget.budget_report('2024-01')").unwrap(), report, "purging changed the report");
    assert_eq!(
        text(
            c,
            "SELECT string_agg(x::text, ';' ORDER BY x::text) FROM (
               SELECT m::text AS x FROM neon_budget.monthly_overview m WHERE month = '2024-01'
               UNION ALL SELECT c::text FROM neon_budget.campaign_breakdown c WHERE month = '2024-01'
               UNION ALL SELECT a::text FROM neon_budget.agent_analytics a WHERE month = '2024-01') v"
        ),
        views,
        "purging changed a dashboard view"
    );
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.budget_verify()"), 0, "log + purged sums = aggregates");
    // Later writes, and a rebuild, still agree.
    c.batch_execute("SELECT neon_budget.track_cost('SEO', 500, campaign_id => 'c1', created_at => '2024-01-02 00:00+00')").unwrap();
    c.batch_execute("SELECT neon_budget.budget_rebuild('2024-01')").unwrap();
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.budget_verify()"), 0);
    assert_sql(c, "SELECT total_spent = 51.015 FROM neon_budget.monthly_budget WHERE month = '2024-01'");
    assert_eq!(
        int(c, "SELECT count(*) FROM neon_budget.audit_log WHERE action IN ('anonymize_before', 'purge_before')"),
        3
    );
    assert_eq!(sqlstate(c.query("SELECT neon_budget.purge_before(NULL)", &[])), "22004");
}
