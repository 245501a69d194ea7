//! Conformance: pools.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::{finish, new_pool, pool_task};
use crate::{PoolStats, Store, StoreError, TaskPatch};
use drover_types::{PoolState, TaskState, Verdict};
use serde_json::json;
use std::sync::Arc;

/// A pool's event log: seq per pool, the latest `limit`, oldest first.
pub async fn pool_events_are_the_latest(store: Arc<dyn Store>) {
    for i in 0..30 {
        store
            .pool_event("p", "note", json!({ "i": i }))
            .await
            .unwrap();
    }
    store.pool_event("q", "note", json!({})).await.unwrap();
    let latest = store.pool_events("p", 10).await.unwrap();
    let seqs: Vec<i64> = latest.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (21..=30).collect::<Vec<_>>());
    assert_eq!(latest[9].data, json!({ "i": 29 }));
    assert_eq!(latest[9].kind, "note");
    assert_eq!(store.pool_events("q", 10).await.unwrap()[0].seq, 1);
}

/// Create, get, list; a taken name; an unknown pool.
pub async fn pool_create_get_list(store: Arc<dyn Store>) {
    let mut p = new_pool("alpha", 2, Some(5));
    p.allowed_models = Some(vec!["m1".into()]);
    p.protect = vec!["Cargo.lock".into()];
    p.verify = vec!["make test".into()];
    p.timeout_secs = Some(600);
    p.limits.pids = Some(32);
    p.team = Some("platform".into());
    p.pr = Some(drover_types::PrOptions {
        draft: true,
        base: Some("develop".into()),
        title: None,
        allow_ci_changes: false,
    });
    let created = store.create_pool(p).await.unwrap();
    assert_eq!(
        created.pr.as_ref().map(|o| (o.draft, o.base.as_deref())),
        Some((true, Some("develop")))
    );
    assert_eq!(created.team.as_deref(), Some("platform"));
    assert_eq!(created.state, PoolState::Running);
    assert_eq!((created.slots, created.count_total), (2, Some(5)));
    assert_eq!(created.allowed_models, Some(vec!["m1".to_string()]));
    assert_eq!(created.protect, ["Cargo.lock"]);
    assert_eq!(created.verify, ["make test"]);
    assert_eq!(created.timeout_secs, Some(600));
    assert_eq!(created.limits.pids, Some(32));
    assert_eq!((created.launched, created.notified), (0, false));
    assert_eq!(store.get_pool("alpha").await.unwrap(), created);
    assert!(matches!(
        store.create_pool(new_pool("alpha", 1, None)).await,
        Err(StoreError::Exists(name)) if name == "alpha"
    ));
    store.create_pool(new_pool("beta", 1, None)).await.unwrap();
    let names: Vec<String> = store
        .list_pools()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["alpha", "beta"]);
    assert!(matches!(
        store.get_pool("gamma").await,
        Err(StoreError::PoolNotFound(_))
    ));
    assert!(matches!(
        store
            .set_pool_state("gamma", PoolState::Stopped, None, false)
            .await,
        Err(StoreError::PoolNotFound(_))
    ));
    let stopped = store
        .set_pool_state("beta", PoolState::Stopped, Some("by request"), false)
        .await
        .unwrap();
    assert_eq!(stopped.state, PoolState::Stopped);
    assert_eq!(stopped.stop_reason.as_deref(), Some("by request"));
    assert!(store.mark_pool_notified("beta").await.unwrap());
    assert!(!store.mark_pool_notified("beta").await.unwrap());
    let restarted = store
        .set_pool_state("beta", PoolState::Running, None, true)
        .await
        .unwrap();
    assert!(
        !restarted.notified,
        "a new streak allows a new notification"
    );
    assert!(restarted.streak_since >= stopped.streak_since);
}

/// Many launches at once never fill more than the pool's slots; a finished task frees one.
pub async fn pool_launch_never_exceeds_slots_under_concurrency(store: Arc<dyn Store>) {
    store.create_pool(new_pool("wide", 3, None)).await.unwrap();
    let mut handles = vec![];
    for i in 0..12 {
        let s = store.clone();
        handles.push(tokio::spawn(async move {
            s.launch_pool_task("wide", pool_task("wide", &format!("w{i:02}")))
                .await
                .unwrap()
        }));
    }
    let mut launched = vec![];
    for h in handles {
        if let Some(t) = h.await.unwrap() {
            assert_eq!(t.state, TaskState::Queued);
            assert_eq!(t.pool.as_deref(), Some("wide"));
            launched.push(t.id);
        }
    }
    assert_eq!(launched.len(), 3, "{launched:?}");
    assert_eq!(store.get_pool("wide").await.unwrap().launched, 3);
    assert!(store
        .launch_pool_task("wide", pool_task("wide", "w99"))
        .await
        .unwrap()
        .is_none());
    finish(
        &*store,
        &launched[0],
        TaskState::Succeeded,
        Some(Verdict::Success),
    )
    .await;
    assert!(store
        .launch_pool_task("wide", pool_task("wide", "w98"))
        .await
        .unwrap()
        .is_some());
    assert!(store
        .launch_pool_task("wide", pool_task("wide", "w97"))
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        store.launch_pool_task("none", pool_task("none", "x")).await,
        Err(StoreError::PoolNotFound(_))
    ));
}

