//! The README's SQLSTATE table and the documentation in the database (`COMMENT ON` of the
//! functions, of `billing_log` for INSERT and COPY, and of the schema for errors of every
//! function) must agree: every code the README lists is documented in the database, and every
//! code a comment names is in the README's table (issue #10: one source for both, checked).
use neon_budget_integration::*;
use std::collections::BTreeSet;

/// The five-character SQLSTATEs named in `text` (`22003`, `0A000`, ...).
fn sqlstates(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| w.len() == 5 && w.as_bytes()[0].is_ascii_digit() && w.chars().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()))
        .filter(|w| w.chars().filter(|c| c.is_ascii_digit()).count() >= 3)
        .map(str::to_string)
        .collect()
}

#[test]
fn readme_sqlstates_match_the_comments() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let table = readme.split("### Errors").nth(1).unwrap().split("\n### ").next().unwrap();
    let listed: BTreeSet<String> = table
        .lines()
        .filter_map(|l| l.strip_prefix("| ").and_then(|l| l.split(' ').next()))
        .filter(|code| code.len() == 5)
        .map(str::to_string)
        .collect();
    assert!(listed.len() >= 15, "README lists {listed:?}");
    let mut db = TestDb::new("docs_sqlstates");
    let comments: Vec<String> = db
        .client
        .query(
            "SELECT obj_description(p.oid, 'pg_proc') FROM pg_proc p
              WHERE p.pronamespace = 'neon_budget'::regnamespace AND obj_description(p.oid, 'pg_proc') IS NOT NULL
             UNION ALL SELECT obj_description('neon_budget.billing_log'::regclass, 'pg_class')
             UNION ALL SELECT obj_description('neon_budget'::regnamespace, 'pg_namespace')",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get::<_, Option<String>>(0).unwrap_or_default())
        .collect();
    let documented: BTreeSet<String> = comments.iter().flat_map(|c| sqlstates(c)).collect();
    let missing_in_db: Vec<&String> = listed.difference(&documented).collect();
    let missing_in_readme: Vec<&String> = documented.difference(&listed).collect();
    assert!(missing_in_db.is_empty(), "README lists SQLSTATEs no COMMENT ON documents: {missing_in_db:?}");
    assert!(missing_in_readme.is_empty(), "COMMENT ON names SQLSTATEs the README's table lacks: {missing_in_readme:?}");
}
