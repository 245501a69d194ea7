//! drover's persistent state.
//!
//! Layout:
//! - [`Store`]: the one trait the daemon talks to (tasks, their events, ingest offsets).
//! - [`record`]: [`TaskRecord`], a task row with the daemon's bookkeeping, and [`TaskPatch`].
//! - [`sqlite`]: the embedded implementation (WAL, one writer connection). A PostgreSQL
//!   implementation follows the same trait; nothing above this crate knows which one it talks to.
//!
//! Invariants every implementation keeps:
//! - A task's events have `seq` 1, 2, 3… with no gaps and no duplicates: seq is allocated from the
//!   task row inside the same transaction that inserts the event.
//! - A state change and its `state` event are written in one transaction.
//! - Ingest offsets move in the same transaction as the events read before them, so a crash at any
//!   point neither loses nor duplicates an agent's output.

pub mod pools;
pub mod record;
pub mod sqlite;
pub mod usage;

use async_trait::async_trait;
use drover_types::{Event, NewEvent, PoolState, TaskState, UsageBy};
pub use pools::{NewPool, PoolEvent, PoolRecord, PoolStats};
pub use record::{NewTask, TaskPatch, TaskRecord, Val};
pub use sqlite::SqliteStore;
pub use usage::{Spent, UsageLine, UsageRow};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no task matches {0:?}")]
    NotFound(String),
    #[error("no pool named {0:?}")]
    PoolNotFound(String),
    #[error("{0:?} is already in use")]
    Exists(String),
    #[error("{0:?} matches several tasks: {1}")]
    Ambiguous(String, String),
    #[error("the task id is empty")]
    EmptyId,
    #[error("task {id} is {actual}, expected one of {expected}")]
    WrongState {
        id: String,
        actual: TaskState,
        expected: String,
    },
    #[error("store: {0}")]
    Db(#[from] sqlx::Error),
    #[error("store migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("store holds bad data: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// How much of a task's prompt, result and command a list summary holds (characters; the
/// copies are made by migration 0007's triggers).
pub const SUMMARY_CHARS: usize = 500;

/// Which tasks `list_tasks` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFilter {
    /// Every task.
    All,
    /// Tasks not in a terminal state, and terminal ones finished after the given RFC 3339 time.
    ActiveOrFinishedSince,
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Inserts a queued task and its first `state` event.
    async fn create_task(&self, task: NewTask) -> Result<TaskRecord>;
    async fn get_task(&self, id: &str) -> Result<TaskRecord>;
    /// Resolves a full id, a unique prefix of one (compared as plain text) or a task name; an
    /// empty id is [`StoreError::EmptyId`], several matches [`StoreError::Ambiguous`].
    async fn find_task(&self, id_or_prefix: &str) -> Result<TaskRecord>;
    async fn list_tasks(&self, filter: ListFilter, since: &str) -> Result<Vec<TaskRecord>>;
    /// One page of task summaries in queue order: tasks with `queue_seq > after`, at most
    /// `limit`. `prompt`, `result` and `cmd` are cut to [`SUMMARY_CHARS`] characters (plus `…`):
    /// they come from short copies, so a page never loads whole prompts.
    async fn list_page(
        &self,
        filter: ListFilter,
        since: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<TaskRecord>>;
    /// Queued task ids in FIFO order.
    async fn queued(&self) -> Result<Vec<String>>;
    /// Tasks in a state where an agent may be alive.
    async fn active(&self) -> Result<Vec<TaskRecord>>;
    /// Applies `patch`, appends `events`, and, when `patch` changes the state, checks the current
    /// state is one of `from` (if given) and appends the `state` event after `events` — all in one
    /// transaction.
    async fn update(
        &self,
        id: &str,
        from: Option<&[TaskState]>,
        patch: TaskPatch,
        events: Vec<NewEvent>,
    ) -> Result<(TaskRecord, Vec<Event>)>;
    /// Events with `seq > after`, at most `limit`.
    async fn events(&self, id: &str, after: i64, limit: i64) -> Result<Vec<Event>>;
    /// Events with `seq > after`, at most `limit` and, past the first one, at most about
    /// `max_bytes` of stored data in all (rows are read one by one: a page never holds more).
    async fn events_page(
        &self,
        id: &str,
        after: i64,
        limit: i64,
        max_bytes: usize,
    ) -> Result<Vec<Event>>;
    /// Deletes a task and its events.
    async fn delete_task(&self, id: &str) -> Result<()>;

    async fn create_pool(&self, pool: NewPool) -> Result<PoolRecord>;
    async fn get_pool(&self, name: &str) -> Result<PoolRecord>;
    async fn list_pools(&self) -> Result<Vec<PoolRecord>>;
    /// Sets the state; `reset_streak` starts a new failure streak (and allows a new notification).
    async fn set_pool_state(
        &self,
        name: &str,
        state: PoolState,
        stop_reason: Option<&str>,
        reset_streak: bool,
    ) -> Result<PoolRecord>;
    /// Marks the pool notified; `false` if it already was (notify runs at most once per streak).
    async fn mark_pool_notified(&self, name: &str) -> Result<bool>;
    /// Creates the pool's next task if it has room (see [`pools`]); atomic.
    async fn launch_pool_task(&self, name: &str, task: NewTask) -> Result<Option<TaskRecord>>;
    async fn pool_stats(&self, name: &str, soft_fail_counts: bool) -> Result<PoolStats>;
    async fn pool_event(&self, name: &str, kind: &str, data: serde_json::Value) -> Result<()>;
    /// The pool's latest `limit` events, oldest first.
    async fn pool_events(&self, name: &str, limit: i64) -> Result<Vec<PoolEvent>>;

    /// Stores metered responses and adds each to its task's usage and cost, all in one
    /// transaction (all or none).
    async fn record_usage(&self, rows: &[UsageRow]) -> Result<()>;
    /// The id of the last stored usage row (0: none); rows stored later have larger ids.
    async fn usage_last_id(&self) -> Result<i64>;
    /// What a task, its pool and its team (since `day_start`, RFC 3339) have spent, over the
    /// usage rows with `id <= up_to`.
    async fn spent(
        &self,
        task_id: &str,
        pool: Option<&str>,
        team: Option<&str>,
        day_start: &str,
        up_to: i64,
    ) -> Result<Spent>;
    /// Usage grouped by task, pool, model or day.
    async fn usage_report(&self, by: UsageBy) -> Result<Vec<UsageLine>>;
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
