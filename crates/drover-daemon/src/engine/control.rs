//! What clients ask of a task (send, answer, stop, remove), and the level-triggered actions a
//! supervisor re-checks on every step (`settle`): answering requests by policy and closing the
//! agent's stdin once its last turn ended.

pub use super::answer::ControlError;
use super::answer::{answer, shim};
use super::Engine;
use drover_agents::Adapter;
use drover_store::{now, StoreError, TaskPatch, TaskRecord};
use drover_types::{
    AnsweredBy, ErrorKind, EventKind, NewEvent, Outcome, PermissionPolicy, SendRequest, StopReason,
    TaskState,
};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Answers a pending request by policy; runs the gates or closes stdin when every turn sent
/// has ended. Returns whether it did anything (the task row may have changed).
pub async fn settle(engine: &Engine, task: &TaskRecord, adapter: &dyn Adapter) -> bool {
    let mut acted = false;
    if let Some(req) = &task.pending_input {
        if task.permissions != PermissionPolicy::Ask {
            let allow = task.permissions == PermissionPolicy::Allow;
            if let Err(e) =
                answer(engine, task, adapter, req, allow, None, AnsweredBy::Policy).await
            {
                tracing::warn!(task = task.id.as_str(), "answer by policy: {e}");
            }
            acted = true;
        }
    }
    let turn_over = adapter.multi_turn()
        && matches!(task.state, TaskState::Running | TaskState::Verifying)
        && task.pending_input.is_none()
        && task.turns_sent > 0
        && task.turns_done >= task.turns_sent
        && !task.stop_requested;
    if turn_over && !task.verify.is_empty() && task.gate_status.is_none() {
        if let Err(e) = super::gates::verify_turn(engine, task, adapter).await {
            tracing::warn!(task = task.id.as_str(), "gates: {e}");
        }
        return true;
    }
    if turn_over {
        let lock = engine.stdin_lock(&task.id);
        let mut st = lock.lock().await;
        if st.closed {
            return acted;
        }
        // Re-read under the lock: a send may have queued another turn meanwhile.
        if let Ok(t) = engine.store.get_task(&task.id).await {
            if t.turns_done >= t.turns_sent && shim(engine, &task.id).close_stdin().await.is_ok() {
                st.closed = true;
                acted = true;
            }
        }
    }
    acted
}

/// `drover send`: a follow-up message, or an answer to the pending permission request.
pub async fn send(
    engine: &Engine,
    id: &str,
    req: &SendRequest,
) -> Result<TaskRecord, ControlError> {
    let task = engine.store.find_task(id).await?;
    if task.state.is_terminal() {
        return Err(ControlError::Conflict(format!(
            "task {} is {}; it takes no more input (start a new task with `drover run`)",
            task.id, task.state
        )));
    }
    if !matches!(task.state, TaskState::Running | TaskState::NeedsInput) {
        return Err(ControlError::Conflict(format!(
            "task {} is {}; send once it is running",
            task.id, task.state
        )));
    }
    // The agent's stdin is its shim's, on the host of the worker running it: refused here
    // before anything is written (an answer recorded but never delivered).
    if let Some(w) = task.worker.as_deref().filter(|w| *w != engine.worker()) {
        return Err(ControlError::Conflict(format!(
            "task {} runs on worker {w}, not on this one ({}): send through worker {w}'s daemon",
            task.id,
            engine.worker()
        )));
    }
    let adapter =
        drover_agents::adapter(&task.agent).map_err(|e| ControlError::Invalid(e.to_string()))?;
    if req.allow || req.deny {
        let Some(pending) = task.pending_input.clone() else {
            return Err(ControlError::Conflict(format!(
                "task {} has no pending permission request",
                task.id
            )));
        };
        answer(
            engine,
            &task,
            adapter.as_ref(),
            &pending,
            req.allow,
            req.message.as_deref(),
            AnsweredBy::User,
        )
        .await?;
        return Ok(engine.store.get_task(&task.id).await?);
    }
    let Some(message) = req.message.as_deref().filter(|m| !m.trim().is_empty()) else {
        return Err(ControlError::Invalid(
            "nothing to send: give a message, --allow or --deny".into(),
        ));
    };
    let line = adapter.user_message(message).ok_or_else(|| {
        ControlError::Invalid(format!(
            "the {} agent takes no messages after it starts",
            task.agent
        ))
    })?;
    let lock = engine.stdin_lock(&task.id);
    let st = lock.lock().await;
    if st.closed {
        return Err(ControlError::Conflict(format!(
            "task {} has finished its last turn and is exiting",
            task.id
        )));
    }
    shim(engine, &task.id)
        .write_line(line)
        .await
        .map_err(|e| ControlError::Agent(e.to_string()))?;
    let ev = NewEvent::new(
        EventKind::Input,
        json!({ "message": message, "by": "user" }),
    );
    let (task, _) = engine
        .update(
            &task.id,
            None,
            TaskPatch::new().inc_turns_sent().gate_status(None),
            vec![ev],
        )
        .await?;
    drop(st);
    Ok(task)
}

