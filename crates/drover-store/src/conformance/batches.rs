//! Conformance: batches (docs/design.md §9) — atomic creation, listing by team, state, retry,
//! and the slots every claim respects.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::new_task;
use crate::{NewBatch, NewTask, Store, StoreError, TaskPatch};
use drover_types::{BatchState, PrOptions, TaskState};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;

/// A batch named `name` over `repos`, `slots` at once.
pub fn new_batch(name: &str, repos: &[&str], slots: Option<i64>) -> NewBatch {
    NewBatch {
        name: name.into(),
        repos: repos.iter().map(|r| r.to_string()).collect(),
        prompt: "upgrade".into(),
        base_ref: "HEAD".into(),
        agent: "command".into(),
        cmd: Some("true".into()),
        slots,
        permissions: drover_types::PermissionPolicy::Ask,
        verify_rounds: 2,
        ..Default::default()
    }
}

/// One task per repo of the batch, ids `<prefix>0`, `<prefix>1`…
pub fn batch_tasks(prefix: &str, repos: &[&str]) -> Vec<NewTask> {
    repos
        .iter()
        .enumerate()
        .map(|(i, r)| NewTask {
            repo: r.to_string(),
            ..new_task(&format!("{prefix}{i}"))
        })
        .collect()
}

async fn end(store: &Arc<dyn Store>, id: &str, state: TaskState) {
    store
        .update(
            id,
            None,
            TaskPatch::new()
                .state(state, json!({}))
                .finished_at(Some(crate::now())),
            vec![],
        )
        .await
        .unwrap();
}

/// The batch and its tasks are stored together; a name used twice is `Exists` and adds no
/// task; the record round-trips; listing filters by team.
pub async fn batch_create_is_all_or_nothing(store: Arc<dyn Store>) {
    let repos = ["/a", "/b", "/c"];
    let mut b = new_batch("deps", &repos, Some(2));
    b.team = Some("t1".into());
    b.created_by = Some("ann".into());
    b.pr = Some(PrOptions {
        draft: true,
        base: Some("main".into()),
        ..Default::default()
    });
    b.verify = vec!["make test".into()];
    b.max_tokens = Some(1000);
    let rec = store
        .create_batch(b.clone(), batch_tasks("bt00000", &repos))
        .await
        .unwrap();
    assert_eq!(rec.state, BatchState::Running);
    assert_eq!(rec.repos, vec!["/a", "/b", "/c"]);
    assert_eq!((rec.slots, rec.max_tokens), (Some(2), Some(1000)));
    assert_eq!(rec.pr, b.pr);
    assert_eq!(rec.verify, vec!["make test"]);
    assert_eq!(rec.team.as_deref(), Some("t1"));
    assert!(rec.stopped_at.is_none());
    let tasks = store.batch_tasks("deps").await.unwrap();
    assert_eq!(tasks.len(), 3);
    assert!(tasks.iter().all(|t| t.batch.as_deref() == Some("deps")));
    assert_eq!(
        tasks.iter().map(|t| t.repo.as_str()).collect::<Vec<_>>(),
        repos
    );

    // Taken: refused, and none of the second call's tasks exist.
    let err = store
        .create_batch(
            new_batch("deps", &["/x"], None),
            batch_tasks("bx00000", &["/x"]),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Exists(ref n) if n == "deps"),
        "{err}"
    );
    assert!(matches!(
        store.get_task("bx000000").await,
        Err(StoreError::NotFound(_))
    ));
    // A task id already used fails the whole batch: no batch row either.
    let err = store
        .create_batch(
            new_batch("other", &["/y", "/z"], None),
            vec![
                NewTask {
                    repo: "/y".into(),
                    ..new_task("by000000")
                },
                NewTask {
                    repo: "/z".into(),
                    ..new_task("bt000000")
                },
            ],
        )
        .await;
    assert!(err.is_err());
    assert!(matches!(
        store.batch("other").await,
        Err(StoreError::BatchNotFound(_))
    ));
    assert!(matches!(
        store.get_task("by000000").await,
        Err(StoreError::NotFound(_))
    ));

    store
        .create_batch(
            new_batch("mine", &["/m"], None),
            batch_tasks("bm00000", &["/m"]),
        )
        .await
        .unwrap();
    let all: Vec<String> = store
        .batches(None)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(all.len(), 2);
    assert!(all.contains(&"deps".to_string()) && all.contains(&"mine".to_string()));
    let t1: Vec<String> = store
        .batches(Some("t1"))
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(t1, vec!["deps"]);
    assert!(store.batches(Some("t2")).await.unwrap().is_empty());

    let s = store
        .set_batch_state("deps", BatchState::Stopped)
        .await
        .unwrap();
    assert_eq!(s.state, BatchState::Stopped);
    assert!(s.stopped_at.is_some());
    assert!(matches!(
        store.set_batch_state("nope", BatchState::Stopped).await,
        Err(StoreError::BatchNotFound(_))
    ));
}

