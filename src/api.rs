//! The hot-path SQL API: `track_cost` and `budget_check`.
use crate::alerts;
use crate::error::{raise, spi, spi_opt, Code};
use crate::gucs;
use crate::money;
use crate::month;
use pgrx::prelude::*;
use pgrx::{AnyNumeric, JsonB};

/// Raises 22004 (null_value_not_allowed) when a required argument is NULL.
pub(crate) fn required<T>(arg: &str, value: Option<T>) -> T {
    value.unwrap_or_else(|| {
        raise(
            Code::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            format!("{arg} must not be NULL"),
            format!("Pass a value for {arg}."),
        )
    })
}

fn require_score(arg: &str, value: Option<f64>) {
    if let Some(v) = value {
        if !(0.0..=1.0).contains(&v) {
            raise(
                Code::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
                format!("{arg} must be between 0 and 1, not {v}"),
                format!("{arg} is a fraction: 0 is worst, 1 is best."),
            );
        }
    }
}

fn require_non_negative(arg: &str, negative: bool, shown: impl std::fmt::Display) {
    if negative {
        raise(
            Code::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
            format!("{arg} must not be negative, not {shown}"),
            format!("{arg} counts what an execution used; record a correction by UPDATE of billing_log as an admin."),
        );
    }
}

/// The current rate of `agent_type` in dollars per 1,000 tokens, or SQLSTATE 42704
/// (undefined_object) when the agent type has no rate.
pub(crate) fn current_rate(agent_type: &str) -> AnyNumeric {
    let rate = spi_opt(Spi::get_one_with_args::<AnyNumeric>(
        "SELECT r.cost_per_1k_tokens FROM neon_budget.agent_rate r
          WHERE r.agent_type OPERATOR(pg_catalog.=) $1
          ORDER BY r.effective_from DESC LIMIT 1",
        &[agent_type.into()],
    ));
    rate.unwrap_or_else(|| {
        raise(
            Code::ERRCODE_UNDEFINED_OBJECT,
            format!("unknown agent type \"{agent_type}\""),
            "Give it a rate first: SELECT neon_budget.set_agent_rate('MY_AGENT', 0.04);",
        )
    })
}

const SELECT_BY_EXECUTION_ID: &str =
    "SELECT b FROM neon_budget.billing_log b WHERE b.execution_id OPERATOR(pg_catalog.=) $1";

