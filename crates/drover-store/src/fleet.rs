//! Reads for the web dashboard (docs/design.md §10): the fleet's tasks in a few queries, the
//! latest event worth showing of many tasks at once, and event pages read backwards from a cursor.

use crate::error::Result;
use crate::record::TaskRecord;
use async_trait::async_trait;
use drover_types::{Event, EventKind};

/// What [`FleetStore::fleet_tasks`] found.
#[derive(Debug, Clone, Default)]
pub struct FleetRows {
    /// Every task not in a terminal state (queue order), as summaries (long texts cut, see
    /// [`crate::SUMMARY_CHARS`]).
    pub active: Vec<TaskRecord>,
    /// For each team (and for the tasks of no team), its most recently finished tasks, newest
    /// first, at most the limit asked per team.
    pub finished: Vec<TaskRecord>,
    /// How many finished tasks each team has in all (`None`: no team).
    pub finished_by_team: Vec<(Option<String>, u64)>,
}

#[async_trait]
pub trait FleetStore: Send + Sync {
    /// The fleet view's rows: active tasks, and per team (no team being one) its
    /// `finished_per_team` most recently finished tasks, with each team's finished count. A
    /// fixed handful of queries, whatever the number of tasks or teams' tasks (indexes
    /// `tasks_state`, `tasks_team_finished`).
    async fn fleet_tasks(&self, finished_per_team: i64) -> Result<FleetRows>;
    /// For each of `ids`, its event of highest seq whose kind is one of `kinds` (tasks without
    /// one are left out): one query, each task's found by walking its events back from the end.
    async fn latest_events(&self, ids: &[String], kinds: &[EventKind]) -> Result<Vec<Event>>;
    /// The last `limit` events with `seq < before`, in seq order, and, past the newest one, at
    /// most about `max_bytes` of stored data (the oldest are left out): a page read backwards
    /// along the events' primary key, never the whole task.
    async fn events_before(
        &self,
        id: &str,
        before: i64,
        limit: i64,
        max_bytes: usize,
    ) -> Result<Vec<Event>>;
}

/// Reads rows newest first until `max_bytes` of data (at least one row), then gives them back
/// in seq order.
pub(crate) async fn newest_first_page<S>(
    mut rows: S,
    id: &str,
    max_bytes: usize,
) -> Result<Vec<Event>>
where
    S: futures::Stream<Item = std::result::Result<crate::rows::EventRow, sqlx::Error>> + Unpin,
{
    use futures::TryStreamExt;
    let (mut out, mut bytes) = (Vec::new(), 0usize);
    while let Some(r) = rows.try_next().await? {
        bytes += r.data_len();
        if bytes > max_bytes && !out.is_empty() {
            break;
        }
        out.push(r.into_event(id)?);
    }
    out.reverse();
    Ok(out)
}
