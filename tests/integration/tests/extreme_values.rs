//! Extreme values: each one either works and stores / aggregates the exact value, or fails
//! with a specific SQLSTATE and writes nothing.
use neon_budget_integration::*;
use postgres::types::ToSql;
use postgres::Client;
use std::io::Write;
use std::time::Duration;

const WAIT: Duration = Duration::from_millis(400);

/// Runs `sql` with `params`, expects SQLSTATE `code`, and checks that no table and no
/// aggregate changed. On a mismatch the message carries the whole error.
#[track_caller]
fn rejects_with(c: &mut Client, sql: &str, params: &[&(dyn ToSql + Sync)], code: &str) {
    let before = table_counts(c);
    let snap = aggregates_snapshot(c);
    let r = c.execute(sql, params);
    let after = table_counts(c);
    let snap_after = aggregates_snapshot(c);
    let got = match &r {
        Ok(n) => format!("success ({n} rows)"),
        Err(e) => match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => format!("error without SQLSTATE: {e}"),
        },
    };
    assert!(r.as_ref().err().and_then(|e| e.code()).map(|s| s.code()) == Some(code), "{sql}: expected SQLSTATE {code}, got {got}");
    assert_eq!(after, before, "{sql} (failed with {got}) wrote something");
    assert_eq!(snap_after, snap, "{sql} (failed with {got}) changed an aggregate");
}

#[track_caller]
fn rejects(c: &mut Client, sql: &str, code: &str) {
    rejects_with(c, sql, &[], code)
}

/// Like [`rejects`] for COPY of `data` (csv) into `columns` of billing_log.
#[track_caller]
fn copy_rejects(c: &mut Client, columns: &str, data: &str, code: &str) {
    let before = table_counts(c);
    let snap = aggregates_snapshot(c);
    let r = (|| -> Result<u64, postgres::Error> {
        let mut w = c.copy_in(&format!("COPY neon_budget.billing_log ({columns}) FROM STDIN WITH (FORMAT csv)"))?;
        w.write_all(data.as_bytes()).unwrap();
        w.finish()
    })();
    let got = match &r {
        Ok(n) => format!("success ({n} rows)"),
        Err(e) => format!("{:?}: {}", e.code().map(|s| s.code()), e.as_db_error().map(|d| d.message()).unwrap_or_default()),
    };
    let after = table_counts(c);
    assert!(r.as_ref().err().and_then(|e| e.code()).map(|s| s.code()) == Some(code), "COPY {data:?}: expected SQLSTATE {code}, got {got}");
    assert_eq!(after, before, "COPY {data:?} (failed with {got}) wrote something");
    assert_eq!(aggregates_snapshot(c), snap, "COPY {data:?} changed an aggregate");
}

