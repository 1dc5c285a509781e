//! The role each command needs, as a process logged in as a login role of its own (not a
//! superuser): a neon_budget_reader follows alerts with `listen`; a permission denied (SQLSTATE
//! 42501) is exit 6 in every command, at connection time too, with a message naming the role
//! (neon_budget_reader for check, report and listen, neon_budget_admin for check --init,
//! neon_budget_writer for replay); a running listener stops on it instead of retrying.
mod common;
use common::{lines, wait_for, Listening, LoginRole, TestDb};
use std::time::Duration;

const READER: &str = "neon_budget_reader";
const WRITER: &str = "neon_budget_writer";
const ADMIN: &str = "neon_budget_admin";

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `neon-budget --database-url DSN args...` in the test's directory, killed after 30 s (a
/// listener that retried forever would be).
fn run_as(db: &TestDb, dsn: &str, args: &[&str]) -> std::process::Output {
    let mut c = assert_cmd::Command::new(common::bin());
    common::clean_env(c.current_dir(db.dir.path()).arg("--database-url").arg(dsn).args(args));
    c.timeout(Duration::from_secs(30));
    c.output().unwrap()
}

/// The advice that ends every permission denied message.
fn advice(command: &str, role: &str, user: &str) -> String {
    format!(
        "`neon-budget {command}` needs a login role that is a member of {role}: have an administrator run \
         GRANT {role} TO {user}; or connect as a user that has it (--database-url / DATABASE_URL, PGUSER).\n"
    )
}

/// The id of the one alert of `alert_log` with this scope and level.
fn alert_id(db: &mut TestDb, scope: &str, level: &str) -> i64 {
    db.client.query_one("SELECT id FROM neon_budget.alert_log WHERE scope = $1 AND level = $2", &[&scope, &level]).unwrap().get(0)
}

