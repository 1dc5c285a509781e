//! `neon-budget report` as a process: file names and contents of every format; the JSON and
//! CSV parse and agree with the Markdown figures; the extension's `budget_report(month,
//! format)` itself.
mod common;
use common::{files, group, TestDb};

/// The seed's sample month: $1,000.00 budget, "Marketing Campaign Q1 (CONTENT_GENERATION)" with
/// $89.23 of $200.00 (156 CONTENT executions, 2,230,750 tokens), and 1,091 SEO executions for
/// $158.33 more: $247.56 spent over 1,247 executions. Some spend on earlier days of the month.
fn seed_month(db: &mut TestDb) {
    db.budget("1000", "0.8");
    db.sql(
        "SELECT neon_budget.set_campaign('mkt-q1', 'Marketing Campaign Q1', 'CONTENT_GENERATION', 200);
         SELECT neon_budget.set_campaign('social', 'Social, \"Media\"', NULL, NULL);
         SELECT count(neon_budget.track_cost('CONTENT', CASE WHEN g = 1 THEN 14250 ELSE 14300 END, 'mkt-q1',
                      conversion_achieved => g % 4 <> 0))
           FROM generate_series(1, 156) g;
         SELECT count(neon_budget.track_cost('SEO', 100, CASE WHEN g <= 10 THEN 'social' END,
                      cost => CASE WHEN g = 1 THEN 0.28 ELSE 0.145 END,
                      created_at => CASE WHEN g % 2 = 0
                                         -- (not in the future on the 1st before noon)
                                         THEN LEAST((date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') + interval '12 hours', now())
                                         ELSE now() END))
           FROM generate_series(1, 1091) g;",
    );
}

fn run_ok(db: &TestDb, args: &[&str]) -> String {
    let out = db.cmd().args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn markdown_report_written_to_logs_budget() {
    let mut db = TestDb::new("report_md");
    seed_month(&mut db);
    let month = db.month();
    let out = run_ok(&db, &["report"]);
    let path = db.log_dir().join(format!("cost-report-{month}.md"));
    assert!(out.contains(&format!("written to logs/budget/cost-report-{month}.md")), "{out}");
    let md = std::fs::read_to_string(&path).unwrap();
    // Exactly what the extension renders.
    assert_eq!(md, db.text("SELECT neon_budget.budget_report()"));
    for line in [
        format!("# Budget Report - {month}"),
        "- Total Budget: $1,000.00".into(),
        "- Total Spent: $247.56".into(),
        "- Utilization: 24.8%".into(),
        "- Remaining: $752.44".into(),
        "- Total Executions: 1,247".into(),
        "### Marketing Campaign Q1 (CONTENT_GENERATION)\n\n- Cost: $89.23\n- Budget: $200.00\n- Utilization: 44.6%".into(),
        "### CONTENT\n\n- Total Cost: $89.23\n- Tokens Used: 2,230,750\n- Executions: 156\n- Avg Cost/Execution: $0.5720".into(),
    ] {
        assert!(md.contains(&line), "missing {line:?} in\n{md}");
    }
    assert_eq!(files(&db.log_dir()), vec![format!("cost-report-{month}.md")], "no temporary file is left");

    // --month and --json: the file of that month, its path printed as JSON.
    let out = run_ok(&db, &["--json", "report", "--month", "2023-02"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["file"], "logs/budget/cost-report-2023-02.md");
    assert_eq!(v["format"], "md");
    let md = std::fs::read_to_string(db.log_dir().join("cost-report-2023-02.md")).unwrap();
    assert!(md.contains("# Budget Report - 2023-02") && md.contains("- Total Spent: $0.00"), "{md}");

    // --quiet prints nothing; --log-dir moves the file; --out - prints the report.
    db.cmd().args(["report", "--quiet", "--log-dir", "elsewhere"]).assert().code(0).stdout("");
    assert!(db.dir.path().join(format!("elsewhere/cost-report-{month}.md")).exists());
    let printed = run_ok(&db, &["report", "--out", "-"]);
    assert_eq!(printed, db.text("SELECT neon_budget.budget_report()"));
}

#[test]
fn json_and_csv_parse_and_agree_with_the_markdown() {
    let mut db = TestDb::new("report_json_csv");
    seed_month(&mut db);
    let month = db.month();
    run_ok(&db, &["report", "--format", "md"]);
    run_ok(&db, &["report", "--format", "json"]);
    run_ok(&db, &["report", "--format", "csv"]);
    assert_eq!(
        files(&db.log_dir()),
        vec![format!("cost-report-{month}.csv"), format!("cost-report-{month}.json"), format!("cost-report-{month}.md")]
    );
    let md = std::fs::read_to_string(db.log_dir().join(format!("cost-report-{month}.md"))).unwrap();
    let json_text = std::fs::read_to_string(db.log_dir().join(format!("cost-report-{month}.json"))).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json_text).unwrap();
    // Money is exact: no float digits.
    assert!(json_text.contains("\"total_spent\":247.56"), "{json_text}");
    assert_eq!(v["month"], month.as_str());

    // JSON → the Markdown's figures.
    let o = &v["overview"];
    let n = |x: &serde_json::Value| x.to_string();
    assert!(md.contains(&format!("- Total Budget: ${}", db.pg_round(&n(&o["total_budget"]), 2))));
    assert!(md.contains(&format!("- Total Spent: ${}", db.pg_round(&n(&o["total_spent"]), 2))));
    assert!(md.contains(&format!("- Utilization: {}%", db.pg_round(&n(&o["utilization_percentage"]), 1))));
    assert!(md.contains(&format!("- Remaining: ${}", db.pg_round(&n(&o["remaining"]), 2))));
    assert!(md.contains(&format!("- Total Executions: {}", group(&n(&o["total_executions"])))));
    assert!(md.contains(&format!("- Status: {}", o["status"].as_str().unwrap())));
    let campaigns = v["campaigns"].as_array().unwrap();
    assert_eq!(campaigns.len(), 2);
    for c in campaigns {
        let cost = db.pg_round(&n(&c["cost"]), 2);
        let section = match c["budget"].is_null() {
            true => format!("- Cost: ${cost}\n- Budget: no limit\n"),
            false => format!(
                "- Cost: ${cost}\n- Budget: ${}\n- Utilization: {}%\n",
                db.pg_round(&n(&c["budget"]), 2),
                db.pg_round(&n(&c["utilization_percentage"]), 1)
            ),
        };
        assert!(md.contains(&section), "missing {section:?} in\n{md}");
    }
    assert_eq!(campaigns[1]["name"], "Social, \"Media\"", "JSON text is not Markdown-escaped");
    let agents = v["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 2);
    for a in agents {
        let block = format!(
            "### {}\n\n- Total Cost: ${}\n- Tokens Used: {}\n- Executions: {}\n- Avg Cost/Execution: ${}\n",
            a["agent_type"].as_str().unwrap(),
            db.pg_round(&n(&a["cost"]), 2),
            group(&n(&a["tokens"])),
            group(&n(&a["executions"])),
            db.pg_round(&n(&a["avg_cost_per_execution"]), 4)
        );
        assert!(md.contains(&block), "missing {block:?} in\n{md}");
    }
    assert_eq!(agents[0]["agent_type"], "SEO", "highest cost first");
    assert!(agents[0]["success_rate_percentage"].is_null());
    assert_eq!(agents[1]["success_rate_percentage"].to_string(), "75");
    assert!(md.contains("- Success Rate: 75.0%"));
    for s in v["suggestions"].as_array().unwrap() {
        // The Markdown escapes names; these suggestions carry none that need it.
        assert!(md.contains(&format!("- {}", s.as_str().unwrap())), "{s} not in\n{md}");
    }

    // The daily spend: every day of the month, adding up to the month's spend.
    let days = v["daily"].as_array().unwrap();
    let days_in_month =
        db.int(&format!("SELECT extract(day from (to_date('{month}', 'YYYY-MM') + interval '1 month' - interval '1 day'))::bigint"));
    assert_eq!(days.len() as i64, days_in_month);
    assert_eq!(days[0]["date"], format!("{month}-01"));
    let costs: Vec<String> = days.iter().map(|d| n(&d["cost"])).collect();
    let sum = db.text(&format!("SELECT ({})::numeric::text", costs.join("+")));
    assert_eq!(db.text(&format!("SELECT ({sum} = 247.56)::text")), "true");
    let execs: i64 = days.iter().map(|d| d["executions"].as_i64().unwrap()).sum();
    assert_eq!(execs, 1247);

    // CSV: parses, one header, and every figure equals the JSON's, digit for digit.
    let csv_text = std::fs::read_to_string(db.log_dir().join(format!("cost-report-{month}.csv"))).unwrap();
    let mut r = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    assert_eq!(header[..5], ["section", "key", "name", "type", "cost"]);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
    let of = |section: &str| rows.iter().filter(|r| &r[0] == section).cloned().collect::<Vec<_>>();
    let ov = &of("overview")[0];
    assert_eq!(&ov[col("key")], month.as_str());
    assert_eq!(ov[col("cost")], n(&o["total_spent"]));
    assert_eq!(ov[col("budget")], n(&o["total_budget"]));
    assert_eq!(ov[col("remaining")], n(&o["remaining"]));
    assert_eq!(ov[col("utilization_percentage")], n(&o["utilization_percentage"]));
    assert_eq!(ov[col("executions")], n(&o["total_executions"]));
    assert_eq!(&ov[col("status")], o["status"].as_str().unwrap());
    let cs = of("campaign");
    assert_eq!(cs.len(), campaigns.len());
    for (row, c) in cs.iter().zip(campaigns) {
        assert_eq!(&row[col("key")], c["campaign_id"].as_str().unwrap());
        assert_eq!(&row[col("name")], c["name"].as_str().unwrap());
        assert_eq!(row[col("cost")], n(&c["cost"]));
        assert_eq!(&row[col("budget")], if c["budget"].is_null() { "".to_string() } else { n(&c["budget"]) }.as_str());
    }
    let ags = of("agent");
    for (row, a) in ags.iter().zip(agents) {
        assert_eq!(&row[col("key")], a["agent_type"].as_str().unwrap());
        assert_eq!(row[col("cost")], n(&a["cost"]));
        assert_eq!(row[col("tokens")], n(&a["tokens"]));
        assert_eq!(row[col("avg_cost_per_execution")], n(&a["avg_cost_per_execution"]));
    }
    let ds = of("day");
    assert_eq!(ds.len(), days.len());
    for (row, d) in ds.iter().zip(days) {
        assert_eq!(&row[col("key")], d["date"].as_str().unwrap());
        assert_eq!(row[col("cost")], n(&d["cost"]));
    }
    assert_eq!(of("suggestion").len(), v["suggestions"].as_array().unwrap().len());
}

#[test]
fn extension_formats_and_errors() {
    let mut db = TestDb::new("report_sql");
    seed_month(&mut db);
    // NULL format and 'md' are the Markdown; names are case-insensitive.
    let md = db.text("SELECT neon_budget.budget_report()");
    assert_eq!(db.text("SELECT neon_budget.budget_report(NULL, NULL)"), md);
    assert_eq!(db.text("SELECT neon_budget.budget_report(format => 'MD')"), md);
    let json = db.text("SELECT neon_budget.budget_report(format => 'JSON')");
    // jsonb parses it; the numbers are the exact numerics.
    assert_eq!(
        db.text(&format!(
            "SELECT (('{}'::jsonb #>> '{{overview,total_spent}}')::numeric = 247.56 AND
                     ('{}'::jsonb #>> '{{campaigns,0,utilization_percentage}}')::numeric = 44.615)::text",
            json.replace('\'', "''"),
            json.replace('\'', "''")
        )),
        "true"
    );
    let err = db.client.query_one("SELECT neon_budget.budget_report('2024-01', 'xml')", &[]).unwrap_err();
    let dbe = err.as_db_error().unwrap();
    assert_eq!(dbe.code().code(), "22023");
    assert!(dbe.message().contains("unknown report format \"xml\""), "{}", dbe.message());
    assert!(dbe.hint().unwrap().contains("'json'"));
    let err = db.client.query_one("SELECT neon_budget.budget_report('2024-13', 'json')", &[]).unwrap_err();
    assert_eq!(err.as_db_error().unwrap().code().code(), "22007");
    // The documented signature.
    assert!(db
        .text("SELECT obj_description('neon_budget.budget_report(text, text)'::regprocedure, 'pg_proc')")
        .contains("'csv' a flat table"));
}