/// `track_cost(agent_type text, tokens bigint, campaign_id text DEFAULT NULL, task text DEFAULT NULL,
/// execution_id text DEFAULT NULL, impact_score float8 DEFAULT NULL, conversion_achieved boolean DEFAULT NULL,
/// quality_score float8 DEFAULT NULL, retry_count integer DEFAULT NULL, execution_time_ms bigint DEFAULT NULL,
/// metadata jsonb DEFAULT NULL, cost numeric DEFAULT NULL, created_at timestamptz DEFAULT now())
/// -> neon_budget.billing_log`
///
/// Records one agent execution and returns its `billing_log` row. The cost in dollars is
/// `tokens / 1000 × the agent type's current rate`, exactly, unless `cost` (a provider-reported
/// dollar amount) is given. The same `execution_id` twice records once and returns the first
/// row (safe retries). Real spend is never refused for being over budget: use `budget_check`
/// before the execution. When `neon_budget.enabled` is off it records nothing and returns NULL.
///
/// Errors: 22004 for a NULL `agent_type` or `tokens`; 22003 for negative `tokens`, `cost`,
/// `retry_count` or `execution_time_ms`, or a score outside 0..1; 42704 for an agent type with no
/// rate; 22023 for an empty agent type. A failing call writes nothing.
#[pg_extern(volatile, parallel_unsafe)]
#[allow(clippy::too_many_arguments)]
fn track_cost(
    agent_type: Option<&str>,
    tokens: Option<i64>,
    campaign_id: default!(Option<&str>, "NULL"),
    task: default!(Option<&str>, "NULL"),
    execution_id: default!(Option<&str>, "NULL"),
    impact_score: default!(Option<f64>, "NULL"),
    conversion_achieved: default!(Option<bool>, "NULL"),
    quality_score: default!(Option<f64>, "NULL"),
    retry_count: default!(Option<i32>, "NULL"),
    execution_time_ms: default!(Option<i64>, "NULL"),
    metadata: default!(Option<JsonB>, "NULL"),
    cost: default!(Option<AnyNumeric>, "NULL"),
    created_at: default!(Option<TimestampWithTimeZone>, "now()"),
) -> Option<pgrx::composite_type!('static, "billing_log")> {
    let agent_type = required("agent_type", agent_type);
    let tokens = required("tokens", tokens);
    if !gucs::enabled() {
        return None;
    }
    if agent_type.trim().is_empty() {
        raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            "agent_type must not be empty",
            "Pass an agent type such as 'CONTENT'; SELECT * FROM neon_budget.agent_rate lists them.",
        );
    }
    require_non_negative("tokens", tokens < 0, tokens);
    if let Some(c) = &cost {
        if c.is_nan() {
            raise(Code::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE, "cost must be a number, not NaN", "Pass the cost in dollars, e.g. 0.0123.");
        }
        require_non_negative("cost", *c < AnyNumeric::from(0), c);
    }
    require_score("impact_score", impact_score);
    require_score("quality_score", quality_score);
    require_non_negative("retry_count", retry_count.is_some_and(|r| r < 0), retry_count.unwrap_or(0));
    require_non_negative("execution_time_ms", execution_time_ms.is_some_and(|t| t < 0), execution_time_ms.unwrap_or(0));

    // A retry of a recorded execution returns the first row without writing anything.
    if let Some(id) = execution_id {
        if let Some(row) = spi_opt(Spi::connect(|client| {
            client.select(SELECT_BY_EXECUTION_ID, Some(1), &[id.into()])?.first().get_one()
        })) {
            return Some(row);
        }
    }

    let rate = current_rate(agent_type);
    let cost = cost.unwrap_or_else(|| money::cost_for_tokens(tokens, rate));
    let tz = gucs::timezone();

    Spi::connect_mut(|client| {
        let inserted = spi_opt(
            client
                .update(
                    "INSERT INTO neon_budget.billing_log AS b
                        (agent_type, campaign_id, tokens, cost, task, execution_id, impact_score,
                         conversion_achieved, quality_score, retry_count, execution_time_ms, metadata,
                         created_at, billing_month)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
                             COALESCE($13, pg_catalog.now()),
                             pg_catalog.to_char(COALESCE($13, pg_catalog.now()) AT TIME ZONE $14, 'YYYY-MM'))
                     ON CONFLICT (execution_id) WHERE execution_id IS NOT NULL DO NOTHING
                     RETURNING b",
                    // No row limit: a limit stops the executor before the AFTER STATEMENT
                    // triggers that maintain the aggregates are queued.
                    None,
                    &[
                        agent_type.into(),
                        campaign_id.into(),
                        tokens.into(),
                        cost.into(),
                        task.into(),
                        execution_id.into(),
                        impact_score.into(),
                        conversion_achieved.into(),
                        quality_score.into(),
                        retry_count.into(),
                        execution_time_ms.into(),
                        metadata.into(),
                        created_at.into(),
                        tz.as_str().into(),
                    ],
                )
                .and_then(|t| t.first().get_one()),
        );
        match inserted {
            Some(row) => Some(row),
            // A concurrent call with the same execution_id committed first: return its row.
            None => spi_opt(
                client
                    .select(SELECT_BY_EXECUTION_ID, Some(1), &[execution_id.into()])
                    .and_then(|t| t.first().get_one()),
            ),
        }
    })
}

/// Budget and spend of one scope, as read from the maintained aggregates.
struct Scope {
    budget: AnyNumeric,
    spent: AnyNumeric,
}

impl Scope {
    /// Blocked when spend has reached the budget, or spend plus the estimate would pass it.
    fn blocks(&self, estimate: &AnyNumeric) -> bool {
        self.spent >= self.budget || self.spent.clone() + estimate.clone() > self.budget
    }
}


fn worse(a: &'static str, b: &'static str) -> &'static str {
    let rank = |s: &str| ["ok", "warning", "critical", "exceeded"].iter().position(|x| *x == s).unwrap_or(0);
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

