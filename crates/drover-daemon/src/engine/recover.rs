//! Start-up: settle what the previous daemon left — of the tasks this worker holds (see
//! [`super::workers`]); other workers' tasks are not touched.
//!
//! - `preparing` tasks go back to `queued` (their half-made sandbox is reused or replaced).
//! - Tasks that had an agent get a supervisor again. It re-attaches to a live shim, or, if the
//!   agent finished meanwhile (exit.json), ingests the rest and finishes; if the shim died without
//!   an exit record, the task is `interrupted` (and requeued to resume by policy).
//! - Their sockets (`run/<id>/`, see [`super::endpoints`]) are served again; the run
//!   directories of tasks no longer active are removed.
//! - Sandboxes and mounts of tasks that are gone or finished are committed and removed; unused
//!   base checkouts are collected.

use super::Engine;
use drover_store::{ListFilter, TaskPatch};
use drover_types::TaskState;
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;

pub async fn recover(engine: &Arc<Engine>) {
    let active = match engine.store.active().await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("recover: {e}");
            return;
        }
    };
    // Only what this worker holds (a row of an older SQLite database names no worker: the
    // daemon's own); other workers' tasks are theirs, or the lapse sweep's. On SQLite every
    // row is this host's, whatever worker name it carries (`worker_name`, or the host name it
    // defaults to, may have changed since): re-adopted under this name.
    let me = engine.worker().to_string();
    let (active, others): (Vec<_>, Vec<_>) = active
        .into_iter()
        .partition(|t| engine.is_this_hosts(t.worker.as_deref()));
    // This daemon was away longer than its lease: what it ran was taken over (now another
    // worker's, or requeued). An agent of it still alive here ends: its attempt is over.
    if engine.config.database_url.is_some() {
        let requeued = engine.store.queued().await.unwrap_or_default();
        for id in others.iter().map(|t| &t.id).chain(requeued.iter()) {
            super::workers::end_local_agent(engine, id);
        }
    }
    for task in &active {
        if task.worker.as_deref() != Some(me.as_str()) {
            let patch = TaskPatch::new().worker(Some(me.clone()));
            if let Err(e) = engine.store.update(&task.id, None, patch, vec![]).await {
                tracing::warn!(task = task.id.as_str(), "recover: {e}");
                continue;
            }
        }
        if engine.claim_of(&task.id).is_none() {
            engine.hold(&task.id, drover_store::Fence::new(&me, task.attempt));
        }
        // `preparing` means no shim was recorded for this attempt (ready.json is cleared when
        // an attempt starts preparing, so one found now is this attempt's).
        if task.state == TaskState::Preparing {
            let files = engine.home.task(&task.id);
            let ready = match files.read_ready() {
                Ok(ready) => ready,
                Err(e) => {
                    // A shim of another drover version started this attempt: never guess its
                    // pids; fail the task and say why.
                    let why = format!("cannot re-adopt the agent: {e}");
                    if let Err(e) = super::terminal::fail(
                        engine,
                        task,
                        drover_types::ErrorKind::AgentExit,
                        &why,
                    )
                    .await
                    {
                        tracing::warn!(task = task.id.as_str(), "recover: {e}");
                    }
                    continue;
                }
            };
            let patch = match ready.filter(|r| r.error.is_none()) {
                // The agent was started just before the crash: adopt it, never start a second.
                Some(ready) => TaskPatch::new()
                    .state(
                        TaskState::Running,
                        json!({ "pid": ready.pid, "adopted": true }),
                    )
                    .shim_pid(Some(ready.shim_pid))
                    .shim_start(Some(ready.shim_start))
                    .pid(Some(ready.pid))
                    .pgid(Some(ready.pgid))
                    .agent_start(Some(ready.agent_start))
                    .turns_sent(Some(task.turns_done + 1)),
                None => TaskPatch::new().state(
                    TaskState::Queued,
                    json!({ "reason": "daemon restarted while preparing" }),
                ),
            };
            let adopted = patch.new_state() == Some(TaskState::Running);
            if let Err(e) = engine
                .update(&task.id, Some(&[TaskState::Preparing]), patch, vec![])
                .await
            {
                // Not fatal: a task still `preparing` is settled again at the next start.
                tracing::warn!(task = task.id.as_str(), "recover: {e}");
            }
            if adopted {
                reopen_sockets(engine, &task.id);
                engine.supervise(&task.id);
            }
        } else {
            reopen_sockets(engine, &task.id);
            engine.supervise(&task.id);
        }
    }
    let keep = active.iter().map(|t| t.id.clone()).collect();
    super::endpoints::sweep(engine, &keep);
    collect(engine).await;
    tracing::info!("recovered {} active tasks", active.len());
}

/// A re-adopted agent's sockets, served again in the same directory (its `drover lock` and
/// gateway keep working).
fn reopen_sockets(engine: &Arc<Engine>, id: &str) {
    if let Err(e) = super::endpoints::open(engine, id) {
        tracing::warn!(task = id, "recover: {e}");
    }
    engine.tasks.spawn(reopened(engine.clone(), id.to_string()));
}

/// Commits and removes sandboxes of tasks that are finished or gone, then removes base
/// checkouts no sandbox uses. Run at start and periodically by the scheduler.
pub async fn collect(engine: &Arc<Engine>) {
    let all = match engine.store.list_tasks(ListFilter::All, "").await {
        Ok(all) => all,
        Err(e) => {
            tracing::warn!("gc: {e}");
            return;
        }
    };
    // A task another worker holds now is not this host's: its local sandbox is collected.
    let keep: HashSet<String> = all
        .iter()
        .filter(|t| t.state.is_terminal() || engine.is_this_hosts(t.worker.as_deref()))
        .filter(|t| !t.state.is_terminal() || t.sandbox.is_some())
        .map(|t| t.id.clone())
        .collect();
    let mut stale: HashSet<String> = engine.sandboxes.list().into_iter().collect();
    stale.extend(engine.sandboxes.mounted_task_ids());
    for id in stale.difference(&keep) {
        // An agent of this host still working in it (its task was taken over by another worker
        // while this daemon was stopped longer than the lease) ends first: its attempt is over.
        super::workers::end_local_agent(engine, id);
        match engine.sandboxes.load(id).await {
            Ok(Some(sb)) => {
                let msg =
                    format!("drover: work recovered from the sandbox of {id}\n\nTask: {id}\n");
                if let Err(e) = engine.sandboxes.finish(&sb, &msg).await {
                    tracing::warn!(task = id.as_str(), "stale sandbox kept: {e}");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(task = id.as_str(), "stale sandbox: {e}"),
        }
    }
    // Cgroups of finished or unknown tasks (ended while no daemon ran).
    super::limits::sweep(engine).await;
    let report = engine.sandboxes.collect_garbage(&keep).await;
    tracing::info!("gc: {report:?}");
}

/// After a daemon restart re-opened `id`'s sockets: an unconfined task's loopback port is a new
/// one, so its sandbox's `origin` is pointed at it again (a confined task's stays
/// `127.0.0.1:GIT_PORT`).
async fn reopened(engine: Arc<Engine>, id: String) {
    if engine.git_proxy.is_none() || crate::engine::confine::confined(&engine) {
        return;
    }
    let (Ok(task), Ok(Some(sb))) = (
        engine.store.get_task(&id).await,
        engine.sandboxes.load(&id).await,
    ) else {
        return;
    };
    super::workspace::set_origins(&engine, &task, &sb).await;
}
