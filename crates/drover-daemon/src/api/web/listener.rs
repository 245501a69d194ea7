//! The dashboard's loopback listener (`web_listen`, see [`super`]): bound at start (a bind error
//! is one line naming the address), its address written to `DROVER_HOME/web.addr`, served by
//! the same loop as the other listeners ([`crate::listen`]) with a small share of connections.

use super::gate::{self, Loopback};
use super::pages::{self, Door, Kind};
use crate::engine::Engine;
use crate::DaemonError;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `DROVER_HOME/web.addr`: the loopback listener's bound address (`ip:port`, one line).
pub fn addr_file(home: &Path) -> PathBuf {
    home.join("web.addr")
}

/// Binds `addr` and writes `web.addr`.
pub async fn bind(addr: SocketAddr, home: &Path) -> Result<tokio::net::TcpListener, DaemonError> {
    let file = addr_file(home);
    // A previous daemon's address is never mistaken for this one's.
    let _ = std::fs::remove_file(&file);
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        DaemonError::Listen(format!(
            "cannot listen on {addr} (web_listen, the web dashboard): {e}; pick another port \
             or set web_listen = \"off\""
        ))
    })?;
    let bound = listener
        .local_addr()
        .map_err(|e| DaemonError::Listen(format!("web_listen {addr}: {e}")))?;
    std::fs::write(&file, format!("{bound}\n"))
        .map_err(|e| DaemonError::Listen(format!("cannot write {}: {e}", file.display())))?;
    tracing::info!(
        "web dashboard on http://{bound} (address in {}; `drover web` prints a login URL)",
        file.display()
    );
    Ok(listener)
}

/// The loopback listener's router: the `Host` check around everything; the pages; the API
/// behind the owner's session cookie ([`gate::owner`]).
pub fn router(engine: Arc<Engine>, port: u16) -> axum::Router {
    let api = crate::api::web_router(
        engine.clone(),
        Loopback {
            engine: engine.clone(),
            port,
        },
    );
    pages::router(Door {
        engine,
        kind: Kind::Loopback { port },
    })
    .fallback_service(api)
    .layer(axum::middleware::from_fn_with_state(port, gate::host))
}

/// Serves the loopback listener until the engine stops.
pub async fn serve(engine: Arc<Engine>, listener: tokio::net::TcpListener) {
    let port = match listener.local_addr() {
        Ok(a) => a.port(),
        Err(e) => {
            tracing::warn!("web dashboard: {e}");
            return;
        }
    };
    let shutdown = engine.stopping().cancelled_owned();
    let tasks = engine.tasks.clone();
    let app = router(engine, port);
    crate::listen::serve_with(
        listener,
        None,
        app,
        shutdown,
        &tasks,
        // One person's browser: a small share of the daemon's connections.
        (crate::listen::connection_cap() / 8).max(32),
    )
    .await;
}
