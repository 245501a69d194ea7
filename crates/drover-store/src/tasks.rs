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

#[async_trait]
pub trait TaskStore: Send + Sync {
    /// Inserts a queued task and its first `state` event.
    async fn create_task(&self, task: NewTask) -> Result<TaskRecord>;
    async fn get_task(&self, id: &str) -> Result<TaskRecord>;
    /// Resolves a full id, a unique prefix of one (compared as plain text) or a task name; an
    /// empty id is [`StoreError::EmptyId`](crate::StoreError::EmptyId), several matches
    /// [`StoreError::Ambiguous`](crate::StoreError::Ambiguous).
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
