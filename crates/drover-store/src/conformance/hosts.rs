//! Conformance: workers, claims, leases and fencing (docs/design.md §8).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::new_task;
use crate::{Fence, Store, StoreError, TaskPatch, WorkerSpec};
use drover_types::{EventKind, NewEvent, TaskState};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Polls `f` until it holds, at most 5 seconds.
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !f().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Claims by `stores.len()` claimers at once, each taking a few at a time until the queue is
/// empty: every task is claimed exactly once, attempt 1, by the claimer the row names, in
/// queue order per claimer.
pub async fn claims_are_exclusive_under_concurrency_on(stores: Vec<Arc<dyn Store>>) {
    let first = stores[0].clone();
    let n = 200;
    for i in 0..n {
        first
            .create_task(new_task(&format!("c{i:07}")))
            .await
            .unwrap();
    }
    let mut handles = vec![];
    for (k, store) in stores.into_iter().enumerate() {
        for j in 0..2 {
            let store = store.clone();
            let worker = format!("w{k}-{j}");
            handles.push(tokio::spawn(async move {
                let mut got = vec![];
                loop {
                    let claims = store.claim(&worker, 3, 30).await.unwrap();
                    if claims.is_empty() {
                        return got;
                    }
                    got.extend(claims);
                }
            }));
        }
    }
    let mut by_id: HashMap<String, String> = HashMap::new();
    for h in handles {
        let claims = h.await.unwrap();
        let ids: Vec<&String> = claims.iter().map(|c| &c.id).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted, "a claimer's claims come in queue order");
        for c in claims {
            assert_eq!(c.fence.attempt, 1, "{}", c.id);
            assert!(!c.fence.lapsed);
            let prev = by_id.insert(c.id.clone(), c.fence.worker.clone());
            assert!(prev.is_none(), "{} claimed twice", c.id);
        }
    }
    assert_eq!(by_id.len(), n, "every queued task claimed");
    for (id, worker) in by_id.iter().take(20) {
        let t = first.get_task(id).await.unwrap();
        assert_eq!(t.worker.as_deref(), Some(worker.as_str()));
        assert_eq!((t.attempt, t.state), (1, TaskState::Queued));
        assert!(t.lease_until.is_some());
    }
}

/// Three claimers on one store at once.
pub async fn claims_are_exclusive_under_concurrency(store: Arc<dyn Store>) {
    claims_are_exclusive_under_concurrency_on(vec![store.clone(), store.clone(), store]).await;
}

/// A fenced write by a stale claim fails with `Fenced` and changes nothing (state, events,
/// next seq); a take-over fence works only once the lease lapsed, and only once.
pub async fn fenced_writes_of_a_stale_claim_change_nothing(store: Arc<dyn Store>) {
    store.create_task(new_task("f0000001")).await.unwrap();
    // A lease of 0 seconds lapses at once.
    let a = store.claim("A", 1, 0).await.unwrap();
    assert_eq!(a.len(), 1);
    let fa = a[0].fence.clone();
    assert_eq!(fa, Fence::new("A", 1));
    // The holder writes with its fence.
    store
        .update(
            "f0000001",
            Some(&[TaskState::Queued]),
            TaskPatch::new()
                .state(TaskState::Preparing, json!({}))
                .fence(fa.clone()),
            vec![],
        )
        .await
        .unwrap();
    // A take-over before the lease lapsed fails: A renews it.
    store.heartbeat("A", 30).await.unwrap();
    let take = Fence {
        lapsed: true,
        ..fa.clone()
    };
    let err = store
        .update(
            "f0000001",
            None,
            TaskPatch::new()
                .state(TaskState::Queued, json!({}))
                .worker(None)
                .lease_until(None)
                .fence(take.clone()),
            vec![],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Fenced { .. }), "{err}");
    assert_eq!(
        store.get_task("f0000001").await.unwrap().state,
        TaskState::Preparing
    );
    // Let it lapse (a heartbeat of 0 seconds), then take it over.
    store.heartbeat("A", 0).await.unwrap();
    eventually("the lease lapses", || async {
        store
            .lapsed_tasks()
            .await
            .unwrap()
            .iter()
            .any(|t| t.id == "f0000001")
    })
    .await;
    store
        .update(
            "f0000001",
            None,
            TaskPatch::new()
                .state(TaskState::Queued, json!({"reason": "lost"}))
                .worker(None)
                .lease_until(None)
                .fence(take.clone()),
            vec![],
        )
        .await
        .unwrap();
    let b = store.claim("B", 5, 30).await.unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].fence, Fence::new("B", 2));
    let before = store.get_task("f0000001").await.unwrap();
    let events = store.events("f0000001", 0, 1000).await.unwrap().len();
    // A's stale claim, plain and as a take-over: refused, nothing written.
    for fence in [fa.clone(), take] {
        let err = store
            .update(
                "f0000001",
                None,
                TaskPatch::new()
                    .state(TaskState::Running, json!({}))
                    .pid(Some(1))
                    .fence(fence),
                vec![NewEvent::new(EventKind::Text, json!({"text": "stale"}))],
            )
            .await
            .unwrap_err();
        match err {
            StoreError::Fenced {
                id,
                worker,
                attempt,
                holder,
            } => {
                assert_eq!(
                    (id.as_str(), worker.as_str(), attempt),
                    ("f0000001", "A", 1)
                );
                assert_eq!(holder, "worker B attempt 2");
            }
            e => panic!("expected Fenced, got {e}"),
        }
    }
    let after = store.get_task("f0000001").await.unwrap();
    assert_eq!(after.state, TaskState::Queued);
    assert_eq!(after.pid, None);
    assert_eq!(after.next_seq, before.next_seq);
    assert_eq!(after.worker.as_deref(), Some("B"));
    assert_eq!(
        store.events("f0000001", 0, 1000).await.unwrap().len(),
        events
    );
}

