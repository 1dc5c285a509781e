//! `neon-budget replay` as a process: the demo's workload generator against any database.
mod common;
use common::TestDb;

/// The first `n` requests of the demo's Azure trace.
fn trace(db: &TestDb, n: usize) -> std::path::PathBuf {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../demo/data/AzureLLMInferenceTrace_conv.csv");
    let text = std::fs::read_to_string(src).unwrap();
    let head: Vec<&str> = text.lines().take(n + 1).collect();
    let path = db.dir.path().join("trace.csv");
    std::fs::write(&path, head.join("\n") + "\n").unwrap();
    path
}

#[test]
fn replays_a_trace_through_budget_check_and_track_cost() {
    let mut db = TestDb::new("replay");
    db.budget("1000", "0.8");
    let path = trace(&db, 40);
    let out =
        db.cmd().args(["--json", "replay"]).arg(&path).args(["--clients", "3", "--campaigns", "2", "--agent", "CONTENT"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["requests"], 40);
    assert_eq!(v["recorded"], 40);
    assert_eq!(v["blocked"], 0);
    assert_eq!(db.int("SELECT count(*) FROM neon_budget.billing_log WHERE agent_type = 'CONTENT'"), 40);
    assert_eq!(db.int("SELECT count(DISTINCT campaign_id) FROM neon_budget.billing_log"), 2);
    let tokens = db.int("SELECT sum(tokens)::bigint FROM neon_budget.billing_log");
    assert_eq!(v["tokens_recorded"], tokens);

    // Replayed again: the execution ids record nothing twice; --quiet prints only the summary.
    let out = db.cmd().args(["replay", "--quiet"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("replay: 40 requests"), "{text}");
    assert_eq!(db.int("SELECT count(*) FROM neon_budget.billing_log"), 40);
}

#[test]
fn a_spent_budget_blocks_requests() {
    let mut db = TestDb::new("replay_blocked");
    db.budget("0.05", "0.8");
    let path = trace(&db, 30);
    let out = db.cmd().args(["--json", "replay"]).arg(&path).args(["--clients", "1", "--agent", "DESIGN"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["blocked"].as_i64().unwrap() > 0, "{v}");
    assert_eq!(v["recorded"].as_i64().unwrap() + v["blocked"].as_i64().unwrap(), 30);
    // One client, so every admitted request was checked against everything recorded before it.
    assert_eq!(db.text("SELECT (sum(cost) <= 0.05)::text FROM neon_budget.billing_log"), "true");
}

#[test]
fn a_bad_trace_is_exit_4() {
    let db = TestDb::new("replay_bad");
    let out = db.cmd().args(["replay", "no-such-trace.csv"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read no-such-trace.csv"));
    std::fs::write(db.dir.path().join("bad.csv"), "TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,1,2\n").unwrap();
    let out = db.cmd().args(["replay", "bad.csv"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad TIMESTAMP"));
}

#[test]
fn alerts_of_a_campaign_id_starting_with_campaign_are_not_labelled_campaign_twice() {
    let mut db = TestDb::new("replay_label");
    db.budget("1000", "0.8");
    // The override lets every request run, so the tiny campaign budget raises its alerts.
    db.sql(
        "SELECT neon_budget.set_campaign('campaign-1', 'Campaign One', NULL, 0.0001);
         SELECT neon_budget.set_budget_override(true, 'replay label test');",
    );
    let path = trace(&db, 3);
    let out = db.cmd().arg("replay").arg(&path).args(["--clients", "1", "--campaigns", "1", "--agent", "CONTENT"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let month = db.month();
    for level in ["warning", "critical", "exceeded"] {
        let prefix = format!(" ALERT {month} {level}: campaign-1 spent $");
        assert_eq!(text.lines().filter(|l| l.contains(&prefix)).count(), 1, "{level}: {text}");
    }
    assert!(!text.contains("campaign campaign"), "{text}");
}
