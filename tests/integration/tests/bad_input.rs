//! Invalid arguments: exact SQLSTATEs, and nothing written.
use neon_budget_integration::*;

#[test]
fn track_cost_rejects_bad_numbers() {
    let mut db = TestDb::seeded("bad_track_numbers");
    let c = &mut db.client;
    rejects(c, "SELECT neon_budget.track_cost('CONTENT', -1)", "22003");
    rejects(c, "SELECT neon_budget.track_cost('CONTENT', -1, campaign_id => 'c', cost => 1)", "22003");
    rejects(c, "SELECT neon_budget.track_cost('CONTENT', 100, cost => -0.01)", "22003");
    rejects(c, "SELECT neon_budget.track_cost('CONTENT', 100, cost => 'NaN')", "22003");
    rejects(c, "SELECT neon_budget.track_cost('CONTENT', 100, impact_score => 1.5)", "22003");
    rejects(c, "SELECT neon_budget.track_cost('CONTENT', 100, impact_score => -0.1)", "22003");
    rejects(c, "SELECT neon_budget.track_cost('CONTENT', 100, quality_score => 1.01)", "22003");
    rejects(c, "SELECT neon_budget.track_cost('CONTENT', 100, quality_score => -0.5)", "22003");
    rejects(c, "SELECT neon_budget.track_cost('CONTENT', 100, quality_score => 'NaN')", "22003");
    rejects(c, "SELECT neon_budget.track_cost('CONTENT', 100, retry_count => -1)", "22003");
    rejects(c, "SELECT neon_budget.track_cost('CONTENT', 100, execution_time_ms => -5)", "22003");
    // The bounds themselves are fine.
    c.batch_execute("SELECT neon_budget.track_cost('CONTENT', 0, impact_score => 0, quality_score => 1, cost => 0, retry_count => 0, execution_time_ms => 0)").unwrap();
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.billing_log"), 2);
    // A failing call inside a transaction leaves the transaction's earlier work alone.
    c.batch_execute("BEGIN; SELECT neon_budget.track_cost('CONTENT', 1000, created_at => '2024-01-11 00:00+00'); SAVEPOINT s").unwrap();
    assert_eq!(sqlstate(c.batch_execute("SELECT neon_budget.track_cost('CONTENT', -5)")), "22003");
    c.batch_execute("ROLLBACK TO SAVEPOINT s; COMMIT").unwrap();
    assert_sql(c, "SELECT total_spent = 0.08 AND executions = 2 FROM neon_budget.monthly_budget WHERE month = '2024-01'");
    assert_oracle(c);
}

#[test]
fn track_cost_rejects_unknown_and_missing_agent_types() {
    let mut db = TestDb::seeded("bad_track_agent");
    let c = &mut db.client;
    rejects(c, "SELECT neon_budget.track_cost('NO_SUCH_AGENT', 100)", "42704");
    // The hint says how to fix it.
    let e = c.batch_execute("SELECT neon_budget.track_cost('NO_SUCH_AGENT', 100)").unwrap_err();
    let hint = e.as_db_error().unwrap().hint().unwrap_or_default().to_string();
    assert!(hint.contains("set_agent_rate"), "hint: {hint:?}");
    // Agent types are case-sensitive names.
    rejects(c, "SELECT neon_budget.track_cost('content', 100)", "42704");
    rejects(c, "SELECT neon_budget.track_cost(NULL, 100)", "22004");
    rejects(c, "SELECT neon_budget.track_cost(NULL::text, 100, cost => 1)", "22004");
    rejects(c, "SELECT neon_budget.track_cost('CONTENT', NULL)", "22004");
    rejects(c, "SELECT neon_budget.track_cost('', 100)", "22023");
    // Even with a provider cost, an unknown agent type is refused.
    rejects(c, "SELECT neon_budget.track_cost('NO_SUCH_AGENT', 100, cost => 1)", "42704");
    // budget_check prices estimates the same way.
    rejects(c, "SELECT * FROM neon_budget.budget_check(NULL, 'NO_SUCH_AGENT', 10)", "42704");
    rejects(c, "SELECT * FROM neon_budget.budget_check(NULL, NULL, 10)", "22023");
    rejects(c, "SELECT * FROM neon_budget.budget_check(NULL, 'CONTENT', -1)", "22003");
    assert_oracle(c);
}

