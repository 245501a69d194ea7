//! HostStore on PostgreSQL. STUB of the interface commit: H3 (workers) replaces it.
#![allow(unused_variables, unused_imports, dead_code)]
use super::PgStore;
use crate::error::StoreError;
use crate::*;
use async_trait::async_trait;
use drover_types::*;

#[async_trait]
impl HostStore for PgStore {
    async fn register_worker(&self, spec: &WorkerSpec) -> Result<()> {
        Err(StoreError::Corrupt(
            "postgres: hosts not implemented yet".into(),
        ))
    }
    async fn heartbeat(&self, worker: &str, lease_secs: u32) -> Result<Vec<Claim>> {
        Err(StoreError::Corrupt(
            "postgres: hosts not implemented yet".into(),
        ))
    }
    async fn claim(&self, worker: &str, n: usize, lease_secs: u32) -> Result<Vec<Claim>> {
        Err(StoreError::Corrupt(
            "postgres: hosts not implemented yet".into(),
        ))
    }
    async fn lapsed_tasks(&self) -> Result<Vec<TaskRecord>> {
        Err(StoreError::Corrupt(
            "postgres: hosts not implemented yet".into(),
        ))
    }
    async fn workers(&self) -> Result<Vec<WorkerRecord>> {
        Err(StoreError::Corrupt(
            "postgres: hosts not implemented yet".into(),
        ))
    }
}

/// Fails with [`StoreError::Fenced`] unless `fence` still holds task `id`; locks the task's row
/// (`FOR UPDATE`) for the rest of the update's transaction.
pub(super) async fn check_fence(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    id: &str,
    fence: &crate::record::Fence,
) -> Result<()> {
    Err(StoreError::Corrupt(
        "postgres: fencing not implemented yet".into(),
    ))
}
