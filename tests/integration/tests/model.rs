//! A randomized model test: 300 random writes over 3 connections (track_cost, multi-row INSERT,
//! COPY, UPDATE, DELETE, rolled back transactions, savepoints, a transaction left open while
//! other connections write), checked after every ended transaction by the aggregate oracle and
//! at checkpoints and at the end against an in-test model of `billing_log` (exact costs as
//! decimal text and integer micro-dollars).
//!
//! The seed comes from `NEON_BUDGET_MODEL_SEED` (decimal or 0x-hex) or a fixed default; every
//! assertion message names it, so `NEON_BUDGET_MODEL_SEED=<seed> cargo test ... --test model`
//! replays a failure step by step.
// The model's tables are tuples of a row's figures, on purpose.
#![allow(clippy::type_complexity)]
use neon_budget_integration::*;
use postgres::Client;
use std::collections::{BTreeMap, HashSet};
use std::io::Write;

const STEPS: usize = 300;
const DEFAULT_SEED: u64 = 0x6e62_5eed_2024_0001;
const MONTHS: [&str; 3] = ["2024-01", "2024-02", "2024-03"];
const CAMPAIGNS: [&str; 4] = ["alpha", "beta", "gamma", "delta"];
/// The install's default rates, in hundredths of a dollar per 1,000 tokens.
const AGENTS: [(&str, i128); 14] = [
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

/// One billing_log row as the model expects it.
#[derive(Clone, Debug, PartialEq)]
struct Row {
    id: i64,
    agent: String,
    campaign: Option<String>,
    tokens: i64,
    /// The exact text PostgreSQL must show for `cost::text`.
    cost_text: String,
    /// The cost in micro-dollars (every generated cost has at most 6 decimals).
    micros: i128,
    month: String,
    execution_id: Option<String>,
}

/// A change made by one statement, kept per open transaction until COMMIT.
#[derive(Clone, Debug)]
enum Op {
    Insert(Row),
    Update(Row),
    Delete(Row),
}

fn apply(map: &mut BTreeMap<i64, Row>, op: &Op) {
    match op {
        Op::Insert(r) | Op::Update(r) => {
            map.insert(r.id, r.clone());
        }
        Op::Delete(r) => {
            map.remove(&r.id);
        }
    }
}

/// Decimal text of `mantissa / 10^scale` (mantissa ≥ 0), keeping every digit of the scale.
fn decimal(mantissa: i128, scale: u32) -> String {
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
fn trimmed(mantissa: i128, scale: u32) -> String {
    let d = decimal(mantissa, scale);
    if d.contains('.') {
        d.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        d
    }
}

fn sql_str(s: &Option<String>) -> String {
    match s {
        Some(v) => format!("'{}'", v.replace('\'', "''")),
        None => "NULL".to_string(),
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

struct Model {
    seed: u64,
    rng: Rng,
    step: usize,
    /// What the current step is doing, for assertion messages.
    doing: String,
    conns: Vec<Client>,
    /// The open transaction of each connection: its statements' changes, and the op count at
    /// its savepoint.
    tx: Vec<Option<(Vec<Op>, Option<usize>)>>,
    committed: BTreeMap<i64, Row>,
    /// The long transaction: (connection, step at which it ends, commit?).
    long: Option<(usize, usize, bool)>,
    execution_ids: Vec<String>,
    next_execution_id: usize,
    tag: usize,
}

impl Model {
    fn ctx(&self) -> String {
        format!("seed={} step={} ({})", self.seed, self.step, self.doing)
    }

    fn exec(&mut self, k: usize, sql: &str) -> u64 {
        let ctx = self.ctx();
        self.conns[k].execute(sql, &[]).unwrap_or_else(|e| panic!("{ctx}: conn {k}: {sql}: {e:?}"))
    }

    fn batch(&mut self, k: usize, sql: &str) {
        let ctx = self.ctx();
        self.conns[k].batch_execute(sql).unwrap_or_else(|e| panic!("{ctx}: conn {k}: {sql}: {e:?}"))
    }

    fn query(&mut self, k: usize, sql: &str) -> Vec<postgres::Row> {
        let ctx = self.ctx();
        self.conns[k].query(sql, &[]).unwrap_or_else(|e| panic!("{ctx}: conn {k}: {sql}: {e:?}"))
    }

    /// The rows connection `k` sees: committed rows plus its own transaction's changes.
    fn view(&self, k: usize) -> BTreeMap<i64, Row> {
        let mut v = self.committed.clone();
        if let Some((ops, _)) = &self.tx[k] {
            for op in ops {
                apply(&mut v, op);
            }
        }
        v
    }

    /// Row ids and execution ids that another connection's open transaction has written:
    /// touching them from `k` would wait for that transaction (and this single-threaded test
    /// would hang).
    fn locked_by_others(&self, k: usize) -> (HashSet<i64>, HashSet<String>) {
        let mut ids = HashSet::new();
        let mut xids = HashSet::new();
        for (j, t) in self.tx.iter().enumerate() {
            if j == k {
                continue;
            }
            if let Some((ops, _)) = t {
                for op in ops {
                    let (Op::Insert(r) | Op::Update(r) | Op::Delete(r)) = op;
                    ids.insert(r.id);
                    if let Some(x) = &r.execution_id {
                        xids.insert(x.clone());
                    }
                }
            }
        }
        (ids, xids)
    }

    fn record(&mut self, k: usize, ops: Vec<Op>) {
        match &mut self.tx[k] {
            Some((tx_ops, _)) => tx_ops.extend(ops),
            None => {
                for op in &ops {
                    apply(&mut self.committed, op);
                }
            }
        }
    }

    fn new_tag(&mut self) -> String {
        self.tag += 1;
        format!("t{}", self.tag)
    }

    /// One random write on connection `k` (in its transaction if it has one).
    fn write(&mut self, k: usize) {
        let kind = self.rng.below(100);
        let ops = if kind < 40 {
            self.track_cost(k)
        } else if kind < 55 {
            self.insert(k)
        } else if kind < 70 {
            self.copy(k)
        } else if kind < 85 {
            self.update(k).unwrap_or_else(|| self.track_cost(k))
        } else {
            self.delete(k).unwrap_or_else(|| self.insert(k))
        };
        self.record(k, ops);
    }

    fn track_cost(&mut self, k: usize) -> Vec<Op> {
        let (agent, rate) = *self.rng.pick(&AGENTS);
        let campaign = campaign(&mut self.rng);
        let tokens = self.rng.range(0, 20_000);
        let explicit = if self.rng.chance(30) { Some(explicit_cost(&mut self.rng)) } else { None };
        let (ts, month) = created_at(&mut self.rng);
        let view = self.view(k);
        let (_, locked_xids) = self.locked_by_others(k);
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
        let [q, c, r, t] = extras(&mut self.rng);
        let task = self.new_tag();
        let cost_arg = explicit.as_ref().map(|(txt, _)| format!(", cost => {txt}")).unwrap_or_default();
        let sql = format!(
            "SELECT (x).id, (x).cost::text, (x).billing_month, (x).tokens, (x).task FROM (SELECT neon_budget.track_cost('{agent}', {tokens},
                    campaign_id => {}, task => '{task}', execution_id => {}, quality_score => {q}, conversion_achieved => {c},
                    retry_count => {r}, execution_time_ms => {t}{cost_arg}, created_at => '{ts}') AS x) s",
            sql_str(&campaign),
            sql_str(&execution_id)
        );
        self.doing = format!("conn {k}: {sql}");
        let rows = self.query(k, &sql);
        let ctx = self.ctx();
        assert_eq!(rows.len(), 1, "{ctx}");
        let (id, cost_text, got_month, got_tokens, got_task): (i64, String, String, i64, Option<String>) =
            (rows[0].get(0), rows[0].get(1), rows[0].get(2), rows[0].get(3), rows[0].get(4));
        // A known execution_id returns the row recorded first and writes nothing.
        if let Some(x) = &execution_id {
            if let Some(existing) = view.values().find(|r| r.execution_id.as_deref() == Some(x.as_str())) {
                assert_eq!(
                    (id, cost_text.as_str(), got_month.as_str(), got_tokens),
                    (existing.id, existing.cost_text.as_str(), existing.month.as_str(), existing.tokens),
                    "{ctx}: a repeated execution_id must return the first row"
                );
                assert_ne!(got_task.as_deref(), Some(task.as_str()), "{ctx}: a repeated execution_id wrote a new row");
                return vec![];
            }
        }
        let (expected_text, micros) = match explicit {
            Some(e) => e,
            // tokens × rate/100 / 1000 dollars = tokens × rate / 10^5, trimmed.
            None => (trimmed(tokens as i128 * rate, 5), tokens as i128 * rate * 10),
        };
        assert_eq!(cost_text, expected_text, "{ctx}: cost");
        assert_eq!(got_month, month, "{ctx}: billing_month");
        assert_eq!(got_tokens, tokens, "{ctx}: tokens");
        vec![Op::Insert(Row { id, agent: agent.to_string(), campaign, tokens, cost_text, micros, month, execution_id })]
    }

    /// 2 to 5 random rows for a direct INSERT or COPY: (row without id, task, created_at,
    /// explicit billing_month, extras).
    #[allow(clippy::type_complexity)]
    fn direct_rows(&mut self) -> Vec<(Row, String, String, Option<String>, [String; 4])> {
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
                let (ts, month) = created_at(&mut self.rng);
                let explicit_month = if self.rng.chance(35) { Some(self.rng.pick(&MONTHS).to_string()) } else { None };
                let row = Row {
                    id: 0,
                    agent: agent.to_string(),
                    campaign: campaign(&mut self.rng),
                    tokens,
                    cost_text,
                    micros,
                    month: explicit_month.clone().unwrap_or(month),
                    execution_id: None,
                };
                let task = self.new_tag();
                let ex = extras(&mut self.rng);
                (row, task, ts, explicit_month, ex)
            })
            .collect()
    }

    /// Reads back the ids of rows just written (by their unique task tags) and checks the
    /// stored values.
    fn read_back(&mut self, k: usize, rows: Vec<(Row, String, String, Option<String>, [String; 4])>) -> Vec<Op> {
        let tags: Vec<String> = rows.iter().map(|r| format!("'{}'", r.1)).collect();
        let got = self.query(
            k,
            &format!("SELECT task, id, cost::text, billing_month FROM neon_budget.billing_log WHERE task IN ({})", tags.join(",")),
        );
        let ctx = self.ctx();
        assert_eq!(got.len(), rows.len(), "{ctx}: rows written");
        let by_task: BTreeMap<String, (i64, String, String)> =
            got.iter().map(|r| (r.get::<_, String>(0), (r.get(1), r.get(2), r.get(3)))).collect();
        rows.into_iter()
            .map(|(mut row, task, _, _, _)| {
                let (id, cost_text, month) = by_task.get(&task).unwrap_or_else(|| panic!("{ctx}: row {task} missing")).clone();
                assert_eq!(cost_text, row.cost_text, "{ctx}: cost of {task}");
                assert_eq!(month, row.month, "{ctx}: billing_month of {task}");
                row.id = id;
                Op::Insert(row)
            })
            .collect()
    }

    fn insert(&mut self, k: usize) -> Vec<Op> {
        let rows = self.direct_rows();
        let values: Vec<String> = rows
            .iter()
            .map(|(r, task, ts, bm, [q, c, rc, t])| {
                format!(
                    "('{}', {}, {}, {}, '{task}', '{ts}', {}, {q}, {c}, {rc}, {t})",
                    r.agent,
                    sql_str(&r.campaign),
                    r.tokens,
                    r.cost_text,
                    sql_str(bm)
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO neon_budget.billing_log (agent_type, campaign_id, tokens, cost, task, created_at, billing_month,
                    quality_score, conversion_achieved, retry_count, execution_time_ms) VALUES {}",
            values.join(", ")
        );
        self.doing = format!("conn {k}: {sql}");
        let n = self.exec(k, &sql);
        assert_eq!(n, rows.len() as u64, "{}", self.ctx());
        self.read_back(k, rows)
    }

    fn copy(&mut self, k: usize) -> Vec<Op> {
        let rows = self.direct_rows();
        let csv: String = rows
            .iter()
            .map(|(r, task, ts, bm, ex)| {
                let opt = |s: &str| if s == "NULL" { String::new() } else { s.to_string() };
                format!(
                    "{},{},{},{},{task},{ts},{},{},{},{},{}\n",
                    r.agent,
                    r.campaign.clone().unwrap_or_default(),
                    r.tokens,
                    r.cost_text,
                    bm.clone().unwrap_or_default(),
                    opt(&ex[0]),
                    opt(&ex[1]),
                    opt(&ex[2]),
                    opt(&ex[3])
                )
            })
            .collect();
        self.doing = format!("conn {k}: COPY\n{csv}");
        let ctx = self.ctx();
        let mut w = self.conns[k]
            .copy_in(
                "COPY neon_budget.billing_log (agent_type, campaign_id, tokens, cost, task, created_at, billing_month,
                        quality_score, conversion_achieved, retry_count, execution_time_ms) FROM STDIN WITH (FORMAT csv)",
            )
            .unwrap_or_else(|e| panic!("{ctx}: {e:?}"));
        w.write_all(csv.as_bytes()).unwrap_or_else(|e| panic!("{ctx}: {e:?}"));
        let n = w.finish().unwrap_or_else(|e| panic!("{ctx}: {e:?}"));
        assert_eq!(n, rows.len() as u64, "{ctx}");
        self.read_back(k, rows)
    }

    /// Up to `n` random rows that connection `k` sees and may lock.
    fn targets(&mut self, k: usize, n: usize) -> Vec<Row> {
        let (locked, _) = self.locked_by_others(k);
        let candidates: Vec<Row> = self.view(k).into_values().filter(|r| !locked.contains(&r.id)).collect();
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

    fn update(&mut self, k: usize) -> Option<Vec<Op>> {
        let n = if self.rng.chance(25) { 2 } else { 1 };
        let targets = self.targets(k, n);
        if targets.is_empty() {
            return None;
        }
        let mut sets = Vec::new();
        let (mut cost, mut tokens, mut camp, mut agent) = (None, None, None, None);
        while sets.is_empty() {
            if self.rng.chance(50) {
                let c = explicit_cost(&mut self.rng);
                sets.push(format!("cost = {}", c.0));
                cost = Some(c);
            }
            if self.rng.chance(40) {
                let t = self.rng.range(0, 20_000);
                sets.push(format!("tokens = {t}"));
                tokens = Some(t);
            }
            if self.rng.chance(40) {
                let c = campaign(&mut self.rng);
                sets.push(format!("campaign_id = {}", sql_str(&c)));
                camp = Some(c);
            }
            if self.rng.chance(30) {
                let a = self.rng.pick(&AGENTS).0.to_string();
                sets.push(format!("agent_type = '{a}'"));
                agent = Some(a);
            }
        }
        let ids: Vec<String> = targets.iter().map(|r| r.id.to_string()).collect();
        let sql = format!("UPDATE neon_budget.billing_log SET {} WHERE id IN ({})", sets.join(", "), ids.join(","));
        self.doing = format!("conn {k}: {sql}");
        let changed = self.exec(k, &sql);
        assert_eq!(changed, targets.len() as u64, "{}", self.ctx());
        Some(
            targets
                .into_iter()
                .map(|mut r| {
                    if let Some((t, m)) = &cost {
                        r.cost_text = t.clone();
                        r.micros = *m;
                    }
                    if let Some(t) = tokens {
                        r.tokens = t;
                    }
                    if let Some(c) = &camp {
                        r.campaign = c.clone();
                    }
                    if let Some(a) = &agent {
                        r.agent = a.clone();
                    }
                    Op::Update(r)
                })
                .collect(),
        )
    }

    fn delete(&mut self, k: usize) -> Option<Vec<Op>> {
        let n = if self.rng.chance(25) { 3 } else { 1 };
        let targets = self.targets(k, n);
        if targets.is_empty() {
            return None;
        }
        let ids: Vec<String> = targets.iter().map(|r| r.id.to_string()).collect();
        let sql = format!("DELETE FROM neon_budget.billing_log WHERE id IN ({})", ids.join(","));
        self.doing = format!("conn {k}: {sql}");
        let deleted = self.exec(k, &sql);
        assert_eq!(deleted, targets.len() as u64, "{}", self.ctx());
        Some(targets.into_iter().map(Op::Delete).collect())
    }

    fn begin(&mut self, k: usize) {
        self.batch(k, "BEGIN");
        self.tx[k] = Some((Vec::new(), None));
    }

    fn commit(&mut self, k: usize) {
        self.batch(k, "COMMIT");
        let (ops, _) = self.tx[k].take().expect("a transaction is open");
        for op in &ops {
            apply(&mut self.committed, op);
        }
    }

    fn rollback(&mut self, k: usize) {
        self.batch(k, "ROLLBACK");
        self.tx[k] = None;
    }

    fn savepoint(&mut self, k: usize) {
        self.batch(k, "SAVEPOINT s");
        let (ops, sp) = self.tx[k].as_mut().expect("a transaction is open");
        *sp = Some(ops.len());
    }

    fn rollback_to_savepoint(&mut self, k: usize) {
        self.batch(k, "ROLLBACK TO SAVEPOINT s");
        let (ops, sp) = self.tx[k].as_mut().expect("a transaction is open");
        ops.truncate(sp.expect("a savepoint is set"));
    }

    /// A connection without the long transaction.
    fn free_conn(&mut self) -> usize {
        let busy = self.long.map(|(c, _, _)| c);
        loop {
            let k = self.rng.below(self.conns.len() as u64) as usize;
            if Some(k) != busy {
                return k;
            }
        }
    }

    fn oracle(&mut self, checker: &mut Client) {
        let ctx = self.ctx();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| assert_oracle(checker)));
        if let Err(e) = r {
            let msg = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
            panic!("{ctx}: {msg}");
        }
    }

    /// billing_log as committed equals the model's committed rows, value for value.
    fn check_rows(&self, checker: &mut Client) {
        let ctx = self.ctx();
        let got: Vec<(i64, String, Option<String>, i64, String, String, Option<String>)> = checker
            .query(
                "SELECT id, agent_type, campaign_id, tokens, cost::text, billing_month, execution_id
                   FROM neon_budget.billing_log ORDER BY id",
                &[],
            )
            .unwrap_or_else(|e| panic!("{ctx}: {e:?}"))
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6)))
            .collect();
        let want: Vec<(i64, String, Option<String>, i64, String, String, Option<String>)> = self
            .committed
            .values()
            .map(|r| (r.id, r.agent.clone(), r.campaign.clone(), r.tokens, r.cost_text.clone(), r.month.clone(), r.execution_id.clone()))
            .collect();
        if got != want {
            let got_set: HashSet<_> = got.iter().collect();
            let want_set: HashSet<_> = want.iter().collect();
            let missing: Vec<_> = want.iter().filter(|r| !got_set.contains(r)).collect();
            let extra: Vec<_> = got.iter().filter(|r| !want_set.contains(r)).collect();
            panic!("{ctx}: billing_log differs from the model\nmissing: {missing:?}\nextra: {extra:?}");
        }
    }
}

