//! One supervisor per live task: queued → preparing → running ⇄ needs_input → terminal.
//!
//! A supervisor holds no state the store does not have: it can be dropped at any await (daemon
//! shutdown or crash) and a new one, in a new daemon, carries on from the task row.

use super::agent_env::{grant_policy, task_key};
use super::finish::finish;
use super::start::start;
use super::terminal::{active, apply_commit, commit_work, fail};
use super::{control, ingest, Engine};
use drover_agents::Adapter;
use drover_shim::{proc, ExitInfo};
use drover_store::{now, StoreError, TaskPatch};
use drover_types::{ErrorKind, EventKind, NewEvent, Outcome, TaskState};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// How the agent's run ended, as the supervisor saw it.
enum Ended {
    Exited(ExitInfo),
    /// The shim died without writing exit.json (host or shim killed).
    Lost(String),
    /// The daemon is shutting down; the agent keeps running.
    Detached,
    /// The shim's exit record is of a protocol version this daemon cannot read.
    Unreadable(String),
    /// This worker's claim on the task is gone (see [`super::workers`]).
    LeaseLost,
}

pub async fn run(engine: &Arc<Engine>, id: &str) {
    // A supervisor keeps no state of its own, so a transient store error (busy, disk full) is
    // retried rather than failing a task whose agent may be alive and working.
    let mut result = drive(engine, id).await;
    let mut tries = 0u64;
    while let Err(e) = &result {
        tries += 1;
        // A refused fence is final: another worker holds the task now.
        if tries > 5 || engine.is_stopping() || matches!(e, StoreError::Fenced { .. }) {
            break;
        }
        tracing::warn!(task = id, "supervisor: {e}; retrying");
        tokio::time::sleep(Duration::from_secs(tries)).await;
        result = drive(engine, id).await;
    }
    if matches!(result, Err(StoreError::Fenced { .. })) || engine.is_lost(id) {
        super::workers::lease_lost(engine, id).await;
        return;
    }
    if let (Err(e), false) = (&result, engine.is_stopping()) {
        tracing::error!(task = id, "supervisor gave up: {e}");
        give_up(engine, id, &e.to_string()).await;
    }
    if let Ok(t) = engine.store.get_task(id).await {
        if t.state.is_terminal() {
            // Ended by a path other than finish (a failure, an unreadable shim): its cgroup goes.
            super::limits::collect(engine, id).await;
            engine.telemetry.task_ended(&t);
        }
        if !t.state.is_active() && !engine.is_stopping() {
            super::endpoints::close(engine, id);
        }
    }
    if let (Some(fence), Ok(t)) = (engine.claim_of(id), engine.store.get_task(id).await) {
        // A claim whose task ended, or that the row no longer names, is not this worker's.
        if t.state.is_terminal()
            || t.worker.as_deref() != Some(engine.worker())
            || t.attempt != fence.attempt
        {
            engine.release(id);
        }
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
    if let Err(e) = engine.update(id, Some(&active()), patch, events).await {
        tracing::error!(task = id, "could not record the failure: {e}");
    }
}

async fn drive(engine: &Arc<Engine>, id: &str) -> Result<(), StoreError> {
    if engine.claim_of(id).is_none() {
        // Not held by this worker (another runs it, or nobody claimed it yet).
        return Ok(());
    }
    let task = engine.store.get_task(id).await?;
    // Its trace context, for the gateway's `chat` spans (also of a task re-adopted after a
    // restart).
    super::trace::task_trace(engine, &task).await;
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
        Ended::Detached | Ended::LeaseLost => Ok(()),
        Ended::Lost(why) => interrupted(engine, id, adapter.as_ref(), &why).await,
        Ended::Exited(exit) => finish(engine, id, adapter.as_ref(), exit).await,
        Ended::Unreadable(why) => {
            // Nothing the shim says can be trusted: end what is left of the agent's own group
            // (members in the shim's session only), keep the work, fail saying why.
            let task = engine.store.get_task(id).await?;
            if let (Some(pgid), Some(sid)) = (task.pgid, task.shim_pid) {
                proc::signal_members(pgid, sid, nix::sys::signal::Signal::SIGKILL);
            }
            fail(engine, &task, ErrorKind::AgentExit, &why).await
        }
    }
}

