//! The SQLite store: the conformance suite, and what only an embedded store has (reopening the
//! same file).
#![allow(clippy::unwrap_used, clippy::expect_used)]
use drover_store::conformance::new_task;
use drover_store::prelude::*;
use drover_store::{ListFilter, SqliteStore, TaskPatch};
use std::sync::Arc;

async fn open() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("s.db")).await.unwrap();
    (Arc::new(store), dir)
}

drover_store::conformance_tests!(open);

#[tokio::test]
async fn reopening_keeps_tasks_queue_order_and_seqs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    {
        let store = SqliteStore::open(&path).await.unwrap();
        for id in ["abc00001", "abd00002", "xyz00003"] {
            store.create_task(new_task(id)).await.unwrap();
        }
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
    let (_, evs) = store
        .update(
            "abc00001",
            None,
            TaskPatch::new(),
            vec![drover_types::NewEvent::new(
                drover_types::EventKind::Text,
                serde_json::json!({"text": "after reopen"}),
            )],
        )
        .await
        .unwrap();
    assert_eq!(evs[0].seq, 2);
}
