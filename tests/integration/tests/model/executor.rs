//! The executor: runs what the generator planned on the test's connections, as SQL text that
//! a reader can replay (track_cost, multi-row INSERT, COPY, UPDATE, DELETE, BEGIN, SAVEPOINT,
//! ROLLBACK TO SAVEPOINT, COMMIT, ROLLBACK), and returns what PostgreSQL answered. It asserts
//! nothing; a statement that fails panics with the seed, the step and the statement.
use crate::generator::{NewRow, Write};
use postgres::Client;
use std::io::Write as _;

/// A row `track_cost` returned.
pub struct Tracked {
    pub id: i64,
    pub cost_text: String,
    pub month: String,
    pub tokens: i64,
    pub task: Option<String>,
}

/// A row read back by its task tag after a direct INSERT or COPY.
pub struct Stored {
    pub id: i64,
    pub cost_text: String,
    pub month: String,
}

/// What PostgreSQL answered to one write.
pub enum Answer {
    /// The rows `track_cost` returned.
    Tracked(Vec<Tracked>),
    /// The row count of an INSERT or COPY, and the rows read back by their task tags.
    Written(u64, Vec<(String, Stored)>),
    /// The row count of an UPDATE or DELETE.
    Changed(u64),
}

pub struct Executor {
    seed: u64,
    step: usize,
    /// What the current step is doing, for messages.
    pub doing: String,
    conns: Vec<Client>,
}

impl Executor {
    pub fn new(seed: u64, conns: Vec<Client>) -> Executor {
        Executor { seed, step: 0, doing: "setup".into(), conns }
    }

    /// Starts step `step`.
    pub fn at(&mut self, step: usize) {
        self.step = step;
        self.doing = String::new();
    }

    /// The seed, the step and what it is doing, for every assertion message.
    pub fn ctx(&self) -> String {
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

    pub fn begin(&mut self, k: usize) {
        self.batch(k, "BEGIN");
    }

    pub fn commit(&mut self, k: usize) {
        self.batch(k, "COMMIT");
    }

    pub fn rollback(&mut self, k: usize) {
        self.batch(k, "ROLLBACK");
    }

    pub fn savepoint(&mut self, k: usize) {
        self.batch(k, "SAVEPOINT s");
    }

    pub fn rollback_to_savepoint(&mut self, k: usize) {
        self.batch(k, "ROLLBACK TO SAVEPOINT s");
    }

    /// Runs one write on connection `k`.
    pub fn write(&mut self, k: usize, w: &Write) -> Answer {
        match w {
            Write::TrackCost(t) => {
                let [q, c, r, tm] = &t.extras;
                let cost_arg = t.explicit.as_ref().map(|(txt, _)| format!(", cost => {txt}")).unwrap_or_default();
                let sql = format!(
                    "SELECT (x).id, (x).cost::text, (x).billing_month, (x).tokens, (x).task FROM (SELECT neon_budget.track_cost('{}', {},
                    campaign_id => {}, task => '{}', execution_id => {}, quality_score => {q}, conversion_achieved => {c},
                    retry_count => {r}, execution_time_ms => {tm}{cost_arg}, created_at => '{}') AS x) s",
                    t.agent,
                    t.tokens,
                    sql_str(&t.campaign),
                    t.task,
                    sql_str(&t.execution_id),
                    t.created_at
                );
                self.doing = format!("conn {k}: {sql}");
                let rows = self.query(k, &sql);
                Answer::Tracked(
                    rows.iter()
                        .map(|r| Tracked { id: r.get(0), cost_text: r.get(1), month: r.get(2), tokens: r.get(3), task: r.get(4) })
                        .collect(),
                )
            }
            Write::Insert(rows) => {
                let values: Vec<String> = rows
                    .iter()
                    .map(|NewRow { row: r, task, created_at: ts, billing_month: bm, extras: [q, c, rc, t] }| {
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
                Answer::Written(n, self.read_back(k, rows))
            }
            Write::Copy(rows) => {
                let csv: String = rows
                    .iter()
                    .map(|NewRow { row: r, task, created_at: ts, billing_month: bm, extras: ex }| {
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
                Answer::Written(n, self.read_back(k, rows))
            }
            Write::Update(targets, change) => {
                let mut sets = Vec::new();
                if let Some((text, _)) = &change.cost {
                    sets.push(format!("cost = {text}"));
                }
                if let Some(t) = change.tokens {
                    sets.push(format!("tokens = {t}"));
                }
                if let Some(c) = &change.campaign {
                    sets.push(format!("campaign_id = {}", sql_str(c)));
                }
                if let Some(a) = &change.agent {
                    sets.push(format!("agent_type = '{a}'"));
                }
                let ids: Vec<String> = targets.iter().map(|r| r.id.to_string()).collect();
                let sql = format!("UPDATE neon_budget.billing_log SET {} WHERE id IN ({})", sets.join(", "), ids.join(","));
                self.doing = format!("conn {k}: {sql}");
                Answer::Changed(self.exec(k, &sql))
            }
            Write::Delete(targets) => {
                let ids: Vec<String> = targets.iter().map(|r| r.id.to_string()).collect();
                let sql = format!("DELETE FROM neon_budget.billing_log WHERE id IN ({})", ids.join(","));
                self.doing = format!("conn {k}: {sql}");
                Answer::Changed(self.exec(k, &sql))
            }
        }
    }

    /// The rows just written, by their unique task tags.
    fn read_back(&mut self, k: usize, rows: &[NewRow]) -> Vec<(String, Stored)> {
        let tags: Vec<String> = rows.iter().map(|r| format!("'{}'", r.task)).collect();
        let got = self.query(
            k,
            &format!("SELECT task, id, cost::text, billing_month FROM neon_budget.billing_log WHERE task IN ({})", tags.join(",")),
        );
        got.iter().map(|r| (r.get(0), Stored { id: r.get(1), cost_text: r.get(2), month: r.get(3) })).collect()
    }
}

/// A text as an SQL literal, or NULL.
fn sql_str(s: &Option<String>) -> String {
    match s {
        Some(v) => format!("'{}'", v.replace('\'', "''")),
        None => "NULL".to_string(),
    }
}
