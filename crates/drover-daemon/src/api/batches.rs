//! `/v1/batches…` handlers (docs/design.md §9): one prompt, one task per repository, grouped.
//!
//! - `POST /v1/batches` admits every repository exactly as `POST /v1/tasks` admits its one
//!   ([`super::tasks::admit`]: forge resolution, the caller's and the team's repo rules, values,
//!   the base's visibility) — ALL before anything is stored; one bad repository is the 4xx of
//!   that check naming it, and no batch exists. Then the batch and its tasks are one store
//!   transaction. 201 with the [`BatchView`].
//! - `GET /v1/batches`, `GET /v1/batches/{name}`: views (a key: its own team's only; another
//!   team's batch is the 404 of a missing one, `api::access`).
//! - `POST /v1/batches/{name}/stop`: the batch `stopped`, its queued tasks cancelled, its active
//!   ones stopped (the usual escalation); answers once they ended.
//! - `POST /v1/batches/{name}/retry`: a new task for each repository whose latest task failed,
//!   was cancelled or interrupted (succeeded and unfinished ones untouched), made from the
//!   batch's stored options with the repository admitted again; the batch `running` again.
//!
//! Slots (`slots`): the claim skips a batch's task while the batch has that many tasks claimed
//! or active (`drover_store::batches`), on every worker of the store.

use super::auth::Principal;
use super::body::ApiJson;
use super::ApiErr;
use crate::engine::{new_task_id, Engine};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use drover_store::{BatchRecord, NewBatch, NewTask, StoreError, TaskRecord};
use drover_types::{
    check_batch_name, ApiErrorKind, BatchRepo, BatchRequest, BatchRetried, BatchState, BatchView,
    RequestBudget, RunRequest, TaskState,
};
use std::collections::HashSet;
use std::sync::Arc;

type ApiResult<T> = Result<T, ApiErr>;

/// The most repositories one batch takes.
pub const MAX_BATCH_REPOS: usize = 1000;

/// What each task of a batch is asked to run (the fields of a [`RunRequest`] a batch keeps).
struct Template {
    prompt: String,
    base_ref: Option<String>,
    agent: Option<String>,
    cmd: Option<String>,
    model: Option<String>,
    judge_model: Option<String>,
    verify: Vec<String>,
    verify_rounds: Option<u32>,
    budget: Option<RequestBudget>,
    permissions: Option<drover_types::PermissionPolicy>,
    timeout_secs: Option<u64>,
    stall_timeout_secs: Option<u64>,
    protect: Vec<String>,
    team: Option<String>,
    created_by: Option<String>,
}

impl Template {
    fn of_request(r: &BatchRequest) -> Template {
        Template {
            prompt: r.prompt.clone(),
            base_ref: r.base_ref.clone(),
            agent: r.agent.clone(),
            cmd: r.cmd.clone(),
            model: r.model.clone(),
            judge_model: r.judge_model.clone(),
            verify: r.verify.clone(),
            verify_rounds: r.verify_rounds,
            budget: r.budget,
            permissions: r.permissions,
            timeout_secs: r.timeout_secs,
            stall_timeout_secs: r.stall_timeout_secs,
            protect: r.protect.clone(),
            team: r.team.clone(),
            created_by: r.created_by.clone(),
        }
    }

    fn of_record(b: &BatchRecord) -> Template {
        let budget = (b.max_usd.is_some() || b.max_tokens.is_some()).then_some(RequestBudget {
            max_usd: b.max_usd,
            max_tokens: b.max_tokens,
        });
        Template {
            prompt: b.prompt.clone(),
            base_ref: Some(b.base_ref.clone()),
            agent: Some(b.agent.clone()),
            cmd: b.cmd.clone(),
            model: b.model.clone(),
            judge_model: b.judge_model.clone(),
            verify: b.verify.clone(),
            verify_rounds: u32::try_from(b.verify_rounds).ok(),
            budget,
            permissions: Some(b.permissions),
            timeout_secs: b.timeout_secs.and_then(|s| u64::try_from(s).ok()),
            stall_timeout_secs: b.stall_timeout_secs.and_then(|s| u64::try_from(s).ok()),
            protect: b.protect.clone(),
            team: b.team.clone(),
            created_by: b.created_by.clone(),
        }
    }

