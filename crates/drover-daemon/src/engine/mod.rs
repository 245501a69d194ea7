//! The engine: tasks from `queued` to a terminal state.
//!
//! - [`scheduler`]: fills free slots from the FIFO queue.
//! - [`supervise`]: one async supervisor per live task, from queued to terminal, driving
//!   [`start`] (sandbox, command line, environment, shim) and [`finish`] (outcome, gates, judge,
//!   commit).
//! - [`ingest`]: agent output files → normalized events, exactly once (offsets move with events).
//! - [`control`]: what clients ask of a task: send, answer, stop, remove.
//! - [`recover`]: at start-up, re-adopt live shims and settle what died with the last daemon.
//! - [`limits`]: the task's cgroup — limits, ending the whole group, peak memory, CPU time, OOM.
//! - [`workers`]: this daemon as one worker on the database — registration, heartbeat, claims
//!   (the fences of every write about a held task), take-over of lapsed claims, lease loss.
//!
//! Modules use each other one way, from leaves up (`scripts/module-cycles.sh` checks it):
//! [`terminal`] (fail, commit, deliver), [`limits`] (the task's cgroup), [`agent_env`] (the
//! agent's environment and grant), [`endpoints`] (the task's own sockets, served by
//! `crate::task_sockets`),
//! [`answer`] (permission answers), [`ingest`], [`judge`], [`locks`] → [`clocks`] → [`protect`]
//! → [`gates`] → [`finish`] → [`start`], and [`control`] → [`supervise`]; [`scheduler`] →
//! [`pools`], [`recover`], [`workers`].
//!
//! Concurrency: the store is the source of truth; every decision re-reads the task row. A
//! per-task async mutex (`stdin_lock`) orders everything written to an agent's stdin with the
//! decision to close it, so a `send` never races the end of the last turn.

pub mod agent_env;
pub mod answer;
pub mod clocks;
pub mod confine;
pub mod control;
pub mod endpoints;
pub mod finish;
pub mod fleet;
pub mod gates;
pub mod git_origin;
pub mod ingest;
pub mod judge;
pub mod limits;
pub mod locks;
pub mod pools;
pub mod protect;
pub mod publish;
pub(crate) mod push;
pub mod recover;
pub mod scheduler;
pub mod start;
pub mod supervise;
pub mod terminal;
pub(crate) mod trace;
pub mod workers;
pub mod workspace;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod outcome_tests;

use crate::{Config, DaemonError, Home};
use drover_sandbox::Sandboxes;
use drover_store::{Fence, PgStore, SqliteStore, Store, StoreError, TaskPatch, TaskRecord};
use drover_types::{Event, NewEvent, StopReason, TaskState};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub struct Engine {
    pub store: Arc<dyn Store>,
    pub sandboxes: Sandboxes,
    pub config: Config,
    pub home: Home,
    /// Wakes the scheduler (a task was queued or a slot freed).
    pub(crate) wake: Notify,
    /// Tasks with a live supervisor in this daemon. Its size is the number of used slots.
    pub(crate) supervised: Mutex<HashSet<String>>,
    /// Tasks this worker holds in the store, with the fence of the claim (see [`workers`]).
    pub(crate) claims: Mutex<HashMap<String, Fence>>,
    /// Held tasks whose claim was lost: their supervisors end the local agent and stop.
    pub(crate) lost: Mutex<HashSet<String>>,
    /// Per-task wake-ups for supervisors (a send, a stop).
    pokes: Mutex<HashMap<String, Arc<Notify>>>,
    stdin_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<StdinState>>>>,
    /// Cancelled when the daemon stops (see [`Engine::shutdown`]).
    stopping: CancellationToken,
    /// Every task the daemon spawns (supervisors, scheduler, timers, gateway, API connections):
    /// awaited, with a deadline, at shutdown (see [`crate::run`]).
    pub tasks: TaskTracker,
    pub locks: Arc<locks::Locks>,
    /// drover's LLM gateway, when a provider key is configured (see [`crate::gateway`]).
    pub gateway: Option<crate::gateway::GatewayLink>,
    /// Per-task provider keys (`run --api-key-env`), in memory only: a restart forgets them and
    /// the task falls back to the daemon's key.
    pub task_keys: Mutex<HashMap<String, String>>,
    /// Whether agents may start: the host probe's verdict (see [`crate::isolation`]).
    pub host: crate::isolation::HostConfinement,
    /// Where this daemon makes its tasks' cgroups (see [`limits`]).
    pub cgroups: drover_cgroup::Cgroups,
    /// What serves each active task's sockets (`crate::task_sockets`, set by `crate::run`).
    pub endpoints: std::sync::OnceLock<Box<dyn endpoints::TaskEndpoints>>,
    /// `[forges.NAME]`: repository names, credentials and REST clients (docs/design.md §9).
    pub forges: Arc<drover_forge::Forges>,
    /// drover's git smart-HTTP proxy, when forges are configured (see [`crate::git_proxy`]).
    pub git_proxy: Option<Arc<crate::git_proxy::GitProxy>>,
    /// Prometheus metrics and OpenTelemetry (see [`crate::telemetry`]).
    pub telemetry: Arc<crate::telemetry::Telemetry>,
    /// The web dashboard's logins and doors (see [`crate::web`]).
    pub web: Arc<crate::web::WebState>,
    /// The fleet view's one shared, current state (see [`fleet`]).
    pub fleet: fleet::FleetFeed,
}

