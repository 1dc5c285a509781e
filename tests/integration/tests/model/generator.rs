//! The generator: every random choice of the model test, drawn from one seeded [`Rng`] in a
//! fixed order, so that a seed names one history. It plans each step (which connection, which
//! kind of transaction, when the long transaction ends) and each write (its statement and every
//! value in it); it reads the model only to know which rows a connection sees and may lock. It
//! runs nothing and asserts nothing.
use crate::checker::{Model, Row};
use neon_budget_integration::Rng;

/// The months every `created_at` falls in.
pub const MONTHS: [&str; 3] = ["2024-01", "2024-02", "2024-03"];
pub const CAMPAIGNS: [&str; 4] = ["alpha", "beta", "gamma", "delta"];
/// The install's default rates, in hundredths of a dollar per 1,000 tokens.
pub const AGENTS: [(&str, i128); 14] = [
    ("CONTENT", 4),
    ("SEO", 3),
    ("EMAIL_MARKETING", 5),
    ("SOCIAL_POSTING", 3),
    ("CUSTOMER_SUPPORT", 4),
    ("AD", 6),
    ("OUTREACH", 4),
    ("TREND", 3),
    ("INSIGHT", 5),
    ("DESIGN", 7),
    ("BRAND_VOICE", 4),
    ("GOAL_PLANNER", 5),
    ("PATTERN_MINER", 4),
    ("SEGMENT_ANALYZER", 5),
];

/// The transaction left open for a few steps while the other connections write.
#[derive(Clone, Copy, Debug)]
pub struct Long {
    pub conn: usize,
    /// The step at which it ends.
    pub end: usize,
    /// COMMIT (or ROLLBACK) at its end.
    pub commit: bool,
}

/// What one step does.
#[derive(Debug)]
pub enum Step {
    /// The long transaction's time has come: COMMIT or ROLLBACK it.
    EndLong(Long),
    /// One write on a random connection; on the long transaction's connection it joins that
    /// transaction.
    Write(usize),
    /// BEGIN; writes; ROLLBACK.
    RolledBack(usize),
    /// BEGIN; writes; SAVEPOINT; writes; ROLLBACK TO SAVEPOINT; writes; COMMIT.
    Savepoint(usize),
    /// BEGIN and one write, left open until [`Long::end`].
    OpenLong(Long),
    /// One write on a connection without an open transaction.
    FreeWrite(usize),
}

/// One `track_cost` call.
#[derive(Debug)]
pub struct TrackCost {
    pub agent: &'static str,
    /// The agent's rate, in hundredths of a dollar per 1,000 tokens.
    pub rate: i128,
    pub campaign: Option<String>,
    pub tokens: i64,
    /// An explicit `cost` argument: (literal text, micro-dollars).
    pub explicit: Option<(String, i128)>,
    /// The `created_at` literal and the UTC month it falls in.
    pub created_at: String,
    pub month: String,
    /// A new execution id, one used before, or none.
    pub execution_id: Option<String>,
    /// quality_score, conversion_achieved, retry_count, execution_time_ms as SQL literals.
    pub extras: [String; 4],
    /// A unique task tag: a row with it was written by this call.
    pub task: String,
}

/// One row of a direct INSERT or COPY.
#[derive(Debug)]
pub struct NewRow {
    /// The row as the model expects it (id 0 until it is read back).
    pub row: Row,
    /// A unique task tag to read the row back by.
    pub task: String,
    pub created_at: String,
    /// An explicit billing_month, else the month of `created_at`.
    pub billing_month: Option<String>,
    /// quality_score, conversion_achieved, retry_count, execution_time_ms as SQL literals.
    pub extras: [String; 4],
}

/// The columns an UPDATE sets (at least one).
#[derive(Debug, Default)]
pub struct Change {
    /// (literal text, micro-dollars).
    pub cost: Option<(String, i128)>,
    pub tokens: Option<i64>,
    /// A new campaign_id (`Some(None)`: NULL).
    pub campaign: Option<Option<String>>,
    pub agent: Option<String>,
}

/// One write statement.
#[derive(Debug)]
pub enum Write {
    TrackCost(TrackCost),
    /// A multi-row INSERT of 2 to 5 rows.
    Insert(Vec<NewRow>),
    /// COPY of 2 to 5 rows.
    Copy(Vec<NewRow>),
    /// UPDATE of 1 or 2 rows the connection sees.
    Update(Vec<Row>, Change),
    /// DELETE of 1 to 3 rows the connection sees.
    Delete(Vec<Row>),
}

pub struct Generator {
    rng: Rng,
    conns: usize,
    long: Option<Long>,
    execution_ids: Vec<String>,
    next_execution_id: usize,
    tag: usize,
}

impl Generator {
    pub fn new(seed: u64, conns: usize) -> Generator {
        Generator { rng: Rng(seed), conns, long: None, execution_ids: Vec::new(), next_execution_id: 0, tag: 0 }
    }

