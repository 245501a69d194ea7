//! TaskStore on PostgreSQL. STUB of the interface commit: H1 (pg-tasks) replaces it.
#![allow(unused_variables, unused_imports, dead_code)]
use super::PgStore;
use crate::error::StoreError;
use crate::*;
use async_trait::async_trait;
use drover_types::*;

#[async_trait]
impl TaskStore for PgStore {
    async fn create_task(&self, task: NewTask) -> Result<TaskRecord> {
        Err(StoreError::Corrupt(
            "postgres: tasks not implemented yet".into(),
        ))
    }
    async fn create_task_idempotent(
        &self,
        task: NewTask,
        idem: &Idempotency,
    ) -> Result<Idempotent> {
        Err(StoreError::Corrupt(
            "postgres: tasks not implemented yet".into(),
        ))
    }
    async fn get_task(&self, id: &str) -> Result<TaskRecord> {
        Err(StoreError::Corrupt(
            "postgres: tasks not implemented yet".into(),
        ))
    }
    async fn find_task(&self, id_or_prefix: &str) -> Result<TaskRecord> {
        Err(StoreError::Corrupt(
            "postgres: tasks not implemented yet".into(),
        ))
    }
    async fn list_tasks(&self, filter: ListFilter, since: &str) -> Result<Vec<TaskRecord>> {
        Err(StoreError::Corrupt(
            "postgres: tasks not implemented yet".into(),
        ))
    }
    async fn list_page(
        &self,
        filter: ListFilter,
        since: &str,
        narrow: &TaskFilter,
        after: i64,
        limit: i64,
    ) -> Result<Vec<TaskRecord>> {
        Err(StoreError::Corrupt(
            "postgres: tasks not implemented yet".into(),
        ))
    }
    async fn queued(&self) -> Result<Vec<String>> {
        Err(StoreError::Corrupt(
            "postgres: tasks not implemented yet".into(),
        ))
    }
    async fn active(&self) -> Result<Vec<TaskRecord>> {
        Err(StoreError::Corrupt(
            "postgres: tasks not implemented yet".into(),
        ))
    }
    async fn update(
        &self,
        id: &str,
        from: Option<&[TaskState]>,
        patch: TaskPatch,
        events: Vec<NewEvent>,
    ) -> Result<(TaskRecord, Vec<Event>)> {
        Err(StoreError::Corrupt(
            "postgres: tasks not implemented yet".into(),
        ))
    }
    async fn events(&self, id: &str, after: i64, limit: i64) -> Result<Vec<Event>> {
        Err(StoreError::Corrupt(
            "postgres: tasks not implemented yet".into(),
        ))
    }
    async fn events_page(
        &self,
        id: &str,
        after: i64,
        limit: i64,
        max_bytes: usize,
    ) -> Result<Vec<Event>> {
        Err(StoreError::Corrupt(
            "postgres: tasks not implemented yet".into(),
        ))
    }
    async fn delete_task(&self, id: &str) -> Result<()> {
        Err(StoreError::Corrupt(
            "postgres: tasks not implemented yet".into(),
        ))
    }
}

/// Placeholder until the tasks area lands (pgtasks owns this file): inserts a queued task.
pub(super) async fn insert_task(
    _tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    _t: &NewTask,
) -> Result<()> {
    Err(StoreError::Corrupt(
        "postgres: tasks not implemented yet".into(),
    ))
}

/// Placeholder until the tasks area lands (pgtasks owns this file): appends events.
pub(super) async fn append(
    _tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    _id: &str,
    _events: Vec<NewEvent>,
) -> Result<Vec<Event>> {
    Err(StoreError::Corrupt(
        "postgres: tasks not implemented yet".into(),
    ))
}
