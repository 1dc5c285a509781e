//! Roles and privileges (issue 4): least privilege per role, SECURITY DEFINER functions with a
//! pinned search_path that a caller's objects cannot hijack, and no task/metadata in alerts or
//! the audit log.
use neon_budget_integration::*;
use postgres::Client;

fn counts(c: &mut Client) -> Vec<i64> {
    ["billing_log", "audit_log", "alert_log", "campaign", "monthly_budget_setting", "agent_rate"]
        .iter()
        .map(|t| int(c, &format!("SELECT count(*) FROM neon_budget.{t}")))
        .collect()
}

#[test]
fn each_role_can_do_what_it_should_and_nothing_more() {
    let mut db = TestDb::new("priv_roles");
    db.client
        .batch_execute(
            "SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 100);
             SELECT neon_budget.set_campaign('c1', 'Campaign one', 'TEST', 50);",
        )
        .unwrap();
    let mut nobody = login_role(&mut db, "nbt_priv_nobody", None);
    let mut reader = login_role(&mut db, "nbt_priv_reader", Some("neon_budget_reader"));
    let mut writer = login_role(&mut db, "nbt_priv_writer", Some("neon_budget_writer"));
    let mut admin = login_role(&mut db, "nbt_priv_admin", Some("neon_budget_admin"));

    // PUBLIC gets nothing.
    for sql in [
        "SELECT * FROM neon_budget.budget_check()",
        "SELECT * FROM neon_budget.monthly_overview",
        "SELECT neon_budget.track_cost('CONTENT', 10)",
    ] {
        assert_eq!(sqlstate(nobody.query(sql, &[])), "42501", "{sql}");
    }

    // Reader: views, budget_check, budget_report; not track_cost.
    assert_eq!(text(&mut reader, "SELECT status FROM neon_budget.budget_check('c1')").as_deref(), Some("ok"));
    assert!(text(&mut reader, "SELECT neon_budget.budget_report()").unwrap().contains("- Total Budget: $100.00"));
    assert_eq!(int(&mut reader, "SELECT count(*) FROM neon_budget.monthly_overview"), 1);
    assert_eq!(sqlstate(reader.query("SELECT neon_budget.track_cost('CONTENT', 10)", &[])), "42501");
    // Readers follow alerts (neon-budget listen): alert_log carries no task or metadata.
    assert_eq!(int(&mut reader, "SELECT count(*) FROM neon_budget.alert_log"), 0);
    assert_eq!(sqlstate(reader.query("SELECT * FROM neon_budget.audit_log", &[])), "42501");

    // Writer: track_cost and reservations work...
    assert_eq!(
        text(&mut writer, "SELECT (neon_budget.track_cost('CONTENT', 1000, campaign_id => 'c1')).cost::text").as_deref(),
        Some("0.04")
    );
    assert!(int(&mut writer, "SELECT neon_budget.budget_reserve('CONTENT', 1000, 'c1')") > 0);
    // ...and each forbidden thing fails with 42501 and writes nothing.
    let before = counts(&mut db.client);
    for sql in [
        "UPDATE neon_budget.billing_log SET cost = 0",
        "DELETE FROM neon_budget.billing_log",
        "INSERT INTO neon_budget.billing_log (agent_type, tokens, cost) VALUES ('CONTENT', 1, 1)",
        "SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 1000000)",
        "SELECT neon_budget.set_campaign('c1', 'x', 'y', 1000000)",
        "SELECT neon_budget.set_agent_rate('CONTENT', 0)",
        "SELECT neon_budget.set_budget_override(true, 'let me spend')",
        "SELECT * FROM neon_budget.audit_log",
        "UPDATE neon_budget.monthly_budget_setting SET total_budget = 1000000",
        "DELETE FROM neon_budget._month_spend",
    ] {
        assert_eq!(sqlstate(writer.query(sql, &[])), "42501", "writer: {sql}");
    }
    assert_eq!(counts(&mut db.client), before, "a refused statement wrote something");
    assert_sql(
        &mut db.client,
        "SELECT total_budget = 100 AND NOT override_enabled FROM neon_budget.monthly_budget WHERE month = neon_budget._current_month()",
    );

    // Admin: the admin functions, the logs and bulk INSERT.
    admin.batch_execute("SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 200)").unwrap();
    admin.batch_execute("INSERT INTO neon_budget.billing_log (agent_type, tokens, cost) VALUES ('SEO', 1, 0.5)").unwrap();
    assert_eq!(
        text(&mut admin, "SELECT actor FROM neon_budget.audit_log WHERE action = 'set_monthly_budget' ORDER BY id DESC LIMIT 1").as_deref(),
        Some("nbt_priv_admin")
    );
    assert!(int(&mut admin, "SELECT count(*) FROM neon_budget.alert_log") >= 0);
    assert_oracle(&mut db.client);
}

