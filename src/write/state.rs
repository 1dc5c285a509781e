//! Budget state: what a month and a campaign may still spend, read from the maintained
//! aggregates (this backend's and every other slot row) and the live reservations only (never
//! from `billing_log`). The write path reads it for alerts; `budget_check` and
//! `budget_reserve` for their decisions.
use crate::alerts;
use crate::forecast::{self, Projection};
use crate::gucs;
use crate::money;
use crate::month;
use crate::pg::cache::{self, Cache, Follows, Num, ScopeKey, ScopeRef, Text};
use hashbrown::Equivalent;
use pgrx::prelude::*;
use pgrx::AnyNumeric;
use std::hash::Hash;

/// Budget, committed spend and live reservations of one scope, in dollars.
pub struct Scope {
    pub budget: AnyNumeric,
    pub spent: AnyNumeric,
    pub reserved: AnyNumeric,
}

impl Scope {
    /// Blocked when committed spend plus live reservations has reached the budget, or would pass
    /// it with `estimate` added. Spend exactly equal to the budget blocks (SCENARIOS.md 9).
    pub fn blocks(&self, estimate: &AnyNumeric) -> bool {
        let held = self.spent.clone() + self.reserved.clone();
        held >= self.budget || held + estimate.clone() > self.budget
    }
}

type Stored<K, S> = std::thread::LocalKey<std::cell::RefCell<Cache<K, S>>>;

thread_local! {
    /// Per month: its settings row (total_budget, alert_threshold, override_enabled), or Nones.
    static MONTHS: std::cell::RefCell<Cache<Text, (Option<Num>, Option<Num>, Option<bool>)>> =
        std::cell::RefCell::new(Cache::new(Follows::Settings, cache::PER_AGENT_TYPE));
    /// Per campaign: its monthly budget (None: no limit, or no such campaign).
    static CAMPAIGN_BUDGETS: std::cell::RefCell<Cache<Text, Option<Num>>> =
        std::cell::RefCell::new(Cache::new(Follows::Settings, cache::PER_CAMPAIGN));
    /// Per scope: the alert levels sent, as a set ([`levels_mask`]).
    static LEVELS_SENT: std::cell::RefCell<Cache<ScopeKey, u8>> = std::cell::RefCell::new(Cache::new(Follows::Settings, cache::PER_CAMPAIGN));
}

const LEVELS: [alerts::Level; 3] = [alerts::Level::Warning, alerts::Level::Critical, alerts::Level::Exceeded];

/// The levels in `sent` as a bit set (warning 1, critical 2, exceeded 4).
fn levels_mask(sent: &[String]) -> u8 {
    LEVELS.iter().enumerate().filter(|(_, l)| sent.iter().any(|s| s == l.as_str())).fold(0, |m, (i, _)| m | (1 << i))
}

/// The levels of a bit set, in level order.
fn levels_of(mask: &u8) -> Vec<String> {
    LEVELS.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, l)| l.as_str().to_string()).collect()
}

/// Per-backend caches of the settings rows [`State::read_with`] looks up: month settings,
/// campaign budgets, levels sent. Every change to them invalidates them (the row triggers of
/// `write/scope_cache.rs`, processed before each read), so a cached row is the one a read now would
/// find. A REPEATABLE READ or SERIALIZABLE transaction reads with its own snapshot instead,
/// and caches nothing.
struct SettingsCache {
    generation: Option<u64>,
}

impl SettingsCache {
    fn begin() -> SettingsCache {
        let fresh = unsafe { pg_sys::XactIsoLevel } < pg_sys::XACT_REPEATABLE_READ as i32;
        SettingsCache { generation: fresh.then(crate::pg::backend_cache::generation) }
    }

    /// The cached value of `key` (stored as `S`, converted by `load` and `store`), or `read()`
    /// (cached under `owned(key)` if no invalidation arrived meanwhile).
    #[allow(clippy::too_many_arguments)]
    fn get<K: Hash + Eq, Q: Hash + Equivalent<K> + ?Sized, S, V>(
        &self,
        cache: &'static Stored<K, S>,
        key: &Q,
        owned: impl FnOnce(&Q) -> K,
        load: impl Fn(&S) -> V,
        store: impl Fn(&V) -> S,
        read: impl FnOnce() -> V,
    ) -> V {
        let Some(generation) = self.generation else {
            return read();
        };
        if let Some(v) = cache.with(|c| c.borrow_mut().get(key).map(&load)) {
            return v;
        }
        let v = read();
        if crate::pg::backend_cache::generation() == generation {
            cache.with(|c| c.borrow_mut().insert(owned(key), store(&v)));
        }
        v
    }
}

fn load_num(n: &Option<Num>) -> Option<AnyNumeric> {
    n.as_ref().map(Num::get)
}

