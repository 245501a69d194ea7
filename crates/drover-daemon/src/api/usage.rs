//! `GET /v1/usage?by=task|pool|model|day`: metered usage from the gateway's records.

use super::ApiErr;
use crate::engine::Engine;
use axum::extract::State;
use axum::Json;
use drover_store::{UsageGroup, UsageLine};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize)]
pub struct UsageQuery {
    by: Option<String>,
}

pub async fn usage(
    State(engine): State<Arc<Engine>>,
    axum::Extension(principal): axum::Extension<super::auth::Principal>,
    super::body::ApiQuery(q): super::body::ApiQuery<UsageQuery>,
) -> Result<Json<Vec<UsageLine>>, ApiErr> {
    let by = match q.by {
        None => UsageGroup::Task,
        Some(by) => by
            .parse()
            .map_err(|_| ApiErr::invalid(format!("--by {by}: use task, pool, model or day")))?,
    };
    let lines = engine.store.usage_report(by).await?;
    Ok(Json(
        super::access::own_usage(&engine, &principal, by, lines).await?,
    ))
}
