//! This daemon as a worker among those on one database (docs/design.md §8).
//!
//! - [`register`]: at start, the worker row, then one heartbeat whose claims (tasks this worker
//!   held before a restart) go into the claims map — the fences of every write about them.
//! - [`heartbeat`]: every `lease_secs / 3`, each call bounded by a deadline, renews the leases.
//!   A claim missing from the answer was taken over: its supervisor stops. When the lease
//!   could run out before the next beat (no heartbeat sent in the last `lease_secs * 2/3`
//!   succeeded), every claim is assumed lost ([`Engine::lose`]): the local agents end before
//!   the database lets another worker take their tasks.
//! - [`sweep`]: every `lease_secs / 2`, takes over other workers' lapsed claims with a write
//!   fenced on the lapsed claim: a claimed-but-queued task goes back to the queue; an active one
//!   becomes `interrupted` (`lost_host`) and, by [`may_resume`], is requeued at its old place.
//! - Lease loss on the holder ([`lease_lost`]): the local agent's group ends, its sandbox's work
//!   is committed to the task branch locally, and nothing is written to the store.
//!
//! SQLite has one worker (this daemon): the same code runs, and nothing ever lapses while the
//! daemon lives.

use super::Engine;
use drover_store::{now, Fence, StoreError, TaskPatch, TaskRecord, WorkerSpec};
use drover_types::{ErrorKind, EventKind, NewEvent, OnInterrupt, Outcome, TaskState};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// At most this many re-runs after interruptions (the first run is attempt 1).
pub const MAX_ATTEMPT_TO_RESUME: i64 = 3;

/// Whether an interrupted task goes back to the queue: the daemon's policy says resume, it has
/// attempts left and nobody asked it to stop. (The supervisor also needs the agent to be
/// resumable; a lost host's task re-runs whatever its agent.)
pub fn may_resume(engine: &Engine, task: &TaskRecord) -> bool {
    engine.config.on_interrupt == OnInterrupt::Resume
        && task.attempt <= MAX_ATTEMPT_TO_RESUME
        && !task.stop_requested
}

impl Engine {
    /// This daemon's worker name.
    pub fn worker(&self) -> &str {
        &self.config.worker_name
    }

    /// Whether a task held by `worker` (none: a row of an older database) is this host's to
    /// re-adopt or keep: its own name, or on SQLite (one host) any name.
    pub fn is_this_hosts(&self, worker: Option<&str>) -> bool {
        self.config.database_url.is_none() || worker.is_none_or(|w| w == self.worker())
    }

    /// The fence of a task this worker holds.
    pub fn claim_of(&self, id: &str) -> Option<Fence> {
        self.claims
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// Holds `id` by `fence` (a fresh claim, or one taken back): whatever was lost of an earlier
    /// claim on it is forgotten.
    pub(crate) fn hold(&self, id: &str, fence: Fence) {
        self.forget_lost(id);
        self.claims
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string(), fence);
    }

