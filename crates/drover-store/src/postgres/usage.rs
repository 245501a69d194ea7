//! UsageStore on PostgreSQL. STUB of the interface commit: H2 (pg-areas) replaces it.
#![allow(unused_variables, unused_imports, dead_code)]
use super::PgStore;
use crate::error::StoreError;
use crate::*;
use async_trait::async_trait;
use drover_types::*;

#[async_trait]
impl UsageStore for PgStore {
    async fn record_usage(&self, rows: &[UsageRow]) -> Result<()> {
        Err(StoreError::Corrupt(
            "postgres: usage not implemented yet".into(),
        ))
    }
    async fn usage_last_id(&self) -> Result<i64> {
        Err(StoreError::Corrupt(
            "postgres: usage not implemented yet".into(),
        ))
    }
    async fn spent(
        &self,
        task_id: &str,
        pool: Option<&str>,
        team: Option<&str>,
        day_start: &str,
        up_to: i64,
    ) -> Result<Spent> {
        Err(StoreError::Corrupt(
            "postgres: usage not implemented yet".into(),
        ))
    }
    async fn usage_report(&self, by: &UsageBy, team: Option<&str>) -> Result<Vec<UsageLine>> {
        Err(StoreError::Corrupt(
            "postgres: usage not implemented yet".into(),
        ))
    }
}
