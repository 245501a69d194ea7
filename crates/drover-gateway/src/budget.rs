//! Budget admission: every metered request of a grant with limits reserves its worst-case cost
//! before it is forwarded, and the reservation is released once its usage record is written.
//! A reservation dropped without one charges the worst case (see [`Reservation`]); only an
//! upstream error status releases it free.
//!
//! Admission runs under one lock: snapshot the reservations in flight, ask the ledger what was
//! spent, check, reserve. Reservations are released *after* their record is written, so a
//! request's cost is always counted at least once (in the snapshot or in the spent amounts) —
//! never zero times. A request whose `max_tokens` is known reserves `prompt estimate × dearest
//! input rate + max_tokens × output rate` and is admitted only if that fits: overshoot 0 (up to
//! the prompt estimate). A request without an output cap is admitted while the scope has
//! budget left and no other request is in flight there, and holds the whole scope until it
//! settles: overshoot at most that one request.
//!
//! A request whose worst case does not fit, but whose prompt plus at least [`MIN_OUTPUT`]
//! output tokens does, is admitted with a lower output cap: the most every budget still
//! affords. The caller rewrites the forwarded body's cap to [`Reservation::lowered`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::grant::BudgetKind;
use crate::grant::TaskGrant;
use crate::ledger::{Api, GatewayEvent, Ledger, ResponseOutcome, Spent, UsageRecord};
use crate::prices::{Price, Tokens};

/// Estimated prompt tokens per request-body byte (about 4 bytes per token; the JSON framing
/// makes this an over-estimate for text).
const BYTES_PER_TOKEN: u64 = 4;

/// What a request may cost at most.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ask {
    /// Prompt tokens, estimated from the body size.
    pub prompt_tokens: u64,
    /// `max_tokens` / `max_completion_tokens` / `max_output_tokens`; `None` when absent.
    pub output_cap: Option<u64>,
}

impl Ask {
    pub fn new(body_len: usize, output_cap: Option<u64>) -> Self {
        Ask {
            prompt_tokens: (body_len as u64).div_ceil(BYTES_PER_TOKEN),
            output_cap,
        }
    }
}

/// One request's hold on its task's, pool's and team's budgets.
#[derive(Debug, Clone)]
struct Hold {
    task: String,
    pool: Option<String>,
    team: Option<String>,
    usd: f64,
    tokens: u64,
    /// No output cap: the hold stands for everything left in its scopes.
    unbounded: bool,
}

/// What an unsettled request is charged: its worst case as admitted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WorstCase {
    /// Prompt tokens (estimated) and output tokens (the cap, or what the budget left afforded
    /// for a request without one).
    pub tokens: Tokens,
    /// `None` when the model has no price (no dollar budget applies then).
    pub usd: Option<f64>,
}

/// Sums of the holds in flight for one grant's scopes.
#[derive(Debug, Clone, Copy, Default)]
struct Reserved {
    task_usd: f64,
    task_tokens: u64,
    pool_usd: f64,
    team_usd: f64,
    task_unbounded: bool,
    pool_unbounded: bool,
    team_unbounded: bool,
}

/// The reservations in flight, and the admission lock.
#[derive(Debug, Default)]
pub struct Budgets {
    admission: tokio::sync::Mutex<()>,
    holds: Mutex<(u64, HashMap<u64, Hold>)>,
    /// Notified whenever a hold is released.
    released: tokio::sync::Notify,
    /// Requests waiting for holds in flight to settle.
    waiting: std::sync::atomic::AtomicUsize,
}

/// A refusal: which limit, and the figures behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub budget: BudgetKind,
    pub limit: f64,
    pub spent: f64,
    pub reserved: f64,
    /// The refused request's worst case (`None`: no output cap).
    pub request: Option<f64>,
    /// Refused only because of requests in flight: what was spent leaves room for this
    /// request, so the agent may retry once they settle (the task is not stopped).
    pub in_flight_only: bool,
}