fn store_num(n: &Option<AnyNumeric>) -> Option<Num> {
    n.as_ref().map(Num::new)
}

/// The budget state of a month and, when asked, a campaign (None when the campaign has no
/// budget or none was asked for).
pub struct State {
    pub month: String,
    /// Whether the month has its settings row (else budget and threshold are the GUCs').
    pub month_known: bool,
    pub month_scope: Scope,
    pub threshold: AnyNumeric,
    pub override_enabled: bool,
    pub campaign_budget: Option<AnyNumeric>,
    pub campaign_spent: Option<AnyNumeric>,
    pub campaign_reserved: Option<AnyNumeric>,
    /// Alert levels already sent for the month, and for the campaign.
    pub month_levels_sent: Vec<String>,
    pub campaign_levels_sent: Vec<String>,
    /// Whether expired reservations of the month are still stored (`budget_reserve` then
    /// removes them).
    pub expired_reservations: bool,
}

/// The live reservations of a month and of one of its campaigns, in dollars.
#[derive(Default)]
struct Held {
    month: AnyNumeric,
    campaign: AnyNumeric,
    /// Whether an expired one was found.
    expired: bool,
}

impl Held {
    /// Sums the reservations of `month` (and of `campaign_id`) that have not expired by the
    /// clock now (`clock_timestamp()`), read with PostgreSQL's dirty snapshot: committed ones
    /// and those of transactions still in progress, this one's included. A reservation made in
    /// a transaction that is still open holds its estimate at once (`budget_reserve` decides
    /// under a lock released before commit, `write/reservations.rs`); one whose transaction
    /// rolled back, or whose backend exited or crashed, no longer counts; one that a
    /// transaction in progress is settling or releasing still counts until that commits.
    fn read(month: &str, campaign_id: Option<&str>) -> Held {
        use crate::pg::table_scan::{scan_text_eq, Snapshot};
        let dirty = Snapshot::dirty();
        let now = unsafe { pg_sys::GetCurrentTimestamp() };
        let mut held = Held::default();
        scan_text_eq(&dirty, c"reservation", c"reservation_month_idx", &[("month", month)], |r| {
            if r.get::<i64>("expires_at").is_none_or(|e| e <= now) {
                held.expired = true;
                return;
            }
            let cost = r.get::<AnyNumeric>("estimated_cost").unwrap_or_default();
            if campaign_id.is_some() && r.get::<&str>("campaign_id") == campaign_id {
                held.campaign = held.campaign.clone() + cost.clone();
            }
            held.month = held.month.clone() + cost;
        });
        held
    }
}

impl State {
    /// Reads the state of `month` (and `campaign_id`). A month not used yet has the budget and
    /// threshold it would get (the GUCs). A dozen primary-key lookups without the executor
    /// (`pg/table_scan.rs`), with the visibility of an SQL statement run now.
    pub fn read(month: &str, campaign_id: Option<&str>) -> State {
        Self::read_with(month, campaign_id, true)
    }

