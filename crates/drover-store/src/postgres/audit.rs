//! [`AuditStore`] on PostgreSQL: the `audit` table (migration 0005; `seq` an identity column;
//! appended to only — this file has no UPDATE or DELETE of it, and a trigger refuses both) and
//! accounting rows read from finished tasks and their usage.

use super::PgStore;
use crate::area_rows::{AccountingSqlRow, AuditRow};
use crate::audit::{AuditFilter, AuditStore, NewAuditRecord};
use crate::error::Result;
use async_trait::async_trait;
use drover_types::{AccountingRow, AuditRecord, TaskState};

#[async_trait]
impl AuditStore for PgStore {
    /// One INSERT. It does not notify: nothing follows the audit log live (SSE followers and
    /// `wait` watch tasks).
    async fn append_audit(&self, r: NewAuditRecord) -> Result<i64> {
        let seq: i64 = sqlx::query_scalar(
            "INSERT INTO audit (at, key_id, team, action, target, remote_addr, status) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING seq",
        )
        .bind(&r.at)
        .bind(&r.actor.key_id)
        .bind(&r.actor.team)
        .bind(&r.action)
        .bind(&r.target)
        .bind(&r.remote_addr)
        .bind(i64::from(r.status))
        .fetch_one(&self.pool)
        .await?;
        Ok(seq)
    }

    async fn audit(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>> {
        let rows = sqlx::query_as::<_, AuditRow>(
            "SELECT seq, at, key_id, team, action, target, remote_addr, status FROM audit \
             WHERE seq > $1 AND ($2::TEXT IS NULL OR at >= $2) AND ($3::TEXT IS NULL OR team = $3) \
             ORDER BY seq LIMIT $4",
        )
        .bind(f.after_seq.unwrap_or(0))
        .bind(&f.since)
        .bind(&f.team)
        .bind(f.limit.map(i64::from))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(AuditRecord::from).collect())
    }

    async fn accounting(&self, f: &AuditFilter) -> Result<Vec<AccountingRow>> {
        let terminal: Vec<String> = TaskState::ALL
            .iter()
            .filter(|s| s.is_terminal())
            .map(|s| s.as_str().to_string())
            .collect();
        let (after_at, after_id) = match &f.after_task {
            Some((at, id)) => (Some(at.as_str()), Some(id.as_str())),
            None => (None, None),
        };
        // Grouped by the task's primary key, so its other columns may be selected. Times and ids
        // compare byte-wise (`COLLATE "C"`), as SQLite compares them.
        let rows = sqlx::query_as::<_, AccountingSqlRow>(
            "SELECT t.id, t.created_by, t.team, t.repo, t.agent, t.model, t.started_at, \
             t.finished_at, t.verdict, t.error_kind, t.tags, \
             COALESCE(SUM(u.input_tokens), 0)::BIGINT AS i, \
             COALESCE(SUM(u.output_tokens), 0)::BIGINT AS o, \
             COALESCE(SUM(u.cache_read_tokens), 0)::BIGINT AS cr, \
             COALESCE(SUM(u.cache_write_tokens), 0)::BIGINT AS cw, \
             SUM(u.cost_usd) AS usd, \
             COUNT(u.id) FILTER (WHERE u.cost_usd IS NULL) AS unpriced \
             FROM tasks t LEFT JOIN usage u ON u.task_id = t.id \
             WHERE t.state = ANY($1) \
             AND ($2::TEXT IS NULL OR t.finished_at COLLATE \"C\" >= $2) \
             AND ($3::TEXT IS NULL OR t.team = $3) \
             AND ($4::TEXT IS NULL OR (COALESCE(t.finished_at, '') COLLATE \"C\", t.id COLLATE \"C\") \
                  > ($5::TEXT, $4::TEXT)) \
             GROUP BY t.id \
             ORDER BY COALESCE(t.finished_at, '') COLLATE \"C\", t.id COLLATE \"C\" LIMIT $6",
        )
        .bind(terminal)
        .bind(&f.since)
        .bind(&f.team)
        .bind(after_id)
        .bind(after_at)
        .bind(f.limit.map(i64::from))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(AccountingRow::try_from).collect()
    }
}
