//! What the Prometheus metrics read: usage per (model, team, pool), tasks per state.

use super::{new_task, usage_row};
use crate::{Store, TaskPatch, UsageTotal};
use drover_types::TaskState;
use std::sync::Arc;

pub async fn metrics_totals_and_counts(store: Arc<dyn Store>) {
    for (id, team) in [("m1", Some("a")), ("m2", Some("a")), ("m3", None)] {
        let mut t = new_task(id);
        t.team = team.map(str::to_string);
        store.create_task(t).await.unwrap();
    }
    store
        .update(
            "m2",
            None,
            TaskPatch::new().state(TaskState::Running, serde_json::json!({})),
            vec![],
        )
        .await
        .unwrap();
    let mut a = usage_row("m1", 10, Some(1.0), "2026-03-01T01:00:00.000Z");
    a.team = Some("a".into());
    let mut b = usage_row("m2", 5, None, "2026-03-01T02:00:00.000Z");
    b.team = Some("a".into());
    let mut c = usage_row("m2", 1, Some(0.25), "2026-03-01T03:00:00.000Z");
    c.team = Some("a".into());
    c.pool = Some("p".into());
    let d = usage_row("m3", 7, Some(0.5), "2026-03-01T04:00:00.000Z");
    store.record_usage(&[a, b, c, d]).await.unwrap();

    let key = |t: &UsageTotal| (t.model.clone(), t.team.clone(), t.pool.clone());
    let all = store.usage_totals(None).await.unwrap();
    let mut keys: Vec<_> = all.iter().map(key).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            ("m1".to_string(), None, None),
            ("m1".to_string(), Some("a".to_string()), None),
            (
                "m1".to_string(),
                Some("a".to_string()),
                Some("p".to_string())
            ),
        ]
    );
    let a_none = all
        .iter()
        .find(|t| t.team.as_deref() == Some("a") && t.pool.is_none())
        .unwrap();
    assert_eq!(
        (
            a_none.requests,
            a_none.input_tokens,
            a_none.output_tokens,
            a_none.cache_read_tokens,
            a_none.cache_write_tokens
        ),
        (2, 15, 30, 0, 2)
    );
    assert!(
        (a_none.cost_usd - 1.0).abs() < 1e-12,
        "an unpriced row adds 0"
    );
    let of_a = store.usage_totals(Some("a")).await.unwrap();
    assert_eq!(of_a.len(), 2);
    assert!(of_a.iter().all(|t| t.team.as_deref() == Some("a")));

    let mut counts = store.task_counts(None).await.unwrap();
    counts.sort_by_key(|(s, _)| s.as_str());
    assert_eq!(counts, [(TaskState::Queued, 2), (TaskState::Running, 1)]);
    let counts = store.task_counts(Some("a")).await.unwrap();
    assert_eq!(counts.iter().map(|(_, n)| n).sum::<i64>(), 2);
    assert!(store.task_counts(Some("b")).await.unwrap().is_empty());
}
