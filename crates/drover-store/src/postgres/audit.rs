//! AuditStore on PostgreSQL. STUB of the interface commit: H2 (pg-areas) replaces it.
#![allow(unused_variables, unused_imports, dead_code)]
use super::PgStore;
use crate::error::StoreError;
use crate::*;
use async_trait::async_trait;
use drover_types::*;

#[async_trait]
impl AuditStore for PgStore {
    async fn append_audit(&self, record: NewAuditRecord) -> Result<i64> {
        Err(StoreError::Corrupt(
            "postgres: audit not implemented yet".into(),
        ))
    }
    async fn audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>> {
        Err(StoreError::Corrupt(
            "postgres: audit not implemented yet".into(),
        ))
    }
    async fn accounting(&self, filter: &AuditFilter) -> Result<Vec<AccountingRow>> {
        Err(StoreError::Corrupt(
            "postgres: audit not implemented yet".into(),
        ))
    }
}
