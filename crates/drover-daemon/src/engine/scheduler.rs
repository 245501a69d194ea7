//! Keeps `slots` tasks busy, oldest queued first.

use super::Engine;
use drover_types::TaskState;
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

async fn fill(engine: &Arc<Engine>) -> Result<(), drover_store::StoreError> {
    let free = engine.config.slots.saturating_sub(engine.used_slots());
    if free == 0 {
        return Ok(());
    }
    let queued = engine.store.queued().await?;
    for id in queued.into_iter().take(free) {
        if engine.is_stopping() {
            break;
        }
        // The supervisor moves the task to `preparing` itself; claiming the slot here first keeps
        // the count right even before that write lands.
        if engine.used_slots() >= engine.config.slots {
            break;
        }
        let task = engine.store.get_task(&id).await?;
        if task.state == TaskState::Queued {
            engine.supervise(&id);
        }
    }
    Ok(())
}
