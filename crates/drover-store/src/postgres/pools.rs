//! PoolStore on PostgreSQL. STUB of the interface commit: H2 (pg-areas) replaces it.
#![allow(unused_variables, unused_imports, dead_code)]
use super::PgStore;
use crate::error::StoreError;
use crate::*;
use async_trait::async_trait;
use drover_types::*;

#[async_trait]
impl PoolStore for PgStore {
    async fn create_pool(&self, pool: NewPool) -> Result<PoolRecord> {
        Err(StoreError::Corrupt(
            "postgres: pools not implemented yet".into(),
        ))
    }
    async fn get_pool(&self, name: &str) -> Result<PoolRecord> {
        Err(StoreError::Corrupt(
            "postgres: pools not implemented yet".into(),
        ))
    }
    async fn list_pools(&self) -> Result<Vec<PoolRecord>> {
        Err(StoreError::Corrupt(
            "postgres: pools not implemented yet".into(),
        ))
    }
    async fn set_pool_state(
        &self,
        name: &str,
        state: PoolState,
        stop_reason: Option<&str>,
        reset_streak: bool,
    ) -> Result<PoolRecord> {
        Err(StoreError::Corrupt(
            "postgres: pools not implemented yet".into(),
        ))
    }
    async fn mark_pool_notified(&self, name: &str) -> Result<bool> {
        Err(StoreError::Corrupt(
            "postgres: pools not implemented yet".into(),
        ))
    }
    async fn launch_pool_task(&self, name: &str, task: NewTask) -> Result<Option<TaskRecord>> {
        Err(StoreError::Corrupt(
            "postgres: pools not implemented yet".into(),
        ))
    }
    async fn pool_stats(&self, name: &str, soft_fail_counts: bool) -> Result<PoolStats> {
        Err(StoreError::Corrupt(
            "postgres: pools not implemented yet".into(),
        ))
    }
    async fn pool_event(&self, name: &str, kind: &str, data: serde_json::Value) -> Result<()> {
        Err(StoreError::Corrupt(
            "postgres: pools not implemented yet".into(),
        ))
    }
    async fn pool_events(&self, name: &str, limit: i64) -> Result<Vec<PoolEvent>> {
        Err(StoreError::Corrupt(
            "postgres: pools not implemented yet".into(),
        ))
    }
}
