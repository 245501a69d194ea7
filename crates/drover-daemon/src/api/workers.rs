//! `GET /v1/workers`: the workers sharing this daemon's store ([`drover_types::WorkerInfo`], by
//! name; docs/design.md §8) — on SQLite the daemon itself. The host owner's only: a team's key
//! must not map the fleet.

use super::ApiErr;
use crate::engine::Engine;
use axum::extract::State;
use axum::Json;
use drover_types::WorkerInfo;
use std::sync::Arc;

pub async fn list(State(engine): State<Arc<Engine>>) -> Result<Json<Vec<WorkerInfo>>, ApiErr> {
    let workers = engine.store.workers().await?;
    Ok(Json(workers.iter().map(|w| w.to_info()).collect()))
}
