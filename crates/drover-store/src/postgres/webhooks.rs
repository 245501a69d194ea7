//! [`WebhookStore`] on PostgreSQL: `webhook_deliveries` (migration 0006; its rows are added by
//! the `webhook_outbox` trigger on `state` events, in the transaction of the state change).

use super::PgStore;
use crate::area_rows::{DeliveryRow, DELIVERY_COLS as COLS};
use crate::error::{Result, StoreError};
use crate::webhooks::{AttemptOutcome, WebhookDelivery, WebhookStore};
use async_trait::async_trait;

#[async_trait]
impl WebhookStore for PgStore {
    async fn due_webhooks(
        &self,
        now: &str,
        max_attempts: u32,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>> {
        let sql = format!(
            "SELECT {COLS} FROM webhook_deliveries WHERE delivered_at IS NULL \
             AND attempts < $1 AND next_at <= $2 ORDER BY next_at, id COLLATE \"C\" LIMIT $3"
        );
        Ok(sqlx::query_as::<_, DeliveryRow>(&sql)
            .bind(i64::from(max_attempts))
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(WebhookDelivery::from)
            .collect())
    }

    /// `FOR UPDATE SKIP LOCKED`: daemons claiming at once take disjoint rows, none waits.
    async fn claim_webhooks(
        &self,
        now: &str,
        hold_until: &str,
        max_attempts: u32,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>> {
        let mut tx = self.pool.begin().await?;
        let mut due: Vec<WebhookDelivery> = sqlx::query_as::<_, DeliveryRow>(
            "WITH due AS (SELECT id, next_at FROM webhook_deliveries \
               WHERE delivered_at IS NULL AND attempts < $1 AND next_at <= $2 \
               ORDER BY next_at, id COLLATE \"C\" LIMIT $3 FOR UPDATE SKIP LOCKED) \
             UPDATE webhook_deliveries w SET next_at = $4 FROM due WHERE w.id = due.id \
             RETURNING w.id, w.team, w.task_id, w.event, w.at, w.attempts, due.next_at, \
             w.last_status, w.delivered_at",
        )
        .bind(i64::from(max_attempts))
        .bind(now)
        .bind(i64::from(limit))
        .bind(hold_until)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(WebhookDelivery::from)
        .collect();
        if due.is_empty() {
            return Ok(due);
        }
        self.commit(tx).await?;
        due.sort_by(|a, b| (&a.next_at, &a.id).cmp(&(&b.next_at, &b.id)));
        Ok(due)
    }

    async fn next_webhook_at(&self, max_attempts: u32) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(next_at) FROM webhook_deliveries WHERE delivered_at IS NULL \
             AND attempts < $1",
        )
        .bind(i64::from(max_attempts))
        .fetch_one(&self.pool)
        .await?)
    }

    async fn record_webhook_attempt(
        &self,
        id: &str,
        outcome: AttemptOutcome,
        max_attempts: u32,
    ) -> Result<WebhookDelivery> {
        let mut tx = self.pool.begin().await?;
        let q = match &outcome {
            AttemptOutcome::Delivered { status, at } => sqlx::query(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = $1, \
                 delivered_at = $2 WHERE id = $3",
            )
            .bind(i64::from(*status))
            .bind(at),
            AttemptOutcome::Retry { status, next_at } => sqlx::query(
                "UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = $1, \
                 next_at = $2 WHERE id = $3",
            )
            .bind(i64::from(*status))
            .bind(next_at),
            AttemptOutcome::GiveUp { status } => sqlx::query(
                "UPDATE webhook_deliveries SET attempts = GREATEST(attempts + 1, $1), \
                 last_status = $2 WHERE id = $3",
            )
            .bind(i64::from(max_attempts))
            .bind(i64::from(*status)),
        };
        let done = q.bind(id).execute(&mut *tx).await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(id.to_string()));
        }
        self.commit(tx).await?;
        sqlx::query_as::<_, DeliveryRow>(&format!(
            "SELECT {COLS} FROM webhook_deliveries WHERE id = $1"
        ))
        .bind(id)
        .fetch_one(&self.pool)
        .await
        .map(WebhookDelivery::from)
        .map_err(Into::into)
    }

    async fn webhooks_of(&self, task_id: &str) -> Result<Vec<WebhookDelivery>> {
        let sql = format!(
            "SELECT {COLS} FROM webhook_deliveries WHERE task_id = $1 ORDER BY at, id COLLATE \"C\""
        );
        Ok(sqlx::query_as::<_, DeliveryRow>(&sql)
            .bind(task_id)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(WebhookDelivery::from)
            .collect())
    }
}
