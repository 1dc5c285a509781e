//! `neon-budget listen` as a process: alerts raised while it runs are written once; alerts
//! raised while it is stopped are written when it starts; an alert committed late (after a
//! higher id) is not skipped; a crash between the log line and the state writes no line twice;
//! a server restart loses none.
mod common;
use common::{files, lines, logged_ids, wait_for, Listening, TestDb};
use std::collections::BTreeSet;
use std::path::Path;

/// Ids of `alert_log`, by scope.
fn alert_ids(db: &mut TestDb, scope: &str) -> Vec<i64> {
    db.client
        .query("SELECT id FROM neon_budget.alert_log WHERE scope = $1 ORDER BY id", &[&scope])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Ids of the critical and exceeded alerts.
fn severe_ids(db: &mut TestDb) -> BTreeSet<i64> {
    db.client
        .query("SELECT id FROM neon_budget.alert_log WHERE level IN ('critical', 'exceeded')", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The alert ids of the `alert-*.json` files.
fn alert_files(dir: &Path) -> BTreeSet<i64> {
    files(dir)
        .iter()
        .filter(|f| f.starts_with("alert-") && f.ends_with(".json"))
        .map(|f| f.trim_end_matches(".json").rsplit('-').next().unwrap().parse().unwrap())
        .collect()
}

/// Asserts that the logs hold every alert of `alert_log` exactly once, in the right file, and
/// an alert file for each critical and exceeded one.
fn assert_written_once(db: &mut TestDb, dir: &Path) {
    // In commit order, which may differ from id order: compared sorted (a duplicate still shows).
    let mut month_ids = logged_ids(&dir.join("budget-alerts.log"));
    let mut campaign_ids = logged_ids(&dir.join("campaign-alerts.log"));
    month_ids.sort();
    campaign_ids.sort();
    assert_eq!(month_ids, alert_ids(db, "month"), "budget-alerts.log:\n{}", lines(&dir.join("budget-alerts.log")).join("\n"));
    assert_eq!(campaign_ids, alert_ids(db, "campaign"), "campaign-alerts.log:\n{}", lines(&dir.join("campaign-alerts.log")).join("\n"));
    assert_eq!(alert_files(dir), severe_ids(db), "alert files: {:?}", files(dir));
}

fn logged_count(dir: &Path) -> usize {
    lines(&dir.join("budget-alerts.log")).len() + lines(&dir.join("campaign-alerts.log")).len()
}

#[test]
fn alerts_raised_while_running_are_written_once() {
    let mut db = TestDb::new("listen_running");
    db.budget("100", "0.8");
    db.sql("SELECT neon_budget.set_campaign('c1', 'Launch Campaign', 'CONTENT_GENERATION', 50)");
    let l = Listening::start(db.dir.path(), &db.dsn(), &["--json"]);
    let dir = db.log_dir();

    db.spend("45", Some("c1")); // campaign 90%: warning
    db.spend("6", Some("c1")); // campaign 102%: critical + exceeded; month 51%
    db.spend("45", None); // month 96%: warning + critical
    db.spend("10", None); // month 106%: exceeded
    wait_for(30, "6 alert lines", || logged_count(&dir) >= 6);
    // A few more polls and notifications change nothing.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert_eq!(logged_count(&dir), 6);
    assert_written_once(&mut db, &dir);

    let budget_log = lines(&dir.join("budget-alerts.log"));
    assert!(
        budget_log[0].contains("🟡 WARNING monthly budget") && budget_log[0].contains("spent $96.00 of $100.00 (96.0%)"),
        "{budget_log:?}"
    );
    assert!(budget_log[1].contains("🟠 CRITICAL monthly budget"), "{budget_log:?}");
    assert!(budget_log[2].contains("🔴 EXCEEDED monthly budget") && budget_log[2].contains("$106.00"), "{budget_log:?}");
    let campaign_log = lines(&dir.join("campaign-alerts.log"));
    assert!(campaign_log[0].contains("🟡 WARNING campaign c1 \"Launch Campaign\""), "{campaign_log:?}");
    assert!(campaign_log[0].contains("spent $45.00 of $50.00 (90.0%)"), "{campaign_log:?}");

    // An alert file: the alert as exact JSON, named by its time and id.
    let id = *severe_ids(&mut db).iter().next().unwrap();
    let name = files(&dir).into_iter().find(|f| f.ends_with(&format!("-{id}.json"))).unwrap();
    assert!(name.starts_with("alert-") && name.contains('T') && name.contains("Z-"), "{name}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join(&name)).unwrap()).unwrap();
    assert_eq!(v["alert_id"], id);
    assert!(v["level"] == "critical" || v["level"] == "exceeded");

    let out = l.out();
    assert_eq!(l.stop(), Some(0), "SIGTERM stops it cleanly");
    // --json: one object per alert on standard output.
    let printed: Vec<serde_json::Value> = out.lines().map(|x| serde_json::from_str(x).unwrap()).collect();
    assert_eq!(printed.len(), 6, "{out}");
    assert_eq!(printed.iter().map(|v| v["alert_id"].as_i64().unwrap()).collect::<BTreeSet<_>>().len(), 6);
    assert!(printed.iter().any(|v| v["scope"] == "campaign" && v["spent"] == serde_json::json!(51)));

    // Started again: nothing new, nothing twice.
    db.cmd().args(["listen", "--once"]).assert().code(0);
    assert_eq!(logged_count(&dir), 6);
    assert_written_once(&mut db, &dir);
}

#[test]
fn alerts_raised_while_stopped_are_written_on_start() {
    let mut db = TestDb::new("listen_stopped");
    db.budget("100", "0.8");
    db.sql("SELECT neon_budget.set_campaign('c1', 'Campaign One', NULL, 10)");
    db.spend("81", None); // month warning, before any listener ran
    let dir = db.log_dir();

    let l = Listening::start(db.dir.path(), &db.dsn(), &[]);
    assert!(l.err().contains("1 alerts caught up"), "{}", l.err());
    assert_written_once(&mut db, &dir);
    assert!(l.out().contains("🟡 WARNING monthly budget"), "{}", l.out());
    assert_eq!(l.stop(), Some(0));

    // While nobody listens: NOTIFY is lost, alert_log keeps them.
    db.spend("15", None); // month 96%: critical
    db.spend("11", Some("c1")); // campaign 110%: warning, critical, exceeded; month 107%: exceeded
    assert_eq!(logged_count(&dir), 1);
    let l = Listening::start(db.dir.path(), &db.dsn(), &[]);
    assert!(l.err().contains("5 alerts caught up"), "{}", l.err());
    assert_written_once(&mut db, &dir);
    db.spend("1", Some("c1")); // no new level: nothing
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(logged_count(&dir), 6);
    assert_eq!(l.stop(), Some(0));
    assert_written_once(&mut db, &dir);

    // --once with --quiet: nothing to write, nothing printed.
    db.cmd().args(["--quiet", "listen", "--once"]).assert().code(0).stdout("").stderr("");
    assert_written_once(&mut db, &dir);
}

#[test]
fn an_alert_committed_after_a_higher_id_is_written_once() {
    let mut db = TestDb::new("listen_late_commit");
    db.budget("1000", "0.8");
    db.sql(
        "SELECT neon_budget.set_campaign('early', 'Early', NULL, 10);
         SELECT neon_budget.set_campaign('late', 'Late', NULL, 10);",
    );
    let dir = db.log_dir();
    let l = Listening::start(db.dir.path(), &db.dsn(), &[]);

    // Transaction A takes the lower alert id and stays open; B takes the next id and commits.
    let mut a = db.connect();
    let mut tx = a.transaction().unwrap();
    tx.batch_execute("SELECT neon_budget.track_cost('CONTENT', 1000, 'early', cost => 8.5)").unwrap();
    db.spend("8.5", Some("late"));
    wait_for(30, "the later alert", || logged_count(&dir) == 1);
    let first = logged_ids(&dir.join("campaign-alerts.log"));
    // The listener stops before A commits: A's NOTIFY reaches nobody.
    assert_eq!(l.stop(), Some(0));
    tx.commit().unwrap();
    let ids = alert_ids(&mut db, "campaign");
    assert_eq!(ids.len(), 2);
    assert_eq!(first, vec![ids[1]], "the higher id was written first");

    // On start it reads below the highest id it wrote, and finds A's alert.
    db.cmd().args(["listen", "--once"]).assert().code(0);
    assert_written_once(&mut db, &dir);
    assert_eq!(logged_count(&dir), 2);
    db.cmd().args(["listen", "--once"]).assert().code(0);
    assert_eq!(logged_count(&dir), 2);

    // The same while running: A's commit wakes the listener.
    let l = Listening::start(db.dir.path(), &db.dsn(), &[]);
    let mut tx = a.transaction().unwrap();
    tx.batch_execute("SELECT neon_budget.track_cost('CONTENT', 1000, 'early', cost => 1.2)").unwrap(); // early 97%: critical
    db.spend("1.2", Some("late")); // late 97%: critical
    wait_for(30, "the later alert", || logged_count(&dir) == 3);
    tx.commit().unwrap();
    wait_for(30, "the earlier alert", || logged_count(&dir) == 4);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(l.stop(), Some(0));
    assert_written_once(&mut db, &dir);
}

#[test]
fn a_crash_between_log_line_and_state_writes_nothing_twice() {
    let mut db = TestDb::new("listen_crash");
    db.budget("100", "0.8");
    db.spend("100", None); // warning, critical, exceeded
    db.cmd().args(["listen", "--once"]).assert().code(0);
    let dir = db.log_dir();
    assert_eq!(logged_count(&dir), 3);
    // As if the process died after the last log line and before saving the state.
    let state = dir.join(format!("listen-state-{}.json", db.name));
    std::fs::write(&state, "{\"version\":1,\"watermark\":0,\"written\":[]}\n").unwrap();
    db.cmd().args(["listen", "--once"]).assert().code(0);
    assert_eq!(logged_count(&dir), 3, "{:?}", lines(&dir.join("budget-alerts.log")));
    assert_written_once(&mut db, &dir);

    // A damaged state file is reported, not silently reset.
    std::fs::write(&state, "garbage").unwrap();
    let out = db.cmd().args(["listen", "--once"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not valid"));
}

#[test]
fn a_campaign_id_starting_with_campaign_is_not_labelled_campaign_twice() {
    let mut db = TestDb::new("listen_label");
    db.budget("1000", "0.8");
    db.sql(
        "SELECT neon_budget.set_campaign('campaign-1', 'Campaign One', NULL, 10);
         SELECT neon_budget.set_campaign('campaign-2', 'campaign-2', NULL, 10);",
    );
    db.spend("8.5", Some("campaign-1")); // 85%: warning
    db.spend("8.5", Some("campaign-2"));
    let month = db.month();
    let ids = alert_ids(&mut db, "campaign");
    assert_eq!(ids.len(), 2);
    let out = db.cmd().args(["listen", "--once"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "🟡 WARNING campaign-1 \"Campaign One\" {month}: spent $8.50 of $10.00 (85.0%) [alert_id={}]\n\
             🟡 WARNING campaign-2 {month}: spent $8.50 of $10.00 (85.0%) [alert_id={}]\n",
            ids[0], ids[1]
        )
    );
}

/// A `forecast` alert (issue #13) is written with its projection from `alert_log.details`, on
/// standard output and in the month's log, with no alert file (only critical and exceeded get
/// one).
#[test]
fn a_forecast_alert_is_written_with_its_projection() {
    let mut db = TestDb::new("listen_forecast");
    db.sql(
        r#"INSERT INTO neon_budget.alert_log (scope, campaign_id, month, level, spent, budget, utilization, details)
           VALUES ('month', NULL, '2026-11', 'forecast', 400, 1000, 40,
                   '{"projected_spend": 1160, "daily_mean": 40, "window_days": 7, "days_left": 19,
                     "projected_exhausted_on": "2026-11-26"}')"#,
    );
    let id = alert_ids(&mut db, "month")[0];
    let out = db.cmd().args(["listen", "--once"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let line = format!(
        "📈 FORECAST monthly budget 2026-11: projected $1,160.00 of $1,000.00 at month end ($40.00/day over the last 7 days; \
         budget runs out 2026-11-26; spent $400.00 so far) [alert_id={id}]"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{line}\n"));
    let logged = lines(&db.log_dir().join("budget-alerts.log"));
    assert_eq!(logged.len(), 1);
    assert!(logged[0].ends_with(&format!(" {line}")), "{logged:?}");
    assert!(alert_files(&db.log_dir()).is_empty());
}

/// Cost anomalies (level `anomaly`: budget and utilization NULL, figures in `alert_log.details`)
/// are written with their figures: a campaign's day (with the campaign's name) in
/// campaign-alerts.log, an agent type's day and an execution in budget-alerts.log, with no alert
/// file; `--json` prints budget and utilization as null.
#[test]
fn anomaly_alerts_are_written_with_their_figures() {
    let mut db = TestDb::new("listen_anomaly");
    db.sql("SELECT neon_budget.set_campaign('campaign-2', 'Ad Optimization', NULL, 1000)");
    db.sql(
        r#"INSERT INTO neon_budget.alert_log (scope, campaign_id, month, level, spent, budget, utilization, details)
           VALUES ('campaign', 'campaign-2', '2025-03', 'anomaly', 73.7285, NULL, NULL,
                   '{"kind": "day", "scope_key": "campaign-2", "day": "2025-03-21", "spent": 73.7285, "baseline_median": 10.2966,
                     "baseline_mad": 2.230795, "excess": 63.4319, "score": 19.18, "threshold": 6, "min_increase": 1,
                     "min_dollars": 10, "baseline_days": 14}'),
                  ('agent_type', NULL, '2025-03', 'anomaly', 33.12, NULL, NULL,
                   '{"kind": "day", "scope_key": "SEO", "day": "2025-03-21", "spent": 33.12, "baseline_median": 5.01,
                     "baseline_mad": 0.4602, "excess": 28.11, "score": 41.2, "threshold": 6, "min_increase": 1,
                     "min_dollars": 10, "baseline_days": 14}'),
                  ('execution', NULL, '2025-03', 'anomaly', 2.75, NULL, NULL,
                   '{"kind": "execution", "scope_key": "CONTENT", "day": "2025-03-21", "agent_type": "CONTENT",
                     "billing_log_id": 123, "execution_id": "abc", "campaign_id": "campaign-1", "cost": 2.75,
                     "typical_cost": 0.054912, "ratio": 50.08, "factor": 20, "min_dollars": 1, "executions_in_baseline": 3228}')"#,
    );
    let mut id_of = |scope: &str| {
        let ids = alert_ids(&mut db, scope);
        assert_eq!(ids.len(), 1, "{scope}: {ids:?}");
        ids[0]
    };
    let (campaign, agent_type, execution) = (id_of("campaign"), id_of("agent_type"), id_of("execution"));
    let campaign_line = format!(
        "🔎 ANOMALY campaign-2 \"Ad Optimization\" 2025-03-21: spent $73.73 in the day, baseline median $10.30 over 14 days \
         (score 19.18) [alert_id={campaign}]"
    );
    let agent_type_line = format!(
        "🔎 ANOMALY agent type SEO 2025-03-21: spent $33.12 in the day, baseline median $5.01 over 14 days (score 41.2) \
         [alert_id={agent_type}]"
    );
    let execution_line = format!(
        "🔎 ANOMALY execution of agent type CONTENT 2025-03-21: cost $2.75, 50.08× its typical $0.0549 \
         (execution_id abc, billing_log id 123) [alert_id={execution}]"
    );

    let out = db.cmd().args(["listen", "--once"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // Standard output in alert_log id order.
    let mut expected = [(campaign, &campaign_line), (agent_type, &agent_type_line), (execution, &execution_line)];
    expected.sort();
    let stdout: String = expected.iter().map(|(_, line)| format!("{line}\n")).collect();
    assert_eq!(String::from_utf8_lossy(&out.stdout), stdout);
    let logged = lines(&db.log_dir().join("campaign-alerts.log"));
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert!(logged[0].ends_with(&format!(" {campaign_line}")), "{logged:?}");
    let mut budget_lines = [(agent_type, &agent_type_line), (execution, &execution_line)];
    budget_lines.sort();
    let logged = lines(&db.log_dir().join("budget-alerts.log"));
    assert_eq!(logged.len(), 2, "{logged:?}");
    for (logged, (_, line)) in logged.iter().zip(budget_lines) {
        assert!(logged.ends_with(&format!(" {line}")), "{logged:?}");
    }
    assert!(alert_files(&db.log_dir()).is_empty());

    // --json, in a log directory of its own (so with a state of its own): exact figures, no budget.
    let out = db.cmd().args(["--json", "--log-dir", "json-logs", "listen", "--once"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let printed: Vec<serde_json::Value> = text.lines().map(|x| serde_json::from_str(x).unwrap()).collect();
    assert_eq!(printed.len(), 3, "{text}");
    for v in &printed {
        assert_eq!(v["level"], "anomaly", "{v}");
        assert!(v["budget"].is_null() && v["utilization"].is_null(), "{v}");
        assert_eq!(v["details"]["day"], "2025-03-21", "{v}");
    }
    let by_id = |id: i64| printed.iter().find(|v| v["alert_id"].as_i64() == Some(id)).unwrap();
    assert_eq!(by_id(campaign)["campaign_name"], "Ad Optimization");
    assert_eq!(by_id(campaign)["spent"].to_string(), "73.7285");
    assert!(by_id(campaign)["log_file"].as_str().unwrap().ends_with("campaign-alerts.log"));
    assert_eq!(by_id(execution)["details"]["typical_cost"].to_string(), "0.054912");
    assert!(by_id(execution)["campaign_id"].is_null());
    assert!(by_id(agent_type)["log_file"].as_str().unwrap().ends_with("budget-alerts.log"));
}

/// A cluster of this test's own (`scripts/cluster.sh`), stopped when dropped.
struct OwnCluster {
    dir: String,
    port: u16,
}

impl OwnCluster {
    fn script() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/cluster.sh")
    }
    fn run(&self, cmd: &str) {
        let st = std::process::Command::new("bash").arg(Self::script()).args([cmd, &self.dir, &self.port.to_string()]).status().unwrap();
        assert!(st.success(), "cluster.sh {cmd} {} failed", self.dir);
    }
    fn start(dir: &str, port: u16) -> OwnCluster {
        let c = OwnCluster { dir: dir.to_string(), port };
        c.run("stop");
        c.run("start");
        c
    }
    fn dsn(&self) -> String {
        format!("host={} port={} user=postgres", self.dir, self.port)
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        let _stopped = std::process::Command::new("bash").arg(Self::script()).args(["stop", &self.dir]).status();
    }
}

#[test]
fn a_server_restart_during_listen_loses_no_alert() {
    let cluster = OwnCluster::start("/tmp/nbcli_restart", 5493);
    let mut db = TestDb::create("listen_restart", &cluster.dsn(), true);
    db.budget("100", "0.8");
    db.sql("SELECT neon_budget.set_campaign('c1', 'Campaign One', NULL, 20)");
    let dir = db.log_dir();
    let l = Listening::start(db.dir.path(), &db.dsn(), &[]);

    db.spend("80", None); // month warning
    wait_for(30, "the first alert", || logged_count(&dir) == 1);

    // The server goes away; alerts are raised as soon as it is back, before the listener has
    // reconnected (their NOTIFY reaches nobody).
    cluster.run("stop");
    wait_for(30, "the listener to notice", || l.err().contains("connection lost") || l.err().contains("cannot connect"));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    cluster.run("start");
    let mut db2 = db.connect();
    db2.batch_execute("SELECT neon_budget.track_cost('CONTENT', 1000, 'c1', cost => 20)").unwrap(); // campaign: 3 levels; month 100%: critical, exceeded
    wait_for(60, "the alerts raised across the restart", || logged_count(&dir) == 6);
    // Printed once the catch-up is written, so possibly just after the lines above.
    wait_for(10, "the reconnection message", || l.err().contains("reconnected"));

    // And once more while it is connected again.
    cluster.run("stop");
    cluster.run("start");
    let mut db3 = db.connect();
    db3.batch_execute(
        "SELECT neon_budget.set_campaign('c2', 'Campaign Two', NULL, 1); SELECT neon_budget.track_cost('SEO', 1000, 'c2', cost => 5)",
    )
    .unwrap();
    wait_for(60, "the alerts after the second restart", || logged_count(&dir) == 9);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(l.stop(), Some(0));
    db.client = db.connect();
    assert_written_once(&mut db, &dir);
    drop(db);
    drop(cluster);
}
