//! A randomized model test: 300 random writes over 3 connections (track_cost, multi-row INSERT,
//! COPY, UPDATE, DELETE, rolled back transactions, savepoints, a transaction left open while
//! other connections write), checked after every ended transaction by the aggregate oracle and
//! at checkpoints and at the end against an in-test model of `billing_log` (exact costs as
//! decimal text and integer micro-dollars).
//!
//! The seed comes from `NEON_BUDGET_MODEL_SEED` (decimal or 0x-hex) or a fixed default; every
//! assertion message names it, so `NEON_BUDGET_MODEL_SEED=<seed> cargo test ... --test model`
//! replays a failure step by step.
//!
//! This file is the specification; the parts are [`generator`] (every random choice, from the
//! seed), [`executor`] (runs them as SQL, returns PostgreSQL's answers) and [`checker`] (the
//! model of `billing_log` and every assertion).
mod checker;
mod executor;
mod generator;

use checker::Model;
use executor::Executor;
use generator::{decimal, trimmed, Generator, Long, Step};
use neon_budget_integration::*;
use postgres::Client;

const STEPS: usize = 300;
const CONNECTIONS: usize = 3;
const DEFAULT_SEED: u64 = 0x6e62_5eed_2024_0001;
/// Steps between two comparisons of `billing_log` with the model, row for row.
const CHECKPOINT_EVERY: usize = 25;

#[test]
fn random_writes_match_the_model_and_the_oracle() {
    let seed = seed();
    eprintln!("model test seed={seed} (set NEON_BUDGET_MODEL_SEED={seed} to replay)");
    let started = std::time::Instant::now();
    let mut db = TestDb::new("model");
    // Budgets far above anything the steps spend: no alert level is claimed, so an open
    // transaction never holds an alert_state row that another connection would wait for. The
    // months' settings rows exist up front for the same reason.
    db.client
        .batch_execute("SELECT neon_budget.set_monthly_budget(m, 1000000000) FROM unnest(ARRAY['2024-01', '2024-02', '2024-03']) m")
        .unwrap();
    let conns = (0..CONNECTIONS).map(|_| db.connect()).collect();
    let mut run = Run { gen: Generator::new(seed, CONNECTIONS), exec: Executor::new(seed, conns), model: Model::new(CONNECTIONS) };
    let c = &mut db.client;
    // Autocommit writes, rolled back transactions, savepoint transactions, long ones opened and ended.
    let mut ended = [0usize; 5];

    for step in 0..STEPS {
        run.exec.at(step);
        match run.gen.step(step) {
            Step::EndLong(Long { conn: k, commit, .. }) => {
                run.exec.doing = format!("conn {k}: end of the long transaction ({})", if commit { "COMMIT" } else { "ROLLBACK" });
                if commit {
                    run.commit(k);
                } else {
                    run.rollback(k);
                }
                ended[4] += 1;
                run.oracle(c);
                continue;
            }
            Step::Write(k) => {
                run.write(k);
                if !run.model.in_transaction(k) {
                    ended[0] += 1;
                    run.oracle(c);
                }
            }
            Step::RolledBack(k) => {
                run.exec.doing = format!("conn {k}: BEGIN ... ROLLBACK");
                run.begin(k);
                run.writes(k, 1, 3);
                run.exec.doing = format!("conn {k}: ROLLBACK");
                run.rollback(k);
                ended[1] += 1;
                run.oracle(c);
            }
            Step::Savepoint(k) => {
                run.exec.doing = format!("conn {k}: savepoint transaction");
                run.begin(k);
                run.writes(k, 0, 2);
                run.savepoint(k);
                run.writes(k, 1, 3);
                run.exec.doing = format!("conn {k}: ROLLBACK TO SAVEPOINT");
                run.rollback_to_savepoint(k);
                run.writes(k, 0, 2);
                run.exec.doing = format!("conn {k}: COMMIT after ROLLBACK TO SAVEPOINT");
                run.commit(k);
                ended[2] += 1;
                run.oracle(c);
            }
            Step::OpenLong(Long { conn: k, end, .. }) => {
                run.exec.doing = format!("conn {k}: BEGIN (long, ends at step {end})");
                run.begin(k);
                run.write(k);
                ended[3] += 1;
            }
            Step::FreeWrite(k) => {
                run.write(k);
                ended[0] += 1;
                run.oracle(c);
            }
        }
        if step % CHECKPOINT_EVERY == CHECKPOINT_EVERY - 1 {
            run.exec.doing = "checkpoint".into();
            checker::rows(&run.model, c, &run.exec.ctx());
        }
    }
    if let Some(Long { conn: k, .. }) = run.gen.take_long() {
        run.exec.doing = format!("conn {k}: final COMMIT of the long transaction");
        run.commit(k);
        run.oracle(c);
    }
    run.exec.at(STEPS);
    run.exec.doing = "final checks".into();
    let ctx = run.exec.ctx();
    checker::rows(&run.model, c, &ctx);
    checker::totals(&run.model, c, &ctx);
    run.oracle(c);
    let rows = run.model.committed.len();
    eprintln!(
        "seed={seed}: {rows} rows; autocommit writes {}, rolled back {}, savepoint {}, long opened {}, long ended {}; {:?}",
        ended[0],
        ended[1],
        ended[2],
        ended[3],
        ended[4],
        started.elapsed()
    );
    assert!(rows > 50, "{ctx}: too few rows ({rows}) to mean anything");
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

/// `NEON_BUDGET_MODEL_SEED` (decimal or 0x-hex), else [`DEFAULT_SEED`].
fn seed() -> u64 {
    match std::env::var("NEON_BUDGET_MODEL_SEED") {
        Ok(s) => {
            let s = s.trim();
            match s.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16),
                None => s.parse(),
            }
            .unwrap_or_else(|e| panic!("NEON_BUDGET_MODEL_SEED={s:?} is not a u64: {e}"))
        }
        Err(_) => DEFAULT_SEED,
    }
}

/// The three parts wired together: each write is planned by the generator (from the model),
/// run by the executor and checked against the model, which then records it; transaction
/// control runs on PostgreSQL and in the model alike.
struct Run {
    gen: Generator,
    exec: Executor,
    model: Model,
}

impl Run {
    fn write(&mut self, k: usize) {
        let w = self.gen.write(k, &self.model);
        let answer = self.exec.write(k, &w);
        checker::wrote(&mut self.model, k, w, answer, &self.exec.ctx());
    }

    /// `lo..=hi` writes on connection `k`.
    fn writes(&mut self, k: usize, lo: i64, hi: i64) {
        for _ in 0..self.gen.count(lo, hi) {
            self.write(k);
        }
    }

    fn begin(&mut self, k: usize) {
        self.exec.begin(k);
        self.model.begin(k);
    }

    fn commit(&mut self, k: usize) {
        self.exec.commit(k);
        self.model.commit(k);
    }

    fn rollback(&mut self, k: usize) {
        self.exec.rollback(k);
        self.model.rollback(k);
    }

    fn savepoint(&mut self, k: usize) {
        self.exec.savepoint(k);
        self.model.savepoint(k);
    }

    fn rollback_to_savepoint(&mut self, k: usize) {
        self.exec.rollback_to_savepoint(k);
        self.model.rollback_to_savepoint(k);
    }

    /// The aggregate oracle, after a transaction ended.
    fn oracle(&mut self, c: &mut Client) {
        checker::oracle(c, &self.exec.ctx());
    }
}