/// A pool stops launching at its count and when it is not running.
pub async fn pool_launch_respects_count_and_state(store: Arc<dyn Store>) {
    store
        .create_pool(new_pool("two", 5, Some(2)))
        .await
        .unwrap();
    for id in ["c1", "c2"] {
        assert!(store
            .launch_pool_task("two", pool_task("two", id))
            .await
            .unwrap()
            .is_some());
        finish(&*store, id, TaskState::Succeeded, Some(Verdict::Success)).await;
    }
    assert!(store
        .launch_pool_task("two", pool_task("two", "c3"))
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        store.get_task("c3").await,
        Err(StoreError::NotFound(_))
    ));

    store.create_pool(new_pool("held", 5, None)).await.unwrap();
    store
        .set_pool_state("held", PoolState::Stopped, None, false)
        .await
        .unwrap();
    assert!(store
        .launch_pool_task("held", pool_task("held", "h1"))
        .await
        .unwrap()
        .is_none());
    assert_eq!(store.get_pool("held").await.unwrap().launched, 0);
}

/// Counters from the tasks: running, successes, failures, soft fails, cancelled (neither), the
/// streak of failures finished since `streak_since`, newest reasons first.
pub async fn pool_stats_come_from_tasks(store: Arc<dyn Store>) {
    store.create_pool(new_pool("s", 10, None)).await.unwrap();
    let ends = [
        ("s1", TaskState::Failed, Some(Verdict::Fail)),
        ("s2", TaskState::Succeeded, Some(Verdict::Success)),
        ("s3", TaskState::Failed, Some(Verdict::Fail)),
        ("s4", TaskState::Cancelled, None),
        ("s5", TaskState::Succeeded, Some(Verdict::SoftFail)),
        ("s6", TaskState::Failed, Some(Verdict::Fail)),
    ];
    for (i, (id, state, verdict)) in ends.into_iter().enumerate() {
        store
            .launch_pool_task("s", pool_task("s", id))
            .await
            .unwrap()
            .unwrap();
        finish(&*store, id, state, verdict).await;
        // Fixed, ordered finish times (after the streak began).
        store
            .update(
                id,
                None,
                TaskPatch::new()
                    .cost_usd(Some(0.5))
                    .finished_at(Some(format!("2999-01-01T00:00:0{i}.000Z"))),
                vec![],
            )
            .await
            .unwrap();
    }
    store
        .launch_pool_task("s", pool_task("s", "s7"))
        .await
        .unwrap()
        .unwrap();
    let strict = store.pool_stats("s", true).await.unwrap();
    assert_eq!(
        strict,
        PoolStats {
            running: 1,
            finished: 6,
            successes: 1,
            failures: 4,
            soft_fails: 1,
            cancelled: 1,
            streak: 3,
            total_cost_usd: 3.0,
            last_reasons: vec!["s6 fail".into(), "s5 soft_fail".into(), "s3 fail".into()],
        }
    );
    let lenient = store.pool_stats("s", false).await.unwrap();
    assert_eq!((lenient.successes, lenient.failures), (2, 3));
    assert_eq!(lenient.streak, 1);
    assert_eq!(lenient.last_reasons, ["s6 fail"]);

    // Failures finished before the streak began count as failures, not in the streak.
    store.create_pool(new_pool("old", 1, None)).await.unwrap();
    store
        .launch_pool_task("old", pool_task("old", "o1"))
        .await
        .unwrap()
        .unwrap();
    finish(&*store, "o1", TaskState::Failed, Some(Verdict::Fail)).await;
    store
        .update(
            "o1",
            None,
            TaskPatch::new().finished_at(Some("2000-01-01T00:00:00.000Z".into())),
            vec![],
        )
        .await
        .unwrap();
    let old = store.pool_stats("old", true).await.unwrap();
    assert_eq!((old.failures, old.streak), (1, 0));
    assert!(old.last_reasons.is_empty());
    assert!(matches!(
        store.pool_stats("none", true).await,
        Err(StoreError::PoolNotFound(_))
    ));
}
