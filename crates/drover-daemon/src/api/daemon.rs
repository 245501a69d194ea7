use crate::engine::{control, Engine};
use axum::extract::State;
use axum::Json;
use drover_types::{DaemonStatus, StopDaemonRequest};
use std::sync::Arc;

/// From a task's own endpoint, `home` is that task's run dir (the `DROVER_HOME` it was given),
/// not the daemon's.
pub async fn status(
    State(engine): State<Arc<Engine>>,
    scope: Option<axum::Extension<super::scoped::TaskScope>>,
) -> Json<DaemonStatus> {
    let queued = engine.store.queued().await.map(|q| q.len()).unwrap_or(0);
    let home = match scope {
        Some(axum::Extension(scope)) => engine.home.run_dir(&scope.0),
        None => engine.home.root.clone(),
    };
    Json(DaemonStatus {
        pid: std::process::id(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        home: home.display().to_string(),
        slots: engine.config.slots,
        running: engine.used_slots(),
        queued,
        sandbox_mode: engine.sandboxes.kind(),
        sandbox_reason: engine.sandboxes.mode_reason().to_string(),
    })
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
