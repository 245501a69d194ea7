//! Workers and claims on SQLite: one worker, the daemon that owns the file.

use super::SqliteStore;
use crate::error::{now, Result, StoreError};
use crate::hosts::{Claim, HostStore, WorkerRecord, WorkerRow, WorkerSpec, LIVE_STATES};
use crate::record::{Fence, TaskRecord};
use async_trait::async_trait;
use sqlx::{Sqlite, Transaction};

/// Fails with [`StoreError::Fenced`] unless `fence` still holds task `id` (inside the update's
/// transaction: SQLite has one writer, so nothing moves between this check and the write).
pub(super) async fn check_fence(
    tx: &mut Transaction<'_, Sqlite>,
    id: &str,
    fence: &Fence,
) -> Result<()> {
    let row: Option<(Option<String>, i64, Option<String>)> =
        sqlx::query_as("SELECT worker, attempt, lease_until FROM tasks WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
    let (worker, attempt, lease_until) = row.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
    let held = worker.as_deref() == Some(fence.worker.as_str()) && attempt == fence.attempt;
    let lapsed = lease_until.is_some_and(|l| l < now());
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

/// `now + secs` in the format of [`now`] (SQLite's clock is this host's: one worker).
fn later(secs: u32) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(i64::from(secs)))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn claims(worker: &str, rows: Vec<(String, i64)>) -> Vec<Claim> {
    rows.into_iter()
        .map(|(id, attempt)| Claim {
            id,
            fence: Fence::new(worker, attempt),
        })
        .collect()
}

#[async_trait]
impl HostStore for SqliteStore {
    async fn register_worker(&self, spec: &WorkerSpec) -> Result<()> {
        let at = now();
        sqlx::query(
            "INSERT INTO workers (name, addr, started_at, last_heartbeat, slots, lease_secs) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET addr = excluded.addr, \
             started_at = excluded.started_at, last_heartbeat = excluded.last_heartbeat, \
             slots = excluded.slots, lease_secs = excluded.lease_secs",
        )
        .bind(&spec.name)
        .bind(&spec.addr)
        .bind(&at)
        .bind(&at)
        .bind(i64::from(spec.slots))
        .bind(i64::from(spec.lease_secs))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn heartbeat(&self, worker: &str, lease_secs: u32) -> Result<Vec<Claim>> {
        let mut tx = self.writer.begin().await?;
        sqlx::query("UPDATE workers SET last_heartbeat = ?, lease_secs = ? WHERE name = ?")
            .bind(now())
            .bind(i64::from(lease_secs))
            .bind(worker)
            .execute(&mut *tx)
            .await?;
        let rows: Vec<(String, i64)> = sqlx::query_as(&format!(
            "UPDATE tasks SET lease_until = ? WHERE worker = ? AND state IN {LIVE_STATES} \
             RETURNING id, attempt"
        ))
        .bind(later(lease_secs))
        .bind(worker)
        .fetch_all(&mut *tx)
        .await?;
        // A renewed lease is nothing a follower shows: no change to announce.
        tx.commit().await?;
        Ok(claims(worker, rows))
    }

    async fn claim(&self, worker: &str, n: usize, lease_secs: u32) -> Result<Vec<Claim>> {
        if n == 0 {
            return Ok(vec![]);
        }
        // One writer: nothing else claims between the select and the update. `runs_on` is
        // ignored (one worker sees every path).
        let mut tx = self.writer.begin().await?;
        // A batch's task waits while its batch holds `slots` claimed or active tasks.
        let mut rows: Vec<(String, i64, i64)> = sqlx::query_as(&format!(
            "UPDATE tasks SET worker = ?, attempt = attempt + 1, lease_until = ? \
             WHERE id IN (SELECT id FROM ({}) AS eligible ORDER BY queue_seq LIMIT ?) \
             RETURNING id, attempt, queue_seq",
            crate::batch_rows::claimable("")
        ))
        .bind(worker)
        .bind(later(lease_secs))
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
        let rows: Vec<crate::rows::TaskRow> = sqlx::query_as(&format!(
            "SELECT * FROM tasks WHERE worker IS NOT NULL AND state IN {LIVE_STATES} \
             AND lease_until IS NOT NULL AND lease_until < ? ORDER BY queue_seq"
        ))
        .bind(now())
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    async fn db_now(&self) -> Result<String> {
        Ok(now())
    }

    async fn workers(&self) -> Result<Vec<WorkerRecord>> {
        let rows: Vec<WorkerRow> = sqlx::query_as(&format!(
            "SELECT w.name, w.addr, w.started_at, w.last_heartbeat, w.slots, w.lease_secs, \
             (SELECT COUNT(*) FROM tasks t WHERE t.worker = w.name AND t.state IN {LIVE_STATES}) \
             AS running FROM workers w ORDER BY w.name"
        ))
        .fetch_all(&self.reader)
        .await?;
        let at = now();
        Ok(rows.into_iter().map(|r| r.into_record(&at)).collect())
    }
}
