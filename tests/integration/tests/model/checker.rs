//! The checker: the model of `billing_log` (the committed rows, and each connection's open
//! transaction as a list of changes with its savepoint) and every assertion of the model test.
//! Each answer of PostgreSQL must be the one the model predicts (exact cost text, month,
//! tokens, row counts; a repeated execution_id returns the first row and writes nothing); after
//! every ended transaction the aggregate oracle must hold; at checkpoints `billing_log` must
//! equal the model row for row; at the end the monthly and campaign totals must equal the
//! model's exact sums (integer micro-dollars).
// The model's tables are tuples of a row's figures, on purpose.
#![allow(clippy::type_complexity)]
use crate::executor::Answer;
use crate::generator::{decimal, trimmed, Change, NewRow, TrackCost, Write, CAMPAIGNS, MONTHS};
use neon_budget_integration::*;
use postgres::Client;
use std::collections::{BTreeMap, HashSet};

/// One billing_log row as the model expects it.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub id: i64,
    pub agent: String,
    pub campaign: Option<String>,
    pub tokens: i64,
    /// The exact text PostgreSQL must show for `cost::text`.
    pub cost_text: String,
    /// The cost in micro-dollars (every generated cost has at most 6 decimals).
    pub micros: i128,
    pub month: String,
    pub execution_id: Option<String>,
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

/// What `billing_log` must hold, as each connection sees it.
pub struct Model {
    /// The open transaction of each connection: its statements' changes, and the op count at
    /// its savepoint.
    tx: Vec<Option<(Vec<Op>, Option<usize>)>>,
    pub committed: BTreeMap<i64, Row>,
}

impl Model {
    pub fn new(conns: usize) -> Model {
        Model { tx: vec![None; conns], committed: BTreeMap::new() }
    }

    /// Whether connection `k` has an open transaction.
    pub fn in_transaction(&self, k: usize) -> bool {
        self.tx[k].is_some()
    }

    /// The rows connection `k` sees: committed rows plus its own transaction's changes.
    pub fn view(&self, k: usize) -> BTreeMap<i64, Row> {
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
    pub fn locked_by_others(&self, k: usize) -> (HashSet<i64>, HashSet<String>) {
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

    pub fn begin(&mut self, k: usize) {
        self.tx[k] = Some((Vec::new(), None));
    }

    pub fn commit(&mut self, k: usize) {
        let (ops, _) = self.tx[k].take().expect("a transaction is open");
        for op in &ops {
            apply(&mut self.committed, op);
        }
    }

    pub fn rollback(&mut self, k: usize) {
        self.tx[k] = None;
    }

    pub fn savepoint(&mut self, k: usize) {
        let (ops, sp) = self.tx[k].as_mut().expect("a transaction is open");
        *sp = Some(ops.len());
    }

    pub fn rollback_to_savepoint(&mut self, k: usize) {
        let (ops, sp) = self.tx[k].as_mut().expect("a transaction is open");
        ops.truncate(sp.expect("a savepoint is set"));
    }
}

/// Checks PostgreSQL's answer to write `w` on connection `k` against the model, then records
/// the write in the model (in `k`'s transaction if it has one). `ctx` names the seed and step.
pub fn wrote(model: &mut Model, k: usize, w: Write, answer: Answer, ctx: &str) {
    let ops = match (w, answer) {
        (Write::TrackCost(t), Answer::Tracked(got)) => tracked(model, k, t, got, ctx),
        (Write::Insert(rows) | Write::Copy(rows), Answer::Written(n, got)) => {
            assert_eq!(n, rows.len() as u64, "{ctx}");
            read_back(rows, got, ctx)
        }
        (Write::Update(targets, change), Answer::Changed(n)) => {
            assert_eq!(n, targets.len() as u64, "{ctx}");
            targets.into_iter().map(|r| Op::Update(changed(r, &change))).collect()
        }
        (Write::Delete(targets), Answer::Changed(n)) => {
            assert_eq!(n, targets.len() as u64, "{ctx}");
            targets.into_iter().map(Op::Delete).collect()
        }
        _ => unreachable!("the executor answers each write with its kind of answer"),
    };
    model.record(k, ops);
}

/// One track_cost call: a known execution_id returns the row recorded first and writes
/// nothing; otherwise the new row has the explicit cost or tokens × the agent's rate, and the
/// UTC month of `created_at`.
fn tracked(model: &Model, k: usize, t: TrackCost, got: Vec<crate::executor::Tracked>, ctx: &str) -> Vec<Op> {
    assert_eq!(got.len(), 1, "{ctx}");
    let g = &got[0];
    if let Some(x) = &t.execution_id {
        if let Some(existing) = model.view(k).values().find(|r| r.execution_id.as_deref() == Some(x.as_str())) {
            assert_eq!(
                (g.id, g.cost_text.as_str(), g.month.as_str(), g.tokens),
                (existing.id, existing.cost_text.as_str(), existing.month.as_str(), existing.tokens),
                "{ctx}: a repeated execution_id must return the first row"
            );
            assert_ne!(g.task.as_deref(), Some(t.task.as_str()), "{ctx}: a repeated execution_id wrote a new row");
            return vec![];
        }
    }
    let (expected_text, micros) = match t.explicit {
        Some(e) => e,
        // tokens × rate/100 / 1000 dollars = tokens × rate / 10^5, trimmed.
        None => (trimmed(t.tokens as i128 * t.rate, 5), t.tokens as i128 * t.rate * 10),
    };
    assert_eq!(g.cost_text, expected_text, "{ctx}: cost");
    assert_eq!(g.month, t.month, "{ctx}: billing_month");
    assert_eq!(g.tokens, t.tokens, "{ctx}: tokens");
    vec![Op::Insert(Row {
        id: g.id,
        agent: t.agent.to_string(),
        campaign: t.campaign,
        tokens: t.tokens,
        cost_text: g.cost_text.clone(),
        micros,
        month: t.month,
        execution_id: t.execution_id,
    })]
}

/// The rows of a direct INSERT or COPY, read back by their task tags: all of them, with the
/// cost text and billing_month the model expects.
fn read_back(rows: Vec<NewRow>, got: Vec<(String, crate::executor::Stored)>, ctx: &str) -> Vec<Op> {
    assert_eq!(got.len(), rows.len(), "{ctx}: rows written");
    let by_task: BTreeMap<String, crate::executor::Stored> = got.into_iter().collect();
    rows.into_iter()
        .map(|NewRow { mut row, task, .. }| {
            let stored = by_task.get(&task).unwrap_or_else(|| panic!("{ctx}: row {task} missing"));
            assert_eq!(stored.cost_text, row.cost_text, "{ctx}: cost of {task}");
            assert_eq!(stored.month, row.month, "{ctx}: billing_month of {task}");
            row.id = stored.id;
            Op::Insert(row)
        })
        .collect()
}

/// Row `r` after an UPDATE that set `change`.
fn changed(mut r: Row, change: &Change) -> Row {
    if let Some((t, m)) = &change.cost {
        r.cost_text = t.clone();
        r.micros = *m;
    }
    if let Some(t) = change.tokens {
        r.tokens = t;
    }
    if let Some(c) = &change.campaign {
        r.campaign = c.clone();
    }
    if let Some(a) = &change.agent {
        r.agent = a.clone();
    }
    r
}

/// The aggregate oracle ([`assert_oracle`]), its message prefixed with `ctx`.
pub fn oracle(c: &mut Client, ctx: &str) {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| assert_oracle(c)));
    if let Err(e) = r {
        let msg = e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
        panic!("{ctx}: {msg}");
    }
}