#[test]
fn a_callers_objects_cannot_hijack_the_extension() {
    let mut db = TestDb::new("priv_shadow");
    db.client
        .batch_execute(
            "SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 100);
             SELECT neon_budget.set_campaign('c1', 'Campaign one', 'TEST', 50);",
        )
        .unwrap();
    // An admin login: it may also INSERT rows directly (the multi-row trigger path).
    let mut writer = login_role(&mut db, "nbt_shadow_writer", Some("neon_budget_admin"));
    // The caller's own schema, first on its search_path, with same-named functions and operators
    // that would record that they ran (and return wrong values).
    writer
        .batch_execute(
            "DROP SCHEMA IF EXISTS evil CASCADE;
             CREATE SCHEMA evil;
             CREATE TABLE evil.ran (what text);
             CREATE FUNCTION evil.hit(w text, r numeric) RETURNS numeric LANGUAGE plpgsql AS
               $$ BEGIN INSERT INTO evil.ran VALUES (w); RETURN r; END $$;
             CREATE FUNCTION evil.numeric_add_evil(a numeric, b numeric) RETURNS numeric LANGUAGE sql AS
               $$ SELECT evil.hit('+', 999999) $$;
             CREATE OPERATOR evil.+ (LEFTARG = numeric, RIGHTARG = numeric, FUNCTION = evil.numeric_add_evil);
             CREATE FUNCTION evil.numeric_eq_evil(a text, b text) RETURNS boolean LANGUAGE sql AS
               $$ SELECT evil.hit('=', 1) > 0 $$;
             CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.numeric_eq_evil);
             CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT evil.hit('now', 0)::int::text::timestamptz $$;
             CREATE FUNCTION evil.to_char(timestamp, text) RETURNS text LANGUAGE sql AS $$ SELECT '1999-' || evil.hit('to_char', 1)::text $$;
             CREATE FUNCTION evil.trim_scale(numeric) RETURNS numeric LANGUAGE sql AS $$ SELECT evil.hit('trim_scale', 999999) $$;
             CREATE FUNCTION evil.sum(numeric) RETURNS numeric LANGUAGE sql AS $$ SELECT evil.hit('sum', 999999) $$;
             -- Operators whose argument types match exactly where pg_catalog's need a cast or are
             -- polymorphic: PostgreSQL prefers them wherever they are on the search_path.
             CREATE FUNCTION evil.int_times_numeric(a integer, b numeric) RETURNS numeric LANGUAGE sql AS
               $$ SELECT evil.hit('int*numeric', 999999) $$;
             CREATE OPERATOR evil.* (LEFTARG = integer, RIGHTARG = numeric, FUNCTION = evil.int_times_numeric);
             CREATE FUNCTION evil.textarr_concat(a text[], b text[]) RETURNS text[] LANGUAGE sql AS
               $$ SELECT ARRAY[evil.hit('||', 1)::text] $$;
             CREATE OPERATOR evil.|| (LEFTARG = text[], RIGHTARG = text[], FUNCTION = evil.textarr_concat);
             SET search_path = evil, public;",
        )
        .unwrap();
    let cost = text(&mut writer, "SELECT (neon_budget.track_cost('CONTENT', 1000, campaign_id => 'c1')).cost::text");
    assert_eq!(cost.as_deref(), Some("0.04"));
    assert_eq!(
        text(
            &mut writer,
            "SELECT total_spent::text || '/' || campaign_spent::text || '/' || status FROM neon_budget.budget_check('c1', 'CONTENT', 1000)"
        )
        .as_deref(),
        Some("0.04/0.04/ok")
    );
    assert!(text(&mut writer, "SELECT neon_budget.budget_report()").unwrap().contains("- Total Spent: $0.04"));
    assert!(int(&mut writer, "SELECT neon_budget.budget_reserve('CONTENT', 1000, 'c1')") > 0);
    // The multi-row path of the trigger (signed sums) and alerts (levels_sent || level).
    writer
        .batch_execute(
            "INSERT INTO neon_budget.billing_log (agent_type, campaign_id, tokens, cost)
             VALUES ('SEO', 'c1', 10, 45.00), ('SEO', 'c1', 10, 40.00)",
        )
        .unwrap();
    assert_eq!(int(&mut writer, "SELECT count(*) FROM evil.ran"), 0, "the extension ran a caller's function or operator");
    assert_eq!(int(&mut db.client, "SELECT count(*) FROM neon_budget.alert_log"), 4, "month warning (85%), campaign all three (170%)");
    assert_sql(&mut db.client, "SELECT total_spent = 85.04 FROM neon_budget.monthly_budget WHERE month = neon_budget._current_month()");
    assert_sql(
        &mut db.client,
        "SELECT bool_and(billing_month = neon_budget._current_month()) AND count(*) = 3 FROM neon_budget.billing_log",
    );
    assert_oracle(&mut db.client);
}

