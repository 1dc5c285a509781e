//! `neon-budget replay`: the demo's workload generator.
//!
//! Reads an LLM request trace in the Azure LLM inference trace format (`TIMESTAMP`,
//! `ContextTokens`, `GeneratedTokens`) and replays each request as one agent execution of
//! `ContextTokens + GeneratedTokens` tokens from several concurrent connections: it asks
//! `budget_check(campaign, agent, tokens)` first and records the execution with `track_cost`
//! only when it may run; otherwise the execution counts as blocked. A listener connection prints
//! every `neon_budget_alerts` NOTIFY as it arrives. Progress prints every two seconds;
//! `--quiet` prints only the final summary and `--json` prints it as JSON. Needs
//! `neon_budget_writer`.
use crate::conn;
use crate::money::dollars;
use crate::output::{anomaly_figures, anomaly_subject, campaign_label, json_text};
use crate::{exit, Failure, Global};
use postgres::fallible_iterator::FallibleIterator;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Agent types the replay spreads requests over when `--agent` is not given.
const DEFAULT_AGENTS: &[&str] = &["CONTENT", "SEO", "EMAIL_MARKETING", "AD", "DESIGN", "CUSTOMER_SUPPORT"];

#[derive(clap::Args)]
pub struct Args {
    /// Trace CSV file (header TIMESTAMP,ContextTokens,GeneratedTokens).
    pub trace: std::path::PathBuf,
    /// Record every request as this agent type (default: spread over CONTENT, SEO,
    /// EMAIL_MARKETING, AD, DESIGN, CUSTOMER_SUPPORT).
    #[arg(long)]
    pub agent: Option<String>,
    /// Spread requests round-robin over campaigns campaign-1 .. campaign-N (0: no campaign).
    #[arg(long, default_value_t = 4)]
    pub campaigns: usize,
    /// Concurrent client connections.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Replay speed against the trace's own timestamps (2 = twice as fast); 0 = as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    pub speed: f64,
    /// Prefix of execution ids (an execution id makes a repeated replay record nothing twice).
    #[arg(long, default_value = "azure-conv")]
    pub execution_prefix: String,
    /// Date the requests over the current billing month so far instead of now: a request at
    /// fraction f of the trace's span is recorded with created_at = the month's start (in
    /// neon_budget.timezone) + f × (now - the month's start), so that the trace stands for the
    /// month to date and the month-end forecast has complete days to work with.
    #[arg(long)]
    pub spread_over_month: bool,
}

/// One request of the trace.
struct Request {
    row: usize,
    /// Time since the trace's first request.
    offset: Duration,
    timestamp: String,
    context_tokens: i64,
    generated_tokens: i64,
}

fn read_trace(path: &std::path::Path) -> Result<Vec<Request>, String> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut out = Vec::new();
    let mut first: Option<chrono::NaiveDateTime> = None;
    for (i, rec) in reader.records().enumerate() {
        let rec = rec.map_err(|e| format!("{}: line {}: {e}", path.display(), i + 2))?;
        let field = |k: usize| rec.get(k).ok_or_else(|| format!("{}: line {}: expected 3 columns", path.display(), i + 2));
        let ts = field(0)?.to_string();
        let at = chrono::NaiveDateTime::parse_from_str(&ts, "%Y-%m-%d %H:%M:%S%.f")
            .map_err(|e| format!("{}: line {}: bad TIMESTAMP {ts:?}: {e}", path.display(), i + 2))?;
        let start = *first.get_or_insert(at);
        let num = |k: usize| -> Result<i64, String> {
            let v = field(k)?;
            v.trim()
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| format!("{}: line {}: bad token count {v:?}", path.display(), i + 2))
        };
        out.push(Request {
            row: i + 1,
            offset: (at - start).to_std().unwrap_or_default(),
            timestamp: ts,
            context_tokens: num(1)?,
            generated_tokens: num(2)?,
        });
    }
    Ok(out)
}

#[derive(Default)]
struct Totals {
    admitted: AtomicU64,
    blocked: AtomicU64,
    tokens: AtomicU64,
    first_blocked_row: Mutex<Option<usize>>,
}

