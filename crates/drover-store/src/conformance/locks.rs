//! Conformance: build locks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::{LockGrant, Store};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Waits for a grant, retrying on the change feed (and every 20 ms, whatever it says).
async fn acquire(store: &dyn Store, name: &str, slots: u32, holder: &str, ticket: &str) {
    let mut rx = store.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match store
            .try_lock(name, slots, holder, "w1", ticket)
            .await
            .unwrap()
        {
            LockGrant::Granted => return,
            LockGrant::Busy => {}
            other => panic!("{ticket}: {other:?}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{ticket} never granted"
        );
        let _ = tokio::time::timeout(Duration::from_millis(20), rx.changed()).await;
    }
}

/// Sixteen tickets at once on a one-slot lock: never two holders, every one served.
pub async fn lock_is_exclusive_under_concurrency(store: Arc<dyn Store>) {
    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let served = Arc::new(AtomicUsize::new(0));
    let mut joins = vec![];
    for i in 0..16 {
        let (store, inside, most, served) =
            (store.clone(), inside.clone(), most.clone(), served.clone());
        joins.push(tokio::spawn(async move {
            let ticket = format!("t{i}");
            acquire(&*store, "build", 1, &format!("task{i}"), &ticket).await;
            let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            // Hold it across a few round trips to the store.
            for _ in 0..3 {
                store.locks().await.unwrap();
            }
            inside.fetch_sub(1, Ordering::SeqCst);
            served.fetch_add(1, Ordering::SeqCst);
            store.unlock(&ticket).await.unwrap();
        }));
    }
    for j in joins {
        j.await.unwrap();
    }
    assert_eq!(most.load(Ordering::SeqCst), 1, "two holders at once");
    assert_eq!(served.load(Ordering::SeqCst), 16);
    assert!(store.locks().await.unwrap().is_empty());
}

/// Two slots: two holders, later tickets wait in arrival order; unlock frees a slot for the
/// first waiter, never for one that came later.
pub async fn lock_slots_are_first_come_first_served(store: Arc<dyn Store>) {
    let s = &*store;
    assert_eq!(
        s.try_lock("db", 2, "a", "w1", "ta").await.unwrap(),
        LockGrant::Granted
    );
    assert_eq!(
        s.try_lock("db", 2, "b", "w2", "tb").await.unwrap(),
        LockGrant::Granted
    );
    assert_eq!(
        s.try_lock("db", 2, "c", "w1", "tc").await.unwrap(),
        LockGrant::Busy
    );
    assert_eq!(
        s.try_lock("db", 2, "d", "w2", "td").await.unwrap(),
        LockGrant::Busy
    );
    // A retry of a granted ticket stays granted.
    assert_eq!(
        s.try_lock("db", 2, "a", "w1", "ta").await.unwrap(),
        LockGrant::Granted
    );
    let l = s.locks().await.unwrap();
    assert_eq!(l.len(), 1);
    assert_eq!((l[0].name.as_str(), l[0].slots), ("db", 2));
    let who = |v: &[crate::LockEntry]| {
        v.iter()
            .map(|e| format!("{}@{}", e.holder, e.worker))
            .collect::<Vec<_>>()
    };
    assert_eq!(who(&l[0].holders), ["a@w1", "b@w2"]);
    assert_eq!(who(&l[0].waiters), ["c@w1", "d@w2"]);
    s.unlock("ta").await.unwrap();
    assert_eq!(
        s.try_lock("db", 2, "d", "w2", "td").await.unwrap(),
        LockGrant::Busy,
        "d jumped the queue"
    );
    assert_eq!(
        s.try_lock("db", 2, "c", "w1", "tc").await.unwrap(),
        LockGrant::Granted
    );
    // A waiter that gives up leaves the queue.
    s.unlock("td").await.unwrap();
    let l = s.locks().await.unwrap();
    assert_eq!(who(&l[0].holders), ["b@w2", "c@w1"]);
    assert!(l[0].waiters.is_empty());
    // Unlocking twice is harmless.
    s.unlock("ta").await.unwrap();
}

/// Another slot count is refused (and writes nothing) while the lock has tickets; once it has
/// none, a new count is fine.
pub async fn lock_slot_mismatch_is_refused(store: Arc<dyn Store>) {
    let s = &*store;
    assert_eq!(
        s.try_lock("x", 2, "a", "w1", "ta").await.unwrap(),
        LockGrant::Granted
    );
    assert_eq!(
        s.try_lock("x", 3, "b", "w1", "tb").await.unwrap(),
        LockGrant::SlotsDiffer(2)
    );
    let l = s.locks().await.unwrap();
    assert_eq!((l[0].holders.len(), l[0].waiters.len()), (1, 0));
    s.unlock("ta").await.unwrap();
    assert_eq!(
        s.try_lock("x", 3, "b", "w1", "tb").await.unwrap(),
        LockGrant::Granted
    );
    assert_eq!(s.locks().await.unwrap()[0].slots, 3);
}

/// A worker's tickets (holders and waiters) go with it; others' stay, and its slot is free.
pub async fn lock_release_worker_frees_its_tickets(store: Arc<dyn Store>) {
    let s = &*store;
    assert_eq!(
        s.try_lock("y", 1, "a", "dead", "ta").await.unwrap(),
        LockGrant::Granted
    );
    assert_eq!(
        s.try_lock("y", 1, "b", "live", "tb").await.unwrap(),
        LockGrant::Busy
    );
    assert_eq!(
        s.try_lock("z", 1, "c", "dead", "tc").await.unwrap(),
        LockGrant::Granted
    );
    assert_eq!(
        s.try_lock("y", 1, "d", "dead", "td").await.unwrap(),
        LockGrant::Busy
    );
    assert_eq!(s.release_worker("dead").await.unwrap(), 3);
    assert_eq!(s.release_worker("dead").await.unwrap(), 0);
    assert_eq!(
        s.try_lock("y", 1, "b", "live", "tb").await.unwrap(),
        LockGrant::Granted
    );
    let l = s.locks().await.unwrap();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].holders[0].holder, "b");
}

/// Waits until the change feed has been quiet for 300 ms (a PostgreSQL store also hears its
/// own writes back through LISTEN, a little later).
async fn settle(store: &dyn Store) {
    let mut rx = store.subscribe();
    rx.borrow_and_update();
    while tokio::time::timeout(Duration::from_millis(300), rx.changed())
        .await
        .is_ok()
    {
        rx.borrow_and_update();
    }
}

/// A new waiter and a grant notify; a waiter retrying in vain writes nothing (no notification
/// storm among waiters).
pub async fn lock_retries_in_vain_do_not_notify(store: Arc<dyn Store>) {
    let s = &*store;
    s.try_lock("n", 1, "a", "w1", "ta").await.unwrap();
    let v = s.changes().version();
    assert_eq!(
        s.try_lock("n", 1, "b", "w1", "tb").await.unwrap(),
        LockGrant::Busy
    );
    assert_ne!(v, s.changes().version(), "a new waiter is news");
    settle(s).await;
    let mut rx = s.subscribe();
    rx.borrow_and_update();
    for _ in 0..5 {
        assert_eq!(
            s.try_lock("n", 1, "b", "w1", "tb").await.unwrap(),
            LockGrant::Busy
        );
    }
    let quiet = tokio::time::timeout(Duration::from_millis(300), rx.changed()).await;
    assert!(quiet.is_err(), "a retry in vain notified");
    let v2 = s.changes().version();
    s.unlock("ta").await.unwrap();
    assert_ne!(s.changes().version(), v2, "an unlock is news");
}
