//! `/v1/tasks…` handlers.

use super::auth::Principal;
use super::body::{ApiJson, ApiQuery};
use super::task_request;
use super::ApiErr;
use crate::engine::{control, new_task_id, Engine};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use drover_store::{
    Idempotency, Idempotent, ListFilter, NewTask, StoreError, TaskFilter, TaskRecord,
};
use drover_types::{
    Budget, RunRequest, SendRequest, Task, TaskPage, EVENTS_MAX_LIMIT, EVENTS_PAGE_BYTES,
    LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT, MAX_PROMPT_BYTES,
};
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::locks::Locks;

type ApiResult<T> = Result<T, ApiErr>;

pub(super) async fn view(engine: &Engine, t: &TaskRecord) -> Task {
    let pos = if t.state == drover_types::TaskState::Queued {
        engine
            .store
            .queued()
            .await
            .ok()
            .and_then(|q| q.iter().position(|id| id == &t.id))
            .map(|p| p as u64 + 1)
    } else {
        None
    };
    let mut task = t.to_task(pos);
    task.locks = Locks::of_task(&engine.locks.all().await, &t.id);
    task
}

/// `POST /v1/tasks` (docs/design.md §7): 201 with the task; with an `Idempotency-Key` already
/// used for the same body, 200 with that task (409 for another body); a malformed body is a 400,
/// a well-formed but wrong value a 422 (`invalid_field`), another team a 403.
pub async fn create(
    State(engine): State<Arc<Engine>>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> ApiResult<Response> {
    let idem_key = task_request::idempotency_key(&headers)?;
    let provider_key = task_request::provider_key(&headers)?;
    task_request::check_size(&body)?;
    let body_hash = task_request::body_hash(&body);
    let mut req = task_request::parse(body)?;
    if provider_key.is_some() {
        req.api_key = provider_key;
    }
    super::access::bind_task(&principal, &mut req)?;
    ApiErr::confinable(&engine)?;
    prompt_size(&req.prompt)?;
    let (task, warnings) = admit(&engine, &principal, &mut req).await?;
    let idem = idem_key.map(|key| Idempotency {
        scope: task_request::idempotency_scope(&principal),
        key,
        body_hash,
        not_before: (chrono::Utc::now() - chrono::Duration::hours(task_request::IDEMPOTENCY_HOURS))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    let mut last = None;
    for attempt in 0..5 {
        let mut task = task.clone();
        if attempt > 0 {
            task.id = new_task_id();
            super::task_repos::rename(&mut task);
        }
        // The key is in place before the task exists, so the scheduler never grants without it.
        let id = task.id.clone();
        let keys = || engine.task_keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(key) = req.api_key.clone().map(|k| k.0).filter(|k| !k.is_empty()) {
            keys().insert(id.clone(), key);
        }
        let made = match &idem {
            None => engine
                .store
                .create_task(task)
                .await
                .map(Idempotent::Created),
            Some(idem) => engine.store.create_task_idempotent(task, idem).await,
        };
        let (t, status) = match made {
            Ok(Idempotent::Created(t)) => (t, StatusCode::CREATED),
            Ok(Idempotent::Replayed(t)) => {
                keys().remove(&id);
                (t, StatusCode::OK)
            }
            Ok(Idempotent::Conflict(other)) => {
                keys().remove(&id);
                return Err(ApiErr::new(
                    drover_types::ApiErrorKind::Conflict,
                    format!("this Idempotency-Key was used for another request (task {other})"),
                    Some("use a new Idempotency-Key for a different request"),
                ));
            }
            // An id collision (8 random hex digits) just tries another id.
            Err(e @ StoreError::Db(_)) => {
                keys().remove(&id);
                last = Some(e);
                continue;
            }
            Err(e) => {
                keys().remove(&id);
                return Err(e.into());
            }
        };
        let mut task = view(&engine, &t).await;
        if status == StatusCode::CREATED {
            engine.wake.notify_one();
            task.warnings = warnings;
        }
        return Ok((status, Json(task)).into_response());
    }
    Err(last
        .map(ApiErr::from)
        .unwrap_or_else(|| ApiErr::invalid("could not create the task")))
}

/// One task's admission, the same for `POST /v1/tasks` and each repository of
/// `POST /v1/batches`: the repo through [`Engine::repo_source`] (written back into `req`), the
/// caller's repo rules (`check_repo`, the team's `allowed_repos`), the values and the team's
/// rules ([`prepare`]), and the base commit's visibility to a key. Nothing is stored.
pub(super) async fn admit(
    engine: &Engine,
    principal: &Principal,
    req: &mut RunRequest,
) -> ApiResult<(NewTask, Vec<String>)> {
    super::task_repos::normalize(req)?;
    req.repo = engine
        .repo_source(&req.repo)
        .map_err(|e| ApiErr::invalid(e.to_string()))?;
    super::access::check_repo_on(engine, principal, &req.repo)?;
    super::access::check_team_repo(engine, req.team.as_deref(), &req.repo).await?;
    let other_repos = super::task_repos::sources(engine, principal, req).await?;
    let (mut task, warnings) = prepare(engine, req)
        .await
        .map_err(task_request::as_field_error)?;
    super::task_repos::fill(engine, principal, &mut task, &other_repos).await?;
    if let (Some(dir), Some(commit)) = (&task.repo_dir, &task.base_commit) {
        let dir = std::path::Path::new(dir);
        super::access::check_base(engine, principal, &task.repo, &task.base_ref, dir, commit)
            .await
            .map_err(task_request::as_field_error)?;
    }
    Ok((task, warnings))
}

/// Checks a request's values and resolves its repo and ref: the task to insert (with a fresh
/// id) and warnings for the answer. Every refusal here is of a value (the caller makes it a 422).
async fn prepare(engine: &Engine, req: &RunRequest) -> ApiResult<(NewTask, Vec<String>)> {
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
    use drover_types::validate;
    validate::prompt_for(&agent, capabilities.prompt_arg_max, &req.prompt)
        .map_err(ApiErr::invalid)?;
    let budget = req.budget().map_err(ApiErr::invalid)?;
    validate::max_usd(budget.max_usd).map_err(ApiErr::invalid)?;
    validate::max_tokens(budget.max_tokens).map_err(ApiErr::invalid)?;
    task_request::check_tags(&req.tags).map_err(ApiErr::invalid)?;
    if let Some(refusal) = req
        .pr
        .as_ref()
        .and_then(|_| crate::engine::publish::pr_needs_forge(engine, &req.repo))
    {
        return Err(ApiErr::new(
            drover_types::ApiErrorKind::Invalid,
            refusal,
            Some("configure the forge in config.toml, or leave out --pr"),
        ));
    }
    // The team's rules (from the store): it exists, the model is on its list, its per-task cap.
    let team = super::teams::admit_task(
        engine,
        req.team.as_deref(),
        req.model.as_deref(),
        budget.max_usd,
    )
    .await?;
    let max_usd = team.max_usd;
    enforceable(
        engine,
        budget.max_usd.is_some() || budget.max_tokens.is_some(),
        team.team_daily_budget || max_usd.is_some(),
    )?;
    let model = req
        .model
        .clone()
        .or_else(|| engine.config.worker_model.clone());
    let permissions = req.permissions.unwrap_or(engine.config.permissions);
    let (timeout_secs, stall_timeout_secs) =
        clocks(engine, req.timeout_secs, req.stall_timeout_secs)?;
    let limits = limits(engine, req.memory_bytes, req.cpus, req.pids)?;
    let own_protect = super::protect::compile(&req.protect)?;
    let protect = engine.config.protect_for(&req.protect);
    let base_ref = req.base_ref.clone().unwrap_or_else(|| "HEAD".into());
    let resolved = engine.sandboxes.resolve(&req.repo, &base_ref).await?;
    let warnings = super::protect::unmatched(engine, &resolved, &own_protect).await;
    let session_id = capabilities
        .session_id_up_front
        .then(|| uuid::Uuid::new_v4().to_string());
    let task = NewTask {
        id: new_task_id(),
        name: req.name.clone(),
        agent: agent.clone(),
        model,
        repo: req.repo.clone(),
        repo_dir: Some(resolved.repo_dir.display().to_string()),
        base_ref,
        base_commit: Some(resolved.commit.clone()),
        prompt: req.prompt.clone(),
        cmd: req.cmd.clone(),
        verify: req.verify.clone(),
        verify_rounds: req.verify_rounds.unwrap_or(2) as i64,
        judge_model: req.judge_model.clone(),
        protect,
        permissions,
        budget: Budget {
            max_usd,
            max_tokens: budget.max_tokens,
        },
        session_id,
        pool: None,
        team: req.team.clone(),
        created_by: req.created_by.clone(),
        tags: req.tags.clone(),
        timeout_secs,
        stall_timeout_secs,
        limits,
        runs_on: engine.runs_on(&req.repo),
        repos: vec![],
        pr: req.pr.clone(),
        batch: None,
    };
    Ok((task, warnings))
}

/// A prompt over [`MAX_PROMPT_BYTES`] is a 413 (tasks and pools).
pub(crate) fn prompt_size(prompt: &str) -> ApiResult<()> {
    if prompt.len() > MAX_PROMPT_BYTES {
        return Err(ApiErr::new(
            drover_types::ApiErrorKind::TooLarge,
            format!(
                "the prompt is {} bytes; the limit is {} MiB",
                prompt.len(),
                MAX_PROMPT_BYTES >> 20
            ),
            Some("put the details in a file in the repository and point the prompt at it"),
        ));
    }
    Ok(())
}

/// Money fails closed: budgets are enforced by drover's gateway, so with the gateway off a task
/// or pool with a budget (its own, or its team's daily one) is refused, never run unmetered.
pub(crate) fn enforceable(engine: &Engine, own: bool, team_budget: bool) -> ApiResult<()> {
    if engine.gateway.is_none() && (own || team_budget) {
        let (what, hint) = if own {
            ("this budget", "start the daemon with ANTHROPIC_API_KEY or OPENAI_API_KEY in its environment, or run without a budget")
        } else {
            ("the team's budget (its max_usd_per_day or max_usd_per_task)", "start the daemon with ANTHROPIC_API_KEY or OPENAI_API_KEY in its environment, or run without a team (money fails closed: a budget nothing can enforce refuses)")
        };
        return Err(ApiErr::new(
            drover_types::ApiErrorKind::Invalid,
            format!("{what} cannot be enforced: drover's gateway is off (the daemon has no provider key, or DROVER_GATEWAY=off)"),
            Some(hint),
        ));
    }
    Ok(())
}

/// A request's clocks with the config's defaults; a bad one is a 400 naming the flag.
pub(crate) fn clocks(
    engine: &Engine,
    timeout: Option<u64>,
    stall: Option<u64>,
) -> ApiResult<(Option<i64>, Option<i64>)> {
    crate::engine::clocks::resolve(&engine.config, timeout, stall).map_err(|e| {
        ApiErr::new(
            drover_types::ApiErrorKind::Invalid,
            e,
            Some("give a positive duration in whole seconds, such as 30s, 10m or 1h30m"),
        )
    })
}

/// A request's limits (`memory_bytes`, `cpus`, `pids`) over the config's `[sandbox]` defaults;
/// a bad one is a 400 naming the flag.
pub(crate) fn limits(
    engine: &Engine,
    memory_bytes: Option<u64>,
    cpus: Option<f64>,
    pids: Option<u64>,
) -> ApiResult<drover_types::Limits> {
    let asked = drover_types::Limits {
        memory_bytes,
        cpus,
        pids,
    };
    drover_types::validate::limits(&asked).map_err(ApiErr::invalid)?;
    Ok(crate::engine::limits::effective(
        &engine.config.confinement.limits,
        &asked,
    ))
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    all: bool,
    limit: Option<usize>,
    cursor: Option<String>,
    state: Option<drover_types::TaskState>,
    pool: Option<String>,
    team: Option<String>,
    /// `NAME:VALUE`
    tag: Option<String>,
}

/// One page of summaries (see [`TaskPage`]). Without `all` and without any filter (`state`,
/// `pool`, `team`, `tag`), only active tasks and those finished in the last hour (`drover ls`);
/// with one, every task that matches. A key sees only its own team's tasks: `team=` of
/// another team is an empty page (never whether that team has tasks).
pub async fn list(
    State(engine): State<Arc<Engine>>,
    Extension(principal): Extension<Principal>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<TaskPage>> {
    let limit = q.limit.unwrap_or(LIST_DEFAULT_LIMIT);
    if limit == 0 || limit > LIST_MAX_LIMIT {
        return Err(ApiErr::invalid(format!(
            "limit {limit}: use 1 to {LIST_MAX_LIMIT}"
        )));
    }
    let after = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => 0,
        Some(c) => c.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            ApiErr::new(
                drover_types::ApiErrorKind::Invalid,
                format!(
                    "cursor {:?} is not one this API gave out",
                    drover_types::text::excerpt(c, drover_types::text::Limit::Chars(40))
                ),
                Some("use the `next_cursor` of the previous page, or leave `cursor` out"),
            )
        })?,
    };
    let tag = match q.tag.as_deref() {
        None => None,
        Some(t) => match t.split_once(':') {
            Some((k, v)) if !k.is_empty() => Some((k.to_string(), v.to_string())),
            _ => {
                return Err(ApiErr::new(
                    drover_types::ApiErrorKind::Invalid,
                    "tag must be NAME:VALUE",
                    Some("e.g. tag=customer:acme"),
                ))
            }
        },
    };
    let team = match (principal.team(), q.team) {
        (None, team) => team,
        (Some(own), Some(asked)) if asked != own => {
            return Ok(Json(TaskPage {
                tasks: vec![],
                next_cursor: None,
            }))
        }
        (Some(own), _) => Some(own.to_string()),
    };
    let narrowed = q.state.is_some() || q.pool.is_some() || tag.is_some() || team.is_some();
    let narrow = TaskFilter {
        state: q.state,
        pool: q.pool,
        team,
        tag,
    };
    let since = (chrono::Utc::now() - chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let filter = if q.all || narrowed {
        ListFilter::All
    } else {
        ListFilter::ActiveOrFinishedSince
    };
    let page = engine
        .store
        .list_page(filter, &since, &narrow, after, limit as i64)
        .await?;
    let next_cursor = (page.len() == limit)
        .then(|| page.last().map(|t| t.queue_seq.to_string()))
        .flatten();
    let queued = engine.store.queued().await?;
    let locks = engine.locks.all().await;
    // Belt and braces: the query is already narrowed to a key's team.
    let tasks = page
        .iter()
        .filter(|t| principal.sees(t.team.as_deref()))
        .map(|t| {
            let pos = queued
                .iter()
                .position(|id| id == &t.id)
                .map(|p| p as u64 + 1);
            let mut task = t.to_task(pos);
            task.locks = Locks::of_task(&locks, &t.id);
            task
        })
        .collect();
    Ok(Json(TaskPage { tasks, next_cursor }))
}

pub async fn show(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Task>> {
    let t = engine.store.find_task(&id).await?;
    Ok(Json(view(&engine, &t).await))
}

#[derive(Deserialize)]
pub struct EventsQuery {
    #[serde(default)]
    after: i64,
    #[serde(default, deserialize_with = "flag")]
    follow: bool,
    /// Events per answer without `follow` (default and most: [`EVENTS_MAX_LIMIT`]); the next
    /// page is `after` = the last `seq`.
    limit: Option<usize>,
    /// JSON only: the `limit` events just before this seq (in seq order); the next older page
    /// is `before` = the first `seq` ([`super::event_pages`]).
    before: Option<i64>,
}

/// A query flag: `true`/`false` or `1`/`0`.
fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let s = <String as Deserialize>::deserialize(d)?;
    match s.as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" | "" => Ok(false),
        other => Err(serde::de::Error::custom(format!(
            "{:?} is not a flag: use true, false, 1 or 0",
            drover_types::text::excerpt(other, drover_types::text::Limit::Chars(20))
        ))),
    }
}

/// Where a follower resumes: `?after=SEQ`, or the SSE `Last-Event-ID` header a reconnecting
/// client sends (the larger wins, so neither can replay what the other already skipped). The
/// second value says whether the header was given.
fn resume_after(headers: &HeaderMap, after: i64) -> ApiResult<(i64, bool)> {
    let Some(v) = headers.get("last-event-id") else {
        return Ok((after, false));
    };
    let last = v
        .to_str()
        .ok()
        .map(str::trim)
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|n| *n >= 0)
        .ok_or_else(|| {
            ApiErr::new(
                drover_types::ApiErrorKind::Invalid,
                "Last-Event-ID must be an event seq (a whole number)",
                Some("send the `id:` of the last event received"),
            )
        })?;
    Ok((after.max(last), true))
}