/// `budget_check(campaign_id text DEFAULT NULL, agent_type text DEFAULT NULL, estimated_tokens bigint DEFAULT 0)`
/// returns one row: `can_execute`, `status` (`ok`, `warning`, `critical`, `exceeded`: the worse of
/// the month's and the campaign's), `month` (`YYYY-MM`), `total_budget`, `total_spent`, `remaining`
/// (dollars), `utilization_percentage` (percent, 2 decimals), `override_enabled`, `campaign_id`,
/// `campaign_budget` (NULL = no limit), `campaign_spent` and `estimated_cost` (dollars, from
/// `estimated_tokens` at the agent type's current rate).
///
/// `can_execute` is false when the current month's or the campaign's spend has reached its budget,
/// or spend plus the estimated cost would pass it, unless the override is on
/// (`set_budget_override` for the month or the GUC `neon_budget.enable_override`). When
/// `neon_budget.enabled` is off it is always true. Reads only the aggregates: its cost does not
/// grow with `billing_log`. A month not used yet shows the budget it would get
/// (`neon_budget.max_monthly_budget`).
///
/// Errors: 22003 for negative `estimated_tokens`; 22023 when `estimated_tokens` is positive and
/// no `agent_type` is given; 42704 for an agent type with no rate.
#[pg_extern(stable, parallel_restricted)]
fn budget_check(
    campaign_id: default!(Option<&str>, "NULL"),
    agent_type: default!(Option<&str>, "NULL"),
    estimated_tokens: default!(Option<i64>, "0"),
) -> TableIterator<
    'static,
    (
        name!(can_execute, bool),
        name!(status, String),
        name!(month, String),
        name!(total_budget, AnyNumeric),
        name!(total_spent, AnyNumeric),
        name!(remaining, AnyNumeric),
        name!(utilization_percentage, AnyNumeric),
        name!(override_enabled, bool),
        name!(campaign_id, Option<String>),
        name!(campaign_budget, Option<AnyNumeric>),
        name!(campaign_spent, Option<AnyNumeric>),
        name!(estimated_cost, AnyNumeric),
    ),
> {
    let estimated_tokens = estimated_tokens.unwrap_or(0);
    require_non_negative("estimated_tokens", estimated_tokens < 0, estimated_tokens);
    let estimate = match agent_type {
        Some(a) => money::cost_for_tokens(estimated_tokens, current_rate(a)),
        None if estimated_tokens > 0 => raise(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            "estimated_tokens needs an agent_type to price them",
            "Call budget_check(agent_type => 'CONTENT', estimated_tokens => 1000).",
        ),
        None => AnyNumeric::from(0),
    };
    let month = month::current_month();

    type Row = (Option<AnyNumeric>, Option<AnyNumeric>, Option<bool>, Option<AnyNumeric>, Option<AnyNumeric>, Option<AnyNumeric>);
    let (budget, threshold, month_override, spent, campaign_budget, campaign_spent): Row = spi(Spi::connect(|client| {
        let t = client
            .select(
                "SELECT s.total_budget, s.alert_threshold, s.override_enabled,
                        (SELECT COALESCE(sum(m.cost), 0) FROM neon_budget._month_spend m
                          WHERE m.billing_month OPERATOR(pg_catalog.=) $1),
                        c.monthly_budget,
                        CASE WHEN $2 IS NOT NULL THEN
                          (SELECT COALESCE(sum(cs.cost), 0) FROM neon_budget._campaign_spend cs
                            WHERE cs.campaign_id OPERATOR(pg_catalog.=) $2
                              AND cs.billing_month OPERATOR(pg_catalog.=) $1) END
                   FROM (SELECT 1) one
                   LEFT JOIN neon_budget.monthly_budget_setting s ON s.month OPERATOR(pg_catalog.=) $1
                   LEFT JOIN neon_budget.campaign c ON c.campaign_id OPERATOR(pg_catalog.=) $2",
                Some(1),
                &[month.as_str().into(), campaign_id.into()],
            )?
            .first();
        Ok::<Row, pgrx::spi::Error>((
            t.get(1)?,
            t.get(2)?,
            t.get(3)?,
            t.get(4)?,
            t.get(5)?,
            t.get(6)?,
        ))
    }));

    let month_scope = Scope {
        budget: budget.unwrap_or_else(gucs::max_monthly_budget),
        spent: spent.unwrap_or_default(),
    };
    let threshold = threshold.unwrap_or_else(gucs::default_alert_threshold);
    let override_enabled = gucs::override_all_months() || month_override.unwrap_or(false);

    let mut status = alerts::status(&month_scope.spent, &month_scope.budget, &threshold);
    let mut blocked = month_scope.blocks(&estimate);
    if let (Some(b), Some(s)) = (&campaign_budget, &campaign_spent) {
        let campaign_scope = Scope { budget: b.clone(), spent: s.clone() };
        status = worse(status, alerts::status(&campaign_scope.spent, &campaign_scope.budget, &threshold));
        blocked = blocked || campaign_scope.blocks(&estimate);
    }
    let can_execute = !gucs::enabled() || override_enabled || !blocked;
    let remaining = month_scope.budget.clone() - month_scope.spent.clone();
    let utilization = money::round(
        month_scope.spent.clone() / month_scope.budget.clone() * AnyNumeric::from(100),
        2,
    );

    TableIterator::once((
        can_execute,
        status.to_string(),
        month,
        month_scope.budget,
        month_scope.spent,
        remaining,
        utilization,
        override_enabled,
        campaign_id.map(str::to_string),
        campaign_budget,
        campaign_spent,
        estimate,
    ))
}