#[test]
fn alerts_and_audit_never_carry_task_or_metadata() {
    let mut db = TestDb::new("priv_privacy");
    let mut l = listener(&db);
    let c = &mut db.client;
    c.batch_execute(
        "SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 1);
         SELECT neon_budget.set_campaign('c1', 'Campaign one', 'TEST', 1);
         SELECT neon_budget.track_cost('CONTENT', 1000, campaign_id => 'c1', task => 'SECRET-TASK-7',
                                       metadata => '{\"secret\": \"SECRET-META-7\"}', cost => 5);
         SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 2);",
    )
    .unwrap();
    let payloads = raw_alerts_received(&mut l, std::time::Duration::from_millis(400));
    assert_eq!(payloads.len(), 6, "3 levels for the month and 3 for the campaign: {payloads:?}");
    for p in &payloads {
        assert!(!p.contains("SECRET"), "payload carries task or metadata: {p}");
    }
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.alert_log a WHERE a::text LIKE '%SECRET%'"), 0);
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.audit_log a WHERE a::text LIKE '%SECRET%'"), 0);
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.alert_log"), 6);
}

/// budget_check and the aggregate trigger run as their caller; what they write (a missed alert,
/// an alert a direct INSERT makes due) is written as the extension's owner. A reader's
/// budget_check sends a level that no write sent, and an admin's direct single-row INSERT (the
/// trigger's fast path) sends the level it reaches, though neither role may write alert_log.
#[test]
fn callers_without_write_rights_still_send_alerts() {
    let mut db = TestDb::new("priv_invoker_alerts");
    db.client.batch_execute("SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 100)").unwrap();
    let mut admin = login_role(&mut db, "nbt_invoker_admin", Some("neon_budget_admin"));
    let mut reader = login_role(&mut db, "nbt_invoker_reader", Some("neon_budget_reader"));
    admin.batch_execute("INSERT INTO neon_budget.billing_log (agent_type, tokens, cost) VALUES ('SEO', 10, 85)").unwrap();
    assert_eq!(
        text(&mut db.client, "SELECT string_agg(level || ':' || spent::text, ',' ORDER BY id) FROM neon_budget.alert_log").as_deref(),
        Some("warning:85")
    );
    // Forget that it was sent, as if two writers had crossed it together.
    db.client.batch_execute("UPDATE neon_budget.alert_state SET levels_sent = '{}'").unwrap();
    assert_eq!(sqlstate(reader.batch_execute("INSERT INTO neon_budget.alert_log (scope, month, level, spent, budget, utilization) VALUES ('month', '2024-01', 'warning', 1, 1, 1)")), "42501");
    assert_eq!(text(&mut reader, "SELECT status FROM neon_budget.budget_check()").as_deref(), Some("warning"));
    assert_eq!(
        text(&mut db.client, "SELECT string_agg(level || ':' || spent::text, ',' ORDER BY id) FROM neon_budget.alert_log").as_deref(),
        Some("warning:85,warning:85")
    );
    assert_oracle(&mut db.client);
}