    fn request(&self, repo: &str) -> RunRequest {
        RunRequest {
            repo: repo.to_string(),
            prompt: self.prompt.clone(),
            base_ref: self.base_ref.clone(),
            agent: self.agent.clone(),
            cmd: self.cmd.clone(),
            model: self.model.clone(),
            judge_model: self.judge_model.clone(),
            verify: self.verify.clone(),
            verify_rounds: self.verify_rounds,
            budget: self.budget,
            permissions: self.permissions,
            timeout_secs: self.timeout_secs,
            stall_timeout_secs: self.stall_timeout_secs,
            protect: self.protect.clone(),
            team: self.team.clone(),
            created_by: self.created_by.clone(),
            ..Default::default()
        }
    }
}

/// An admission error of one repository, naming it (same kind and status).
fn for_repo(repo: &str, mut e: ApiErr) -> ApiErr {
    e.body.error = format!("repo {repo}: {}", e.body.error);
    if e.body.hint.is_none() {
        e.body.hint = Some("fix or drop that repository; nothing was created".into());
    }
    e
}

/// Admits each repository as `POST /v1/tasks` would (all before anything is stored): the tasks
/// to insert (batch and PR set), in the order given; duplicates (after resolution) refused.
async fn admit_all(
    engine: &Engine,
    principal: &Principal,
    template: &Template,
    repos: &[String],
    batch: &BatchFields<'_>,
) -> ApiResult<(Vec<NewTask>, Vec<String>)> {
    let mut tasks = Vec::with_capacity(repos.len());
    let mut warnings = vec![];
    let mut seen = HashSet::new();
    for repo in repos {
        let mut req = template.request(repo);
        // Checked as a task's own `--pr` (a repo on no configured forge: refused).
        req.pr = batch.pr.clone();
        super::access::bind_task(principal, &mut req)?;
        let (mut task, w) = super::tasks::admit(engine, principal, &mut req)
            .await
            .map_err(|e| for_repo(repo, e))?;
        if !seen.insert(task.repo.clone()) {
            return Err(ApiErr::new(
                ApiErrorKind::InvalidField,
                format!("repo {repo}: listed twice (as {})", task.repo),
                Some("list each repository once; nothing was created"),
            ));
        }
        task.batch = Some(batch.name.to_string());
        warnings.extend(w.into_iter().map(|w| format!("repo {repo}: {w}")));
        tasks.push(task);
    }
    Ok((tasks, warnings))
}

struct BatchFields<'a> {
    name: &'a str,
    pr: &'a Option<drover_types::PrOptions>,
}