/// A heartbeat renews only its worker's non-terminal tasks and returns their claims; the
/// others' lapse.
pub async fn heartbeat_renews_only_its_own_tasks(store: Arc<dyn Store>) {
    for id in ["h0000001", "h0000002", "h0000003"] {
        store.create_task(new_task(id)).await.unwrap();
    }
    assert_eq!(store.claim("A", 1, 0).await.unwrap()[0].id, "h0000001");
    assert_eq!(store.claim("B", 1, 0).await.unwrap()[0].id, "h0000002");
    let c = store.claim("A", 1, 0).await.unwrap();
    assert_eq!(c[0].id, "h0000003");
    // A's second task ends: no lease any more.
    store
        .update(
            "h0000003",
            None,
            TaskPatch::new()
                .state(TaskState::Cancelled, json!({}))
                .lease_until(None)
                .fence(c[0].fence.clone()),
            vec![],
        )
        .await
        .unwrap();
    let held = store.heartbeat("A", 30).await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].id, "h0000001");
    assert_eq!(held[0].fence, Fence::new("A", 1));
    eventually("B's task lapses", || async {
        let lapsed: Vec<String> = store
            .lapsed_tasks()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.id)
            .collect();
        lapsed == ["h0000002"]
    })
    .await;
    assert!(store.heartbeat("C", 30).await.unwrap().is_empty());
}

/// Registered workers are listed with their held tasks; one whose heartbeat is older than its
/// lease is lapsed; re-registering updates it.
pub async fn workers_are_listed_with_running_and_lapse(store: Arc<dyn Store>) {
    let spec = |name: &str, lease_secs| WorkerSpec {
        name: name.into(),
        addr: Some("10.0.0.1:7777".into()),
        slots: 4,
        lease_secs,
    };
    store.register_worker(&spec("A", 30)).await.unwrap();
    store.register_worker(&spec("B", 0)).await.unwrap();
    store.create_task(new_task("k0000001")).await.unwrap();
    store.claim("A", 1, 30).await.unwrap();
    eventually("B lapses", || async {
        let w = store.workers().await.unwrap();
        w.len() == 2 && w[1].lapsed
    })
    .await;
    let w = store.workers().await.unwrap();
    assert_eq!((w[0].name.as_str(), w[1].name.as_str()), ("A", "B"));
    assert_eq!((w[0].running, w[1].running), (1, 0));
    assert!(!w[0].lapsed);
    assert_eq!(w[0].slots, 4);
    assert_eq!(w[0].addr.as_deref(), Some("10.0.0.1:7777"));
    assert_eq!(
        w[0].to_info().state,
        drover_types::WorkerState::Live,
        "{:?}",
        w[0]
    );
    // B comes back with a longer lease.
    store.register_worker(&spec("B", 30)).await.unwrap();
    let w = store.workers().await.unwrap();
    assert!(!w[1].lapsed);
    assert_eq!(w[1].lease_secs, 30);
}
