//! [`WebhookStore`] on SQLite: `webhook_deliveries` (migration 0011; its rows are added by the
//! `webhook_outbox` trigger on `state` events).

use super::SqliteStore;
use crate::area_rows::{DeliveryRow, DELIVERY_COLS as COLS};
use crate::error::{Result, StoreError};
use crate::webhooks::{AttemptOutcome, WebhookDelivery, WebhookStore};
use async_trait::async_trait;

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn due_webhooks(
        &self,
        now: &str,
        max_attempts: u32,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>> {
        let sql = format!(
            "SELECT {COLS} FROM webhook_deliveries WHERE delivered_at IS NULL \
             AND attempts < ? AND next_at <= ? ORDER BY next_at, id LIMIT ?"
        );
        Ok(sqlx::query_as::<_, DeliveryRow>(&sql)
            .bind(max_attempts)
            .bind(now)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?
            .into_iter()
            .map(WebhookDelivery::from)
            .collect())
    }

    /// One writer: the select and the update cannot interleave with another claim.
    async fn claim_webhooks(
        &self,
        now: &str,
        hold_until: &str,
        max_attempts: u32,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>> {
        let sql = format!(
            "SELECT {COLS} FROM webhook_deliveries WHERE delivered_at IS NULL \
             AND attempts < ? AND next_at <= ? ORDER BY next_at, id LIMIT ?"
        );
        let mut tx = self.writer.begin().await?;
        let due: Vec<WebhookDelivery> = sqlx::query_as::<_, DeliveryRow>(&sql)
            .bind(max_attempts)
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(WebhookDelivery::from)
            .collect();
        if due.is_empty() {
            return Ok(due);
        }
        for d in &due {
            sqlx::query("UPDATE webhook_deliveries SET next_at = ? WHERE id = ?")
                .bind(hold_until)
                .bind(&d.id)
                .execute(&mut *tx)
                .await?;
        }
        self.commit(tx).await?;
        Ok(due)
    }

    async fn next_webhook_at(&self, max_attempts: u32) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(next_at) FROM webhook_deliveries WHERE delivered_at IS NULL \
             AND attempts < ?",
        )
        .bind(max_attempts)
        .fetch_one(&self.reader)
        .await?)
    }

    async fn record_webhook_attempt(
        &self,
        id: &str,
        outcome: AttemptOutcome,
        max_attempts: u32,
    ) -> Result<WebhookDelivery> {
        let mut tx = self.writer.begin().await?;
        let q = match &outcome {
            AttemptOutcome::Delivered { status, at } => sqlx::query(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = ?, \
                 delivered_at = ? WHERE id = ?",
            )
            .bind(*status)
            .bind(at),
            AttemptOutcome::Retry { status, next_at } => sqlx::query(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = ?, \
                 next_at = ? WHERE id = ?",
            )
            .bind(*status)
            .bind(next_at),
            AttemptOutcome::GiveUp { status } => sqlx::query(
                "UPDATE webhook_deliveries SET attempts = MAX(attempts + 1, ?), \
                 last_status = ? WHERE id = ?",
            )
            .bind(max_attempts)
            .bind(*status),
        };
        let done = q.bind(id).execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(id.to_string()));
        }
        self.commit(tx).await?;
        sqlx::query_as::<_, DeliveryRow>(&format!(
            "SELECT {COLS} FROM webhook_deliveries WHERE id = ?"
        ))
        .bind(id)
        .fetch_one(&self.writer)
        .await
        .map(WebhookDelivery::from)
        .map_err(Into::into)
    }

    async fn webhooks_of(&self, task_id: &str) -> Result<Vec<WebhookDelivery>> {
        let sql =
            format!("SELECT {COLS} FROM webhook_deliveries WHERE task_id = ? ORDER BY at, id");
        Ok(sqlx::query_as::<_, DeliveryRow>(&sql)
            .bind(task_id)
            .fetch_all(&self.reader)
            .await?
            .into_iter()
            .map(WebhookDelivery::from)
            .collect())
    }
}
