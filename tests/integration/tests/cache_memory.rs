//! Per-backend caches are bounded and visible: a session that writes to and checks many
//! distinct campaigns keeps its caches within a fixed size, all of it in the memory context
//! `neon_budget caches` that `pg_backend_memory_contexts` shows.
use neon_budget_integration::TestDb;

/// Bytes of the `neon_budget caches` context of this session's backend (0 before first use).
fn cache_bytes(c: &mut postgres::Client) -> i64 {
    c.query_one("SELECT COALESCE(sum(total_bytes), 0)::bigint FROM pg_backend_memory_contexts WHERE name = 'neon_budget caches'", &[])
        .unwrap()
        .get(0)
}

/// Anonymous memory of this session's backend process, in kB (`RssAnon` of /proc/PID/status).
fn backend_anon_kb(c: &mut postgres::Client) -> i64 {
    let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("RssAnon:")).expect("RssAnon in /proc/PID/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn caches_stay_bounded_over_many_campaigns() {
    let mut db = TestDb::new("cache_memory");
    let c = &mut db.client;
    c.batch_execute("SELECT neon_budget.set_agent_rate('MEM', 0.01)").unwrap();
    // Each campaign: one track_cost and one budget_check, in batches (one transaction each).
    let batch = |c: &mut postgres::Client, from: i32, to: i32| {
        c.batch_execute(&format!(
            "SELECT count(neon_budget.track_cost('MEM', 10, campaign_id => 'campaign-' || g)) FROM generate_series({from}, {to}) g;
             SELECT count(*) FROM generate_series({from}, {to}) g, neon_budget.budget_check('campaign-' || g)"
        ))
        .unwrap();
    };
    batch(c, 1, 5_000);
    let bytes_5k = cache_bytes(c);
    let anon_5k = backend_anon_kb(c);
    for start in (5_001..60_000).step_by(5_000) {
        batch(c, start, start + 4_999);
    }
    let bytes_60k = cache_bytes(c);
    let anon_60k = backend_anon_kb(c);
    eprintln!("caches: {bytes_5k} B after 5,000 campaigns, {bytes_60k} B after 60,000; RssAnon {anon_5k} kB -> {anon_60k} kB");
    assert!(bytes_5k > 0, "the caches live in the neon_budget caches context");
    // Bounded: 12 times the campaigns, no more than a fixed cap of cache memory (each cache
    // holds at most 4096 campaigns; the context's blocks are reused).
    assert!(bytes_60k <= 16 * 1024 * 1024, "caches grew to {bytes_60k} bytes");
    assert!(bytes_60k <= bytes_5k * 2 + 4 * 1024 * 1024, "caches grew from {bytes_5k} to {bytes_60k} bytes");
    // The process as a whole did not grow with the campaigns either (before: about 370 bytes
    // per campaign, i.e. about 20 MB for 55,000 more).
    assert!(anon_60k - anon_5k < 8 * 1024, "backend anonymous memory grew from {anon_5k} kB to {anon_60k} kB");
    let n: i64 = c.query_one("SELECT count(*) FROM neon_budget.campaign_cost", &[]).unwrap().get(0);
    assert_eq!(n, 60_000);
    neon_budget_integration::assert_oracle(c);
}
