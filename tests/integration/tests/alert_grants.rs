//! Escrow grants (src/alert_grants.rs): a backend writes without reading the totals while its
//! spend stays within its grant of the headroom below the next alert level. These tests pin the
//! grant arithmetic and make each way a grant can go stale happen from ANOTHER session (or by
//! a rollback), then check that the write that reaches the level still sends it. Each one
//! fails if the corresponding revocation is removed: the covered write would skip its read.
//!
//! Budget 100 in every test: warning at 80, critical at 95, exceeded at 100 (dollars).
use neon_budget_integration::*;
use postgres::Client;
use std::time::Duration;

const WAIT: Duration = Duration::from_millis(400);
const AT: &str = "created_at => '2024-09-10 00:00+00'";

fn track(c: &mut Client, cost: &str) {
    c.batch_execute(&format!("SELECT neon_budget.track_cost('CONTENT', 1, cost => {cost}, {AT})")).unwrap();
}

/// The grant of the connection's own slot row of September 2024, as text.
fn own_cap(c: &mut Client) -> String {
    text(c, "SELECT alert_cap::text FROM neon_budget._month_spend WHERE billing_month = '2024-09' AND slot = neon_budget._slot()")
        .unwrap_or_default()
}

fn setup(name: &str) -> (TestDb, Client, Client, Client) {
    let db = TestDb::new(name);
    let l = listener(&db);
    let mut a = db.connect();
    let b = db.connect();
    a.batch_execute("SELECT neon_budget.set_monthly_budget('2024-09', 100)").unwrap();
    (db, l, a, b)
}

/// Headroom H = next level - own spend - Σ other slots' max(spend, grant); a grant is
/// H / (2 × slots), stored as own spend + share.
#[test]
fn grants_split_the_headroom_below_the_next_level() {
    let (_db, _l, mut a, mut b) = setup("grants_split");
    // a: H = 80 - 1 = 79, one slot: share 79 / 2 = 39.5, grant 1 + 39.5.
    track(&mut a, "1");
    assert_eq!(own_cap(&mut a).parse::<f64>().unwrap(), 40.5);
    // b: H = 80 - 1 - max(1, 40.5) = 38.5, two slots: share 38.5 / 4 = 9.625, grant 10.625.
    track(&mut b, "1");
    assert_eq!(own_cap(&mut b).parse::<f64>().unwrap(), 10.625);
    // a's next writes are covered: its grant row stays as it was.
    track(&mut a, "2");
    track(&mut a, "3");
    assert_eq!(own_cap(&mut a).parse::<f64>().unwrap(), 40.5);
    assert_oracle(&mut a);
}

/// A grant taken in a transaction that rolls back is gone from the row; the backend must not
/// keep using it.
#[test]
fn a_grant_taken_in_a_rolled_back_transaction_is_dropped() {
    for (begin, undo) in [("BEGIN", "ROLLBACK"), ("BEGIN; SAVEPOINT s", "ROLLBACK TO SAVEPOINT s; COMMIT")] {
        let (_db, mut l, mut a, mut b) = setup("grants_rollback");
        a.batch_execute(begin).unwrap();
        track(&mut a, "1"); // grant 39.5 (undone below)
        a.batch_execute(undo).unwrap();
        track(&mut b, "1"); // b alone: grant 39.5
        track(&mut b, "39"); // covered
        track(&mut b, "39"); // 79: reads, nothing due; grant 0.5
        assert_eq!(raw_alerts_received(&mut l, WAIT), Vec::<String>::new());
        // 80.5: a's undone grant would have covered this write.
        track(&mut a, "1.5");
        assert_eq!(alert_levels(&raw_alerts_received(&mut l, WAIT)), vec!["month:warning:80.5"], "{undo}");
        assert_oracle(&mut a);
    }
}

/// Spend written by the SQL path (a multi-row INSERT) is outside every grant: it revokes them.
#[test]
fn a_multi_row_insert_revokes_grants() {
    let (_db, mut l, mut a, mut b) = setup("grants_multi_row");
    track(&mut a, "1"); // grant 39.5
    b.batch_execute(
        "INSERT INTO neon_budget.billing_log (agent_type, tokens, cost, created_at, billing_month)
         VALUES ('CONTENT', 1, 40, '2024-09-10 00:00+00', '2024-09'), ('CONTENT', 1, 38, '2024-09-10 00:00+00', '2024-09')",
    )
    .unwrap();
    assert_eq!(raw_alerts_received(&mut l, WAIT), Vec::<String>::new());
    track(&mut a, "1"); // 80
    assert_eq!(alert_levels(&raw_alerts_received(&mut l, WAIT)), vec!["month:warning:80"]);
    assert_oracle(&mut a);
}

