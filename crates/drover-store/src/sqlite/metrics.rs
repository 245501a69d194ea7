//! [`MetricsStore`] over SQLite.

use super::SqliteStore;
use crate::error::Result;
use crate::metrics::{parse_counts, MetricsStore, TotalRow, UsageTotal};
use async_trait::async_trait;
use drover_types::TaskState;

#[async_trait]
impl MetricsStore for SqliteStore {
    async fn usage_totals(&self, team: Option<&str>) -> Result<Vec<UsageTotal>> {
        let rows = sqlx::query_as::<_, TotalRow>(
            "SELECT model, team, pool, COUNT(*) AS n, SUM(input_tokens) AS i, \
             SUM(output_tokens) AS o, SUM(cache_read_tokens) AS cr, \
             SUM(cache_write_tokens) AS cw, TOTAL(cost_usd) AS usd FROM usage \
             WHERE (? IS NULL OR team = ?) GROUP BY model, team, pool ORDER BY model, team, pool",
        )
        .bind(team)
        .bind(team)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(UsageTotal::from).collect())
    }

    async fn task_counts(&self, team: Option<&str>) -> Result<Vec<(TaskState, i64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT state, COUNT(*) FROM tasks WHERE (? IS NULL OR team = ?) GROUP BY state",
        )
        .bind(team)
        .bind(team)
        .fetch_all(&self.reader)
        .await?;
        parse_counts(rows)
    }
}
