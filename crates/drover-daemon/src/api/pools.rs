//! `/v1/pools…` handlers.

use super::auth::Principal;
use super::body::ApiJson;
use super::ApiErr;
use crate::engine::Engine;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use drover_store::{NewPool, PoolRecord, StoreError};
use drover_types::{PoolRequest, PoolState, PoolStopRequest};
use serde_json::{json, Value};
use std::sync::Arc;

type ApiResult<T> = Result<T, ApiErr>;

/// `pool show` lists this many of the pool's latest events.
const POOL_EVENTS: i64 = 200;
/// A pool list row's prompt and cmd are cut to this many characters (as task summaries are).
const SUMMARY_CHARS: usize = 500;

async fn view(engine: &Engine, pool: &PoolRecord, with_events: bool) -> ApiResult<Value> {
    let stats = engine
        .store
        .pool_stats(&pool.name, engine.config.soft_fail_counts)
        .await?;
    let mut v = serde_json::to_value(pool).unwrap_or_default();
    if let (Some(obj), Value::Object(s)) = (
        v.as_object_mut(),
        serde_json::to_value(&stats).unwrap_or_default(),
    ) {
        obj.extend(s);
        if with_events {
            obj.insert(
                "events".into(),
                serde_json::to_value(engine.store.pool_events(&pool.name, POOL_EVENTS).await?)
                    .unwrap_or_default(),
            );
        } else {
            // A list row is a summary: long texts cut (`pool show` has them whole).
            for k in ["prompt", "cmd"] {
                if let Some(Value::String(s)) = obj.get_mut(k) {
                    if s.chars().count() > SUMMARY_CHARS {
                        *s = format!("{}…", s.chars().take(SUMMARY_CHARS).collect::<String>());
                    }
                }
            }
        }
    }
    Ok(v)
}

