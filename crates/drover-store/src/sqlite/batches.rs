//! [`BatchStore`] over SQLite (migration 0021). One writer: nothing moves between a retry's
//! check and its inserts.

use super::tasks::insert_task;
use super::SqliteStore;
use crate::batch_rows::{bind_batch, retryable, BatchRow, INSERT_BINDS, INSERT_COLUMNS};
use crate::batches::{BatchRecord, BatchStore, NewBatch};
use crate::error::{now, Result, StoreError};
use crate::record::{NewTask, TaskRecord};
use crate::rows::TaskRow;
use async_trait::async_trait;
use drover_types::BatchState;

#[async_trait]
impl BatchStore for SqliteStore {
    async fn create_batch(&self, batch: NewBatch, tasks: Vec<NewTask>) -> Result<BatchRecord> {
        // `name`, then `state`, then the rest.
        let rest = vec!["?"; INSERT_BINDS - 1].join(", ");
        let sql = format!("INSERT INTO batches ({INSERT_COLUMNS}) VALUES (?, 'running', {rest})");
        let mut tx = self.writer.begin().await?;
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
                sqlx::query_as("SELECT * FROM batches WHERE team = ? ORDER BY created_at, name")
                    .bind(team)
                    .fetch_all(&self.reader)
                    .await?
            }
            None => {
                sqlx::query_as("SELECT * FROM batches ORDER BY created_at, name")
                    .fetch_all(&self.reader)
                    .await?
            }
        };
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn batch(&self, name: &str) -> Result<BatchRecord> {
        sqlx::query_as::<_, BatchRow>("SELECT * FROM batches WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.writer)
            .await?
            .ok_or_else(|| StoreError::BatchNotFound(name.to_string()))?
            .try_into()
    }

    async fn batch_tasks(&self, name: &str) -> Result<Vec<TaskRecord>> {
        let rows: Vec<TaskRow> = sqlx::query_as(
            "SELECT * FROM tasks WHERE batch = ? ORDER BY created_at, queue_seq, id",
        )
        .bind(name)
        .fetch_all(&self.writer)
        .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn set_batch_state(&self, name: &str, state: BatchState) -> Result<BatchRecord> {
        let stopped_at = (state == BatchState::Stopped).then(now);
        let mut tx = self.writer.begin().await?;
        let res = sqlx::query("UPDATE batches SET state = ?, stopped_at = ? WHERE name = ?")
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
        let mut tx = self.writer.begin().await?;
        let res =
            sqlx::query("UPDATE batches SET state = 'running', stopped_at = NULL WHERE name = ?")
                .bind(name)
                .execute(&mut *tx)
                .await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::BatchNotFound(name.to_string()));
        }
        let mut existing: Vec<(String, String)> = sqlx::query_as(
            "SELECT repo, state FROM tasks WHERE batch = ? ORDER BY created_at, queue_seq, id",
        )
        .bind(name)
        .fetch_all(&mut *tx)
        .await?;
        let mut made = vec![];
        for mut t in tasks {
            if !retryable(&existing, &t.repo) {
                continue;
            }
            t.batch = Some(name.to_string());
            insert_task(&mut tx, &t).await?;
            existing.push((t.repo.clone(), "queued".into()));
            made.push(t.id);
        }
        self.commit(tx).await?;
        let mut out = vec![];
        for id in made {
            out.push(Self::fetch(&self.writer, &id).await?);
        }
        Ok(out)
    }
}
