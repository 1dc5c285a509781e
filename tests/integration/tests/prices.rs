//! Prices in force at the time of the work (issue #13, part 1): every entry path prices a row at
//! the agent rate in force at its `created_at` (to the microsecond), a time before any rate is
//! refused (42704), a rate can be scheduled or corrected with `effective_from`, a correction
//! reports the rows it would re-price without changing them, and `reprice_billing_log` re-prices
//! them with every aggregate exact, audited.
use neon_budget_integration::*;
use postgres::Client;
use std::io::Write;

/// A rate of 0.01 from 2026-01-01 and 0.10 from 2026-06-01 for agent type `X`.
fn two_rates(c: &mut Client) {
    c.batch_execute(
        "SELECT neon_budget.set_agent_rate('X', 0.01, '2026-01-01 00:00+00');
         SELECT neon_budget.set_agent_rate('X', 0.10, '2026-06-01 00:00+00');",
    )
    .unwrap();
}

/// The issue's example: a call reported late, with `created_at` between the two changes, was
/// priced at today's 0.10. Now each side of the boundary microsecond gets its own rate, on
/// every entry path (track_cost's heap path, its SQL path with an execution_id retried, INSERT
/// and COPY), and the rate is kept with the row.
#[test]
fn each_entry_path_prices_at_the_rate_in_force_at_created_at() {
    let mut db = TestDb::new("prices_paths");
    let c = &mut db.client;
    two_rates(c);
    let before = "2026-05-31 23:59:59.999999+00";
    let at = "2026-06-01 00:00:00+00";
    let priced = |c: &mut Client, sql: &str| text(c, &format!("SELECT cost || ' at ' || cost_per_1k_tokens FROM ({sql}) r"));
    // track_cost, heap fast path.
    assert_eq!(
        priced(c, &format!("SELECT * FROM neon_budget.track_cost('X', 1000, created_at => '{before}')")).as_deref(),
        Some("0.01 at 0.01")
    );
    assert_eq!(
        priced(c, &format!("SELECT * FROM neon_budget.track_cost('X', 1000, created_at => '{at}')")).as_deref(),
        Some("0.1 at 0.10")
    );
    // track_cost with an execution_id, then its retry (the SQL path returns the first row).
    assert_eq!(
        priced(c, &format!("SELECT * FROM neon_budget.track_cost('X', 3000, execution_id => 'e-1', created_at => '{before}')")).as_deref(),
        Some("0.03 at 0.01")
    );
    assert_eq!(
        priced(c, &format!("SELECT * FROM neon_budget.track_cost('X', 3000, execution_id => 'e-1', created_at => '{before}')")).as_deref(),
        Some("0.03 at 0.01")
    );
    // INSERT without a cost.
    c.batch_execute(&format!(
        "INSERT INTO neon_budget.billing_log (agent_type, tokens, created_at) VALUES ('X', 5000, '{before}'), ('X', 5000, '{at}')"
    ))
    .unwrap();
    assert_eq!(
        column(c, "SELECT cost || ' at ' || cost_per_1k_tokens FROM neon_budget.billing_log WHERE tokens = 5000 ORDER BY created_at"),
        vec!["0.05 at 0.01", "0.5 at 0.10"]
    );
    // COPY without a cost.
    let mut w = c.copy_in("COPY neon_budget.billing_log (agent_type, tokens, created_at) FROM STDIN").unwrap();
    w.write_all(format!("X\t7000\t{before}\nX\t7000\t{at}\n").as_bytes()).unwrap();
    w.finish().unwrap();
    assert_eq!(
        column(c, "SELECT cost || ' at ' || cost_per_1k_tokens FROM neon_budget.billing_log WHERE tokens = 7000 ORDER BY created_at"),
        vec!["0.07 at 0.01", "0.7 at 0.10"]
    );
    // A reported cost keeps no rate.
    assert_eq!(
        text(c, "SELECT cost || ' ' || COALESCE(cost_per_1k_tokens::text, 'reported') FROM neon_budget.track_cost('X', 1, cost => 2.5)")
            .as_deref(),
        Some("2.5 reported")
    );
    // 0.01 + 0.1 + 0.03 + 0.05 + 0.5 + 0.07 + 0.7 + 2.5
    assert_eq!(text(c, "SELECT sum(cost)::text FROM neon_budget.billing_log").as_deref(), Some("3.96"));
    assert_oracle(c);
}

