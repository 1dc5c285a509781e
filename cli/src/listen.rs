//! `neon-budget listen`: the seed's "Alert Channels". Every budget alert is written once:
//!
//! - a line with the level's emoji on standard output (one JSON object per line with `--json`);
//! - a line appended to `LOG_DIR/budget-alerts.log` (month-wide alerts, and cost anomalies of an
//!   agent type or an execution) or `LOG_DIR/campaign-alerts.log` (campaign alerts, cost
//!   anomalies of a campaign included);
//! - for critical and exceeded alerts, `LOG_DIR/alert-{timestamp}-{alert_id}.json`, where
//!   `{timestamp}` is the alert's time in UTC (`20240115T103000.123456Z`); the alert id follows
//!   because one execution can raise several alerts in the same instant.
//!
//! NOTIFY is lost while nobody listens, so `alert_log` is the source of truth: the listener
//! `LISTEN`s first, then reads the alerts of `alert_log` it has not yet written, and reads again
//! whenever a notification arrives (and every `--poll-interval` seconds as a safety net). Its
//! position is kept in a small state file: a watermark (every alert id up to it is written or
//! will never exist) and the ids written above it. Ids are taken from a sequence when the alert
//! is inserted, so transactions can commit them out of order: the watermark only passes an id
//! once every transaction that was running when that id was seen has ended (checked with
//! `pg_current_snapshot()`), so an alert that commits late is still written, and written once.
//! An alert is written (alert file, then log line, then state) before the next one; if the
//! process dies between the log line and the state, the ids at the end of the log files are
//! read back on the next start, so no line is written twice.
//!
//! When the server goes away the listener reconnects with exponential backoff (0.25 s doubling up
//! to `--max-backoff`) and catches up again. It stops on SIGINT or SIGTERM.
//!
//! It needs only `neon_budget_reader`: it reads `alert_log` and `campaign` and writes nothing in
//! the database. A permission denied (SQLSTATE 42501), at connection time or from a statement,
//! is never retried: it ends the listener with exit code 6.
use crate::conn;
use crate::money::{dollars, percent};
use crate::output::{anomaly_figures, anomaly_subject, campaign_label, emoji, ensure_dir, one_line, paint, use_color, write_atomic};
use crate::{exit, Failure, Global};
use postgres::fallible_iterator::FallibleIterator;
use postgres::Client;
use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The month-wide alert log, in the log directory.
pub const BUDGET_LOG: &str = "budget-alerts.log";
/// The campaign alert log, in the log directory.
pub const CAMPAIGN_LOG: &str = "campaign-alerts.log";
/// How much of the end of each log file is read back on start to find alerts written just
/// before the process died (bytes).
const TAIL_BYTES: u64 = 64 * 1024;

/// Options of `listen`.
#[derive(clap::Args)]
pub struct Args {
    /// Write the alerts of alert_log not yet written, then exit (no LISTEN; for cron jobs).
    #[arg(long)]
    pub once: bool,
    /// File that keeps the listener's position in alert_log (default:
    /// LOG_DIR/listen-state-DATABASE.json). Delete it only together with the logs, or alerts are
    /// written again.
    #[arg(long, value_name = "FILE")]
    pub state_file: Option<PathBuf>,
    /// Seconds between reads of alert_log when no notification arrives (a safety net: a NOTIFY
    /// wakes the listener at once).
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS")]
    pub poll_interval: f64,
    /// Longest wait between reconnection attempts in seconds (the wait starts at 0.25 s and
    /// doubles).
    #[arg(long, default_value_t = 30.0, value_name = "SECONDS")]
    pub max_backoff: f64,
    /// Print how many alerts were written every SECONDS on standard error (0 = never).
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    pub progress_interval: f64,
}