    pub(crate) fn release(&self, id: &str) {
        self.claims
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Every claim held, as `(id, fence)`.
    pub fn claims(&self) -> Vec<(String, Fence)> {
        self.claims
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The claim on `id` is gone: drop it and tell its supervisor to stop (it ends the local
    /// agent without writing the store, see [`lease_lost`]).
    pub(crate) fn lose(&self, id: &str) {
        self.release(id);
        self.lost
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string());
        self.poke(id).notify_one();
    }

    pub(crate) fn is_lost(&self, id: &str) -> bool {
        self.lost
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(id)
    }

    pub(crate) fn forget_lost(&self, id: &str) {
        self.lost
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}

/// Registers this worker and takes back the claims it still holds in the store (after a
/// restart), renewing their leases.
///
/// On a shared store, a live row of this name may be another daemon still running under it:
/// the row is watched for one heartbeat period (and half a second), and if its heartbeat moves this
/// daemon refuses to start (both would renew and "take back" the same claims and run one
/// attempt twice). A row left by this worker's own earlier run stays still: taken over.
pub async fn register(engine: &Engine) -> Result<(), crate::DaemonError> {
    if engine.config.database_url.is_some() {
        refuse_if_alive(engine).await?;
    }
    let spec = WorkerSpec {
        name: engine.worker().to_string(),
        addr: engine.config.listen.as_ref().map(|l| l.addr.to_string()),
        slots: u32::try_from(engine.config.slots).unwrap_or(u32::MAX),
        lease_secs: engine.config.lease_secs,
    };
    engine.store.register_worker(&spec).await?;
    for claim in engine
        .store
        .heartbeat(engine.worker(), engine.config.lease_secs)
        .await?
    {
        engine.hold(&claim.id, claim.fence);
    }
    tracing::info!(
        worker = engine.worker(),
        "registered as worker {} (lease {}s, {} slots)",
        engine.worker(),
        engine.config.lease_secs,
        engine.config.slots
    );
    Ok(())
}

async fn refuse_if_alive(engine: &Engine) -> Result<(), crate::DaemonError> {
    let me = engine.worker();
    let row = |all: Vec<drover_store::WorkerRecord>| all.into_iter().find(|w| w.name == me);
    let Some(first) = row(engine.store.workers().await?).filter(|w| !w.lapsed) else {
        return Ok(());
    };
    // Its heartbeat comes every lease/3: watch one of those and half a second.
    let watch = Duration::from_millis(u64::from(first.lease_secs.max(1)) * 1000 / 3 + 500);
    tracing::info!(
        worker = me,
        "worker {me} has a live row (last heartbeat {}): checking for {watch:?} that no other \
         daemon runs under this name",
        first.last_heartbeat
    );
    let until = Instant::now() + watch;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(250)).await;
        match row(engine.store.workers().await?) {
            Some(w) if w.last_heartbeat != first.last_heartbeat => {
                return Err(crate::DaemonError::WorkerLive(me.to_string()));
            }
            _ => {}
        }
    }
    Ok(())
}

fn period(engine: &Engine, div: u32) -> Duration {
    Duration::from_millis(u64::from(engine.config.lease_secs.max(1)) * 1000 / u64::from(div))
}

/// Renews this worker's leases every `lease_secs / 3` until the daemon stops.
pub async fn heartbeat(engine: Arc<Engine>) {
    let every = period(&engine, 3);
    let lease = Duration::from_secs(u64::from(engine.config.lease_secs));
    let stopping = engine.stopping();
    let mut last_ok = Instant::now();
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopping.cancelled() => return,
        }
        let held: Vec<(String, Fence)> = engine.claims();
        // The database's lease runs from its own now, which is later than this instant.
        let sent = Instant::now();
        let beat = engine
            .store
            .heartbeat(engine.worker(), engine.config.lease_secs);
        match tokio::time::timeout(every, beat).await {
            Ok(Ok(claims)) => {
                last_ok = sent;
                if failing {
                    tracing::info!("heartbeat: the store answers again");
                    failing = false;
                }
                // A task the store says this worker holds but the engine does not (its claim
                // was dropped while the store was unreachable, and nobody took it over): taken
                // back, so a supervisor settles it (its agent was ended: interrupted, requeued
                // by policy) rather than leaving a lease renewed forever.
                for c in &claims {
                    if engine.claim_of(&c.id).is_none() && !engine.is_supervised(&c.id) {
                        tracing::info!(task = c.id.as_str(), "heartbeat: task {} taken back", c.id);
                        engine.hold(&c.id, c.fence.clone());
                        engine.wake.notify_one();
                    }
                }
                let renewed: HashSet<(String, i64)> = claims
                    .into_iter()
                    .map(|c| (c.id, c.fence.attempt))
                    .collect();
                for (id, fence) in held {
                    // Taken over (or requeued meanwhile): only if still the same claim here.
                    if !renewed.contains(&(id.clone(), fence.attempt))
                        && engine.claim_of(&id).as_ref() == Some(&fence)
                    {
                        match engine.store.get_task(&id).await {
                            Ok(t)
                                if t.worker.as_deref() == Some(engine.worker())
                                    && t.attempt == fence.attempt => {}
                            Ok(t) if t.state == TaskState::Queued || t.state.is_terminal() => {
                                if t.worker.is_some() || t.state.is_terminal() {
                                    engine.release(&id);
                                }
                            }
                            Ok(t) => {
                                tracing::warn!(
                                    task = id.as_str(),
                                    "lease lost: task {id} is now held by {} attempt {}; \
                                     this worker ({}, attempt {}) stops it here",
                                    t.worker.as_deref().unwrap_or("nobody"),
                                    t.attempt,
                                    engine.worker(),
                                    fence.attempt
                                );
                                engine.lose(&id);
                            }
                            Err(e) => tracing::warn!(task = id.as_str(), "heartbeat: {e}"),
                        }
                    }
                }
            }
            Ok(Err(e)) => {
                failing = true;
                tracing::warn!("heartbeat failed: {e}");
            }
            Err(_) => {
                failing = true;
                tracing::warn!("heartbeat failed: no answer within {every:?}");
            }
        }
        // Lost before the database can lapse it: by the next beat the lease may have run out,
        // and another worker may take the task over — this one's agent must be gone by then.
        if last_ok.elapsed() + every >= lease {
            let held = engine.claims();
            for (id, fence) in &held {
                tracing::warn!(
                    task = id.as_str(),
                    "lease lost: task {id} (worker {}, attempt {}): no heartbeat answered \
                     for {:.1}s, the lease is {}s; ending its agent here",
                    engine.worker(),
                    fence.attempt,
                    last_ok.elapsed().as_secs_f64(),
                    engine.config.lease_secs
                );
                engine.lose(id);
            }
        }
    }
}