/// One row of text values.
fn texts(c: &mut Client, sql: &str) -> Vec<Option<String>> {
    let row = c.query_one(sql, &[]).unwrap_or_else(|e| panic!("{sql}: {e}"));
    (0..row.len()).map(|i| row.get(i)).collect()
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

#[test]
fn zero_tokens() {
    let mut db = TestDb::seeded("ext_zero_tokens");
    let c = &mut db.client;
    let row = texts(
        c,
        "SELECT (x).cost::text, (x).tokens::text, (x).billing_month
           FROM (SELECT neon_budget.track_cost('CONTENT', 0, campaign_id => 'z', created_at => '2024-04-10 00:00+00') x) t",
    );
    assert_eq!(row, vec![s("0"), s("0"), s("2024-04")]);
    assert_eq!(
        texts(c, "SELECT total_spent::text, total_tokens::text, executions::text FROM neon_budget.monthly_budget WHERE month = '2024-04'"),
        vec![s("0"), s("0"), s("1")]
    );
    assert_eq!(
        texts(c, "SELECT total_cost::text, total_tokens::text, executions::text FROM neon_budget.campaign_cost WHERE campaign_id = 'z'"),
        vec![s("0"), s("0"), s("1")]
    );
    assert_eq!(
        texts(
            c,
            "SELECT total_cost::text, executions::text FROM neon_budget.agent_cost WHERE agent_type = 'CONTENT' AND month = '2024-04'"
        ),
        vec![s("0"), s("1")]
    );
    // A zero-cost execution crosses no level, even against the smallest budget.
    c.batch_execute(
        "SELECT neon_budget.set_monthly_budget('2024-04', 0.000001);
         SELECT neon_budget.track_cost('SEO', 0, created_at => '2024-04-11 00:00+00');",
    )
    .unwrap();
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.alert_log"), 0);
    assert_oracle(c);
}

const MAX: &str = "9223372036854775807";

#[test]
fn max_tokens_cost_and_sums_are_exact() {
    let mut db = TestDb::seeded("ext_max_tokens");
    let c = &mut db.client;
    // 9223372036854775807 / 1000 × 0.04 = 368934881474191.03228, exactly.
    let first = texts(
        c,
        &format!(
            "SELECT (x).cost::text, (x).tokens::text, (x).billing_month
               FROM (SELECT neon_budget.track_cost('CONTENT', {MAX}, campaign_id => 'big', created_at => '2024-05-01 00:00+00') x) t"
        ),
    );
    assert_eq!(first, vec![s("368934881474191.03228"), s(MAX), s("2024-05")]);
    c.batch_execute(&format!(
        "SELECT neon_budget.track_cost('CONTENT', {MAX}, campaign_id => 'big', created_at => '2024-05-31 23:59:59+00')"
    ))
    .unwrap();
    // Twice in one month: numeric sums, no overflow, no rounding.
    assert_eq!(
        texts(c, "SELECT total_spent::text, total_tokens::text, executions::text FROM neon_budget.monthly_budget WHERE month = '2024-05'"),
        vec![s("737869762948382.06456"), s("18446744073709551614"), s("2")]
    );
    assert_eq!(
        texts(c, "SELECT total_cost::text, total_tokens::text, executions::text FROM neon_budget.campaign_cost WHERE campaign_id = 'big' AND month = '2024-05'"),
        vec![s("737869762948382.06456"), s("18446744073709551614"), s("2")]
    );
    assert_eq!(
        texts(
            c,
            "SELECT total_cost::text, total_tokens::text FROM neon_budget.agent_cost WHERE agent_type = 'CONTENT' AND month = '2024-05'"
        ),
        vec![s("737869762948382.06456"), s("18446744073709551614")]
    );
    // The first call crossed every level at once (against the default $1,000 budget).
    let alerts: Vec<String> = c
        .query(
            "SELECT level || ' ' || spent::text || ' ' || utilization::text FROM neon_budget.alert_log WHERE month = '2024-05' ORDER BY id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        alerts,
        vec![
            "warning 368934881474191.03228 36893488147419.10",
            "critical 368934881474191.03228 36893488147419.10",
            "exceeded 368934881474191.03228 36893488147419.10"
        ]
    );
    // Another rate: × 0.07.
    assert_eq!(
        text(c, &format!("SELECT (neon_budget.track_cost('DESIGN', {MAX}, created_at => '2024-06-01 00:00+00')).cost::text")),
        s("645636042579834.30649")
    );
    // An estimate of that many tokens is priced exactly too.
    assert_eq!(
        text(c, &format!("SELECT estimated_cost::text FROM neon_budget.budget_check(NULL, 'CONTENT', {MAX})")),
        s("368934881474191.03228")
    );
    // The report prints the exact sums.
    let report = text(c, "SELECT neon_budget.budget_report('2024-05')").unwrap();
    for line in [
        "- Total Spent: $737,869,762,948,382.06",
        "- Utilization: 73786976294838.2%",
        "- Tokens Used: 18,446,744,073,709,551,614",
        "- Avg Cost/Execution: $368,934,881,474,191.0323",
    ] {
        assert!(report.lines().any(|l| l == line), "missing {line:?} in\n{report}");
    }
    assert_oracle(c);

    // The statement path (multi-row INSERT, UPDATE, DELETE) sums the same way.
    c.batch_execute(&format!(
        "INSERT INTO neon_budget.billing_log (agent_type, campaign_id, tokens, cost, created_at, execution_id)
         VALUES ('CONTENT', 'big', {MAX}, 368934881474191.03228, '2024-07-01 00:00+00', 'm1'),
                ('CONTENT', 'big', {MAX}, 368934881474191.03228, '2024-07-02 00:00+00', 'm2'),
                ('SEO', NULL, {MAX}, 0.1, '2024-07-03 00:00+00', 'm3')"
    ))
    .unwrap();
    assert_eq!(
        texts(c, "SELECT total_spent::text, total_tokens::text, executions::text FROM neon_budget.monthly_budget WHERE month = '2024-07'"),
        vec![s("737869762948382.16456"), s("27670116110564327421"), s("3")]
    );
    assert_oracle(c);
    c.batch_execute("UPDATE neon_budget.billing_log SET tokens = 0, cost = 0 WHERE execution_id = 'm1'").unwrap();
    assert_eq!(
        texts(c, "SELECT total_spent::text, total_tokens::text FROM neon_budget.monthly_budget WHERE month = '2024-07'"),
        vec![s("368934881474191.13228"), s("18446744073709551614")]
    );
    c.batch_execute("DELETE FROM neon_budget.billing_log WHERE execution_id IN ('m2', 'm3')").unwrap();
    assert_sql(c, "SELECT total_spent = 0 AND total_tokens = 0 AND executions = 1 FROM neon_budget.monthly_budget WHERE month = '2024-07'");
    assert_oracle(c);
}

#[test]
fn cost_with_twenty_decimals_is_kept_exactly() {
    let mut db = TestDb::seeded("ext_twenty_decimals");
    let mut l = listener(&db);
    let c = &mut db.client;
    c.batch_execute("SELECT neon_budget.set_monthly_budget('2024-07', 0.1)").unwrap();
    assert_eq!(
        text(
            c,
            "SELECT (neon_budget.track_cost('CONTENT', 1, campaign_id => 'p', cost => 0.12345678901234567890,
                     created_at => '2024-07-15 00:00+00')).cost::text"
        ),
        s("0.12345678901234567890")
    );
    assert_eq!(text(c, "SELECT cost::text FROM neon_budget.billing_log WHERE billing_month = '2024-07'"), s("0.12345678901234567890"));
    assert_eq!(
        texts(
            c,
            "SELECT (SELECT total_spent::text FROM neon_budget.monthly_budget WHERE month = '2024-07'),
                    (SELECT total_cost::text FROM neon_budget.campaign_cost WHERE campaign_id = 'p' AND month = '2024-07'),
                    (SELECT total_cost::text FROM neon_budget.agent_cost WHERE agent_type = 'CONTENT' AND month = '2024-07')"
        ),
        vec![s("0.12345678901234567890"); 3]
    );
    // Over the $0.10 budget: every level, each carrying the exact spend, in alert_log and in
    // the payload's JSON number.
    assert_eq!(
        c.query("SELECT level, spent::text, utilization::text FROM neon_budget.alert_log WHERE month = '2024-07' ORDER BY id", &[])
            .unwrap()
            .iter()
            .map(|r| format!("{} {} {}", r.get::<_, String>(0), r.get::<_, String>(1), r.get::<_, String>(2)))
            .collect::<Vec<_>>(),
        vec!["warning 0.12345678901234567890 123.46", "critical 0.12345678901234567890 123.46", "exceeded 0.12345678901234567890 123.46"]
    );
    let payloads = raw_alerts_received(&mut l, WAIT);
    assert_eq!(payloads.len(), 3, "{payloads:?}");
    for p in &payloads {
        assert!(p.contains("\"spent\":0.12345678901234567890"), "{p}");
    }
    // A second, tinier amount through the statement path: the sum keeps all 20 decimals.
    c.batch_execute(
        "INSERT INTO neon_budget.billing_log (agent_type, campaign_id, tokens, cost, created_at)
         VALUES ('CONTENT', 'p', 1, 0.00000000000000000010, '2024-07-16 00:00+00'),
                ('CONTENT', 'p', 1, 0.00000000000000000001, '2024-07-17 00:00+00')",
    )
    .unwrap();
    assert_eq!(
        texts(
            c,
            "SELECT (SELECT total_spent::text FROM neon_budget.monthly_budget WHERE month = '2024-07'),
                    (SELECT total_cost::text FROM neon_budget.campaign_cost WHERE campaign_id = 'p' AND month = '2024-07'),
                    (SELECT total_cost::text FROM neon_budget.agent_cost WHERE agent_type = 'CONTENT' AND month = '2024-07')"
        ),
        vec![s("0.12345678901234567901"); 3]
    );
    assert_oracle(c);
}

