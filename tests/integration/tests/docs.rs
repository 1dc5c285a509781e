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

/// The doc comment of each `#[pg_extern]` in `src/api/*.rs`, by SQL function name (the Rust
/// function's name, or its `name = "..."`).
fn rust_docs() -> std::collections::BTreeMap<String, String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../src/api");
    let mut docs = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if !line.starts_with("#[pg_extern") {
                continue;
            }
            let renamed = line.split("name = \"").nth(1).and_then(|r| r.split('"').next()).map(str::to_string);
            let name = renamed.unwrap_or_else(|| {
                let f = lines[i + 1..].iter().find(|l| l.starts_with("fn ")).unwrap();
                f[3..].split(['(', '<']).next().unwrap().to_string()
            });
            let doc: Vec<&str> =
                lines[..i].iter().rev().take_while(|l| l.starts_with("///")).map(|l| l.trim_start_matches("///").trim()).collect();
            docs.insert(name, doc.into_iter().rev().collect::<Vec<_>>().join(" "));
        }
    }
    docs
}

/// Each public function is documented three times, and they agree: its Rust doc comment
/// (`src/api/`), its `COMMENT ON FUNCTION` and its row in the README's API table name the same
/// SQLSTATEs (doc comment and COMMENT ON) and the same arguments, in order (README and the
/// function's signature).
#[test]
fn rust_docs_comments_and_readme_agree_for_every_function() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let docs = rust_docs();
    let mut db = TestDb::new("docs_functions");
    let rows = db
        .client
        .query(
            "SELECT p.proname::text, COALESCE(array_to_string(p.proargnames[1:p.pronargs], ', '), ''),
                    obj_description(p.oid, 'pg_proc')
               FROM pg_proc p
              WHERE p.pronamespace = 'neon_budget'::regnamespace AND p.proname !~ '^_' AND p.prokind = 'f'
              ORDER BY 1",
            &[],
        )
        .unwrap();
    assert!(rows.len() >= 14, "public functions: {}", rows.len());
    let mut problems = Vec::new();
    for r in &rows {
        let (name, args, comment): (String, String, Option<String>) = (r.get(0), r.get(1), r.get(2));
        let Some(comment) = comment else {
            problems.push(format!("{name}: no COMMENT ON FUNCTION"));
            continue;
        };
        let Some(doc) = docs.get(&name) else {
            problems.push(format!("{name}: no #[pg_extern] with a doc comment in src/api/"));
            continue;
        };
        let errors = |text: &str| sqlstates(text.split("Errors:").nth(1).unwrap_or(""));
        if errors(doc) != errors(&comment) {
            problems.push(format!("{name}: SQLSTATEs differ: Rust doc {:?}, COMMENT ON {:?}", errors(doc), errors(&comment)));
        }
        let row = format!("| `{name}({args})`");
        let paired = readme.lines().any(|l| l.starts_with(&row) || l.contains(&format!("/ `{name}({args})`")));
        if !paired {
            problems.push(format!("{name}: the README's API table has no row {row}"));
        }
    }
    assert!(problems.is_empty(), "documentation drift:\n{}", problems.join("\n"));
}