#[test]
fn malformed_months_are_rejected() {
    let mut db = TestDb::seeded("bad_months");
    let c = &mut db.client;
    for m in ["2024-13", "24-01", "2024-1", "2024-00", "2024/01", "2024-01-01", ""] {
        rejects(c, &format!("SELECT neon_budget.set_monthly_budget('{m}', 100)"), "22007");
        rejects(c, &format!("SELECT neon_budget.budget_report('{m}')"), "22007");
    }
    rejects(c, "SELECT neon_budget.set_monthly_budget(NULL, 100)", "22004");
    assert!(text(c, "SELECT neon_budget.budget_report('2024-01')").unwrap().starts_with("# Budget Report - 2024-01\n"));
    assert_oracle(c);
}

#[test]
fn budgets_and_thresholds_out_of_range() {
    let mut db = TestDb::seeded("bad_budgets");
    let c = &mut db.client;
    for b in ["0", "-5", "-0.01", "'NaN'"] {
        rejects(c, &format!("SELECT neon_budget.set_monthly_budget('2024-02', {b})"), "22023");
        rejects(c, &format!("SELECT neon_budget.set_monthly_budget('2024-01', {b})"), "22023");
        rejects(c, &format!("SELECT neon_budget.set_campaign('c2', 'C2', NULL, {b})"), "22023");
        rejects(c, &format!("SELECT neon_budget.set_campaign('c', 'C', NULL, {b})"), "22023");
    }
    // A NULL budget keeps the month's (issue #10: an omitted argument keeps the stored value).
    c.batch_execute("SELECT neon_budget.set_monthly_budget('2024-01', NULL)").unwrap();
    assert_sql(c, "SELECT total_budget = 100 FROM neon_budget.monthly_budget_setting WHERE month = '2024-01'");
    for t in ["0", "1.5", "-0.8", "1.0001"] {
        rejects(c, &format!("SELECT neon_budget.set_monthly_budget('2024-01', 100, {t})"), "22023");
        rejects(c, &format!("SELECT neon_budget.set_monthly_budget('2024-03', 100, {t})"), "22023");
    }
    rejects(c, "SELECT neon_budget.set_campaign('', 'Empty', NULL, 10)", "22023");
    rejects(c, "SELECT neon_budget.set_campaign(NULL, 'Null', NULL, 10)", "22004");
    rejects(c, "SELECT neon_budget.set_campaign('x', NULL, NULL, 10)", "22004");
    rejects(c, "SELECT neon_budget.set_agent_rate('CONTENT', -0.01)", "22023");
    rejects(c, "SELECT neon_budget.set_agent_rate('', 0.01)", "22023");
    rejects(c, "SELECT neon_budget.set_agent_rate('CONTENT', NULL)", "22004");
    // A threshold of exactly 1 is accepted.
    c.batch_execute("SELECT neon_budget.set_monthly_budget('2024-01', 100, 1)").unwrap();
    assert_sql(c, "SELECT alert_threshold = 1 AND total_budget = 100 FROM neon_budget.monthly_budget_setting WHERE month = '2024-01'");
    assert_oracle(c);
}

#[test]
fn override_needs_a_reason() {
    let mut db = TestDb::seeded("bad_override");
    let c = &mut db.client;
    rejects(c, "SELECT neon_budget.set_budget_override(true)", "22023");
    rejects(c, "SELECT neon_budget.set_budget_override(true, NULL)", "22023");
    rejects(c, "SELECT neon_budget.set_budget_override(true, '')", "22023");
    rejects(c, "SELECT neon_budget.set_budget_override(true, '   ')", "22023");
    rejects(c, "SELECT neon_budget.set_budget_override(NULL, 'why')", "22004");
    assert_sql(c, "SELECT NOT override_enabled FROM neon_budget.budget_check()");
    assert_oracle(c);
}

