//! WebhookStore on PostgreSQL. STUB of the interface commit: H2 (pg-areas) replaces it.
#![allow(unused_variables, unused_imports, dead_code)]
use super::PgStore;
use crate::error::StoreError;
use crate::*;
use async_trait::async_trait;
use drover_types::*;

#[async_trait]
impl WebhookStore for PgStore {
    async fn due_webhooks(
        &self,
        now: &str,
        max_attempts: u32,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>> {
        Err(StoreError::Corrupt(
            "postgres: webhooks not implemented yet".into(),
        ))
    }
    async fn next_webhook_at(&self, max_attempts: u32) -> Result<Option<String>> {
        Err(StoreError::Corrupt(
            "postgres: webhooks not implemented yet".into(),
        ))
    }
    async fn record_webhook_attempt(
        &self,
        id: &str,
        outcome: AttemptOutcome,
        max_attempts: u32,
    ) -> Result<WebhookDelivery> {
        Err(StoreError::Corrupt(
            "postgres: webhooks not implemented yet".into(),
        ))
    }
    async fn webhooks_of(&self, task_id: &str) -> Result<Vec<WebhookDelivery>> {
        Err(StoreError::Corrupt(
            "postgres: webhooks not implemented yet".into(),
        ))
    }
}