/// A retry makes a task only for repos whose latest task failed, was cancelled or
/// interrupted; a second retry with the same request makes none; the batch runs again.
pub async fn batch_retry_takes_only_the_failed(store: Arc<dyn Store>) {
    let repos = ["/a", "/b", "/c", "/d"];
    store
        .create_batch(new_batch("r", &repos, None), batch_tasks("rt00000", &repos))
        .await
        .unwrap();
    end(&store, "rt000000", TaskState::Succeeded).await;
    end(&store, "rt000001", TaskState::Failed).await;
    end(&store, "rt000002", TaskState::Cancelled).await;
    // rt000003 (/d) is still queued.
    store
        .set_batch_state("r", BatchState::Stopped)
        .await
        .unwrap();
    let again = batch_tasks("rr00000", &repos);
    let made = store.retry_batch("r", again.clone()).await.unwrap();
    let made_repos: Vec<&str> = made.iter().map(|t| t.repo.as_str()).collect();
    assert_eq!(made_repos, vec!["/b", "/c"]);
    assert!(made.iter().all(|t| t.batch.as_deref() == Some("r")));
    assert_eq!(
        store.batch("r").await.unwrap().state,
        BatchState::Running,
        "a retry runs the batch again"
    );
    // The same retry again: the latest tasks of /b and /c are queued now.
    let ids: Vec<NewTask> = batch_tasks("rs00000", &repos);
    assert!(store.retry_batch("r", ids).await.unwrap().is_empty());
    assert_eq!(store.batch_tasks("r").await.unwrap().len(), 6);
    assert!(matches!(
        store.retry_batch("none", vec![]).await,
        Err(StoreError::BatchNotFound(_))
    ));
}

/// A batch of 6 with slots 2: claims (several at a time, by several claimers) never hold more
/// than 2 of its tasks at once; ending one frees one slot; tasks of no batch are not held back.
pub async fn batch_slots_bound_claims(store: Arc<dyn Store>) {
    batch_slots_bound_claims_on(vec![store.clone(), store.clone(), store]).await;
}

/// [`batch_slots_bound_claims`] with claimers on several stores of one database.
pub async fn batch_slots_bound_claims_on(stores: Vec<Arc<dyn Store>>) {
    let first = stores[0].clone();
    let repos = ["/1", "/2", "/3", "/4", "/5", "/6"];
    first
        .create_batch(
            new_batch("s", &repos, Some(2)),
            batch_tasks("sl00000", &repos),
        )
        .await
        .unwrap();
    first.create_task(new_task("free0001")).await.unwrap();
    first.create_task(new_task("free0002")).await.unwrap();
    let mut done = HashSet::new();
    let mut rounds = 0;
    while done.len() < repos.len() {
        rounds += 1;
        assert!(rounds < 50, "the batch never finished");
        // Every claimer at once, each asking for more than the batch's slots.
        let mut handles = vec![];
        for (k, store) in stores.iter().enumerate() {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                store.claim(&format!("w{k}"), 5, 30).await.unwrap()
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        let tasks = first.batch_tasks("s").await.unwrap();
        let held: Vec<&str> = tasks
            .iter()
            .filter(|t| t.worker.is_some() && !t.state.is_terminal())
            .map(|t| t.id.as_str())
            .collect();
        assert!(held.len() <= 2, "round {rounds}: {held:?} held at once");
        assert!(
            !held.is_empty(),
            "round {rounds}: nothing of the batch claimed"
        );
        // The tasks of no batch went on the first round.
        if rounds == 1 {
            assert!(first.get_task("free0001").await.unwrap().worker.is_some());
            assert!(first.get_task("free0002").await.unwrap().worker.is_some());
        }
        // Claimed tasks start (active: they keep their slots); the oldest ends.
        for t in tasks.iter().filter(|t| held.contains(&t.id.as_str())) {
            if t.state == TaskState::Queued {
                first
                    .update(
                        &t.id,
                        None,
                        TaskPatch::new().state(TaskState::Running, json!({})),
                        vec![],
                    )
                    .await
                    .unwrap();
            }
        }
        end(&first, held[0], TaskState::Succeeded).await;
        done.insert(held[0].to_string());
    }
}
