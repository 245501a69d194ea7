//! What the gateway reports to its owner: usage records, events, and spent amounts.
//!
//! The daemon implements [`Ledger`] over its store, so spent amounts come from persistent
//! records and survive restarts. [`MemoryLedger`] is the in-memory implementation for tests and
//! standalone use.

use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::grant::{BudgetKind, TaskGrant};
use crate::prices::Tokens;

/// Which endpoint a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// Anthropic `POST /v1/messages`.
    Messages,
    /// Anthropic `POST /v1/messages/count_tokens` (not metered: it costs nothing).
    CountTokens,
    /// OpenAI `POST /v1/chat/completions`.
    ChatCompletions,
    /// OpenAI `POST /v1/responses`.
    Responses,
}

/// How a metered response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseOutcome {
    /// The whole response reached the agent.
    Complete,
    /// The upstream stream broke (or sent an error event) after bytes reached the agent.
    Interrupted,
    /// The agent went away before the end; the usage seen so far is recorded.
    ClientClosed,
    /// The request ended without a final usage figure (the agent went away before the
    /// response headers, or a stream ended before its usage): charged its worst case as
    /// admitted (or the metered figure, if higher).
    Unsettled,
}

/// One upstream response's usage, attributed to a task (and its pool and team).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub api: Api,
    /// The model the provider reported (else the one requested, after aliasing).
    pub model: String,
    pub pool: Option<String>,
    pub team: Option<String>,
    pub tokens: Tokens,
    /// `None` when the model has no price (never a guess).
    pub cost_usd: Option<f64>,
    /// `stop_reason` (Anthropic), `finish_reason` (Chat), or the response status / incomplete
    /// reason (Responses).
    pub stop_reason: Option<String>,
    pub outcome: ResponseOutcome,
    pub at: DateTime<Utc>,
}

/// Something the daemon should know about a task's traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GatewayEvent {
    /// An upstream attempt failed before any byte reached the agent and will be retried.
    Retry {
        /// The retry about to be made (1 = first retry).
        attempt: u32,
        /// Upstream HTTP status; `None` for connection errors, drops and timeouts.
        status: Option<u16>,
        error: String,
        delay_ms: u64,
    },
    /// Retries ran out (or the failure was not retryable); the agent got the last error.
    UpstreamFailed {
        attempts: u32,
        status: Option<u16>,
        error: String,
    },
    /// A request was refused because it would not fit in a budget (what was spent, plus what
    /// requests in flight reserved, plus this request's worst case). The daemon ends the task
    /// `failed` / `budget_exceeded`.
    BudgetRefused {
        budget: BudgetKind,
        limit: f64,
        spent: f64,
        /// Reserved by requests in flight when this one was refused.
        reserved: f64,
        /// This request's worst case; `None` when it had no output cap.
        request: Option<f64>,
    },
    /// A request was refused only because requests in flight hold the budget: what was spent
    /// leaves room for it. The agent got a retryable 429; the task goes on.
    BudgetBusy {
        budget: BudgetKind,
        limit: f64,
        spent: f64,
        reserved: f64,
        request: Option<f64>,
    },
    /// A request ended without a final usage figure and was charged its worst case.
    Unsettled {
        model: String,
        cost_usd: Option<f64>,
        tokens: u64,
    },
    /// A request whose cost the gateway cannot bound or meter (`background`, server-side
    /// context, URL sources, …) was refused under a budget before it reached the provider.
    Unmeterable { field: String, reason: String },
    /// A request for a model without a price, while a dollar budget applies, was refused before
    /// it reached the provider. The daemon ends the task `failed` / `budget_exceeded`.
    NoPrice {
        model: String,
        /// The dollar budget that could not be enforced.
        budget: BudgetKind,
    },
    /// A request whose worst case did not fit a budget was forwarded with a lower output cap
    /// (`max_tokens` …, and a smaller or no `thinking` budget): what the budget still affords.
    OutputCapped {
        model: String,
        requested: u64,
        granted: u64,
        /// The budget that did not fit the request as asked.
        budget: BudgetKind,
    },
    /// A request asked for a model outside the grant's allowed list.
    ModelRefused { model: String },
    /// A stream broke after bytes reached the agent; the agent got an error event.
    StreamInterrupted { model: String, error: String },
    /// The response stopped on its token limit (`max_tokens`, `length`, …).
    Truncated { model: String, stop_reason: String },
    /// A model without a price: its cost is recorded as null. Sent once per model per gateway.
    UnknownModelPrice { model: String },
}

/// Amounts already spent, from persistent records (so they survive restarts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Spent {
    pub task_usd: f64,
    pub task_tokens: u64,
    /// The pool's spend over the window the daemon's pool budget uses.
    pub pool_usd: f64,
    /// The team's spend since 00:00 UTC today.
    pub team_usd_today: f64,
}

/// The gateway's owner: stores usage and events, and answers what a task has spent.
#[async_trait]
pub trait Ledger: Send + Sync {
    /// Spent amounts for the task, its pool and its team (today). Only called for grants with
    /// at least one limit. An error refuses the request (budgets fail closed).
    async fn spent(&self, grant: &TaskGrant) -> Result<Spent, String>;
    /// One record per metered upstream response, before its last byte is relayed. From then on
    /// [`Ledger::spent`] must count it (the owner may store it later).
    async fn record(&self, task_id: &str, rec: UsageRecord);
    /// An event of the task's traffic.
    async fn event(&self, task_id: &str, ev: GatewayEvent);
}

/// A [`Ledger`] in memory: records and events in order, spent computed from the records.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    records: Mutex<Vec<(String, UsageRecord)>>,
    events: Mutex<Vec<(String, GatewayEvent)>>,
}

impl MemoryLedger {
    pub fn new() -> Self {
        MemoryLedger::default()
    }

    /// All usage records as `(task_id, record)`.
    pub fn records(&self) -> Vec<(String, UsageRecord)> {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// All events as `(task_id, event)`.
    pub fn events(&self) -> Vec<(String, GatewayEvent)> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records of one task.
    pub fn task_records(&self, task_id: &str) -> Vec<UsageRecord> {
        self.records()
            .into_iter()
            .filter(|(t, _)| t == task_id)
            .map(|(_, r)| r)
            .collect()
    }

    /// Events of one task.
    pub fn task_events(&self, task_id: &str) -> Vec<GatewayEvent> {
        self.events()
            .into_iter()
            .filter(|(t, _)| t == task_id)
            .map(|(_, e)| e)
            .collect()
    }
}

#[async_trait]
impl Ledger for MemoryLedger {
    async fn spent(&self, grant: &TaskGrant) -> Result<Spent, String> {
        let today = Utc::now().date_naive();
        let records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        let mut s = Spent::default();
        for (task, r) in records.iter() {
            let cost = r.cost_usd.unwrap_or(0.0);
            if *task == grant.task_id {
                s.task_usd += cost;
                s.task_tokens += r.tokens.total();
            }
            if grant.pool.is_some() && r.pool == grant.pool {
                s.pool_usd += cost;
            }
            if grant.team.is_some() && r.team == grant.team && r.at.date_naive() == today {
                s.team_usd_today += cost;
            }
        }
        Ok(s)
    }

    async fn record(&self, task_id: &str, rec: UsageRecord) {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((task_id.to_string(), rec));
    }

    async fn event(&self, task_id: &str, ev: GatewayEvent) {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((task_id.to_string(), ev));
    }
}
