//! Workers and claims on SQLite: one worker, the daemon that owns the file.

use super::SqliteStore;
use crate::error::{now, Result, StoreError};
use crate::hosts::{Claim, HostStore, WorkerRecord, WorkerSpec};
use crate::record::{Fence, TaskRecord};
use async_trait::async_trait;
use sqlx::{Sqlite, Transaction};

/// Fails with [`StoreError::Fenced`] unless `fence` still holds task `id` (inside the update's
/// transaction: SQLite has one writer, so nothing moves between this check and the write).
pub(super) async fn check_fence(
    tx: &mut Transaction<'_, Sqlite>,
    id: &str,
    fence: &Fence,
) -> Result<()> {
    let row: Option<(Option<String>, i64, Option<String>)> =
        sqlx::query_as("SELECT worker, attempt, lease_until FROM tasks WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
    let (worker, attempt, lease_until) = row.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
    let held = worker.as_deref() == Some(fence.worker.as_str()) && attempt == fence.attempt;
    let lapsed = lease_until.is_some_and(|l| l < now());
    if held && (!fence.lapsed || lapsed) {
        return Ok(());
    }
    Err(StoreError::Fenced {
        id: id.to_string(),
        worker: fence.worker.clone(),
        attempt: fence.attempt,
        holder: match worker {
            Some(w) => format!("worker {w} attempt {attempt}"),
            None => "nobody".to_string(),
        },
    })
}

#[async_trait]
impl HostStore for SqliteStore {
    async fn register_worker(&self, _spec: &WorkerSpec) -> Result<()> {
        Ok(())
    }
    async fn heartbeat(&self, _worker: &str, _lease_secs: u32) -> Result<Vec<Claim>> {
        Ok(vec![])
    }
    async fn claim(&self, _worker: &str, _n: usize, _lease_secs: u32) -> Result<Vec<Claim>> {
        Ok(vec![])
    }
    async fn lapsed_tasks(&self) -> Result<Vec<TaskRecord>> {
        Ok(vec![])
    }
    async fn workers(&self) -> Result<Vec<WorkerRecord>> {
        Ok(vec![])
    }
}