    /// What step `step` does: 55% a write on any connection, 12% a rolled back transaction,
    /// 13% a transaction with a savepoint, 10% opening the long transaction (if none is open),
    /// else a write outside any transaction. The long transaction ends first when its time has
    /// come.
    pub fn step(&mut self, step: usize) -> Step {
        if let Some(long) = self.long {
            if step >= long.end {
                self.long = None;
                return Step::EndLong(long);
            }
        }
        let r = self.rng.below(100);
        if r < 55 {
            Step::Write(self.rng.below(self.conns as u64) as usize)
        } else if r < 67 {
            Step::RolledBack(self.free_conn())
        } else if r < 80 {
            Step::Savepoint(self.free_conn())
        } else if r < 90 && self.long.is_none() {
            let conn = self.free_conn();
            let end = step + self.rng.range(2, 6) as usize;
            let commit = self.rng.chance(50);
            let long = Long { conn, end, commit };
            self.long = Some(long);
            Step::OpenLong(long)
        } else {
            Step::FreeWrite(self.free_conn())
        }
    }

    /// The long transaction still open after the last step, if any.
    pub fn take_long(&mut self) -> Option<Long> {
        self.long.take()
    }

    /// How many writes: `lo..=hi`.
    pub fn count(&mut self, lo: i64, hi: i64) -> usize {
        self.rng.range(lo, hi) as usize
    }

    /// A connection without the long transaction.
    fn free_conn(&mut self) -> usize {
        let busy = self.long.map(|l| l.conn);
        loop {
            let k = self.rng.below(self.conns as u64) as usize;
            if Some(k) != busy {
                return k;
            }
        }
    }

    fn new_tag(&mut self) -> String {
        self.tag += 1;
        format!("t{}", self.tag)
    }

    /// One random write on connection `k`: 40% track_cost, 15% INSERT, 15% COPY, 15% UPDATE
    /// (track_cost when `k` sees no row it may lock), 15% DELETE (else INSERT).
    pub fn write(&mut self, k: usize, model: &Model) -> Write {
        let kind = self.rng.below(100);
        if kind < 40 {
            self.track_cost(k, model)
        } else if kind < 55 {
            Write::Insert(self.direct_rows())
        } else if kind < 70 {
            Write::Copy(self.direct_rows())
        } else if kind < 85 {
            self.update(k, model).unwrap_or_else(|| self.track_cost(k, model))
        } else {
            self.delete(k, model).unwrap_or_else(|| Write::Insert(self.direct_rows()))
        }
    }

    /// A track_cost call. Its execution id is one used before that no other connection's open
    /// transaction has written (20%, when there is one), else a new one (40%) or none.
    fn track_cost(&mut self, k: usize, model: &Model) -> Write {
        let (agent, rate) = *self.rng.pick(&AGENTS);
        let campaign = campaign(&mut self.rng);
        let tokens = self.rng.range(0, 20_000);
        let explicit = if self.rng.chance(30) { Some(explicit_cost(&mut self.rng)) } else { None };
        let (created_at, month) = created_at(&mut self.rng);
        let (_, locked_xids) = model.locked_by_others(k);
        let reusable: Vec<String> = self.execution_ids.iter().filter(|x| !locked_xids.contains(*x)).cloned().collect();
        let execution_id = if !reusable.is_empty() && self.rng.chance(20) {
            Some(self.rng.pick(&reusable).clone())
        } else if self.rng.chance(40) {
            self.next_execution_id += 1;
            let x = format!("exec-{}", self.next_execution_id);
            self.execution_ids.push(x.clone());
            Some(x)
        } else {
            None
        };
        let extras = extras(&mut self.rng);
        let task = self.new_tag();
        Write::TrackCost(TrackCost { agent, rate, campaign, tokens, explicit, created_at, month, execution_id, extras, task })
    }

    /// 2 to 5 random rows for a direct INSERT or COPY, each with an explicit cost (half of
    /// them the agent's default price).
    fn direct_rows(&mut self) -> Vec<NewRow> {
        let n = self.rng.range(2, 5);
        (0..n)
            .map(|_| {
                let (agent, rate) = *self.rng.pick(&AGENTS);
                let tokens = self.rng.range(0, 20_000);
                let (cost_text, micros) = if self.rng.chance(50) {
                    explicit_cost(&mut self.rng)
                } else {
                    (trimmed(tokens as i128 * rate, 5), tokens as i128 * rate * 10)
                };
                let (created_at, month) = created_at(&mut self.rng);
                let billing_month = if self.rng.chance(35) { Some(self.rng.pick(&MONTHS).to_string()) } else { None };
                let row = Row {
                    id: 0,
                    agent: agent.to_string(),
                    campaign: campaign(&mut self.rng),
                    tokens,
                    cost_text,
                    micros,
                    month: billing_month.clone().unwrap_or(month),
                    execution_id: None,
                };
                let task = self.new_tag();
                let extras = extras(&mut self.rng);
                NewRow { row, task, created_at, billing_month, extras }
            })
            .collect()
    }