#[test]
fn a_reader_follows_alerts_with_listen_once_and_listen() {
    let mut db = TestDb::new("roles_reader_listen");
    db.budget("100", "0.8");
    db.sql("SELECT neon_budget.set_campaign('c1', 'Launch', NULL, 50)");
    db.spend("45", Some("c1")); // campaign 90%: warning
    db.spend("6", Some("c1")); // campaign 102%: critical, exceeded; month 51%
    db.spend("45", None); // month 96%: warning, critical
    let reader = LoginRole::new(&mut db, "reader_listen", &[READER]);
    assert_eq!(db.text(&format!("SELECT rolsuper::text FROM pg_roles WHERE rolname = '{}'", reader.name)), "false");
    let month = db.month();

    let out = run_as(&db, &reader.dsn(), &["listen", "--once"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (cw, cc, ce) =
        (alert_id(&mut db, "campaign", "warning"), alert_id(&mut db, "campaign", "critical"), alert_id(&mut db, "campaign", "exceeded"));
    let (mw, mc) = (alert_id(&mut db, "month", "warning"), alert_id(&mut db, "month", "critical"));
    let mut expected = vec![
        (cw, format!("🟡 WARNING campaign c1 \"Launch\" {month}: spent $45.00 of $50.00 (90.0%) [alert_id={cw}]")),
        (cc, format!("🟠 CRITICAL campaign c1 \"Launch\" {month}: spent $51.00 of $50.00 (102.0%) [alert_id={cc}]")),
        (ce, format!("🔴 EXCEEDED campaign c1 \"Launch\" {month}: spent $51.00 of $50.00 (102.0%) [alert_id={ce}]")),
        (mw, format!("🟡 WARNING monthly budget {month}: spent $96.00 of $100.00 (96.0%) [alert_id={mw}]")),
        (mc, format!("🟠 CRITICAL monthly budget {month}: spent $96.00 of $100.00 (96.0%) [alert_id={mc}]")),
    ];
    expected.sort();
    let expected: Vec<String> = expected.into_iter().map(|(_, line)| line).collect();
    assert_eq!(stdout(&out).lines().collect::<Vec<_>>(), expected);
    assert_eq!(stderr(&out), "listen --once: 5 alerts written to logs/budget\n");
    let logged: Vec<String> = lines(&db.log_dir().join("campaign-alerts.log"))
        .into_iter()
        .chain(lines(&db.log_dir().join("budget-alerts.log")))
        .map(|l| l.split_once(' ').unwrap().1.to_string())
        .collect();
    assert_eq!(logged, expected);

    // Running: a new alert is written as it is raised, and SIGTERM stops it with 0.
    let l = Listening::start(db.dir.path(), &reader.dsn(), &[]);
    assert!(l.err().contains("(0 alerts caught up)"), "{}", l.err());
    db.spend("10", None); // month 106%: exceeded
    let me = {
        let dir = db.log_dir();
        wait_for(30, "the exceeded alert", || lines(&dir.join("budget-alerts.log")).len() == 3);
        alert_id(&mut db, "month", "exceeded")
    };
    wait_for(10, "its line on standard output", || !l.out().is_empty());
    assert_eq!(l.out(), format!("🔴 EXCEEDED monthly budget {month}: spent $106.00 of $100.00 (106.0%) [alert_id={me}]\n"));
    assert_eq!(l.stop(), Some(0));
}

#[test]
fn no_neon_budget_role_is_exit_6_in_every_command() {
    let mut db = TestDb::new("roles_none");
    db.budget("100", "0.8");
    db.spend("50", None);
    std::fs::write(db.dir.path().join("trace.csv"), "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n")
        .unwrap();
    let nobody = LoginRole::new(&mut db, "none", &[]);
    let dsn = nobody.dsn();
    let user = nobody.name.clone();
    let denied = "permission denied for schema neon_budget (SQLSTATE 42501).";

    let out = run_as(&db, &dsn, &["check"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert_eq!(stderr(&out), format!("neon-budget check: budget_check(): {denied} {}", advice("check", READER, &user)));
    assert_eq!(stdout(&out), "");

    let out = run_as(&db, &dsn, &["--json", "check", "--campaign", "c1"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));

    for args in [&["report"][..], &["report", "--format", "html"], &["report", "--month", "2024-01", "--format", "csv"]] {
        let out = run_as(&db, &dsn, args);
        assert_eq!(out.status.code(), Some(6), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).starts_with("neon-budget report: "), "{}", stderr(&out));
        assert!(stderr(&out).ends_with(&format!("{denied} {}", advice("report", READER, &user))), "{}", stderr(&out));
    }
    assert!(!db.log_dir().exists(), "no report file");

    let out = run_as(&db, &dsn, &["listen", "--once"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert_eq!(stderr(&out), format!("neon-budget listen: reading alert_log: {denied} {}", advice("listen", READER, &user)));

    // Running, not --once: stops at once with 6, no retry.
    let out = run_as(&db, &dsn, &["listen", "--poll-interval", "1", "--max-backoff", "1"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert_eq!(stderr(&out), format!("neon-budget listen: reading alert_log: {denied} {}", advice("listen", READER, &user)));

    let out = run_as(&db, &dsn, &["check", "--init"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "neon-budget check: --init: permission denied: it creates the month's budget row with neon_budget.set_monthly_budget(), \
             which user \"{user}\" may not execute (SQLSTATE 42501). {}",
            advice("check --init", ADMIN, &user)
        )
    );

    let out = run_as(&db, &dsn, &["replay", "trace.csv", "--clients", "1"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert_eq!(stderr(&out), format!("neon-budget replay: preparing budget_check(): {denied} {}", advice("replay", WRITER, &user)));
}

#[test]
fn check_init_needs_the_admin_role() {
    let mut db = TestDb::new("roles_init");
    let reader = LoginRole::new(&mut db, "init_reader", &[READER]);
    let writer = LoginRole::new(&mut db, "init_writer", &[WRITER]);
    let admin = LoginRole::new(&mut db, "init_admin", &[ADMIN]);
    let refused = |user: &str| {
        format!(
            "neon-budget check: --init: permission denied: it creates the month's budget row with neon_budget.set_monthly_budget(), \
             which user \"{user}\" may not execute (SQLSTATE 42501). {}",
            advice("check --init", ADMIN, user)
        )
    };

    // The month's row is missing: a reader or a writer is refused, and nothing is created.
    for role in [&reader, &writer] {
        let out = run_as(&db, &role.dsn(), &["check", "--init"]);
        assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
        assert_eq!(stderr(&out), refused(&role.name));
        assert_eq!(stdout(&out), "");
    }
    assert_eq!(db.int("SELECT count(*) FROM neon_budget.monthly_budget_setting"), 0);

    // An admin (not a superuser) creates it.
    let out = run_as(&db, &admin.dsn(), &["--json", "check", "--init", "--max-monthly-budget", "300"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["initialized"], true);
    assert_eq!(v["total_budget"].to_string(), "300");
    assert_eq!(db.text("SELECT total_budget::text FROM neon_budget.monthly_budget_setting"), "300");

    // The row exists: a reader's --init is still refused (not only on a month's first run);
    // its plain check works.
    let out = run_as(&db, &reader.dsn(), &["check", "--init"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert_eq!(stderr(&out), refused(&reader.name));
    let out = run_as(&db, &reader.dsn(), &["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("Total budget:  $300.00"), "{}", stdout(&out));

    // A reader's replay is refused at the first track_cost, with the writer role named.
    std::fs::write(db.dir.path().join("trace.csv"), "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n")
        .unwrap();
    let out = run_as(&db, &reader.dsn(), &["replay", "trace.csv", "--clients", "1", "--agent", "CONTENT", "--campaigns", "0"]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        format!(
            "neon-budget replay: track_cost() at request 1: permission denied for function track_cost (SQLSTATE 42501). {}",
            advice("replay", WRITER, &reader.name)
        )
    );
    assert_eq!(db.int("SELECT count(*) FROM neon_budget.billing_log"), 0);
}

#[test]
fn no_connect_privilege_is_exit_6() {
    let mut db = TestDb::new("roles_connect");
    db.budget("100", "0.8");
    let reader = LoginRole::new(&mut db, "connect_reader", &[READER]);
    db.sql(&format!("REVOKE CONNECT ON DATABASE {d} FROM PUBLIC; REVOKE CONNECT ON DATABASE {d} FROM {r}", d = db.name, r = reader.name));
    std::fs::write(db.dir.path().join("empty-trace.csv"), "TIMESTAMP,ContextTokens,GeneratedTokens\n").unwrap();
    let host = db.dsn_base.split_whitespace().find_map(|kv| kv.strip_prefix("host=")).unwrap().to_string();
    let port = db.dsn_base.split_whitespace().find_map(|kv| kv.strip_prefix("port=")).unwrap().to_string();
    for (command, role, args) in [
        ("check", READER, &["check"][..]),
        ("report", READER, &["report"]),
        ("listen", READER, &["listen", "--once"]),
        ("listen", READER, &["listen"]),
        ("check --init", ADMIN, &["check", "--init"]),
        ("replay", WRITER, &["replay", "empty-trace.csv"]),
    ] {
        let out = run_as(&db, &reader.dsn(), args);
        assert_eq!(out.status.code(), Some(6), "{args:?}: {}", stderr(&out));
        assert_eq!(
            stderr(&out),
            format!(
                "neon-budget {name}: cannot connect to PostgreSQL (database \"{db}\" as user \"{user}\" on {host} port {port}): \
                 permission denied for database \"{db}\" (User does not have CONNECT privilege.) (42501): have an administrator run \
                 GRANT CONNECT ON DATABASE {db} TO {user}; {}",
                advice(command, role, &reader.name),
                name = args[0],
                db = db.name,
                user = reader.name,
            ),
            "{args:?}"
        );
    }
}

#[test]
fn a_running_listener_stops_with_exit_6_when_refused() {
    let mut db = TestDb::new("roles_revoked");
    db.budget("100", "0.8");
    let reader = LoginRole::new(&mut db, "revoked_reader", &[READER]);

    // The role loses neon_budget_reader while listening: the next read of alert_log is refused.
    let l = Listening::start(db.dir.path(), &reader.dsn(), &[]);
    db.sql(&format!("REVOKE {READER} FROM {}", reader.name));
    wait_for(20, "the listener to stop", || l.err().contains("neon-budget listen:"));
    assert_eq!(l.stop(), Some(6));

    // The role may no longer connect and its session ends: the reconnection is refused, and
    // not retried.
    db.sql(&format!("GRANT {READER} TO {}", reader.name));
    let l = Listening::start(db.dir.path(), &reader.dsn(), &[]);
    db.sql(&format!(
        "REVOKE CONNECT ON DATABASE {d} FROM PUBLIC; REVOKE CONNECT ON DATABASE {d} FROM {r};
         SELECT pg_catalog.pg_terminate_backend(pid, 5000) FROM pg_catalog.pg_stat_activity WHERE usename = '{r}'",
        d = db.name,
        r = reader.name
    ));
    wait_for(20, "the listener to stop", || l.err().contains("neon-budget listen:"));
    let err = l.err();
    assert_eq!(l.stop(), Some(6), "{err}");
    assert!(err.contains("connection lost"), "{err}");
    assert!(
        err.ends_with(&format!("GRANT CONNECT ON DATABASE {} TO {}; {}", db.name, reader.name, advice("listen", READER, &reader.name))),
        "{err}"
    );
    assert!(!err.contains("retrying"), "{err}");
}

#[test]
fn help_names_each_command_s_role_and_the_exit_codes() {
    let help = |args: &[&str]| {
        let out = std::process::Command::new(common::bin()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for top in [help(&["--help"]), help(&["-h"])] {
        assert!(top.contains("  check, report, listen   neon_budget_reader\n  check --init            neon_budget_admin\n  replay                  neon_budget_writer\n"), "{top}");
        assert!(top.contains("\n  6  permission denied (SQLSTATE 42501): the login role lacks the role the command needs, or\n"), "{top}");
        for code in ["  0  success", "  1  check:", "  2  check:", "  3  cannot connect", "  4  bad input", "  5  any other failure"] {
            assert!(top.contains(code), "{code}: {top}");
        }
    }
    for (command, role) in [
        ("check", "Role: neon_budget_reader; with --init, neon_budget_admin"),
        ("report", "Role: neon_budget_reader."),
        ("listen", "Role: neon_budget_reader (it reads alert_log and campaign; it writes nothing in the database)."),
        ("replay", "Role: neon_budget_writer (budget_check and track_cost)."),
    ] {
        for text in [help(&[command, "--help"]), help(&[command, "-h"]), help(&["help", command])] {
            assert!(text.contains(role), "{command}: {text}");
            assert!(text.contains("\n  6  permission denied (SQLSTATE 42501)"), "{command}: {text}");
            assert!(text.contains("\n  3  "), "{command}: {text}");
        }
    }
}