/// `drover stop`: polite first (interrupt, close stdin), then INT, TERM, KILL to the group
/// (the supervisor takes the steps, see `clocks::escalate`). Returns once the task is terminal
/// (or when the last signal's grace ran out).
pub async fn stop(engine: &Arc<Engine>, id: &str) -> Result<TaskRecord, ControlError> {
    stop_because(engine, id, StopReason::User).await
}

/// [`stop`], recording why: the outcome follows from it.
pub async fn stop_because(
    engine: &Arc<Engine>,
    id: &str,
    why: StopReason,
) -> Result<TaskRecord, ControlError> {
    let task = engine.store.find_task(id).await?;
    let id = task.id.clone();
    if task.state.is_terminal() {
        return Ok(task);
    }
    if task.state == TaskState::Queued {
        let outcome = Outcome::fail(ErrorKind::Cancelled, "stopped before it started");
        let patch = TaskPatch::new()
            .state(TaskState::Cancelled, json!({ "reason": outcome.reason }))
            .outcome(Some(&outcome))
            .stop_requested(true)
            .stop_reason(Some(why))
            .stop_requested_at(Some(now()))
            .finished_at(Some(now()));
        // A task requeued after an interruption still has its sandbox: keep that work.
        let (patch, events) = if task.sandbox.is_some() {
            let commit =
                super::terminal::commit_work(engine, &id, "stopped before it resumed").await;
            super::terminal::apply_commit(patch, commit)
        } else {
            (patch, vec![])
        };
        match engine
            .update(&id, Some(&[TaskState::Queued]), patch, events)
            .await
        {
            Ok((t, _)) => return Ok(t),
            Err(StoreError::WrongState { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let task = super::clocks::request_stop(engine, &id, why).await?;
    if task.state.is_active() && !engine.is_stopping() {
        // The steps are the supervisor's; an active task always has one (no-op if running).
        engine.supervise(&id);
    }
    // Polite, INT, TERM, KILL, each a grace apart, then the supervisor's finish.
    let limit = engine.config.stop_grace * 5 + Duration::from_secs(30);
    Ok(wait_terminal(engine, &id, limit)
        .await?
        .unwrap_or(engine.store.get_task(&id).await?))
}

/// Waits until the task is terminal; `None` on timeout.
pub async fn wait_terminal(
    engine: &Engine,
    id: &str,
    timeout: Duration,
) -> Result<Option<TaskRecord>, StoreError> {
    let mut rx = engine.subscribe();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let t = engine.store.get_task(id).await?;
        if t.state.is_terminal() {
            return Ok(Some(t));
        }
        tokio::select! {
            r = rx.changed() => if r.is_err() { return Ok(None) },
            _ = tokio::time::sleep_until(deadline) => return Ok(None),
        }
    }
}

/// `drover rm`: stops the task if needed, commits any work left in its sandbox, then forgets it.
/// Refuses (and keeps everything) if the work cannot be committed.
pub async fn remove(engine: &Arc<Engine>, id: &str) -> Result<String, ControlError> {
    let mut task = engine.store.find_task(id).await?;
    let id = task.id.clone();
    if !task.state.is_terminal() {
        task = stop(engine, &id).await?;
        if !task.state.is_terminal() {
            return Err(ControlError::Conflict(format!(
                "task {id} did not stop; try again"
            )));
        }
    }
    // A supervisor writes the terminal state and then lets go of the task (revoking its gateway
    // token on the way): wait for that, briefly, rather than race it.
    let mut rx = engine.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while engine.is_supervised(&id) {
        tokio::select! {
            r = rx.changed() => if r.is_err() { break },
            _ = tokio::time::sleep_until(deadline) => {
                return Err(ControlError::Conflict(format!("task {id} is still being finished; try again")));
            }
        }
    }
    if let Some(sb) = engine
        .sandboxes
        .load(&id)
        .await
        .map_err(|e| ControlError::Agent(e.to_string()))?
    {
        let message = format!("drover: work left in the sandbox of {id}\n\nTask: {id}\n");
        engine.sandboxes.finish(&sb, &message).await.map_err(|e| {
            ControlError::Conflict(format!(
                "could not commit the work of task {id} ({e}); nothing was removed, the sandbox is at {}",
                sb.path.display()
            ))
        })?;
    }
    engine.store.delete_task(&id).await?;
    // The task's directory holds its logs (any size): removed off the async workers.
    let dir = engine.home.task(&id).dir;
    match tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
        // The task is gone from the store; a directory left behind only takes space.
        Ok(Err(e)) => tracing::warn!(task = id.as_str(), "removing the task directory: {e}"),
        Err(e) => tracing::warn!(task = id.as_str(), "removing the task directory: {e}"),
    }
    Ok(id)
}