impl Refusal {
    /// One line for the agent and the task's events.
    pub fn describe(&self) -> String {
        let money = !matches!(self.budget, BudgetKind::TaskTokens);
        let f = |v: f64| {
            if money {
                format!("${v:.4}")
            } else {
                format!("{v:.0} tokens")
            }
        };
        let scope = match self.budget {
            BudgetKind::TaskUsd | BudgetKind::TaskTokens => "task",
            BudgetKind::PoolUsd => "pool",
            BudgetKind::TeamUsdPerDay => "team (today)",
        };
        let mut s = format!(
            "{scope} spent {} of its {} budget",
            f(self.spent),
            f(self.limit)
        );
        if self.reserved > 0.0 {
            s.push_str(&format!(
                ", {} reserved by requests in flight",
                f(self.reserved)
            ));
        }
        if self.in_flight_only {
            s.push_str(&format!(
                "; it fits once requests in flight settle, retry shortly{}",
                self.request
                    .map(|r| format!(" (this request could cost up to {})", f(r)))
                    .unwrap_or_default()
            ));
            return s;
        }
        match self.request {
            Some(r) => s.push_str(&format!("; this request could cost up to {}", f(r))),
            None if self.reserved > 0.0 || self.spent < self.limit => {
                s.push_str("; a request without max_tokens waits for nothing else in flight")
            }
            None => {}
        }
        s
    }
}

/// Where an unsettled reservation's charge goes.
struct Payee {
    ledger: Arc<dyn Ledger>,
    task: String,
    pool: Option<String>,
    team: Option<String>,
    api: Api,
    model: String,
}

impl std::fmt::Debug for Payee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payee")
            .field("task", &self.task)
            .field("model", &self.model)
            .finish()
    }
}

/// The settlement guard of one admitted request, held from admission until its usage is
/// recorded ([`Reservation::settle`]) or it is known to have cost nothing
/// ([`Reservation::release`]). Dropped any other way (the agent went away before the
/// response's headers, the proxy future was cancelled, a stream ended without its usage) it
/// charges the request's worst case: a usage row with outcome `unsettled`, written before the
/// hold is released. A request that reached the provider is never free.
#[derive(Debug)]
pub struct Reservation {
    budgets: Arc<Budgets>,
    id: u64,
    lowered: Option<(u64, BudgetKind)>,
    worst: WorstCase,
    payee: Option<Payee>,
}

impl Reservation {
    /// The output cap the request was admitted with when a budget lowered it, and which.
    pub fn lowered(&self) -> Option<(u64, BudgetKind)> {
        self.lowered
    }

    /// What the request is charged if it ends without a metered record.
    pub fn worst_case(&self) -> WorstCase {
        self.worst
    }

    /// Names the ledger and record an unsettled drop is charged to. Without one (unit tests),
    /// a drop only releases the hold.
    pub fn charge_to(
        mut self,
        ledger: Arc<dyn Ledger>,
        grant: &TaskGrant,
        api: Api,
        model: &str,
    ) -> Self {
        self.payee = Some(Payee {
            ledger,
            task: grant.task_id.clone(),
            pool: grant.pool.clone(),
            team: grant.team.clone(),
            api,
            model: model.to_string(),
        });
        self
    }

    /// A charge for the worst case of one more attempt at this request (one the provider may
    /// have run: it timed out, or its body broke before the first byte, and was retried):
    /// the ledger, the task, the record and its event. `None` without a payee.
    pub fn attempt_charge(&self) -> Option<(Arc<dyn Ledger>, String, UsageRecord, GatewayEvent)> {
        let p = self.payee.as_ref()?;
        let rec = UsageRecord {
            api: p.api,
            model: p.model.clone(),
            pool: p.pool.clone(),
            team: p.team.clone(),
            tokens: self.worst.tokens,
            cost_usd: self.worst.usd,
            stop_reason: None,
            outcome: ResponseOutcome::Unsettled,
            at: chrono::Utc::now(),
        };
        let ev = GatewayEvent::Unsettled {
            model: rec.model.clone(),
            cost_usd: rec.cost_usd,
            tokens: rec.tokens.total(),
        };
        Some((p.ledger.clone(), p.task.clone(), rec, ev))
    }

    /// The request's usage record was written: release the hold.
    pub fn settle(mut self) {
        self.payee = None;
    }

