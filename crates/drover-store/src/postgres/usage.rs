//! [`UsageStore`] on PostgreSQL (migration 0003): one row per model response that went through a
//! gateway (any daemon's). Spent amounts and `drover usage` are computed from these rows.
//!
//! Sums of BIGINT columns are NUMERIC in PostgreSQL: they are cast back to BIGINT (the rows'
//! decoding type). Group keys are ordered byte-wise (`COLLATE "C"`), as SQLite orders them.

use super::tasks::append;
use super::PgStore;
use crate::error::{Result, StoreError};
use crate::usage::{Spent, UsageBy, UsageGroup, UsageLine, UsageRow, UsageStore};
use async_trait::async_trait;
use drover_types::{EventKind, NewEvent};

#[derive(sqlx::FromRow)]
struct TaskSpent {
    usd: f64,
    tokens: i64,
}

#[derive(sqlx::FromRow)]
struct ReportRow {
    k: String,
    n: i64,
    i: i64,
    o: i64,
    cr: i64,
    cw: i64,
    usd: Option<f64>,
    unpriced: i64,
}

impl From<ReportRow> for UsageLine {
    fn from(r: ReportRow) -> Self {
        UsageLine {
            key: r.k,
            requests: r.n,
            input_tokens: r.i,
            output_tokens: r.o,
            cache_read_tokens: r.cr,
            cache_write_tokens: r.cw,
            cost_usd: if r.unpriced > 0 { None } else { r.usd },
        }
    }
}

/// The SQL expression a report groups by (over `usage u`). A tag's value is read from the
/// task's `tags` (a JSON object as text) at report time; its name is the parameter `$2` (never
/// spliced).
fn group_key(by: &UsageBy) -> &'static str {
    match by {
        UsageBy::Group(UsageGroup::Task) => "u.task_id",
        UsageBy::Group(UsageGroup::Pool) => "COALESCE(u.pool, '-')",
        UsageBy::Group(UsageGroup::Model) => "u.model",
        UsageBy::Group(UsageGroup::Day) => "substr(u.at, 1, 10)",
        UsageBy::Group(UsageGroup::Team) => "COALESCE(u.team, '-')",
        UsageBy::Tag(_) => {
            "COALESCE((SELECT t.tags::jsonb ->> $2::TEXT FROM tasks t WHERE t.id = u.task_id), '-')"
        }
    }
}

#[async_trait]
impl UsageStore for PgStore {
    /// One transaction for the batch (all or none). Rows are written in task-id order (stable:
    /// a task's rows keep theirs), so batches of two daemons lock tasks in one order and never
    /// deadlock.
    async fn record_usage(&self, rows: &[UsageRow]) -> Result<()> {
        let mut ordered: Vec<&UsageRow> = rows.iter().collect();
        ordered.sort_by(|a, b| a.task_id.cmp(&b.task_id));
        let mut tx = self.pool.begin().await?;
        for u in ordered {
            insert_usage(&mut tx, u).await?;
        }
        self.commit(tx).await
    }

    async fn usage_last_id(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0)::BIGINT FROM usage")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn spent(
        &self,
        task_id: &str,
        pool: Option<&str>,
        team: Option<&str>,
        day_start: &str,
        up_to: i64,
    ) -> Result<Spent> {
        let task = sqlx::query_as::<_, TaskSpent>(
            "SELECT COALESCE(SUM(cost_usd), 0.0)::DOUBLE PRECISION AS usd, \
             COALESCE(SUM(input_tokens + output_tokens + cache_read_tokens + cache_write_tokens), 0)::BIGINT \
             AS tokens FROM usage WHERE task_id = $1 AND id <= $2",
        )
        .bind(task_id)
        .bind(up_to)
        .fetch_one(&self.pool)
        .await?;
        let mut s = Spent {
            task_usd: task.usd,
            task_tokens: task.tokens,
            ..Spent::default()
        };
        if let Some(pool) = pool {
            s.pool_usd = sqlx::query_scalar(
                "SELECT COALESCE(SUM(cost_usd), 0.0)::DOUBLE PRECISION FROM usage \
                 WHERE pool = $1 AND id <= $2",
            )
            .bind(pool)
            .bind(up_to)
            .fetch_one(&self.pool)
            .await?;
        }
        if let Some(team) = team {
            s.team_usd_today = sqlx::query_scalar(
                "SELECT COALESCE(SUM(cost_usd), 0.0)::DOUBLE PRECISION FROM usage \
                 WHERE team = $1 AND at >= $2 AND id <= $3",
            )
            .bind(team)
            .bind(day_start)
            .bind(up_to)
            .fetch_one(&self.pool)
            .await?;
        }
        Ok(s)
    }

    async fn usage_report(&self, by: &UsageBy, team: Option<&str>) -> Result<Vec<UsageLine>> {
        let q = format!(
            "SELECT ({}) COLLATE \"C\" AS k, COUNT(*) AS n, SUM(u.input_tokens)::BIGINT AS i, \
             SUM(u.output_tokens)::BIGINT AS o, SUM(u.cache_read_tokens)::BIGINT AS cr, \
             SUM(u.cache_write_tokens)::BIGINT AS cw, SUM(u.cost_usd) AS usd, \
             COUNT(*) FILTER (WHERE u.cost_usd IS NULL) AS unpriced FROM usage u \
             WHERE ($1::TEXT IS NULL OR u.team = $1) GROUP BY 1 ORDER BY 1",
            group_key(by)
        );
        let mut query = sqlx::query_as::<_, ReportRow>(&q).bind(team);
        if let UsageBy::Tag(name) = by {
            query = query.bind(name);
        }
        let rows = query.fetch_all(&self.pool).await?;
        Ok(rows.into_iter().map(UsageLine::from).collect())
    }
}

/// One row of a batch: the usage row, the task's totals, its `usage` event.
async fn insert_usage(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>, u: &UsageRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO usage (task_id, pool, team, api, model, input_tokens, output_tokens, \
         cache_read_tokens, cache_write_tokens, cost_usd, stop_reason, outcome, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&u.task_id)
    .bind(&u.pool)
    .bind(&u.team)
    .bind(&u.api)
    .bind(&u.model)
    .bind(u.input_tokens)
    .bind(u.output_tokens)
    .bind(u.cache_read_tokens)
    .bind(u.cache_write_tokens)
    .bind(u.cost_usd)
    .bind(&u.stop_reason)
    .bind(u.outcome.to_string())
    .bind(&u.at)
    .execute(&mut **tx)
    .await?;
    let res = sqlx::query(
        "UPDATE tasks SET input_tokens = input_tokens + $1, output_tokens = output_tokens + $2, \
         cache_read_tokens = cache_read_tokens + $3, cache_write_tokens = cache_write_tokens + $4, \
         cost_usd = CASE WHEN $5::DOUBLE PRECISION IS NULL THEN cost_usd \
         ELSE COALESCE(cost_usd, 0) + $5 END \
         WHERE id = $6",
    )
    .bind(u.input_tokens)
    .bind(u.output_tokens)
    .bind(u.cache_read_tokens)
    .bind(u.cache_write_tokens)
    .bind(u.cost_usd)
    .bind(&u.task_id)
    .execute(&mut **tx)
    .await?;
    if res.rows_affected() == 0 {
        return Err(StoreError::NotFound(u.task_id.clone()));
    }
    let mut data = serde_json::to_value(u).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    if let Some(o) = data.as_object_mut() {
        o.insert("source".into(), "gateway".into());
    }
    append(tx, &u.task_id, vec![NewEvent::new(EventKind::Usage, data)]).await?;
    Ok(())
}
