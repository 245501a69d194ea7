//! The audit log (append-only: every mutating API call and webhook delivery) and the
//! accounting rows of finished tasks (docs/design.md §7).

use crate::error::Result;
use async_trait::async_trait;
use drover_types::{AccountingRow, Actor, AuditRecord};

/// A record to append (`seq` is the store's).
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditRecord {
    pub at: String,
    pub actor: Actor,
    pub action: String,
    pub target: Option<String>,
    pub remote_addr: Option<String>,
    pub status: u16,
}

/// Which audit records or accounting rows to read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    /// Only those at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Only this team's (an actor's team for audit records, the task's team for accounting).
    pub team: Option<String>,
    /// Audit: only records with a larger `seq` (paging).
    pub after_seq: Option<i64>,
    /// Accounting: only rows after this `(finished_at, task_id)` (paging: the last row's).
    pub after_task: Option<(String, String)>,
    /// At most this many (`None`: all).
    pub limit: Option<u32>,
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends one record; returns its `seq` (1, 2, 3… in the order appended).
    async fn append_audit(&self, record: NewAuditRecord) -> Result<i64>;
    /// Records in `seq` order.
    async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>>;
    /// One row per finished (terminal) task, by `finished_at` then id (`since` compares
    /// `finished_at`; `team` the task's team). Tokens and dollars are the sums of the task's
    /// usage rows (what `drover usage` sums): 0 without any, `cost_usd` `None` if one of them
    /// had no price.
    async fn accounting(&self, filter: &AuditFilter) -> Result<Vec<AccountingRow>>;
}
