//! Random SEQUENTIAL histories over four connections (single writes, transactions with
//! savepoints, rollbacks and REPEATABLE READ, multi-row INSERT, COPY, UPDATE, DELETE, budget
//! and campaign changes, budget_rebuild, purge_before, TRUNCATE, reconnects that reuse slots,
//! prepared transactions where the cluster allows them). After every step, every alert level
//! that the current totals reach must have been sent (be in alert_state), and budget_verify()
//! must find no difference: the write that reaches a level sends it, whatever grants
//! (src/alert_grants.rs) and caches each connection holds. Written by a reviewer of the grants;
//! NB_FUZZ_SEEDS, NB_FUZZ_BASE, NB_FUZZ_STEPS widen it (NB_FUZZ_HEAVY: mostly track_cost;
//! NB_FUZZ_TWO_MONTHS: writes to two months).
use neon_budget_integration::*;
use postgres::Client;

const COSTS: [&str; 10] = ["0", "0.5", "1", "2.25", "3", "5", "7.5", "10", "0.01", "1.75"];
const CAMPS: [&str; 4] = ["", "c1", "c2", "c3"];

fn track_sql(r: &mut Rng) -> String {
    let cost = r.pick(&COSTS);
    let camp = r.pick(&CAMPS);
    let c = if camp.is_empty() { "NULL".to_string() } else { format!("'{camp}'") };
    let at = if std::env::var("NB_FUZZ_TWO_MONTHS").is_ok() && r.below(2) == 0 { "2024-10-10 00:00+00" } else { "2024-09-10 00:00+00" };
    format!("SELECT neon_budget.track_cost('CONTENT', 1, campaign_id => {c}, cost => {cost}, created_at => '{at}')")
}

const VIOLATIONS: &str = "
WITH s AS (SELECT month mo, total_budget b, alert_threshold t FROM neon_budget.monthly_budget_setting),
scopes AS (
  SELECT 'month'::text scope, ''::text k, s.mo, (SELECT COALESCE(sum(cost), 0) FROM neon_budget._month_spend WHERE billing_month = s.mo) spent, s.b budget, s.t th FROM s
  UNION ALL
  SELECT 'campaign', c.campaign_id, s.mo, (SELECT COALESCE(sum(cost), 0) FROM neon_budget._campaign_spend x WHERE x.billing_month = s.mo AND x.campaign_id = c.campaign_id),
         c.monthly_budget, s.t FROM neon_budget.campaign c, s WHERE c.monthly_budget IS NOT NULL)
SELECT scope || ':' || k || ':' || mo || ':' || l || ' spent=' || spent || ' budget=' || budget
  FROM scopes, unnest(neon_budget._reached_levels(spent, budget, th)) l
 WHERE NOT EXISTS (SELECT 1 FROM neon_budget.alert_state a WHERE a.scope = scopes.scope AND a.scope_key = scopes.k
                      AND a.month = scopes.mo AND l = ANY (a.levels_sent))";

fn check(c: &mut Client, seed: u64, step: usize, log: &[String]) {
    let v: Vec<String> = c.query(VIOLATIONS, &[]).unwrap().iter().map(|r| r.get(0)).collect();
    let bad = int(c, "SELECT count(*) FROM neon_budget.budget_verify()");
    if !v.is_empty() || bad != 0 {
        let tail: Vec<&String> = log.iter().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
        panic!(
            "seed {seed} step {step}: unsent levels {v:?}, verify diffs {bad}\nlast steps:\n{}",
            tail.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
        );
    }
}

