//! A task's own endpoints (its run dir's sockets: the task-scoped control endpoint, the gateway
//! relay, the egress proxy), as the engine drives them: opened before the shim is spawned
//! ([`super::start`]) and for re-adopted agents ([`super::recover`]), closed when the
//! supervisor ends with the task no longer active ([`super::supervise`]). A leaf of the engine:
//! the serving is `crate::task_sockets`, installed by `crate::run` ([`Engine::endpoints`]); an
//! engine without it (unit tests) opens nothing.

use super::Engine;
use std::collections::HashSet;
use std::sync::Arc;

/// A task's sockets could not be made.
#[derive(Debug, thiserror::Error)]
#[error("the task's sockets in {path}: {source}")]
pub struct EndpointError {
    pub path: String,
    pub source: std::io::Error,
}

/// What serves each active task's sockets.
pub trait TaskEndpoints: Send + Sync {
    /// Serves `id`'s sockets (nothing when they are served already).
    fn open(&self, engine: &Arc<Engine>, id: &str) -> Result<(), EndpointError>;
    /// Stops serving them and removes the task's run dir.
    fn close(&self, engine: &Engine, id: &str);
    /// Removes run dirs of tasks not in `keep` (left by a daemon that died).
    fn sweep(&self, engine: &Engine, keep: &HashSet<String>);
}

pub(crate) fn open(engine: &Arc<Engine>, id: &str) -> Result<(), EndpointError> {
    match engine.endpoints.get() {
        Some(e) => e.open(engine, id),
        None => Ok(()),
    }
}

pub(crate) fn close(engine: &Engine, id: &str) {
    if let Some(e) = engine.endpoints.get() {
        e.close(engine, id);
    }
}

pub(crate) fn sweep(engine: &Engine, keep: &HashSet<String>) {
    if let Some(e) = engine.endpoints.get() {
        e.sweep(engine, keep);
    }
}