/// A single write larger than the headroom left after the others' grants revokes them.
#[test]
fn a_write_past_the_unallocated_headroom_revokes_grants() {
    let (_db, mut l, mut a, mut b) = setup("grants_past_headroom");
    track(&mut a, "1"); // grant 39.5
    track(&mut b, "1"); // grant 9.625
    track(&mut b, "77"); // 79: beyond b's grant; H = 80 - 78 - 40.5 < 0: revokes
    assert_eq!(raw_alerts_received(&mut l, WAIT), Vec::<String>::new());
    track(&mut a, "1"); // 80: a's grant of 39.5 would have covered it
    assert_eq!(alert_levels(&raw_alerts_received(&mut l, WAIT)), vec!["month:warning:80"]);
    // After the warning: grants again, below critical (95), and critical is sent by its write.
    track(&mut a, "14");
    track(&mut b, "0.5");
    assert_eq!(raw_alerts_received(&mut l, WAIT), Vec::<String>::new());
    track(&mut b, "0.5"); // 95
    assert_eq!(alert_levels(&raw_alerts_received(&mut l, WAIT)), vec!["month:critical:95.0"]);
    assert_oracle(&mut a);
}

/// A budget lowered by the grant holder itself drops its grant: its own settings change is a
/// revocation too (`alert_state`'s place among the watched relations, pg/invalidation.rs).
#[test]
fn a_budget_lowered_by_the_grant_holder_drops_its_grant() {
    let (_db, mut l, mut a, _b) = setup("grants_own_change");
    a.batch_execute("SELECT neon_budget.set_monthly_budget('2024-09', 1000)").unwrap();
    track(&mut a, "1"); // warning at 800: grant 1 + 399.5
    a.batch_execute("SELECT neon_budget.set_monthly_budget('2024-09', 100)").unwrap(); // warning at 80
    assert_eq!(raw_alerts_received(&mut l, WAIT), Vec::<String>::new());
    track(&mut a, "79"); // 80: within the old grant, past the new level
    assert_eq!(alert_levels(&raw_alerts_received(&mut l, WAIT)), vec!["month:warning:80"]);
    assert_oracle(&mut a);
}

/// Campaign scopes take their own grants, below the campaign's levels.
#[test]
fn campaign_grants_follow_the_campaign_budget() {
    let (_db, mut l, mut a, mut b) = setup("grants_campaign");
    a.batch_execute("SELECT neon_budget.set_monthly_budget('2024-09', 1000000)").unwrap();
    a.batch_execute("SELECT neon_budget.set_campaign('c1', 'C1', NULL, 10)").unwrap();
    let camp = |c: &mut Client, cost: &str| {
        c.batch_execute(&format!("SELECT neon_budget.track_cost('SEO', 1, campaign_id => 'c1', cost => {cost}, {AT})")).unwrap()
    };
    camp(&mut a, "1"); // campaign warning at 8: grant (8 - 1) / 2 = 3.5
    camp(&mut b, "6"); // 7: b beyond any grant; H = 8 - 6 - 4.5 < 0: revokes
    assert_eq!(raw_alerts_received(&mut l, WAIT), Vec::<String>::new());
    camp(&mut a, "1"); // 8
    assert_eq!(alert_levels(&raw_alerts_received(&mut l, WAIT)), vec!["campaign:warning:8"]);
    assert_oracle(&mut a);
}

/// The settlement lock is never waited for: a session holding it by hand (an advisory lock in
/// the extension's key space) only makes writers settle without a grant.
#[test]
fn a_held_settlement_lock_does_not_block_writers() {
    let (db, mut l, mut a, mut b) = setup("grants_lock_held");
    // The key of the month scope, as src/alert_grants.rs computes it (FNV-1a of the scope key).
    let scope = b"month\x00\x002024-09";
    let hash = scope.iter().fold(0x811c_9dc5u32, |h, &x| (h ^ u32::from(x)).wrapping_mul(0x0100_0193));
    let mut holder = db.connect();
    holder.batch_execute(&format!("SELECT pg_advisory_lock({}, {})", 0x4e42_0003i32, hash as i32)).unwrap();
    for c in [&mut a, &mut b] {
        c.batch_execute("SET statement_timeout = '3s'").unwrap();
    }
    track(&mut a, "1");
    assert_eq!(own_cap(&mut a).parse::<f64>().unwrap(), 0.0, "no grant without the lock");
    track(&mut b, "78");
    track(&mut a, "1"); // 80
    assert_eq!(alert_levels(&raw_alerts_received(&mut l, WAIT)), vec!["month:warning:80"]);
    holder.batch_execute(&format!("SELECT pg_advisory_unlock({}, {})", 0x4e42_0003i32, hash as i32)).unwrap();
    // 81: settles again below critical (95): a's spend 3, b's 78, H = 95 - 3 - 78 = 14, two
    // slots: share 3.5, grant 6.5.
    track(&mut a, "1");
    assert_eq!(own_cap(&mut a).parse::<f64>().unwrap(), 6.5);
    assert_oracle(&mut a);
}
