//! The PostgreSQL store's areas beyond tasks, where several daemons share one database: two
//! `PgStore`s (two connection pools, as two daemons have) on one fresh database race each other
//! for real (many concurrent calls), and the database's own guards are checked.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use drover_store::conformance::{new_pool, new_task, pg};
use drover_store::prelude::*;
use drover_store::{
    NewAuditRecord, NewKeyRecord, NewTask, PgStore, StoreError, TaskPatch, UsageBy, UsageGroup,
    UsageRow,
};
use drover_types::{Actor, Scope, TaskState, TeamInfo};
use serde_json::json;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Two stores (two daemons) on one fresh database, and a plain connection pool to look with.
async fn two_stores() -> (Arc<PgStore>, Arc<PgStore>, sqlx::PgPool) {
    let url = pg::fresh_database().await;
    let a = PgStore::open(&url).await.unwrap();
    let b = PgStore::open(&url).await.unwrap();
    let look = sqlx::PgPool::connect(&url).await.unwrap();
    (Arc::new(a), Arc::new(b), look)
}

fn pool_task(pool: &str, id: &str) -> NewTask {
    NewTask {
        pool: Some(pool.into()),
        ..new_task(id)
    }
}

async fn tasks_of(look: &sqlx::PgPool, pool: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM tasks WHERE pool = $1")
        .bind(pool)
        .fetch_one(look)
        .await
        .unwrap()
}

/// Launches `n` tasks of `pool` at once, alternating between the two stores; the ids launched.
async fn burst(a: &Arc<PgStore>, b: &Arc<PgStore>, pool: &str, n: usize) -> Vec<String> {
    let mut handles = vec![];
    for i in 0..n {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let pool = pool.to_string();
        handles.push(tokio::spawn(async move {
            s.launch_pool_task(&pool, pool_task(&pool, &format!("{pool}-{i:03}")))
                .await
                .unwrap()
        }));
    }
    let mut ids = vec![];
    for h in handles {
        if let Some(t) = h.await.unwrap() {
            ids.push(t.id);
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pool_launches_from_two_stores_never_exceed_slots_nor_count() {
    let (a, b, look) = two_stores().await;
    a.create_pool(new_pool("slots", 3, None)).await.unwrap();
    b.create_pool(new_pool("count", 100, Some(7)))
        .await
        .unwrap();

    let ids = burst(&a, &b, "slots", 40).await;
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert_eq!(tasks_of(&look, "slots").await, 3);
    assert_eq!(b.get_pool("slots").await.unwrap().launched, 3);

    let ids = burst(&a, &b, "count", 40).await;
    assert_eq!(ids.len(), 7, "{ids:?}");
    assert_eq!(tasks_of(&look, "count").await, 7);
    assert_eq!(a.get_pool("count").await.unwrap().launched, 7);
}

/// Launches and finishes interleaved from eight loops on two stores: a pool of 4 slots and 30
/// tasks runs exactly 30, and no launch ever sees more than 4 of its tasks live.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pool_slots_hold_across_stores_while_tasks_finish() {
    let (a, b, look) = two_stores().await;
    a.create_pool(new_pool("churn", 4, Some(30))).await.unwrap();
    let most_live = Arc::new(AtomicI64::new(0));
    let mut loops = vec![];
    for w in 0..8 {
        let s = if w % 2 == 0 { a.clone() } else { b.clone() };
        let look = look.clone();
        let most_live = most_live.clone();
        loops.push(tokio::spawn(async move {
            let mut n = 0;
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
            loop {
                assert!(tokio::time::Instant::now() < deadline, "loop {w} stuck");
                let id = format!("c{w}-{n:03}");
                n += 1;
                match s.launch_pool_task("churn", pool_task("churn", &id)).await.unwrap() {
                    Some(t) => {
                        let live: i64 = sqlx::query_scalar(
                            "SELECT COUNT(*) FROM tasks WHERE pool = 'churn' AND finished_at IS NULL",
                        )
                        .fetch_one(&look)
                        .await
                        .unwrap();
                        most_live.fetch_max(live, Ordering::SeqCst);
                        s.update(
                            &t.id,
                            None,
                            TaskPatch::new()
                                .state(TaskState::Succeeded, json!({}))
                                .finished_at(Some(drover_store::now())),
                            vec![],
                        )
                        .await
                        .unwrap();
                    }
                    None if s.get_pool("churn").await.unwrap().launched >= 30 => break,
                    None => tokio::task::yield_now().await,
                }
            }
        }));
    }
    for l in loops {
        l.await.unwrap();
    }
    assert_eq!(tasks_of(&look, "churn").await, 30);
    assert_eq!(a.get_pool("churn").await.unwrap().launched, 30);
    let most = most_live.load(Ordering::SeqCst);
    assert!((1..=4).contains(&most), "at most 4 live, saw {most}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pool_events_from_two_stores_number_one_after_another() {
    let (a, b, _look) = two_stores().await;
    let mut handles = vec![];
    for i in 0..40 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        handles.push(tokio::spawn(async move {
            s.pool_event("p", "note", json!({ "i": i })).await.unwrap()
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let seqs: Vec<i64> = a
        .pool_events("p", 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, (1..=40).collect::<Vec<_>>());
}

fn key(id: &str, hash: &str) -> NewKeyRecord {
    NewKeyRecord {
        id: id.into(),
        team: "t".into(),
        name: None,
        scopes: vec![Scope::TasksRead],
        hash: hash.into(),
        expires_at: None,
    }
}

/// Ten rotations of one key at once, from two daemons: one successor; the others are refused.
/// A key hash is unique across the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_key_rotated_from_two_stores_at_once_has_one_successor() {
    let (a, b, look) = two_stores().await;
    a.create_team(&TeamInfo {
        name: "t".into(),
        ..TeamInfo::default()
    })
    .await
    .unwrap();
    b.create_key(key("key_old", "h-old")).await.unwrap();
    assert!(matches!(
        a.create_key(key("key_dup", "h-old")).await,
        Err(StoreError::Exists(_))
    ));
    let mut handles = vec![];
    for i in 0..10 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        handles.push(tokio::spawn(async move {
            s.rotate_key(
                "key_old",
                key(&format!("key_new{i}"), &format!("h-new{i}")),
                "2999-01-01T00:00:00.000Z",
            )
            .await
        }));
    }
    let mut made = vec![];
    for h in handles {
        match h.await.unwrap() {
            Ok(k) => made.push(k.id),
            Err(StoreError::Exists(id)) => assert_eq!(id, "key_old"),
            Err(e) => panic!("rotation: {e}"),
        }
    }
    assert_eq!(made.len(), 1, "{made:?}");
    let old = a.key("key_old").await.unwrap().unwrap();
    assert_eq!(old.rotated_to.as_deref(), Some(made[0].as_str()));
    let keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_keys")
        .fetch_one(&look)
        .await
        .unwrap();
    assert_eq!(keys, 2);
}

/// Appends from two daemons get distinct, increasing seqs; the database refuses to change or
/// remove an audit row, whoever asks.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audit_appends_from_two_stores_and_refuses_changes() {
    let (a, b, look) = two_stores().await;
    let mut handles = vec![];
    for i in 0..30 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        handles.push(tokio::spawn(async move {
            s.append_audit(NewAuditRecord {
                at: drover_store::now(),
                actor: Actor::default(),
                action: format!("act{i}"),
                target: None,
                remote_addr: None,
                status: 200,
            })
            .await
            .unwrap()
        }));
    }
    let mut seqs = vec![];
    for h in handles {
        seqs.push(h.await.unwrap());
    }
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), 30);
    let all = b.audit(&Default::default()).await.unwrap();
    assert_eq!(all.len(), 30);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    for sql in ["UPDATE audit SET action = 'forged'", "DELETE FROM audit"] {
        let err = sqlx::query(sql).execute(&look).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(a.audit(&Default::default()).await.unwrap(), all);
}

/// Forty due deliveries claimed by eight loops on two stores at once: each is claimed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhook_claims_from_two_stores_take_each_delivery_once() {
    let (a, b, _look) = two_stores().await;
    drover_store::conformance::due_deliveries(&*a, "w", 40).await;
    let now = drover_store::now();
    let hold = "2999-01-01T00:00:00.000Z";
    let mut loops = vec![];
    for w in 0..8 {
        let s = if w % 2 == 0 { a.clone() } else { b.clone() };
        let now = now.clone();
        loops.push(tokio::spawn(async move {
            let mut mine = vec![];
            loop {
                let got = s.claim_webhooks(&now, hold, 8, 3).await.unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|d| d.id));
            }
        }));
    }
    let mut all = vec![];
    for l in loops {
        all.extend(l.await.unwrap());
    }
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!((n, all.len()), (40, 40), "a delivery was claimed twice");
}

