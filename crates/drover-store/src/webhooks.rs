//! The webhook outbox (docs/design.md §7, webhooks): one row per task end and per entry into
//! `needs_input` of a task whose team has a webhook URL, added by the store in the same
//! transaction as the state change (so a crash loses none and adds none twice), then sent and
//! retried by the daemon's delivery worker, which records every attempt here.

use crate::error::Result;
use async_trait::async_trait;

/// A delivery to make (or retry).
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookDelivery {
    /// `whd_<task id>_<event seq>`: the `Drover-Delivery` header, the same on every attempt.
    pub id: String,
    pub team: String,
    pub task_id: String,
    /// `task.finished` or `task.needs_input`.
    pub event: String,
    /// When the state changed (RFC 3339).
    pub at: String,
    /// Attempts made so far.
    pub attempts: u32,
    pub next_at: String,
    pub last_status: Option<u16>,
    pub delivered_at: Option<String>,
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptOutcome {
    /// The receiver answered 2xx (its status).
    Delivered { status: u16, at: String },
    /// Try again at `next_at` (the receiver's status, 0 when unreachable).
    Retry { status: u16, next_at: String },
    /// No more attempts (the last status, 0 when there was no receiver).
    GiveUp { status: u16 },
}

#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Undelivered deliveries due at `now` (`next_at <= now`) with fewer than `max_attempts`
    /// attempts, oldest first, at most `limit`.
    async fn due_webhooks(
        &self,
        now: &str,
        max_attempts: u32,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>>;
    /// Takes the deliveries [`due_webhooks`](Self::due_webhooks) would return and, in the same
    /// transaction, moves their `next_at` to `hold_until`: no other worker on the store takes
    /// them until then (several daemons on one database send each delivery once). The attempt's
    /// record sets the real next step; a worker that dies mid-attempt leaves the delivery due
    /// again at `hold_until`. The rows are returned as they were before (their old `next_at`).
    async fn claim_webhooks(
        &self,
        now: &str,
        hold_until: &str,
        max_attempts: u32,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>>;
    /// The earliest `next_at` of an undelivered delivery with attempts left.
    async fn next_webhook_at(&self, max_attempts: u32) -> Result<Option<String>>;
    /// Records an attempt: `attempts + 1` and its outcome (`GiveUp` sets attempts to
    /// `max_attempts`, so the row is never due again).
    async fn record_webhook_attempt(
        &self,
        id: &str,
        outcome: AttemptOutcome,
        max_attempts: u32,
    ) -> Result<WebhookDelivery>;
    /// Every delivery of a task, oldest first (for tests and `drover show`-like views).
    async fn webhooks_of(&self, task_id: &str) -> Result<Vec<WebhookDelivery>>;
}