/// What the engine has done to an agent's stdin.
#[derive(Debug, Default)]
pub struct StdinState {
    pub closed: bool,
}

impl Engine {
    /// Opens the store and starts the gateway; the receiver carries the gateway's notes (see
    /// [`gateway_notes`]). The engine stops when `shutdown` is cancelled (or on its own
    /// [`Engine::shutdown`], which does not cancel the caller's token).
    pub async fn open(
        config: Config,
        home: Home,
        shutdown: &CancellationToken,
    ) -> Result<
        (
            Engine,
            Option<tokio::sync::mpsc::UnboundedReceiver<crate::gateway::Note>>,
        ),
        DaemonError,
    > {
        let store: Arc<dyn Store> = match &config.database_url {
            Some(url) => Arc::new(PgStore::open(url.expose()).await?),
            None => Arc::new(SqliteStore::open(&home.db()).await?),
        };
        // `[teams.NAME]` of config the store does not have yet (the store wins).
        crate::teams::import_config(store.as_ref(), &config.teams).await?;
        let sandboxes = Sandboxes::new(&home.root, config.sandbox);
        let home_root = home.root.clone();
        let stopping = shutdown.child_token();
        let tasks = TaskTracker::new();
        let telemetry = Arc::new(crate::telemetry::Telemetry::new(&config));
        let (gateway, notes) = match crate::gateway::GatewayLink::start(
            &config,
            telemetry.clone(),
            &home.root,
            store.clone(),
            stopping.clone(),
            &tasks,
        )
        .await
        .map_err(DaemonError::Gateway)?
        {
            Some((link, rx)) => (Some(link), Some(rx)),
            None => (None, None),
        };
        let host = crate::isolation::HostConfinement::check(&config);
        let locks = Arc::new(locks::Locks::new(store.clone(), config.worker_name.clone()));
        // This worker's lock tickets of an earlier run: their connections died with it.
        locks.release_own().await?;
        let forges = Arc::new(drover_forge::Forges::new(
            config.forges.clone(),
            config.inherited.for_gate(),
        ));
        // Every git operation on a forge goes through drover's proxy (credentials stay here).
        let git_proxy = match forges.is_empty() {
            true => None,
            false => {
                let proxy =
                    crate::git_proxy::GitProxy::start(forges.clone(), &tasks, stopping.clone())
                        .await
                        .map_err(DaemonError::GitProxy)?;
                sandboxes.set_remote_access(Arc::new(crate::git_proxy::remote::MirrorAccess(
                    proxy.clone(),
                )));
                Some(proxy)
            }
        };
        let engine = Engine {
            web: Arc::new(crate::web::WebState::new(config.web_token_ttl)),
            fleet: fleet::FleetFeed::new(),
            telemetry,
            git_proxy,
            forges,
            host,
            store,
            sandboxes,
            config,
            home,
            wake: Notify::new(),
            supervised: Mutex::new(HashSet::new()),
            claims: Mutex::new(HashMap::new()),
            lost: Mutex::new(HashSet::new()),
            pokes: Mutex::new(HashMap::new()),
            stdin_locks: Mutex::new(HashMap::new()),
            stopping,
            tasks,
            locks,
            gateway,
            task_keys: Mutex::new(HashMap::new()),
            cgroups: drover_cgroup::Cgroups::discover(&home_root),
            endpoints: std::sync::OnceLock::new(),
        };
        Ok((engine, notes))
    }

