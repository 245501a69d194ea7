//! The tasks area: tasks, their events and ingest offsets.

use crate::error::Result;
use crate::record::{NewTask, TaskPatch, TaskRecord};
use async_trait::async_trait;
use drover_types::{Event, NewEvent, TaskState};

/// How much of a task's prompt, result and command a list summary holds (characters; the
/// SQLite store keeps short copies, see its migration 0007).
pub const SUMMARY_CHARS: usize = 500;

/// Which tasks `list_tasks` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFilter {
    /// Every task.
    All,
    /// Tasks not in a terminal state, and terminal ones finished after the given RFC 3339 time.
    ActiveOrFinishedSince,
}

/// What a page of tasks is narrowed to (`GET /v1/tasks?state=&pool=&team=&tag=`): every given
/// field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFilter {
    pub state: Option<TaskState>,
    pub pool: Option<String>,
    pub team: Option<String>,
    /// A tag's name and value (`tag=customer:acme`).
    pub tag: Option<(String, String)>,
}

/// An `Idempotency-Key` of `POST /v1/tasks` (docs/design.md §7): within `scope` (a team, or the
/// owner), `key` names one task for 24 hours; `body_hash` is the request's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub scope: String,
    pub key: String,
    pub body_hash: String,
    /// Keys recorded before this RFC 3339 time are expired and may be used again.
    pub not_before: String,
}

/// What [`TaskStore::create_task_idempotent`] did.
#[derive(Debug, Clone)]
pub enum Idempotent {
    /// The key was free: the task was created and the key now names it.
    Created(TaskRecord),
    /// The key names a task made from the same body: that task, nothing created.
    Replayed(TaskRecord),
    /// The key names a task made from another body (its id): nothing created.
    Conflict(String),
}

#[async_trait]
pub trait TaskStore: Send + Sync {
    /// Inserts a queued task and its first `state` event.
    async fn create_task(&self, task: NewTask) -> Result<TaskRecord>;
    /// [`create_task`](TaskStore::create_task) under an idempotency key, atomically: the key
    /// is looked up and, when free (or expired, or naming a task since removed), recorded in
    /// the same transaction as the task, so concurrent calls with one key create one task.
    async fn create_task_idempotent(&self, task: NewTask, idem: &Idempotency)
        -> Result<Idempotent>;
    async fn get_task(&self, id: &str) -> Result<TaskRecord>;
    /// Resolves a full id, a unique prefix of one (compared as plain text) or a task name; an
    /// empty id is [`StoreError::EmptyId`](crate::StoreError::EmptyId), several matches
    /// [`StoreError::Ambiguous`](crate::StoreError::Ambiguous).
    async fn find_task(&self, id_or_prefix: &str) -> Result<TaskRecord>;
    async fn list_tasks(&self, filter: ListFilter, since: &str) -> Result<Vec<TaskRecord>>;
    /// One page of task summaries in queue order: tasks with `queue_seq > after`, at most
    /// `limit`, narrowed by `narrow`. `prompt`, `result` and `cmd` are cut to [`SUMMARY_CHARS`] characters (plus `…`):
    /// they come from short copies, so a page never loads whole prompts.
    async fn list_page(
        &self,
        filter: ListFilter,
        since: &str,
        narrow: &TaskFilter,
        after: i64,
        limit: i64,
    ) -> Result<Vec<TaskRecord>>;
    /// Queued task ids in FIFO order.
    async fn queued(&self) -> Result<Vec<String>>;
    /// Tasks in a state where an agent may be alive.
    async fn active(&self) -> Result<Vec<TaskRecord>>;
    /// Applies `patch`, appends `events`, and, when `patch` changes the state, checks the current
    /// state is one of `from` (if given) and appends the `state` event after `events` — all in one
    /// transaction. Any new event also sets `activity_at` (the stall clock's base).
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
}