pub async fn create(
    State(engine): State<Arc<Engine>>,
    Extension(principal): Extension<Principal>,
    ApiJson(mut req): ApiJson<PoolRequest>,
) -> ApiResult<Json<Value>> {
    ApiErr::confinable(&engine)?;
    req.repo = engine
        .repo_source(&req.repo)
        .map_err(|e| ApiErr::invalid(e.to_string()))?;
    super::access::check_repo_on(&engine, &principal, &req.repo)?;
    super::access::check_team_repo(&engine, principal.team(), &req.repo).await?;
    if req.name.is_empty()
        || !req
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(ApiErr::invalid(
            "a pool name uses letters, digits, '-', '_' and '.'",
        ));
    }
    if let Some(refusal) = req
        .pr
        .as_ref()
        .and_then(|_| crate::engine::publish::pr_needs_forge(&engine, &req.repo))
    {
        return Err(ApiErr::new(
            drover_types::ApiErrorKind::InvalidField,
            refusal,
            Some("configure the forge in config.toml, or leave out --pr"),
        ));
    }
    if req.slots == 0 {
        return Err(ApiErr::invalid("--slots must be at least 1"));
    }
    let agent = req
        .agent
        .clone()
        .unwrap_or_else(|| drover_agents::DEFAULT_AGENT.into());
    let capabilities = drover_agents::adapter(&agent)
        .map_err(|e| ApiErr::invalid(e.to_string()))?
        .capabilities();
    if capabilities.needs_cmd && req.cmd.as_deref().is_none_or(|c| c.trim().is_empty()) {
        return Err(ApiErr::invalid(format!("the {agent} agent needs --cmd")));
    }
    drover_types::validate::prompt_for(&agent, capabilities.prompt_arg_max, &req.prompt)
        .map_err(ApiErr::invalid)?;
    drover_types::validate::max_usd(req.max_usd).map_err(ApiErr::invalid)?;
    // The team's rules, as for a task: the model on its list; its per-task cap (which each of
    // the pool's tasks gets, `engine::pools`) and daily budget need the gateway.
    let team =
        super::teams::admit_task(&engine, principal.team(), req.model.as_deref(), None).await?;
    super::tasks::enforceable(
        &engine,
        req.max_usd.is_some() || team.max_usd.is_some(),
        team.team_daily_budget,
    )?;
    super::tasks::prompt_size(&req.prompt)?;
    if req.count == Some(0) {
        return Err(ApiErr::invalid(
            "--count 0: give at least 1 (or leave it out)",
        ));
    }
    let failure_policy = req.on_failures.unwrap_or_default();
    if req.max_failures == Some(0) {
        return Err(ApiErr::invalid("--max-failures must be at least 1"));
    }
    let (timeout_secs, stall_timeout_secs) =
        super::tasks::clocks(&engine, req.timeout_secs, req.stall_timeout_secs)?;
    let limits = super::tasks::limits(&engine, req.memory_bytes, req.cpus, req.pids)?;
    let own_protect = super::protect::compile(&req.protect)?;
    let base_ref = req.base_ref.clone().unwrap_or_else(|| "HEAD".into());
    let resolved = engine.sandboxes.resolve(&req.repo, &base_ref).await?;
    super::access::check_base(
        &engine,
        &principal,
        &req.repo,
        &base_ref,
        &resolved.repo_dir,
        &resolved.commit,
    )
    .await?;
    let warnings = super::protect::unmatched(&engine, &resolved, &own_protect).await;
    let permissions = req.permissions.unwrap_or(engine.config.permissions);
    let pool = NewPool {
        name: req.name.clone(),
        slots: req.slots as i64,
        prompt: req.prompt.clone(),
        repo: req.repo.clone(),
        base_ref,
        agent,
        cmd: req.cmd.clone(),
        model: req.model.clone(),
        judge_model: req.judge_model.clone(),
        permissions,
        count_total: req.count.map(|c| c as i64),
        max_failures: req.max_failures.unwrap_or(3) as i64,
        notify: req.notify.clone(),
        verify: req.verify.clone(),
        verify_rounds: req.verify_rounds.unwrap_or(2) as i64,
        max_usd: req.max_usd,
        allowed_models: (!req.allowed_models.is_empty()).then(|| req.allowed_models.clone()),
        failure_policy,
        timeout_secs,
        stall_timeout_secs,
        protect: engine.config.protect_for(&req.protect),
        limits,
        // A key's pool is its team's (docs/design.md §7); the owner's has none.
        team: principal.team().map(str::to_string),
        pr: req.pr.clone(),
    };
    let pool = match engine.store.create_pool(pool).await {
        Ok(p) => p,
        Err(StoreError::Exists(name)) => {
            return Err(ApiErr::new(
                drover_types::ApiErrorKind::Conflict,
                format!("pool {name} already exists"),
                Some("choose another name, or `drover pool resume` it"),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    engine
        .store
        .pool_event(&pool.name, "state", json!({ "state": PoolState::Running }))
        .await?;
    engine.wake.notify_one();
    let mut v = view(&engine, &pool, false).await?;
    if let (Some(obj), false) = (v.as_object_mut(), warnings.is_empty()) {
        obj.insert("warnings".into(), json!(warnings));
    }
    Ok(Json(v))
}

pub async fn list(
    State(engine): State<Arc<Engine>>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<Json<Vec<Value>>> {
    let mut out = vec![];
    let pools = engine.store.list_pools().await?;
    // A key lists its team's pools only.
    for p in pools.iter().filter(|p| principal.sees(p.team.as_deref())) {
        out.push(view(&engine, p, false).await?);
    }
    Ok(Json(out))
}

pub async fn show(
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let p = engine.store.get_pool(&name).await?;
    Ok(Json(view(&engine, &p, true).await?))
}

pub async fn stop(
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
    body: Option<ApiJson<PoolStopRequest>>,
) -> ApiResult<Json<Value>> {
    let hard = body.map(|b| b.0.hard).unwrap_or(false);
    let p = engine.store.get_pool(&name).await?;
    let p = engine
        .store
        .set_pool_state(
            &p.name,
            PoolState::Stopped,
            Some("stopped by request"),
            false,
        )
        .await?;
    crate::engine::trace::pool_ended(&engine, &p);
    engine
        .store
        .pool_event(
            &p.name,
            "state",
            json!({ "state": PoolState::Stopped, "hard": hard }),
        )
        .await?;
    if hard {
        crate::engine::pools::stop_tasks(&engine, &p.name).await?;
    }
    Ok(Json(view(&engine, &p, false).await?))
}

pub async fn resume(
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    ApiErr::confinable(&engine)?;
    let p = engine.store.get_pool(&name).await?;
    let p = engine
        .store
        .set_pool_state(&p.name, PoolState::Running, None, true)
        .await?;
    engine
        .store
        .pool_event(
            &p.name,
            "state",
            json!({ "state": PoolState::Running, "resumed": true }),
        )
        .await?;
    engine.wake.notify_one();
    Ok(Json(view(&engine, &p, false).await?))
}