/// One row of `alert_log`, money as exact decimal text (dollars), utilization in percent.
struct Alert {
    id: i64,
    /// `month` or `campaign`; for a cost anomaly `campaign`, `agent_type` or `execution`.
    scope: String,
    campaign_id: Option<String>,
    campaign_name: Option<String>,
    /// `YYYY-MM`.
    month: String,
    /// `warning`, `critical`, `exceeded`, `forecast` or `anomaly`.
    level: String,
    /// Dollars: spend of the month to date; for an anomaly, the day's spend (scopes `campaign`,
    /// `agent_type`) or the execution's cost (scope `execution`).
    spent: String,
    /// Dollars; `None` for an anomaly (it has no budget).
    budget: Option<String>,
    /// Percent of the budget; `None` for an anomaly.
    utilization: Option<String>,
    /// `created_at` in UTC, ISO 8601 with microseconds.
    created_at: String,
    /// `created_at` in UTC for file names: `20240115T103000.123456Z`.
    stamp: String,
    /// `alert_log.details`: a `forecast` alert's `projected_spend`, `daily_mean`, `window_days`,
    /// `days_left` and `projected_exhausted_on`; an `anomaly` alert's `kind` (`day` or
    /// `execution`), `scope_key` (campaign id or agent type), `day` (`YYYY-MM-DD`) and figures:
    /// for a day `spent`, `baseline_median`, `baseline_mad`, `excess` (dollars), `score` (null
    /// for a flat baseline), `threshold`, `min_increase`, `min_dollars`, `baseline_days`; for an
    /// execution `agent_type`, `billing_log_id`, `execution_id`, `campaign_id`, `cost`,
    /// `typical_cost` (dollars), `ratio`, `factor`, `min_dollars`, `executions_in_baseline`.
    details: Option<serde_json::Value>,
}

/// The listener's position in `alert_log`.
#[derive(Default, Debug, PartialEq)]
struct State {
    /// Every alert id up to this one is written or will never exist.
    watermark: i64,
    /// Ids above the watermark already written.
    written: BTreeSet<i64>,
}

impl State {
    fn to_json(&self, database: &str) -> String {
        serde_json::json!({
            "version": 1,
            "database": database,
            "watermark": self.watermark,
            "written": self.written.iter().collect::<Vec<_>>(),
        })
        .to_string()
            + "\n"
    }

    fn from_json(text: &str) -> Option<State> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        let watermark = v["watermark"].as_i64()?;
        let written = v["written"].as_array()?.iter().map(|x| x.as_i64()).collect::<Option<BTreeSet<_>>>()?;
        Some(State { watermark, written })
    }
}

/// A point where the listener saw every committed alert id up to `max_id` while the
/// transactions below `xmax` were possibly still running.
struct Checkpoint {
    max_id: i64,
    xmax: u64,
}

/// A failed statement: a permission denied ends the listener (`Err`, never retried), anything
/// else ends the session (`Ok(message)`, reconnect and retry).
fn lost_or_fatal(f: Failure) -> Result<String, Failure> {
    if f.code == exit::PERMISSION_DENIED {
        Err(f)
    } else {
        Ok(f.message)
    }
}

/// Why a connected session ended.
enum SessionEnd {
    /// SIGINT or SIGTERM.
    Stopped,
    /// The connection or a statement failed: reconnect.
    Lost(String),
}

/// The ids of `[alert_id=N]` marks in `text`.
fn marked_ids(text: &str) -> impl Iterator<Item = i64> + '_ {
    text.split("[alert_id=").skip(1).filter_map(|rest| rest.split(']').next()?.parse().ok())
}

/// The last [`TAIL_BYTES`] of a file (empty when it does not exist).
fn tail(path: &Path) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _seek = f.seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES)));
    let mut buf = Vec::new();
    let _read = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

struct Listener<'a> {
    g: &'a Global,
    args: &'a Args,
    database: String,
    state_path: PathBuf,
    state: State,
    checkpoints: Vec<Checkpoint>,
    written_now: u64,
    color: bool,
    /// The current session has listened and caught up (the reconnection backoff starts over).
    healthy: bool,
}

