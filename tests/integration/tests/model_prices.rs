//! Prices per model (issue #13, part 2): input, output and cached-input tokens at a model's
//! prices per 1,000,000 tokens in force at a row's `created_at`, on every entry path, exact.
use neon_budget_integration::*;

/// Prices of model `m`: $2.50 / $10.00 / $1.25 per 1M tokens from 2026-11-01, then
/// $5 / $20 / $2.50 from 2026-11-10 12:00:00 UTC.
fn prices(c: &mut postgres::Client) {
    assert_eq!(int(c, "SELECT neon_budget.set_model_price('m', 2.50, 10.00, 1.25, '2026-11-01 00:00+00')"), 0);
    assert_eq!(int(c, "SELECT neon_budget.set_model_price('m', 5, 20, 2.50, '2026-11-10 12:00+00')"), 0);
}

/// 1,200 input + 300 output + 800 cached tokens: $0.007 at the first price (3000 + 3000 + 1000
/// micro-dollars), $0.014 at the second, from its first microsecond; tokens is their total.
/// The same on track_cost, INSERT and COPY. Before any model price, the agent rate applies.
#[test]
fn three_part_costs_at_the_price_in_force_on_every_path() {
    let mut db = TestDb::new("model_prices_paths");
    prices(&mut db.client);
    let before = "'2026-11-10 11:59:59.999999+00'";
    let at = "'2026-11-10 12:00:00+00'";
    for (id, created) in [("t1", before), ("t2", at)] {
        track_cost(
            &mut db.client,
            &format!("'CONTENT', model => 'm', input_tokens => 1200, output_tokens => 300, cached_tokens => 800, execution_id => '{id}', created_at => {created}"),
        );
    }
    db.client
        .batch_execute(&format!(
            "INSERT INTO neon_budget.billing_log (agent_type, model, input_tokens, output_tokens, cached_tokens, created_at, execution_id)
             VALUES ('CONTENT', 'm', 1200, 300, 800, {before}, 'i1'), ('CONTENT', 'm', 1200, 300, 800, {at}, 'i2')"
        ))
        .unwrap();
    let mut w = db.client.copy_in("COPY neon_budget.billing_log (agent_type, model, input_tokens, output_tokens, cached_tokens, created_at, execution_id) FROM STDIN").unwrap();
    use std::io::Write;
    w.write_all(b"CONTENT\tm\t1200\t300\t800\t2026-11-10 11:59:59.999999+00\tc1\nCONTENT\tm\t1200\t300\t800\t2026-11-10 12:00:00+00\tc2\n")
        .unwrap();
    w.finish().unwrap();
    // Before the model's first price: the agent rate on the total (2300 / 1000 x 0.04).
    track_cost(&mut db.client, "'CONTENT', model => 'm', input_tokens => 1200, output_tokens => 300, cached_tokens => 800, execution_id => 'early', created_at => '2026-10-31 23:00+00'");
    assert_eq!(
        column(
            &mut db.client,
            "SELECT execution_id || ' ' || tokens || ' ' || cost || ' ' || COALESCE(cost_per_1k_tokens::text, '-') || ' '
                    || COALESCE(to_char(model_price_from AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), '-')
               FROM neon_budget.billing_log ORDER BY execution_id"
        ),
        vec![
            "c1 2300 0.007 - 2026-11-01 00:00",
            "c2 2300 0.014 - 2026-11-10 12:00",
            "early 2300 0.092 0.04 -",
            "i1 2300 0.007 - 2026-11-01 00:00",
            "i2 2300 0.014 - 2026-11-10 12:00",
            "t1 2300 0.007 - 2026-11-01 00:00",
            "t2 2300 0.014 - 2026-11-10 12:00",
        ]
    );
    // A correction of the first price counts the three rows it would re-price, changes none.
    assert_eq!(int(&mut db.client, "SELECT neon_budget.set_model_price('m', 3, 10, 1.25, '2026-11-01 00:00+00')"), 3);
    assert_eq!(text(&mut db.client, "SELECT sum(cost)::text FROM neon_budget.billing_log").as_deref(), Some("0.155"));
    assert_eq!(
        column(&mut db.client, "SELECT action || ' ' || target || ' ' || (new_value->>'rows_to_reprice') FROM neon_budget.audit_log WHERE action = 'set_model_price' ORDER BY id"),
        vec!["set_model_price m 0", "set_model_price m 0", "set_model_price m 3"]
    );
    // A reported cost wins; parts without a model are recorded at the agent rate.
    track_cost(&mut db.client, "'CONTENT', model => 'm', input_tokens => 10, output_tokens => 0, cost => 1.5, execution_id => 'reported', created_at => '2026-11-12 00:00+00'");
    track_cost(
        &mut db.client,
        "'CONTENT', input_tokens => 500, output_tokens => 500, execution_id => 'nomodel', created_at => '2026-11-12 00:00+00'",
    );
    assert_eq!(
        column(&mut db.client, "SELECT tokens || ' ' || cost || ' ' || cached_tokens FROM neon_budget.billing_log WHERE execution_id IN ('reported', 'nomodel') ORDER BY execution_id"),
        vec!["1000 0.04 0", "10 1.5 0"]
    );
    assert_oracle(&mut db.client);
}