#[test]
fn random_writes_match_the_model_and_the_oracle() {
    let seed = match std::env::var("NEON_BUDGET_MODEL_SEED") {
        Ok(s) => {
            let s = s.trim();
            match s.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16),
                None => s.parse(),
            }
            .unwrap_or_else(|e| panic!("NEON_BUDGET_MODEL_SEED={s:?} is not a u64: {e}"))
        }
        Err(_) => DEFAULT_SEED,
    };
    eprintln!("model test seed={seed} (set NEON_BUDGET_MODEL_SEED={seed} to replay)");
    let started = std::time::Instant::now();
    let mut db = TestDb::new("model");
    // Budgets far above anything the steps spend: no alert level is claimed, so an open
    // transaction never holds an alert_state row that another connection would wait for. The
    // months' settings rows exist up front for the same reason.
    db.client
        .batch_execute("SELECT neon_budget.set_monthly_budget(m, 1000000000) FROM unnest(ARRAY['2024-01', '2024-02', '2024-03']) m")
        .unwrap();
    let conns = (0..3).map(|_| db.connect()).collect();
    let mut m = Model {
        seed,
        rng: Rng(seed),
        step: 0,
        doing: "setup".into(),
        conns,
        tx: vec![None, None, None],
        committed: BTreeMap::new(),
        long: None,
        execution_ids: Vec::new(),
        next_execution_id: 0,
        tag: 0,
    };
    let checker = &mut db.client;
    let mut ended = [0usize; 5];

    for step in 0..STEPS {
        m.step = step;
        m.doing = String::new();
        // The long transaction ends when its time has come.
        if let Some((k, end, commit)) = m.long {
            if step >= end {
                m.doing = format!("conn {k}: end of the long transaction ({})", if commit { "COMMIT" } else { "ROLLBACK" });
                if commit {
                    m.commit(k);
                } else {
                    m.rollback(k);
                }
                m.long = None;
                ended[4] += 1;
                m.oracle(checker);
                continue;
            }
        }
        let r = m.rng.below(100);
        if r < 55 {
            // A write: on the long transaction's connection it joins that transaction.
            let k = m.rng.below(3) as usize;
            m.write(k);
            if m.tx[k].is_none() {
                ended[0] += 1;
                m.oracle(checker);
            }
        } else if r < 67 {
            // BEGIN; writes; ROLLBACK.
            let k = m.free_conn();
            m.doing = format!("conn {k}: BEGIN ... ROLLBACK");
            m.begin(k);
            for _ in 0..m.rng.range(1, 3) {
                m.write(k);
            }
            m.doing = format!("conn {k}: ROLLBACK");
            m.rollback(k);
            ended[1] += 1;
            m.oracle(checker);
        } else if r < 80 {
            // BEGIN; writes; SAVEPOINT; writes; ROLLBACK TO SAVEPOINT; writes; COMMIT.
            let k = m.free_conn();
            m.doing = format!("conn {k}: savepoint transaction");
            m.begin(k);
            for _ in 0..m.rng.range(0, 2) {
                m.write(k);
            }
            m.savepoint(k);
            for _ in 0..m.rng.range(1, 3) {
                m.write(k);
            }
            m.doing = format!("conn {k}: ROLLBACK TO SAVEPOINT");
            m.rollback_to_savepoint(k);
            for _ in 0..m.rng.range(0, 2) {
                m.write(k);
            }
            m.doing = format!("conn {k}: COMMIT after ROLLBACK TO SAVEPOINT");
            m.commit(k);
            ended[2] += 1;
            m.oracle(checker);
        } else if r < 90 && m.long.is_none() {
            // A transaction left open for a few steps while the other connections write.
            let k = m.free_conn();
            let end = step + m.rng.range(2, 6) as usize;
            let commit = m.rng.chance(50);
            m.doing = format!("conn {k}: BEGIN (long, ends at step {end})");
            m.begin(k);
            m.write(k);
            m.long = Some((k, end, commit));
            ended[3] += 1;
        } else {
            // A write on a connection without an open transaction.
            let k = m.free_conn();
            m.write(k);
            ended[0] += 1;
            m.oracle(checker);
        }
        if step % 25 == 24 {
            m.doing = "checkpoint".into();
            m.check_rows(checker);
        }
    }
    if let Some((k, _, _)) = m.long.take() {
        m.doing = format!("conn {k}: final COMMIT of the long transaction");
        m.commit(k);
        m.oracle(checker);
    }
    m.step = STEPS;
    m.doing = "final checks".into();
    let ctx = m.ctx();
    m.check_rows(checker);

    // Monthly totals: the model's exact sums (integer micro-dollars) against monthly_budget,
    // and the model's cost texts summed by PostgreSQL.
    for month in MONTHS {
        let rows: Vec<&Row> = m.committed.values().filter(|r| r.month == month).collect();
        let micros: i128 = rows.iter().map(|r| r.micros).sum();
        let tokens: i64 = rows.iter().map(|r| r.tokens).sum();
        let texts: Vec<String> = rows.iter().map(|r| r.cost_text.clone()).collect();
        let expected = decimal(micros, 6);
        let got = checker
            .query_opt(
                "SELECT total_spent::text, total_spent = $1::text::numeric,
                        total_spent = (SELECT COALESCE(sum(x::numeric), 0) FROM unnest($2::text[]) x),
                        total_tokens::text, executions
                   FROM neon_budget.monthly_budget WHERE month = $3",
                &[&expected, &texts, &month],
            )
            .unwrap_or_else(|e| panic!("{ctx}: {e:?}"));
        let row = got.unwrap_or_else(|| panic!("{ctx}: monthly_budget has no row for {month}"));
        let (spent, eq_model, eq_sql, total_tokens, executions): (String, bool, bool, String, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
        assert!(eq_model, "{ctx}: {month} total_spent {spent} <> model {expected}");
        assert!(eq_sql, "{ctx}: {month} total_spent {spent} <> sum of the model's costs");
        assert_eq!(total_tokens, tokens.to_string(), "{ctx}: {month} total_tokens");
        assert_eq!(executions, rows.len() as i64, "{ctx}: {month} executions");
        // Per campaign too.
        for camp in CAMPAIGNS {
            let cr: Vec<&&Row> = rows.iter().filter(|r| r.campaign.as_deref() == Some(camp)).collect();
            let cm: i128 = cr.iter().map(|r| r.micros).sum();
            let got: Option<(String, i64)> = checker
                .query_opt(
                    "SELECT total_cost::text, executions FROM neon_budget.campaign_cost WHERE campaign_id = $1 AND month = $2
                        AND total_cost = $3::text::numeric",
                    &[&camp, &month, &decimal(cm, 6)],
                )
                .unwrap_or_else(|e| panic!("{ctx}: {e:?}"))
                .map(|r| (r.get(0), r.get(1)));
            if cr.is_empty() {
                let n = checker
                    .query_one("SELECT count(*) FROM neon_budget.campaign_cost WHERE campaign_id = $1 AND month = $2", &[&camp, &month])
                    .unwrap()
                    .get::<_, i64>(0);
                assert_eq!(n, 0, "{ctx}: campaign_cost has {camp} {month} without executions");
            } else {
                let (_, n) = got.unwrap_or_else(|| panic!("{ctx}: campaign_cost {camp} {month} is not {}", decimal(cm, 6)));
                assert_eq!(n, cr.len() as i64, "{ctx}: campaign_cost {camp} {month} executions");
            }
        }
    }
    // No month outside the three was written, and no alert was raised.
    let months: Vec<String> = checker
        .query("SELECT month FROM neon_budget.monthly_budget WHERE executions <> 0 ORDER BY 1", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut want: Vec<String> = MONTHS.iter().filter(|mo| m.committed.values().any(|r| r.month == **mo)).map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(months, want, "{ctx}");
    assert_eq!(int(checker, "SELECT count(*) FROM neon_budget.alert_log"), 0, "{ctx}");
    m.oracle(checker);
    eprintln!(
        "seed={seed}: {} rows; autocommit writes {}, rolled back {}, savepoint {}, long opened {}, long ended {}; {:?}",
        m.committed.len(),
        ended[0],
        ended[1],
        ended[2],
        ended[3],
        ended[4],
        started.elapsed()
    );
    assert!(m.committed.len() > 50, "{ctx}: too few rows ({}) to mean anything", m.committed.len());
}

#[test]
fn decimal_helpers() {
    assert_eq!(decimal(5, 3), "0.005");
    assert_eq!(decimal(12345, 2), "123.45");
    assert_eq!(decimal(7, 0), "7");
    assert_eq!(decimal(0, 6), "0.000000");
    assert_eq!(trimmed(4000, 5), "0.04");
    assert_eq!(trimmed(0, 5), "0");
    assert_eq!(trimmed(100000, 5), "1");
    assert_eq!(trimmed(1672, 5), "0.01672");
}
