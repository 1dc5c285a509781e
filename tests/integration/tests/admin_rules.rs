//! Admin correctness (issue #10): setters that keep what they were not given, threshold changes
//! that re-arm every scope that depends on them, reservations with an owner, identifier limits
//! and the created_at window on every entry path, restore mode that no writer can turn on, and
//! COPY rows priced like track_cost. Each defect of the issue has its example and a sibling.
use neon_budget_integration::*;
use postgres::Client;
use std::io::Write;
use std::time::Duration;

fn levels_logged(c: &mut Client, scope: &str) -> Vec<String> {
    c.query(
        "SELECT level || ' ' || COALESCE(campaign_id, '') || ' ' || spent::text FROM neon_budget.alert_log
          WHERE scope = $1 ORDER BY id",
        &[&scope],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Defect 2: `set_campaign('camp-1', 'Spring launch v2')` used to set the budget and the type to
/// NULL, so $80 spent against a $50 campaign was allowed. An omitted argument keeps the stored
/// value; lifting a cap is the explicit, audited `clear_campaign_budget`.
#[test]
fn a_rename_keeps_the_campaigns_cap() {
    let mut db = TestDb::new("admin_rename");
    let c = &mut db.client;
    c.batch_execute(
        "SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 1000);
         SELECT neon_budget.set_campaign('camp-1', 'Spring launch', 'CONTENT_GENERATION', 50);
         SELECT neon_budget.track_cost('CONTENT', 1000, campaign_id => 'camp-1', cost => 80);
         SELECT neon_budget.set_campaign('camp-1', 'Spring launch v2');",
    )
    .unwrap();
    assert_eq!(
        text(c, "SELECT name || '|' || campaign_type || '|' || monthly_budget FROM neon_budget.campaign").as_deref(),
        Some("Spring launch v2|CONTENT_GENERATION|50")
    );
    assert_eq!(
        text(c, "SELECT can_execute || ' ' || status || ' ' || campaign_budget FROM neon_budget.budget_check('camp-1')").as_deref(),
        Some("false exceeded 50")
    );
    // The type alone, then the budget alone: each keeps the others.
    c.batch_execute("SELECT neon_budget.set_campaign('camp-1', campaign_type => 'EMAIL_MARKETING')").unwrap();
    c.batch_execute("SELECT neon_budget.set_campaign('camp-1', monthly_budget => 200)").unwrap();
    assert_eq!(
        text(c, "SELECT name || '|' || campaign_type || '|' || monthly_budget FROM neon_budget.campaign").as_deref(),
        Some("Spring launch v2|EMAIL_MARKETING|200")
    );
    // Clearing is explicit and audited: old and new budget on record.
    c.batch_execute("SELECT neon_budget.set_campaign('camp-1', monthly_budget => 50)").unwrap();
    c.batch_execute("SELECT neon_budget.clear_campaign_budget('camp-1')").unwrap();
    assert_eq!(text(c, "SELECT can_execute::text FROM neon_budget.budget_check('camp-1')").as_deref(), Some("true"));
    assert_eq!(
        text(
            c,
            "SELECT (old_value->>'monthly_budget') || ' -> ' || COALESCE(new_value->>'monthly_budget', 'null') || ' by ' || actor
               FROM neon_budget.audit_log WHERE action = 'clear_campaign_budget'"
        )
        .as_deref(),
        Some("50 -> null by postgres")
    );
    // A new campaign needs a name; an unknown one cannot be cleared. Neither writes anything.
    rejects(c, "SELECT neon_budget.set_campaign('camp-2', campaign_type => 'X', monthly_budget => 5)", "22004");
    rejects(c, "SELECT neon_budget.clear_campaign_budget('camp-2')", "42704");
    assert_oracle(c);
}

/// Sibling of defect 2 in the other setters: `set_monthly_budget` with only a threshold keeps
/// the budget, with only a budget keeps the threshold; turning the override off without a
/// reason keeps the reason on record.
#[test]
fn month_setters_keep_what_they_were_not_given() {
    let mut db = TestDb::new("admin_month_keep");
    let c = &mut db.client;
    c.batch_execute(
        "SELECT neon_budget.set_monthly_budget('2024-03', 500, 0.6);
         SELECT neon_budget.set_monthly_budget('2024-03', alert_threshold => 0.9);",
    )
    .unwrap();
    assert_eq!(
        text(c, "SELECT total_budget || ' ' || alert_threshold FROM neon_budget.monthly_budget_setting WHERE month = '2024-03'").as_deref(),
        Some("500 0.9")
    );
    c.batch_execute("SELECT neon_budget.set_monthly_budget('2024-03', 750)").unwrap();
    assert_eq!(
        text(c, "SELECT total_budget || ' ' || alert_threshold FROM neon_budget.monthly_budget_setting WHERE month = '2024-03'").as_deref(),
        Some("750 0.9")
    );
    // A month not used yet takes the GUC defaults for what is left out.
    c.batch_execute("SELECT neon_budget.set_monthly_budget('2024-04', alert_threshold => 0.5)").unwrap();
    assert_eq!(
        text(c, "SELECT total_budget || ' ' || alert_threshold FROM neon_budget.monthly_budget_setting WHERE month = '2024-04'").as_deref(),
        Some("1000 0.5")
    );
    c.batch_execute(
        "SELECT neon_budget.set_budget_override(true, 'incident 42');
         SELECT neon_budget.set_budget_override(false);",
    )
    .unwrap();
    assert_eq!(
        text(c, "SELECT override_enabled || ' ' || override_reason FROM neon_budget.monthly_budget_setting WHERE month = neon_budget._current_month()")
            .as_deref(),
        Some("false incident 42")
    );
}

/// Defect 3: month threshold 0.5, a $100 campaign at $60 (campaign warning sent), the threshold
/// moved to 0.9 and spend taken to $91: the campaign's warning fires again, as the month's does.
#[test]
fn a_threshold_change_rearms_campaign_alerts() {
    let mut db = TestDb::new("admin_threshold_rearm");
    let mut l = listener(&db);
    let c = &mut db.client;
    c.batch_execute(
        "SELECT neon_budget.set_monthly_budget('2024-05', 1000, 0.5);
         SELECT neon_budget.set_campaign('camp', 'Camp', NULL, 100);
         SELECT neon_budget.track_cost('CONTENT', 1, campaign_id => 'camp', cost => 60, created_at => '2024-05-02 10:00+00');",
    )
    .unwrap();
    assert_eq!(levels_logged(c, "campaign"), vec!["warning camp 60"]);
    c.batch_execute("SELECT neon_budget.set_monthly_budget('2024-05', alert_threshold => 0.9)").unwrap();
    assert_eq!(
        text(c, "SELECT levels_sent::text FROM neon_budget.alert_state WHERE scope = 'campaign' AND month = '2024-05'").as_deref(),
        Some("{}"),
        "$60 is below the new 90% level: the warning is re-armed"
    );
    c.batch_execute("SELECT neon_budget.track_cost('CONTENT', 1, campaign_id => 'camp', cost => 31, created_at => '2024-05-03 10:00+00')")
        .unwrap();
    assert_eq!(levels_logged(c, "campaign"), vec!["warning camp 60", "warning camp 91"]);
    let got = alerts_received(&mut l, Duration::from_millis(500));
    let campaign: Vec<String> = got.iter().filter(|a| a["scope"] == "campaign").map(|a| format!("{} {}", a["level"], a["spent"])).collect();
    assert_eq!(campaign, vec!["\"warning\" 60", "\"warning\" 91"]);
}

/// Sibling of defect 3: a change that itself makes a level reached sends it when the change
/// commits, for the campaign scopes of the month too (not at the next write).
#[test]
fn a_lowered_threshold_alerts_at_its_own_commit() {
    let mut db = TestDb::new("admin_threshold_now");
    let mut l = listener(&db);
    let c = &mut db.client;
    c.batch_execute(
        "SELECT neon_budget.set_monthly_budget('2024-06', 1000, 0.9);
         SELECT neon_budget.set_campaign('a', 'A', NULL, 100);
         SELECT neon_budget.set_campaign('b', 'B', NULL, 1000);
         SELECT neon_budget.track_cost('CONTENT', 1, campaign_id => 'a', cost => 60, created_at => '2024-06-02 10:00+00');
         SELECT neon_budget.track_cost('CONTENT', 1, campaign_id => 'b', cost => 70, created_at => '2024-06-02 11:00+00');",
    )
    .unwrap();
    assert!(levels_logged(c, "campaign").is_empty());
    assert!(alerts_received(&mut l, Duration::from_millis(300)).is_empty());
    c.batch_execute("BEGIN; SELECT neon_budget.set_monthly_budget('2024-06', alert_threshold => 0.5)").unwrap();
    assert!(alerts_received(&mut l, Duration::from_millis(300)).is_empty(), "nothing is sent before the change commits");
    c.batch_execute("COMMIT").unwrap();
    assert_eq!(levels_logged(c, "campaign"), vec!["warning a 60"]);
    let got = alerts_received(&mut l, Duration::from_millis(500));
    let levels: Vec<String> = got.iter().map(|a| format!("{} {} {}", a["scope"], a["campaign_id"], a["level"])).collect();
    assert_eq!(levels, vec!["\"campaign\" \"a\" \"warning\""]);
    // Raising the threshold back re-arms it; a campaign budget change re-arms and re-evaluates
    // that campaign in every month it has spend in.
    c.batch_execute("SELECT neon_budget.set_campaign('b', monthly_budget => 120)").unwrap();
    assert_eq!(levels_logged(c, "campaign"), vec!["warning a 60", "warning b 70"]);
}

/// Defect 9: only the role that made a reservation, or an admin, may release or settle it.
#[test]
fn reservations_have_an_owner() {
    let mut db = TestDb::new("admin_reservation_owner");
    db.client.batch_execute("SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 100)").unwrap();
    let mut app1 = login_role(&mut db, "nbt_res_app1", Some("neon_budget_writer"));
    let mut app2 = login_role(&mut db, "nbt_res_app2", Some("neon_budget_writer"));
    let mut admin = login_role(&mut db, "nbt_res_admin", Some("neon_budget_admin"));
    let r1 = int(&mut app1, "SELECT neon_budget.budget_reserve('CONTENT', 1000, ttl => '1 hour')");
    let r2 = int(&mut app1, "SELECT neon_budget.budget_reserve('CONTENT', 1000, ttl => '1 hour')");
    assert_eq!(
        text(&mut db.client, "SELECT string_agg(DISTINCT created_by, ',') FROM neon_budget.reservation").as_deref(),
        Some("nbt_res_app1")
    );
    let before = table_counts(&mut db.client);
    assert_eq!(sqlstate(app2.query(&format!("SELECT neon_budget.budget_release({r1})"), &[])), "42501");
    // Settling through track_cost is refused the same way, and records nothing.
    assert_eq!(sqlstate(app2.query(&format!("SELECT neon_budget.track_cost('CONTENT', 900, reservation_id => {r1})"), &[])), "42501");
    assert_eq!(table_counts(&mut db.client), before, "a refused release or settle wrote something");
    assert_eq!(text(&mut db.client, "SELECT reserved::text FROM neon_budget.budget_check()").as_deref(), Some("0.08"));
    // The owner and an admin may.
    assert!(boolean(&mut app1, &format!("SELECT neon_budget.budget_release({r1})")));
    assert!(boolean(&mut admin, &format!("SELECT neon_budget.budget_release({r2})")));
    assert_eq!(text(&mut db.client, "SELECT reserved::text FROM neon_budget.budget_check()").as_deref(), Some("0"));
    // SET ROLE counts: a session of app1's that becomes app2 acts as app2.
    let r3 = int(&mut app1, "SELECT neon_budget.budget_reserve('CONTENT', 1000, ttl => '1 hour')");
    db.client.batch_execute("GRANT nbt_res_app2 TO nbt_res_app1").unwrap();
    app1.batch_execute("SET ROLE nbt_res_app2").unwrap();
    assert_eq!(sqlstate(app1.query(&format!("SELECT neon_budget.budget_release({r3})"), &[])), "42501");
    app1.batch_execute("RESET ROLE").unwrap();
    assert_eq!(
        text(&mut app1, &format!("SELECT (neon_budget.track_cost('CONTENT', 900, reservation_id => {r3})).cost::text")).as_deref(),
        Some("0.036")
    );
    assert_eq!(text(&mut db.client, "SELECT reserved::text FROM neon_budget.budget_check()").as_deref(), Some("0"));
}

/// Defect 6: a 3,000-character campaign_id failed mid-write with 54000 from an index while
/// budget_check allowed it. Every entry path refuses identifiers past their documented limit
/// with 22001 and writes nothing; 200 characters (the limit) work everywhere.
#[test]
fn identifiers_have_limits_on_every_path() {
    let mut db = TestDb::new("admin_id_limits");
    let c = &mut db.client;
    let long = "x".repeat(3000);
    let at_limit = "é".repeat(200);
    for sql in [
        format!("SELECT neon_budget.track_cost('CONTENT', 1, campaign_id => '{long}')"),
        format!("SELECT * FROM neon_budget.budget_check('{long}')"),
        format!("SELECT neon_budget.budget_reserve('CONTENT', 1, '{long}')"),
        format!("SELECT neon_budget.set_campaign('{long}', 'Long')"),
        format!("SELECT neon_budget.clear_campaign_budget('{long}')"),
        format!("INSERT INTO neon_budget.billing_log (agent_type, tokens, cost, campaign_id) VALUES ('CONTENT', 1, 1, '{long}')"),
        // Siblings: the other identifiers.
        format!("SELECT neon_budget.track_cost('CONTENT', 1, execution_id => '{long}')"),
        format!("INSERT INTO neon_budget.billing_log (agent_type, tokens, cost, execution_id) VALUES ('CONTENT', 1, 1, '{long}')"),
        format!("SELECT neon_budget.set_agent_rate('{}', 0.01)", "A".repeat(101)),
        format!("SELECT * FROM neon_budget.budget_check(agent_type => '{}', estimated_tokens => 1)", "A".repeat(101)),
        format!("SELECT neon_budget.set_campaign('ok', '{}')", "n".repeat(201)),
        format!("SELECT neon_budget.set_budget_override(true, '{}')", "r".repeat(1001)),
    ] {
        rejects(c, &sql, "22001");
    }
    // COPY goes through the same trigger.
    let mut w = c.copy_in("COPY neon_budget.billing_log (agent_type, tokens, cost, campaign_id) FROM STDIN").unwrap();
    writeln!(w, "CONTENT\t1\t1\t{long}").unwrap();
    let err = w.finish().unwrap_err();
    assert_eq!(err.code().map(|s| s.code()), Some("22001"), "{err}");
    // At the limit, in characters (400 bytes of UTF-8), every path works.
    c.batch_execute(&format!(
        "SELECT neon_budget.set_campaign('{at_limit}', 'At the limit', NULL, 10);
         SELECT neon_budget.track_cost('CONTENT', 1000, campaign_id => '{at_limit}', execution_id => '{at_limit}');
         INSERT INTO neon_budget.billing_log (agent_type, tokens, cost, campaign_id) VALUES ('CONTENT', 1, 1, '{at_limit}');"
    ))
    .unwrap();
    assert_eq!(text(c, &format!("SELECT campaign_spent::text FROM neon_budget.budget_check('{at_limit}')")).as_deref(), Some("1.04"));
    assert_oracle(c);
}

/// Defect 7: epoch milliseconds passed as seconds gave a raw 23514 and `2999-01-01` was
/// accepted. A created_at further ahead of the clock than `neon_budget.max_clock_skew` (a
/// superuser setting, default 300 s) is 22008 on every entry path.
#[test]
fn created_at_in_the_future_is_refused() {
    let mut db = TestDb::new("admin_future");
    let c = &mut db.client;
    for sql in [
        "SELECT neon_budget.track_cost('CONTENT', 1, created_at => to_timestamp(1764460800000))",
        "SELECT neon_budget.track_cost('CONTENT', 1, created_at => '2999-01-01')",
        "SELECT neon_budget.track_cost('CONTENT', 1, execution_id => 'e1', created_at => '2999-01-01')",
        "SELECT neon_budget.track_cost('CONTENT', 1, created_at => clock_timestamp() + interval '10 minutes')",
        "INSERT INTO neon_budget.billing_log (agent_type, tokens, cost, created_at) VALUES ('CONTENT', 1, 1, to_timestamp(1764460800000))",
        "INSERT INTO neon_budget.billing_log (agent_type, tokens, cost, created_at, billing_month) VALUES ('CONTENT', 1, 1, '2999-01-01', '2999-01')",
    ] {
        rejects(c, sql, "22008");
    }
    // Within the skew it is accepted.
    assert_eq!(
        int(
            c,
            "SELECT count(*) FROM (SELECT neon_budget.track_cost('CONTENT', 1, created_at => clock_timestamp() + interval '4 minutes')) t"
        ),
        1
    );
    // The window is a superuser setting: -1 accepts any time.
    c.batch_execute("SET neon_budget.max_clock_skew = -1").unwrap();
    assert_eq!(
        text(c, "SELECT (neon_budget.track_cost('CONTENT', 1, created_at => '2999-01-01 12:00+00')).billing_month").as_deref(),
        Some("2999-01")
    );
    // A writer cannot (once the library is loaded in its session: before, PostgreSQL keeps a
    // placeholder and drops the value with a warning at load), and stays inside the window.
    let mut writer = login_role(&mut db, "nbt_future_writer", Some("neon_budget_writer"));
    writer.batch_execute("SELECT * FROM neon_budget.budget_check()").unwrap();
    assert_eq!(sqlstate(writer.batch_execute("SET neon_budget.max_clock_skew = -1")), "42501");
    writer.batch_execute("SET neon_budget.max_clock_skew TO DEFAULT").unwrap_or(());
    assert_eq!(sqlstate(writer.batch_execute("SELECT neon_budget.track_cost('CONTENT', 1, created_at => '2999-01-01')")), "22008");
}

/// Defect 8: any writer could `SET application_name = 'pg_restore'` and skip month rows and
/// alerts. Now only a superuser session with row_security off (as pg_dump and pg_restore set
/// it) restores; a writer with that application name (and row_security off) writes as usual.
#[test]
fn restore_mode_is_not_the_callers_to_set() {
    let mut db = TestDb::new("admin_restore_mode");
    db.client.batch_execute("SELECT neon_budget.set_monthly_budget('2024-07', 10, 0.5)").unwrap();
    let mut l = listener(&db);
    let mut writer = login_role(&mut db, "nbt_restore_writer", Some("neon_budget_writer"));
    writer
        .batch_execute(
            "SET application_name = 'pg_restore'; SET row_security = off;
             SELECT neon_budget.track_cost('CONTENT', 1, cost => 6, created_at => '2024-07-02 10:00+00');
             SELECT neon_budget.track_cost('CONTENT', 1, cost => 1, created_at => '2024-08-02 10:00+00');",
        )
        .unwrap();
    let c = &mut db.client;
    assert_eq!(levels_logged(c, "month"), vec!["warning  6"]);
    assert_eq!(alerts_received(&mut l, Duration::from_millis(500)).len(), 1);
    assert_eq!(
        int(c, "SELECT count(*) FROM neon_budget.monthly_budget_setting WHERE month = '2024-08'"),
        1,
        "the writer's first use of a month creates its settings row"
    );
    // Sibling: a superuser session as pg_restore sets it (row_security off) is a restore,
    // whatever its application name: no alerts, no month rows.
    c.batch_execute(
        "SET application_name = 'my_loader'; SET row_security = off;
         SELECT neon_budget.track_cost('CONTENT', 1, cost => 9, created_at => '2024-07-03 10:00+00');
         SELECT neon_budget.track_cost('CONTENT', 1, cost => 1, created_at => '2024-09-02 10:00+00');
         RESET row_security;",
    )
    .unwrap();
    assert_eq!(levels_logged(c, "month"), vec!["warning  6"]);
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.monthly_budget_setting WHERE month = '2024-09'"), 0);
    // The dump's own settings row follows; then every aggregate agrees with the log.
    c.batch_execute("INSERT INTO neon_budget.monthly_budget_setting (month, total_budget, alert_threshold) VALUES ('2024-09', 50, 0.8)")
        .unwrap();
    assert_oracle(c);
}

/// Defect 11: a COPY without a cost column failed with 23502. A row without a cost is priced
/// from its tokens at the agent type's rate exactly as track_cost prices it, on COPY and INSERT.
#[test]
fn copy_and_insert_price_rows_without_a_cost() {
    let mut db = TestDb::new("admin_copy_price");
    let c = &mut db.client;
    // In force from before the rows' times (a rate applies from its effective_from on).
    c.batch_execute("SELECT neon_budget.set_agent_rate('ODD', 0.0123, '2024-01-01+00')").unwrap();
    let mut w =
        c.copy_in("COPY neon_budget.billing_log (agent_type, tokens, campaign_id, created_at) FROM STDIN WITH (FORMAT csv)").unwrap();
    w.write_all(b"CONTENT,1500,c1,2024-02-01 10:00+00\nODD,777,c1,2024-02-02 10:00+00\nSEO,0,,2024-02-03 10:00+00\n").unwrap();
    assert_eq!(w.finish().unwrap(), 3);
    c.batch_execute(
        "INSERT INTO neon_budget.billing_log (agent_type, tokens, campaign_id, created_at)
         VALUES ('DESIGN', 3, 'c1', '2024-02-04 10:00+00'), ('ODD', 1, NULL, '2024-02-05 10:00+00')",
    )
    .unwrap();
    let tracked = text(c, "SELECT (neon_budget.track_cost('ODD', 777, created_at => '2024-02-06 10:00+00')).cost::text");
    assert_eq!(tracked.as_deref(), Some("0.0095571"));
    let costs: Vec<String> = c
        .query("SELECT agent_type || ' ' || cost::text FROM neon_budget.billing_log ORDER BY created_at", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(costs, vec!["CONTENT 0.06", "ODD 0.0095571", "SEO 0", "DESIGN 0.00021", "ODD 0.0000123", "ODD 0.0095571"]);
    assert_eq!(text(c, "SELECT total_cost::text FROM neon_budget.campaign_cost WHERE campaign_id = 'c1'").as_deref(), Some("0.0697671"));
    assert_oracle(c);
    // An agent type without a rate cannot be priced: 42704, nothing written.
    rejects(c, "INSERT INTO neon_budget.billing_log (agent_type, tokens) VALUES ('NO_SUCH_AGENT', 10)", "42704");
}

/// Report polish found with issue #10: no "Campaign Campaign A", an over-budget campaign is not
/// told it "will be blocked at 100%", names are escaped only where Markdown would read them as
/// structure, and the md report works in a client encoding without emoji (WIN1252).
#[test]
fn report_wording_escaping_and_client_encoding() {
    let mut db = TestDb::new("admin_report_polish");
    let c = &mut db.client;
    c.batch_execute(
        "SELECT neon_budget.set_monthly_budget('2024-01', 1000);
         SELECT neon_budget.set_campaign('a', 'Campaign A', 'CONTENT_GENERATION', 10);
         SELECT neon_budget.set_campaign('b', 'Spring (no cap)', 'AD_OPTIMIZATION', 100);
         SELECT neon_budget.track_cost('CONTENT', 1, campaign_id => 'a', cost => 11, created_at => '2024-01-05 10:00+00');
         SELECT neon_budget.track_cost('CONTENT', 1, campaign_id => 'b', cost => 85, created_at => '2024-01-06 10:00+00');",
    )
    .unwrap();
    let md = text(c, "SELECT neon_budget.budget_report('2024-01')").unwrap();
    assert!(md.contains("\n### Campaign A (CONTENT_GENERATION)\n"), "{md}");
    assert!(md.contains("\n### Spring (no cap) (AD_OPTIMIZATION)\n"), "{md}");
    assert!(
        md.contains("\n- Campaign A (CONTENT_GENERATION) is at 110.0% of its budget: it is over budget, and its executions are blocked unless the override is on.\n"),
        "{md}"
    );
    assert!(md.contains("\n- Campaign Spring (no cap) (AD_OPTIMIZATION) is at 85.0% of its budget: it will be blocked at 100%.\n"), "{md}");
    assert!(!md.contains("Campaign Campaign"), "{md}");
    c.batch_execute("SET client_encoding = 'WIN1252'").unwrap();
    let plain = text(c, "SELECT neon_budget.budget_report('2024-01')").unwrap();
    c.batch_execute("RESET client_encoding").unwrap();
    let headings: Vec<&str> = plain.lines().filter(|l| l.starts_with("## ")).collect();
    assert_eq!(headings, vec!["## Monthly Overview", "## Campaign Breakdown", "## Agent Usage", "## Cost Optimization Suggestions"]);
    assert_eq!(
        plain.replace("## ", ""),
        md.replace("## 📊 ", "").replace("## 🎯 ", "").replace("## 🤖 ", "").replace("## 💡 ", "").replace("## ", "")
    );
}

/// Defect 5: `track_cost(..., execution_id => 'evt-1')`, `anonymize_before(...)`, then the same
/// call again was counted twice. Retention keeps a keyed digest of the id instead of the id: the
/// retry records nothing and returns the anonymized row; after `purge_before` it returns NULL.
#[test]
fn retention_keeps_idempotency() {
    let mut db = TestDb::new("admin_retention_idem");
    let c = &mut db.client;
    let call = |id: &str| {
        format!("SELECT (t).id FROM (SELECT neon_budget.track_cost('CONTENT', 1000, campaign_id => 'c', execution_id => '{id}', created_at => '2024-01-10 10:00+00') t) x")
    };
    let first: i64 = c.query_one(&call("evt-1"), &[]).unwrap().get(0);
    c.batch_execute(&call("evt-2")).unwrap();
    assert_eq!(int(c, "SELECT neon_budget.anonymize_before('2024-02-01')"), 2);
    let ids: Vec<String> =
        c.query("SELECT execution_id FROM neon_budget.billing_log ORDER BY id", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    for id in &ids {
        assert!(id.starts_with("nb-anon:") && id.len() == 8 + 64 && !id.contains("evt"), "{id}");
    }
    assert_ne!(ids[0], ids[1]);
    // The retry records nothing and returns the anonymized row.
    let again: i64 = c.query_one(&call("evt-1"), &[]).unwrap().get(0);
    assert_eq!(again, first);
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.billing_log"), 2);
    assert_eq!(text(c, "SELECT total_spent::text FROM neon_budget.monthly_budget WHERE month = '2024-01'").as_deref(), Some("0.08"));
    // A second anonymize changes nothing more.
    assert_eq!(int(c, "SELECT neon_budget.anonymize_before('2024-02-01')"), 0);
    // After purge_before the retry returns NULL and still records nothing.
    assert_eq!(int(c, "SELECT neon_budget.purge_before('2024-02-01')"), 2);
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.purged_execution_id"), 2);
    assert_eq!(
        text(c, "SELECT COALESCE((neon_budget.track_cost('CONTENT', 1000, execution_id => 'evt-2', created_at => '2024-01-10 10:00+00')).id::text, 'null')").as_deref(),
        Some("null")
    );
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.billing_log"), 0);
    assert_eq!(text(c, "SELECT total_spent::text FROM neon_budget.monthly_budget WHERE month = '2024-01'").as_deref(), Some("0.08"));
    // Sibling: the other entry paths refuse such an id (23505) and write nothing; an id of the
    // digest form is not the caller's to send (22023).
    rejects(c, "INSERT INTO neon_budget.billing_log (agent_type, tokens, cost, execution_id) VALUES ('CONTENT', 1, 1, 'evt-1')", "23505");
    rejects(c, "INSERT INTO neon_budget.billing_log (agent_type, tokens, cost, execution_id) VALUES ('CONTENT', 1, 1, 'evt-2')", "23505");
    let mut w = c.copy_in("COPY neon_budget.billing_log (agent_type, tokens, cost, execution_id) FROM STDIN").unwrap();
    w.write_all(b"CONTENT\t1\t1\tevt-1\n").unwrap();
    assert_eq!(w.finish().unwrap_err().code().map(|s| s.code()), Some("23505"));
    let digest = ids[0].clone();
    rejects(c, &format!("SELECT neon_budget.track_cost('CONTENT', 1, execution_id => '{digest}')"), "22023");
    // A new id still records.
    c.batch_execute(&call("evt-3")).unwrap();
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.billing_log"), 1);
    // The key is the owner's alone.
    let mut admin = login_role(&mut db, "nbt_retention_admin", Some("neon_budget_admin"));
    assert_eq!(sqlstate(admin.query("SELECT * FROM neon_budget._execution_id_key", &[])), "42501");
    assert_eq!(int(&mut admin, "SELECT count(*) FROM neon_budget.purged_execution_id"), 2);
}

/// Defect 4: 31 daily executions in 2026-10, `purge_before('2026-10-20')`: the JSON total stayed
/// 124 but `daily` summed to 48 (CSV the same). The per-day aggregate keeps every day's figures
/// through retention, rebuild and restore of the purged sums.
#[test]
fn daily_figures_survive_retention() {
    let mut db = TestDb::new("admin_daily_retention");
    let c = &mut db.client;
    c.batch_execute(
        "SELECT neon_budget.track_cost('CONTENT', 100000, cost => 4, execution_id => 'd' || g,
                                       created_at => ('2026-10-' || lpad(g::text, 2, '0') || ' 12:00+00')::timestamptz)
           FROM generate_series(1, 31) g;",
    )
    .unwrap();
    let daily_sum = |c: &mut Client| {
        text(
            c,
            "SELECT (r->'overview'->>'total_spent') || ' ' || (SELECT sum((d->>'cost')::numeric)::text FROM jsonb_array_elements(r->'daily') d)
                    || ' ' || (SELECT count(*) FROM jsonb_array_elements(r->'daily') d WHERE (d->>'cost')::numeric = 4)
               FROM (SELECT neon_budget.budget_report('2026-10', 'json')::jsonb AS r) x",
        )
        .unwrap()
    };
    let csv_days = |c: &mut Client| {
        let csv = text(c, "SELECT neon_budget.budget_report('2026-10', 'csv')").unwrap();
        csv.lines().filter(|l| l.starts_with("day,")).map(|l| l.split(',').nth(4).unwrap().parse::<i64>().unwrap()).sum::<i64>()
    };
    assert_eq!(daily_sum(c), "124 124 31");
    assert_eq!(int(c, "SELECT neon_budget.purge_before('2026-10-20')"), 19);
    assert_eq!(daily_sum(c), "124 124 31");
    assert_eq!(csv_days(c), 124);
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.daily_cost WHERE month = '2026-10'"), 31);
    // Sibling: budget_rebuild of the month recomputes the days from the log plus the purged
    // sums, budget_verify agrees, and anonymize changes no day.
    c.batch_execute("UPDATE neon_budget._day_spend SET cost = cost + 1 WHERE billing_day = '2026-10-03'").unwrap();
    assert_eq!(
        text(c, "SELECT aggregate || ' ' || key FROM neon_budget.budget_verify('2026-10')").as_deref(),
        Some("daily_cost 2026-10-03")
    );
    c.batch_execute("SELECT neon_budget.budget_rebuild('2026-10'); SELECT neon_budget.anonymize_before('2026-10-25')").unwrap();
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.budget_verify()"), 0);
    assert_eq!(daily_sum(c), "124 124 31");
}
