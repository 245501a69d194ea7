use crate::engine::{control, Engine};
use axum::extract::State;
use axum::Json;
use drover_types::{DaemonStatus, StopDaemonRequest};
use std::sync::Arc;

/// From a task's own endpoint only that the daemon is there: `home` is the `DROVER_HOME` the
/// task was given (`/run/drover` when confined, else its run dir), and the daemon's host pid and
/// the fleet's counts (other tenants' activity) are 0.
pub async fn status(
    State(engine): State<Arc<Engine>>,
    scope: Option<axum::Extension<super::scoped::TaskScope>>,
) -> Json<DaemonStatus> {
    let mut status = DaemonStatus {
        pid: 0,
        version: env!("CARGO_PKG_VERSION").to_string(),
        home: String::new(),
        slots: engine.config.slots,
        running: 0,
        queued: 0,
        sandbox_mode: engine.sandboxes.kind(),
        sandbox_reason: engine.sandboxes.mode_reason().to_string(),
    };
    match scope {
        Some(axum::Extension(scope)) => {
            status.home = match crate::engine::confine::confined(&engine) {
                true => drover_shim::SANDBOX_RUN_DIR.to_string(),
                false => engine.home.run_dir(&scope.0).display().to_string(),
            };
        }
        None => {
            status.pid = std::process::id();
            status.home = engine.home.root.display().to_string();
            status.running = engine.used_slots();
            status.queued = engine.store.queued().await.map(|q| q.len()).unwrap_or(0);
        }
    }
    Json(status)
}

/// Stops the daemon. Without `stop_tasks`, running agents stay with their shims.
pub async fn stop(
    State(engine): State<Arc<Engine>>,
    body: Option<super::body::ApiJson<StopDaemonRequest>>,
) -> Json<serde_json::Value> {
    let stop_tasks = body.map(|b| b.0.stop_tasks).unwrap_or(false);
    let mut stopped = vec![];
    if stop_tasks {
        // Nothing new starts while we stop what runs.
        let queued = engine.store.queued().await.unwrap_or_default();
        for id in queued {
            let _ = control::stop(&engine, &id).await;
        }
        let active = engine.store.active().await.unwrap_or_default();
        let handles: Vec<_> = active
            .into_iter()
            .map(|t| {
                let engine = engine.clone();
                let tracker = engine.tasks.clone();
                tracker.spawn(async move { control::stop(&engine, &t.id).await.map(|t| t.id) })
            })
            .collect();
        for h in handles {
            if let Ok(Ok(id)) = h.await {
                stopped.push(id);
            }
        }
        // Let supervisors finish committing before the runtime goes away (each one signals
        // when it lets go of its task).
        let mut rx = engine.subscribe();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        while engine.used_slots() > 0 {
            tokio::select! {
                r = rx.changed() => if r.is_err() { break },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
    }
    // After this answer is written: the listener then stops accepting and drains.
    let e = engine.clone();
    engine.tasks.spawn(async move {
        e.shutdown();
    });
    Json(serde_json::json!({ "stopping": true, "stopped_tasks": stopped }))
}

/// `GET /v1/health`: `{ok: true, version}`; no key over TCP (load balancers, `drover doctor`).
pub async fn health() -> Json<super::openapi::Health> {
    Json(super::openapi::Health {
        ok: true,
        version: env!("CARGO_PKG_VERSION").to_string(),
    })
}