fn run(seed: u64, steps: usize) {
    let db = TestDb::new(&format!("seqfuzz_{seed}"));
    let mut admin = db.connect();
    // The check query is small; JIT would spend most of its time compiling it.
    admin.batch_execute("SET jit = off").unwrap();
    admin.batch_execute("SELECT neon_budget.set_monthly_budget('2024-09', 60, 0.8); SELECT neon_budget.set_campaign('c1','C1',NULL,15); SELECT neon_budget.set_campaign('c2','C2',NULL,25)").unwrap();
    let mut conns: Vec<Client> = (0..4).map(|_| db.connect()).collect();
    let mut r = Rng(seed);
    let mut log: Vec<String> = Vec::new();
    let mut gid = 0;
    for step in 0..steps {
        let i = r.below(conns.len() as u64) as usize;
        let heavy = std::env::var("NB_FUZZ_HEAVY").is_ok();
        let op = if heavy && r.below(100) < 75 { 0 } else { r.below(100) };
        let entry;
        if op < 40 {
            let s = track_sql(&mut r);
            conns[i].batch_execute(&s).unwrap();
            entry = format!("c{i}: {s}");
        } else if op < 55 {
            let rr = r.below(4) == 0;
            let mut parts = vec![if rr { "BEGIN ISOLATION LEVEL REPEATABLE READ".to_string() } else { "BEGIN".to_string() }];
            for _ in 0..=r.below(3) {
                parts.push(track_sql(&mut r));
            }
            let sp = r.below(2) == 0;
            if sp {
                parts.push("SAVEPOINT s".into());
                for _ in 0..=r.below(2) {
                    parts.push(track_sql(&mut r));
                }
                parts.push(if r.below(2) == 0 { "ROLLBACK TO SAVEPOINT s".into() } else { "RELEASE SAVEPOINT s".into() });
                if r.below(2) == 0 {
                    parts.push(track_sql(&mut r));
                }
            }
            parts.push(if r.below(4) == 0 { "ROLLBACK".into() } else { "COMMIT".into() });
            let s = parts.join("; ");
            conns[i].batch_execute(&s).unwrap();
            entry = format!("c{i}: {s}");
        } else if op < 60 {
            let s = format!(
                "INSERT INTO neon_budget.billing_log (agent_type, tokens, cost, campaign_id, created_at, billing_month) VALUES ('CONTENT', 1, {}, {}, '2024-09-10 00:00+00', '2024-09'), ('SEO', 1, {}, NULL, '2024-09-10 00:00+00', '2024-09')",
                r.pick(&COSTS), if r.below(2) == 0 { "'c1'" } else { "NULL" }, r.pick(&COSTS));
            conns[i].batch_execute(&s).unwrap();
            entry = format!("c{i}: {s}");
        } else if op < 65 {
            let s = "DELETE FROM neon_budget.billing_log WHERE id = (SELECT id FROM neon_budget.billing_log ORDER BY random() LIMIT 1)"
                .to_string();
            conns[i].batch_execute(&s).unwrap();
            entry = format!("c{i}: {s}");
        } else if op < 68 {
            let s = format!("UPDATE neon_budget.billing_log SET cost = cost + {} WHERE id = (SELECT id FROM neon_budget.billing_log ORDER BY random() LIMIT 1)", r.pick(&COSTS));
            conns[i].batch_execute(&s).unwrap();
            entry = format!("c{i}: {s}");
        } else if op < 73 {
            let mo = if r.below(2) == 0 { "2024-09" } else { "2024-10" };
            let s = format!("SELECT neon_budget.set_monthly_budget('{mo}', {})", 20 + r.below(120));
            conns[i].batch_execute(&s).unwrap();
            entry = format!("c{i}: {s}");
        } else if op < 78 {
            let camp = r.pick(&CAMPS[1..]);
            let b = if r.below(5) == 0 { "NULL".to_string() } else { format!("{}", 5 + r.below(40)) };
            let s = format!("SELECT neon_budget.set_campaign('{camp}', '{camp}', NULL, {b})");
            conns[i].batch_execute(&s).unwrap();
            entry = format!("c{i}: {s}");
        } else if op < 80 {
            let s = "SELECT neon_budget.budget_rebuild('2024-09')".to_string();
            conns[i].batch_execute(&s).unwrap();
            entry = format!("c{i}: {s}");
        } else if op < 85 {
            conns[i] = db.connect();
            entry = format!("c{i}: reconnect");
        } else if op < 90 {
            gid += 1;
            let mut parts = vec!["BEGIN".to_string()];
            for _ in 0..=r.below(2) {
                parts.push(track_sql(&mut r));
            }
            parts.push(format!("PREPARE TRANSACTION 'g{gid}'"));
            let s = parts.join("; ");
            match conns[i].batch_execute(&s) {
                Ok(()) => {
                    let j = r.below(conns.len() as u64) as usize;
                    let fin = if r.below(3) == 0 { format!("ROLLBACK PREPARED 'g{gid}'") } else { format!("COMMIT PREPARED 'g{gid}'") };
                    conns[j].batch_execute(&fin).unwrap();
                    entry = format!("c{i}: {s}\nc{j}: {fin}");
                }
                Err(e) => {
                    conns[i].batch_execute("ROLLBACK").unwrap();
                    entry = format!("c{i}: {s} -- failed: {}", e.as_db_error().map(|d| d.message().to_string()).unwrap_or_default());
                }
            }
        } else if op < 92 {
            let s = "SELECT neon_budget.purge_before('2030-01-01')".to_string();
            conns[i].batch_execute(&s).unwrap();
            entry = format!("c{i}: {s}");
        } else if op < 93 {
            let s = "TRUNCATE neon_budget.billing_log; DELETE FROM neon_budget.purged_spend; DELETE FROM neon_budget.purged_day_spend;
                     DELETE FROM neon_budget.purged_campaign_agent_day_spend"
                .to_string();
            conns[i].batch_execute(&s).unwrap();
            entry = format!("c{i}: {s}");
        } else if op < 97 {
            let cost = r.pick(&COSTS);
            let data = format!("CONTENT\t1\t{cost}\tc1\t2024-09-10 00:00+00\t2024-09\n");
            let mut w = conns[i]
                .copy_in("COPY neon_budget.billing_log (agent_type, tokens, cost, campaign_id, created_at, billing_month) FROM STDIN")
                .unwrap();
            std::io::Write::write_all(&mut w, data.as_bytes()).unwrap();
            w.finish().unwrap();
            entry = format!("c{i}: COPY 1 row cost {cost} c1");
        } else {
            let s =
                "SELECT neon_budget.track_cost('SEO', 0, campaign_id => 'c2', cost => 0, created_at => '2024-09-10 00:00+00')".to_string();
            conns[i].batch_execute(&s).unwrap();
            entry = format!("c{i}: {s}");
        }
        log.push(entry);
        check(&mut admin, seed, step, &log);
    }
}

#[test]
fn every_level_reached_in_a_sequential_history_is_sent() {
    let seeds: u64 = std::env::var("NB_FUZZ_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(4);
    let base: u64 = std::env::var("NB_FUZZ_BASE").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let steps: usize = std::env::var("NB_FUZZ_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    for seed in base..base + seeds {
        run(seed, steps);
    }
}
