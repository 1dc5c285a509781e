//! The extension's SQL files: every upgrade script starts with the usual guard against being
//! run by psql, and every one from 0.5.0 on ends with an exact copy of
//! `sql/roles_and_grants.sql`, the roles and privileges a fresh install gets, so an upgraded
//! database has the same privileges.
use std::path::Path;

fn sql_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sql")
}

/// `(from, to, text)` of every upgrade script.
fn upgrade_scripts() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(sql_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let Some(versions) = name.strip_prefix("neon_budget--").and_then(|n| n.strip_suffix(".sql")) else { continue };
        let (from, to) = versions.split_once("--").expect("neon_budget--FROM--TO.sql");
        out.push((from.to_string(), to.to_string(), std::fs::read_to_string(&path).unwrap()));
    }
    out.sort();
    assert!(out.len() >= 4, "upgrade scripts: {}", out.len());
    out
}

fn version(v: &str) -> (u32, u32, u32) {
    let p: Vec<u32> = v.split('.').map(|x| x.parse().unwrap()).collect();
    (p[0], p[1], p[2])
}

#[test]
fn upgrade_scripts_start_with_the_guard() {
    for (from, to, text) in upgrade_scripts() {
        let guard = format!("\\echo Use \"ALTER EXTENSION neon_budget UPDATE TO '{to}'\" to load this file. \\quit");
        let first_statement = text.lines().find(|l| !l.starts_with("--") && !l.trim().is_empty()).unwrap_or("");
        assert_eq!(first_statement, guard, "neon_budget--{from}--{to}.sql must start with the guard");
    }
}

#[test]
fn upgrade_scripts_end_with_the_grants() {
    let grants = std::fs::read_to_string(sql_dir().join("roles_and_grants.sql")).unwrap();
    let expected = format!("-- BEGIN sql/roles_and_grants.sql\n{grants}-- END sql/roles_and_grants.sql\n");
    let mut checked = 0;
    for (from, to, text) in upgrade_scripts() {
        if version(&to) < (0, 5, 0) {
            continue;
        }
        assert!(text.ends_with(&expected), "neon_budget--{from}--{to}.sql must end with an exact copy of sql/roles_and_grants.sql");
        checked += 1;
    }
    assert!(checked >= 1);
}
