//! Starting a task: its sandbox, its agent's command line and environment, its shim.

use super::agent_env::{drover_env, grant_policy, task_key};
use super::confine;
use super::finish::finish;
use super::terminal::fail;
use super::Engine;
use drover_agents::{Adapter, LaunchContext};
use drover_sandbox::{Resolved, Sandbox};
use drover_shim::{spawn_shim, ExitInfo, LaunchFile};
use drover_store::{now, StoreError, TaskPatch, TaskRecord};
use drover_types::{ErrorKind, MeteredBy, TaskState};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;

/// Prepares the sandbox and starts the shim. `None` when the task ended instead.
pub(crate) async fn start(
    engine: &Arc<Engine>,
    task: &TaskRecord,
    adapter: &dyn Adapter,
) -> Result<Option<()>, StoreError> {
    let id = task.id.as_str();
    if let Some(why) = engine.host.refusal() {
        // Queued before the host lost a feature (or by an older daemon): never unconfined.
        fail(engine, task, ErrorKind::SandboxError, why).await?;
        return Ok(None);
    }
    let started = task.started_at.clone().unwrap_or_else(now);
    // A requeued attempt starts from the work an earlier one delivered (see prepare_sandbox).
    let data = match earlier_work(engine, task).await {
        Some(_) => json!({ "from": task.branch }),
        None => json!({}),
    };
    let patch = TaskPatch::new()
        .state(TaskState::Preparing, data)
        .started_at(Some(started))
        .isolation(Some(engine.config.confinement.isolation));
    match engine
        .update(id, Some(&[TaskState::Queued]), patch, vec![])
        .await
    {
        Ok(_) => {}
        Err(StoreError::WrongState { .. }) => return Ok(None),
        Err(e) => return Err(e),
    }
    // A ready record from an earlier attempt must not be mistaken for this one's (see recover).
    match std::fs::remove_file(engine.home.task(id).ready()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(task = id, "removing the last attempt's ready record: {e}"),
    }
    if engine.gateway.is_none() {
        // Accepted by a daemon that had the gateway; this one has none: never run it unmetered.
        let policy = grant_policy(engine, task).await;
        if task.budget.max_usd.is_some()
            || task.budget.max_tokens.is_some()
            || policy.pool_usd.is_some()
            || policy.team_usd_per_day.is_some()
        {
            let why = "this task's budget cannot be enforced: drover's gateway is off (the daemon \
                       has no provider key, or DROVER_GATEWAY=off)";
            fail(engine, task, ErrorKind::BudgetExceeded, why).await?;
            return Ok(None);
        }
    }
    let sandbox_started = std::time::SystemTime::now();
    let prepared = prepare_sandbox(engine, task).await;
    let sandbox_attrs = vec![
        opentelemetry::KeyValue::new("drover.task.id", task.id.clone()),
        opentelemetry::KeyValue::new("drover.repo", task.repo.clone()),
    ];
    let sandbox_error = prepared.as_ref().err().map(|e| e.to_string());
    super::trace::child_span(
        engine,
        task,
        "sandbox",
        sandbox_started,
        sandbox_attrs,
        sandbox_error,
    )
    .await;
    let sandbox = match prepared {
        Ok(sb) => sb,
        Err(e) => {
            let kind = match e {
                drover_sandbox::SandboxError::Git { .. } => ErrorKind::GitError,
                _ => ErrorKind::SandboxError,
            };
            fail(engine, task, kind, &e.to_string()).await?;
            return Ok(None);
        }
    };
    let mut patch = TaskPatch::new()
        .sandbox(Some(sandbox.path.display().to_string()))
        .sandbox_kind(Some(sandbox.kind));
    let repo_dir = sandbox.repo_dir.display().to_string();
    if drover_sandbox::is_url(&task.repo) && task.repo_dir.as_deref() != Some(repo_dir.as_str()) {
        // A URL repo resolved into this worker's own mirror.
        patch = patch.repo_dir(Some(repo_dir));
    }
    let task = engine.update(id, None, patch, vec![]).await?.0;
    if task.stop_requested {
        let ended = ExitInfo {
            code: None,
            signal: None,
            spawn_error: Some("stopped before start".into()),
        };
        finish(engine, id, adapter, ended).await?;
        return Ok(None);
    }
    let resume = task.attempt > 1
        && adapter.capabilities().resumable
        && task
            .session_id
            .as_deref()
            .is_some_and(|s| adapter.can_resume(resume_dir(engine, id).as_deref(), s));
    let ctx = LaunchContext {
        task_id: id.to_string(),
        prompt: task.prompt.clone(),
        model: task.model.clone(),
        cmd: task.cmd.clone(),
        cwd: sandbox.path.clone(),
        session_id: task.session_id.clone().unwrap_or_default(),
        resume,
        binary: (adapter.capabilities().binary).and_then(|b| engine.config.agent_binary(b)),
        permission_prompts: true,
    };
    let spec = match adapter.launch(&ctx) {
        Ok(s) => s,
        Err(e) => {
            let ended = ExitInfo {
                code: None,
                signal: None,
                spawn_error: Some(e.to_string()),
            };
            finish(engine, id, adapter, ended).await?;
            return Ok(None);
        }
    };
    // From an allow-list (see crate::child_env): the shim starts with exactly this.
    let mut env = engine
        .config
        .inherited
        .for_agent(adapter.env_passthrough(), engine.gateway.is_some());
    env.extend(spec.env);
    env.extend(drover_env(engine, id));
    // W3C trace context: the agent's own telemetry joins the run's trace (docs/design.md §10).
    env.push(super::trace::traceparent_env(engine, &task).await);
    let env_remove = spec.env_remove;
    if let Some(link) = &engine.gateway {
        // The agent talks to the gateway with a task token; the real keys stay in the daemon.
        env.extend(link.grant(
            &task,
            &grant_policy(engine, &task).await,
            task_key(engine, &task.id),
        ));
        let patch = TaskPatch::new().metered_by(Some(MeteredBy::Gateway));
        engine.update(id, None, patch, vec![]).await?;
    }
    // Confined (docs/design.md §11): the jail the shim builds for the agent.
    let jail = match confine::confined(engine) {
        true => {
            let binary = ctx.binary.as_deref();
            match confine::jail_spec(engine, id, &sandbox.path, &mut env, binary, true) {
                Ok(spec) => Some(spec),
                Err(e) => {
                    let why = format!("could not prepare the task's jail: {e}");
                    fail(engine, &task, ErrorKind::SandboxError, &why).await?;
                    return Ok(None);
                }
            }
        }
        false => None,
    };
    let mut args = spec.args;
    if jail.is_some() {
        adapter.confine_args(&mut args);
    }
    // The task's cgroup, with its limits, before anything of the agent runs (limits fail closed).
    // Confined, a "shared" service (claude-bg's supervisor) lives and ends in the task's own
    // namespaces: it is the task's, so it gets the task's group and limits.
    let shared = adapter.starts_shared_service() && jail.is_none();
    let cgroup_procs = match super::limits::prepare(engine, &task, shared).await {
        Ok(procs) => procs,
        Err(why) => {
            fail(engine, &task, ErrorKind::SandboxError, &why).await?;
            return Ok(None);
        }
    };
    let launch = LaunchFile {
        program: spec.program,
        args,
        cwd: sandbox.path.clone(),
        env_remove,
        stdin_lines: spec.stdin_lines,
        close_stdin: spec.close_stdin,
        keep_detached: shared,
        jail,
        cgroup_procs,
    };
    // The task's own sockets (control endpoint, gateway relay, egress proxy) exist before
    // its agent does.
    if let Err(e) = super::endpoints::open(engine, id) {
        fail(engine, &task, ErrorKind::SandboxError, &e.to_string()).await?;
        return Ok(None);
    }
    super::workspace::set_origins(engine, &task, &sandbox).await;
    let files = engine.home.task(id);
    match spawn_shim(&engine.config.exe, &files, &launch, &env).await {
        Ok((mut child, ready)) => {
            // Reap the shim when it exits while this daemon lives. At shutdown stop waiting: the
            // shim and its agent keep running (the next daemon re-adopts them); the dropped
            // handle is reaped by tokio's orphan queue, or by init once this process is gone.
            let stopping = engine.stopping();
            engine.tasks.spawn(async move {
                tokio::select! {
                    _ = child.wait() => {}
                    _ = stopping.cancelled() => {}
                }
            });
            if let Some(err) = ready.error {
                let ended = ExitInfo {
                    code: None,
                    signal: None,
                    spawn_error: Some(err),
                };
                finish(engine, id, adapter, ended).await?;
                return Ok(None);
            }
            let patch = TaskPatch::new()
                .state(TaskState::Running, json!({ "pid": ready.pid }))
                .shim_pid(Some(ready.shim_pid))
                .shim_start(Some(ready.shim_start))
                .pid(Some(ready.pid))
                .pgid(Some(ready.pgid))
                .agent_start(Some(ready.agent_start))
                .turns_sent(Some(task.turns_done + 1));
            engine
                .update(id, Some(&[TaskState::Preparing]), patch, vec![])
                .await?;
            Ok(Some(()))
        }
        Err(e) => {
            fail(
                engine,
                &task,
                ErrorKind::AgentExit,
                &format!("could not start the shim: {e}"),
            )
            .await?;
            Ok(None)
        }
    }
}