/// Takes over other workers' lapsed claims every `lease_secs / 2` until the daemon stops.
pub async fn sweep(engine: Arc<Engine>) {
    let every = period(&engine, 2);
    let stopping = engine.stopping();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopping.cancelled() => return,
        }
        let lapsed = match tokio::time::timeout(every, engine.store.lapsed_tasks()).await {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => {
                tracing::warn!("lapse sweep: {e}");
                continue;
            }
            Err(_) => continue,
        };
        for task in lapsed {
            // This worker's own leases are its heartbeat's business.
            if task.worker.as_deref() == Some(engine.worker()) {
                continue;
            }
            match take_over(&engine, &task).await {
                Ok(()) => {}
                // Renewed or taken by another worker meanwhile: not ours to touch.
                Err(StoreError::Fenced { .. } | StoreError::WrongState { .. }) => {}
                Err(e) => tracing::warn!(task = task.id.as_str(), "take-over: {e}"),
            }
        }
    }
}

/// One lapsed claim of another worker, settled with a write fenced on that claim.
async fn take_over(engine: &Engine, task: &TaskRecord) -> Result<(), StoreError> {
    let Some(lost) = task.worker.clone() else {
        return Ok(());
    };
    let fence = Fence {
        lapsed: true,
        ..Fence::new(&lost, task.attempt)
    };
    let id = task.id.as_str();
    if task.state == TaskState::Queued {
        // Claimed, never started: back to the queue as it was.
        let patch = TaskPatch::new().worker(None).lease_until(None).fence(fence);
        engine
            .update(id, Some(&[TaskState::Queued]), patch, vec![])
            .await?;
        tracing::info!(
            task = id,
            "took back task {id} claimed by lapsed worker {lost}"
        );
        return Ok(());
    }
    let why = format!(
        "worker {lost} lost its lease (attempt {}): no heartbeat",
        task.attempt
    );
    let outcome = Outcome::fail(ErrorKind::LostHost, &why);
    let active = super::terminal::active();
    let cleared = |p: TaskPatch| {
        p.pid(None)
            .pgid(None)
            .shim_pid(None)
            .shim_start(None)
            .agent_start(None)
            .pending_input(None)
            .fence(fence.clone())
    };
    if may_resume(engine, task) {
        let interrupted = NewEvent::new(
            EventKind::State,
            json!({ "state": "interrupted", "reason": why, "outcome": "lost_host", "worker": lost }),
        );
        let patch = cleared(TaskPatch::new().state(
            TaskState::Queued,
            json!({ "reason": "requeued after its worker was lost" }),
        ));
        engine
            .update(id, Some(&active), patch, vec![interrupted])
            .await?;
        tracing::warn!(task = id, "task {id} requeued: {why}");
    } else {
        let patch = cleared(TaskPatch::new().state(
            TaskState::Interrupted,
            json!({ "reason": why, "outcome": "lost_host", "worker": lost }),
        ))
        .outcome(Some(&outcome))
        .finished_at(Some(now()));
        engine.update(id, Some(&active), patch, vec![]).await?;
        tracing::warn!(task = id, "task {id} interrupted: {why}");
    }
    Ok(())
}

/// This worker lost its claim on `id`: end the local agent (members of its group in its shim's
/// session, from this host's own ready record), commit the sandbox's work to the task branch
/// locally, stop serving its sockets and its gateway grant. Writes nothing to the store.
pub(crate) async fn lease_lost(engine: &Engine, id: &str) {
    engine.release(id);
    end_local_agent(engine, id);
    match engine.sandboxes.load(id).await {
        Ok(Some(sb)) => {
            let msg = format!("drover: work kept after the lease was lost\n\nTask: {id}\n");
            if let Err(e) = engine.sandboxes.finish(&sb, &msg).await {
                tracing::warn!(task = id, "lease lost: sandbox kept: {e}");
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(task = id, "lease lost: sandbox: {e}"),
    }
    super::endpoints::close(engine, id);
    if let Some(link) = &engine.gateway {
        link.revoke(id);
    }
    engine.forget_lost(id);
    tracing::warn!(task = id, "lease lost: task {id} ended on this worker");
}

/// Ends the agent this host started for `id`, if any is alive (members of its group in its
/// shim's session, from this host's own ready record; a reused pid is never signalled).
pub(crate) fn end_local_agent(engine: &Engine, id: &str) {
    if let Ok(Some(ready)) = engine.home.task(id).read_ready() {
        if drover_shim::proc::same_process(ready.shim_pid, ready.shim_start) {
            tracing::warn!(
                task = id,
                "task {id} is no longer this worker's: ending its local agent (pid {})",
                ready.pid
            );
        }
        proc_kill(ready.pgid, ready.shim_pid);
    }
}

fn proc_kill(pgid: i64, sid: i64) {
    drover_shim::proc::signal_members(pgid, sid, nix::sys::signal::Signal::SIGKILL);
}
