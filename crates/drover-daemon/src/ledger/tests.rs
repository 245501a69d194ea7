#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use drover_gateway::{Api, Limits, ResponseOutcome, Tokens};
use drover_store::{NewTask, SqliteStore};

async fn store(dir: &std::path::Path, tasks: &[&str]) -> Arc<dyn Store> {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("d.db")).await.unwrap());
    for id in tasks {
        if store.get_task(id).await.is_err() {
            store
                .create_task(NewTask {
                    id: id.to_string(),
                    agent: "claude".into(),
                    repo: "/r".into(),
                    base_ref: "HEAD".into(),
                    prompt: "p".into(),
                    permissions: drover_types::PermissionPolicy::Allow,
                    pool: Some("pool".into()),
                    team: Some("team".into()),
                    ..NewTask::default()
                })
                .await
                .unwrap();
        }
    }
    store
}

fn grant(task: &str) -> TaskGrant {
    TaskGrant {
        pool: Some("pool".into()),
        team: Some("team".into()),
        limits: Limits {
            task_usd: Some(10.0),
            ..Limits::default()
        },
        ..TaskGrant::new(task)
    }
}

fn rec(usd: f64) -> UsageRecord {
    UsageRecord {
        api: Api::Messages,
        model: "m".into(),
        pool: Some("pool".into()),
        team: Some("team".into()),
        tokens: Tokens {
            input: 100,
            output: 10,
            ..Tokens::default()
        },
        cost_usd: Some(usd),
        stop_reason: None,
        outcome: ResponseOutcome::Complete,
        at: chrono::Utc::now(),
    }
}

#[tokio::test]
async fn a_record_counts_once_queued_and_is_stored_by_flush_and_counted_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), &["a", "b"]).await;
    let (ledger, _notes) = store_ledger(s.clone()).await.unwrap();
    // Loaded before anything was recorded: zero, from the store.
    assert_eq!(ledger.spent(&grant("a")).await.unwrap(), Spent::default());
    ledger.record("a", rec(0.25)).await;
    ledger.record("b", rec(0.5)).await;
    // Counted at once, whether or not the writer has stored it yet.
    let a = ledger.spent(&grant("a")).await.unwrap();
    assert_eq!(
        a,
        Spent {
            task_usd: 0.25,
            task_tokens: 110,
            pool_usd: 0.75,
            team_usd_today: 0.75,
        }
    );
    ledger.flush().await;
    let stored = s.spent("a", Some("pool"), Some("team"), "1970-01-01", i64::MAX);
    let stored = stored.await.unwrap();
    assert_eq!((stored.task_usd, stored.pool_usd), (0.25, 0.75));
    assert_eq!(s.get_task("a").await.unwrap().cost_usd, Some(0.25));
    // A new ledger over the same store (a restart): the stored rows are loaded once, not
    // counted twice with what it records itself.
    drop(ledger);
    let (ledger, _notes) = store_ledger(s.clone()).await.unwrap();
    ledger.record("b", rec(1.0)).await;
    // Stored before b's scopes are loaded: the load must not count it a second time.
    ledger.flush().await;
    let b = ledger.spent(&grant("b")).await.unwrap();
    assert_eq!(
        (b.task_usd, b.pool_usd, b.team_usd_today),
        (1.5, 1.75, 1.75)
    );
    ledger.record("a", rec(0.125)).await;
    let a = ledger.spent(&grant("a")).await.unwrap();
    assert_eq!((a.task_usd, a.task_tokens, a.pool_usd), (0.375, 220, 1.875));
    ledger.flush().await;
    let usage = s
        .usage_report(&drover_store::UsageGroup::Task.into(), None)
        .await
        .unwrap();
    let by: Vec<_> = usage.iter().map(|l| (l.key.as_str(), l.requests)).collect();
    assert_eq!(by, vec![("a", 2), ("b", 2)]);
}

#[tokio::test]
async fn a_row_whose_task_is_gone_does_not_cost_the_rest_of_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), &["a"]).await;
    let (ledger, _notes) = store_ledger(s.clone()).await.unwrap();
    for i in 0..50 {
        let task = if i == 25 { "gone" } else { "a" };
        ledger.record(task, rec(0.01)).await;
    }
    ledger.flush().await;
    let usage = s
        .usage_report(&drover_store::UsageGroup::Task.into(), None)
        .await
        .unwrap();
    assert_eq!(usage.len(), 1);
    assert_eq!((usage[0].key.as_str(), usage[0].requests), ("a", 49));
}

#[tokio::test]
async fn a_busy_refusal_does_not_stop_the_task_and_an_unsettled_row_is_stored_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), &["a"]).await;
    let (ledger, mut notes) = store_ledger(s.clone()).await.unwrap();
    let busy = GatewayEvent::BudgetBusy {
        budget: drover_gateway::BudgetKind::PoolUsd,
        limit: 1.0,
        spent: 0.0,
        reserved: 0.5,
        request: None,
    };
    ledger.event("a", busy).await;
    let unsettled = UsageRecord {
        outcome: ResponseOutcome::Unsettled,
        ..rec(0.5)
    };
    ledger.record("a", unsettled).await;
    ledger.flush().await;
    let mut stopped = false;
    while let Ok(n) = notes.try_recv() {
        stopped |= matches!(n, Note::BudgetExceeded(_));
    }
    assert!(!stopped, "a busy refusal is retryable: the task goes on");
    assert_eq!(ledger.spent(&grant("a")).await.unwrap().task_usd, 0.5);
    let stored = s
        .spent("a", None, None, "1970-01-01", i64::MAX)
        .await
        .unwrap();
    assert_eq!(stored.task_usd, 0.5);
    // A refusal on what was spent does stop it.
    let refused = GatewayEvent::BudgetRefused {
        budget: drover_gateway::BudgetKind::TaskUsd,
        limit: 0.5,
        spent: 0.5,
        reserved: 0.0,
        request: Some(0.1),
    };
    ledger.event("a", refused).await;
    let mut stopped = false;
    while let Ok(n) = notes.try_recv() {
        stopped |= matches!(n, Note::BudgetExceeded(_));
    }
    assert!(stopped);
}

#[tokio::test]
async fn a_stored_refusal_on_what_was_spent_is_known_by_its_type_not_a_busy_one() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), &["a"]).await;
    let (ledger, _notes) = store_ledger(s.clone()).await.unwrap();
    let budget = drover_gateway::BudgetKind::TaskUsd;
    let (limit, spent, reserved, request) = (1.0, 1.0, 0.0, Some(0.1));
    ledger
        .event(
            "a",
            GatewayEvent::BudgetBusy {
                budget,
                limit,
                spent,
                reserved,
                request,
            },
        )
        .await;
    ledger
        .event(
            "a",
            GatewayEvent::NoPrice {
                model: "m".into(),
                budget,
            },
        )
        .await;
    ledger
        .event(
            "a",
            GatewayEvent::BudgetRefused {
                budget,
                limit,
                spent,
                reserved,
                request,
            },
        )
        .await;
    ledger.flush().await;
    let errors: Vec<_> = s
        .events("a", 0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EventKind::Error)
        .collect();
    let refusals: Vec<bool> = errors.iter().map(is_budget_refusal).collect();
    assert_eq!(refusals, [false, true, true], "{errors:?}");
    // Anything else with the same `kind` but not from the gateway is not one.
    let mut other = errors[2].clone();
    other.data["source"] = json!("agent");
    assert!(!is_budget_refusal(&other));
}