/// Whether the client asked for SSE: `?follow=1`, or `Accept: text/event-stream`.
fn wants_sse(headers: &HeaderMap, follow: bool) -> bool {
    follow
        || headers
            .get_all(axum::http::header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains("text/event-stream"))
}

/// `GET /v1/tasks/{id}/events`: JSON pages, or SSE (docs/design.md §7): `id:` = seq, `event:` =
/// kind, `data:` = the event; replay after `Last-Event-ID`/`after`, then live, then one `end`
/// event (`{"state": …}`) once the task is terminal and every event is sent; heartbeat comments
/// every 15 s. A resume point beyond the task's last event is a 400.
pub async fn events(
    State(engine): State<Arc<Engine>>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    cookie: Option<Extension<crate::web::ViaCookie>>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> ApiResult<Response> {
    let limit = q.limit.unwrap_or(EVENTS_MAX_LIMIT);
    if limit == 0 || limit > EVENTS_MAX_LIMIT {
        return Err(ApiErr::invalid(format!(
            "limit {limit}: use 1 to {EVENTS_MAX_LIMIT}"
        )));
    }
    if q.after < 0 {
        return Err(ApiErr::new(
            drover_types::ApiErrorKind::Invalid,
            format!("after {}: give an event seq (0 or more)", q.after),
            Some("resume from the `id:` of the last event received"),
        ));
    }
    let (after, from_header) = resume_after(&headers, q.after)?;
    let task = engine.store.find_task(&id).await?;
    let sse = wants_sse(&headers, q.follow);
    if let Some(before) = q.before {
        let evs = super::event_pages::before(&engine, &task, before, q.after, sse, limit).await?;
        return Ok(Json(evs).into_response());
    }
    let last = task.next_seq - 1;
    if after > last && (from_header || sse) {
        let what = if from_header {
            "Last-Event-ID"
        } else {
            "after"
        };
        return Err(ApiErr::new(
            drover_types::ApiErrorKind::Invalid,
            format!("{what} {after} is beyond the task's last event ({last})"),
            Some("resume from the `id:` of an event this task's stream sent"),
        ));
    }
    if !sse {
        let evs = engine
            .store
            .events_page(&task.id, after, limit as i64, EVENTS_PAGE_BYTES)
            .await?;
        return Ok(Json(evs).into_response());
    }
    let key = principal.key_id().map(str::to_string);
    let session = cookie.map(|Extension(c)| c);
    // `drover_sse_followers{stream="task"}` counts this stream until its body is dropped.
    let follower = engine
        .telemetry
        .metrics
        .sse_follower(crate::telemetry::labels::SseStream::Task);
    let stream = futures::StreamExt::map(follow(engine, task.id, after, key, session), move |e| {
        let _follower = &follower;
        e
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// Events an SSE follower reads per batch, and at most about this many bytes of them.
const FOLLOW_BATCH: i64 = 200;
const FOLLOW_BATCH_BYTES: usize = 256 << 10;
/// SSE events queued for a client ahead of what it has read. With the batch, a client that
/// never reads costs the daemon at most about 256 KiB + 4 × 64 KiB (plus socket buffers).
const FOLLOW_QUEUE: usize = 4;
/// How often an open stream of an API key re-checks that the key is still valid.
const KEY_RECHECK: Duration = Duration::from_secs(5);

/// Events after `after` as SSE (id = seq), live, ending with an `end` event once the task is
/// terminal and drained; or closed without `end` when the daemon stops or the task is removed
/// (clients reconnect with `Last-Event-ID` = the last id they saw).
fn follow(
    engine: Arc<Engine>,
    id: String,
    mut after: i64,
    key: Option<String>,
    session: Option<crate::web::ViaCookie>,
) -> impl futures::Stream<Item = Result<SseEvent, Infallible>> {
    let tracker = engine.tasks.clone();
    async_stream(&tracker, move |tx| async move {
        let mut rx = engine.subscribe();
        let stopping = engine.stopping();
        loop {
            // A key revoked, expired or rotated out, or the dashboard's session ended (logout,
            // its 12 hours), while its stream is open: the stream ends (checked before each
            // batch and at least every KEY_RECHECK).
            if !crate::web::session_alive(&engine.web, session.as_ref()) {
                return;
            }
            if let Some(k) = &key {
                let usable = matches!(
                    engine.store.key(k).await,
                    Ok(Some(info)) if super::access::key_usable(&info, &drover_store::now())
                );
                if !usable {
                    return;
                }
            }
            let terminal = match engine.store.get_task(&id).await {
                Ok(t) => t.state.is_terminal(),
                Err(_) => true,
            };
            // One bounded batch at a time: the next is read only once this one is handed on.
            let Ok(evs) = engine
                .store
                .events_page(&id, after, FOLLOW_BATCH, FOLLOW_BATCH_BYTES)
                .await
            else {
                return;
            };
            let n = evs.len();
            for e in evs {
                after = e.seq;
                let data = serde_json::to_string(&e).unwrap_or_default();
                let ev = SseEvent::default()
                    .id(e.seq.to_string())
                    .event(e.kind.as_str())
                    .data(data);
                if tx.send(Ok(ev)).await.is_err() {
                    return;
                }
            }
            if n > 0 {
                // Possibly cut by bytes: ask again until a read comes back empty.
                continue;
            }
            if terminal {
                // Every event is sent (the terminal state's event is written with the state):
                // say how it ended, then close.
                if let Ok(t) = engine.store.get_task(&id).await {
                    let data = serde_json::json!({ "state": t.state }).to_string();
                    let _ = tx
                        .send(Ok(SseEvent::default().event("end").data(data)))
                        .await;
                }
                return;
            }
            if engine.is_stopping() {
                return;
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return },
                _ = stopping.cancelled() => {}
                _ = tokio::time::sleep(KEY_RECHECK), if key.is_some() || session.is_some() => {}
            }
        }
    })
}

/// A stream fed by a task through a channel (keeps the follow loop plain async code).
fn async_stream<F, Fut>(
    tracker: &tokio_util::task::TaskTracker,
    f: F,
) -> impl futures::Stream<Item = Result<SseEvent, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<SseEvent, Infallible>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(FOLLOW_QUEUE);
    tracker.spawn(f(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

#[derive(Deserialize)]
pub struct WaitQuery {
    #[serde(default)]
    timeout: Option<f64>,
}

pub async fn wait(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<WaitQuery>,
) -> ApiResult<Json<Task>> {
    let secs = q.timeout.unwrap_or(30.0);
    if !secs.is_finite() {
        return Err(ApiErr::invalid(format!(
            "timeout {secs}: give seconds from 0 to 300"
        )));
    }
    let task = engine.store.find_task(&id).await?;
    let timeout = Duration::from_secs_f64(secs.clamp(0.0, 300.0));
    let t = match control::wait_terminal(&engine, &task.id, timeout).await? {
        Some(t) => t,
        None => engine.store.get_task(&task.id).await?,
    };
    Ok(Json(view(&engine, &t).await))
}

pub async fn send(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<SendRequest>,
) -> ApiResult<Json<Task>> {
    if req.allow && req.deny {
        return Err(ApiErr::invalid("--allow and --deny exclude each other"));
    }
    if req.message.as_deref().is_some_and(|m| m.trim().is_empty()) {
        return Err(ApiErr::invalid(
            "the message is empty: give the text to send, or --allow|--deny",
        ));
    }
    let t = control::send(&engine, &id, &req).await?;
    Ok(Json(view(&engine, &t).await))
}

pub async fn stop(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Task>> {
    let t = control::stop(&engine, &id).await?;
    Ok(Json(view(&engine, &t).await))
}

pub async fn remove(
    State(engine): State<Arc<Engine>>,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let id = control::remove(&engine, &id).await?;
    Ok(Json(serde_json::json!({ "removed": id })))
}
