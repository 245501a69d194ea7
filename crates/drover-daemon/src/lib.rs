//! The drover daemon, as a library (the `drover` binary calls [`run`]; tests can too).
//!
//! Layout:
//! - [`config`]: settings (defaults < DROVER_HOME/config.toml < `DROVER_*` environment < flags),
//!   loaded once; the only reader of the daemon's environment (a snapshot handed in).
//! - [`home`]: the `DROVER_HOME` layout: store, pid file, socket, task dirs, sandboxes.
//! - [`engine`]: the scheduler and one supervisor per task (sandbox → shim → ingest → commit).
//! - [`api`]: HTTP+JSON and SSE on `DROVER_HOME/daemon.sock`, one module per resource.
//! - [`isolation`]: whether the host can confine agents (probed once); if not, no task starts.
//! - [`child_env`]: the allow-listed environment of agents and gate commands.
//! - [`gateway`], [`ledger`]: the LLM gateway's grants, and its usage and spent amounts over the store.
//! - [`teams`]: teams and keys above the store — a key's validity, a team's policy for its
//!   tasks, config teams imported at start, webhooks (secret, signature, delivery worker).
//! - [`task_sockets`]: each active task's own sockets (`run/<id>/`): its scoped control endpoint,
//!   the gateway relay, the `sandbox.egress` proxy, the git proxy's task socket.
//! - [`git_proxy`]: drover's git smart-HTTP proxy — the only way git reaches a configured forge;
//!   the credential is added per request, the task may push only `drover/<id>`.
//!
//! Shutdown is explicit: [`run`] takes a [`CancellationToken`]; cancelling it (the binary does on
//! SIGTERM/SIGINT) or `POST /v1/daemon/stop` stops the API, the scheduler and every supervisor.
//! Every task the daemon spawns is on one [`tokio_util::task::TaskTracker`] (`Engine::tasks`)
//! and is awaited, at most [`SHUTDOWN_DEADLINE`]; then the gateway's ledger stores what it
//! queued. Agents are not children of the daemon (each runs under its own shim in its own
//! session), so they keep running; the next daemon re-adopts them (see [`engine::recover`]).

pub mod api;
pub mod child_env;
pub mod config;
pub mod engine;
pub mod gateway;
pub mod git_proxy;
pub mod home;
pub mod isolation;
pub mod ledger;
pub mod listen;
pub mod task_sockets;
pub mod teams;
pub mod telemetry;
pub mod web;

pub use config::{Config, ConfigError, Environment, Flags};
pub use home::Home;

use std::sync::Arc;
use std::time::Duration;
pub use tokio_util::sync::CancellationToken;

/// How long a stopping daemon waits for its tasks (supervisors mid-commit, open connections)
/// before it lets go of them. Whatever is cut off is safe: decisions are re-derived from the
/// store by the next daemon.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(
        "another daemon is running for {0} (pid file daemon.pid); use it, or `drover daemon stop`"
    )]
    AlreadyRunning(String),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The gateway could not start (its listener, its key file, its ledger).
    #[error("{0}")]
    Gateway(String),
    #[error("DROVER_HOME {path}: {source}")]
    Home {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] drover_store::StoreError),
    #[error("api socket: {0}")]
    Socket(std::io::Error),
    /// drover's git proxy could not bind its loopback listener.
    #[error("git proxy: {0}")]
    GitProxy(std::io::Error),
    /// Another daemon heartbeats as this worker (docs/design.md §8).
    #[error(
        "worker {0} is alive on the database (its heartbeat moved while this daemon waited): \
         another daemon runs under this name; give this one another worker_name \
         (DROVER_WORKER_NAME), or stop the other"
    )]
    WorkerLive(String),
    /// The TCP listener (`listen`) could not start: its address, its certificate.
    #[error("{0}")]
    Listen(String),
}

/// Runs the daemon until `shutdown` is cancelled or it is told to stop over the API. Holds an
/// exclusive lock on `DROVER_HOME/daemon.lock` for its whole life so two daemons never share a
/// home.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), DaemonError> {
    // Agents run as the same user: they must not read this process's memory or environment
    // (where provider keys live) through /proc.
    // SAFETY: prctl(PR_SET_DUMPABLE, 0) only changes this process's own attribute.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    // Every connection and every task's logs take file descriptors: use all we may.
    if let Some(n) = listen::raise_nofile() {
        tracing::info!("open file limit {n}");
    }
    let home = Home::new(&config.home);
    home.create()?;
    let _lock = home.lock()?;
    let (engine, notes) = engine::Engine::open(config, home.clone(), &shutdown).await?;
    let engine = Arc::new(engine);
    // Before anything starts a task or re-adopts one: their sockets are served from here on.
    let _ = engine
        .endpoints
        .set(Box::new(task_sockets::TaskSockets::default()));
    if let Some(rx) = notes {
        engine
            .tasks
            .spawn(engine::gateway_notes(engine.clone(), rx));
    }
    home.write_pid()?;
    // The worker row and the claims it still holds come before re-adopting anything.
    engine::workers::register(&engine).await?;
    engine::recover::recover(&engine).await;
    engine
        .tasks
        .spawn(engine::workers::heartbeat(engine.clone()));
    engine.tasks.spawn(engine::workers::sweep(engine.clone()));
    engine.tasks.spawn(engine::scheduler::run(engine.clone()));
    engine.tasks.spawn(engine::locks::sweep(engine.clone()));
    engine.tasks.spawn(return_memory(engine.stopping()));
    engine.tasks.spawn(teams::webhooks::run(
        engine.store.clone(),
        engine.home.root.clone(),
        engine.stopping(),
    ));
    let served = api::serve(engine.clone(), &home).await;
    engine.shutdown();
    engine.tasks.close();
    if tokio::time::timeout(SHUTDOWN_DEADLINE, engine.tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "{} daemon tasks still running after {SHUTDOWN_DEADLINE:?}; leaving them",
            engine.tasks.len()
        );
    }
    // Usage records the gateway accepted are stored before the daemon exits.
    if let Some(g) = &engine.gateway {
        g.close().await;
    }
    // The last spans and metric points go to the collector, within a deadline.
    engine.telemetry.otel.shutdown().await;
    home.remove_pid();
    served
}

/// glibc's allocator keeps freed memory in its arenas; after a burst (many requests, big
/// bodies) the daemon would keep its peak size. Every [`TRIM_EVERY`], give it back to the OS.
async fn return_memory(stopping: CancellationToken) {
    const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(2);
    let mut tick = tokio::time::interval(TRIM_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopping.cancelled() => return,
        }
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim only releases free memory of this process's allocator.
        // Its result (whether memory was released) changes nothing here.
        let _ = tokio::task::spawn_blocking(|| unsafe { libc::malloc_trim(0) }).await;
    }
}
