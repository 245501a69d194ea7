//! `/v1/teams…` (docs/design.md §7): create (the host owner only), list, show, update a team,
//! and its webhook secret. A key needs `admin` and acts only for its own team: another team is
//! 404, as a team that does not exist. Each handler checks the caller itself (the listener's
//! scope table is the first check, this the second).

use super::auth::Principal;
use super::body::ApiJson;
use super::ApiErr;
use crate::engine::Engine;
use crate::teams::{policy, valid_name, webhooks};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use drover_types::{
    validate, ApiErrorKind, CreateTeamRequest, Scope, TeamInfo, UpdateTeamRequest, WebhookSecret,
};
use std::sync::Arc;

type ApiResult<T> = Result<T, ApiErr>;

/// A 422 `invalid_field`.
pub(crate) fn invalid_field(error: impl Into<String>, hint: Option<&str>) -> ApiErr {
    ApiErr::new(ApiErrorKind::InvalidField, error, hint)
}

/// 403 for a key without `admin`.
pub(crate) fn need_admin(p: &Principal) -> ApiResult<()> {
    if p.allows(Scope::Admin) {
        Ok(())
    } else {
        Err(ApiErr::new(
            ApiErrorKind::Forbidden,
            "this key lacks the admin scope",
            Some("teams and keys are managed with an admin key of the team, or on the host"),
        ))
    }
}

/// 404, the same as a team that does not exist.
pub(super) fn no_team(name: &str) -> ApiErr {
    ApiErr::new(
        ApiErrorKind::NotFound,
        format!("team not found: {name}"),
        Some("`drover team ls` lists teams"),
    )
}

/// The team `name` if the caller (owner, or an admin key of that team) may manage it.
async fn managed(engine: &Engine, p: &Principal, name: &str) -> ApiResult<TeamInfo> {
    need_admin(p)?;
    if !p.sees(Some(name)) {
        return Err(no_team(name));
    }
    engine.store.team(name).await?.ok_or_else(|| no_team(name))
}

fn check_settings(
    p: &Principal,
    max_usd_per_day: Option<f64>,
    max_usd_per_task: Option<f64>,
    allowed_models: Option<&Vec<String>>,
    allowed_repos: Option<&Vec<String>>,
    webhook_url: Option<&str>,
) -> ApiResult<()> {
    validate::dollars("--max-usd-per-day", max_usd_per_day).map_err(|e| invalid_field(e, None))?;
    validate::dollars("--max-usd-per-task", max_usd_per_task)
        .map_err(|e| invalid_field(e, None))?;
    for m in allowed_models.into_iter().flatten() {
        if m.trim().is_empty() || m.len() > 200 || m.chars().any(char::is_control) {
            return Err(invalid_field(
                format!("--allow-model {m:?}: give a model name"),
                None,
            ));
        }
    }
    for r in allowed_repos.into_iter().flatten() {
        policy::check_repo_entry(r).map_err(|e| invalid_field(e, None))?;
    }
    if let Some(url) = webhook_url {
        webhooks::check_url(url).map_err(|e| {
            invalid_field(
                e,
                Some("give an http:// or https:// URL, e.g. https://example.com/drover"),
            )
        })?;
        if *p != Principal::Owner && webhooks::internal_host(url) {
            return Err(ApiErr::new(
                ApiErrorKind::Forbidden,
                format!("webhook_url {url:?} is an internal address"),
                Some("only the host owner may point webhooks at this host or a private network"),
            ));
        }
    }
    Ok(())
}

pub async fn create(
    State(engine): State<Arc<Engine>>,
    Extension(p): Extension<Principal>,
    ApiJson(req): ApiJson<CreateTeamRequest>,
) -> ApiResult<(StatusCode, Json<TeamInfo>)> {
    if p != Principal::Owner {
        return Err(ApiErr::new(
            ApiErrorKind::Forbidden,
            "only the host owner creates teams",
            Some("run `drover team create` on the daemon's host"),
        ));
    }
    if !valid_name(&req.name) {
        return Err(invalid_field(
            format!(
                "team name {:?}: use lower-case letters, digits, '-' and '_', starting with a \
                 letter or digit, at most 63",
                req.name
            ),
            Some("e.g. `drover team create platform`"),
        ));
    }
    check_settings(
        &p,
        req.max_usd_per_day,
        req.max_usd_per_task,
        req.allowed_models.as_ref(),
        req.allowed_repos.as_ref(),
        req.webhook_url.as_deref(),
    )?;
    let team = TeamInfo {
        name: req.name.clone(),
        max_usd_per_day: req.max_usd_per_day,
        max_usd_per_task: req.max_usd_per_task,
        allowed_models: req.allowed_models,
        allowed_repos: req.allowed_repos,
        webhook_url: req.webhook_url,
        created_at: String::new(),
    };
    match engine.store.create_team(&team).await {
        Ok(t) => Ok((StatusCode::CREATED, Json(t))),
        Err(drover_store::StoreError::Exists(_)) => Err(ApiErr::new(
            ApiErrorKind::Conflict,
            format!("team {} already exists", req.name),
            Some("`drover team update` changes it"),
        )),
        Err(e) => Err(e.into()),
    }
}

