//! `neon-budget check` as a process: the exit code and output of each level, campaigns over
//! their warning level, --campaign, --json, --quiet, --color, --init.
mod common;
use common::TestDb;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn ok_is_exit_0_with_remaining_budget() {
    let mut db = TestDb::new("check_ok");
    db.budget("100", "0.8");
    db.spend("10.25", None);
    let out = db.cmd().arg("check").output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let month = db.month();
    assert!(text.contains(&format!("✅ Budget {month}: OK")), "{text}");
    assert!(text.contains("Total budget:  $100.00"), "{text}");
    assert!(text.contains("Spent:         $10.25 (10.3%)"), "{text}");
    assert!(text.contains("Remaining:     $89.75"), "{text}");
    assert!(text.contains("No campaign is over its warning level."), "{text}");
    assert!(!text.contains('\x1b'), "no color when not a terminal: {text:?}");
}

#[test]
fn warning_and_critical_are_exit_1() {
    let mut db = TestDb::new("check_warning");
    db.budget("100", "0.8");
    db.spend("80", None);
    let out = db.cmd().arg("check").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("🟡 Budget") && text.contains("WARNING"), "{text}");
    assert!(text.contains("normal operation continues"), "{text}");
    assert!(text.contains("Remaining:     $20.00"), "{text}");

    db.spend("15", None);
    let out = db.cmd().arg("check").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("🟠 Budget") && text.contains("CRITICAL"), "{text}");
    assert!(text.contains("consider action"), "{text}");
    assert!(text.contains("Remaining:     $5.00"), "{text}");
}

#[test]
fn exceeded_is_exit_2() {
    let mut db = TestDb::new("check_exceeded");
    db.budget("100", "0.8");
    db.spend("100.01", None);
    let out = db.cmd().arg("check").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = stdout(&out);
    assert!(text.contains("🔴 Budget") && text.contains("EXCEEDED"), "{text}");
    assert!(text.contains("Remaining:     -$0.01"), "{text}");
    assert!(text.contains("Executions allowed: no"), "{text}");
}