/// A `created_at` before the agent type's first rate is refused with 42704 on every entry path,
/// and nothing is written. The install defaults (from the seed) are in force since -infinity.
#[test]
fn a_time_before_any_rate_is_refused() {
    let mut db = TestDb::new("prices_before_any");
    let c = &mut db.client;
    two_rates(c);
    let early = "2025-12-31 23:59:59.999999+00";
    rejects(c, &format!("SELECT neon_budget.track_cost('X', 1000, created_at => '{early}')"), "42704");
    rejects(c, &format!("SELECT neon_budget.track_cost('X', 1000, execution_id => 'late', created_at => '{early}')"), "42704");
    rejects(c, &format!("INSERT INTO neon_budget.billing_log (agent_type, tokens, created_at) VALUES ('X', 1000, '{early}')"), "42704");
    let mut w = c.copy_in("COPY neon_budget.billing_log (agent_type, tokens, created_at) FROM STDIN").unwrap();
    w.write_all(format!("X\t1000\t{early}\n").as_bytes()).unwrap();
    assert_eq!(sqlstate(w.finish()), "42704");
    let err = c.query_one(&format!("SELECT neon_budget.track_cost('X', 1000, created_at => '{early}')"), &[]).unwrap_err();
    let db_err = err.as_db_error().unwrap();
    assert!(db_err.message().contains("no rate in force"), "{}", db_err.message());
    assert!(db_err.hint().unwrap().contains("set_agent_rate('X'"), "{:?}", db_err.hint());
    // A cost the provider reported needs no rate at that time, only a known agent type.
    assert_eq!(
        text(c, &format!("SELECT cost::text FROM neon_budget.track_cost('X', 1000, cost => 1.25, created_at => '{early}')")).as_deref(),
        Some("1.25")
    );
    rejects(c, "SELECT neon_budget.track_cost('NEVER_PRICED', 1000, cost => 1)", "42704");
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.billing_log"), 1);
    // The seed's defaults hold at any time.
    assert_eq!(
        text(c, "SELECT cost::text FROM neon_budget.track_cost('CONTENT', 1000, created_at => '1999-01-01+00')").as_deref(),
        Some("0.04")
    );
    assert_oracle(c);
}

