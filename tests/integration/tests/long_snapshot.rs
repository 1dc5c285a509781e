//! `budget_check` under a long-held snapshot: while a REPEATABLE READ transaction stays open,
//! every write leaves its slot row's old version in place (nothing older than that snapshot can
//! be pruned), and the pages fill so that updates stop being HOT and add index entries.
//! `budget_check` and the views read the slot rows newest first and skip the versions of a row
//! they have already counted (`pg::table_scan::newest_versions`); this checks that they still
//! count every slot row exactly once, for a fresh snapshot and for the old one, and that the
//! reading function reads nothing but the slot tables.
use neon_budget_integration::*;

/// Writes by `WRITERS` sessions of `PER_WRITER` calls of $0.01 each, writer `w` on campaign
/// `c{w % 3 + 1}`.
const WRITERS: usize = 4;
const PER_WRITER: usize = 1500;

#[test]
fn budget_check_counts_every_slot_once_under_a_long_snapshot() {
    let mut db = TestDb::new("long_snapshot");
    db.client
        .batch_execute(
            "SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 1000000);
             SELECT neon_budget.set_campaign('c' || i, 'Campaign ' || i, 'TEST', 1000000) FROM generate_series(1, 3) i;
             SELECT neon_budget.track_cost('CONTENT', 0, campaign_id => 'c1', cost => 1.00) FROM generate_series(1, 3);",
        )
        .unwrap();
    let mut holder = db.connect();
    holder.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ").unwrap();
    let check = "SELECT total_spent::text || ' ' || campaign_spent::text FROM neon_budget.budget_check('c1')";
    assert_eq!(text(&mut holder, check).as_deref(), Some("3.00 3.00"));

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let mut c = db.connect();
            std::thread::spawn(move || {
                for _ in 0..PER_WRITER {
                    track_cost(&mut c, &format!("'CONTENT', 0, campaign_id => 'c{}', cost => 0.01", w % 3 + 1));
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }

    // The writes made new index entries (updates that could not stay on their page), so the
    // newest-first scan met several entries, and chains of dead versions, per slot.
    let mut fresh = db.connect();
    fresh.batch_execute("SELECT pg_stat_force_next_flush()").unwrap();
    let non_hot = int(
        &mut fresh,
        "SELECT (n_tup_upd - n_tup_hot_upd)::bigint FROM pg_stat_user_tables
          WHERE schemaname = 'neon_budget' AND relname = '_campaign_spend'",
    );
    let pages = int(&mut fresh, "SELECT pg_relation_size('neon_budget._campaign_spend') / 8192");
    eprintln!("non-HOT updates {non_hot}, pages {pages}");
    assert!(non_hot > 0 || pages > 8, "the writes stayed HOT on few pages ({non_hot} non-HOT updates, {pages} pages)");

    // c1: 3.00 + 2 × 1500 × 0.01 = 33.00; c2 and c3: 15.00 each; 63.00 in all, for a fresh
    // snapshot; the old one still sees 3.00, all on c1.
    assert_eq!(text(&mut fresh, check).as_deref(), Some("63.00 33.00"));
    assert_eq!(text(&mut fresh, "SELECT sum(cost)::text FROM neon_budget.billing_log WHERE campaign_id = 'c1'").as_deref(), Some("33.00"));
    let campaigns = "SELECT string_agg(campaign_id || ' ' || total_cost || ' ' || executions, ', ' ORDER BY campaign_id) FROM neon_budget.campaign_cost";
    let month = "SELECT total_spent || ' ' || executions FROM neon_budget.monthly_budget WHERE month = neon_budget._current_month()";
    let agents = "SELECT string_agg(agent_type || ' ' || total_cost || ' ' || executions, ', ') FROM neon_budget.agent_cost";
    let days = "SELECT sum(total_cost)::text FROM neon_budget.daily_cost";
    assert_eq!(text(&mut fresh, campaigns).as_deref(), Some("c1 33.00 3003, c2 15.00 1500, c3 15.00 1500"));
    assert_eq!(text(&mut fresh, month).as_deref(), Some("63.00 6003"));
    assert_eq!(text(&mut fresh, agents).as_deref(), Some("CONTENT 63.00 6003"));
    assert_eq!(text(&mut fresh, days).as_deref(), Some("63.00"));
    assert_eq!(text(&mut holder, check).as_deref(), Some("3.00 3.00"));
    assert_eq!(text(&mut holder, campaigns).as_deref(), Some("c1 3.00 3"));
    assert_eq!(text(&mut holder, month).as_deref(), Some("3.00 3"));
    assert_eq!(text(&mut holder, agents).as_deref(), Some("CONTENT 3.00 3"));
    assert_eq!(text(&mut holder, days).as_deref(), Some("3.00"));
    holder.batch_execute("COMMIT").unwrap();
    assert_oracle(&mut fresh);
}

/// The C function behind `_campaign_spend_rows()` and its siblings reads a table with no
/// privilege check, so it refuses any row type but the four slot tables' (42809), even for a
/// superuser who declares it otherwise.
#[test]
fn the_slot_reader_reads_only_slot_tables() {
    let mut db = TestDb::new("slot_reader");
    db.client
        .batch_execute(
            "CREATE TABLE public.secret (slot integer PRIMARY KEY, cost numeric);
             CREATE FUNCTION public.read_secret() RETURNS SETOF public.secret
                 LANGUAGE c AS '$libdir/neon_budget', 'slot_rows';
             CREATE FUNCTION public.read_log() RETURNS SETOF neon_budget.billing_log
                 LANGUAGE c AS '$libdir/neon_budget', 'slot_rows';",
        )
        .unwrap();
    rejects(&mut db.client, "SELECT * FROM public.read_secret()", "42809");
    rejects(&mut db.client, "SELECT * FROM public.read_log()", "42809");
    assert_eq!(int(&mut db.client, "SELECT count(*) FROM neon_budget._month_spend_rows()"), 0);
}
