//! [`UsageStore`] over SQLite: one row per model response that went through the gateway. Spent
//! amounts (budgets) and `drover usage` are computed from these rows, so they survive restarts.

use super::tasks::append;
use super::SqliteStore;
use crate::area_rows::{ReportRow, TaskSpent};
use crate::error::{Result, StoreError};
use crate::usage::{Spent, UsageBy, UsageGroup, UsageLine, UsageRow, UsageStore};
use async_trait::async_trait;
use drover_types::{EventKind, NewEvent};

/// The SQL expression a report groups by (over `usage u`). A tag's value is read from the
/// task's `tags` at report time; its name is the one bound parameter (never spliced).
fn group_key(by: &UsageBy) -> &'static str {
    match by {
        UsageBy::Group(UsageGroup::Task) => "u.task_id",
        UsageBy::Group(UsageGroup::Pool) => "COALESCE(u.pool, '-')",
        UsageBy::Group(UsageGroup::Model) => "u.model",
        UsageBy::Group(UsageGroup::Day) => "substr(u.at, 1, 10)",
        UsageBy::Group(UsageGroup::Team) => "COALESCE(u.team, '-')",
        UsageBy::Tag(_) => {
            "COALESCE((SELECT CAST(j.value AS TEXT) FROM tasks t, json_each(t.tags) j \
             WHERE t.id = u.task_id AND j.key = ?), '-')"
        }
    }
}

#[async_trait]
impl UsageStore for SqliteStore {
    /// One transaction for the batch (group commit: one fsync).
    async fn record_usage(&self, rows: &[UsageRow]) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        for u in rows {
            insert_usage(&mut tx, u).await?;
        }
        self.commit(tx).await
    }

    async fn usage_last_id(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM usage")
            .fetch_one(&self.reader)
            .await?)
    }

    /// Read on a reader connection (WAL: every committed usage row is visible), so it does not
    /// queue behind the writer.
    async fn spent(
        &self,
        task_id: &str,
        pool: Option<&str>,
        team: Option<&str>,
        day_start: &str,
        up_to: i64,
    ) -> Result<Spent> {
        let task = sqlx::query_as::<_, TaskSpent>(
            "SELECT COALESCE(SUM(cost_usd), 0.0) AS usd, \
             COALESCE(SUM(input_tokens + output_tokens + cache_read_tokens + cache_write_tokens), 0) AS tokens \
             FROM usage WHERE task_id = ? AND id <= ?",
        )
        .bind(task_id)
        .bind(up_to)
        .fetch_one(&self.reader)
        .await?;
        let mut s = Spent {
            task_usd: task.usd,
            task_tokens: task.tokens,
            ..Spent::default()
        };
        if let Some(pool) = pool {
            s.pool_usd = sqlx::query_scalar(
                "SELECT COALESCE(SUM(cost_usd), 0.0) FROM usage WHERE pool = ? AND id <= ?",
            )
            .bind(pool)
            .bind(up_to)
            .fetch_one(&self.reader)
            .await?;
        }
        if let Some(team) = team {
            s.team_usd_today = sqlx::query_scalar(
                "SELECT COALESCE(SUM(cost_usd), 0.0) FROM usage WHERE team = ? AND at >= ? AND id <= ?",
            )
            .bind(team)
            .bind(day_start)
            .bind(up_to)
            .fetch_one(&self.reader)
            .await?;
        }
        Ok(s)
    }

    async fn usage_report(&self, by: &UsageBy, team: Option<&str>) -> Result<Vec<UsageLine>> {
        let q = format!(
            "SELECT {} AS k, COUNT(*) AS n, SUM(u.input_tokens) AS i, SUM(u.output_tokens) AS o, \
             SUM(u.cache_read_tokens) AS cr, SUM(u.cache_write_tokens) AS cw, \
             SUM(u.cost_usd) AS usd, SUM(u.cost_usd IS NULL) AS unpriced FROM usage u \
             WHERE (? IS NULL OR u.team = ?) GROUP BY k ORDER BY k",
            group_key(by)
        );
        let mut query = sqlx::query_as::<_, ReportRow>(&q);
        if let UsageBy::Tag(name) = by {
            query = query.bind(name);
        }
        let rows = query.bind(team).bind(team).fetch_all(&self.reader).await?;
        Ok(rows.into_iter().map(UsageLine::from).collect())
    }
}

/// One row of a batch: the usage row, the task's totals, its `usage` event.
async fn insert_usage(tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>, u: &UsageRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO usage (task_id, pool, team, api, model, input_tokens, output_tokens, \
         cache_read_tokens, cache_write_tokens, cost_usd, stop_reason, outcome, at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        "UPDATE tasks SET input_tokens = input_tokens + ?, output_tokens = output_tokens + ?, \
         cache_read_tokens = cache_read_tokens + ?, cache_write_tokens = cache_write_tokens + ?, \
         cost_usd = CASE WHEN ? IS NULL THEN cost_usd ELSE COALESCE(cost_usd, 0) + ? END \
         WHERE id = ?",
    )
    .bind(u.input_tokens)
    .bind(u.output_tokens)
    .bind(u.cache_read_tokens)
    .bind(u.cache_write_tokens)
    .bind(u.cost_usd)
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
