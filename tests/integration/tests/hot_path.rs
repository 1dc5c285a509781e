//! track_cost's fast path: each backend updates its own slot rows with the heap API, remembers
//! their TIDs, caches rates, and skips the totals read for scopes with nothing left to send
//! or within its escrow grant (src/slot_rows.rs, src/alert_watch.rs, src/alert_grants.rs;
//! tests/integration/tests/alert_grants.rs pins the grants). These tests change what those caches depend
//! on from ANOTHER session, or undo the rows they point to, and check that nothing is stale.
use neon_budget_integration::*;
use postgres::Client;
use std::time::Duration;

const WAIT: Duration = Duration::from_millis(400);
const AT: &str = "created_at => '2024-09-10 00:00+00'";

/// A writer far below its budget needs no read; when an admin lowers the budget in another
/// session, the writer's next write must read again and alert at once.
#[test]
fn a_budget_lowered_elsewhere_is_seen_at_the_next_write() {
    let db = TestDb::new("hot_budget_elsewhere");
    let mut l = listener(&db);
    let mut admin = db.connect();
    let mut w = db.connect();
    admin.batch_execute("SELECT neon_budget.set_monthly_budget('2024-09', 1000000)").unwrap();
    track_cost(&mut w, &format!("'CONTENT', 1, cost => 1, {AT}"));
    track_cost(&mut w, &format!("'CONTENT', 1, cost => 1, {AT}"));
    admin.batch_execute("SELECT neon_budget.set_monthly_budget('2024-09', 100)").unwrap();
    assert_eq!(raw_alerts_received(&mut l, WAIT), Vec::<String>::new());
    // 2 + 78 = 80 of 100: the warning level, sent by this write.
    track_cost(&mut w, &format!("'CONTENT', 1, cost => 78, {AT}"));
    assert_eq!(alert_levels(&raw_alerts_received(&mut l, WAIT)), vec!["month:warning:80"]);
    assert_oracle(&mut w);
}

/// Same for a campaign that gets a budget after the writer cached it as unbudgeted.
#[test]
fn a_campaign_budget_set_elsewhere_is_seen_at_the_next_write() {
    let db = TestDb::new("hot_campaign_elsewhere");
    let mut l = listener(&db);
    let mut admin = db.connect();
    let mut w = db.connect();
    admin.batch_execute("SELECT neon_budget.set_monthly_budget('2024-09', 1000000)").unwrap();
    track_cost(&mut w, &format!("'SEO', 1, campaign_id => 'cmp', cost => 5, {AT}"));
    admin.batch_execute("SELECT neon_budget.set_campaign('cmp', 'Campaign', NULL, 10)").unwrap();
    assert_eq!(raw_alerts_received(&mut l, WAIT), Vec::<String>::new());
    track_cost(&mut w, &format!("'SEO', 1, campaign_id => 'cmp', cost => 3.5, {AT}"));
    assert_eq!(alert_levels(&raw_alerts_received(&mut l, WAIT)), vec!["campaign:warning:8.5"]);
}

/// A re-armed level (raise the budget, spend again) alerts again in a writer that had cached
/// it as sent.
#[test]
fn a_level_rearmed_elsewhere_alerts_again() {
    let db = TestDb::new("hot_rearm_elsewhere");
    let mut l = listener(&db);
    let mut admin = db.connect();
    let mut w = db.connect();
    admin.batch_execute("SELECT neon_budget.set_monthly_budget('2024-09', 100)").unwrap();
    track_cost(&mut w, &format!("'CONTENT', 1, cost => 85, {AT}"));
    assert_eq!(alert_levels(&raw_alerts_received(&mut l, WAIT)), vec!["month:warning:85"]);
    track_cost(&mut w, &format!("'CONTENT', 1, cost => 1, {AT}"));
    admin.batch_execute("SELECT neon_budget.set_monthly_budget('2024-09', 1000)").unwrap();
    track_cost(&mut w, &format!("'CONTENT', 1, cost => 714, {AT}"));
    assert_eq!(alert_levels(&raw_alerts_received(&mut l, WAIT)), vec!["month:warning:800"]);
}

/// The rate cache follows set_agent_rate in another session (exact costs).
#[test]
fn a_rate_changed_elsewhere_prices_the_next_call() {
    let db = TestDb::new("hot_rate_elsewhere");
    let mut admin = db.connect();
    let mut w = db.connect();
    let cost = |w: &mut Client| -> String {
        w.query_one(&format!("SELECT (neon_budget.track_cost('CONTENT', 1500, {AT})).cost::text"), &[]).unwrap().get(0)
    };
    assert_eq!(cost(&mut w), "0.06");
    // In force from before AT (a row is priced at the rate in force at its created_at).
    admin.batch_execute("SELECT neon_budget.set_agent_rate('CONTENT', 0.123, '2024-01-01+00')").unwrap();
    assert_eq!(cost(&mut w), "0.1845");
    // An agent type that appears elsewhere is usable at once, and one with no rate is refused.
    admin.batch_execute("SELECT neon_budget.set_agent_rate('NEW_AGENT', 2, '2024-01-01+00')").unwrap();
    let c: String = w.query_one(&format!("SELECT (neon_budget.track_cost('NEW_AGENT', 10, {AT})).cost::text"), &[]).unwrap().get(0);
    assert_eq!(c, "0.02");
    assert_eq!(sqlstate(w.batch_execute(&format!("SELECT neon_budget.track_cost('NO_RATE', 10, cost => 1, {AT})"))), "42704");
}

