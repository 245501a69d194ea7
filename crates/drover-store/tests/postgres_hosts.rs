//! What only a shared store has: claims by several PgStores on one database (separate pools and
//! connections, as separate daemons), and `runs_on`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use drover_store::conformance::{
    batch_slots_bound_claims_on, claims_are_exclusive_under_concurrency_on, new_task, pg,
};
use drover_store::prelude::*;
use drover_store::{NewTask, PgStore};
use std::sync::Arc;

/// Three stores on one database, two claimers each, 200 queued tasks: each claimed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_are_exclusive_across_stores() {
    let url = pg::fresh_database().await;
    let mut stores: Vec<Arc<dyn Store>> = vec![];
    for _ in 0..3 {
        stores.push(Arc::new(PgStore::open(&url).await.unwrap()));
    }
    claims_are_exclusive_under_concurrency_on(stores).await;
}

/// Three stores ("workers") on one database claiming at once: a batch of 6 with slots 2 never
/// has more than 2 tasks claimed or active (the claim locks the batch's row).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batch_slots_hold_across_stores() {
    let url = pg::fresh_database().await;
    let mut stores: Vec<Arc<dyn Store>> = vec![];
    for _ in 0..3 {
        stores.push(Arc::new(PgStore::open(&url).await.unwrap()));
    }
    batch_slots_bound_claims_on(stores).await;
}

/// A task pinned to a worker (a local-path repo) is claimed only by it; an unpinned one by any.
#[tokio::test]
async fn runs_on_is_respected() {
    let url = pg::fresh_database().await;
    let a = PgStore::open(&url).await.unwrap();
    let b = PgStore::open(&url).await.unwrap();
    a.create_task(NewTask {
        runs_on: Some("A".into()),
        ..new_task("r0000001")
    })
    .await
    .unwrap();
    a.create_task(new_task("r0000002")).await.unwrap();
    let got = b.claim("B", 10, 30).await.unwrap();
    assert_eq!(
        got.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        ["r0000002"]
    );
    assert!(b.claim("B", 10, 30).await.unwrap().is_empty());
    let got = a.claim("A", 10, 30).await.unwrap();
    assert_eq!(
        got.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        ["r0000001"]
    );
}
