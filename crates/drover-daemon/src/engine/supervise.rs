//! One supervisor per live task: queued → preparing → running ⇄ needs_input → terminal.
//!
//! A supervisor holds no state the store does not have: it can be dropped at any await (daemon
//! shutdown or crash) and a new one, in a new daemon, carries on from the task row.

use super::{control, gates, ingest, judge, Engine};
use drover_agents::{Adapter, LaunchContext};
use drover_sandbox::{Resolved, Sandbox};
use drover_shim::{proc, spawn_shim, ExitInfo, LaunchFile};
use drover_store::{now, StoreError, TaskPatch, TaskRecord};
use drover_types::{ErrorKind, EventKind, NewEvent, Outcome, TaskState, Verdict};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

const ACTIVE: &[TaskState] = &[
    TaskState::Preparing,
    TaskState::Running,
    TaskState::NeedsInput,
    TaskState::Verifying,
];

/// How the agent's run ended, as the supervisor saw it.
enum Ended {
    Exited(ExitInfo),
    /// The shim died without writing exit.json (host or shim killed).
    Lost(String),
    /// The daemon is shutting down; the agent keeps running.
    Detached,
}

pub async fn run(engine: &Arc<Engine>, id: &str) {
    // A supervisor keeps no state of its own, so a transient store error (busy, disk full) is
    // retried rather than failing a task whose agent may be alive and working.
    let mut result = drive(engine, id).await;
    let mut tries = 0u64;
    while let Err(e) = &result {
        tries += 1;
        if tries > 5 || engine.is_stopping() {
            break;
        }
        tracing::warn!(task = id, "supervisor: {e}; retrying");
        tokio::time::sleep(Duration::from_secs(tries)).await;
        result = drive(engine, id).await;
    }
    if let (Err(e), false) = (&result, engine.is_stopping()) {
        tracing::error!(task = id, "supervisor gave up: {e}");
        give_up(engine, id, &e.to_string()).await;
    }
    if let (Some(link), Ok(t)) = (&engine.gateway, engine.store.get_task(id).await) {
        if !t.state.is_active() {
            link.revoke(id);
            if t.state.is_terminal() {
                engine
                    .task_keys
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(id);
            }
        }
    }
}

/// The last resort: end the agent (only its own processes), keep its work, fail the task.
async fn give_up(engine: &Arc<Engine>, id: &str, why: &str) {
    if let Ok(t) = engine.store.get_task(id).await {
        if let (Some(pgid), Some(sid)) = (t.pgid, t.shim_pid) {
            proc::signal_members(pgid, sid, nix::sys::signal::Signal::SIGKILL);
        }
    }
    let commit = commit_work(engine, id, "work kept after an internal error").await;
    let outcome = Outcome::fail(
        ErrorKind::SandboxError,
        format!("drover internal error: {why}"),
    );
    let patch = TaskPatch::new()
        .state(TaskState::Failed, json!({ "reason": outcome.reason }))
        .outcome(Some(&outcome))
        .finished_at(Some(now()));
    let (patch, events) = apply_commit(patch, commit);
    let _ = engine.update(id, Some(ACTIVE), patch, events).await;
}

async fn drive(engine: &Arc<Engine>, id: &str) -> Result<(), StoreError> {
    let task = engine.store.get_task(id).await?;
    let adapter = match drover_agents::adapter(&task.agent) {
        Ok(a) => a,
        Err(e) => {
            return fail(engine, &task, ErrorKind::AgentExit, &e.to_string()).await;
        }
    };
    if task.state == TaskState::Preparing && task.shim_pid.is_none() && !files_ready(engine, id) {
        // A start that failed half-way (store error): back to the queue, as after a restart.
        let patch =
            TaskPatch::new().state(TaskState::Queued, json!({ "reason": "retrying the start" }));
        engine
            .update(id, Some(&[TaskState::Preparing]), patch, vec![])
            .await?;
        return Ok(());
    }
    if task.state == TaskState::Queued {
        match start(engine, &task, adapter.as_ref()).await? {
            Some(()) => {}
            None => return Ok(()),
        }
    } else if !task.state.is_active() {
        return Ok(());
    } else if let Some(link) = &engine.gateway {
        // Re-adopted after a restart: its agent still holds the (derived) token.
        link.grant(
            &task,
            &grant_policy(engine, &task).await,
            task_key(engine, &task.id),
        );
    }
    let ended = watch(engine, id, adapter.as_ref()).await?;
    match ended {
        Ended::Detached => Ok(()),
        Ended::Lost(why) => interrupted(engine, id, &why).await,
        Ended::Exited(exit) => finish(engine, id, adapter.as_ref(), exit).await,
    }
}

