//! `GET /v1/usage?by=task|pool|model|day`: metered usage from the gateway's records (a bad
//! `by` is refused by the query's extractor: 400 listing the valid values).

use super::ApiErr;
use crate::engine::Engine;
use axum::extract::State;
use axum::Json;
use drover_store::UsageLine;
use drover_types::UsageBy;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize)]
pub struct UsageQuery {
    by: Option<UsageBy>,
}

pub async fn usage(
    State(engine): State<Arc<Engine>>,
    super::body::ApiQuery(q): super::body::ApiQuery<UsageQuery>,
) -> Result<Json<Vec<UsageLine>>, ApiErr> {
    Ok(Json(
        engine.store.usage_report(q.by.unwrap_or_default()).await?,
    ))
}