/// Runs the replay; returns 0 when every request was replayed. Fails with exit 4 for an
/// unreadable trace or a bad `--speed`, 3 when it cannot connect or the extension is missing,
/// 6 when a statement is refused (SQLSTATE 42501), otherwise as [`conn::db_failure`] maps the
/// failed statement's error.
pub fn run(g: &Global, args: Args) -> Result<i32, Failure> {
    if !(args.speed.is_finite() && args.speed >= 0.0) {
        return Err(Failure::bad_input(format!("--speed must be 0 (as fast as possible) or a positive factor, not {}.", args.speed)));
    }
    let requests = Arc::new(read_trace(&args.trace).map_err(Failure::bad_input)?);
    let database_url = g.database_url.as_deref();
    let clients = args.clients.max(1);
    let mut conns = Vec::new();
    for _ in 0..clients {
        conns.push(conn::connect(database_url)?);
    }
    let mut listener = conn::connect(database_url)?;
    conn::require_extension(&mut listener, None)?;
    listener.batch_execute("LISTEN neon_budget_alerts").map_err(|e| conn::db_failure("LISTEN", &e))?;

    // With --spread-over-month: the month's start and how far into the month now is (µs).
    let spread: Option<(String, i64)> = if args.spread_over_month {
        let row = listener
            .query_one(
                "SELECT (date_trunc('month', now() AT TIME ZONE neon_budget._timezone()) AT TIME ZONE neon_budget._timezone())::text,
                        (extract(epoch FROM now() - date_trunc('month', now() AT TIME ZONE neon_budget._timezone())
                                 AT TIME ZONE neon_budget._timezone()) * 1000000)::bigint",
                &[],
            )
            .map_err(|e| conn::db_failure("reading the month's start", &e))?;
        Some((row.get(0), row.get(1)))
    } else {
        None
    };
    let trace_span_us = requests.iter().map(|r| r.offset.as_micros()).max().unwrap_or(0).max(1);

    let totals = Arc::new(Totals::default());
    let done = Arc::new(AtomicBool::new(false));
    let alerts = Arc::new(AtomicU64::new(0));
    let quiet = g.quiet || g.json;
    let listen_thread = {
        let done = done.clone();
        let alerts = alerts.clone();
        std::thread::spawn(move || {
            let mut notifications = listener.notifications();
            loop {
                // Once the workers are done, one more short wait drains the last commits' alerts.
                let finishing = done.load(Ordering::Relaxed);
                let wait = if finishing { 500 } else { 200 };
                let mut it = notifications.timeout_iter(Duration::from_millis(wait));
                while let Ok(Some(n)) = it.next() {
                    alerts.fetch_add(1, Ordering::Relaxed);
                    if !quiet {
                        println!("{}", describe_alert(n.payload()));
                    }
                }
                if finishing {
                    return;
                }
            }
        })
    };

    let agents: Vec<String> = match &args.agent {
        Some(a) => vec![a.clone()],
        None => DEFAULT_AGENTS.iter().map(|s| s.to_string()).collect(),
    };
    let started = Instant::now();
    let total = requests.len();
    let mut workers = Vec::new();
    for (k, mut client) in conns.into_iter().enumerate() {
        let requests = requests.clone();
        let totals = totals.clone();
        let agents = agents.clone();
        let campaigns = args.campaigns;
        let speed = args.speed;
        let prefix = args.execution_prefix.clone();
        let spread = spread.clone();
        workers.push(std::thread::spawn(move || -> Result<(), Failure> {
            let check = client
                .prepare("SELECT can_execute FROM neon_budget.budget_check(campaign_id => $1, agent_type => $2, estimated_tokens => $3)")
                .map_err(|e| conn::db_failure("preparing budget_check()", &e))?;
            let track = client
                .prepare(
                    "SELECT (neon_budget.track_cost(agent_type => $1, tokens => $2, campaign_id => $3, task => 'chat completion',
                             execution_id => $4, metadata => $5::text::jsonb,
                             created_at => COALESCE($6::text::timestamptz OPERATOR(pg_catalog.+) $7::bigint * interval '1 microsecond',
                                                    pg_catalog.now()))).id",
                )
                .map_err(|e| conn::db_failure("preparing track_cost()", &e))?;
            for req in requests.iter().skip(k).step_by(clients) {
                if speed > 0.0 {
                    let due = req.offset.div_f64(speed);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
                let tokens = req.context_tokens + req.generated_tokens;
                let agent = &agents[req.row % agents.len()];
                let campaign = (campaigns > 0).then(|| format!("campaign-{}", req.row % campaigns + 1));
                let can: bool = client
                    .query_one(&check, &[&campaign, agent, &tokens])
                    .map_err(|e| conn::db_failure(&format!("budget_check() at request {}", req.row), &e))?
                    .get(0);
                if !can {
                    totals.blocked.fetch_add(1, Ordering::Relaxed);
                    let mut first = totals.first_blocked_row.lock().unwrap();
                    if first.is_none_or(|r| req.row < r) {
                        *first = Some(req.row);
                    }
                    continue;
                }
                let metadata = serde_json::json!({
                    "trace_timestamp": req.timestamp,
                    "context_tokens": req.context_tokens,
                    "generated_tokens": req.generated_tokens,
                })
                .to_string();
                let execution_id = format!("{prefix}-{}", req.row);
                // The request's place in the month so far (exact integer microseconds).
                let (month_start, at_us) = match &spread {
                    Some((start, month_us)) => {
                        (Some(start.clone()), Some((req.offset.as_micros() * (*month_us).max(0) as u128 / trace_span_us) as i64))
                    }
                    None => (None, None),
                };
                client
                    .query_one(&track, &[agent, &tokens, &campaign, &execution_id, &metadata, &month_start, &at_us])
                    .map_err(|e| conn::db_failure(&format!("track_cost() at request {}", req.row), &e))?;
                totals.admitted.fetch_add(1, Ordering::Relaxed);
                totals.tokens.fetch_add(tokens as u64, Ordering::Relaxed);
            }
            Ok(())
        }));
    }

    // Progress: periodic counts until every worker is done.
    let mut last = Instant::now();
    while workers.iter().any(|w| !w.is_finished()) {
        std::thread::sleep(Duration::from_millis(100));
        if !quiet && last.elapsed() >= Duration::from_secs(2) {
            last = Instant::now();
            let a = totals.admitted.load(Ordering::Relaxed);
            let b = totals.blocked.load(Ordering::Relaxed);
            println!(
                "progress: {}/{} requests ({} recorded, {} blocked), {:.0} req/s",
                a + b,
                total,
                a,
                b,
                (a + b) as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    let mut failed = None;
    for w in workers {
        match w.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failed = Some(e),
            Err(_) => failed = Some(Failure::new(exit::FAILED, "a replay client panicked")),
        }
    }
    done.store(true, Ordering::Relaxed);
    let _listener_done = listen_thread.join();
    if let Some(f) = failed {
        return Err(f);
    }

    let a = totals.admitted.load(Ordering::Relaxed);
    let b = totals.blocked.load(Ordering::Relaxed);
    let first_blocked = *totals.first_blocked_row.lock().unwrap();
    let secs = started.elapsed().as_secs_f64();
    if g.json {
        println!(
            "{}",
            serde_json::json!({
                "requests": total, "recorded": a, "blocked": b, "tokens_recorded": totals.tokens.load(Ordering::Relaxed),
                "first_blocked_row": first_blocked, "alerts_received": alerts.load(Ordering::Relaxed),
                "clients": clients, "seconds": secs,
            })
        );
    } else {
        println!(
            "replay: {total} requests from {clients} clients in {secs:.1} s: {a} recorded ({} tokens), {b} blocked by budget_check{}; {} alerts received",
            totals.tokens.load(Ordering::Relaxed),
            first_blocked.map(|r| format!(" (first blocked: request {r})")).unwrap_or_default(),
            alerts.load(Ordering::Relaxed)
        );
    }
    Ok(exit::OK)
}

/// One line for an alert payload, with the seed's emoji per level. Money in dollars; a cost
/// anomaly (level `anomaly`) reads `🔎 ANOMALY 2025-03-21: campaign-2 spent $73.73 in the day,
/// baseline median $10.30 over 14 days (score 19.18)` (the day is `YYYY-MM-DD`; see
/// [`crate::output::anomaly_figures`]). A figure that is null or missing prints as `-`.
pub fn describe_alert(payload: &str) -> String {
    let v: serde_json::Value = match serde_json::from_str(payload) {
        Ok(v) => v,
        Err(_) => return format!("alert (unparsed): {payload}"),
    };
    let level = v["level"].as_str().unwrap_or("?");
    let emoji = crate::output::emoji(level);
    let month = v["month"].as_str().unwrap_or("?");
    if level == "anomaly" {
        let d = &v["details"];
        let scope = v["scope"].as_str().unwrap_or("?");
        return format!(
            "{emoji} ANOMALY {}: {} {}",
            d["day"].as_str().unwrap_or(month),
            anomaly_subject(scope, v["campaign_id"].as_str(), None, d),
            anomaly_figures(scope, &json_text(&v["spent"]).unwrap_or_else(|| "-".to_string()), d)
        );
    }
    let scope = match v["campaign_id"].as_str() {
        Some(c) => campaign_label("campaign", c),
        None => "monthly budget".to_string(),
    };
    if level == "forecast" {
        let d = &v["details"];
        return format!(
            "{emoji} FORECAST {month}: {scope} projected {} of {} at month end ({}/day over the last {} days{}; spent {} so far)",
            dollars(&d["projected_spend"].to_string(), 2),
            json_text(&v["budget"]).map(|b| dollars(&b, 2)).unwrap_or_else(|| "-".to_string()),
            dollars(&d["daily_mean"].to_string(), 2),
            d["window_days"],
            d["projected_exhausted_on"].as_str().map(|day| format!("; budget runs out {day}")).unwrap_or_default(),
            dollars(&v["spent"].to_string(), 2)
        );
    }
    // The payload's own digits; `-` for a figure that is null or missing.
    let raw = |k: &str, before: &str, after: &str| match &v[k] {
        serde_json::Value::Null => "-".to_string(),
        x => format!("{before}{x}{after}"),
    };
    format!(
        "{emoji} ALERT {month} {level}: {scope} spent {} of {} ({})",
        raw("spent", "$", ""),
        raw("budget", "$", ""),
        raw("utilization", "", "%")
    )
}

#[cfg(test)]
mod tests {
    use super::describe_alert;

    /// The details of the campaign day anomaly of the examples (dollars, day `YYYY-MM-DD`).
    const CAMPAIGN_DAY: &str = r#"{"kind":"day","scope_key":"campaign-2","day":"2025-03-21","spent":73.7285,"baseline_median":10.2966,
        "baseline_mad":2.230795,"excess":63.4319,"score":19.18,"threshold":6,"min_increase":1,"min_dollars":10,"baseline_days":14}"#;

    /// A NOTIFY payload of level `anomaly` with these scope, campaign id, spend (dollars) and
    /// details.
    fn anomaly(scope: &str, campaign_id: &str, spent: &str, details: &str) -> String {
        format!(
            r#"{{"alert_id":7,"scope":"{scope}","campaign_id":{campaign_id},"month":"2025-03","level":"anomaly","spent":{spent},"budget":null,"utilization":null,"details":{details}}}"#
        )
    }

    #[test]
    fn a_campaign_day_anomaly() {
        assert_eq!(
            describe_alert(&anomaly("campaign", r#""campaign-2""#, "73.7285", CAMPAIGN_DAY)),
            "🔎 ANOMALY 2025-03-21: campaign-2 spent $73.73 in the day, baseline median $10.30 over 14 days (score 19.18)"
        );
        // A campaign id that does not start with "campaign" is labelled.
        let details = CAMPAIGN_DAY.replace("campaign-2", "c1");
        assert_eq!(
            describe_alert(&anomaly("campaign", r#""c1""#, "73.7285", &details)),
            "🔎 ANOMALY 2025-03-21: campaign c1 spent $73.73 in the day, baseline median $10.30 over 14 days (score 19.18)"
        );
    }

    #[test]
    fn an_agent_type_day_anomaly() {
        let details = r#"{"kind":"day","scope_key":"SEO","day":"2025-03-21","spent":33.12,"baseline_median":5.01,"baseline_mad":0.4602,
            "excess":28.11,"score":41.2,"threshold":6,"min_increase":1,"min_dollars":10,"baseline_days":14}"#;
        assert_eq!(
            describe_alert(&anomaly("agent_type", "null", "33.12", details)),
            "🔎 ANOMALY 2025-03-21: agent type SEO spent $33.12 in the day, baseline median $5.01 over 14 days (score 41.2)"
        );
    }

    #[test]
    fn a_day_anomaly_over_a_flat_baseline() {
        let details = CAMPAIGN_DAY.replace(r#""score":19.18"#, r#""score":null"#);
        assert_eq!(
            describe_alert(&anomaly("campaign", r#""campaign-2""#, "73.7285", &details)),
            "🔎 ANOMALY 2025-03-21: campaign-2 spent $73.73 in the day, baseline median $10.30 over 14 days (flat baseline)"
        );
    }

    #[test]
    fn an_execution_anomaly() {
        let details = r#"{"kind":"execution","scope_key":"CONTENT","day":"2025-03-21","agent_type":"CONTENT","billing_log_id":123,
            "execution_id":"abc","campaign_id":"campaign-1","cost":2.75,"typical_cost":0.054912,"ratio":50.08,"factor":20,
            "min_dollars":1,"executions_in_baseline":3228}"#;
        assert_eq!(
            describe_alert(&anomaly("execution", "null", "2.75", details)),
            "🔎 ANOMALY 2025-03-21: execution of agent type CONTENT cost $2.75, 50.08× its typical $0.0549 \
             (execution_id abc, billing_log id 123)"
        );
        // Without an execution id.
        let details = details.replace(r#""execution_id":"abc""#, r#""execution_id":null"#);
        assert_eq!(
            describe_alert(&anomaly("execution", "null", "2.75", &details)),
            "🔎 ANOMALY 2025-03-21: execution of agent type CONTENT cost $2.75, 50.08× its typical $0.0549 (billing_log id 123)"
        );
    }

    #[test]
    fn an_unknown_level_with_a_null_budget_does_not_panic() {
        let payload = r#"{"alert_id":9,"scope":"month","campaign_id":null,"month":"2025-03","level":"surge","spent":12.5,
            "budget":null,"utilization":null,"details":null}"#;
        assert_eq!(describe_alert(payload), "❔ ALERT 2025-03 surge: monthly budget spent $12.5 of - (-)");
        // A forecast without a budget prints `-` for it.
        let payload = r#"{"alert_id":10,"scope":"month","campaign_id":null,"month":"2025-03","level":"forecast","spent":400,
            "budget":null,"utilization":null,"details":{"projected_spend":1160,"daily_mean":40,"window_days":7}}"#;
        assert_eq!(
            describe_alert(payload),
            "📈 FORECAST 2025-03: monthly budget projected $1,160.00 of - at month end ($40.00/day over the last 7 days; spent $400.00 so far)"
        );
    }

    #[test]
    fn budget_alerts_are_unchanged() {
        let payload = r#"{"alert_id":3,"scope":"campaign","campaign_id":"c1","month":"2025-03","level":"warning","spent":45,
            "budget":50,"utilization":90.0}"#;
        assert_eq!(describe_alert(payload), "🟡 ALERT 2025-03 warning: campaign c1 spent $45 of $50 (90.0%)");
        let payload = r#"{"alert_id":4,"scope":"month","campaign_id":null,"month":"2026-11","level":"forecast","spent":400,
            "budget":1000,"utilization":40,"details":{"projected_spend":1160,"daily_mean":40,"window_days":7,
            "projected_exhausted_on":"2026-11-26"}}"#;
        assert_eq!(
            describe_alert(payload),
            "📈 FORECAST 2026-11: monthly budget projected $1,160.00 of $1,000.00 at month end ($40.00/day over the last 7 days; \
             budget runs out 2026-11-26; spent $400.00 so far)"
        );
    }
}
