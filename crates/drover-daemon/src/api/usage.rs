//! `GET /v1/usage?by=task|pool|model|day|team|tag:NAME&team=`: metered usage from the gateway's
//! records. A key sees only its own team's usage (the filter is forced; naming another team is
//! 403); the host owner may pick a team.

use super::audit_log::team_view;
use super::auth::Principal;
use super::ApiErr;
use crate::engine::Engine;
use axum::extract::{Extension, State};
use axum::Json;
use drover_store::{UsageBy, UsageLine};
use drover_types::{ApiErrorKind, Scope};
use serde::Deserialize;
use std::sync::Arc;

#[derive(Deserialize)]
pub struct UsageQuery {
    by: Option<String>,
    team: Option<String>,
}

pub async fn usage(
    State(engine): State<Arc<Engine>>,
    Extension(who): Extension<Principal>,
    super::body::ApiQuery(q): super::body::ApiQuery<UsageQuery>,
) -> Result<Json<Vec<UsageLine>>, ApiErr> {
    let by = match q.by {
        None => UsageBy::default(),
        Some(by) => by.parse::<UsageBy>().map_err(|_| {
            ApiErr::new(
                ApiErrorKind::Invalid,
                format!("--by {by}: use {}", drover_types::usage::valid_forms()),
                Some("e.g. by=team or by=tag:customer"),
            )
        })?,
    };
    let team = team_view(&who, Scope::UsageRead, q.team)?;
    Ok(Json(engine.store.usage_report(&by, team.as_deref()).await?))
}