#[test]
fn direct_insert_with_negative_tokens_fails_its_check() {
    let mut db = TestDb::seeded("bad_direct_insert");
    let c = &mut db.client;
    rejects(c, "INSERT INTO neon_budget.billing_log (agent_type, tokens, cost) VALUES ('CONTENT', -1, 0.1)", "23514");
    rejects(c, "INSERT INTO neon_budget.billing_log (agent_type, tokens, cost) VALUES ('CONTENT', 1, -0.1)", "23514");
    rejects(c, "INSERT INTO neon_budget.billing_log (agent_type, tokens, cost) VALUES ('CONTENT', 1, 0.1), ('CONTENT', -1, 0.1)", "23514");
    rejects(c, "UPDATE neon_budget.billing_log SET tokens = -1", "23514");
    assert_oracle(c);
}

/// The report's line kinds: each heading's level (`#` count) or `-` for a list item, `.` for text.
fn shape(report: &str) -> Vec<String> {
    report
        .lines()
        .map(|l| {
            if l.starts_with('#') {
                l.chars().take_while(|c| *c == '#').collect::<String>()
            } else if l.starts_with("- ") {
                "-".to_string()
            } else if l.is_empty() {
                String::new()
            } else {
                ".".to_string()
            }
        })
        .collect()
}

#[test]
fn markdown_in_a_campaign_name_does_not_break_the_report() {
    let mut db = TestDb::new("bad_markdown_name");
    let c = &mut db.client;
    let name = "Q1 *launch* | # [x](y) 'a' \"b\"\nnew line";
    c.execute("SELECT neon_budget.set_campaign('md', $1, 'CONTENT_GENERATION', 100)", &[&name]).unwrap();
    c.batch_execute(
        "SELECT neon_budget.set_campaign('plain', 'Plain', 'CONTENT_GENERATION', 100);
         SELECT neon_budget.track_cost('CONTENT', 1000, campaign_id => 'md', created_at => '2024-01-10 00:00+00');
         SELECT neon_budget.track_cost('CONTENT', 1000, campaign_id => 'plain', created_at => '2024-02-10 00:00+00');",
    )
    .unwrap();
    let report = text(c, "SELECT neon_budget.budget_report('2024-01')").unwrap();
    let reference = text(c, "SELECT neon_budget.budget_report('2024-02')").unwrap();
    assert_eq!(shape(&report), shape(&reference), "report:\n{report}\nreference:\n{reference}");
    let headings: Vec<&str> = report.lines().filter(|l| l.starts_with('#')).collect();
    assert_eq!(headings.len(), 7, "{report}");
    assert_eq!(headings[0], "# Budget Report - 2024-01");
    assert_eq!(headings[1], "## 📊 Monthly Overview");
    assert_eq!(headings[2], "## 🎯 Campaign Breakdown");
    assert_eq!(headings[4], "## 🤖 Agent Usage");
    assert_eq!(headings[5], "### CONTENT");
    assert_eq!(headings[6], "## 💡 Cost Optimization Suggestions");
    let h = headings[3];
    assert!(h.starts_with("### ") && h.contains("launch") && h.contains("new line"), "heading {h:?}");
    // Nothing in the name stays active Markdown: every character that could change the
    // structure is backslash-escaped (and nothing else is: issue #10).
    let label = h[4..].strip_suffix(" (CONTENT_GENERATION)").unwrap();
    let mut escaped = false;
    for ch in label.chars() {
        if escaped {
            escaped = false;
        } else if ch == '\\' {
            escaped = true;
        } else {
            assert!(!"*[]#`<>~".contains(ch), "unescaped {ch:?} in heading {h:?}");
        }
    }
    let i = report.lines().position(|l| l == h).unwrap();
    let next: Vec<&str> = report.lines().skip(i + 1).take(4).collect();
    assert_eq!(next, vec!["", "- Cost: $0.04", "- Budget: $100.00", "- Utilization: 0.0%"]);
    assert_oracle(c);
}
