#![allow(clippy::unwrap_used, clippy::expect_used)]
use drover_store::{ListFilter, NewTask, SqliteStore, Store, StoreError, TaskPatch};
use drover_types::{EventKind, NewEvent, TaskState};
use serde_json::json;
use std::sync::Arc;

fn new_task(id: &str) -> NewTask {
    NewTask {
        id: id.into(),
        agent: "command".into(),
        repo: "/r".into(),
        base_ref: "HEAD".into(),
        prompt: "p".into(),
        permissions: drover_types::PermissionPolicy::Ask,
        ..Default::default()
    }
}

#[tokio::test]
async fn seq_is_contiguous_under_concurrent_writers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("s.db")).await.unwrap());
    store.create_task(new_task("aaaa1111")).await.unwrap();
    let mut handles = vec![];
    for i in 0..8 {
        let s = store.clone();
        handles.push(tokio::spawn(async move {
            for j in 0..25 {
                let ev = NewEvent::new(EventKind::Text, json!({"text": format!("{i}-{j}")}));
                s.update("aaaa1111", None, TaskPatch::new(), vec![ev.clone(), ev])
                    .await
                    .unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let evs = store.events("aaaa1111", 0, 10_000).await.unwrap();
    assert_eq!(evs.len(), 1 + 8 * 25 * 2);
    for (i, e) in evs.iter().enumerate() {
        assert_eq!(e.seq, i as i64 + 1);
    }
    assert_eq!(store.events("aaaa1111", 399, 10).await.unwrap().len(), 2);
}

#[tokio::test]
async fn state_changes_are_checked_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("s.db")).await.unwrap();
    store.create_task(new_task("bbbb2222")).await.unwrap();
    let (t, evs) = store
        .update(
            "bbbb2222",
            Some(&[TaskState::Queued]),
            TaskPatch::new()
                .state(TaskState::Preparing, json!({}))
                .stdout_offset(Some(42)),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(t.state, TaskState::Preparing);
    assert_eq!(t.stdout_offset, 42);
    assert_eq!(evs[0].kind, EventKind::State);
    assert_eq!(evs[0].seq, 2);
    let err = store
        .update(
            "bbbb2222",
            Some(&[TaskState::Queued]),
            TaskPatch::new().state(TaskState::Running, json!({})),
            vec![],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::WrongState { .. }), "{err}");
    // Nothing was written by the refused update.
    assert_eq!(store.events("bbbb2222", 0, 100).await.unwrap().len(), 2);
}

#[tokio::test]
async fn prefixes_queue_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    {
        let store = SqliteStore::open(&path).await.unwrap();
        for id in ["abc00001", "abd00002", "xyz00003"] {
            store.create_task(new_task(id)).await.unwrap();
        }
        assert!(matches!(
            store.find_task("ab").await,
            Err(StoreError::Ambiguous(..))
        ));
        assert_eq!(store.find_task("abd").await.unwrap().id, "abd00002");
        assert!(matches!(
            store.find_task("nope").await,
            Err(StoreError::NotFound(_))
        ));
        // LIKE wildcards are plain characters; an empty id matches nothing.
        for wild in ["%", "_", "ab%", "a_c", "%%%%%%%%"] {
            assert!(
                matches!(store.find_task(wild).await, Err(StoreError::NotFound(_))),
                "{wild:?} acted as a pattern"
            );
        }
        for empty in ["", " "] {
            assert!(matches!(
                store.find_task(empty).await,
                Err(StoreError::EmptyId)
            ));
        }
        let err = store.find_task("a").await.unwrap_err().to_string();
        assert!(
            err.contains("abc00001") && err.contains("abd00002"),
            "{err}"
        );
        store
            .update("abc00001", None, TaskPatch::new().requeue(), vec![])
            .await
            .unwrap();
    }
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(
        store.queued().await.unwrap(),
        vec!["abd00002", "xyz00003", "abc00001"]
    );
    assert_eq!(
        store.list_tasks(ListFilter::All, "").await.unwrap().len(),
        3
    );
    store.delete_task("xyz00003").await.unwrap();
    assert!(store.events("xyz00003", 0, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn list_pages_hold_summaries_and_get_holds_the_whole_task() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("s.db")).await.unwrap();
    let long = "é".repeat(300_000);
    for i in 0..5 {
        let mut t = new_task(&format!("cccc000{i}"));
        t.prompt = long.clone();
        t.cmd = Some(format!("echo {i}"));
        store.create_task(t).await.unwrap();
    }
    store
        .update(
            "cccc0001",
            None,
            TaskPatch::new().result(Some(long.clone())),
            vec![],
        )
        .await
        .unwrap();
    let mut after = 0;
    let mut seen = vec![];
    loop {
        let page = store
            .list_page(ListFilter::All, "", after, 2)
            .await
            .unwrap();
        assert!(page.len() <= 2);
        for t in &page {
            assert_eq!(t.prompt.chars().count(), drover_store::SUMMARY_CHARS + 1);
            assert!(t.prompt.ends_with('…'));
            seen.push(t.id.clone());
        }
        match page.last() {
            Some(t) if page.len() == 2 => after = t.queue_seq,
            _ => break,
        }
    }
    assert_eq!(
        seen,
        (0..5).map(|i| format!("cccc000{i}")).collect::<Vec<_>>()
    );
    let page = store.list_page(ListFilter::All, "", 0, 5).await.unwrap();
    assert_eq!(page[1].result.as_ref().unwrap().chars().count(), 501);
    assert_eq!(page[0].result, None);
    assert_eq!(page[3].cmd.as_deref(), Some("echo 3"));
    // Not summarised: the task itself.
    let whole = store.get_task("cccc0001").await.unwrap();
    assert_eq!(whole.prompt, long);
    assert_eq!(whole.result.as_deref(), Some(long.as_str()));
    // Active-or-recent: a finished task from before `since` is left out.
    store
        .update(
            "cccc0002",
            None,
            TaskPatch::new()
                .state(TaskState::Failed, json!({}))
                .finished_at(Some("2000-01-01T00:00:00.000Z".into())),
            vec![],
        )
        .await
        .unwrap();
    let recent = store
        .list_page(
            ListFilter::ActiveOrFinishedSince,
            "2020-01-01T00:00:00.000Z",
            0,
            10,
        )
        .await
        .unwrap();
    let ids: Vec<&str> = recent.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["cccc0000", "cccc0001", "cccc0003", "cccc0004"]);
}

#[tokio::test]
async fn event_pages_stop_at_a_byte_budget_and_pool_events_are_the_latest() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("s.db")).await.unwrap();
    store.create_task(new_task("eeee0001")).await.unwrap();
    let big = "z".repeat(10_000);
    let evs = (0..50)
        .map(|_| NewEvent::new(EventKind::Text, json!({ "text": big })))
        .collect();
    store
        .update("eeee0001", None, TaskPatch::new(), evs)
        .await
        .unwrap();
    // ~10 KB each: a 35 KB budget holds 3; a budget smaller than one event still gives one.
    let all = store.events("eeee0001", 0, 1000).await.unwrap();
    let s0 = all.iter().find(|e| e.kind == EventKind::Text).unwrap().seq - 1;
    let page = store
        .events_page("eeee0001", s0, 1000, 35_000)
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![s0 + 1, s0 + 2, s0 + 3]
    );
    let one = store
        .events_page("eeee0001", s0 + 3, 1000, 10)
        .await
        .unwrap();
    assert_eq!(one.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![s0 + 4]);
    let rest = store
        .events_page("eeee0001", s0 + 45, 1000, 1 << 20)
        .await
        .unwrap();
    assert_eq!(rest.len(), 5);

    for i in 0..30 {
        store
            .pool_event("p", "note", json!({ "i": i }))
            .await
            .unwrap();
    }
    let latest = store.pool_events("p", 10).await.unwrap();
    let seqs: Vec<i64> = latest.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (21..=30).collect::<Vec<_>>());
}