    /// The request cost nothing (the provider answered an error status): release the hold.
    pub fn release(mut self) {
        self.payee = None;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let Some(payee) = self.payee.take() else {
            self.budgets.remove(self.id);
            return;
        };
        let rec = UsageRecord {
            api: payee.api,
            model: payee.model,
            pool: payee.pool,
            team: payee.team,
            tokens: self.worst.tokens,
            cost_usd: self.worst.usd,
            stop_reason: None,
            outcome: ResponseOutcome::Unsettled,
            at: chrono::Utc::now(),
        };
        let (budgets, id) = (self.budgets.clone(), self.id);
        let ev = GatewayEvent::Unsettled {
            model: rec.model.clone(),
            cost_usd: rec.cost_usd,
            tokens: rec.tokens.total(),
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    payee.ledger.record(&payee.task, rec).await;
                    payee.ledger.event(&payee.task, ev).await;
                    // Charged: the record now counts in what was spent.
                    budgets.remove(id);
                });
            }
            Err(_) => {
                tracing::error!(
                    task = payee.task.as_str(),
                    "gateway: an unsettled request could not be charged (no runtime)"
                );
                budgets.remove(id);
            }
        }
    }
}

impl Budgets {
    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, HashMap<u64, Hold>)> {
        self.holds.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Requests holding a reservation now.
    pub fn in_flight(&self) -> usize {
        self.lock().1.len()
    }

    fn remove(&self, id: u64) {
        self.lock().1.remove(&id);
        self.released.notify_waiters();
    }

    /// Requests waiting for holds in flight to settle now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Admits like [`Budgets::admit`], but a refusal caused only by holds in flight waits (up
    /// to `wait`) for a hold to be released and tries again; what is left is returned.
    pub async fn admit_waiting<F, Fut, E>(
        self: &Arc<Self>,
        grant: &TaskGrant,
        price: Option<Price>,
        ask: Ask,
        wait: std::time::Duration,
        spent: F,
    ) -> Result<Result<Reservation, Refusal>, E>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Spent, E>>,
    {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Registered before the check, so a release between the check and the wait is
            // not missed.
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            let r = self.admit(grant, price, ask, &spent).await?;
            match r {
                Err(refusal) if refusal.in_flight_only => {
                    use std::sync::atomic::Ordering::SeqCst;
                    self.waiting.fetch_add(1, SeqCst);
                    let woke = tokio::time::timeout_at(deadline, released).await;
                    self.waiting.fetch_sub(1, SeqCst);
                    if woke.is_err() {
                        return Ok(Err(refusal));
                    }
                }
                r => return Ok(r),
            }
        }
    }

    fn reserved(&self, g: &TaskGrant) -> Reserved {
        let mut r = Reserved::default();
        for h in self.lock().1.values() {
            if h.task == g.task_id {
                r.task_usd += h.usd;
                r.task_tokens += h.tokens;
                r.task_unbounded |= h.unbounded;
            }
            if g.pool.is_some() && h.pool == g.pool {
                r.pool_usd += h.usd;
                r.pool_unbounded |= h.unbounded;
            }
            if g.team.is_some() && h.team == g.team {
                r.team_usd += h.usd;
                r.team_unbounded |= h.unbounded;
            }
        }
        r
    }

    /// Admits a request of `grant` for a model priced `price` (`None`: unknown, which the
    /// caller refuses under a dollar budget), or says which limit refuses it. `spent` is asked
    /// for under the admission lock, after the snapshot of the holds in flight.
    pub async fn admit<F, Fut, E>(
        self: &Arc<Self>,
        grant: &TaskGrant,
        price: Option<Price>,
        ask: Ask,
        spent: F,
    ) -> Result<Result<Reservation, Refusal>, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Spent, E>>,
    {
        let _admission = self.admission.lock().await;
        let reserved = self.reserved(grant);
        let spent = spent().await?;
        let (cap, tightest) = match self.check(grant, price, ask, &spent, &reserved) {
            Ok(()) => (ask.output_cap, None),
            Err(refusal) => {
                // Too dear as asked: admit a smaller output cap if what is left affords one.
                let lowered = ask
                    .output_cap
                    .and_then(|c| {
                        affordable(grant, price, ask, &spent, &reserved).filter(|&o| o < c)
                    })
                    .filter(|&o| o >= MIN_OUTPUT);
                let fits = |o: u64| {
                    let ask = Ask {
                        output_cap: Some(o),
                        ..ask
                    };
                    self.check(grant, price, ask, &spent, &reserved).is_ok()
                };
                match lowered {
                    Some(o) if fits(o) => (Some(o), Some(refusal.budget)),
                    _ => return Ok(Err(self.classify(grant, price, ask, &spent, refusal))),
                }
            }
        };
        let unbounded = cap.is_none();
        let (usd_need, usd_floor) = needs(price, ask.prompt_tokens, cap);
        let tok_need = cap.map(|o| ask.prompt_tokens + o);
        // Charged if it never settles: its cap, or (no cap) all the budget left affords.
        let charged_output = cap.unwrap_or_else(|| {
            affordable(grant, price, ask, &spent, &reserved).unwrap_or(UNCAPPED_OUTPUT)
        });
        let worst = WorstCase {
            tokens: Tokens {
                input: ask.prompt_tokens,
                output: charged_output,
                cache_read: 0,
                cache_write: 0,
            },
            usd: price.map(|p| p.worst_case(ask.prompt_tokens, charged_output)),
        };
        let hold = Hold {
            task: grant.task_id.clone(),
            pool: grant.pool.clone(),
            team: grant.team.clone(),
            usd: usd_need.unwrap_or(usd_floor),
            tokens: tok_need.unwrap_or(ask.prompt_tokens),
            unbounded,
        };
        let mut holds = self.lock();
        holds.0 += 1;
        let id = holds.0;
        holds.1.insert(id, hold);
        Ok(Ok(Reservation {
            budgets: self.clone(),
            id,
            lowered: cap.zip(tightest),
            worst,
            payee: None,
        }))
    }

    /// Marks a refusal `in_flight_only` when what was spent alone leaves room for the
    /// request's minimum (its prompt and up to [`MIN_OUTPUT`] output tokens, or its prompt
    /// without a cap) in every budget: the holds of other requests are what refused it.
    fn classify(
        &self,
        grant: &TaskGrant,
        price: Option<Price>,
        ask: Ask,
        spent: &Spent,
        refusal: Refusal,
    ) -> Refusal {
        let minimum = Ask {
            output_cap: ask.output_cap.map(|c| c.min(MIN_OUTPUT)),
            ..ask
        };
        match self.check(grant, price, minimum, spent, &Reserved::default()) {
            Ok(()) => Refusal {
                in_flight_only: true,
                ..refusal
            },
            Err(_) => refusal,
        }
    }

    /// Whether `ask` fits every budget of `grant`; else the first limit it does not fit.
    fn check(
        &self,
        grant: &TaskGrant,
        price: Option<Price>,
        ask: Ask,
        spent: &Spent,
        reserved: &Reserved,
    ) -> Result<(), Refusal> {
        let (usd_need, usd_floor) = needs(price, ask.prompt_tokens, ask.output_cap);
        let tok_need = ask.output_cap.map(|o| ask.prompt_tokens + o);
        for s in scopes(grant, spent, reserved) {
            let Some(limit) = s.limit else { continue };
            let (need, floor) = if s.budget == BudgetKind::TaskTokens {
                (tok_need.map(|t| t as f64), ask.prompt_tokens as f64)
            } else {
                (usd_need, usd_floor)
            };
            let used = s.spent + s.held;
            let fits = !s.held_unbounded
                && match need {
                    Some(n) => used + n <= limit,
                    // No output cap: only alone, and only while some budget is left.
                    None => s.held == 0.0 && used + floor < limit,
                };
            if !fits {
                return Err(Refusal {
                    budget: s.budget,
                    limit,
                    spent: s.spent,
                    reserved: s.held,
                    request: need,
                    in_flight_only: false,
                });
            }
        }
        Ok(())
    }
}