/// Prepares the sandbox and starts the shim. `None` when the task ended instead.
async fn start(
    engine: &Arc<Engine>,
    task: &TaskRecord,
    adapter: &dyn Adapter,
) -> Result<Option<()>, StoreError> {
    let id = task.id.as_str();
    let started = task.started_at.clone().unwrap_or_else(now);
    let patch = TaskPatch::new()
        .state(TaskState::Preparing, json!({}))
        .started_at(Some(started));
    match engine
        .update(id, Some(&[TaskState::Queued]), patch, vec![])
        .await
    {
        Ok(_) => {}
        Err(StoreError::WrongState { .. }) => return Ok(None),
        Err(e) => return Err(e),
    }
    // A ready record from an earlier attempt must not be mistaken for this one's (see recover).
    let _ = std::fs::remove_file(engine.home.task(id).ready());
    let sandbox = match prepare_sandbox(engine, task).await {
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
    let patch = TaskPatch::new()
        .sandbox(Some(sandbox.path.display().to_string()))
        .sandbox_kind(Some(sandbox.kind.as_str().to_string()));
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
    let resume = task.attempt > 0
        && matches!(adapter.name(), "claude" | "claude-bg")
        && task
            .session_id
            .as_deref()
            .is_some_and(drover_agents::claude::transcript_exists);
    let ctx = LaunchContext {
        task_id: id.to_string(),
        prompt: task.prompt.clone(),
        model: task.model.clone(),
        cmd: task.cmd.clone(),
        cwd: sandbox.path.clone(),
        session_id: task.session_id.clone().unwrap_or_default(),
        resume,
        binary: engine.config.claude_bin.clone(),
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
    let mut env = spec.env;
    env.extend(drover_env(engine, id));
    let mut env_remove = spec.env_remove;
    if let Some(link) = &engine.gateway {
        // The agent talks to the gateway with a task token; the real keys stay in the daemon.
        env.extend(link.grant(
            &task,
            &grant_policy(engine, &task).await,
            task_key(engine, &task.id),
        ));
        env_remove.extend(crate::gateway::SECRET_VARS.iter().map(|s| s.to_string()));
        env_remove.retain(|k| !env.iter().any(|(e, _)| e == k));
        let patch = TaskPatch::new().metered_by(Some("gateway".into()));
        engine.update(id, None, patch, vec![]).await?;
    }
    let launch = LaunchFile {
        program: spec.program,
        args: spec.args,
        cwd: sandbox.path.clone(),
        env_remove,
        stdin_lines: spec.stdin_lines,
        close_stdin: spec.close_stdin,
    };
    let files = engine.home.task(id);
    match spawn_shim(&engine.config.exe, &files, &launch, &env).await {
        Ok((mut child, ready)) => {
            // Reap the shim when it exits while this daemon lives; after a restart, init does.
            tokio::spawn(async move {
                let _ = child.wait().await;
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

/// What an agent (or gate) needs to reach this daemon from its sandbox (e.g. `drover lock`).
fn task_key(engine: &Engine, id: &str) -> Option<String> {
    engine
        .task_keys
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(id)
        .cloned()
}

fn files_ready(engine: &Engine, id: &str) -> bool {
    engine.home.task(id).read_ready().is_some()
}

/// The budgets and model list a task's pool and team impose (see `[teams.NAME]` in config).
async fn grant_policy(engine: &Engine, task: &TaskRecord) -> crate::gateway::GrantPolicy {
    let pool = match task.pool.as_deref() {
        Some(name) => engine.store.get_pool(name).await.ok(),
        None => None,
    };
    let team = task
        .team
        .as_deref()
        .and_then(|t| engine.config.teams.get(t));
    let lists: Vec<&Vec<String>> = [
        pool.as_ref().and_then(|p| p.allowed_models.as_ref()),
        team.and_then(|t| t.allowed_models.as_ref()),
    ]
    .into_iter()
    .flatten()
    .collect();
    let allowed_models = match lists.as_slice() {
        [] => None,
        [one] => Some((*one).clone()),
        [a, b, ..] => Some(a.iter().filter(|m| b.contains(m)).cloned().collect()),
    };
    crate::gateway::GrantPolicy {
        pool_usd: pool.and_then(|p| p.max_usd),
        team_usd_per_day: team.and_then(|t| t.max_usd_per_day),
        allowed_models,
    }
}

pub fn drover_env(engine: &Engine, id: &str) -> Vec<(String, String)> {
    let mut env = vec![
        ("DROVER_TASK_ID".to_string(), id.to_string()),
        (
            "DROVER_HOME".to_string(),
            engine.home.root.display().to_string(),
        ),
        (
            "DROVER_BIN".to_string(),
            engine.config.exe.display().to_string(),
        ),
    ];
    if let Some(dir) = engine.config.exe.parent() {
        let path = std::env::var("PATH").unwrap_or_default();
        env.push(("PATH".to_string(), format!("{}:{path}", dir.display())));
    }
    env
}

async fn prepare_sandbox(
    engine: &Engine,
    task: &TaskRecord,
) -> Result<Sandbox, drover_sandbox::SandboxError> {
    if let Some(sb) = engine.sandboxes.load(&task.id).await? {
        return Ok(sb);
    }
    let resolved = match (&task.repo_dir, &task.base_commit) {
        (Some(dir), Some(commit)) => Resolved {
            source: task.repo.clone(),
            repo_dir: PathBuf::from(dir),
            commit: commit.clone(),
        },
        _ => engine.sandboxes.resolve(&task.repo, &task.base_ref).await?,
    };
    engine.sandboxes.prepare(&task.id, &resolved).await
}

/// Follows the agent until it exits, its shim dies, or the daemon stops.
async fn watch(engine: &Arc<Engine>, id: &str, adapter: &dyn Adapter) -> Result<Ended, StoreError> {
    let files = engine.home.task(id);
    let poke = engine.poke(id);
    let mut stopping = engine.stopping();
    let mut idle = Duration::from_millis(5);
    let mut known = None;
    loop {
        if engine.is_stopping() {
            return Ok(Ended::Detached);
        }
        let exit = files.read_exit();
        let (task, progressed) = ingest::step(engine, id, adapter, known.take()).await?;
        if !task.state.is_active() {
            return Ok(Ended::Detached);
        }
        if let Some(exit) = exit {
            // exit.json is written after the agent's last byte: one more step drains the logs.
            while ingest::drain(engine, id, adapter).await? {}
            return Ok(Ended::Exited(exit));
        }
        let acted = control::settle(engine, &task, adapter).await;
        if let (Some(pid), Some(start)) = (task.shim_pid, task.shim_start) {
            if !proc::same_process(pid, start) && files.read_exit().is_none() {
                // Nobody owns the agent's stdin any more: end it rather than orphan it — only
                // members of its group in the dead shim's session, never a reused group id.
                if let Some(pgid) = task.pgid {
                    proc::signal_members(pgid, pid, nix::sys::signal::Signal::SIGKILL);
                }
                while ingest::drain(engine, id, adapter).await? {}
                return Ok(Ended::Lost(format!(
                    "the shim (pid {pid}) died without an exit record"
                )));
            }
        }
        idle = if progressed {
            Duration::from_millis(5)
        } else {
            (idle * 2).min(Duration::from_millis(100))
        };
        let poked = tokio::select! {
            _ = poke.notified() => true,
            _ = stopping.changed() => true,
            _ = tokio::time::sleep(idle) => false,
        };
        // The cached row is only good while nothing but this loop's ingest could change it.
        if !poked && !acted && !progressed {
            known = Some(task);
        }
    }
}

async fn fail(
    engine: &Engine,
    task: &TaskRecord,
    kind: ErrorKind,
    reason: &str,
) -> Result<(), StoreError> {
    let outcome = Outcome::fail(kind, reason);
    let patch = TaskPatch::new()
        .state(TaskState::Failed, json!({ "reason": reason }))
        .outcome(Some(&outcome))
        .finished_at(Some(now()));
    let ev = NewEvent::new(
        EventKind::Error,
        json!({ "message": reason, "error_kind": kind.as_str() }),
    );
    let (patch, mut kept) = if task.sandbox.is_some() {
        apply_commit(
            patch,
            commit_work(engine, &task.id, "work kept after a failure").await,
        )
    } else {
        (patch, vec![])
    };
    let mut from = ACTIVE.to_vec();
    from.push(TaskState::Queued);
    kept.insert(0, ev);
    engine.update(&task.id, Some(&from), patch, kept).await?;
    Ok(())
}

/// The shim died with the agent: `interrupted`; then, by policy, back to the queue to resume.
/// When it will not resume, its work is committed before the state becomes terminal.
async fn interrupted(engine: &Arc<Engine>, id: &str, why: &str) -> Result<(), StoreError> {
    let task = engine.store.get_task(id).await?;
    let outcome = Outcome::fail(ErrorKind::LostHost, why);
    let resumable =
        matches!(task.agent.as_str(), "claude" | "claude-bg") && task.session_id.is_some();
    let resume = engine.config.on_interrupt == "resume"
        && resumable
        && task.attempt < 3
        && !task.stop_requested;
    if resume {
        // Both transitions in one write, so no reader sees a terminal `interrupted` that is
        // about to be requeued.
        let interrupted = NewEvent::new(
            EventKind::State,
            json!({ "state": "interrupted", "reason": why }),
        );
        let patch = TaskPatch::new()
            .state(
                TaskState::Queued,
                json!({ "reason": "resume after interruption" }),
            )
            .pid(None)
            .pgid(None)
            .shim_pid(None)
            .shim_start(None)
            .agent_start(None)
            .pending_input(None)
            .inc_attempt();
        engine
            .update(id, Some(ACTIVE), patch, vec![interrupted])
            .await?;
        return Ok(());
    }
    let commit = commit_work(engine, id, "interrupted").await;
    let patch = TaskPatch::new()
        .state(TaskState::Interrupted, json!({ "reason": why }))
        .outcome(Some(&outcome))
        .finished_at(Some(now()))
        .pid(None)
        .pgid(None);
    let (patch, events) = apply_commit(patch, commit);
    engine.update(id, Some(ACTIVE), patch, events).await?;
    Ok(())
}

/// Decides the outcome, commits the work and moves the task to its terminal state.
async fn finish(
    engine: &Arc<Engine>,
    id: &str,
    adapter: &dyn Adapter,
    exit: ExitInfo,
) -> Result<(), StoreError> {
    let task = engine.store.get_task(id).await?;
    let last_result = last_result(engine, id).await?;
    let mut outcome =
        if task.stop_requested && task.stop_reason.as_deref() == Some("budget_exceeded") {
            Outcome::fail(
                ErrorKind::BudgetExceeded,
                "a budget is spent; the gateway refused the next request",
            )
        } else if task.stop_requested {
            Outcome::fail(ErrorKind::Cancelled, "stopped by request")
        } else {
            structured(adapter, &exit, last_result.as_ref(), &task)
        };
    if outcome.error_kind.is_none() {
        if let Some(failed) = gate_failure(engine, &task, adapter).await? {
            outcome = Outcome::fail(ErrorKind::GateFailed, failed);
        }
    }
    let result = match (adapter.multi_turn(), &task.result) {
        (_, Some(r)) => Some(r.clone()),
        (false, None) => last_text(engine, id).await?,
        _ => None,
    };
    let summary = task
        .name
        .clone()
        .unwrap_or_else(|| first_line(&task.prompt));
    let commit = commit_work(engine, id, &summary).await;
    if let Err(e) = &commit {
        if outcome.error_kind.is_none() || outcome.error_kind == Some(ErrorKind::AgentExit) {
            outcome = Outcome::fail(ErrorKind::GitError, e.clone());
        }
    }
    let mut events = vec![];
    if outcome.verdict == Verdict::Success {
        let sha = commit
            .as_ref()
            .ok()
            .and_then(|c| c.as_ref())
            .map(|(sha, _)| sha.as_str());
        if let Some(judged) = ask_judge(engine, &task, result.as_deref(), sha, &mut events).await? {
            outcome = judged;
        }
    }
    let state = match (&outcome.error_kind, outcome.verdict) {
        (Some(ErrorKind::Cancelled), _) => TaskState::Cancelled,
        (_, Verdict::Success) => TaskState::Succeeded,
        _ => TaskState::Failed,
    };
    let patch = TaskPatch::new()
        .state(state, json!({ "reason": outcome.reason }))
        .outcome(Some(&outcome))
        .result(result)
        .finished_at(Some(now()))
        .pid(None)
        .pgid(None)
        .pending_input(None);
    let (patch, mut commit_events) = apply_commit(patch, commit);
    events.append(&mut commit_events);
    match engine.update(id, Some(ACTIVE), patch, events).await {
        Ok(_) | Err(StoreError::WrongState { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Why the gates failed, if they did. Single-turn agents run theirs here, after they exited.
async fn gate_failure(
    engine: &Engine,
    task: &TaskRecord,
    adapter: &dyn Adapter,
) -> Result<Option<String>, StoreError> {
    if task.verify.is_empty() || task.gate_status.as_deref() == Some("passed") {
        return Ok(None);
    }
    let failed = if task.gate_status.as_deref() == Some("failed") {
        let last = last_of(engine, &task.id, EventKind::Gate).await?;
        Some(last.map_or_else(
            || "a gate failed".to_string(),
            |g| {
                format!(
                    "gate `{}` failed (exit {})",
                    g["command"].as_str().unwrap_or(""),
                    g["exit_code"]
                )
            },
        ))
    } else {
        // Gates that have not run for the last turn run now: single-turn agents always get
        // here, and a multi-turn agent that exited right after its result must not skip them.
        let patch = TaskPatch::new().state(TaskState::Verifying, json!({}));
        engine.update(&task.id, Some(ACTIVE), patch, vec![]).await?;
        let runs = gates::run_all(engine, task).await?;
        runs.iter().find(|r| !r.passed()).map(|r| {
            let code = r
                .exit_code
                .map(|c| c.to_string())
                .unwrap_or_else(|| "none".into());
            format!("gate `{}` failed (exit {code})", r.command)
        })
    };
    let rounds = if adapter.multi_turn() {
        format!(" after {} feedback rounds", task.gate_rounds)
    } else {
        String::new()
    };
    Ok(failed.map(|f| format!("{f}{rounds}")))
}

/// Asks the judge when one is configured; `None` keeps the structured success.
async fn ask_judge(
    engine: &Engine,
    task: &TaskRecord,
    result: Option<&str>,
    commit: Option<&str>,
    events: &mut Vec<NewEvent>,
) -> Result<Option<Outcome>, StoreError> {
    let Some(model) = task
        .judge_model
        .clone()
        .or_else(|| engine.config.judge_model.clone())
    else {
        return Ok(None);
    };
    let gates: Vec<serde_json::Value> = engine
        .store
        .events(&task.id, 0, i64::MAX)
        .await?
        .into_iter()
        .filter(|e| e.kind == EventKind::Gate)
        .map(|e| e.data)
        .collect();
    let diff = match (commit, &task.base_commit, &task.repo_dir) {
        (Some(c), Some(base), Some(dir)) => diff_stat(dir, base, c).await,
        _ => "unknown".into(),
    };
    let input = judge::JudgeInput {
        model: &model,
        prompt: &task.prompt,
        final_message: result.unwrap_or(""),
        gates: &gates,
        diff_summary: &diff,
        endpoint: engine.gateway.as_ref().map(|g| g.judge_endpoint(task)),
    };
    match judge::judge(&input).await {
        Ok(o) => {
            events.push(NewEvent::new(
                EventKind::Result,
                json!({ "judge": { "model": model, "verdict": o.verdict.as_str(), "reason": o.reason } }),
            ));
            Ok(Some(o))
        }
        Err(e) => {
            events.push(NewEvent::new(
                EventKind::Error,
                json!({ "message": format!("judge: {e}; the structured outcome stands") }),
            ));
            Ok(None)
        }
    }
}

async fn diff_stat(repo: &str, base: &str, commit: &str) -> String {
    let out = tokio::process::Command::new("git")
        .args(["-C", repo, "diff", "--stat", base, commit])
        .output()
        .await;
    match out {
        Ok(o) if o.status.success() => {
            let s = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if s.is_empty() {
                "no changes".into()
            } else {
                drover_agents::excerpt(&s, 4000)
            }
        }
        _ => "unknown".into(),
    }
}

/// Commits the sandbox's work to the task branch and removes the sandbox. On failure the
/// sandbox stays for inspection and the error says where.
pub(crate) async fn commit_work(
    engine: &Engine,
    id: &str,
    summary: &str,
) -> Result<Option<(String, String)>, String> {
    let sb = match engine.sandboxes.load(id).await {
        Ok(Some(sb)) => sb,
        // Already committed and removed (e.g. a crash between removing the sandbox and writing
        // the terminal state): the branch in the user's repository is the commit.
        Ok(None) => return Ok(delivered_head(engine, id).await),
        Err(e) => return Err(e.to_string()),
    };
    let message = format!("drover: {summary}\n\nTask: {id}\n");
    match engine.sandboxes.finish(&sb, &message).await {
        Ok(Some(sha)) => Ok(Some((sha, sb.branch.clone()))),
        Ok(None) => Ok(None),
        Err(e) => Err(format!("{e} (sandbox kept at {})", sb.path.display())),
    }
}

/// `drover/<id>` in the task's repository, if it is there.
async fn delivered_head(engine: &Engine, id: &str) -> Option<(String, String)> {
    let task = engine.store.get_task(id).await.ok()?;
    let dir = task.repo_dir?;
    let out = tokio::process::Command::new("git")
        .args([
            "-C",
            &dir,
            "rev-parse",
            "--verify",
            "-q",
            &format!("refs/heads/{}", task.branch),
        ])
        .output()
        .await
        .ok()?;
    let sha = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !sha.is_empty()).then_some((sha, task.branch))
}

pub(crate) fn apply_commit(
    patch: TaskPatch,
    commit: Result<Option<(String, String)>, String>,
) -> (TaskPatch, Vec<NewEvent>) {
    match commit {
        Ok(Some((sha, branch))) => (
            patch.commit(Some(sha.clone())).sandbox(None),
            vec![NewEvent::new(
                EventKind::Commit,
                json!({ "commit": sha, "branch": branch }),
            )],
        ),
        Ok(None) => (patch.sandbox(None), vec![]),
        Err(e) => (
            patch,
            vec![NewEvent::new(
                EventKind::Error,
                json!({ "message": e, "error_kind": "git_error" }),
            )],
        ),
    }
}

/// Structured signals only: exit status and the agent's own result fields. No text matching.
fn structured(
    adapter: &dyn Adapter,
    exit: &ExitInfo,
    result: Option<&serde_json::Value>,
    task: &TaskRecord,
) -> Outcome {
    if let Some(err) = &exit.spawn_error {
        let hint = if adapter.name() == "claude" {
            " (install Claude Code or set DROVER_CLAUDE_BIN; `drover doctor` checks)"
        } else {
            ""
        };
        return Outcome::fail(ErrorKind::AgentExit, format!("{err}{hint}"));
    }
    if !adapter.multi_turn() {
        return if exit.success() {
            Outcome::success("command exited 0")
        } else {
            Outcome::fail(ErrorKind::AgentExit, exit.describe())
        };
    }
    let Some(r) = result else {
        return Outcome::fail(
            ErrorKind::AgentExit,
            format!("{} before its turn ended", exit.describe()),
        );
    };
    let s = |k: &str| {
        r.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let is_error = r.get("is_error").and_then(|v| v.as_bool()).unwrap_or(false);
    let subtype = s("subtype");
    let stop_reason = s("stop_reason");
    let errors: Vec<String> = r
        .get("errors")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|e| e.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if stop_reason == "max_tokens" || stop_reason == "model_context_window_exceeded" {
        return Outcome::fail(
            ErrorKind::Truncated,
            format!("the model's answer was cut off ({stop_reason})"),
        );
    }
    if is_error || (!subtype.is_empty() && subtype != "success") {
        let kind = match subtype.as_str() {
            "error_max_budget_usd" => ErrorKind::BudgetExceeded,
            _ if r.get("api_error_status").is_some_and(|v| !v.is_null()) => {
                ErrorKind::ProviderError
            }
            _ => ErrorKind::AgentExit,
        };
        let text = if errors.is_empty() {
            task.result.clone().unwrap_or_default()
        } else {
            errors.join("; ")
        };
        return Outcome::fail(kind, format!("{subtype}: {text}"));
    }
    if !exit.success() && exit.code != Some(0) && task.turns_done < task.turns_sent {
        return Outcome::fail(ErrorKind::AgentExit, exit.describe());
    }
    Outcome::success("the agent finished its turn")
}

async fn last_result(engine: &Engine, id: &str) -> Result<Option<serde_json::Value>, StoreError> {
    last_of(engine, id, EventKind::Result).await
}

async fn last_text(engine: &Engine, id: &str) -> Result<Option<String>, StoreError> {
    Ok(last_of(engine, id, EventKind::Text)
        .await?
        .and_then(|d| d.get("text").and_then(|t| t.as_str()).map(String::from)))
}

async fn last_of(
    engine: &Engine,
    id: &str,
    kind: EventKind,
) -> Result<Option<serde_json::Value>, StoreError> {
    let mut after = 0;
    let mut found = None;
    loop {
        let page = engine.store.events(id, after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        if let Some(e) = page.iter().rev().find(|e| e.kind == kind) {
            found = Some(e.data.clone());
        }
    }
    Ok(found)
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or_default();
    drover_agents::excerpt(line, 72)
}
