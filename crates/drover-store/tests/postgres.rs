//! The PostgreSQL store: the conformance suite on a fresh database per test (the cluster of
//! `scripts/test.sh`; see `drover_store::conformance::pg`), and what only a shared store has.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use drover_store::conformance::pg;
use drover_store::prelude::*;
use drover_store::PgStore;
use std::sync::Arc;

async fn open() -> (Arc<dyn Store>, ()) {
    let url = pg::fresh_database().await;
    (Arc::new(PgStore::open(&url).await.unwrap()), ())
}

drover_store::conformance_tests!(open);

// What only a shared store has: several `PgStore`s on one database stand for several daemons
// ("hosts"); each test makes its own database.

use drover_store::conformance::new_task;
use drover_store::{Idempotency, Idempotent, ListFilter, TaskPatch};
use drover_types::{EventKind, NewEvent};
use serde_json::json;
use sqlx::Connection;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{timeout, Instant};

/// Two stores ("hosts") on one fresh database, and its URL.
async fn two_hosts() -> (Arc<PgStore>, Arc<PgStore>, String) {
    let url = pg::fresh_database().await;
    let a = Arc::new(PgStore::open(&url).await.unwrap());
    let b = Arc::new(PgStore::open(&url).await.unwrap());
    (a, b, url)
}

/// Waits for the next bump of `rx`, at most `secs` seconds; false when none came.
async fn woke(rx: &mut watch::Receiver<u64>, secs: u64) -> bool {
    matches!(
        timeout(Duration::from_secs(secs), rx.changed()).await,
        Ok(Ok(()))
    )
}

/// A write through one store wakes a follower of the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_host_wakes_followers_on_another() {
    let (a, b, _) = two_hosts().await;
    let mut rx = b.subscribe();
    rx.borrow_and_update();
    a.create_task(new_task("wake0001")).await.unwrap();
    assert!(
        woke(&mut rx, 10).await,
        "B's feed did not move on A's write"
    );
    // And the other way round.
    let mut rx = a.subscribe();
    rx.borrow_and_update();
    b.update("wake0001", None, TaskPatch::new().pid(Some(7)), vec![])
        .await
        .unwrap();
    assert!(
        woke(&mut rx, 10).await,
        "A's feed did not move on B's write"
    );
    assert_eq!(a.get_task("wake0001").await.unwrap().pid, Some(7));
}

/// A follower on host B, reading only when B's feed moves, sees every event that host A's
/// concurrent writers append (4 tasks × 50), in seq order, none missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_on_another_host_sees_every_event_in_order() {
    let (a, b, _) = two_hosts().await;
    const TASKS: usize = 4;
    const EACH: usize = 50;
    let ids: Vec<String> = (0..TASKS).map(|i| format!("foll000{i}")).collect();
    for id in &ids {
        a.create_task(new_task(id)).await.unwrap();
    }
    let mut rx = b.subscribe();
    rx.borrow_and_update();
    let writers: Vec<_> = ids
        .iter()
        .map(|id| {
            let (a, id) = (a.clone(), id.clone());
            tokio::spawn(async move {
                for j in 0..EACH {
                    let ev = NewEvent::new(EventKind::Text, json!({ "text": format!("{id}-{j}") }));
                    a.update(&id, None, TaskPatch::new(), vec![ev])
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    // Each task: its `queued` state event (seq 1), then the writer's events.
    let mut seen: BTreeMap<String, i64> = ids.iter().map(|id| (id.clone(), 0)).collect();
    let want = (1 + EACH) as i64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.values().any(|&s| s < want) {
        for (id, after) in seen.iter_mut() {
            for e in b.events(id, *after, 1000).await.unwrap() {
                assert_eq!(
                    e.seq,
                    *after + 1,
                    "{id}: a gap or disorder after seq {after}"
                );
                if e.seq > 1 {
                    let j = e.seq - 2;
                    assert_eq!(e.data, json!({ "text": format!("{id}-{j}") }));
                }
                *after = e.seq;
            }
        }
        if seen.values().all(|&s| s >= want) {
            break;
        }
        // Only a bump makes B read again: a lost notification would stall here.
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            matches!(timeout(left, rx.changed()).await, Ok(Ok(()))),
            "B's follower was not woken; seen {seen:?}"
        );
    }
    for w in writers {
        w.await.unwrap();
    }
    assert!(seen.values().all(|&s| s == want), "{seen:?}");
}

/// Writers on two hosts appending to one task at once keep its seqs contiguous; creates on
/// both take distinct queue positions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_writing_one_task_keep_seqs_contiguous() {
    let (a, b, _) = two_hosts().await;
    a.create_task(new_task("cont0001")).await.unwrap();
    let mut joins = vec![];
    for i in 0..8 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        joins.push(tokio::spawn(async move {
            for j in 0..20 {
                let ev = NewEvent::new(EventKind::Text, json!({ "text": format!("{i}-{j}") }));
                s.update("cont0001", None, TaskPatch::new(), vec![ev.clone(), ev])
                    .await
                    .unwrap();
            }
            // And a create per writer, on its host.
            s.create_task(new_task(&format!("cont1{i:03}")))
                .await
                .unwrap();
        }));
    }
    for j in joins {
        j.await.unwrap();
    }
    let evs = b.events("cont0001", 0, 10_000).await.unwrap();
    assert_eq!(evs.len(), 1 + 8 * 20 * 2);
    for (i, e) in evs.iter().enumerate() {
        assert_eq!(e.seq, i as i64 + 1);
    }
    assert_eq!(a.get_task("cont0001").await.unwrap().next_seq, 322);
    let all = a.list_tasks(ListFilter::All, "").await.unwrap();
    assert_eq!(all.len(), 9);
    let seqs: std::collections::BTreeSet<i64> = all.iter().map(|t| t.queue_seq).collect();
    assert_eq!(seqs.len(), 9, "queue positions collide");
}

/// One idempotency key used at once through two hosts makes one task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_idempotency_key_on_two_hosts_makes_one_task() {
    let (a, b, _) = two_hosts().await;
    let idem = Idempotency {
        scope: "team:a".into(),
        key: "k1".into(),
        body_hash: "h1".into(),
        not_before: "2020-01-01T00:00:00.000Z".into(),
    };
    let mut joins = vec![];
    for i in 0..12 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let idem = idem.clone();
        joins.push(tokio::spawn(async move {
            s.create_task_idempotent(new_task(&format!("idem00{i:02}")), &idem)
                .await
                .unwrap()
        }));
    }
    let (mut created, mut ids) = (0, std::collections::BTreeSet::new());
    for j in joins {
        match j.await.unwrap() {
            Idempotent::Created(t) => {
                created += 1;
                ids.insert(t.id);
            }
            Idempotent::Replayed(t) => {
                ids.insert(t.id);
            }
            Idempotent::Conflict(id) => panic!("same body, conflict with {id}"),
        }
    }
    assert_eq!((created, ids.len()), (1, 1), "{ids:?}");
    assert_eq!(b.list_tasks(ListFilter::All, "").await.unwrap().len(), 1);
}