#[test]
fn campaigns_over_warning_are_listed_and_campaign_sets_the_level() {
    let mut db = TestDb::new("check_campaigns");
    db.budget("1000", "0.8");
    db.sql(
        "SELECT neon_budget.set_campaign('c-hot', 'Hot Campaign', 'AD', 100);
         SELECT neon_budget.set_campaign('c-warm', 'Warm Campaign', 'SEO', 100);
         SELECT neon_budget.set_campaign('c-cool', 'Cool Campaign', 'SEO', 100);
         SELECT neon_budget.set_campaign('c-free', 'Free Campaign', NULL, NULL);",
    );
    db.spend("120", Some("c-hot"));
    db.spend("85", Some("c-warm"));
    db.spend("10", Some("c-cool"));
    db.spend("500", Some("c-free"));
    // The month is ok (71.5%): exit 0, but the campaigns over their warning level are listed.
    let out = db.cmd().arg("check").output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("🔴 Hot Campaign (c-hot): $120.00 of $100.00 (120.0%), exceeded"), "{text}");
    assert!(text.contains("🟡 Warm Campaign (c-warm): $85.00 of $100.00 (85.0%), warning"), "{text}");
    assert!(!text.contains("Cool Campaign") && !text.contains("Free Campaign"), "{text}");
    assert!(text.find("Hot Campaign").unwrap() < text.find("Warm Campaign").unwrap(), "highest first: {text}");

    // --campaign: the worse of the month's and the campaign's level.
    let out = db.cmd().args(["check", "--campaign", "c-hot"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stdout(&out).contains("Campaign c-hot: $120.00 of $100.00 (120.0%), remaining -$20.00"), "{}", stdout(&out));
    let out = db.cmd().args(["check", "--campaign", "c-warm"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = db.cmd().args(["check", "--campaign", "c-cool"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let out = db.cmd().args(["check", "--campaign", "c-free"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("Campaign c-free: $500.00 spent, no limit"), "{}", stdout(&out));

    // --json: exact figures, the same level.
    let out = db.cmd().args(["--json", "check", "--campaign", "c-hot"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "exceeded");
    assert_eq!(v["exit_code"], 2);
    assert_eq!(v["total_spent"].to_string(), "715");
    assert_eq!(v["remaining"].to_string(), "285");
    assert_eq!(v["campaign"]["spent"].to_string(), "120");
    assert_eq!(v["campaign"]["remaining"].to_string(), "-20");
    let over = v["campaigns_over_warning"].as_array().unwrap();
    assert_eq!(over.len(), 2);
    assert_eq!(over[0]["campaign_id"], "c-hot");
    assert!(over[0]["utilization_percentage"].to_string().starts_with("120"), "{v}");
    assert_eq!(over[1]["status"], "warning");
}

#[test]
fn quiet_prints_nothing_and_color_always_colors() {
    let mut db = TestDb::new("check_quiet");
    db.budget("100", "0.8");
    db.spend("96", None);
    db.cmd().args(["check", "--quiet"]).assert().code(1).stdout("");
    db.cmd().args(["-q", "check"]).assert().code(1).stdout("");
    let out = db.cmd().args(["check", "--color", "always"]).output().unwrap();
    let text = stdout(&out);
    // Orange (256-color 208) for critical.
    assert!(text.contains("\x1b[1m\x1b[38;5;208m🟠 Budget"), "{text:?}");
}

#[test]
fn init_creates_the_month_from_the_environment_once() {
    let mut db = TestDb::new("check_init");
    let month = db.month();
    assert_eq!(db.int("SELECT count(*) FROM neon_budget.monthly_budget_setting"), 0);
    let out =
        db.cmd().args(["check", "--init"]).env("MAX_MONTHLY_BUDGET", "250.50").env("DEFAULT_ALERT_THRESHOLD", "0.7").output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(&format!("Initialized the budget of {month}")), "{text}");
    assert!(text.contains("Total budget:  $250.50"), "{text}");
    assert_eq!(db.text("SELECT total_budget::text || ' ' || alert_threshold::text FROM neon_budget.monthly_budget_setting"), "250.50 0.7");
    assert_eq!(db.int("SELECT count(*) FROM neon_budget.audit_log WHERE action ILIKE '%monthly%'"), 1);

    // An existing row is left as it is.
    let out = db.cmd().args(["--json", "check", "--init", "--max-monthly-budget", "999"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["initialized"], false);
    assert_eq!(v["total_budget"].to_string(), "250.50");
    assert_eq!(db.text("SELECT total_budget::text FROM neon_budget.monthly_budget_setting"), "250.50");

    // Without the variables the server's GUC defaults are used.
    let mut db2 = TestDb::new("check_init_defaults");
    db2.cmd().args(["check", "--init"]).assert().code(0);
    assert_eq!(db2.text("SELECT total_budget::text || ' ' || alert_threshold::text FROM neon_budget.monthly_budget_setting"), "1000 0.8");

    // A bad value is bad input (4), with nothing created.
    let mut db3 = TestDb::new("check_init_bad");
    let out = db3.cmd().args(["check", "--init"]).env("MAX_MONTHLY_BUDGET", "lots").output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("MAX_MONTHLY_BUDGET must be a decimal number"));
    let out = db3.cmd().args(["check", "--init"]).env("DEFAULT_ALERT_THRESHOLD", "1.5").output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("22023"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(db3.int("SELECT count(*) FROM neon_budget.monthly_budget_setting"), 0);
}

#[test]
fn json_utilization_has_two_decimals_for_the_month_and_every_campaign() {
    let mut db = TestDb::new("check_rounding");
    db.budget("1000", "0.8");
    db.sql(
        "SELECT neon_budget.set_campaign('c-over', 'Over', NULL, 30);
         SELECT neon_budget.set_campaign('c-half', 'Half', NULL, 100);",
    );
    db.spend("30.01", Some("c-over")); // 100.0333...%
    db.spend("84.949", Some("c-half")); // 84.949%
    db.spend("9.5", None); // month: 124.459 of 1000 = 12.4459%
    let out = db.cmd().args(["--json", "check", "--campaign", "c-half"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["utilization_percentage"].to_string(), "12.45");
    assert_eq!(v["campaign"]["utilization_percentage"].to_string(), "84.95");
    let over = v["campaigns_over_warning"].as_array().unwrap();
    assert_eq!(over.len(), 2, "{v}");
    assert_eq!((over[0]["campaign_id"].as_str(), over[0]["utilization_percentage"].to_string().as_str()), (Some("c-over"), "100.03"));
    assert_eq!((over[1]["campaign_id"].as_str(), over[1]["utilization_percentage"].to_string().as_str()), (Some("c-half"), "84.95"));
    // Exact JSON numbers, not strings.
    assert!(over[0]["utilization_percentage"].is_number() && v["utilization_percentage"].is_number(), "{v}");

    // The text rounds the exact ratio once, to 1 decimal (12.4459 -> 12.4, not 12.45 -> 12.5).
    let out = db.cmd().args(["check", "--campaign", "c-half"]).output().unwrap();
    let text = stdout(&out);
    assert!(text.contains("   Spent:         $124.46 (12.4%)\n"), "{text}");
    assert!(text.contains("   Campaign c-half: $84.95 of $100.00 (84.9%), remaining $15.05\n"), "{text}");
    assert!(text.contains("   🔴 Over (c-over): $30.01 of $30.00 (100.0%), exceeded\n"), "{text}");
    assert!(text.contains("   🟡 Half (c-half): $84.95 of $100.00 (84.9%), warning\n"), "{text}");
}

#[test]
fn a_campaign_id_starting_with_campaign_is_not_labelled_campaign_twice() {
    let mut db = TestDb::new("check_label");
    db.budget("1000", "0.8");
    db.sql(
        "SELECT neon_budget.set_campaign('campaign-1', 'Campaign One', NULL, 100);
         SELECT neon_budget.set_campaign('Campaign 2', 'Second', NULL, NULL);",
    );
    db.spend("10", Some("campaign-1"));
    db.spend("5", Some("Campaign 2"));
    let out = db.cmd().args(["check", "--campaign", "campaign-1"]).output().unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.lines().any(|l| l == "   campaign-1: $10.00 of $100.00 (10.0%), remaining $90.00"), "{text}");
    let out = db.cmd().args(["check", "--campaign", "Campaign 2"]).output().unwrap();
    let text = stdout(&out);
    assert!(text.lines().any(|l| l == "   Campaign 2: $5.00 spent, no limit"), "{text}");
    assert!(!text.to_lowercase().contains("campaign campaign"), "{text}");
}