/// `POST /v1/batches`.
pub async fn create(
    State(engine): State<Arc<Engine>>,
    Extension(principal): Extension<Principal>,
    ApiJson(req): ApiJson<BatchRequest>,
) -> ApiResult<(StatusCode, Json<BatchView>)> {
    check_batch_name(&req.name).map_err(|e| {
        ApiErr::new(
            ApiErrorKind::Invalid,
            e,
            Some("e.g. deps-2026-12 (lower case, digits, '_', '.', '-')"),
        )
    })?;
    if req.repos.is_empty() {
        return Err(ApiErr::new(
            ApiErrorKind::Invalid,
            "a batch needs at least one repository",
            Some("give --repo R (repeatable) or --repos-file F"),
        ));
    }
    if req.repos.len() > MAX_BATCH_REPOS {
        return Err(ApiErr::invalid(format!(
            "{} repositories: a batch takes at most {MAX_BATCH_REPOS}",
            req.repos.len()
        )));
    }
    if req.slots == Some(0) {
        return Err(ApiErr::invalid(
            "--slots must be at least 1 (or leave it out)",
        ));
    }
    ApiErr::confinable(&engine)?;
    super::tasks::prompt_size(&req.prompt)?;
    let template = Template::of_request(&req);
    let fields = BatchFields {
        name: &req.name,
        pr: &req.pr,
    };
    if engine.store.batch(&req.name).await.is_ok() {
        return Err(taken(&req.name));
    }
    let (tasks, warnings) = admit_all(&engine, &principal, &template, &req.repos, &fields).await?;
    let Some(first) = tasks.first() else {
        return Err(ApiErr::invalid("a batch needs at least one repository"));
    };
    let batch = NewBatch {
        name: req.name.clone(),
        team: first.team.clone(),
        created_by: first.created_by.clone(),
        repos: tasks.iter().map(|t| t.repo.clone()).collect(),
        prompt: req.prompt.clone(),
        base_ref: first.base_ref.clone(),
        agent: first.agent.clone(),
        cmd: req.cmd.clone(),
        model: req.model.clone(),
        judge_model: req.judge_model.clone(),
        slots: req.slots.map(i64::from),
        pr: req.pr.clone(),
        permissions: first.permissions,
        verify: req.verify.clone(),
        verify_rounds: first.verify_rounds,
        max_usd: req.budget.and_then(|b| b.max_usd),
        max_tokens: req.budget.and_then(|b| b.max_tokens),
        timeout_secs: first.timeout_secs,
        stall_timeout_secs: first.stall_timeout_secs,
        protect: req.protect.clone(),
    };
    let mut tasks = tasks;
    let mut last = None;
    for _ in 0..3 {
        match engine
            .store
            .create_batch(batch.clone(), tasks.clone())
            .await
        {
            Ok(b) => {
                engine.wake.notify_one();
                let mut view = view(&engine, &b).await?;
                view.warnings = warnings;
                return Ok((StatusCode::CREATED, Json(view)));
            }
            Err(StoreError::Exists(name)) => return Err(taken(&name)),
            // A task id collision (8 random hex digits): fresh ids, all or nothing again.
            Err(e @ StoreError::Db(_)) => {
                last = Some(e);
                for t in &mut tasks {
                    t.id = new_task_id();
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(last
        .map(ApiErr::from)
        .unwrap_or_else(|| ApiErr::internal("could not create the batch")))
}

fn taken(name: &str) -> ApiErr {
    ApiErr::new(
        ApiErrorKind::Conflict,
        format!("batch {name} already exists"),
        Some("choose another name, or `drover batch retry` it"),
    )
}

/// The batch with its tasks folded per repository (in the batch's order): each repository's
/// latest task, its PR, the dollars of all its tasks.
pub(crate) async fn view(engine: &Engine, b: &BatchRecord) -> ApiResult<BatchView> {
    let tasks = engine.store.batch_tasks(&b.name).await?;
    Ok(fold(b, &tasks))
}

fn fold(b: &BatchRecord, tasks: &[TaskRecord]) -> BatchView {
    let mut repos = vec![];
    let (mut running, mut succeeded, mut failed) = (0, 0, 0);
    for repo in &b.repos {
        let mine: Vec<&TaskRecord> = tasks.iter().filter(|t| &t.repo == repo).collect();
        let Some(latest) = mine.last() else { continue };
        match latest.state {
            TaskState::Succeeded => succeeded += 1,
            TaskState::Failed | TaskState::Cancelled | TaskState::Interrupted => failed += 1,
            _ => running += 1,
        }
        repos.push(BatchRepo {
            repo: repo.clone(),
            task: latest.id.clone(),
            state: latest.state,
            outcome: latest.outcome.clone(),
            pr: latest
                .prs
                .iter()
                .find(|p| &p.repo == repo)
                .or(latest.prs.first())
                .cloned(),
            cost_usd: dollars(mine.iter().copied()),
            attempts: u32::try_from(mine.len()).unwrap_or(u32::MAX),
        });
    }
    BatchView {
        name: b.name.clone(),
        state: b.state,
        team: b.team.clone(),
        created_by: b.created_by.clone(),
        created_at: b.created_at.clone(),
        stopped_at: b.stopped_at.clone(),
        prompt: b.prompt.clone(),
        agent: b.agent.clone(),
        cmd: b.cmd.clone(),
        model: b.model.clone(),
        slots: b.slots.and_then(|s| u32::try_from(s).ok()),
        pr: b.pr.clone(),
        tasks: u32::try_from(repos.len()).unwrap_or(u32::MAX),
        running,
        succeeded,
        failed,
        cost_usd: dollars(tasks.iter()),
        repos,
        warnings: vec![],
    }
}

/// The dollars of `tasks` (0 when none has a cost; `Iterator::sum` of no `f64` is -0).
fn dollars<'a>(tasks: impl Iterator<Item = &'a TaskRecord>) -> f64 {
    tasks.filter_map(|t| t.cost_usd).fold(0.0, |a, c| a + c)
}

/// `GET /v1/batches`: every batch (a key: its team's), oldest first.
pub async fn list(
    State(engine): State<Arc<Engine>>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<Json<Vec<BatchView>>> {
    let batches = match &principal {
        Principal::Owner => engine.store.batches(None).await?,
        p => match p.team() {
            Some(team) => engine.store.batches(Some(team)).await?,
            None => vec![],
        },
    };
    let mut out = vec![];
    for b in batches.iter().filter(|b| principal.sees(b.team.as_deref())) {
        out.push(view(&engine, b).await?);
    }
    Ok(Json(out))
}

/// `GET /v1/batches/{name}`.
pub async fn show(
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
) -> ApiResult<Json<BatchView>> {
    let b = engine.store.batch(&name).await?;
    Ok(Json(view(&engine, &b).await?))
}

/// `POST /v1/batches/{name}/stop`: stopped first (so nothing new of it is asked for), then its
/// queued tasks cancelled and its active ones stopped, all at once.
pub async fn stop(
    State(engine): State<Arc<Engine>>,
    Path(name): Path<String>,
) -> ApiResult<Json<BatchView>> {
    engine.store.batch(&name).await?;
    let b = engine
        .store
        .set_batch_state(&name, BatchState::Stopped)
        .await?;
    // Queued ones first (at once, so none starts meanwhile), then the active ones together:
    // each stop escalates over seconds.
    let (queued, active): (Vec<TaskRecord>, Vec<TaskRecord>) = engine
        .store
        .batch_tasks(&name)
        .await?
        .into_iter()
        .filter(|t| !t.state.is_terminal())
        .partition(|t| t.state == TaskState::Queued);
    for t in &queued {
        if let Err(e) = crate::engine::control::stop(&engine, &t.id).await {
            tracing::warn!(
                task = t.id.as_str(),
                batch = name.as_str(),
                "batch stop: {e}"
            );
        }
    }
    let mut stops = tokio::task::JoinSet::new();
    for t in active {
        let engine = engine.clone();
        stops.spawn(async move { crate::engine::control::stop(&engine, &t.id).await });
    }
    while let Some(r) = stops.join_next().await {
        match r {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(batch = name.as_str(), "batch stop: {e}"),
            Err(e) => tracing::warn!(batch = name.as_str(), "batch stop: {e}"),
        }
    }
    Ok(Json(view(&engine, &b).await?))
}

/// `POST /v1/batches/{name}/retry`: 200 with the new task ids (none when nothing failed) and
/// the batch.
pub async fn retry(
    State(engine): State<Arc<Engine>>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<Json<BatchRetried>> {
    ApiErr::confinable(&engine)?;
    let b = engine.store.batch(&name).await?;
    let tasks = engine.store.batch_tasks(&name).await?;
    let failed: Vec<String> = fold(&b, &tasks)
        .repos
        .into_iter()
        .filter(|r| {
            matches!(
                r.state,
                TaskState::Failed | TaskState::Cancelled | TaskState::Interrupted
            )
        })
        .map(|r| r.repo)
        .collect();
    let mut made = vec![];
    if !failed.is_empty() {
        let template = Template::of_record(&b);
        let fields = BatchFields {
            name: &b.name,
            pr: &b.pr,
        };
        let (new, _) = admit_all(&engine, &principal, &template, &failed, &fields).await?;
        made = engine.store.retry_batch(&name, new).await?;
        engine.wake.notify_one();
    }
    let b = engine.store.batch(&name).await?;
    Ok(Json(BatchRetried {
        tasks: made.into_iter().map(|t| t.id).collect(),
        batch: view(&engine, &b).await?,
    }))
}
