//! `POST /v1/locks/{name}?slots=N&holder=TASK`: waits for a slot, answers `granted`, and holds
//! the slot while the connection stays open (see [`crate::engine::locks`]). Held in the store:
//! every worker of a shared database sees it.

use super::ApiErr;
use crate::engine::locks::LockError;
use crate::engine::Engine;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize)]
pub struct LockQuery {
    #[serde(default = "one")]
    slots: u32,
    #[serde(default)]
    holder: String,
}

fn one() -> u32 {
    1
}

pub async fn acquire(
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    scope: Option<axum::Extension<super::scoped::TaskScope>>,
    super::body::ApiQuery(q): super::body::ApiQuery<LockQuery>,
) -> Result<Response, ApiErr> {
    if q.slots == 0 {
        return Err(ApiErr::invalid("--slots must be at least 1"));
    }
    // From a task's own endpoint the holder is that task, whatever the query says.
    let holder = if let Some(axum::Extension(scope)) = scope {
        scope.0.to_string()
    } else if q.holder.is_empty() {
        "outside a task".to_string()
    } else {
        q.holder
    };
    // The store notifies (a task's lock view shows it waiting, then holding).
    let held = engine
        .locks
        .acquire(&name, q.slots, &holder)
        .await
        .map_err(|e| match e {
            LockError::SlotsDiffer { .. } => ApiErr::invalid(e.to_string()),
            LockError::Store(e) => e.into(),
        })?;
    // The body says `granted` once, then stays open; when the client goes away hyper drops the
    // stream, and with it the permit.
    let granted = futures::stream::once(async {
        Ok::<_, std::convert::Infallible>(bytes::Bytes::from("granted\n"))
    });
    let hold = futures::stream::unfold(held, |held| async move {
        std::future::pending::<()>().await;
        Some((Ok(bytes::Bytes::new()), held))
    });
    use futures::StreamExt;
    let body = Body::from_stream(granted.chain(hold));
    Response::builder()
        .header("content-type", "text/plain")
        .body(body)
        .map_err(|e| ApiErr::invalid(e.to_string()))
}

pub async fn list(State(engine): State<Arc<Engine>>) -> Result<Json<serde_json::Value>, ApiErr> {
    Ok(Json(engine.locks.list().await?))
}
