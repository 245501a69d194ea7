//! [`FleetStore`] over SQLite.

use super::SqliteStore;
use crate::error::Result;
use crate::fleet::{FleetRows, FleetStore};
use crate::record::TaskRecord;
use crate::rows::{EventRow, TaskRow};
use async_trait::async_trait;
use drover_types::{Event, EventKind};
use sqlx::{QueryBuilder, Sqlite};

#[async_trait]
impl FleetStore for SqliteStore {
    async fn fleet_tasks(&self, finished_per_team: i64) -> Result<FleetRows> {
        let cols = &self.summary_cols;
        let mut tx = self.reader.begin().await?;
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
                "SELECT {cols} FROM tasks WHERE team IS ? AND finished_at IS NOT NULL \
                 ORDER BY finished_at DESC LIMIT ?"
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
        // Per id, the primary key (task_id, seq) walked backwards to the first event of a kind
        // asked for; the ids and kinds go in as JSON arrays (one statement, any number of them).
        let ids_json = crate::rows::to_json(&ids)?;
        let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        let kinds_json = crate::rows::to_json(&kinds)?;
        let rows: Vec<LatestRow> = sqlx::query_as(
            "SELECT e.task_id, e.seq, e.ts, e.kind, e.data FROM json_each(?) i \
             JOIN events e ON e.task_id = i.value AND e.seq = ( \
               SELECT x.seq FROM events x WHERE x.task_id = i.value \
               AND x.kind IN (SELECT value FROM json_each(?)) ORDER BY x.seq DESC LIMIT 1)",
        )
        .bind(ids_json)
        .bind(kinds_json)
        .fetch_all(&self.reader)
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
        let mut qb =
            QueryBuilder::<Sqlite>::new("SELECT seq, ts, kind, data FROM events WHERE task_id = ");
        qb.push_bind(id)
            .push(" AND seq < ")
            .push_bind(before)
            .push(" ORDER BY seq DESC LIMIT ")
            .push_bind(limit);
        let rows = qb.build_query_as::<EventRow>().fetch(&self.reader);
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The backwards page walks the primary key (no scan, no sort of the task's events).
    #[tokio::test]
    async fn events_before_walks_the_primary_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("db.sqlite"))
            .await
            .unwrap();
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(
            "EXPLAIN QUERY PLAN SELECT seq, ts, kind, data FROM events WHERE task_id = ? \
             AND seq < ? ORDER BY seq DESC LIMIT ?",
        )
        .bind("t")
        .bind(10)
        .bind(5)
        .fetch_all(&store.reader)
        .await
        .unwrap();
        let text: Vec<&str> = plan.iter().map(|r| r.3.as_str()).collect();
        assert!(
            text.iter()
                .any(|d| d.contains("SEARCH events USING PRIMARY KEY")),
            "{text:?}"
        );
        assert!(!text.iter().any(|d| d.contains("TEMP B-TREE")), "{text:?}");
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(
            "EXPLAIN QUERY PLAN SELECT id FROM tasks WHERE team IS ? AND finished_at IS NOT NULL \
             ORDER BY finished_at DESC LIMIT ?",
        )
        .bind("a")
        .bind(5)
        .fetch_all(&store.reader)
        .await
        .unwrap();
        let text: Vec<&str> = plan.iter().map(|r| r.3.as_str()).collect();
        assert!(
            text.iter().any(|d| d.contains("tasks_team_finished")),
            "{text:?}"
        );
    }
}