impl Listener<'_> {
    fn save_state(&self) -> Result<(), Failure> {
        write_atomic(&self.state_path, self.state.to_json(&self.database).as_bytes())
            .map_err(|f| Failure::failed(format!("cannot save the listener state: {}", f.message)))
    }

    /// Ids written at the end of the log files but not recorded in the state (the process died
    /// between the two).
    fn recover_from_logs(&mut self) {
        for name in [BUDGET_LOG, CAMPAIGN_LOG] {
            for id in marked_ids(&tail(&self.g.log_dir.join(name))) {
                if id > self.state.watermark {
                    self.state.written.insert(id);
                }
            }
        }
    }

    /// The line of an alert (without its time): level, scope, figures and `[alert_id=N]`.
    /// Money in dollars; a budget or utilization that is missing prints as `-`.
    fn describe(a: &Alert) -> String {
        if a.level == "anomaly" {
            let d = a.details.clone().unwrap_or_default();
            return format!(
                "{} ANOMALY {} {}: {} [alert_id={}]",
                emoji(&a.level),
                anomaly_subject(&a.scope, a.campaign_id.as_deref(), a.campaign_name.as_deref(), &d),
                d["day"].as_str().unwrap_or(&a.month),
                anomaly_figures(&a.scope, &a.spent, &d),
                a.id
            );
        }
        let budget = a.budget.as_deref().map(|b| dollars(b, 2)).unwrap_or_else(|| "-".to_string());
        let scope = match (&a.campaign_id, a.scope.as_str()) {
            (Some(id), "campaign") => match &a.campaign_name {
                Some(name) if name != id => {
                    format!("{} \"{}\" {}", campaign_label("campaign", &one_line(id)), one_line(name), a.month)
                }
                _ => format!("{} {}", campaign_label("campaign", &one_line(id)), a.month),
            },
            _ => format!("monthly budget {}", a.month),
        };
        if a.level == "forecast" {
            let d = a.details.clone().unwrap_or_default();
            let figure = |k: &str| d[k].to_string();
            let runs_out = match d["projected_exhausted_on"].as_str() {
                Some(day) => format!("; budget runs out {day}"),
                None => String::new(),
            };
            return format!(
                "{} FORECAST {}: projected {} of {} at month end ({}/day over the last {} days{}; spent {} so far) [alert_id={}]",
                emoji(&a.level),
                scope,
                dollars(&figure("projected_spend"), 2),
                budget,
                dollars(&figure("daily_mean"), 2),
                d["window_days"],
                runs_out,
                dollars(&a.spent, 2),
                a.id
            );
        }
        format!(
            "{} {} {}: spent {} of {} ({}) [alert_id={}]",
            emoji(&a.level),
            a.level.to_uppercase(),
            scope,
            dollars(&a.spent, 2),
            budget,
            a.utilization.as_deref().map(percent).unwrap_or_else(|| "-".to_string()),
            a.id
        )
    }

    /// The alert as one JSON object, money as exact JSON numbers (dollars); `budget` and
    /// `utilization` are null for an anomaly.
    fn alert_json(a: &Alert) -> serde_json::Value {
        use crate::output::json_decimal;
        serde_json::json!({
            "alert_id": a.id,
            "scope": a.scope,
            "campaign_id": a.campaign_id,
            "campaign_name": a.campaign_name,
            "month": a.month,
            "level": a.level,
            "spent": json_decimal(Some(&a.spent)),
            "budget": json_decimal(a.budget.as_deref()),
            "utilization": json_decimal(a.utilization.as_deref()),
            "details": a.details,
            "created_at": a.created_at,
        })
    }

    /// Writes one alert: the alert file (critical, exceeded), the log line, the output line,
    /// then the state. A failure to write is fatal (exit 5): the alert stays unwritten in the
    /// state and is written on the next start.
    fn write_alert(&mut self, a: &Alert) -> Result<(), Failure> {
        let dir = &self.g.log_dir;
        let mut alert_file = None;
        if a.level == "critical" || a.level == "exceeded" {
            let path = dir.join(format!("alert-{}-{}.json", a.stamp, a.id));
            let body = serde_json::to_string_pretty(&Self::alert_json(a)).unwrap_or_default() + "\n";
            write_atomic(&path, body.as_bytes()).map_err(|f| Failure::failed(f.message))?;
            alert_file = Some(path);
        }
        let log = dir.join(if a.scope == "campaign" { CAMPAIGN_LOG } else { BUDGET_LOG });
        let line = format!("{} {}\n", a.created_at, Self::describe(a));
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut f| f.write_all(line.as_bytes()).and_then(|_| f.sync_data()));
        appended.map_err(|e| {
            Failure::failed(format!(
                "cannot append to {}: {e}. Check the disk and the permissions of --log-dir; the alert will be written on the next start.",
                log.display()
            ))
        })?;
        if self.g.json {
            let mut v = Self::alert_json(a);
            v["log_file"] = log.display().to_string().into();
            v["alert_file"] = alert_file.map(|p| p.display().to_string()).into();
            println!("{v}");
        } else if !self.g.quiet {
            println!("{}", paint(&Self::describe(a), &a.level, self.color));
        }
        self.state.written.insert(a.id);
        self.written_now += 1;
        self.save_state()
    }

    /// Reads and writes the alerts not yet written, then moves the watermark past the ids that
    /// can no longer appear. `Ok(Err(message))` when the connection or the query failed (retry);
    /// `Err` for a permission denied or an alert that cannot be written (stop).
    fn poll(&mut self, client: &mut Client) -> Result<Result<(), String>, Failure> {
        let rows = match client.query(
            "SELECT pg_catalog.pg_snapshot_xmin(s.snap)::text, pg_catalog.pg_snapshot_xmax(s.snap)::text, s.max_id,
                    a.id, a.scope, a.campaign_id, c.name, a.month, a.level, a.spent::text, a.budget::text,
                    a.utilization::text,
                    pg_catalog.to_char(a.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
                    pg_catalog.to_char(a.created_at AT TIME ZONE 'UTC', 'YYYYMMDD\"T\"HH24MISS.US\"Z\"'),
                    a.details::text
               FROM (SELECT pg_catalog.pg_current_snapshot() AS snap,
                            (SELECT max(l.id) FROM neon_budget.alert_log l) AS max_id) s
               LEFT JOIN (neon_budget.alert_log a
                          LEFT JOIN neon_budget.campaign c ON c.campaign_id = a.campaign_id)
                      ON a.id > $1
              ORDER BY a.id",
            &[&self.state.watermark],
        ) {
            Ok(rows) => rows,
            Err(e) => return Ok(Err(lost_or_fatal(conn::db_failure("reading alert_log", &e))?)),
        };
        let parse_xid = |s: Option<String>| s.and_then(|t| t.parse::<u64>().ok()).unwrap_or(0);
        let (mut xmin, mut xmax, mut max_id) = (0u64, 0u64, 0i64);
        let mut changed = false;
        for r in &rows {
            xmin = parse_xid(r.get(0));
            xmax = parse_xid(r.get(1));
            max_id = r.get::<_, Option<i64>>(2).unwrap_or(0);
            let Some(id) = r.get::<_, Option<i64>>(3) else { continue };
            if self.state.written.contains(&id) {
                continue;
            }
            let alert = Alert {
                id,
                scope: r.get(4),
                campaign_id: r.get(5),
                campaign_name: r.get(6),
                month: r.get(7),
                level: r.get(8),
                spent: r.get(9),
                budget: r.get(10),
                utilization: r.get(11),
                created_at: r.get(12),
                stamp: r.get(13),
                details: r.get::<_, Option<String>>(14).and_then(|t| serde_json::from_str(&t).ok()),
            };
            self.write_alert(&alert)?;
            changed = true;
        }
        // A later checkpoint with the same max_id would end no sooner than the earlier one.
        if !rows.is_empty() && self.checkpoints.last().is_none_or(|cp| cp.max_id < max_id) {
            self.checkpoints.push(Checkpoint { max_id, xmax });
        }
        // Every transaction that was running when a checkpoint was taken has ended: every id up
        // to its max_id is now visible (and was read above) or will never exist.
        let before = self.state.watermark;
        self.checkpoints.retain(|cp| {
            if cp.xmax <= xmin {
                self.state.watermark = self.state.watermark.max(cp.max_id);
                false
            } else {
                true
            }
        });
        if self.state.watermark != before {
            let w = self.state.watermark;
            self.state.written.retain(|id| *id > w);
            changed = true;
        }
        if changed || !self.state_path.exists() {
            self.save_state()?;
        }
        Ok(Ok(()))
    }

    /// One connected session: LISTEN, catch up, then wait for notifications until stopped or
    /// the connection fails.
    fn session(&mut self, client: &mut Client, stop: &AtomicBool, reconnected: bool) -> Result<SessionEnd, Failure> {
        if let Err(e) = client.batch_execute("LISTEN neon_budget_alerts") {
            return Ok(SessionEnd::Lost(lost_or_fatal(conn::db_failure("LISTEN", &e))?));
        }
        let before = self.written_now;
        if let Err(msg) = self.poll(client)? {
            return Ok(SessionEnd::Lost(msg));
        }
        self.healthy = true;
        if !self.g.quiet {
            let caught_up = self.written_now - before;
            if reconnected {
                eprintln!("🔌 reconnected to database \"{}\"; {caught_up} missed alerts written", self.database);
            } else {
                eprintln!(
                    "👂 listening on neon_budget_alerts in database \"{}\"; writing to {} ({caught_up} alerts caught up)",
                    self.database,
                    self.g.log_dir.display()
                );
            }
        }
        let poll_every = Duration::from_secs_f64(self.args.poll_interval);
        let progress_every = (self.args.progress_interval > 0.0).then(|| Duration::from_secs_f64(self.args.progress_interval));
        let (mut last_poll, mut last_progress) = (Instant::now(), Instant::now());
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(SessionEnd::Stopped);
            }
            let mut woke = false;
            {
                let mut notes = client.notifications();
                let first = notes.timeout_iter(Duration::from_millis(250)).next();
                match first {
                    Ok(Some(_)) => {
                        woke = true;
                        let mut pending = notes.iter();
                        while let Ok(Some(_)) = pending.next() {}
                    }
                    Ok(None) => {}
                    Err(e) => return Ok(SessionEnd::Lost(conn::error_text(&e))),
                }
            }
            if client.is_closed() {
                return Ok(SessionEnd::Lost("the server closed the connection".to_string()));
            }
            if woke || last_poll.elapsed() >= poll_every {
                last_poll = Instant::now();
                if let Err(msg) = self.poll(client)? {
                    return Ok(SessionEnd::Lost(msg));
                }
            }
            if let Some(every) = progress_every {
                if last_progress.elapsed() >= every && !self.g.quiet {
                    last_progress = Instant::now();
                    eprintln!("listen: {} alerts written since start; watermark alert_id {}", self.written_now, self.state.watermark);
                }
            }
        }
    }
}