/// The output tokens a request may ask for when it does not fit as asked.
pub const MIN_OUTPUT: u64 = 1024;

/// Output tokens charged for an unsettled request without an output cap when no budget bounds
/// it (only a token budget on an unpriced model, say).
const UNCAPPED_OUTPUT: u64 = 128_000;

/// One budget of a grant: its limit, what was spent and what requests in flight hold.
struct Scope {
    budget: BudgetKind,
    limit: Option<f64>,
    spent: f64,
    held: f64,
    held_unbounded: bool,
}

fn scopes(g: &TaskGrant, spent: &Spent, r: &Reserved) -> [Scope; 4] {
    let l = &g.limits;
    [
        Scope {
            budget: BudgetKind::TaskUsd,
            limit: l.task_usd,
            spent: spent.task_usd,
            held: r.task_usd,
            held_unbounded: r.task_unbounded,
        },
        Scope {
            budget: BudgetKind::TaskTokens,
            limit: l.task_tokens.map(|t| t as f64),
            spent: spent.task_tokens as f64,
            held: r.task_tokens as f64,
            held_unbounded: r.task_unbounded,
        },
        Scope {
            budget: BudgetKind::PoolUsd,
            limit: l.pool_usd,
            spent: spent.pool_usd,
            held: r.pool_usd,
            held_unbounded: r.pool_unbounded,
        },
        Scope {
            budget: BudgetKind::TeamUsdPerDay,
            limit: l.team_usd_per_day,
            spent: spent.team_usd_today,
            held: r.team_usd,
            held_unbounded: r.team_unbounded,
        },
    ]
}

