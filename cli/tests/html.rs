//! The HTML report opened in headless Chromium: a screenshot that is not blank and shows the
//! gauge's level color, the page's text with the figures, and no request leaving the page.
mod common;
use common::TestDb;
use std::path::{Path, PathBuf};
use std::process::Command;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Runs headless Chromium on `page` with `extra` arguments (in a throwaway profile, with every
/// background service off), returns its standard output.
fn chromium(page: &Path, extra: &[&str]) -> String {
    assert!(Path::new(CHROMIUM).exists(), "{CHROMIUM} is missing: install it with apt-get install -y chromium (scripts/test_cli.sh does)");
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("timeout")
        .arg("120")
        .arg(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("run chromium");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Decodes an RGB(A) PNG: (width, height, RGB pixels).
fn pixels(png_path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let decoder = png::Decoder::new(std::fs::File::open(png_path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = match info.color_type {
        png::ColorType::Rgba => 4,
        png::ColorType::Rgb => 3,
        other => panic!("unexpected PNG color type {other:?}"),
    };
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let px = buf[..info.buffer_size()].chunks(step).map(|p| [p[0], p[1], p[2]]).collect();
    (info.width, info.height, px)
}

#[test]
fn html_report_renders_in_chromium_with_its_figures_and_no_requests() {
    let mut db = TestDb::new("report_html");
    db.budget("600", "0.8");
    db.sql(
        "SELECT neon_budget.set_campaign('c-content', 'Content Marketing', 'CONTENT_GENERATION', 250);
         SELECT neon_budget.set_campaign('c-ads', 'Ad <Optimization> & \"Co\"', 'AD_OPTIMIZATION', 120);
         SELECT neon_budget.set_campaign('c-social', 'Social Media', 'SOCIAL', NULL);
         SELECT count(neon_budget.track_cost(a.agent, a.tokens, a.campaign,
                      -- Spread over the month's first 20 days, none in the future (early in a month).
                      created_at => LEAST((date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')
                                          + (g % 20) * interval '1 day' + interval '9 hours', now())))
           FROM generate_series(1, 40) g,
                (VALUES ('CONTENT', 120000, 'c-content'), ('AD', 50000, 'c-ads'), ('DESIGN', 60000, 'c-social')) a(agent, tokens, campaign);",
    );
    // 40 × (4.80 + 3.00 + 4.20) = $480.00 + $96.00 more = $576.00 of $600.00: 96.0%, critical.
    db.sql("SELECT neon_budget.track_cost('SEO', 3200000, NULL)");
    assert_eq!(db.text("SELECT status FROM neon_budget.budget_check()"), "critical");
    let month = db.month();

    let out = db.cmd().args(["report", "--format", "html"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let page: PathBuf = db.log_dir().join(format!("cost-report-{month}.html"));
    let html = std::fs::read_to_string(&page).unwrap();

    // Self-contained: nothing that could make a request.
    let lower = html.to_lowercase();
    for banned in ["http:", "https:", "//", "<script", "<link", "@import", "url(", "src=", "<iframe", "<object", "<embed"] {
        assert!(!lower.contains(banned), "the page contains {banned:?}");
    }
    assert!(html.contains("Content-Security-Policy") && html.contains("default-src 'none'"));
    assert!(html.contains("<svg") && html.matches("<svg").count() >= 4, "gauge, campaigns, agents, daily");
    assert!(!html.contains("<Optimization>"), "user text is escaped");

    // The page's text, as Chromium builds it.
    let dom = chromium(&page, &["--dump-dom"]);
    for figure in [
        format!("Budget Report - {month}"),
        "$600.00".into(),                     // total budget
        "$576.00".into(),                     // total spent
        "96.0%".into(),                       // utilization
        "$24.00".into(),                      // remaining
        "121".into(),                         // executions
        "$192.00".into(),                     // Content Marketing: 40 × $4.80
        "$250.00".into(),                     // its budget
        "76.8%".into(),                       // its utilization
        "$120.00 of $120.00 (100.0%)".into(), // the ads campaign, exceeded
        "Ad &lt;Optimization&gt; &amp; \"Co\"".into(),
        "4,800,000".into(), // CONTENT tokens
        "$4.8000".into(),   // CONTENT average cost per execution
        "CRITICAL".into(),
        "Daily Spend".into(),
        "Cost Optimization Suggestions".into(),
    ] {
        assert!(dom.contains(&figure), "the page's text lacks {figure:?}");
    }

    // A screenshot that is not blank, with the gauge in the critical color (orange #f07800).
    let shot = db.dir.path().join("shot.png");
    chromium(&page, &[&format!("--screenshot={}", shot.display()), "--window-size=1200,1600"]);
    let (w, h, px) = pixels(&shot);
    assert_eq!((w, h), (1200, 1600));
    let lum: Vec<f64> = px.iter().map(|p| 0.299 * p[0] as f64 + 0.587 * p[1] as f64 + 0.114 * p[2] as f64).collect();
    let mean = lum.iter().sum::<f64>() / lum.len() as f64;
    let variance = lum.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / lum.len() as f64;
    assert!(variance > 100.0, "the screenshot looks blank (luminance variance {variance:.1})");
    let mut colors: Vec<[u8; 3]> = px.clone();
    colors.sort();
    colors.dedup();
    assert!(colors.len() > 50, "only {} distinct colors", colors.len());
    let near = |p: &[u8; 3], c: [u8; 3]| p.iter().zip(c).all(|(a, b)| (*a as i32 - b as i32).abs() <= 6);
    let orange = px.iter().filter(|p| near(p, [0xf0, 0x78, 0x00])).count();
    assert!(orange > 2000, "the critical gauge is not drawn in orange ({orange} pixels)");
    let red = px.iter().filter(|p| near(p, [0xd3, 0x2f, 0x2f])).count();
    assert!(red > 200, "the exceeded campaign bar is not red ({red} pixels)");
}