/// Rolled-back writes, savepoints, SQL-path writes of the same slot rows, a rebuild and a
/// TRUNCATE between fast-path writes: the remembered TIDs are never used stale.
#[test]
fn fast_path_survives_rollbacks_and_rewrites() {
    let mut db = TestDb::new("hot_rollbacks");
    let mut w = db.connect();
    let args = format!("'CONTENT', 1000, campaign_id => 'c1', retry_count => 2, quality_score => 0.5, {AT}");
    track_cost(&mut w, &args);
    w.batch_execute(&format!("BEGIN; SELECT neon_budget.track_cost({args}); ROLLBACK")).unwrap();
    track_cost(&mut w, &args);
    w.batch_execute(&format!(
        "BEGIN; SELECT neon_budget.track_cost({args}); SAVEPOINT s; SELECT neon_budget.track_cost({args});
         ROLLBACK TO s; SELECT neon_budget.track_cost({args}); SELECT neon_budget.track_cost({args}); COMMIT"
    ))
    .unwrap();
    // A multi-row INSERT (SQL path) from the same session rewrites its slot rows.
    w.batch_execute(
        "INSERT INTO neon_budget.billing_log (agent_type, campaign_id, tokens, cost, created_at)
         SELECT 'CONTENT', 'c1', 10, 0.5, '2024-09-11 00:00+00' FROM generate_series(1, 3)",
    )
    .unwrap();
    track_cost(&mut w, &args);
    db.client.batch_execute("SELECT neon_budget.budget_rebuild('2024-09')").unwrap();
    track_cost(&mut w, &args);
    assert_oracle(&mut db.client);
    // 7 committed track_cost calls of 0.04 + 3 rows of 0.5.
    assert_eq!(
        text(&mut db.client, "SELECT total_spent::text FROM neon_budget.monthly_budget WHERE month = '2024-09'").as_deref(),
        Some("1.78")
    );
    assert_eq!(text(&mut db.client, "SELECT retry_sum::text FROM neon_budget.agent_cost WHERE month = '2024-09'").as_deref(), Some("14"));
    db.client.batch_execute("TRUNCATE neon_budget.billing_log").unwrap();
    track_cost(&mut w, &args);
    assert_oracle(&mut db.client);
    assert_eq!(
        text(&mut db.client, "SELECT total_spent::text FROM neon_budget.monthly_budget WHERE month = '2024-09'").as_deref(),
        Some("0.04")
    );
}

/// Two writers alternate far below the warning level; the write that reaches the level
/// exactly is the one that sends it, with the exact total.
#[test]
fn the_write_that_reaches_a_level_sends_it() {
    let db = TestDb::new("hot_level_exact");
    let mut l = listener(&db);
    let mut a = db.connect();
    let mut b = db.connect();
    a.batch_execute("SELECT neon_budget.set_monthly_budget('2024-09', 100000)").unwrap();
    for i in 0..799 {
        let w = if i % 2 == 0 { &mut a } else { &mut b };
        track_cost(w, &format!("'CONTENT', 1, cost => 100, {AT}"));
    }
    assert_eq!(int(&mut a, "SELECT count(*) FROM neon_budget.alert_log"), 0);
    assert_eq!(raw_alerts_received(&mut l, WAIT), Vec::<String>::new());
    track_cost(&mut b, &format!("'CONTENT', 1, cost => 100, {AT}"));
    assert_eq!(alert_levels(&raw_alerts_received(&mut l, WAIT)), vec!["month:warning:80000"]);
    assert_oracle(&mut a);
}