#[test]
fn one_megabyte_metadata_is_stored_and_never_notified() {
    let mut db = TestDb::seeded("ext_big_metadata");
    let mut l = listener(&db);
    let c = &mut db.client;
    c.batch_execute("SELECT neon_budget.set_monthly_budget('2024-08', 0.05)").unwrap();
    let blob = "m".repeat(1 << 20);
    let meta = serde_json::json!({"blob": blob, "marker": "META-MARKER"}).to_string();
    assert!(meta.len() > 1 << 20);
    // $0.04 of $0.05: the warning level.
    let cost: String = c
        .query_one(
            "SELECT (neon_budget.track_cost('CONTENT', 1000, task => 'TASK-MARKER', metadata => $1::text::jsonb,
                     created_at => '2024-08-10 00:00+00')).cost::text",
            &[&meta],
        )
        .unwrap()
        .get(0);
    assert_eq!(cost, "0.04");
    assert_sql(
        c,
        &format!(
            "SELECT octet_length(metadata->>'blob') = {} AND metadata->>'marker' = 'META-MARKER' AND md5(metadata->>'blob') = md5(repeat('m', {}))
               FROM neon_budget.billing_log WHERE task = 'TASK-MARKER'",
            1 << 20,
            1 << 20
        ),
    );
    // The same through a multi-row INSERT: +$0.01 reaches critical and exceeded.
    c.execute(
        "INSERT INTO neon_budget.billing_log (agent_type, tokens, cost, task, metadata, created_at)
         VALUES ('SEO', 1, 0.005, 'TASK-MARKER-2', $1::text::jsonb, '2024-08-11 00:00+00'),
                ('SEO', 1, 0.005, 'TASK-MARKER-3', $1::text::jsonb, '2024-08-12 00:00+00')",
        &[&meta],
    )
    .unwrap();
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.billing_log WHERE octet_length(metadata->>'blob') = 1048576"), 3);
    assert_eq!(text(c, "SELECT total_spent::text FROM neon_budget.monthly_budget WHERE month = '2024-08'"), s("0.050"));
    let payloads = raw_alerts_received(&mut l, WAIT);
    let levels: Vec<String> = payloads
        .iter()
        .map(|p| {
            assert!(p.len() < 8000, "payload of {} bytes", p.len());
            for secret in ["META-MARKER", "TASK-MARKER", "blob", "mmmm", "metadata", "task"] {
                assert!(!p.contains(secret), "payload carries {secret:?}: {}", &p[..p.len().min(300)]);
            }
            let v: serde_json::Value = serde_json::from_str(p).unwrap();
            let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
            keys.sort();
            assert_eq!(keys, vec!["alert_id", "budget", "campaign_id", "level", "month", "scope", "spent", "utilization"]);
            v["level"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(levels, vec!["warning", "critical", "exceeded"]);
    assert_oracle(c);
}

#[test]
fn unicode_campaign_ids() {
    let mut db = TestDb::seeded("ext_unicode_campaigns");
    let mut l = listener(&db);
    let c = &mut db.client;
    let ids = ["캠페인-🚀", "ça", "حملة"];
    for (i, id) in ids.iter().enumerate() {
        c.execute("SELECT neon_budget.set_campaign($1, $1, NULL, 1)", &[id]).unwrap();
        // Current month (budget_check reads it); $0.90 of $1: the campaign's warning.
        let cost = format!("0.9{i}");
        let got: Option<String> = c
            .query_one(
                "SELECT (neon_budget.track_cost('CONTENT', 1000, campaign_id => $1, cost => $2::text::numeric)).campaign_id",
                &[id, &cost],
            )
            .unwrap()
            .get(0);
        assert_eq!(got.as_deref(), Some(*id));
    }
    for (i, id) in ids.iter().enumerate() {
        let row = c
            .query_one(
                "SELECT total_cost::text, executions, length(campaign_id), octet_length(campaign_id)
                   FROM neon_budget.campaign_cost WHERE campaign_id = $1 AND month = neon_budget._current_month()",
                &[id],
            )
            .unwrap();
        assert_eq!(row.get::<_, String>(0), format!("0.9{i}"), "{id}");
        assert_eq!(row.get::<_, i64>(1), 1, "{id}");
        assert_eq!(row.get::<_, i32>(2) as usize, id.chars().count(), "{id}");
        assert_eq!(row.get::<_, i32>(3) as usize, id.len(), "{id}");
        let check = c
            .query_one("SELECT campaign_id, campaign_spent::text, campaign_budget::text FROM neon_budget.budget_check($1)", &[id])
            .unwrap();
        assert_eq!(check.get::<_, Option<String>>(0).as_deref(), Some(*id));
        assert_eq!(check.get::<_, Option<String>>(1), Some(format!("0.9{i}")), "{id}");
        assert_eq!(check.get::<_, Option<String>>(2).as_deref(), Some("1"), "{id}");
    }
    // One warning per campaign, with the id intact in alert_log and in the payload.
    let logged: Vec<String> = c
        .query("SELECT campaign_id || ' ' || level FROM neon_budget.alert_log WHERE scope = 'campaign' ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(logged, ids.iter().map(|id| format!("{id} warning")).collect::<Vec<_>>());
    let got = alerts_received(&mut l, WAIT);
    let sent: Vec<(String, String)> =
        got.iter().map(|v| (v["campaign_id"].as_str().unwrap_or("<null>").to_string(), v["level"].as_str().unwrap().to_string())).collect();
    assert_eq!(sent, ids.iter().map(|id| (id.to_string(), "warning".to_string())).collect::<Vec<_>>());
    // The report names them (no escape needed: a '-' inside a name cannot start a list).
    let report = text(c, "SELECT neon_budget.budget_report()").unwrap();
    for shown in ["캠페인-🚀", "ça", "حملة"] {
        assert!(report.contains(shown), "{shown:?} missing from\n{report}");
    }
    assert_oracle(c);
}

#[test]
fn empty_and_whitespace_campaign_ids() {
    let mut db = TestDb::seeded("ext_empty_campaign_ids");
    let c = &mut db.client;
    // An empty or blank campaign id is a client bug, not a campaign: track_cost, budget_reserve
    // and set_campaign refuse it with 22023 (NULL means "no campaign") and write nothing.
    let before = int(c, "SELECT count(*) FROM neon_budget.billing_log");
    for id in ["", "   ", "\t"] {
        assert_eq!(sqlstate(c.query("SELECT neon_budget.track_cost('CONTENT', 1000, campaign_id => $1)", &[&id])), "22023", "{id:?}");
        assert_eq!(sqlstate(c.query("SELECT neon_budget.set_campaign($1, 'Blank', NULL, 10)", &[&id])), "22023", "{id:?}");
    }
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.billing_log"), before);
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.campaign WHERE btrim(campaign_id, E' \\t') = ''"), 0);
    // An agent type is trimmed before the emptiness check.
    rejects(c, "SELECT neon_budget.track_cost('   ', 100)", "22023");
    rejects(c, "SELECT neon_budget.track_cost(E'\\t', 100, cost => 1)", "22023");
    assert_oracle(c);
}

#[test]
fn report_of_a_month_without_data() {
    let mut db = TestDb::seeded("ext_empty_report");
    let c = &mut db.client;
    let before = table_counts(c);
    let report = text(c, "SELECT neon_budget.budget_report('2031-05')").unwrap();
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(
        lines[..10],
        [
            "# Budget Report - 2031-05",
            "",
            "## 📊 Monthly Overview",
            "",
            "- Total Budget: $1,000.00",
            "- Total Spent: $0.00",
            "- Utilization: 0.0%",
            "- Remaining: $1,000.00",
            "- Total Executions: 0",
            "- Status: ok",
        ],
        "{report}"
    );
    // Reading a report writes nothing (not even the month's settings row).
    assert_eq!(table_counts(c), before);
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.monthly_budget_setting WHERE month = '2031-05'"), 0);
    assert_oracle(c);
}

#[test]
fn months_far_in_the_future_and_before_1970() {
    let mut db = TestDb::seeded("ext_far_months");
    db.allow_future_created_at();
    let c = &mut db.client;
    assert_eq!(
        text(c, "SELECT (neon_budget.track_cost('CONTENT', 1000, created_at => '9999-12-31 23:00+00')).billing_month"),
        s("9999-12")
    );
    assert_eq!(
        text(c, "SELECT (neon_budget.track_cost('CONTENT', 2000, created_at => '1969-07-20 20:17+00')).billing_month"),
        s("1969-07")
    );
    assert_eq!(
        text(c, "SELECT (neon_budget.track_cost('CONTENT', 3000, created_at => '0001-01-01 00:00+00')).billing_month"),
        s("0001-01")
    );
    // The trigger that fills billing_month for direct writes agrees.
    c.batch_execute(
        "INSERT INTO neon_budget.billing_log (agent_type, tokens, cost, created_at, task)
         VALUES ('SEO', 1, 0.5, '9999-12-31 23:59:59.999999+00', 'future'), ('SEO', 1, 0.25, '1969-07-21 02:56+00', 'past')",
    )
    .unwrap();
    assert_eq!(
        text(c, "SELECT string_agg(task || '=' || billing_month, ',' ORDER BY task) FROM neon_budget.billing_log WHERE task IS NOT NULL"),
        s("future=9999-12,past=1969-07")
    );
    let months: Vec<String> = c
        .query(
            "SELECT month || ' ' || total_spent::text || ' ' || executions FROM neon_budget.monthly_budget
              WHERE month IN ('0001-01', '1969-07', '9999-12') ORDER BY month",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(months, vec!["0001-01 0.12 1", "1969-07 0.33 2", "9999-12 0.54 2"]);
    c.batch_execute("SELECT neon_budget.set_monthly_budget('9999-12', 10); SELECT neon_budget.set_monthly_budget('0001-01', 10)").unwrap();
    let report = text(c, "SELECT neon_budget.budget_report('9999-12')").unwrap();
    assert!(
        report.starts_with(
            "# Budget Report - 9999-12\n\n## 📊 Monthly Overview\n\n- Total Budget: $10.00\n- Total Spent: $0.54\n- Utilization: 5.4%\n"
        ),
        "{report}"
    );
    // In a time zone east of UTC the same instant is in year 10000: refused by billing_log's
    // month CHECK (23514), nothing written. West of UTC, 1970-01-01 05:00 UTC is December 1969.
    c.batch_execute("SET neon_budget.timezone = 'Pacific/Kiritimati'").unwrap();
    rejects(c, "SELECT neon_budget.track_cost('CONTENT', 1000, created_at => '9999-12-31 23:00+00')", "23514");
    c.batch_execute("SET neon_budget.timezone = 'America/Los_Angeles'").unwrap();
    assert_eq!(
        text(c, "SELECT (neon_budget.track_cost('CONTENT', 1000, created_at => '1970-01-01 05:00+00')).billing_month"),
        s("1969-12")
    );
    c.batch_execute("RESET neon_budget.timezone").unwrap();
    assert_oracle_after_zone_change(c);
}

#[test]
fn timestamps_beyond_year_9999_and_infinity_write_nothing() {
    let mut db = TestDb::seeded("ext_year_10000");
    db.allow_future_created_at();
    let c = &mut db.client;
    // Year 10000 makes the month '10000-01', which billing_log's CHECK refuses (23514);
    // ±infinity has no month at all: refused with 22008 (datetime_field_overflow). Either way
    // nothing is written.
    rejects(c, "SELECT neon_budget.track_cost('CONTENT', 1000, created_at => '10000-01-01 00:00+00')", "23514");
    rejects(c, "SELECT neon_budget.track_cost('CONTENT', 1000, cost => 1, created_at => '294276-12-31 23:59:59+00')", "23514");
    rejects(c, "SELECT neon_budget.track_cost('CONTENT', 1000, created_at => 'infinity')", "22008");
    rejects(c, "SELECT neon_budget.track_cost('CONTENT', 1000, created_at => '-infinity')", "22008");
    rejects(
        c,
        "INSERT INTO neon_budget.billing_log (agent_type, tokens, cost, created_at)
         VALUES ('SEO', 1, 0.1, '2024-01-01 00:00+00'), ('SEO', 1, 0.1, '10000-01-01 00:00+00')",
        "23514",
    );
    rejects(c, "INSERT INTO neon_budget.billing_log (agent_type, tokens, cost, created_at) VALUES ('SEO', 1, 0.1, 'infinity')", "22008");
    copy_rejects(c, "agent_type, tokens, cost, created_at", "SEO,1,0.1,2024-01-02 00:00+00\nSEO,1,0.1,infinity\n", "22008");
    // Inside a transaction, the failure leaves earlier work alone.
    c.batch_execute("BEGIN; SELECT neon_budget.track_cost('CONTENT', 1000, created_at => '2024-01-11 00:00+00'); SAVEPOINT s").unwrap();
    assert_eq!(sqlstate(c.batch_execute("SELECT neon_budget.track_cost('CONTENT', 1000, created_at => 'infinity')")), "22008");
    c.batch_execute("ROLLBACK TO SAVEPOINT s; COMMIT").unwrap();
    assert_eq!(text(c, "SELECT total_spent::text FROM neon_budget.monthly_budget WHERE month = '2024-01'"), s("0.08"));
    assert_oracle(c);
}

#[test]
fn month_arguments_out_of_range() {
    let mut db = TestDb::seeded("ext_month_args");
    let c = &mut db.client;
    rejects(c, "SELECT neon_budget.set_monthly_budget('0000-01', 10)", "22007");
    rejects(c, "SELECT neon_budget.set_monthly_budget('10000-01', 10)", "22007");
    rejects(c, "SELECT neon_budget.budget_report('0000-01')", "22007");
    rejects(c, "SELECT neon_budget.budget_report('10000-01')", "22007");
    // The bounds themselves work.
    c.batch_execute("SELECT neon_budget.set_monthly_budget('0001-01', 10); SELECT neon_budget.set_monthly_budget('9999-12', 10)").unwrap();
    assert_eq!(
        text(c, "SELECT string_agg(month || '=' || total_budget, ',' ORDER BY month) FROM neon_budget.monthly_budget_setting WHERE month IN ('0001-01', '9999-12')"),
        s("0001-01=10,9999-12=10")
    );
    assert_oracle(c);
}

#[test]
fn nan_negative_and_infinite_arguments() {
    let mut db = TestDb::seeded("ext_nan_negative");
    let c = &mut db.client;
    rejects(c, "SELECT neon_budget.track_cost('CONTENT', 100, cost => -0.000001)", "22003");
    rejects(c, "SELECT neon_budget.track_cost('CONTENT', 100, cost => 'NaN'::numeric)", "22003");
    rejects(c, "SELECT neon_budget.track_cost('CONTENT', 100, cost => '-Infinity'::numeric)", "22003");
    rejects(c, "SELECT neon_budget.track_cost('CONTENT', '-9223372036854775808'::bigint)", "22003");
    rejects(c, "SELECT neon_budget.set_monthly_budget('2024-01', 'NaN')", "22023");
    rejects(c, "SELECT neon_budget.set_monthly_budget('2024-02', 'NaN')", "22023");
    rejects(c, "SELECT neon_budget.set_campaign('c', 'C', NULL, 'NaN')", "22023");
    rejects(c, "SELECT neon_budget.set_agent_rate('CONTENT', 'NaN')", "22023");
    for q in ["NaN", "Infinity", "-Infinity"] {
        rejects(c, &format!("SELECT neon_budget.track_cost('CONTENT', 100, quality_score => '{q}'::float8)"), "22003");
        rejects(c, &format!("SELECT neon_budget.track_cost('CONTENT', 100, impact_score => '{q}'::float8)"), "22003");
    }
    rejects(c, "SELECT neon_budget.track_cost('CONTENT', 100, execution_time_ms => -1)", "22003");
    rejects(c, "SELECT neon_budget.track_cost('CONTENT', 100, retry_count => -1)", "22003");
    rejects(c, "SELECT * FROM neon_budget.budget_check(NULL, 'CONTENT', '-9223372036854775808'::bigint)", "22003");
    // Direct writes of NaN scores or negative amounts fail billing_log's CHECKs.
    rejects(c, "INSERT INTO neon_budget.billing_log (agent_type, tokens, cost, quality_score) VALUES ('SEO', 1, 0.1, 'NaN')", "23514");
    rejects(c, "INSERT INTO neon_budget.billing_log (agent_type, tokens, cost, execution_time_ms) VALUES ('SEO', 1, 0.1, -1)", "23514");
    rejects(c, "INSERT INTO neon_budget.billing_log (agent_type, tokens, cost) VALUES ('SEO', 1, '-Infinity')", "23514");
    assert_oracle(c);
}

// ---------------------------------------------------------------------------------------------
// The tests below assert what the documented contract implies; at the time of writing they
// fail (see each test's comment).
// ---------------------------------------------------------------------------------------------

/// `track_cost(cost => 'Infinity')` must be refused like NaN (22003): an infinite dollar
/// amount is not a cost. Found: it passes the NaN and negative checks, is inserted, and the
/// alert payload then panics turning 'Infinity' into a JSON number (XX000).
#[test]
fn infinite_cost_is_refused_like_nan() {
    let mut db = TestDb::seeded("ext_infinite_cost");
    let c = &mut db.client;
    rejects(c, "SELECT neon_budget.track_cost('CONTENT', 100, cost => 'Infinity'::numeric)", "22003");
    assert_oracle(c);
}

/// A direct INSERT / UPDATE / COPY of a NaN or infinite cost must fail billing_log's CHECK
/// like a negative one (23514). Found: `cost >= 0` is true for NaN and Infinity in PostgreSQL,
/// the row gets to the aggregate trigger, and the alert payload panics (XX000).
#[test]
fn direct_writes_of_nan_or_infinite_cost_fail_their_check() {
    let mut db = TestDb::seeded("ext_direct_nan_cost");
    let c = &mut db.client;
    rejects(c, "INSERT INTO neon_budget.billing_log (agent_type, tokens, cost) VALUES ('SEO', 1, 'NaN')", "23514");
    rejects(c, "INSERT INTO neon_budget.billing_log (agent_type, tokens, cost) VALUES ('SEO', 1, 'Infinity')", "23514");
    rejects(c, "UPDATE neon_budget.billing_log SET cost = 'NaN'", "23514");
    copy_rejects(c, "agent_type, tokens, cost", "SEO,1,NaN\n", "23514");
    assert_oracle(c);
}

/// Infinite budgets and rates must be refused like NaN ones (22023). Found: accepted; an
/// infinite month budget prints "Total Budget: $In,fin,ity" in budget_report, and after
/// `set_agent_rate('CONTENT', 'Infinity')` every CONTENT track_cost fails with XX000 (even with
/// 0 tokens: 0 × Infinity is NaN).
#[test]
fn infinite_budgets_and_rates_are_refused_like_nan() {
    let mut db = TestDb::seeded("ext_infinite_budget");
    let c = &mut db.client;
    rejects(c, "SELECT neon_budget.set_agent_rate('CONTENT', 'Infinity')", "22023");
    rejects(c, "SELECT neon_budget.set_monthly_budget('2024-01', 'Infinity')", "22023");
    rejects(c, "SELECT neon_budget.set_monthly_budget('2024-02', 'Infinity')", "22023");
    rejects(c, "SELECT neon_budget.set_campaign('c', 'C', NULL, 'Infinity')", "22023");
    assert_oracle(c);
}

/// A very large but finite cost (10^4000 dollars; numeric allows 131072 digits) is real spend:
/// the README says track_cost is never refused for being over budget and alert payloads stay
/// under the 8000-byte NOTIFY limit. Found: the payload's spent/utilization numbers exceed the
/// limit and the call fails with 22023 "payload string too long" (nothing is recorded).
#[test]
fn huge_finite_cost_is_recorded() {
    let mut db = TestDb::seeded("ext_huge_cost");
    let mut l = listener(&db);
    let c = &mut db.client;
    let r = c
        .query_one("SELECT (neon_budget.track_cost('CONTENT', 1, cost => 1e4000, created_at => '2024-09-01 00:00+00')).cost = 1e4000", &[]);
    let ok: bool = r.map(|row| row.get(0)).unwrap_or_else(|e| {
        panic!(
            "track_cost of a $1e4000 cost failed: {:?} {}",
            e.code().map(|s| s.code()),
            e.as_db_error().map(|d| d.message()).unwrap_or_default()
        )
    });
    assert!(ok);
    assert_sql(c, "SELECT total_spent = 1e4000 FROM neon_budget.monthly_budget WHERE month = '2024-09'");
    for p in raw_alerts_received(&mut l, WAIT) {
        assert!(p.len() < 8000, "payload of {} bytes", p.len());
    }
    assert_oracle(c);
}

/// A created_at before year 1 (BC) has no `YYYY-MM` billing month; it must not be counted in
/// the AD month of the same number. Found: '0044-03-15 BC' is recorded in month '0044-03'.
#[test]
fn created_at_before_year_1_is_not_counted_in_an_ad_month() {
    let mut db = TestDb::seeded("ext_bc_dates");
    let c = &mut db.client;
    let before = table_counts(c);
    let r = c.query_one("SELECT (neon_budget.track_cost('CONTENT', 1000, created_at => '0044-03-15 12:00+00 BC')).billing_month", &[]);
    match r {
        Ok(row) => panic!("a 44 BC execution was recorded in billing month {:?} (the year 44 AD)", row.get::<_, Option<String>>(0)),
        Err(e) => {
            let code = e.code().map(|s| s.code().to_string()).unwrap_or_default();
            assert!(!code.starts_with("XX") && !code.is_empty() && code != "22000", "generic SQLSTATE {code}: {e}");
            assert_eq!(table_counts(c), before, "a refused BC execution wrote something");
        }
    }
    assert_oracle(c);
}
