//! Conformance: the change feed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::{new_pool, new_task, pool_task, usage_row};
use crate::{ListFilter, Store, TaskPatch, UsageGroup};
use drover_types::{EventKind, NewEvent, PoolState, TaskState};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Every committed write bumps the change feed before it returns; reads and refused writes do
/// not; a follower waiting on the feed wakes.
pub async fn writes_notify_and_reads_do_not(store: Arc<dyn Store>) {
    let mut rx = store.subscribe();
    let mut bumped = move || {
        let changed = rx.has_changed().unwrap();
        rx.borrow_and_update();
        changed
    };
    store.create_task(new_task("nnnn0001")).await.unwrap();
    assert!(bumped(), "create_task");
    store
        .update(
            "nnnn0001",
            None,
            TaskPatch::new().pid(Some(1)),
            vec![NewEvent::new(EventKind::Text, json!({"text": "x"}))],
        )
        .await
        .unwrap();
    assert!(bumped(), "update");
    store.get_task("nnnn0001").await.unwrap();
    store.find_task("nnnn").await.unwrap();
    store.events("nnnn0001", 0, 10).await.unwrap();
    store.list_tasks(ListFilter::All, "").await.unwrap();
    store.queued().await.unwrap();
    assert!(!bumped(), "reads");
    store
        .update(
            "nnnn0001",
            Some(&[TaskState::Running]),
            TaskPatch::new().state(TaskState::Failed, json!({})),
            vec![],
        )
        .await
        .unwrap_err();
    assert!(!bumped(), "a refused update");
    store.create_pool(new_pool("np", 1, None)).await.unwrap();
    assert!(bumped(), "create_pool");
    store
        .launch_pool_task("np", pool_task("np", "nnnn0002"))
        .await
        .unwrap()
        .unwrap();
    assert!(bumped(), "launch_pool_task");
    store
        .launch_pool_task("np", pool_task("np", "nnnn0003"))
        .await
        .unwrap();
    assert!(!bumped(), "a launch without room writes nothing");
    store.pool_event("np", "note", json!({})).await.unwrap();
    assert!(bumped(), "pool_event");
    store
        .set_pool_state("np", PoolState::Stopped, None, false)
        .await
        .unwrap();
    assert!(bumped(), "set_pool_state");
    assert!(store.mark_pool_notified("np").await.unwrap());
    assert!(bumped(), "mark_pool_notified");
    assert!(!store.mark_pool_notified("np").await.unwrap());
    assert!(!bumped(), "a pool already notified writes nothing");
    store
        .set_pool_state("no-such-pool", PoolState::Stopped, None, false)
        .await
        .unwrap_err();
    assert!(!bumped(), "a refused set_pool_state");
    store
        .record_usage(&[usage_row("nnnn0001", 1, None, "2026-03-02T00:00:00.000Z")])
        .await
        .unwrap();
    assert!(bumped(), "record_usage");
    store
        .usage_report(&UsageGroup::Task.into(), None)
        .await
        .unwrap();
    store.usage_last_id().await.unwrap();
    store.pool_stats("np", true).await.unwrap();
    assert!(!bumped(), "reads");
    store.delete_task("nnnn0002").await.unwrap();
    assert!(bumped(), "delete_task");

    // A follower parked on the feed wakes on the next write.
    let mut follower = store.subscribe();
    follower.borrow_and_update();
    let waiting = tokio::spawn(async move {
        tokio::time::timeout(Duration::from_secs(10), follower.changed()).await
    });
    store
        .update("nnnn0001", None, TaskPatch::new().pid(Some(2)), vec![])
        .await
        .unwrap();
    assert!(matches!(waiting.await.unwrap(), Ok(Ok(()))));
    // Bumps from outside the store (in-memory changes of its user) reach the same followers.
    let mut rx = store.subscribe();
    rx.borrow_and_update();
    store.changes().bump();
    assert!(rx.has_changed().unwrap());
}
