//! Crash safety: the postmaster is killed with SIGKILL while four clients record spend; after
//! crash recovery every acknowledged execution is recorded exactly once, nothing unknown
//! appears, and the maintained aggregates and alert state agree with billing_log.
use neon_budget_integration::cluster::{children_of, wait_gone, wait_reaped, Cluster};
use neon_budget_integration::*;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DIR: &str = "/tmp/nb_crash_cluster";
const PORT: u16 = 5480;
const CLIENTS: usize = 4;

/// What one client did: the execution ids it sent (in order), those whose result came back,
/// and the one whose call failed (in flight when the server died).
#[derive(Default, Debug)]
struct ClientLog {
    attempted: Vec<String>,
    acked: Vec<String>,
    in_flight: Option<String>,
    error: Option<String>,
    error_before_kill: bool,
}

#[test]
fn acknowledged_spend_survives_sigkill_of_the_postmaster() {
    let cluster = Cluster::create(DIR, PORT);
    {
        let mut c = cluster.connect("postgres");
        c.batch_execute("CREATE DATABASE crash").unwrap();
    }
    let mut c = cluster.connect("crash");
    c.batch_execute(
        "CREATE EXTENSION neon_budget;
         SELECT neon_budget.set_monthly_budget(neon_budget._current_month(), 1000);
         SELECT neon_budget.set_campaign('c0', 'Campaign 0', 'test', 0.5);
         SELECT neon_budget.set_campaign('c1', 'Campaign 1', 'test', 2);
         SELECT neon_budget.set_campaign('c2', 'Campaign 2', 'test', 5);
         SELECT neon_budget.set_campaign('c3', 'Campaign 3', 'test', NULL);",
    )
    .unwrap();
    drop(c);

    let killed = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(25);
    let handles: Vec<_> = (0..CLIENTS)
        .map(|k| {
            let dsn = cluster.dsn("crash");
            let killed = killed.clone();
            std::thread::spawn(move || {
                let mut log = ClientLog::default();
                let mut client = postgres::Client::connect(&dsn, postgres::NoTls).unwrap();
                let stmt = client
                    .prepare("SELECT (neon_budget.track_cost('CONTENT', 100, campaign_id => 'c' || $1::text, execution_id => $2::text)).id")
                    .unwrap();
                let n = k.to_string();
                for i in 0.. {
                    if Instant::now() > deadline {
                        log.error = Some("the client never saw the server die".into());
                        break;
                    }
                    let id = format!("thread-{k}-{i}");
                    log.attempted.push(id.clone());
                    match client.query_one(&stmt, &[&n, &id]) {
                        Ok(row) => {
                            let bid: Option<i64> = row.get(0);
                            assert!(bid.is_some(), "track_cost returned no row for {id}");
                            log.acked.push(id);
                        }
                        Err(e) => {
                            log.error_before_kill = !killed.load(Ordering::SeqCst);
                            log.error = Some(match e.as_db_error() {
                                Some(d) => format!("{} {}", d.code().code(), d.message()),
                                None => e.to_string(),
                            });
                            log.in_flight = Some(id);
                            break;
                        }
                    }
                }
                log
            })
        })
        .collect();

    std::thread::sleep(Duration::from_secs(2));
    let pm = cluster.postmaster_pid();
    let children = children_of(pm);
    assert!(!children.is_empty(), "the postmaster {pm} has no children");
    killed.store(true, Ordering::SeqCst);
    let status = std::process::Command::new("kill").args(["-9", &pm.to_string()]).status().unwrap();
    assert!(status.success(), "kill -9 {pm} failed");
    let logs: Vec<ClientLog> = handles.into_iter().map(|h| h.join().expect("client thread panicked")).collect();

    // The orphaned backends and auxiliary processes exit when they notice the postmaster is
    // gone; the restart needs them gone (their shared memory must be detached).
    if !wait_gone(&children, Duration::from_secs(20)) {
        let left: Vec<i32> = children.iter().copied().filter(|p| neon_budget_integration::cluster::alive(*p)).collect();
        eprintln!("server processes {left:?} still alive 20 s after the postmaster died; killing them");
        for p in &left {
            let _ignored = std::process::Command::new("kill").args(["-9", &p.to_string()]).status();
        }
        assert!(wait_gone(&children, Duration::from_secs(10)), "server processes survive SIGKILL");
    }

    assert!(wait_reaped(pm, Duration::from_secs(20)), "the killed postmaster {pm} was not reaped in 20 s");

    for (k, log) in logs.iter().enumerate() {
        eprintln!(
            "client {k}: {} attempted, {} acknowledged, in flight {:?}, error: {:?}",
            log.attempted.len(),
            log.acked.len(),
            log.in_flight,
            log.error
        );
        assert!(!log.error_before_kill, "client {k} failed before the kill: {:?}", log.error);
        assert!(log.in_flight.is_some(), "client {k} did not stop on an error: {:?}", log.error);
        assert!(log.acked.len() >= 10, "client {k} recorded only {} executions in 2 s", log.acked.len());
    }

    // Crash recovery.
    cluster.start();
    let mut c = cluster.connect("crash");

    let acked: BTreeSet<String> = logs.iter().flat_map(|l| l.acked.iter().cloned()).collect();
    let attempted: BTreeSet<String> = logs.iter().flat_map(|l| l.attempted.iter().cloned()).collect();
    let in_flight: BTreeSet<String> = logs.iter().filter_map(|l| l.in_flight.clone()).collect();
    let acked_count: usize = logs.iter().map(|l| l.acked.len()).sum();
    assert_eq!(acked.len(), acked_count, "an execution id was acknowledged twice");

    let logged: BTreeMap<String, i64> = c
        .query("SELECT COALESCE(execution_id, '<null>'), count(*) FROM neon_budget.billing_log GROUP BY 1", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (id, n) in &logged {
        assert_eq!(*n, 1, "execution {id} recorded {n} times");
        assert!(attempted.contains(id), "billing_log holds {id}, which no client attempted");
    }
    for id in &acked {
        assert!(logged.contains_key(id), "acknowledged execution {id} is missing after recovery");
    }
    let extra: Vec<&String> = logged.keys().filter(|id| !acked.contains(*id)).collect();
    for id in &extra {
        assert!(in_flight.contains(*id), "unacknowledged execution {id} recorded, and it was not in flight");
    }
    assert!(extra.len() <= CLIENTS);
    let total = int(&mut c, "SELECT count(*) FROM neon_budget.billing_log");
    assert_eq!(total as usize, acked.len() + extra.len());
    eprintln!("after recovery: {total} rows = {} acknowledged + {} in flight ({extra:?})", acked.len(), extra.len());

    // Exact aggregates: each execution costs 100 tokens × $0.04 / 1K = $0.004.
    assert_oracle(&mut c);
    for k in 0..CLIENTS {
        let n = logged.keys().filter(|id| id.starts_with(&format!("thread-{k}-"))).count() as i64;
        assert!(n > 0);
        let ok: bool = c
            .query_one(
                "SELECT total_cost = 0.004 * $2::bigint AND total_tokens = 100 * $2::bigint AND executions = $2::bigint
                   FROM neon_budget.campaign_cost WHERE campaign_id = $1 AND month = neon_budget._current_month()",
                &[&format!("c{k}"), &n],
            )
            .unwrap()
            .get(0);
        assert!(ok, "campaign c{k} aggregates differ from its {n} executions");
        // budget_check reads the same committed spend.
        assert_sql(&mut c, &format!("SELECT campaign_spent = 0.004 * {n} FROM neon_budget.budget_check('c{k}')"));
    }
    assert_sql(
        &mut c,
        &format!(
            "SELECT total_spent = 0.004 * {total} AND executions = {total} AND total_tokens = 100 * {total}
               FROM neon_budget.monthly_budget WHERE month = neon_budget._current_month()"
        ),
    );

    // Alert state survived with the spend: each budgeted campaign has exactly the levels its
    // committed spend reaches (one writer per campaign, so each was sent by the crossing write),
    // each once, in alert_log and in alert_state alike.
    let dup = int(
        &mut c,
        "SELECT count(*) FROM (SELECT scope, campaign_id, month, level FROM neon_budget.alert_log
                                GROUP BY 1, 2, 3, 4 HAVING count(*) > 1) d",
    );
    assert_eq!(dup, 0, "an alert level was logged twice");
    assert_sql(
        &mut c,
        "SELECT bool_and(
                  COALESCE((SELECT array_agg(a.level ORDER BY a.level) FROM neon_budget.alert_log a
                             WHERE a.scope = 'campaign' AND a.campaign_id = cc.campaign_id AND a.month = cc.month), '{}')
                  = COALESCE((SELECT array_agg(l ORDER BY l)
                                FROM unnest(neon_budget._reached_levels(cc.total_cost, cp.monthly_budget, 0.8)) l), '{}')
              AND COALESCE((SELECT array_agg(l ORDER BY l) FROM neon_budget.alert_state s, unnest(s.levels_sent) l
                             WHERE s.scope = 'campaign' AND s.scope_key = cc.campaign_id AND s.month = cc.month), '{}')
                  = COALESCE((SELECT array_agg(l ORDER BY l)
                                FROM unnest(neon_budget._reached_levels(cc.total_cost, cp.monthly_budget, 0.8)) l), '{}'))
           FROM neon_budget.campaign_cost cc JOIN neon_budget.campaign cp USING (campaign_id)
          WHERE cp.monthly_budget IS NOT NULL",
    );
    // c0 ($0.50) is exceeded after 125 executions.
    let c0 = logged.keys().filter(|id| id.starts_with("thread-0-")).count();
    if c0 >= 125 {
        assert_eq!(
            int(&mut c, "SELECT count(*) FROM neon_budget.alert_log WHERE campaign_id = 'c0'"),
            3,
            "c0 spent past its budget: warning, critical and exceeded"
        );
    }
    assert_eq!(int(&mut c, "SELECT count(*) FROM neon_budget.alert_log WHERE scope = 'month'"), 0);

    // The recovered server works: a retry of an acknowledged execution records nothing, a new
    // one records once, and the aggregates still agree.
    let first = acked.iter().next().unwrap().clone();
    let first_k: String = first.split('-').nth(1).unwrap().to_string();
    let id_before = int(&mut c, &format!("SELECT id FROM neon_budget.billing_log WHERE execution_id = '{first}'"));
    let again =
        int(&mut c, &format!("SELECT (neon_budget.track_cost('CONTENT', 100, campaign_id => 'c{first_k}', execution_id => '{first}')).id"));
    assert_eq!(again, id_before);
    assert_eq!(int(&mut c, "SELECT count(*) FROM neon_budget.billing_log"), total);
    c.batch_execute("SELECT neon_budget.track_cost('CONTENT', 100, campaign_id => 'c3', execution_id => 'after-recovery')").unwrap();
    assert_eq!(int(&mut c, "SELECT count(*) FROM neon_budget.billing_log"), total + 1);
    assert_sql(
        &mut c,
        &format!("SELECT total_spent = 0.004 * ({total} + 1) FROM neon_budget.monthly_budget WHERE month = neon_budget._current_month()"),
    );
    assert_oracle(&mut c);
}
