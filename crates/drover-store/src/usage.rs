//! Metered usage: one row per model response that went through the gateway. Spent amounts
//! (budgets) and `drover usage` are computed from these rows, so they survive restarts.

use crate::sqlite::{append, SqliteStore};
use crate::{Result, StoreError};
use drover_types::{EventKind, NewEvent, UsageBy};
use serde::Serialize;
use sqlx::Row;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageRow {
    pub task_id: String,
    pub pool: Option<String>,
    pub team: Option<String>,
    pub api: String,
    pub model: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub cost_usd: Option<f64>,
    pub stop_reason: Option<String>,
    pub outcome: String,
    pub at: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Spent {
    pub task_usd: f64,
    pub task_tokens: i64,
    pub pool_usd: f64,
    pub team_usd_today: f64,
}

/// One line of `drover usage`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageLine {
    pub key: String,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    /// `None` if any response in the group had no price.
    pub cost_usd: Option<f64>,
}

impl SqliteStore {
    /// Stores responses' usage, adds each to its task's totals, and appends a `usage` event per
    /// row — all in one transaction (group commit: one fsync for the batch).
    pub(crate) async fn usage_record(&self, rows: &[UsageRow]) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        for u in rows {
            insert_usage(&mut tx, u).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The id of the last usage row (0 when there is none).
    pub(crate) async fn usage_last_id(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM usage")
            .fetch_one(&self.reader)
            .await?)
    }

    /// Spent amounts over the usage rows with `id <= up_to`, read on a reader connection (WAL:
    /// every committed usage row is visible), so they do not queue behind the writer.
    pub(crate) async fn usage_spent(
        &self,
        task_id: &str,
        pool: Option<&str>,
        team: Option<&str>,
        day_start: &str,
        up_to: i64,
    ) -> Result<Spent> {
        let row = sqlx::query(
            "SELECT COALESCE(SUM(cost_usd), 0.0) AS usd, \
             COALESCE(SUM(input_tokens + output_tokens + cache_read_tokens + cache_write_tokens), 0) AS tokens \
             FROM usage WHERE task_id = ? AND id <= ?",
        )
        .bind(task_id)
        .bind(up_to)
        .fetch_one(&self.reader)
        .await?;
        let mut s = Spent {
            task_usd: row.try_get("usd")?,
            task_tokens: row.try_get("tokens")?,
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

    pub(crate) async fn usage_report(&self, by: UsageBy) -> Result<Vec<UsageLine>> {
        let key = match by {
            UsageBy::Task => "task_id",
            UsageBy::Pool => "COALESCE(pool, '-')",
            UsageBy::Model => "model",
            UsageBy::Day => "substr(at, 1, 10)",
        };
        let q = format!(
            "SELECT {key} AS k, COUNT(*) AS n, SUM(input_tokens) AS i, SUM(output_tokens) AS o, \
             SUM(cache_read_tokens) AS cr, SUM(cache_write_tokens) AS cw, SUM(cost_usd) AS usd, \
             SUM(cost_usd IS NULL) AS unpriced FROM usage GROUP BY k ORDER BY k"
        );
        let rows = sqlx::query(&q).fetch_all(&self.reader).await?;
        rows.iter()
            .map(|r| {
                let unpriced: i64 = r.try_get("unpriced")?;
                let usd: Option<f64> = r.try_get("usd")?;
                Ok(UsageLine {
                    key: r.try_get("k")?,
                    requests: r.try_get("n")?,
                    input_tokens: r.try_get("i")?,
                    output_tokens: r.try_get("o")?,
                    cache_read_tokens: r.try_get("cr")?,
                    cache_write_tokens: r.try_get("cw")?,
                    cost_usd: if unpriced > 0 { None } else { usd },
                })
            })
            .collect()
    }
}

/// One row of [`SqliteStore::usage_record`]: the usage row, the task's totals, its event.
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
    .bind(&u.outcome)
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