/// Two gateways (two daemons) metering one task at once: every response counts once in the
/// task's totals, the team's spend and the report, and its `usage` events number one after
/// another.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn usage_from_two_stores_sums_exactly() {
    let (a, b, _look) = two_stores().await;
    a.create_task(new_task("u1")).await.unwrap();
    let mut handles = vec![];
    for i in 0..40 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        handles.push(tokio::spawn(async move {
            let row = UsageRow {
                task_id: "u1".into(),
                pool: None,
                team: Some("t".into()),
                api: "anthropic".into(),
                model: "m1".into(),
                input_tokens: 10,
                output_tokens: 5,
                cache_read_tokens: 0,
                cache_write_tokens: 0,
                cost_usd: Some(0.25),
                stop_reason: None,
                outcome: "ok".into(),
                at: drover_store::now(),
            };
            s.record_usage(&[row.clone(), row]).await.unwrap()
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let t = b.get_task("u1").await.unwrap();
    assert_eq!((t.usage.input_tokens, t.usage.output_tokens), (800, 400));
    assert_eq!(t.cost_usd, Some(20.0));
    let last = a.usage_last_id().await.unwrap();
    let spent = b
        .spent("u1", None, Some("t"), "2000-01-01T00:00:00.000Z", last)
        .await
        .unwrap();
    assert_eq!(
        (spent.task_usd, spent.task_tokens, spent.team_usd_today),
        (20.0, 1200, 20.0)
    );
    let report = a
        .usage_report(&UsageBy::Group(UsageGroup::Team), None)
        .await
        .unwrap();
    assert_eq!(report.len(), 1);
    assert_eq!((report[0].requests, report[0].cost_usd), (80, Some(20.0)));
    let seqs: Vec<i64> = a
        .events("u1", 0, 1000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(
        seqs,
        (1..=81).collect::<Vec<_>>(),
        "the created event and 80 usage events"
    );
}
