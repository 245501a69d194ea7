//! [`BatchStore`] on PostgreSQL (migration 0011). A retry locks the batch's row (`FOR UPDATE`)
//! before it reads the batch's tasks (in a statement of its own, so it sees every retry
//! committed before the lock was granted): two retries at once never run one repository twice.

use super::tasks::insert_task;
use super::PgStore;
use crate::batch_rows::{bind_batch, retryable, BatchRow, INSERT_BINDS, INSERT_COLUMNS};
use crate::batches::{BatchRecord, BatchStore, NewBatch};
use crate::error::{now, Result, StoreError};
use crate::record::{NewTask, TaskRecord};
use crate::rows::TaskRow;
use async_trait::async_trait;
use drover_types::BatchState;

#[async_trait]
impl BatchStore for PgStore {
    async fn create_batch(&self, batch: NewBatch, tasks: Vec<NewTask>) -> Result<BatchRecord> {
        // `name` ($1), then `state`, then the rest ($2…).
        let rest = (2..=INSERT_BINDS)
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("INSERT INTO batches ({INSERT_COLUMNS}) VALUES ($1, 'running', {rest})");
        let mut tx = self.pool.begin().await?;
        let res = bind_batch!(sqlx::query(&sql), &batch, now())
            .execute(&mut *tx)
            .await;
        match res {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(StoreError::Exists(batch.name))
            }
            Err(e) => return Err(e.into()),
        }
        for mut t in tasks {
            t.batch = Some(batch.name.clone());
            insert_task(&mut tx, &t).await?;
        }
        self.commit(tx).await?;
        self.batch(&batch.name).await
    }

    async fn batches(&self, team: Option<&str>) -> Result<Vec<BatchRecord>> {
        let rows: Vec<BatchRow> = match team {
            Some(team) => {
                sqlx::query_as("SELECT * FROM batches WHERE team = $1 ORDER BY created_at, name")
                    .bind(team)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query_as("SELECT * FROM batches ORDER BY created_at, name")
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn batch(&self, name: &str) -> Result<BatchRecord> {
        sqlx::query_as::<_, BatchRow>("SELECT * FROM batches WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::BatchNotFound(name.to_string()))?
            .try_into()
    }

    async fn batch_tasks(&self, name: &str) -> Result<Vec<TaskRecord>> {
        let rows: Vec<TaskRow> = sqlx::query_as(
            "SELECT * FROM tasks WHERE batch = $1 ORDER BY created_at, queue_seq, id",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn set_batch_state(&self, name: &str, state: BatchState) -> Result<BatchRecord> {
        let stopped_at = (state == BatchState::Stopped).then(now);
        let mut tx = self.pool.begin().await?;
        let res = sqlx::query("UPDATE batches SET state = $1, stopped_at = $2 WHERE name = $3")
            .bind(state.as_str())
            .bind(stopped_at)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::BatchNotFound(name.to_string()));
        }
        self.commit(tx).await?;
        self.batch(name).await
    }

    async fn retry_batch(&self, name: &str, tasks: Vec<NewTask>) -> Result<Vec<TaskRecord>> {
        let mut tx = self.pool.begin().await?;
        let locked: Option<String> =
            sqlx::query_scalar("SELECT name FROM batches WHERE name = $1 FOR UPDATE")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        if locked.is_none() {
            return Err(StoreError::BatchNotFound(name.to_string()));
        }
        sqlx::query("UPDATE batches SET state = 'running', stopped_at = NULL WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let mut existing: Vec<(String, String)> = sqlx::query_as(
            "SELECT repo, state FROM tasks WHERE batch = $1 ORDER BY created_at, queue_seq, id",
        )
        .bind(name)
        .fetch_all(&mut *tx)
        .await?;
        let mut out = vec![];
        for mut t in tasks {
            if !retryable(&existing, &t.repo) {
                continue;
            }
            t.batch = Some(name.to_string());
            out.push(insert_task(&mut tx, &t).await?);
            existing.push((t.repo.clone(), "queued".into()));
        }
        self.commit(tx).await?;
        Ok(out)
    }
}