/// A price scheduled for later is not charged before its time, and is from then on;
/// `budget_check` and `budget_reserve` price estimates at the rate in force now.
#[test]
fn a_scheduled_price_applies_from_its_time() {
    let mut db = TestDb::new("prices_scheduled");
    db.allow_future_created_at();
    let c = &mut db.client;
    c.batch_execute("SELECT neon_budget.set_agent_rate('CONTENT', 1.00, now() + interval '1 hour')").unwrap();
    assert_eq!(text(c, "SELECT cost::text FROM neon_budget.track_cost('CONTENT', 1000)").as_deref(), Some("0.04"));
    assert_eq!(text(c, "SELECT estimated_cost::text FROM neon_budget.budget_check(NULL, 'CONTENT', 1000)").as_deref(), Some("0.04"));
    assert_eq!(
        text(c, "SELECT cost::text FROM neon_budget.track_cost('CONTENT', 1000, created_at => now() + interval '1 hour')").as_deref(),
        Some("1")
    );
    assert_eq!(
        text(c, "SELECT (new_value->>'rows_to_reprice') || ' ' || (old_value->>'cost_per_1k_tokens') || ' -> ' || (new_value->>'cost_per_1k_tokens')
                   FROM neon_budget.audit_log WHERE action = 'set_agent_rate'")
        .as_deref(),
        Some("0 0.04 -> 1.00")
    );
    assert_oracle(c);
}

/// Correcting a past rate changes no recorded cost: it returns (and audits) how many rows it
/// would re-price. `reprice_billing_log` then re-prices exactly those (never a reported cost),
/// the month, campaign, agent and day aggregates follow, alerts the new totals reach are sent,
/// and the call is audited with the totals before and after.
#[test]
fn a_correction_counts_and_an_explicit_reprice_changes_the_rows() {
    let mut db = TestDb::new("prices_correction");
    let c = &mut db.client;
    two_rates(c);
    c.batch_execute(
        "SELECT neon_budget.set_monthly_budget('2026-03', 10);
         SELECT neon_budget.set_campaign('camp-a', 'A', NULL, 100);
         SELECT neon_budget.track_cost('X', 100000, campaign_id => 'camp-a', created_at => '2026-03-01 12:00+00');
         SELECT neon_budget.track_cost('X', 200000, campaign_id => 'camp-a', created_at => '2026-03-15 12:00+00');
         SELECT neon_budget.track_cost('X', 300000, created_at => '2026-04-01 12:00+00');
         SELECT neon_budget.track_cost('X', 400000, cost => 0.5, created_at => '2026-03-20 12:00+00');
         SELECT neon_budget.track_cost('X', 500000, created_at => '2026-07-01 12:00+00');",
    )
    .unwrap();
    // March: 1 + 2 + 0.5 (reported); April: 3; July at 0.10: 50.
    assert_eq!(text(c, "SELECT total_spent::text FROM neon_budget.monthly_budget WHERE month = '2026-03'").as_deref(), Some("3.5"));
    let before_correction = aggregates_snapshot(c);
    // The rate of March and April was 0.03, not 0.01: from 2026-03-01 until 2026-06-01.
    assert_eq!(int(c, "SELECT neon_budget.set_agent_rate('X', 0.03, '2026-03-01 00:00+00')"), 3);
    assert_eq!(aggregates_snapshot(c), before_correction, "a correction alone changes no recorded cost");
    assert_eq!(
        text(c, "SELECT new_value->>'rows_to_reprice' FROM neon_budget.audit_log WHERE action = 'set_agent_rate' ORDER BY id DESC LIMIT 1")
            .as_deref(),
        Some("3")
    );
    // Re-price March only: two rows (the reported cost stays).
    assert_eq!(int(c, "SELECT neon_budget.reprice_billing_log('X', '2026-03-01+00', '2026-04-01+00')"), 2);
    assert_eq!(
        column(c, "SELECT cost || ' at ' || COALESCE(cost_per_1k_tokens::text, '-') FROM neon_budget.billing_log ORDER BY id"),
        vec!["3 at 0.03", "6 at 0.03", "3 at 0.01", "0.5 at -", "50 at 0.10"]
    );
    assert_eq!(text(c, "SELECT total_spent::text FROM neon_budget.monthly_budget WHERE month = '2026-03'").as_deref(), Some("9.5"));
    assert_eq!(
        text(c, "SELECT total_cost::text FROM neon_budget.campaign_cost WHERE campaign_id = 'camp-a' AND month = '2026-03'").as_deref(),
        Some("9")
    );
    assert_eq!(
        column(c, "SELECT day || ' ' || total_cost FROM neon_budget.daily_cost WHERE month = '2026-03' ORDER BY day"),
        vec!["2026-03-01 3", "2026-03-15 6", "2026-03-20 0.5"]
    );
    // 9.5 of 10 passes the month's warning and critical levels: sent once each.
    assert_eq!(
        column(c, "SELECT level || ' ' || spent FROM neon_budget.alert_log WHERE scope = 'month' AND month = '2026-03' ORDER BY id"),
        vec!["warning 9.5", "critical 9.5"]
    );
    assert_eq!(
        text(
            c,
            "SELECT (old_value->>'rows') || ' ' || (old_value->>'cost') || ' -> ' || (new_value->>'cost') || ' by ' || actor
               FROM neon_budget.audit_log WHERE action = 'reprice_billing_log'"
        )
        .as_deref(),
        Some("2 3 -> 9 by postgres")
    );
    // The rest of the window, then nothing is left to change.
    assert_eq!(int(c, "SELECT neon_budget.reprice_billing_log('X')"), 1);
    assert_eq!(int(c, "SELECT neon_budget.reprice_billing_log('X')"), 0);
    assert_eq!(text(c, "SELECT sum(cost)::text FROM neon_budget.billing_log").as_deref(), Some("68.5"));
    assert_sql(c, "SELECT count(*) = 0 FROM neon_budget.budget_verify()");
    assert_oracle(c);
}

/// Bad input is refused with its SQLSTATE and writes nothing; re-pricing is an admin right.
#[test]
fn bad_input_and_privileges() {
    let mut db = TestDb::new("prices_bad_input");
    let c = &mut db.client;
    rejects(c, "SELECT neon_budget.set_agent_rate('X', 0.01, 'infinity')", "22023");
    rejects(c, "SELECT neon_budget.set_agent_rate('X', 0.01, '-infinity')", "22023");
    rejects(c, "SELECT neon_budget.set_agent_rate('X', 0.01, NULL)", "22004");
    rejects(c, "SELECT neon_budget.reprice_billing_log('CONTENT', '2026-02-01', '2026-01-01')", "22023");
    rejects(c, "SELECT neon_budget.reprice_billing_log('NOPE')", "42704");
    rejects(c, "SELECT neon_budget.reprice_billing_log(NULL)", "22004");
    rejects(
        c,
        "INSERT INTO neon_budget.billing_log (agent_type, tokens, cost, cost_per_1k_tokens) VALUES ('CONTENT', 1000, 1, 0.04)",
        "22023",
    );
    // A cost that agrees with its rate is accepted as given.
    c.batch_execute(
        "INSERT INTO neon_budget.billing_log (agent_type, tokens, cost, cost_per_1k_tokens) VALUES ('CONTENT', 1000, 0.05, 0.05)",
    )
    .unwrap();
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.agent_rate WHERE agent_type = 'X'"), 0);
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.audit_log"), 0);
    let mut writer = login_role(&mut db, "prices_writer", Some("neon_budget_writer"));
    assert_eq!(sqlstate(writer.batch_execute("SELECT neon_budget.reprice_billing_log('CONTENT')")), "42501");
    assert_eq!(sqlstate(writer.batch_execute("SELECT neon_budget.set_agent_rate('CONTENT', 1)")), "42501");
    let mut admin = login_role(&mut db, "prices_admin", Some("neon_budget_admin"));
    // The row above was priced at 0.05: a rate of 0.04 from 2000 on would change it.
    assert_eq!(int(&mut admin, "SELECT neon_budget.set_agent_rate('CONTENT', 0.04, '2000-01-01+00')"), 1);
    assert_eq!(int(&mut admin, "SELECT neon_budget.reprice_billing_log('CONTENT')"), 1);
    assert_eq!(text(&mut db.client, "SELECT cost::text FROM neon_budget.billing_log").as_deref(), Some("0.04"));
    assert_oracle(&mut db.client);
}

/// A rate committed by another session prices the next statement, also inside a transaction
/// that already recorded at the old rate, and also in a REPEATABLE READ transaction (rates are
/// read as settings, with what is committed now), and no backend keeps the old rate cached.
#[test]
fn a_rate_committed_elsewhere_prices_the_next_statement() {
    let db = TestDb::new("prices_elsewhere");
    let mut admin = db.connect();
    two_rates(&mut admin);
    let mut a = db.connect();
    let cost = |c: &mut Client| text(c, "SELECT (neon_budget.track_cost('X', 1000, created_at => '2026-03-01+00')).cost::text").unwrap();
    // Read committed: the same transaction sees the change at its next statement.
    a.batch_execute("BEGIN").unwrap();
    assert_eq!(cost(&mut a), "0.01");
    admin.batch_execute("SELECT neon_budget.set_agent_rate('X', 0.5, '2026-02-01+00')").unwrap();
    assert_eq!(cost(&mut a), "0.5");
    a.batch_execute("COMMIT").unwrap();
    // Repeatable read, with the change's invalidation processed before the read.
    a.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1").unwrap();
    admin.batch_execute("SELECT neon_budget.set_agent_rate('X', 0.7, '2026-02-01+00')").unwrap();
    a.batch_execute("SELECT count(*) FROM neon_budget.billing_log").unwrap();
    assert_eq!(cost(&mut a), "0.7");
    a.batch_execute("COMMIT").unwrap();
    admin.batch_execute("SELECT neon_budget.set_agent_rate('X', 0.9, '2026-02-01+00')").unwrap();
    assert_eq!(cost(&mut a), "0.9");
    assert_eq!(text(&mut a, "SELECT estimated_cost::text FROM neon_budget.budget_check(NULL, 'CONTENT', 1000)").as_deref(), Some("0.04"));
    assert_oracle(&mut admin);
}

/// Re-pricing also gives a row of 0 tokens (whose cost does not change) the rate now in force,
/// and hints quote the agent type as an SQL literal.
#[test]
fn zero_token_rows_take_the_rate_and_hints_quote_names() {
    let mut db = TestDb::new("prices_zero_tokens");
    let c = &mut db.client;
    two_rates(c);
    c.batch_execute("SELECT neon_budget.track_cost('X', 0, created_at => '2026-01-05+00')").unwrap();
    assert_eq!(int(c, "SELECT neon_budget.set_agent_rate('X', 0.03, '2026-01-01+00')"), 1);
    assert_eq!(int(c, "SELECT neon_budget.reprice_billing_log('X')"), 1);
    assert_eq!(text(c, "SELECT cost || ' at ' || cost_per_1k_tokens FROM neon_budget.billing_log").as_deref(), Some("0 at 0.03"));
    assert_eq!(int(c, "SELECT neon_budget.reprice_billing_log('X')"), 0);
    // A name with a quote: the hints' statements run as written.
    c.batch_execute("SELECT neon_budget.set_agent_rate('O''Brien', 0.01, '2026-01-01+00')").unwrap();
    let err = c.batch_execute("SELECT neon_budget.track_cost('O''Brien', 1000, created_at => '2025-01-01+00')").unwrap_err();
    let hint = err.as_db_error().unwrap().hint().unwrap().to_string();
    assert!(hint.contains("set_agent_rate('O''Brien', 0.04"), "{hint}");
    let statement = hint.split("SELECT ").nth(2).unwrap().trim_end_matches(';').to_string();
    c.batch_execute(&format!("SELECT {statement}")).unwrap();
    assert_eq!(
        text(c, "SELECT cost::text FROM neon_budget.track_cost('O''Brien', 1000, created_at => '2025-01-01+00')").as_deref(),
        Some("0.04")
    );
}