    /// Writes through the store (which tells followers), after flushing the gateway's ledger
    /// before a terminal state, and wakes the scheduler when a slot frees or a task queues.
    ///
    /// A write about a task this worker holds carries the claim's fence (unless the patch has
    /// one: a take-over); a refused fence drops the claim and stops its supervisor (see
    /// [`workers`]). Back to `queued` clears `worker` and `lease_until`; a terminal state
    /// clears `lease_until` (`worker` stays: who ran it). Either ends this worker's claim.
    pub async fn update(
        &self,
        id: &str,
        from: Option<&[TaskState]>,
        patch: TaskPatch,
        events: Vec<NewEvent>,
    ) -> Result<(TaskRecord, Vec<Event>), StoreError> {
        let mut patch = patch;
        let terminal = patch.new_state().is_some_and(|s| s.is_terminal());
        let requeued = patch.new_state() == Some(TaskState::Queued);
        let freed = terminal || requeued;
        let held = match patch.fenced_by() {
            Some(_) => None,
            None => self.claim_of(id),
        };
        if let Some(fence) = &held {
            patch = patch.fence(fence.clone());
        }
        if requeued {
            patch = patch.worker(None).lease_until(None);
        } else if terminal {
            patch = patch.lease_until(None);
        }
        if let (true, Some(g)) = (terminal, &self.gateway) {
            // Whoever sees the terminal state sees all of the task's usage.
            g.flush().await;
        }
        let out = match self.store.update(id, from, patch, events).await {
            Ok(out) => out,
            Err(e @ StoreError::Fenced { .. }) => {
                if held.is_some() {
                    tracing::warn!(
                        task = id,
                        "task {id}: fenced — {e}; this worker ({}) stops writing to it",
                        self.worker()
                    );
                    self.lose(id);
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        if terminal {
            // The task's `invoke_agent` span (docs/design.md §10): whoever ends it exports it.
            trace::task_ended(self, &out.0).await;
        } else if requeued {
            self.telemetry.otel.forget(id);
        }
        if freed {
            if held.is_some() {
                self.release(id);
            }
            self.wake.notify_one();
        }
        Ok(out)
    }

    /// Tells followers about a change that lives only in this daemon's memory (a lock asked for
    /// or granted, a supervisor ended). Store writes notify by themselves.
    pub fn notify_changed(&self) {
        self.store.changes().bump();
    }

    /// Moves after every committed store write and every [`Engine::notify_changed`].
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.store.subscribe()
    }

    pub fn poke(&self, id: &str) -> Arc<Notify> {
        let mut map = self.pokes.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(id.to_string()).or_default().clone()
    }

    pub fn stdin_lock(&self, id: &str) -> Arc<tokio::sync::Mutex<StdinState>> {
        let mut map = self.stdin_locks.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(id.to_string()).or_default().clone()
    }

    pub(crate) fn forget(&self, id: &str) {
        self.pokes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        self.stdin_locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// What a task stores as its `repo` for `--repo SPEC`: a forge repository's clone URL
    /// (`owner/name` through the default forge, a URL through the forge whose `git` base it
    /// starts with), else SPEC as given (docs/design.md §9).
    pub fn repo_source(&self, spec: &str) -> Result<String, drover_forge::ForgeError> {
        Ok(match self.forges.resolve(spec)? {
            Some(r) => r.clone_url,
            None => spec.to_string(),
        })
    }

    /// The worker a task on `repo` must run on: this one for a local path (only it sees the
    /// path), any for a URL (docs/design.md §8).
    pub fn runs_on(&self, repo: &str) -> Option<String> {
        (!drover_sandbox::is_url(repo)).then(|| self.config.worker_name.clone())
    }

    pub fn used_slots(&self) -> usize {
        self.supervised
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    pub fn is_supervised(&self, id: &str) -> bool {
        self.supervised
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(id)
    }

    /// Starts a supervisor for `id` unless one runs already. Returns whether it started one.
    pub fn supervise(self: &Arc<Self>, id: &str) -> bool {
        {
            let mut set = self.supervised.lock().unwrap_or_else(|e| e.into_inner());
            if !set.insert(id.to_string()) {
                return false;
            }
        }
        let engine = self.clone();
        let id = id.to_string();
        self.tasks.spawn(async move {
            supervise::run(&engine, &id).await;
            engine
                .supervised
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            engine.forget(&id);
            engine.wake.notify_one();
            // In memory only: `rm` waits for the supervisor to be gone.
            engine.notify_changed();
        });
        true
    }

    /// Asks every loop to stop. Agents keep running under their shims.
    pub fn shutdown(&self) {
        self.stopping.cancel();
        self.wake.notify_waiters();
    }

    /// Cancelled once the daemon stops: loops select on `stopping().cancelled()`.
    pub fn stopping(&self) -> CancellationToken {
        self.stopping.clone()
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.is_cancelled()
    }
}

/// A fresh task id: 8 lowercase hex characters.
pub fn new_task_id() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// Acts on what the gateway's ledger reports: refresh followers, end tasks whose budget is spent.
/// Ends with the daemon: a budget stop not asked for by then is asked again by the next daemon's
/// gateway, whose ledger refuses the task's next request from the same stored figures.
pub async fn gateway_notes(
    engine: Arc<Engine>,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<crate::gateway::Note>,
) {
    let stopping = engine.stopping();
    loop {
        let note = tokio::select! {
            note = rx.recv() => note,
            _ = stopping.cancelled() => None,
        };
        let Some(note) = note else { return };
        match note {
            crate::gateway::Note::BudgetExceeded(id) => {
                let engine2 = engine.clone();
                engine.tasks.spawn(async move {
                    let engine = engine2;
                    if let Err(e) =
                        control::stop_because(&engine, &id, StopReason::BudgetExceeded).await
                    {
                        tracing::warn!(task = id.as_str(), "budget stop: {e}");
                    }
                });
            }
        }
    }
}
