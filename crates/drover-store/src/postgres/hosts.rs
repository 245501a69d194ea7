//! Workers and claims on PostgreSQL: every daemon on the database is a worker. Claims take
//! queued rows with `FOR UPDATE SKIP LOCKED` (concurrent claimers never take one task); lease
//! times are the database's clock ([`DB_NOW`]), never a worker's.

use super::{PgStore, DB_NOW};
use crate::error::{Result, StoreError};
use crate::hosts::{Claim, HostStore, WorkerRecord, WorkerRow, WorkerSpec, LIVE_STATES};
use crate::record::{Fence, TaskRecord};
use crate::rows::TaskRow;
use async_trait::async_trait;
use sqlx::{Postgres, Transaction};

/// The end of a lease: the database's now plus `$2` seconds, in drover's time format.
const DB_LEASE: &str = "drover_time(now() + make_interval(secs => $2))";

fn claims(worker: &str, rows: Vec<(String, i64)>) -> Vec<Claim> {
    rows.into_iter()
        .map(|(id, attempt)| Claim {
            id,
            fence: Fence::new(worker, attempt),
        })
        .collect()
}

#[async_trait]
impl HostStore for PgStore {
    async fn register_worker(&self, spec: &WorkerSpec) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO workers (name, addr, started_at, last_heartbeat, slots, lease_secs) \
             VALUES ($1, $2, {DB_NOW}, {DB_NOW}, $3, $4) ON CONFLICT (name) DO UPDATE SET \
             addr = excluded.addr, started_at = excluded.started_at, \
             last_heartbeat = excluded.last_heartbeat, slots = excluded.slots, \
             lease_secs = excluded.lease_secs"
        ))
        .bind(&spec.name)
        .bind(&spec.addr)
        .bind(i64::from(spec.slots))
        .bind(i64::from(spec.lease_secs))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn heartbeat(&self, worker: &str, lease_secs: u32) -> Result<Vec<Claim>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "UPDATE workers SET last_heartbeat = {DB_NOW}, lease_secs = $2 WHERE name = $1"
        ))
        .bind(worker)
        .bind(i64::from(lease_secs))
        .execute(&mut *tx)
        .await?;
        let rows: Vec<(String, i64)> = sqlx::query_as(&format!(
            "UPDATE tasks SET lease_until = {DB_LEASE} WHERE worker = $1 AND state IN {LIVE_STATES} \
             RETURNING id, attempt"
        ))
        .bind(worker)
        .bind(f64::from(lease_secs))
        .fetch_all(&mut *tx)
        .await?;
        // A renewed lease is nothing a follower shows: committed without a notification.
        tx.commit().await?;
        Ok(claims(worker, rows))
    }

    async fn claim(&self, worker: &str, n: usize, lease_secs: u32) -> Result<Vec<Claim>> {
        if n == 0 {
            return Ok(vec![]);
        }
        let mut tx = self.pool.begin().await?;
        // The rows of the batches (with slots) whose queued tasks this claim may take, locked
        // in name order: claims touching one batch queue here, and the claim below (a statement
        // of its own) sees every claim committed before the lock was granted, so two workers
        // never both take a batch's last slot.
        sqlx::query(
            "SELECT name FROM batches WHERE slots IS NOT NULL AND name IN \
             (SELECT batch FROM tasks WHERE state = 'queued' AND worker IS NULL \
             AND batch IS NOT NULL AND (runs_on IS NULL OR runs_on = $1)) \
             ORDER BY name FOR UPDATE",
        )
        .bind(worker)
        .execute(&mut *tx)
        .await?;
        let mut rows: Vec<(String, i64, i64)> = sqlx::query_as(&format!(
            "UPDATE tasks SET worker = $1, attempt = attempt + 1, lease_until = {DB_LEASE} \
             WHERE id IN (SELECT id FROM tasks WHERE state = 'queued' AND worker IS NULL \
             AND id IN (SELECT id FROM ({}) AS eligible) ORDER BY queue_seq LIMIT $3 \
             FOR UPDATE SKIP LOCKED) RETURNING id, attempt, queue_seq",
            crate::batch_rows::claimable("AND (t.runs_on IS NULL OR t.runs_on = $1)")
        ))
        .bind(worker)
        .bind(f64::from(lease_secs))
        .bind(i64::try_from(n).unwrap_or(i64::MAX))
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(vec![]);
        }
        self.commit(tx).await?;
        rows.sort_by_key(|r| r.2);
        Ok(claims(
            worker,
            rows.into_iter().map(|(id, a, _)| (id, a)).collect(),
        ))
    }

    async fn lapsed_tasks(&self) -> Result<Vec<TaskRecord>> {
        let rows: Vec<TaskRow> = sqlx::query_as(&format!(
            "SELECT * FROM tasks WHERE worker IS NOT NULL AND state IN {LIVE_STATES} \
             AND lease_until IS NOT NULL AND lease_until < {DB_NOW} ORDER BY queue_seq"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn db_now(&self) -> Result<String> {
        Ok(sqlx::query_scalar(&format!("SELECT {DB_NOW}"))
            .fetch_one(&self.pool)
            .await?)
    }

    async fn workers(&self) -> Result<Vec<WorkerRecord>> {
        let mut tx = self.pool.begin().await?;
        let at: String = sqlx::query_scalar(&format!("SELECT {DB_NOW}"))
            .fetch_one(&mut *tx)
            .await?;
        let rows: Vec<WorkerRow> = sqlx::query_as(&format!(
            "SELECT w.name, w.addr, w.started_at, w.last_heartbeat, w.slots, w.lease_secs, \
             (SELECT COUNT(*) FROM tasks t WHERE t.worker = w.name AND t.state IN {LIVE_STATES}) \
             AS running FROM workers w ORDER BY w.name"
        ))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows.into_iter().map(|r| r.into_record(&at)).collect())
    }
}

/// Fails with [`StoreError::Fenced`] unless `fence` still holds task `id`; locks the task's row
/// (`FOR UPDATE`) for the rest of the update's transaction, so no claim, heartbeat or take-over
/// moves it between this check and the write.
pub(super) async fn check_fence(
    tx: &mut Transaction<'_, Postgres>,
    id: &str,
    fence: &Fence,
) -> Result<()> {
    let row: Option<(Option<String>, i64, Option<String>, String)> = sqlx::query_as(&format!(
        "SELECT worker, attempt, lease_until, {DB_NOW} FROM tasks WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    let (worker, attempt, lease_until, now) =
        row.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
    let held = worker.as_deref() == Some(fence.worker.as_str()) && attempt == fence.attempt;
    let lapsed = lease_until.is_some_and(|l| l < now);
    if held && (!fence.lapsed || lapsed) {
        return Ok(());
    }
    Err(StoreError::Fenced {
        id: id.to_string(),
        worker: fence.worker.clone(),
        attempt: fence.attempt,
        holder: match worker {
            Some(w) => format!("worker {w} attempt {attempt}"),
            None => "nobody".to_string(),
        },
    })
}