pub async fn list(
    State(engine): State<Arc<Engine>>,
    Extension(p): Extension<Principal>,
) -> ApiResult<Json<Vec<TeamInfo>>> {
    need_admin(&p)?;
    let teams = engine.store.teams().await?;
    Ok(Json(
        teams
            .into_iter()
            .filter(|t| p.sees(Some(&t.name)))
            .collect(),
    ))
}

pub async fn show(
    State(engine): State<Arc<Engine>>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<Json<TeamInfo>> {
    Ok(Json(managed(&engine, &p, &name).await?))
}

pub async fn update(
    State(engine): State<Arc<Engine>>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<UpdateTeamRequest>,
) -> ApiResult<Json<TeamInfo>> {
    let mut team = managed(&engine, &p, &name).await?;
    // Money and models are the host owner's to set: a team's admin key raising its own budget
    // or widening its model list would make them no limit at all (docs/design.md §7).
    let limits = req.max_usd_per_day.is_some()
        || req.max_usd_per_task.is_some()
        || req.allowed_models.is_some()
        || req.allowed_repos.is_some();
    if limits && p != Principal::Owner {
        return Err(ApiErr::new(
            ApiErrorKind::Forbidden,
            "forbidden: a team's budgets, models and repos are set by the host owner; a key may change only its team's webhook_url",
            Some("ask whoever runs the server (`drover team update NAME …` on its Unix socket)"),
        ));
    }
    check_settings(
        &p,
        req.max_usd_per_day.flatten(),
        req.max_usd_per_task.flatten(),
        req.allowed_models.as_ref().and_then(Option::as_ref),
        req.allowed_repos.as_ref().and_then(Option::as_ref),
        req.webhook_url.as_ref().and_then(Option::as_deref),
    )?;
    if let Some(v) = req.max_usd_per_day {
        team.max_usd_per_day = v;
    }
    if let Some(v) = req.max_usd_per_task {
        team.max_usd_per_task = v;
    }
    if let Some(v) = req.allowed_models {
        team.allowed_models = v;
    }
    if let Some(v) = req.webhook_url {
        team.webhook_url = v;
    }
    if let Some(v) = req.allowed_repos {
        team.allowed_repos = v;
    }
    Ok(Json(engine.store.update_team(&team).await?))
}

pub async fn webhook_secret(
    State(engine): State<Arc<Engine>>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<Json<WebhookSecret>> {
    let team = managed(&engine, &p, &name).await?;
    let key = webhooks::server_key(&engine.home.root)
        .map_err(|e| ApiErr::internal(format!("{}: {e}", webhooks::KEY_FILE)))?;
    Ok(Json(WebhookSecret {
        secret: webhooks::team_secret(&key, &team.name),
        team: team.name,
    }))
}

/// A new task's team rules (`POST /v1/tasks`): the team must exist, the model be on its list;
/// the task's dollar budget is capped by the team's per-task cap (the caller then checks that
/// the daemon can enforce what results: `super::tasks::enforceable`).
pub(crate) async fn admit_task(
    engine: &Engine,
    team: Option<&str>,
    model: Option<&str>,
    max_usd: Option<f64>,
) -> ApiResult<policy::Admission> {
    let model = model.or(engine.config.worker_model.as_deref());
    policy::admit(
        engine.store.as_ref(),
        &engine.config.aliases,
        team,
        model,
        max_usd,
    )
    .await
    .map_err(|e| match e {
        policy::Refusal::NoTeam(name) => invalid_field(
            format!("no team named {name}"),
            Some(&format!(
                "`drover team create {name}` makes it; `drover team ls` lists teams"
            )),
        ),
        e @ policy::Refusal::Model { .. } => invalid_field(
            e.to_string(),
            Some("pick one of the team's models, or `drover team update` its list"),
        ),
        policy::Refusal::Store(e) => e.into(),
    })
}
