//! [`FleetStore`] on PostgreSQL: the SQLite queries (`sqlite/fleet.rs`) in PostgreSQL's words.

use super::PgStore;
use crate::error::Result;
use crate::fleet::{FleetRows, FleetStore};
use crate::record::TaskRecord;
use crate::rows::{EventRow, TaskRow};
use async_trait::async_trait;
use drover_types::{Event, EventKind};

#[async_trait]
impl FleetStore for PgStore {
    async fn fleet_tasks(&self, finished_per_team: i64) -> Result<FleetRows> {
        let cols = &self.summary_cols;
        // One snapshot of the table for the three reads.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let active = sqlx::query_as::<_, TaskRow>(&format!(
            "SELECT {cols} FROM tasks WHERE finished_at IS NULL ORDER BY queue_seq"
        ))
        .fetch_all(&mut *tx)
        .await?;
        let counts: Vec<(Option<String>, i64)> = sqlx::query_as(
            "SELECT team, COUNT(*) FROM tasks WHERE finished_at IS NOT NULL GROUP BY team",
        )
        .fetch_all(&mut *tx)
        .await?;
        let mut finished = Vec::new();
        for (team, _) in &counts {
            let rows = sqlx::query_as::<_, TaskRow>(&format!(
                "SELECT {cols} FROM tasks WHERE team IS NOT DISTINCT FROM $1 \
                 AND finished_at IS NOT NULL ORDER BY finished_at DESC LIMIT $2"
            ))
            .bind(team)
            .bind(finished_per_team)
            .fetch_all(&mut *tx)
            .await?;
            finished.extend(rows);
        }
        tx.commit().await?;
        Ok(FleetRows {
            active: records(active)?,
            finished: records(finished)?,
            finished_by_team: counts.into_iter().map(|(t, n)| (t, n as u64)).collect(),
        })
    }

    async fn latest_events(&self, ids: &[String], kinds: &[EventKind]) -> Result<Vec<Event>> {
        if ids.is_empty() || kinds.is_empty() {
            return Ok(vec![]);
        }
        let kinds: Vec<String> = kinds.iter().map(|k| k.as_str().to_string()).collect();
        // Per id, the primary key (task_id, seq) walked backwards to the first event of a kind
        // asked for.
        let rows: Vec<LatestRow> = sqlx::query_as(
            "SELECT e.task_id, e.seq, e.ts, e.kind, e.data FROM unnest($1::text[]) AS i(id) \
             CROSS JOIN LATERAL (SELECT x.task_id, x.seq, x.ts, x.kind, x.data FROM events x \
               WHERE x.task_id = i.id AND x.kind = ANY($2::text[]) \
               ORDER BY x.seq DESC LIMIT 1) e",
        )
        .bind(ids)
        .bind(&kinds)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(LatestRow::into_event).collect()
    }

    async fn events_before(
        &self,
        id: &str,
        before: i64,
        limit: i64,
        max_bytes: usize,
    ) -> Result<Vec<Event>> {
        let rows = sqlx::query_as::<_, EventRow>(
            "SELECT seq, ts, kind, data FROM events WHERE task_id = $1 AND seq < $2 \
             ORDER BY seq DESC LIMIT $3",
        )
        .bind(id)
        .bind(before)
        .bind(limit)
        .fetch(&self.pool);
        crate::fleet::newest_first_page(rows, id, max_bytes).await
    }
}

fn records(rows: Vec<TaskRow>) -> Result<Vec<TaskRecord>> {
    rows.into_iter().map(TaskRecord::try_from).collect()
}

#[derive(sqlx::FromRow)]
struct LatestRow {
    task_id: String,
    #[sqlx(flatten)]
    row: EventRow,
}

impl LatestRow {
    fn into_event(self) -> Result<Event> {
        self.row.into_event(&self.task_id)
    }
}
