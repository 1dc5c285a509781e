//! Installing on a new machine: `CREATE EXTENSION neon_budget` in several databases of a cluster
//! fresh from `initdb`, all at once. The extension's roles are cluster-wide, so the installs race
//! to create them and their memberships (issue #10, defect 1: one run in three failed with
//! 23505 on `pg_authid_rolname_index`).
use neon_budget_integration::cluster::Cluster;
use postgres::Client;
use std::sync::{Arc, Barrier};

const DIR: &str = "/tmp/nb_install_cluster";
const PORT: u16 = 5483;
const ROLES: [&str; 3] = ["neon_budget_reader", "neon_budget_writer", "neon_budget_admin"];

/// Runs `sql` in each of `dbs` at once (one connection each, released together by a barrier)
/// and returns each result's error text, None for success.
fn at_once(cluster: &Cluster, dbs: &[String], sql: &'static str) -> Vec<Option<String>> {
    let barrier = Arc::new(Barrier::new(dbs.len()));
    let handles: Vec<_> = dbs
        .iter()
        .map(|db| {
            let mut c: Client = cluster.connect(db);
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                c.batch_execute(sql).err().map(|e| format!("{e} ({:?})", e.code()))
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// Six rounds of four concurrent installs, each round on a cluster without the roles (the
/// first right after initdb, the next ones after the roles were dropped again): every install
/// succeeds, and the roles and memberships exist once.
#[test]
fn concurrent_installs_on_a_fresh_cluster_all_succeed() {
    let cluster = Cluster::create(DIR, PORT);
    let mut admin = cluster.connect("postgres");
    let dbs: Vec<String> = (1..=4).map(|i| format!("nb_install_{i}")).collect();
    for db in &dbs {
        admin.batch_execute(&format!("CREATE DATABASE {db}")).unwrap();
    }
    for round in 1..=6 {
        let roles: i64 = admin.query_one("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'neon\\_budget\\_%'", &[]).unwrap().get(0);
        assert_eq!(roles, 0, "round {round} starts without the roles");
        let errors = at_once(&cluster, &dbs, "CREATE EXTENSION neon_budget");
        assert_eq!(errors, vec![None; 4], "round {round}: every concurrent CREATE EXTENSION succeeds");
        let memberships: Vec<String> = admin
            .query(
                "SELECT m.rolname || ' in ' || r.rolname FROM pg_auth_members a
                   JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
                  WHERE r.rolname LIKE 'neon\\_budget\\_%' ORDER BY 1",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(memberships, vec!["neon_budget_admin in neon_budget_writer", "neon_budget_writer in neon_budget_reader"]);
        // Each database's grants work: a writer records, a reader reads alert_log.
        for db in &dbs {
            let mut c = cluster.connect(db);
            c.batch_execute(
                "SET ROLE neon_budget_writer; SELECT neon_budget.track_cost('CONTENT', 1000);
                 SET ROLE neon_budget_reader; SELECT count(*) FROM neon_budget.alert_log; RESET ROLE",
            )
            .unwrap();
            let spent: String = c.query_one("SELECT total_spent::text FROM neon_budget.monthly_budget", &[]).unwrap().get(0);
            assert_eq!(spent, "0.04");
        }
        let errors = at_once(&cluster, &dbs, "DROP EXTENSION neon_budget");
        assert_eq!(errors, vec![None; 4], "round {round}: DROP EXTENSION");
        // What PostgreSQL keeps of the roles in each database (pg_shdepend), then the roles.
        for db in &dbs {
            cluster.connect(db).batch_execute(&format!("DROP OWNED BY {}", ROLES.join(", "))).unwrap();
        }
        for role in ROLES.iter().rev() {
            admin.batch_execute(&format!("DROP ROLE {role}")).unwrap();
        }
    }
}