/// A request's worst-case dollars (`None`: no output cap) and its prompt's worst case.
fn needs(price: Option<Price>, prompt: u64, cap: Option<u64>) -> (Option<f64>, f64) {
    match price {
        Some(p) => (
            cap.map(|o| p.worst_case(prompt, o)),
            p.worst_case(prompt, 0),
        ),
        None => (Some(0.0), 0.0),
    }
}

/// The largest output cap every budget of `grant` still affords for this prompt (`None` when
/// a budget is held whole by a request without an output cap, or no budget applies).
fn affordable(
    grant: &TaskGrant,
    price: Option<Price>,
    ask: Ask,
    spent: &Spent,
    reserved: &Reserved,
) -> Option<u64> {
    let mut most: Option<u64> = None;
    for s in scopes(grant, spent, reserved) {
        let Some(limit) = s.limit else { continue };
        if s.held_unbounded {
            return None;
        }
        let room = limit - s.spent - s.held;
        let o = if s.budget == BudgetKind::TaskTokens {
            if room < ask.prompt_tokens as f64 {
                0
            } else {
                (room as u64).saturating_sub(ask.prompt_tokens)
            }
        } else {
            match price {
                Some(p) => p.affordable_output(ask.prompt_tokens, room),
                None => continue,
            }
        };
        most = Some(most.map_or(o, |m| m.min(o)));
    }
    most
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::grant::Limits;

    fn grant(usd: f64) -> TaskGrant {
        TaskGrant {
            limits: Limits {
                task_usd: Some(usd),
                ..Limits::default()
            },
            ..TaskGrant::new("t")
        }
    }

    async fn admit(
        b: &Arc<Budgets>,
        g: &TaskGrant,
        ask: Ask,
        spent: f64,
    ) -> Result<Reservation, Refusal> {
        let s = Spent {
            task_usd: spent,
            ..Spent::default()
        };
        b.admit(g, Some(Price::new(3.0, 15.0, 0.3, 3.75)), ask, || async {
            Ok::<_, ()>(s)
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn a_hold_blocks_what_it_covers_and_its_release_frees_it() {
        let b = Arc::new(Budgets::default());
        // 1000 prompt tokens × $3.75 + 1000 output × $15 = $0.01875 worst case.
        let ask = Ask {
            prompt_tokens: 1000,
            output_cap: Some(1000),
        };
        let g = grant(0.03);
        let first = admit(&b, &g, ask, 0.0).await.unwrap();
        let second = admit(&b, &g, ask, 0.0).await.unwrap_err();
        assert_eq!(second.budget, BudgetKind::TaskUsd);
        assert!((second.reserved - 0.01875).abs() < 1e-12);
        drop(first);
        assert_eq!(b.in_flight(), 0);
        assert!(admit(&b, &g, ask, 0.0).await.is_ok());
        // Spent so far counts like a hold.
        assert!(admit(&b, &g, ask, 0.02).await.is_err());
    }

    #[tokio::test]
    async fn without_an_output_cap_a_request_goes_alone_while_budget_is_left() {
        let b = Arc::new(Budgets::default());
        let open = Ask {
            prompt_tokens: 10,
            output_cap: None,
        };
        let g = grant(0.01);
        let first = admit(&b, &g, open, 0.0).await.unwrap();
        let e = admit(&b, &g, open, 0.0).await.unwrap_err();
        assert_eq!(e.request, None);
        drop(first);
        assert!(admit(&b, &g, open, 0.009).await.is_ok());
        assert!(admit(&b, &g, open, 0.01).await.is_err());
    }
}
