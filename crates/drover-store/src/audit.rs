//! The audit log (append-only: every mutating API call and webhook delivery) and the
//! accounting rows of finished tasks (docs/design.md §7).

use async_trait::async_trait;

#[async_trait]
pub trait AuditStore: Send + Sync {}