/// Whether a shim announced itself for this attempt (a ready record of a version this daemon
/// cannot read counts: a shim ran, so the task must not start a second agent).
fn files_ready(engine: &Engine, id: &str) -> bool {
    !matches!(engine.home.task(id).read_ready(), Ok(None))
}

/// Follows the agent until it exits, its shim dies, or the daemon stops.
async fn watch(engine: &Arc<Engine>, id: &str, adapter: &dyn Adapter) -> Result<Ended, StoreError> {
    let files = engine.home.task(id);
    let poke = engine.poke(id);
    let stopping = engine.stopping();
    let mut idle = Duration::from_millis(5);
    let mut known = None;
    loop {
        if engine.is_stopping() {
            return Ok(Ended::Detached);
        }
        if engine.is_lost(id) {
            return Ok(Ended::LeaseLost);
        }
        // exit.json is a few hundred bytes: a bounded read, fine on the async worker.
        let exit = match files.read_exit() {
            Ok(exit) => exit,
            Err(e) => return Ok(Ended::Unreadable(e.to_string())),
        };
        let (task, progressed) = ingest::step(engine, id, adapter, known.take()).await?;
        if !task.state.is_active() {
            return Ok(Ended::Detached);
        }
        if let Some(exit) = exit {
            // exit.json is written after the agent's last byte: one more step drains the logs.
            while ingest::drain(engine, id, adapter).await? {}
            return Ok(Ended::Exited(exit));
        }
        super::limits::sample(engine, id);
        let settled = control::settle(engine, &task, adapter).await;
        // Clocks and a requested stop's next step, re-derived from the row every time.
        let acted = super::clocks::tick(engine, &task, adapter).await || settled;
        if let (Some(pid), Some(start)) = (task.shim_pid, task.shim_start) {
            if !proc::same_process(pid, start) && matches!(files.read_exit(), Ok(None)) {
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
            _ = stopping.cancelled() => true,
            _ = tokio::time::sleep(idle) => false,
        };
        // The cached row is only good while nothing but this loop's ingest could change it.
        if !poked && !acted && !progressed {
            known = Some(task);
        }
    }
}

/// The shim died with the agent: `interrupted`; then, by policy, back to the queue to resume.
/// When it will not resume, its work is committed before the state becomes terminal.
async fn interrupted(
    engine: &Arc<Engine>,
    id: &str,
    adapter: &dyn Adapter,
    why: &str,
) -> Result<(), StoreError> {
    let task = engine.store.get_task(id).await?;
    let outcome = Outcome::fail(ErrorKind::LostHost, why);
    let resumable = adapter.capabilities().resumable && task.session_id.is_some();
    let resume = resumable && super::workers::may_resume(engine, &task);
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
            .pending_input(None);
        engine
            .update(id, Some(&active()), patch, vec![interrupted])
            .await?;
        return Ok(());
    }
    let commit = commit_work(engine, id, "interrupted").await;
    // Whatever of it outlived its shim (e.g. what left its session) ends with its cgroup.
    let used = super::limits::collect(engine, id).await.unwrap_or_default();
    let patch = TaskPatch::new()
        .state(TaskState::Interrupted, json!({ "reason": why }))
        .outcome(Some(&outcome))
        .finished_at(Some(now()))
        .pid(None)
        .pgid(None)
        .peak_memory_bytes(
            used.peak_memory_bytes
                .map(|b| b.min(i64::MAX as u64) as i64),
        )
        .cpu_seconds(used.cpu_seconds);
    let (patch, events) = apply_commit(patch, commit);
    engine.update(id, Some(&active()), patch, events).await?;
    Ok(())
}
