//! Keeps `slots` tasks busy, oldest queued first: this worker claims them (see
//! [`super::workers`]); slots are per worker.

use super::Engine;
use std::sync::Arc;
use std::time::Duration;

pub async fn run(engine: Arc<Engine>) {
    let stopping = engine.stopping();
    let mut last_gc = std::time::Instant::now();
    loop {
        if engine.is_stopping() {
            return;
        }
        if last_gc.elapsed() > Duration::from_secs(600) {
            super::recover::collect(&engine).await;
            last_gc = std::time::Instant::now();
        }
        if let Err(e) = super::pools::tick(&engine).await {
            tracing::warn!("pools: {e}");
        }
        if let Err(e) = fill(&engine).await {
            tracing::warn!("scheduler: {e}");
        }
        // A missed wake-up costs at most a second; the notify makes the usual case immediate.
        tokio::select! {
            _ = engine.wake.notified() => {}
            _ = stopping.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Supervises the claims that have no supervisor (taken back at start), then claims queued
/// tasks for the free slots — never more than `slots` held at once by this worker. The claim
/// (`FOR UPDATE SKIP LOCKED` on PostgreSQL) is what makes a task this worker's: a task is never
/// started from a read of the queue.
async fn fill(engine: &Arc<Engine>) -> Result<(), drover_store::StoreError> {
    for (id, _) in engine.claims() {
        if engine.is_stopping() {
            return Ok(());
        }
        if !engine.is_supervised(&id) && !engine.is_lost(&id) {
            engine.supervise(&id);
        }
    }
    let busy = engine.used_slots().max(engine.claims().len());
    let free = engine.config.slots.saturating_sub(busy);
    if free == 0 || engine.is_stopping() {
        return Ok(());
    }
    let claims = engine
        .store
        .claim(engine.worker(), free, engine.config.lease_secs)
        .await?;
    for claim in claims {
        engine.hold(&claim.id, claim.fence);
        engine.supervise(&claim.id);
    }
    Ok(())
}
