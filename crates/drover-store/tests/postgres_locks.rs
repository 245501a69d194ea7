//! Build locks across two PostgreSQL stores on one database (two workers): at most `slots`
//! holders across both, and a waiter on one store is woken by the other's unlock through
//! LISTEN/NOTIFY alone (no polling here).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use drover_store::conformance::pg;
use drover_store::prelude::*;
use drover_store::{LockGrant, PgStore};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_never_exceed_the_slots_and_wake_each_other() {
    let url = pg::fresh_database().await;
    let stores: Vec<Arc<dyn Store>> = vec![
        Arc::new(PgStore::open(&url).await.unwrap()),
        Arc::new(PgStore::open(&url).await.unwrap()),
    ];
    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let mut joins = vec![];
    for i in 0..12 {
        let store = stores[i % 2].clone();
        let worker = format!("w{}", i % 2);
        let (inside, most) = (inside.clone(), most.clone());
        joins.push(tokio::spawn(async move {
            let ticket = format!("t{i}");
            let mut rx = store.subscribe();
            loop {
                rx.borrow_and_update();
                match store
                    .try_lock("shared", 2, &format!("task{i}"), &worker, &ticket)
                    .await
                    .unwrap()
                {
                    LockGrant::Granted => break,
                    LockGrant::Busy => {}
                    other => panic!("{other:?}"),
                }
                // Only a notification (ours or the other store's) may wake us.
                tokio::time::timeout(Duration::from_secs(20), rx.changed())
                    .await
                    .unwrap_or_else(|_| panic!("{ticket} was never woken"))
                    .unwrap();
            }
            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            for _ in 0..3 {
                store.locks().await.unwrap();
            }
            inside.fetch_sub(1, Ordering::SeqCst);
            store.unlock(&ticket).await.unwrap();
        }));
    }
    for j in joins {
        j.await.unwrap();
    }
    assert_eq!(
        most.load(Ordering::SeqCst),
        2,
        "more (or fewer) than 2 holders at once"
    );
    assert!(stores[0].locks().await.unwrap().is_empty());
}