/// Sleeps `secs`, waking early when `stop` is set.
fn sleep_unless_stopped(secs: f64, stop: &AtomicBool) {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A file-name-safe form of a database name.
fn file_safe(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect()
}

/// Runs `listen`; returns 0 when stopped by SIGINT or SIGTERM (or, with `--once`, when caught
/// up). The first connection must succeed (exit 3 otherwise); later ones are retried, except
/// after a permission denied (exit 6).
pub fn run(g: &Global, args: Args) -> Result<i32, Failure> {
    for (name, v) in [("--poll-interval", args.poll_interval), ("--max-backoff", args.max_backoff)] {
        if !(v.is_finite() && v > 0.0) {
            return Err(Failure::bad_input(format!("{name} must be a number of seconds greater than 0, not {v}.")));
        }
    }
    if !(args.progress_interval.is_finite() && args.progress_interval >= 0.0) {
        return Err(Failure::bad_input("--progress-interval must be 0 (never) or a number of seconds."));
    }
    ensure_dir(&g.log_dir)?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| Failure::failed(format!("cannot install the signal handler: {e}")))?;
    }

    let mut client = conn::connect(g.database_url.as_deref())?;
    conn::require_extension(&mut client, None)?;
    let database: String =
        client.query_one("SELECT current_database()::text", &[]).map_err(|e| conn::db_failure("reading the database name", &e))?.get(0);
    let state_path = args.state_file.clone().unwrap_or_else(|| g.log_dir.join(format!("listen-state-{}.json", file_safe(&database))));
    let existing = std::fs::read_to_string(&state_path).ok();
    let state = match &existing {
        None => State::default(),
        Some(text) => State::from_json(text).ok_or_else(|| {
            Failure::bad_input(format!(
                "the listener state {} is not valid: fix it, or remove it together with the alert logs in {} (else alerts are written again).",
                state_path.display(),
                g.log_dir.display()
            ))
        })?,
    };
    let mut l = Listener {
        g,
        args: &args,
        database,
        state_path,
        state,
        checkpoints: Vec::new(),
        written_now: 0,
        color: use_color(g),
        healthy: false,
    };
    if existing.is_some() {
        l.recover_from_logs();
    }

    if args.once {
        if let Err(msg) = l.poll(&mut client)? {
            return Err(Failure::unavailable(msg));
        }
        if !g.quiet {
            eprintln!("listen --once: {} alerts written to {}", l.written_now, g.log_dir.display());
        }
        return Ok(exit::OK);
    }

    let mut client = Some(client);
    let mut backoff = 0.25_f64;
    let mut reconnected = false;
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let mut c = match client.take() {
            Some(c) => c,
            None => match conn::connect(g.database_url.as_deref()) {
                Ok(c) => c,
                Err(f) if f.code == exit::PERMISSION_DENIED => return Err(f),
                Err(f) => {
                    if !g.quiet {
                        eprintln!("⚠️  {}; retrying in {backoff:.2} s", f.message);
                    }
                    sleep_unless_stopped(backoff, &stop);
                    backoff = (backoff * 2.0).min(args.max_backoff);
                    continue;
                }
            },
        };
        match l.session(&mut c, &stop, reconnected)? {
            SessionEnd::Stopped => break,
            SessionEnd::Lost(msg) => {
                // A session that had listened and caught up starts the backoff over.
                if std::mem::take(&mut l.healthy) {
                    backoff = 0.25;
                }
                if !g.quiet {
                    eprintln!("⚠️  connection lost ({msg}); reconnecting in {backoff:.2} s");
                }
                reconnected = true;
                sleep_unless_stopped(backoff, &stop);
                backoff = (backoff * 2.0).min(args.max_backoff);
            }
        }
    }
    l.save_state()?;
    if !g.quiet {
        eprintln!("listen: stopped; {} alerts written", l.written_now);
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trip() {
        let s = State { watermark: 7, written: [9, 12].into_iter().collect() };
        assert_eq!(State::from_json(&s.to_json("db")), Some(s));
        assert_eq!(State::from_json("{}"), None);
        assert_eq!(State::from_json("not json"), None);
    }

    /// An alert of `alert_log` with these figures (dollars; utilization in percent) and
    /// details, as `poll` reads it.
    fn alert(scope: &str, campaign: Option<(&str, &str)>, level: &str, figures: [Option<&str>; 3], details: Option<&str>) -> Alert {
        Alert {
            id: 7,
            scope: scope.to_string(),
            campaign_id: campaign.map(|c| c.0.to_string()),
            campaign_name: campaign.map(|c| c.1.to_string()),
            month: "2025-03".to_string(),
            level: level.to_string(),
            spent: figures[0].unwrap().to_string(),
            budget: figures[1].map(str::to_string),
            utilization: figures[2].map(str::to_string),
            created_at: "2025-03-22T00:05:00.000000Z".to_string(),
            stamp: "20250322T000500.000000Z".to_string(),
            details: details.map(|d| serde_json::from_str(d).unwrap()),
        }
    }

    /// The details of the campaign day anomaly of the examples (dollars, day `YYYY-MM-DD`).
    const CAMPAIGN_DAY: &str = r#"{"kind":"day","scope_key":"campaign-2","day":"2025-03-21","spent":73.7285,"baseline_median":10.2966,
        "baseline_mad":2.230795,"excess":63.4319,"score":19.18,"threshold":6,"min_increase":1,"min_dollars":10,"baseline_days":14}"#;

    #[test]
    fn anomaly_lines() {
        let a = alert("campaign", Some(("campaign-2", "Ad Optimization")), "anomaly", [Some("73.7285"), None, None], Some(CAMPAIGN_DAY));
        assert_eq!(
            Listener::describe(&a),
            "🔎 ANOMALY campaign-2 \"Ad Optimization\" 2025-03-21: spent $73.73 in the day, baseline median $10.30 over 14 days \
             (score 19.18) [alert_id=7]"
        );
        let a = alert("campaign", Some(("campaign-2", "campaign-2")), "anomaly", [Some("73.7285"), None, None], Some(CAMPAIGN_DAY));
        assert_eq!(
            Listener::describe(&a),
            "🔎 ANOMALY campaign-2 2025-03-21: spent $73.73 in the day, baseline median $10.30 over 14 days (score 19.18) [alert_id=7]"
        );
        let flat = CAMPAIGN_DAY.replace(r#""score":19.18"#, r#""score":null"#);
        let a = alert("campaign", Some(("campaign-2", "Ad Optimization")), "anomaly", [Some("73.7285"), None, None], Some(&flat));
        assert!(Listener::describe(&a).ends_with("over 14 days (flat baseline) [alert_id=7]"), "{}", Listener::describe(&a));

        let seo = r#"{"kind":"day","scope_key":"SEO","day":"2025-03-21","spent":33.12,"baseline_median":5.01,"baseline_mad":0.4602,
            "excess":28.11,"score":41.2,"threshold":6,"min_increase":1,"min_dollars":10,"baseline_days":14}"#;
        let a = alert("agent_type", None, "anomaly", [Some("33.12"), None, None], Some(seo));
        assert_eq!(
            Listener::describe(&a),
            "🔎 ANOMALY agent type SEO 2025-03-21: spent $33.12 in the day, baseline median $5.01 over 14 days (score 41.2) [alert_id=7]"
        );

        let execution = r#"{"kind":"execution","scope_key":"CONTENT","day":"2025-03-21","agent_type":"CONTENT","billing_log_id":123,
            "execution_id":"abc","campaign_id":"campaign-1","cost":2.75,"typical_cost":0.054912,"ratio":50.08,"factor":20,
            "min_dollars":1,"executions_in_baseline":3228}"#;
        let a = alert("execution", None, "anomaly", [Some("2.75"), None, None], Some(execution));
        assert_eq!(
            Listener::describe(&a),
            "🔎 ANOMALY execution of agent type CONTENT 2025-03-21: cost $2.75, 50.08× its typical $0.0549 \
             (execution_id abc, billing_log id 123) [alert_id=7]"
        );
        let v = Listener::alert_json(&a);
        assert!(v["budget"].is_null() && v["utilization"].is_null(), "{v}");
        assert_eq!(v["spent"].to_string(), "2.75");
        assert_eq!(v["details"]["typical_cost"].to_string(), "0.054912");
    }

    #[test]
    fn a_missing_budget_prints_a_dash() {
        let a = alert("month", None, "warning", [Some("96"), Some("100"), Some("96.00")], None);
        assert_eq!(Listener::describe(&a), "🟡 WARNING monthly budget 2025-03: spent $96.00 of $100.00 (96.0%) [alert_id=7]");
        let a = alert("month", None, "warning", [Some("96"), None, None], None);
        assert_eq!(Listener::describe(&a), "🟡 WARNING monthly budget 2025-03: spent $96.00 of - (-) [alert_id=7]");
        let a = alert(
            "month",
            None,
            "forecast",
            [Some("400"), None, None],
            Some(r#"{"projected_spend":1160,"daily_mean":40,"window_days":7}"#),
        );
        assert_eq!(
            Listener::describe(&a),
            "📈 FORECAST monthly budget 2025-03: projected $1,160.00 of - at month end ($40.00/day over the last 7 days; spent $400.00 \
             so far) [alert_id=7]"
        );
    }

    #[test]
    fn marks() {
        let text = "x 🟡 WARNING monthly budget 2024-01: spent $1 of $2 (50.0%) [alert_id=12]\n... [alert_id=13]\n[alert_id=bad]";
        assert_eq!(marked_ids(text).collect::<Vec<_>>(), vec![12, 13]);
    }
}