/// A writer that last read the total long ago, and another that spent a lot since: neither may
/// skip the read that finds the level (a per-backend allowance would: A reads at 0.01, B spends
/// 40, A spends 39.9 and B 19.9 without reading, and 99.81 of 100 would go unreported).
#[test]
fn stale_readers_cannot_skip_a_level() {
    let db = TestDb::new("hot_stale_readers");
    let mut l = listener(&db);
    let mut a = db.connect();
    let mut b = db.connect();
    a.batch_execute("SELECT neon_budget.set_monthly_budget('2024-09', 100)").unwrap();
    track_cost(&mut a, &format!("'CONTENT', 1, cost => 0.01, {AT}"));
    track_cost(&mut b, &format!("'CONTENT', 1, cost => 40, {AT}"));
    track_cost(&mut a, &format!("'CONTENT', 1, cost => 39.9, {AT}"));
    assert_eq!(raw_alerts_received(&mut l, WAIT), Vec::<String>::new());
    track_cost(&mut b, &format!("'CONTENT', 1, cost => 19.9, {AT}"));
    assert_eq!(alert_levels(&raw_alerts_received(&mut l, WAIT)), vec!["month:warning:99.81", "month:critical:99.81"]);
    // Everything sent: further writes have nothing left to read for, and send nothing.
    track_cost(&mut a, &format!("'CONTENT', 1, cost => 0.19, {AT}"));
    assert_eq!(alert_levels(&raw_alerts_received(&mut l, WAIT)), vec!["month:exceeded:100.0"]);
    track_cost(&mut a, &format!("'CONTENT', 1, cost => 5, {AT}"));
    track_cost(&mut b, &format!("'CONTENT', 1, cost => 5, {AT}"));
    assert_eq!(raw_alerts_received(&mut l, WAIT), Vec::<String>::new());
    assert_oracle(&mut a);
}

/// budget_check and the alert read look rows up by index without SQL; keys must compare with
/// the columns' collation, not "C": in a database sorted by ICU en-US ('alpha' < 'Beta' <
/// 'gamma', where "C" puts 'Beta' first) every campaign must still be found.
#[test]
fn lookups_follow_the_database_collation() {
    use postgres::{Client, NoTls};
    let name = "nbt_hot_icu";
    let mut admin = Client::connect(&format!("{} dbname=postgres", dsn()), NoTls).unwrap();
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"))
        .unwrap();
    let mut c = Client::connect(&format!("{} dbname={name}", dsn()), NoTls).unwrap();
    let mut l = Client::connect(&format!("{} dbname={name}", dsn()), NoTls).unwrap();
    l.batch_execute("LISTEN neon_budget_alerts").unwrap();
    c.batch_execute("CREATE EXTENSION neon_budget").unwrap();
    assert_eq!(
        text(&mut c, "SELECT datcollate || '/' || daticulocale FROM pg_database WHERE datname = current_database()").as_deref(),
        Some("C.UTF-8/en-US")
    );
    let ids = ["alpha", "Beta", "gamma", "Delta", "epsilon", "Zeta", "eta", "Theta", "iota"];
    for (i, id) in ids.iter().enumerate() {
        c.batch_execute(&format!("SELECT neon_budget.set_campaign('{id}', '{id}', NULL, {})", 10 + i)).unwrap();
    }
    for (i, id) in ids.iter().enumerate() {
        let budget = 10 + i;
        // 80% of each campaign's budget: its warning, sent by this write.
        track_cost(&mut c, &format!("'SEO', 1, campaign_id => '{id}', cost => {budget} * 0.8, created_at => now()"));
        let ok: bool = c
            .query_one(
                &format!(
                    "SELECT campaign_budget = {budget} AND campaign_spent = {budget} * 0.8 AND status = 'warning'
                       FROM neon_budget.budget_check('{id}')"
                ),
                &[],
            )
            .unwrap()
            .get(0);
        assert!(ok, "budget_check('{id}') did not find the campaign's budget and spend");
    }
    let got = raw_alerts_received(&mut l, WAIT);
    assert_eq!(got.len(), ids.len(), "one campaign warning each: {got:?}");
    assert_oracle(&mut c);
    drop(c);
    drop(l);
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).unwrap();
}

/// budget_check caches month settings and campaign budgets per connection; a change made in
/// another session is seen by the next call (and a REPEATABLE READ transaction keeps its
/// snapshot's view).
#[test]
fn budget_check_sees_settings_changed_elsewhere() {
    let db = TestDb::new("hot_check_settings");
    let mut a = db.connect();
    let mut admin = db.connect();
    let check = |c: &mut Client| -> String {
        c.query_one(
            "SELECT total_budget::text || '/' || COALESCE(campaign_budget::text, '-') || '/' || override_enabled::text
               FROM neon_budget.budget_check('c1')",
            &[],
        )
        .unwrap()
        .get(0)
    };
    admin.batch_execute("SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 100); SELECT neon_budget.set_campaign('c1', 'C1', NULL, 10)").unwrap();
    assert_eq!(check(&mut a), "100/10/false");
    assert_eq!(check(&mut a), "100/10/false");
    admin.batch_execute("SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 50)").unwrap();
    assert_eq!(check(&mut a), "50/10/false");
    admin.batch_execute("SELECT neon_budget.set_campaign('c1', 'C1', NULL, 20)").unwrap();
    assert_eq!(check(&mut a), "50/20/false");
    admin.batch_execute("SELECT neon_budget.set_budget_override(true, 'launch')").unwrap();
    assert_eq!(check(&mut a), "50/20/true");
    a.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ").unwrap();
    assert_eq!(check(&mut a), "50/20/true");
    admin.batch_execute("SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 70)").unwrap();
    assert_eq!(check(&mut a), "50/20/true");
    a.batch_execute("COMMIT").unwrap();
    assert_eq!(check(&mut a), "70/20/true");
}