/// Where Claude Code keeps this task's sessions: a confined agent's private config dir, else
/// the daemon's.
pub(crate) fn resume_dir(engine: &Engine, id: &str) -> Option<PathBuf> {
    match confine::confined(engine) {
        true => Some(confine::claude_config_dir(engine, id)),
        false => engine.config.claude_config_dir.clone(),
    }
}

pub(crate) async fn prepare_sandbox(
    engine: &Engine,
    task: &TaskRecord,
) -> Result<Sandbox, drover_sandbox::SandboxError> {
    if !task.repos.is_empty() {
        return super::workspace::prepare(engine, task).await;
    }
    if let Some(sb) = engine.sandboxes.load(&task.id).await? {
        return Ok(sb);
    }
    let url = drover_sandbox::is_url(&task.repo);
    let mut resolved = match (&task.repo_dir, &task.base_commit) {
        // A URL's mirror is the creating worker's (under its DROVER_HOME): another worker
        // resolves the URL into its own mirror, at the same commit.
        (Some(dir), Some(commit))
            if !url || std::path::Path::new(dir).starts_with(&engine.home.root) =>
        {
            Resolved {
                source: task.repo.clone(),
                repo_dir: PathBuf::from(dir),
                commit: commit.clone(),
            }
        }
        (_, Some(commit)) if url => engine.sandboxes.resolve(&task.repo, commit).await?,
        _ => engine.sandboxes.resolve(&task.repo, &task.base_ref).await?,
    };
    if let Some(head) = earlier_work(engine, task).await {
        resolved.commit = head;
    }
    engine.sandboxes.prepare(&task.id, &resolved).await
}

/// The head of the task branch, when an earlier attempt delivered work to it in the
/// repository this worker sees (e.g. committed from the sandbox of a lost run on this host):
/// a requeued attempt starts from it rather than from the base commit.
async fn earlier_work(engine: &Engine, task: &TaskRecord) -> Option<String> {
    // A multi-repo task starts again from its base commits (docs/design.md §9).
    if task.attempt <= 1
        || !task.repos.is_empty()
        || engine
            .sandboxes
            .load(&task.id)
            .await
            .ok()
            .flatten()
            .is_some()
    {
        return None;
    }
    let dir = task.repo_dir.as_deref()?;
    if drover_sandbox::is_url(&task.repo)
        && !std::path::Path::new(dir).starts_with(&engine.home.root)
    {
        return None;
    }
    let out = drover_sandbox::git_command()
        .args(["-C", dir, "rev-parse", "--verify", "-q"])
        .arg(format!("refs/heads/{}^{{commit}}", task.branch))
        .output()
        .await
        .ok()?;
    let sha = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !sha.is_empty()).then_some(sha)
}
