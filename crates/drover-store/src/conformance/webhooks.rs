//! Conformance: the webhook outbox (the store adds a delivery with each state change that
//! ends a task or asks for input, for a team with a webhook URL).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::new_task;
use crate::{AttemptOutcome, NewTask, Store, TaskPatch};
use drover_types::{TaskState, TeamInfo};
use serde_json::json;
use std::sync::Arc;

async fn state(store: &dyn Store, id: &str, s: TaskState) {
    store
        .update(id, None, TaskPatch::new().state(s, json!({})), vec![])
        .await
        .unwrap();
}

/// State events of a task whose team has a webhook URL fill the outbox (in the store, with the
/// state change), once per event; attempts are recorded; due rows and the next due time follow.
pub async fn webhook_outbox_fills_once_per_state_event(store: Arc<dyn Store>) {
    for (name, url) in [("hooks", Some("http://127.0.0.1:9/h")), ("quiet", None)] {
        let t = TeamInfo {
            name: name.into(),
            webhook_url: url.map(String::from),
            ..TeamInfo::default()
        };
        store.create_team(&t).await.unwrap();
    }
    let with_team = |id: &str, team: Option<&str>| NewTask {
        team: team.map(String::from),
        ..new_task(id)
    };
    store
        .create_task(with_team("t1", Some("hooks")))
        .await
        .unwrap();
    store
        .create_task(with_team("t2", Some("quiet")))
        .await
        .unwrap();
    store.create_task(with_team("t3", None)).await.unwrap();
    for id in ["t1", "t2", "t3"] {
        state(&*store, id, TaskState::Running).await;
        state(&*store, id, TaskState::NeedsInput).await;
        state(&*store, id, TaskState::Running).await;
        state(&*store, id, TaskState::Succeeded).await;
    }
    let rows = store.webhooks_of("t1").await.unwrap();
    let events: Vec<&str> = rows.iter().map(|d| d.event.as_str()).collect();
    assert_eq!(events, ["task.needs_input", "task.finished"], "{rows:#?}");
    assert!(rows.iter().all(|d| d.team == "hooks" && d.attempts == 0));
    assert_ne!(rows[0].id, rows[1].id);
    assert!(store.webhooks_of("t2").await.unwrap().is_empty());
    assert!(store.webhooks_of("t3").await.unwrap().is_empty());

    // Due now: both; a retry moves one later, a delivery and a give-up end them.
    let far = "2999-01-01T00:00:00.000Z";
    let due = store.due_webhooks(far, 8, 10).await.unwrap();
    assert_eq!(due.len(), 2);
    let d = store
        .record_webhook_attempt(
            &rows[0].id,
            AttemptOutcome::Retry {
                status: 500,
                next_at: far.into(),
            },
            8,
        )
        .await
        .unwrap();
    assert_eq!((d.attempts, d.last_status), (1, Some(500)));
    let now = crate::now();
    assert_eq!(store.due_webhooks(&now, 8, 10).await.unwrap().len(), 1);
    assert_eq!(
        store.next_webhook_at(8).await.unwrap().as_deref(),
        Some(rows[1].next_at.as_str())
    );
    let d = store
        .record_webhook_attempt(
            &rows[1].id,
            AttemptOutcome::Delivered {
                status: 204,
                at: now.clone(),
            },
            8,
        )
        .await
        .unwrap();
    assert_eq!(d.delivered_at.as_deref(), Some(now.as_str()));
    assert!(store
        .due_webhooks(far, 8, 10)
        .await
        .unwrap()
        .iter()
        .all(|x| x.id == rows[0].id));
    store
        .record_webhook_attempt(&rows[0].id, AttemptOutcome::GiveUp { status: 0 }, 8)
        .await
        .unwrap();
    assert!(store.due_webhooks(far, 8, 10).await.unwrap().is_empty());
    assert_eq!(store.next_webhook_at(8).await.unwrap(), None);
    assert!(store
        .record_webhook_attempt("whd_nope", AttemptOutcome::GiveUp { status: 0 }, 8)
        .await
        .is_err());
}

/// Makes a team with a webhook and `n` finished tasks of it: `n` due deliveries.
pub async fn due_deliveries(store: &dyn Store, prefix: &str, n: usize) {
    if store.team("hooks").await.unwrap().is_none() {
        let t = TeamInfo {
            name: "hooks".into(),
            webhook_url: Some("http://127.0.0.1:9/h".into()),
            ..TeamInfo::default()
        };
        store.create_team(&t).await.unwrap();
    }
    for i in 0..n {
        let id = format!("{prefix}{i:03}");
        let t = NewTask {
            team: Some("hooks".into()),
            ..new_task(&id)
        };
        store.create_task(t).await.unwrap();
        state(store, &id, TaskState::Failed).await;
    }
}

/// A claim returns the due deliveries (as they were) and holds them: not due again until the
/// hold ends, then due again (a worker that died mid-attempt); a recorded attempt sets the next
/// step.
pub async fn webhook_claims_hold_deliveries(store: Arc<dyn Store>) {
    due_deliveries(&*store, "c", 3).await;
    let now = crate::now();
    let hold = "2999-01-01T00:00:00.000Z";
    let claimed = store.claim_webhooks(&now, hold, 8, 2).await.unwrap();
    assert_eq!(claimed.len(), 2, "{claimed:#?}");
    assert!(claimed.iter().all(|d| d.next_at.as_str() <= now.as_str()));
    let rest = store.claim_webhooks(&now, hold, 8, 10).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert!(rest.iter().all(|d| !claimed.contains(d)));
    assert!(store
        .claim_webhooks(&now, hold, 8, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store.due_webhooks(&now, 8, 10).await.unwrap().is_empty());
    assert_eq!(
        store.next_webhook_at(8).await.unwrap().as_deref(),
        Some(hold)
    );
    // The hold ends: due again, attempts unchanged.
    let later = "2999-01-01T00:00:01.000Z";
    let again = store.claim_webhooks(later, later, 8, 10).await.unwrap();
    assert_eq!(again.len(), 3);
    assert!(again.iter().all(|d| d.attempts == 0 && d.next_at == hold));
    let d = store
        .record_webhook_attempt(
            &again[0].id,
            AttemptOutcome::Delivered {
                status: 200,
                at: now.clone(),
            },
            8,
        )
        .await
        .unwrap();
    assert_eq!(
        (d.attempts, d.delivered_at.as_deref()),
        (1, Some(now.as_str()))
    );
    let far = "3999-01-01T00:00:00.000Z";
    let left = store.claim_webhooks(far, far, 8, 10).await.unwrap();
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|d| d.id != again[0].id));
}