    /// Up to `n` random rows that connection `k` sees and may lock.
    fn targets(&mut self, k: usize, n: usize, model: &Model) -> Vec<Row> {
        let (locked, _) = model.locked_by_others(k);
        let candidates: Vec<Row> = model.view(k).into_values().filter(|r| !locked.contains(&r.id)).collect();
        let mut out: Vec<Row> = Vec::new();
        if candidates.is_empty() {
            return out;
        }
        for _ in 0..n {
            let r = self.rng.pick(&candidates).clone();
            if !out.iter().any(|o| o.id == r.id) {
                out.push(r);
            }
        }
        out
    }

    /// An UPDATE of cost, tokens, campaign_id and/or agent_type of 1 or 2 rows; None when
    /// there is no row to update.
    fn update(&mut self, k: usize, model: &Model) -> Option<Write> {
        let n = if self.rng.chance(25) { 2 } else { 1 };
        let targets = self.targets(k, n, model);
        if targets.is_empty() {
            return None;
        }
        let mut change = Change::default();
        while change.cost.is_none() && change.tokens.is_none() && change.campaign.is_none() && change.agent.is_none() {
            if self.rng.chance(50) {
                change.cost = Some(explicit_cost(&mut self.rng));
            }
            if self.rng.chance(40) {
                change.tokens = Some(self.rng.range(0, 20_000));
            }
            if self.rng.chance(40) {
                change.campaign = Some(campaign(&mut self.rng));
            }
            if self.rng.chance(30) {
                change.agent = Some(self.rng.pick(&AGENTS).0.to_string());
            }
        }
        Some(Write::Update(targets, change))
    }

    /// A DELETE of 1 to 3 rows; None when there is no row to delete.
    fn delete(&mut self, k: usize, model: &Model) -> Option<Write> {
        let n = if self.rng.chance(25) { 3 } else { 1 };
        let targets = self.targets(k, n, model);
        if targets.is_empty() {
            return None;
        }
        Some(Write::Delete(targets))
    }
}

/// Decimal text of `mantissa / 10^scale` (mantissa ≥ 0), keeping every digit of the scale.
pub fn decimal(mantissa: i128, scale: u32) -> String {
    let digits = mantissa.to_string();
    if scale == 0 {
        return digits;
    }
    let s = scale as usize;
    let padded = format!("{digits:0>width$}", width = s + 1);
    let (int, frac) = padded.split_at(padded.len() - s);
    format!("{int}.{frac}")
}

/// Like [`decimal`] but without trailing fractional zeros (PostgreSQL's `trim_scale`).
pub fn trimmed(mantissa: i128, scale: u32) -> String {
    let d = decimal(mantissa, scale);
    if d.contains('.') {
        d.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        d
    }
}

/// A `created_at` literal and the UTC month it falls in. Some are the first or last instant of
/// a month, written with a non-UTC offset so that the local date is in the neighbouring month.
fn created_at(rng: &mut Rng) -> (String, String) {
    let mi = rng.below(3) as usize;
    let m = mi + 1;
    let last_day = [31, 29, 31][mi];
    let ts = match rng.below(10) {
        // First instant of the month, written as 22:00 on the previous day at -02.
        0 => {
            let prev = if m == 1 { "2023-12-31".to_string() } else { format!("2024-{:02}-{:02}", m - 1, [31, 29][mi - 1]) };
            format!("{prev} 22:00:00-02")
        }
        // Last microsecond of the month, written as 00:59:59.999999 on the next day at +01.
        1 => {
            let next = format!("2024-{:02}-01", m + 1);
            format!("{next} 00:59:59.999999+01")
        }
        2 => format!("2024-{m:02}-01 00:00:00+00"),
        3 => format!("2024-{m:02}-{last_day} 23:59:59.999999+00"),
        _ => {
            format!("2024-{m:02}-{:02} {:02}:{:02}:{:02}+00", rng.range(1, last_day), rng.range(0, 23), rng.range(0, 59), rng.range(0, 59))
        }
    };
    (ts, MONTHS[mi].to_string())
}

/// An explicit cost with 0 to 6 decimals, as (literal text, micro-dollars).
fn explicit_cost(rng: &mut Rng) -> (String, i128) {
    let scale = rng.below(7) as u32;
    let mantissa = rng.below(2 * 10u64.pow(scale) + 1) as i128;
    (decimal(mantissa, scale), mantissa * 10i128.pow(6 - scale))
}

/// A campaign, or none (25%).
fn campaign(rng: &mut Rng) -> Option<String> {
    if rng.chance(25) {
        None
    } else {
        Some(rng.pick(&CAMPAIGNS).to_string())
    }
}

/// The optional per-execution columns, as SQL literals: quality_score, conversion_achieved,
/// retry_count, execution_time_ms.
fn extras(rng: &mut Rng) -> [String; 4] {
    let q = if rng.chance(50) { rng.pick(&["0", "0.1", "0.25", "0.5", "0.7", "0.99", "1"]).to_string() } else { "NULL".into() };
    let c = match rng.below(3) {
        0 => "true",
        1 => "false",
        _ => "NULL",
    }
    .to_string();
    let r = if rng.chance(50) { rng.range(0, 5).to_string() } else { "NULL".into() };
    let t = if rng.chance(50) { rng.range(0, 100_000).to_string() } else { "NULL".into() };
    [q, c, r, t]
}
