//! `GET /v1/tasks/{id}/events?before=SEQ&limit=N`: the newest events of a task first, and older
//! pages by cursor — a page shows the end of a 50,000-event task without reading the rest. The
//! store walks the events' primary key (task_id, seq) backwards
//! ([`drover_store::FleetStore::events_before`]).

use super::ApiErr;
use crate::engine::Engine;
use drover_store::TaskRecord;
use drover_types::{ApiErrorKind, Event, EVENTS_PAGE_BYTES};

/// The `limit` events before `before` (at most about 1 MiB of them, the newest kept), in seq
/// order. `before` past the last event means "the newest"; with `after` or SSE it is a 400.
pub(super) async fn before(
    engine: &Engine,
    task: &TaskRecord,
    before: i64,
    after: i64,
    sse: bool,
    limit: usize,
) -> Result<Vec<Event>, ApiErr> {
    if sse || after != 0 {
        return Err(ApiErr::new(
            ApiErrorKind::Invalid,
            "before pages JSON backwards; it does not go with after or follow",
            Some("read the newest page with before= (e.g. the task's last seq + 1), older ones with before= the first seq of the page"),
        ));
    }
    if before < 1 {
        return Err(ApiErr::new(
            ApiErrorKind::Invalid,
            format!("before {before}: give an event seq (1 or more)"),
            Some("use the first seq of the page you have"),
        ));
    }
    Ok(engine
        .store
        .events_before(&task.id, before, limit as i64, EVENTS_PAGE_BYTES)
        .await?)
}