/// billing_log as committed equals the model's committed rows, value for value.
pub fn rows(model: &Model, c: &mut Client, ctx: &str) {
    let got: Vec<(i64, String, Option<String>, i64, String, String, Option<String>)> = c
        .query(
            "SELECT id, agent_type, campaign_id, tokens, cost::text, billing_month, execution_id
               FROM neon_budget.billing_log ORDER BY id",
            &[],
        )
        .unwrap_or_else(|e| panic!("{ctx}: {e:?}"))
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5), r.get(6)))
        .collect();
    let want: Vec<(i64, String, Option<String>, i64, String, String, Option<String>)> = model
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

/// The totals at the end: each month's total_spent equals the model's exact sum (integer
/// micro-dollars) and the model's cost texts summed by PostgreSQL, with its tokens and
/// executions; each campaign's month likewise (and no row for a campaign month without
/// executions); only the model's months have executions; no alert was raised.
pub fn totals(model: &Model, c: &mut Client, ctx: &str) {
    for month in MONTHS {
        let rows: Vec<&Row> = model.committed.values().filter(|r| r.month == month).collect();
        let micros: i128 = rows.iter().map(|r| r.micros).sum();
        let tokens: i64 = rows.iter().map(|r| r.tokens).sum();
        let texts: Vec<String> = rows.iter().map(|r| r.cost_text.clone()).collect();
        let expected = decimal(micros, 6);
        let got = c
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
            let got: Option<(String, i64)> = c
                .query_opt(
                    "SELECT total_cost::text, executions FROM neon_budget.campaign_cost WHERE campaign_id = $1 AND month = $2
                        AND total_cost = $3::text::numeric",
                    &[&camp, &month, &decimal(cm, 6)],
                )
                .unwrap_or_else(|e| panic!("{ctx}: {e:?}"))
                .map(|r| (r.get(0), r.get(1)));
            if cr.is_empty() {
                let n = c
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
    let months: Vec<String> = c
        .query("SELECT month FROM neon_budget.monthly_budget WHERE executions <> 0 ORDER BY 1", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut want: Vec<String> =
        MONTHS.iter().filter(|mo| model.committed.values().any(|r| r.month == **mo)).map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(months, want, "{ctx}");
    assert_eq!(int(c, "SELECT count(*) FROM neon_budget.alert_log"), 0, "{ctx}");
}
