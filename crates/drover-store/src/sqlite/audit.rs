//! [`AuditStore`] on SQLite: the `audit` table (migration 0013; appended to only — this file
//! has no UPDATE or DELETE of it) and accounting rows read from finished tasks and their usage.

use super::SqliteStore;
use crate::area_rows::{AccountingSqlRow, AuditRow};
use crate::audit::{AuditFilter, AuditStore, NewAuditRecord};
use crate::error::{Result, StoreError};
use async_trait::async_trait;
use drover_types::{AccountingRow, AuditRecord, TaskState};

/// SQLite's "no limit".
fn limit_of(limit: Option<u32>) -> i64 {
    limit.map(i64::from).unwrap_or(-1)
}

#[async_trait]
impl AuditStore for SqliteStore {
    /// One INSERT on the writer. It does not bump the change feed: nothing follows the audit
    /// log live (SSE followers and `wait` watch tasks).
    async fn append_audit(&self, r: NewAuditRecord) -> Result<i64> {
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO audit (at, key_id, team, action, target, remote_addr, status) \
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING seq",
        )
        .bind(&r.at)
        .bind(&r.actor.key_id)
        .bind(&r.actor.team)
        .bind(&r.action)
        .bind(&r.target)
        .bind(&r.remote_addr)
        .bind(i64::from(r.status))
        .fetch_one(&self.writer)
        .await?;
        Ok(seq)
    }

    async fn audit(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>> {
        let rows = sqlx::query_as::<_, AuditRow>(
            "SELECT seq, at, key_id, team, action, target, remote_addr, status FROM audit \
             WHERE seq > ? AND (? IS NULL OR at >= ?) AND (? IS NULL OR team = ?) \
             ORDER BY seq LIMIT ?",
        )
        .bind(f.after_seq.unwrap_or(0))
        .bind(&f.since)
        .bind(&f.since)
        .bind(&f.team)
        .bind(&f.team)
        .bind(limit_of(f.limit))
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(AuditRecord::from).collect())
    }

    async fn accounting(&self, f: &AuditFilter) -> Result<Vec<AccountingRow>> {
        let terminal: Vec<&str> = TaskState::ALL
            .iter()
            .filter(|s| s.is_terminal())
            .map(|s| s.as_str())
            .collect();
        let states =
            serde_json::to_string(&terminal).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let (after_at, after_id) = match &f.after_task {
            Some((at, id)) => (Some(at.as_str()), Some(id.as_str())),
            None => (None, None),
        };
        let rows = sqlx::query_as::<_, AccountingSqlRow>(
            "SELECT t.id, t.created_by, t.team, t.repo, t.agent, t.model, t.started_at, \
             t.finished_at, t.verdict, t.error_kind, t.tags, \
             COALESCE(SUM(u.input_tokens), 0) AS i, COALESCE(SUM(u.output_tokens), 0) AS o, \
             COALESCE(SUM(u.cache_read_tokens), 0) AS cr, \
             COALESCE(SUM(u.cache_write_tokens), 0) AS cw, \
             SUM(u.cost_usd) AS usd, COALESCE(SUM(u.id IS NOT NULL AND u.cost_usd IS NULL), 0) AS unpriced \
             FROM tasks t LEFT JOIN usage u ON u.task_id = t.id \
             WHERE t.state IN (SELECT value FROM json_each(?)) \
             AND (? IS NULL OR t.finished_at >= ?) AND (? IS NULL OR t.team = ?) \
             AND (? IS NULL OR (COALESCE(t.finished_at, ''), t.id) > (?, ?)) \
             GROUP BY t.id ORDER BY COALESCE(t.finished_at, ''), t.id LIMIT ?",
        )
        .bind(states)
        .bind(&f.since)
        .bind(&f.since)
        .bind(&f.team)
        .bind(&f.team)
        .bind(after_id)
        .bind(after_at)
        .bind(after_id)
        .bind(limit_of(f.limit))
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter().map(AccountingRow::try_from).collect()
    }
}