/// Refused input, with nothing written: tokens that are not the parts' total, a priced model
/// without parts, negative parts, an INSERT whose cost disagrees with its model price; and
/// set_model_price's own checks and privileges.
#[test]
fn bad_parts_and_prices_are_refused() {
    let mut db = TestDb::seeded("model_prices_bad");
    prices(&mut db.client);
    let c = &mut db.client;
    rejects(c, "SELECT neon_budget.track_cost('CONTENT', 2000, model => 'm', input_tokens => 1200, output_tokens => 300, cached_tokens => 800, created_at => '2026-11-12 00:00+00')", "22023");
    rejects(c, "SELECT neon_budget.track_cost('CONTENT', 2000, model => 'm', created_at => '2026-11-12 00:00+00')", "22023");
    rejects(c, "SELECT neon_budget.track_cost('CONTENT', model => 'm', input_tokens => -1, created_at => '2026-11-12 00:00+00')", "22003");
    rejects(c, "SELECT neon_budget.track_cost('CONTENT', model => '', input_tokens => 1)", "22023");
    rejects(c, "SELECT neon_budget.track_cost('CONTENT')", "22004");
    rejects(
        c,
        "INSERT INTO neon_budget.billing_log (agent_type, model, input_tokens, output_tokens, cached_tokens, cost, model_price_from, created_at)
         VALUES ('CONTENT', 'm', 1200, 300, 800, 0.008, '2026-11-01 00:00+00', '2026-11-05 00:00+00')",
        "22023",
    );
    // The same row with the cost its price gives is accepted (a restore writes such rows).
    c.batch_execute(
        "INSERT INTO neon_budget.billing_log (agent_type, model, input_tokens, output_tokens, cached_tokens, cost, model_price_from, created_at)
         VALUES ('CONTENT', 'm', 1200, 300, 800, 0.007, '2026-11-01 00:00+00', '2026-11-05 00:00+00')",
    )
    .unwrap();
    rejects(c, "SELECT neon_budget.set_model_price(NULL, 1, 1)", "22004");
    rejects(c, "SELECT neon_budget.set_model_price('m', -1, 1)", "22023");
    rejects(c, "SELECT neon_budget.set_model_price('m', 1, 1, 'NaN')", "22023");
    rejects(c, "SELECT neon_budget.set_model_price('m', 1, 1, 1, 'infinity')", "22023");
    rejects(c, &format!("SELECT neon_budget.set_model_price('{}', 1, 1)", "x".repeat(201)), "22001");
    // cached_input_per_1m left out: the input price.
    c.batch_execute("SELECT neon_budget.set_model_price('n', 4, 8)").unwrap();
    assert_eq!(text(c, "SELECT cached_input_per_1m::text FROM neon_budget.model_price WHERE model = 'n'").as_deref(), Some("4"));
    let mut writer = login_role(&mut db, "nb_model_writer", Some("neon_budget_writer"));
    assert_eq!(sqlstate(writer.batch_execute("SELECT neon_budget.set_model_price('m', 1, 1)")), "42501");
    let mut reader = login_role(&mut db, "nb_model_reader", Some("neon_budget_reader"));
    assert_eq!(int(&mut reader, "SELECT count(*) FROM neon_budget.model_price"), 3);
}

/// A price committed by another session is used at once (the per-backend cache follows it).
#[test]
fn a_new_price_is_seen_by_every_session() {
    let mut db = TestDb::new("model_prices_cache");
    let mut other = db.connect();
    track_cost(&mut other, "'CONTENT', model => 'm', input_tokens => 1000, output_tokens => 0, execution_id => 'a'");
    db.client.batch_execute("SELECT neon_budget.set_model_price('m', 1, 2, 0.5, now() - interval '1 hour')").unwrap();
    track_cost(
        &mut other,
        "'CONTENT', model => 'm', input_tokens => 1000, output_tokens => 1000, cached_tokens => 1000, execution_id => 'b'",
    );
    assert_eq!(column(&mut db.client, "SELECT cost::text FROM neon_budget.billing_log ORDER BY execution_id"), vec!["0.04", "0.0035"]);
}
