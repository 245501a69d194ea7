//! [`AuditStore`] on SQLite: the `audit` table (migration 0013; appended to only — this file
//! has no UPDATE or DELETE of it) and accounting rows read from finished tasks and their usage.

use super::SqliteStore;
use crate::audit::{AuditFilter, AuditStore, NewAuditRecord};
use crate::error::{Result, StoreError};
use async_trait::async_trait;
use drover_types::{AccountingRow, Actor, AuditRecord, Tags, TaskState, ACCOUNTING_SCHEMA};

#[derive(sqlx::FromRow)]
struct AuditRow {
    seq: i64,
    at: String,
    key_id: Option<String>,
    team: Option<String>,
    action: String,
    target: Option<String>,
    remote_addr: Option<String>,
    status: i64,
}

impl From<AuditRow> for AuditRecord {
    fn from(r: AuditRow) -> Self {
        AuditRecord {
            seq: r.seq,
            at: r.at,
            actor: Actor {
                key_id: r.key_id,
                team: r.team,
            },
            action: r.action,
            target: r.target,
            remote_addr: r.remote_addr,
            status: u16::try_from(r.status).unwrap_or(0),
        }
    }
}

#[derive(sqlx::FromRow)]
struct AccountingSqlRow {
    id: String,
    created_by: Option<String>,
    team: Option<String>,
    repo: String,
    agent: String,
    model: Option<String>,
    started_at: Option<String>,
    finished_at: Option<String>,
    verdict: Option<String>,
    error_kind: Option<String>,
    tags: String,
    i: i64,
    o: i64,
    cr: i64,
    cw: i64,
    usd: Option<f64>,
    unpriced: i64,
}

impl TryFrom<AccountingSqlRow> for AccountingRow {
    type Error = StoreError;
    fn try_from(r: AccountingSqlRow) -> Result<Self> {
        let tags: Tags = serde_json::from_str(&r.tags)
            .map_err(|e| StoreError::Corrupt(format!("task {}: tags: {e}", r.id)))?;
        let duration_s = match (&r.started_at, &r.finished_at) {
            (Some(s), Some(f)) => seconds_between(s, f),
            _ => None,
        };
        let tokens = |n: i64| u64::try_from(n).unwrap_or(0);
        Ok(AccountingRow {
            schema: ACCOUNTING_SCHEMA,
            task_id: r.id,
            created_by: r.created_by,
            team: r.team,
            repo: r.repo,
            agent: r.agent,
            model: r.model,
            started_at: r.started_at,
            finished_at: r.finished_at,
            duration_s,
            input_tokens: tokens(r.i),
            output_tokens: tokens(r.o),
            cache_read_tokens: tokens(r.cr),
            cache_write_tokens: tokens(r.cw),
            // The same rule as `drover usage`: unknown if any response had no price.
            cost_usd: if r.unpriced > 0 {
                None
            } else {
                Some(r.usd.unwrap_or(0.0))
            },
            verdict: r.verdict,
            error_kind: r.error_kind,
            tags,
        })
    }
}

/// Seconds from `start` to `end` (RFC 3339), to the millisecond.
fn seconds_between(start: &str, end: &str) -> Option<f64> {
    let s = chrono::DateTime::parse_from_rfc3339(start).ok()?;
    let e = chrono::DateTime::parse_from_rfc3339(end).ok()?;
    let ms = (e - s).num_milliseconds().max(0);
    Some(ms as f64 / 1000.0)
}

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
