//! Bad input and unavailable servers: a clear message, a non-zero exit code, no partial file.
mod common;
use common::{clean_env, dsn, files, TestDb};
use postgres::{Client, NoTls};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn unknown_month_format_is_exit_4_with_no_file() {
    let db = TestDb::new("bad_month");
    for month in ["2024-13", "24-01", "2024-1", "2024/01", "January", "2024-00"] {
        let out = db.cmd().args(["report", "--month", month]).output().unwrap();
        assert_eq!(out.status.code(), Some(4), "{month}");
        let err = stderr(&out);
        assert!(err.contains(&format!("invalid --month \"{month}\"")) && err.contains("YYYY-MM"), "{err}");
        assert!(out.stdout.is_empty());
    }
    assert!(!db.log_dir().exists(), "nothing written: {:?}", files(&db.log_dir()));
}

#[test]
fn unknown_format_and_option_are_exit_4() {
    let db = TestDb::new("bad_format");
    let out = db.cmd().args(["report", "--format", "xml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(stderr(&out).contains("possible values: md, json, csv, html"), "{}", stderr(&out));
    let out = db.cmd().args(["check", "--no-such-option"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "a usage error is not 'exceeded' (2)");
    let out = db.cmd().args(["listen", "--poll-interval", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(stderr(&out).contains("--poll-interval must be"), "{}", stderr(&out));
}

#[test]
fn unwritable_out_is_exit_4_with_no_partial_file() {
    let mut db = TestDb::new("bad_out");
    db.budget("100", "0.8");
    let dir = db.dir.path().to_path_buf();
    std::fs::write(dir.join("a-file"), "x").unwrap();
    std::fs::create_dir(dir.join("a-dir")).unwrap();
    let before = files(&dir);
    for out_path in ["/nonexistent-neon-budget-dir/report.md", "a-file/report.md", "a-dir", "missing-dir/report.html"] {
        for format in ["md", "html", "csv"] {
            let out = db.cmd().args(["report", "--format", format, "--out", out_path]).output().unwrap();
            assert_eq!(out.status.code(), Some(4), "{out_path} {format}: {}", stderr(&out));
            let err = stderr(&out);
            assert!(err.contains("cannot write") && err.contains(out_path), "{err}");
        }
    }
    assert_eq!(files(&dir), before, "no file or temporary file left behind");
    assert!(files(&dir.join("a-dir")).is_empty());

    // An existing report is replaced whole, never truncated by a failed run.
    std::fs::write(dir.join("a-dir/keep.md"), "old").unwrap();
    db.cmd().args(["report", "--out", "a-dir/keep.md"]).assert().code(0);
    assert!(std::fs::read_to_string(dir.join("a-dir/keep.md")).unwrap().starts_with("# Budget Report"));
    assert_eq!(files(&dir.join("a-dir")), vec!["keep.md"]);
}

/// A role that must log in with a password over TCP: adds a `scram-sha-256` line for it to the
/// test cluster's pg_hba.conf (read from the server) and reloads. Returns (host, port).
fn password_role() -> (String, u16) {
    let mut admin = Client::connect(&format!("{} dbname=postgres", dsn()), NoTls).unwrap();
    let hba: String = admin.query_one("SHOW hba_file", &[]).unwrap().get(0);
    let line = "host all nbcli_pw 127.0.0.1/32 scram-sha-256";
    let text = std::fs::read_to_string(&hba).expect("the tests run on the cluster's machine and can read pg_hba.conf");
    if !text.contains(line) {
        std::fs::write(&hba, format!("# neon-budget client tests: a role that needs a password\n{line}\n{text}")).unwrap();
    }
    admin
        .batch_execute(
            "DO $$ BEGIN
                 IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'nbcli_pw') THEN
                     CREATE ROLE nbcli_pw LOGIN SUPERUSER;
                 END IF;
             END $$;
             SET password_encryption = 'scram-sha-256';
             ALTER ROLE nbcli_pw PASSWORD 'right-password';
             SELECT pg_reload_conf();",
        )
        .unwrap();
    let port = dsn().split_whitespace().find_map(|kv| kv.strip_prefix("port=").and_then(|p| p.parse().ok())).unwrap_or(5432);
    // The reload is asynchronous: wait until the wrong password is refused.
    let wrong = format!("host=127.0.0.1 port={port} user=nbcli_pw password=wrong dbname=postgres");
    common::wait_for(10, "pg_hba.conf reload", || Client::connect(&wrong, NoTls).is_err());
    ("127.0.0.1".to_string(), port)
}

#[test]
fn wrong_password_is_exit_3_with_a_clear_message_and_no_file() {
    let mut db = TestDb::new("bad_password");
    db.budget("100", "0.8");
    let (host, port) = password_role();
    let url = |pw: &str| format!("postgresql://nbcli_pw:{pw}@{host}:{port}/{}", db.name);
    for args in [vec!["check"], vec!["report"], vec!["report", "--format", "html"], vec!["listen", "--once"]] {
        let out = db.cmd().args(["--database-url", &url("wrong")]).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains("cannot connect to PostgreSQL"), "{err}");
        assert!(err.contains("password authentication failed") && err.contains("PGPASSWORD"), "{err}");
        assert!(!err.contains("wrong"), "the password is never printed: {err}");
    }
    assert!(!db.log_dir().exists() || files(&db.log_dir()).is_empty(), "{:?}", files(&db.log_dir()));

    // PGPASSWORD with the PG* variables: wrong, then right.
    let pg = |pw: &str| {
        let mut c = assert_cmd::Command::new(common::bin());
        clean_env(&mut c)
            .current_dir(db.dir.path())
            .env("PGHOST", &host)
            .env("PGPORT", port.to_string())
            .env("PGUSER", "nbcli_pw")
            .env("PGDATABASE", &db.name)
            .env("PGPASSWORD", pw)
            .arg("check");
        c
    };
    pg("wrong").assert().code(3).stderr(predicates::str::contains("password authentication failed"));
    pg("right-password").assert().code(0);
    // No password at all.
    let out = db.cmd().args(["--database-url", &format!("postgresql://nbcli_pw@{host}:{port}/{}", db.name), "check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("password"), "{}", stderr(&out));
}

#[test]
fn no_server_no_database_no_extension_are_exit_3() {
    let db = TestDb::without_extension("bad_no_ext");
    // Nothing listens on port 1.
    let out = db.cmd().args(["--database-url", "host=127.0.0.1 port=1 user=postgres dbname=x", "check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(err.contains("cannot connect to PostgreSQL") && err.contains("is the server running"), "{err}");

    let out = db.cmd().args(["--database-url", &format!("{} dbname=nbcli_no_such_db", dsn()), "report"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));

    for args in [vec!["check"], vec!["report"], vec!["listen", "--once"]] {
        let out = db.cmd().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains("extension is not installed") && err.contains("CREATE EXTENSION neon_budget"), "{err}");
    }
    let out = db.cmd().args(["--database-url", "host=/tmp port=5432 user=x sslmode=bogus", "check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "a malformed connection string is bad input");
    assert!(stderr(&out).contains("invalid --database-url"));
}

#[test]
fn help_explains_every_command_and_option() {
    let db = TestDb::without_extension("bad_help");
    let out = db.cmd().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let top = String::from_utf8_lossy(&out.stdout);
    for word in ["check", "report", "listen", "replay", "--database-url", "--quiet", "--json", "--log-dir", "Exit codes"] {
        assert!(top.contains(word), "{word} missing from --help:\n{top}");
    }
    for (cmd, options) in [
        ("check", vec!["--campaign", "--init", "--max-monthly-budget", "--alert-threshold", "MAX_MONTHLY_BUDGET"]),
        ("report", vec!["--month", "--format", "--out", "YYYY-MM", "html"]),
        ("listen", vec!["--once", "--state-file", "--poll-interval", "--max-backoff", "--progress-interval"]),
        ("replay", vec!["--agent", "--campaigns", "--clients", "--speed", "--execution-prefix"]),
    ] {
        let out = db.cmd().args([cmd, "--help"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        let help = String::from_utf8_lossy(&out.stdout);
        for o in options.iter().chain(["--database-url", "--quiet", "--json", "--log-dir"].iter()) {
            assert!(help.contains(o), "{o} missing from {cmd} --help:\n{help}");
        }
    }
}
