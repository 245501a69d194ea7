//! [`MetricsStore`] over PostgreSQL.

use super::PgStore;
use crate::error::Result;
use crate::metrics::{parse_counts, MetricsStore, TotalRow, UsageTotal};
use async_trait::async_trait;
use drover_types::TaskState;

#[async_trait]
impl MetricsStore for PgStore {
    async fn usage_totals(&self, team: Option<&str>) -> Result<Vec<UsageTotal>> {
        let rows = sqlx::query_as::<_, TotalRow>(
            "SELECT model, team, pool, COUNT(*) AS n, SUM(input_tokens)::BIGINT AS i, \
             SUM(output_tokens)::BIGINT AS o, SUM(cache_read_tokens)::BIGINT AS cr, \
             SUM(cache_write_tokens)::BIGINT AS cw, \
             COALESCE(SUM(cost_usd), 0)::DOUBLE PRECISION AS usd FROM usage \
             WHERE ($1::TEXT IS NULL OR team = $1) GROUP BY model, team, pool \
             ORDER BY model COLLATE \"C\", team COLLATE \"C\", pool COLLATE \"C\"",
        )
        .bind(team)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(UsageTotal::from).collect())
    }

    async fn task_counts(&self, team: Option<&str>) -> Result<Vec<(TaskState, i64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT state, COUNT(*) FROM tasks WHERE ($1::TEXT IS NULL OR team = $1) GROUP BY state",
        )
        .bind(team)
        .fetch_all(&self.pool)
        .await?;
        parse_counts(rows)
    }
}
