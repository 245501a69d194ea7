//! Batches (docs/design.md §9): one prompt run as one task per repository, grouped under a
//! name. The batch row keeps what a retry needs to make a repository's next task; its counters
//! are derived from its tasks (`tasks.batch`), never kept apart.
//!
//! Slots: a claim ([`HostStore::claim`](crate::HostStore::claim)) never takes a batch's task
//! while the batch already has `slots` tasks claimed or active (PostgreSQL: the claim locks the
//! batch rows it looks at, so two workers never both take the last slot).

use crate::error::Result;
use crate::record::{NewTask, TaskRecord};
use async_trait::async_trait;
use drover_types::{BatchState, PermissionPolicy, PrOptions};

/// A batch to create (its tasks are given alongside, see [`BatchStore::create_batch`]).
#[derive(Debug, Clone, Default)]
pub struct NewBatch {
    pub name: String,
    pub team: Option<String>,
    pub created_by: Option<String>,
    /// As the tasks store them (`tasks.repo`), in the order given.
    pub repos: Vec<String>,
    pub prompt: String,
    pub base_ref: String,
    pub agent: String,
    pub cmd: Option<String>,
    pub model: Option<String>,
    pub judge_model: Option<String>,
    /// `None`: no limit of its own.
    pub slots: Option<i64>,
    pub pr: Option<PrOptions>,
    pub permissions: PermissionPolicy,
    pub verify: Vec<String>,
    pub verify_rounds: i64,
    pub max_usd: Option<f64>,
    pub max_tokens: Option<u64>,
    pub timeout_secs: Option<i64>,
    pub stall_timeout_secs: Option<i64>,
    /// The globs as asked (the daemon adds its own list when it makes each task).
    pub protect: Vec<String>,
}

/// A batch as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRecord {
    pub name: String,
    pub state: BatchState,
    pub team: Option<String>,
    pub created_by: Option<String>,
    pub created_at: String,
    pub stopped_at: Option<String>,
    pub repos: Vec<String>,
    pub prompt: String,
    pub base_ref: String,
    pub agent: String,
    pub cmd: Option<String>,
    pub model: Option<String>,
    pub judge_model: Option<String>,
    pub slots: Option<i64>,
    pub pr: Option<PrOptions>,
    pub permissions: PermissionPolicy,
    pub verify: Vec<String>,
    pub verify_rounds: i64,
    pub max_usd: Option<f64>,
    pub max_tokens: Option<u64>,
    pub timeout_secs: Option<i64>,
    pub stall_timeout_secs: Option<i64>,
    pub protect: Vec<String>,
}

#[async_trait]
pub trait BatchStore: Send + Sync {
    /// Inserts the batch and all its tasks (each with `batch` = its name) in ONE transaction:
    /// all or nothing. A name already used: [`StoreError::Exists`](crate::StoreError::Exists)
    /// (and no task).
    async fn create_batch(&self, batch: NewBatch, tasks: Vec<NewTask>) -> Result<BatchRecord>;
    /// Every batch, oldest first; `team`: `Some(t)` only team `t`'s, `None` every batch.
    async fn batches(&self, team: Option<&str>) -> Result<Vec<BatchRecord>>;
    /// [`StoreError::BatchNotFound`](crate::StoreError::BatchNotFound) if there is none.
    async fn batch(&self, name: &str) -> Result<BatchRecord>;
    /// The batch's tasks, oldest first (by creation, then queue order).
    async fn batch_tasks(&self, name: &str) -> Result<Vec<TaskRecord>>;
    /// Sets the state (`stopped_at` is set when stopped, cleared when running again).
    async fn set_batch_state(&self, name: &str, state: BatchState) -> Result<BatchRecord>;
    /// Retry: inserts each of `tasks` (same batch) whose repository's latest task is terminal
    /// and did not succeed — checked in the transaction, so two retries at once never run one
    /// repository twice — and sets the batch `running`. Returns the tasks inserted.
    async fn retry_batch(&self, name: &str, tasks: Vec<NewTask>) -> Result<Vec<TaskRecord>>;
}
