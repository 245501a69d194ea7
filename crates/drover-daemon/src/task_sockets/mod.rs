//! Each active task's sockets (docs/design.md §11; issue "Isolation", points 3 and 4), in
//! `Home::run_dir(id)` (mode 0700), mounted at `/run/drover` inside a confined sandbox:
//!
//! - [`CONTROL`] (`daemon.sock`): the task-scoped control endpoint ([`control`]): the API
//!   behind `api::scoped`, as that task: `drover lock` and reading itself, nothing else.
//! - [`GATEWAY`] (`gateway.sock`): a byte relay to the gateway's loopback port ([`relay`]), when
//!   the gateway runs. The task's token still authenticates every request.
//! - [`EGRESS`] (`egress.sock`): the `sandbox.egress` allow-list CONNECT proxy ([`egress`]),
//!   when the list is not empty.
//! - `git.sock`: drover's git proxy for this task (`crate::git_proxy::task`), when forges are
//!   configured.
//!
//! Opened before the task's shim is spawned (`engine::start`) and, after a daemon restart, for
//! every task that has an agent (`engine::recover`): the directory is kept and only the socket
//! files are replaced, so a sandbox that has the directory mounted sees the new ones. Closed
//! (and the directory removed) once the task's supervisor ends with the task no longer active;
//! at shutdown only the listeners stop. Everything runs on `Engine::tasks` under a child of the
//! engine's stop token. Each socket takes at most [`CONNECTIONS`] connections at once.

pub mod control;
pub mod egress;
pub mod git;
pub mod relay;

use crate::engine::endpoints::{EndpointError, TaskEndpoints};
use crate::engine::Engine;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// The task-scoped control endpoint's socket (so `DROVER_HOME` = the run dir works for the CLI).
pub const CONTROL: &str = "daemon.sock";
/// The gateway relay's socket.
pub const GATEWAY: &str = "gateway.sock";
/// The egress proxy's socket.
pub const EGRESS: &str = "egress.sock";
/// Connections at once on each of a task's sockets.
pub const CONNECTIONS: usize = 64;

/// The tasks whose sockets this daemon serves: each one's stop token. Installed as the
/// engine's [`TaskEndpoints`] by [`crate::run`].
#[derive(Default)]
pub struct TaskSockets {
    open: Mutex<HashMap<String, CancellationToken>>,
}

impl TaskSockets {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// Whether `id`'s sockets are served.
    pub fn is_open(&self, id: &str) -> bool {
        self.lock().contains_key(id)
    }
}

impl TaskEndpoints for TaskSockets {
    fn open(&self, engine: &Arc<Engine>, id: &str) -> Result<(), EndpointError> {
        if self.is_open(id) {
            return Ok(());
        }
        let dir = engine.home.run_dir(id);
        let err = |path: &Path| {
            let path = path.display().to_string();
            move |source| EndpointError { path, source }
        };
        make_private_dir(&dir).map_err(err(&dir))?;
        let token = engine.stopping().child_token();
        let control = bind(&dir.join(CONTROL)).map_err(err(&dir.join(CONTROL)))?;
        let gateway = match engine.gateway.as_ref().and_then(|g| gateway_addr(&g.base)) {
            Some(addr) => Some((
                bind(&dir.join(GATEWAY)).map_err(err(&dir.join(GATEWAY)))?,
                addr,
            )),
            None => {
                remove_stale(&dir.join(GATEWAY));
                None
            }
        };
        let allow = egress::AllowList::new(&engine.config.confinement.egress);
        let egress = if allow.is_empty() {
            remove_stale(&dir.join(EGRESS));
            None
        } else {
            Some(bind(&dir.join(EGRESS)).map_err(err(&dir.join(EGRESS)))?)
        };
        engine.tasks.spawn(control::serve(
            engine.clone(),
            id.to_string(),
            control,
            token.clone(),
        ));
        if let Some((listener, addr)) = gateway {
            engine.tasks.spawn(relay::serve(
                listener,
                addr,
                token.clone(),
                engine.tasks.clone(),
            ));
        }
        if let Some(listener) = egress {
            let log: Arc<dyn egress::Recorder> =
                egress::EventLog::new(engine.clone(), id.to_string());
            engine.tasks.spawn(egress::serve(
                listener,
                Arc::new(allow),
                log,
                token.clone(),
                engine.tasks.clone(),
            ));
        }
        if let Some(proxy) = &engine.git_proxy {
            let sock = dir.join(crate::git_proxy::GIT_SOCK);
            git::open(engine, proxy, id, &dir, &token).map_err(err(&sock))?;
        }
        if let Some(previous) = self.lock().insert(id.to_string(), token) {
            previous.cancel();
        }
        Ok(())
    }

    fn close(&self, engine: &Engine, id: &str) {
        if let Some(token) = self.lock().remove(id) {
            token.cancel();
        }
        if let Some(proxy) = &engine.git_proxy {
            proxy.set_task_port(id, None);
        }
        let dir = engine.home.run_dir(id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(task = id, "removing {}: {e}", dir.display()),
        }
    }

    fn sweep(&self, engine: &Engine, keep: &std::collections::HashSet<String>) {
        let Ok(entries) = std::fs::read_dir(engine.home.root.join("run")) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if !keep.contains(&name) && !self.is_open(&name) {
                self.close(engine, &name);
            }
        }
    }
}

/// `dir` (and `run/` above it) created 0700 if missing, and made 0700 if it was not.
fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// A fresh listener at `path`, replacing a socket a previous daemon left.
fn bind(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    remove_stale(path);
    tokio::net::UnixListener::bind(path)
}

fn remove_stale(path: &Path) {
    // Absent is the usual case; bind reports anything else.
    let _ = std::fs::remove_file(path);
}

/// The gateway's loopback address from its base URL (`http://127.0.0.1:PORT`).
fn gateway_addr(base: &str) -> Option<std::net::SocketAddr> {
    base.strip_prefix("http://")?.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_gateway_address_comes_from_its_base_url() {
        assert_eq!(
            gateway_addr("http://127.0.0.1:4123"),
            Some("127.0.0.1:4123".parse().unwrap())
        );
        assert_eq!(gateway_addr("https://x"), None);
    }

    #[test]
    fn the_run_dir_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run").join("abcd");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        make_private_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let fresh = tmp.path().join("run2").join("x");
        make_private_dir(&fresh).unwrap();
        for d in [fresh.parent().unwrap(), &fresh] {
            let mode = std::fs::metadata(d).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", d.display());
        }
    }
}