/// Listener connections killed by the server: each store reconnects, and later writes on one
/// host still wake the other's followers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_listener_reconnects() {
    let (a, b, url) = two_hosts().await;
    a.create_task(new_task("kill0001")).await.unwrap();
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    // This database's listeners only: other tests share the cluster.
    let listeners = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
                     AND application_name = 'drover' AND query LIKE 'LISTEN%'";
    let before: Vec<i32> = sqlx::query_scalar(listeners)
        .fetch_all(&mut admin)
        .await
        .unwrap();
    assert_eq!(before.len(), 2, "one listener per store: {before:?}");
    let killed: Vec<bool> = sqlx::query_scalar(&format!(
        "SELECT pg_terminate_backend(pid) FROM ({listeners}) l"
    ))
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(killed, vec![true, true]);
    // Both come back (new backends).
    drover_poll(Duration::from_secs(20), || {
        let url = url.clone();
        let before = before.clone();
        async move {
            let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
            let now: Vec<i32> = sqlx::query_scalar(listeners)
                .fetch_all(&mut c)
                .await
                .unwrap();
            now.len() == 2 && now.iter().all(|p| !before.contains(p))
        }
    })
    .await;
    // A's writes wake B's follower: it reads only when woken, and a reconnect's own bump
    // (which may still come) is not enough to see the write.
    for (i, (writer, follower)) in [(&a, &b), (&b, &a)].into_iter().enumerate() {
        let mut rx = follower.subscribe();
        rx.borrow_and_update();
        let text = format!("after the kill {i}");
        writer
            .update(
                "kill0001",
                None,
                TaskPatch::new(),
                vec![NewEvent::new(EventKind::Text, json!({ "text": text }))],
            )
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                matches!(timeout(left, rx.changed()).await, Ok(Ok(()))),
                "write {i} did not wake the other host after the kill"
            );
            let evs = follower.events("kill0001", 0, 100).await.unwrap();
            if evs.iter().any(|e| e.data == json!({ "text": text })) {
                break;
            }
        }
    }
}

/// Four daemons starting at once on an empty database: the migrations race under sqlx's
/// advisory lock; every start succeeds and the schema is made once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_stores_opening_at_once_make_one_schema() {
    let url = pg::fresh_database().await;
    let opens = (0..4).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { PgStore::open(&url).await })
    });
    let stores: Vec<PgStore> = futures::future::join_all(opens)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
    let applied: Vec<(i64, bool)> =
        sqlx::query_as("SELECT version, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut c)
            .await
            .unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".sql")
        })
        .count();
    assert_eq!(applied.len(), files, "{applied:?}");
    assert!(applied.iter().all(|(_, ok)| *ok));
    let versions: std::collections::BTreeSet<i64> = applied.iter().map(|(v, _)| *v).collect();
    assert_eq!(versions.len(), files);
    // One store's write is every store's.
    stores[0].create_task(new_task("four0001")).await.unwrap();
    for s in &stores {
        assert_eq!(s.get_task("four0001").await.unwrap().id, "four0001");
    }
}

/// Polls `check` until true, at most `within`.
async fn drover_poll<F, Fut>(within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `drover_time` writes the database's clock in drover's time format, so lease times compare
/// as text with `drover_store::now()`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_clock_reads_as_drover_times() {
    let url = pg::fresh_database().await;
    let _store = PgStore::open(&url).await.unwrap();
    let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
    let before = drover_store::now();
    let (db, later): (String, String) =
        sqlx::query_as("SELECT drover_time(now()), drover_time(now() + interval '30 seconds')")
            .fetch_one(&mut c)
            .await
            .unwrap();
    let after = drover_store::now();
    assert_eq!(db.len(), before.len(), "{db} vs {before}");
    let parsed = chrono::DateTime::parse_from_rfc3339(&db).unwrap();
    assert_eq!(
        parsed.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        db
    );
    // The same clock on one machine: within the bounds (a second of slack for rounding).
    let slack = |s: &str, secs: i64| {
        (chrono::DateTime::parse_from_rfc3339(s).unwrap() + chrono::Duration::seconds(secs))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    assert!(
        slack(&before, -1) <= db && db <= slack(&after, 1),
        "{before} {db} {after}"
    );
    assert!(later > after, "a lease 30 s ahead reads as later");
}
