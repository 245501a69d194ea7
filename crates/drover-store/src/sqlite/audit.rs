//! [`AuditStore`] on SQLite.

use super::SqliteStore;
use crate::audit::{AuditFilter, AuditStore, NewAuditRecord};
use crate::error::Result;
use async_trait::async_trait;
use drover_types::{AccountingRow, AuditRecord};

// The interface commit's placeholder: the audit work fills these in (migration 0013).
#[async_trait]
impl AuditStore for SqliteStore {
    async fn append_audit(&self, _record: NewAuditRecord) -> Result<i64> {
        Ok(0)
    }
    async fn audit(&self, _filter: &AuditFilter) -> Result<Vec<AuditRecord>> {
        Ok(vec![])
    }
    async fn accounting(&self, _filter: &AuditFilter) -> Result<Vec<AccountingRow>> {
        Ok(vec![])
    }
}