    /// [`State::read`] without the live reservations (zero) when `reservations` is false: what
    /// the alert check of a write needs.
    pub fn read_with(month: &str, campaign_id: Option<&str>, reservations: bool) -> State {
        use crate::pg::table_scan::{scan_text_eq, Snapshot};
        // Settings committed by others since this transaction began (the settings cache below
        // follows their invalidations), then this transaction's own (the CCI in take()).
        unsafe { pg_sys::AcceptInvalidationMessages() };
        // Registers which relations' invalidations count (again after DROP and CREATE EXTENSION).
        crate::pg::backend_cache::watched();
        // Reservations first, with the dirty snapshot; spend after, with a new one: a
        // transaction that settles a reservation (deletes it and adds its spend) and commits in
        // between is counted twice, never zero times.
        let held = if reservations { Held::read(month, campaign_id) } else { Held::default() };
        let snap = Snapshot::take();
        let settings = SettingsCache::begin();
        let (budget, threshold, month_override) = settings.get(
            &MONTHS,
            month,
            Text::new,
            |(b, t, o)| (load_num(b), load_num(t), *o),
            |(b, t, o)| (store_num(b), store_num(t), *o),
            || {
                let mut row = (None, None, None);
                scan_text_eq(&snap, c"monthly_budget_setting", c"monthly_budget_setting_pkey", &[("month", month)], |r| {
                    row = (r.get::<AnyNumeric>("total_budget"), r.get::<AnyNumeric>("alert_threshold"), r.get::<bool>("override_enabled"));
                });
                row
            },
        );
        let sum = |table: &'static std::ffi::CStr, keys: &[(&'static str, &str)]| {
            crate::pg::table_scan::sum_numeric_newest_first(&snap, table, keys, "cost")
        };
        let spent = sum(c"_month_spend", &[("billing_month", month)]);
        let levels = |scope: &str, key: &str| {
            settings.get(
                &LEVELS_SENT,
                &ScopeRef::of(scope, key, month),
                |k| k.to_key(),
                levels_of,
                |v| levels_mask(v),
                || {
                    let mut sent = Vec::new();
                    scan_text_eq(
                        &snap,
                        c"alert_state",
                        c"alert_state_pkey",
                        &[("scope", scope), ("scope_key", key), ("month", month)],
                        |r| {
                            sent = r.get::<Vec<String>>("levels_sent").unwrap_or_default();
                        },
                    );
                    sent
                },
            )
        };
        let month_levels_sent = levels("month", "");
        let (campaign_budget, campaign_spent, campaign_reserved, campaign_levels_sent) = match campaign_id {
            Some(id) => {
                let cb = settings.get(&CAMPAIGN_BUDGETS, id, Text::new, load_num, store_num, || {
                    let mut cb = None;
                    scan_text_eq(&snap, c"campaign", c"campaign_pkey", &[("campaign_id", id)], |r| {
                        cb = r.get::<AnyNumeric>("monthly_budget");
                    });
                    cb
                });
                let spent = sum(c"_campaign_spend", &[("campaign_id", id), ("billing_month", month)]);
                (cb, Some(spent), Some(held.campaign.clone()), levels("campaign", id))
            }
            None => (None, None, None, Vec::new()),
        };
        drop(snap);
        State {
            month: month.to_string(),
            month_known: budget.is_some(),
            month_scope: Scope { budget: budget.unwrap_or_else(gucs::max_monthly_budget), spent, reserved: held.month },
            threshold: threshold.unwrap_or_else(gucs::default_alert_threshold),
            override_enabled: gucs::override_all_months() || month_override.unwrap_or(false),
            campaign_budget,
            campaign_spent,
            campaign_reserved,
            month_levels_sent,
            campaign_levels_sent,
            expired_reservations: held.expired,
        }
    }

    /// The alert levels the month's spend reaches, and the campaign's (None without a campaign
    /// budget), from [`alerts::reached_levels`].
    pub fn reached(&self) -> (Vec<alerts::Level>, Option<Vec<alerts::Level>>) {
        let m = &self.month_scope;
        let campaign = self.campaign_scope().map(|c| alerts::reached_levels(&c.spent, &c.budget, &self.threshold));
        (alerts::reached_levels(&m.spent, &m.budget, &self.threshold), campaign)
    }

    /// Alert levels reached by committed spend and not sent yet (month first, then the
    /// campaign), given [`State::reached`]: levels that concurrent transactions reached
    /// together, none of which saw the other's spend when it wrote.
    pub fn missed_alerts(&self, campaign_id: Option<&str>, reached: &(Vec<alerts::Level>, Option<Vec<alerts::Level>>)) -> Vec<alerts::Due> {
        let mut due = Vec::new();
        let m = &self.month_scope;
        alerts::collect_due(&mut due, "month", "", &self.month, &reached.0, &m.spent, &m.budget, &self.month_levels_sent);
        if let (Some(c), Some(id), Some(r)) = (self.campaign_scope(), campaign_id, &reached.1) {
            alerts::collect_due(&mut due, "campaign", id, &self.month, r, &c.spent, &c.budget, &self.campaign_levels_sent);
        }
        due
    }

    /// The month-end forecasts (`crate::forecast`) of the month and of `campaign_id` when it has
    /// a budget; None where there is none (another month, too few complete days).
    pub fn forecasts(&self, campaign_id: Option<&str>) -> (Option<Projection>, Option<Projection>) {
        let m = &self.month_scope;
        let month = forecast::of_scope("month", "", &self.month, &m.spent, Some(&m.budget));
        let campaign = match (self.campaign_scope(), campaign_id) {
            (Some(c), Some(id)) => forecast::of_scope("campaign", id, &self.month, &c.spent, Some(&c.budget)),
            _ => None,
        };
        (month, campaign)
    }

    /// The `forecast` alerts due (month first): a projection from [`State::forecasts`] that
    /// passes its budget in a scope that has not sent one this month.
    pub fn forecast_alerts(&self, campaign_id: Option<&str>, forecasts: &(Option<Projection>, Option<Projection>)) -> Vec<alerts::Due> {
        let mut due = Vec::new();
        let sent = |levels: &[String]| levels.iter().any(|l| l == alerts::FORECAST);
        if let Some(p) = forecasts.0.as_ref().filter(|p| p.over_budget && !sent(&self.month_levels_sent)) {
            due.push(alerts::forecast_due("month", "", &self.month, p, &self.month_scope.budget));
        }
        if let (Some(p), Some(id), Some(c)) = (forecasts.1.as_ref(), campaign_id, self.campaign_scope()) {
            if p.over_budget && !sent(&self.campaign_levels_sent) {
                due.push(alerts::forecast_due("campaign", id, &self.month, p, &c.budget));
            }
        }
        due
    }

    /// Leaves out of the live reservations one of `estimate` dollars that this transaction has
    /// just written and that [`State::read`] counted (in the campaign's too when `in_campaign`):
    /// [`State::blocks`] then decides it as if it were not written yet.
    pub fn exclude_own(&mut self, estimate: &AnyNumeric, in_campaign: bool) {
        self.month_scope.reserved = self.month_scope.reserved.clone() - estimate.clone();
        if in_campaign {
            if let Some(r) = &self.campaign_reserved {
                self.campaign_reserved = Some(r.clone() - estimate.clone());
            }
        }
    }

    /// The campaign's scope, when it has a budget.
    pub fn campaign_scope(&self) -> Option<Scope> {
        match (&self.campaign_budget, &self.campaign_spent) {
            (Some(b), Some(s)) => {
                Some(Scope { budget: b.clone(), spent: s.clone(), reserved: self.campaign_reserved.clone().unwrap_or_default() })
            }
            _ => None,
        }
    }

    /// The scopes that refuse an execution of `estimate` dollars in `campaign_id`, with their
    /// reasons (`write/blocked.rs`): `("month", "", reason)`, `("campaign", id, reason)`.
    pub fn refusals<'a>(&self, campaign_id: Option<&'a str>, estimate: &AnyNumeric) -> Vec<(&'static str, &'a str, &'static str)> {
        let mut scopes = Vec::new();
        let m = &self.month_scope;
        if m.blocks(estimate) {
            scopes.push(("month", "", super::blocked::reason(&(m.spent.clone() + m.reserved.clone()), &m.budget)));
        }
        if let (Some(c), Some(id)) = (self.campaign_scope(), campaign_id) {
            if c.blocks(estimate) {
                scopes.push(("campaign", id, super::blocked::reason(&(c.spent.clone() + c.reserved.clone()), &c.budget)));
            }
        }
        scopes
    }

    /// Whether the month or the campaign blocks an execution of `estimate` dollars
    /// (before the override is taken into account).
    pub fn blocks(&self, estimate: &AnyNumeric) -> bool {
        self.month_scope.blocks(estimate) || self.campaign_scope().is_some_and(|c| c.blocks(estimate))
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

/// What `budget_check` answers, in dollars: the state of the current
/// month and of `campaign_id`, whether an execution of `estimate` may run, and the status.
pub struct Check {
    pub state: State,
    /// Month-end forecasts of the month and of the campaign ([`State::forecasts`]).
    pub forecasts: (Option<Projection>, Option<Projection>),
    pub can_execute: bool,
    pub status: &'static str,
    pub remaining: AnyNumeric,
    pub utilization: AnyNumeric,
}

/// `budget_check`'s decision for an execution of `estimate` dollars in `campaign_id`, sending
/// any level that committed spend reached but no write sent, and the `forecast` alert of a
/// scope whose month-end projection passes its budget (once per scope and month).
pub fn check(campaign_id: Option<&str>, estimate: &AnyNumeric) -> Check {
    // The first check of a day scores the complete days before it for cost anomalies, when no
    // write did (crate::anomaly::days; not in a transaction that may not write).
    crate::anomaly::days::scan_if_new_day();
    let state = State::read(&month::current_month(), campaign_id);
    // A level that concurrent writers reached together (each saw only its own spend) is sent
    // here, by the next budget_check, when this transaction may write (not on a standby, not in
    // a READ ONLY transaction).
    let reached = state.reached();
    let mut missed = state.missed_alerts(campaign_id, &reached);
    let forecasts = state.forecasts(campaign_id);
    missed.extend(state.forecast_alerts(campaign_id, &forecasts));
    if !missed.is_empty() && crate::error::may_write() {
        // budget_check runs as its caller; sending is done as the extension's owner.
        crate::pg::owner::as_owner(|| {
            Spi::connect_mut(|client| {
                for d in &missed {
                    alerts::claim_and_send(client, d);
                }
            })
        });
    }
    let m = &state.month_scope;
    let mut status = alerts::status_of(&reached.0);
    if let Some(c) = &reached.1 {
        status = worse(status, alerts::status_of(c));
    }
    let can_execute = !gucs::enabled() || state.override_enabled || !state.blocks(estimate);
    // A refusal is counted (write/blocked.rs); any other answer writes what is pending.
    if can_execute {
        super::blocked::flush();
    } else {
        super::blocked::count(super::blocked::Decision::BudgetCheck, &state.refusals(campaign_id, estimate), true);
    }
    let remaining = m.budget.clone() - m.spent.clone() - m.reserved.clone();
    let utilization = money::round(m.spent.clone() / m.budget.clone() * AnyNumeric::from(100), 2);

    Check { can_execute, status, remaining, utilization, state, forecasts }
}
