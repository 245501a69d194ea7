//! Conformance: metered usage.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::{new_task, usage_row};
use crate::{NewTask, Spent, Store, StoreError, UsageGroup, UsageLine, UsageRow};
use drover_types::{EventKind, Usage};
use std::sync::Arc;

/// A batch with one bad row stores nothing; a good batch adds to the task's totals, appends a
/// `usage` event per row and sums into `spent` (bounded by `up_to` and the team's day).
pub async fn usage_record_is_all_or_none_and_spent_sums(store: Arc<dyn Store>) {
    store
        .create_task(NewTask {
            pool: Some("p".into()),
            team: Some("t".into()),
            ..new_task("uuuu0001")
        })
        .await
        .unwrap();
    let day = "2026-03-02T00:00:00.000Z";
    let row = |tokens, cost, at: &str| UsageRow {
        pool: Some("p".into()),
        team: Some("t".into()),
        ..usage_row("uuuu0001", tokens, cost, at)
    };
    let before = store.events("uuuu0001", 0, 100).await.unwrap().len();
    let err = store
        .record_usage(&[
            row(10, Some(0.1), day),
            usage_row("missing", 1, Some(1.0), day),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    assert_eq!(store.usage_last_id().await.unwrap(), 0);
    let t = store.get_task("uuuu0001").await.unwrap();
    assert_eq!((t.usage, t.cost_usd), (Usage::default(), None));
    assert_eq!(
        store.events("uuuu0001", 0, 100).await.unwrap().len(),
        before
    );

    store
        .record_usage(&[
            row(10, Some(0.25), "2026-03-01T23:00:00.000Z"),
            row(20, Some(0.5), "2026-03-02T01:00:00.000Z"),
        ])
        .await
        .unwrap();
    let first = store.usage_last_id().await.unwrap() - 1;
    assert!(first > 0);
    store
        .record_usage(&[row(5, None, "2026-03-02T02:00:00.000Z")])
        .await
        .unwrap();
    let last = store.usage_last_id().await.unwrap();
    assert!(last > first + 1);
    let t = store.get_task("uuuu0001").await.unwrap();
    assert_eq!(
        t.usage,
        Usage {
            input_tokens: 35,
            output_tokens: 70,
            cache_read_tokens: 0,
            cache_write_tokens: 3,
        }
    );
    assert_eq!(t.cost_usd, Some(0.75), "an unpriced response adds no cost");
    let usage_events: Vec<_> = store
        .events("uuuu0001", 0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EventKind::Usage)
        .collect();
    assert_eq!(usage_events.len(), 3);
    assert_eq!(usage_events[0].data["source"], "gateway");
    assert_eq!(usage_events[0].data["input_tokens"], 10);

    let spent = store
        .spent("uuuu0001", Some("p"), Some("t"), day, last)
        .await
        .unwrap();
    assert_eq!(
        spent,
        Spent {
            task_usd: 0.75,
            task_tokens: 35 + 70 + 3,
            pool_usd: 0.75,
            team_usd_today: 0.5,
        }
    );
    let upto_first = store
        .spent("uuuu0001", Some("p"), Some("t"), day, first)
        .await
        .unwrap();
    assert_eq!((upto_first.task_usd, upto_first.task_tokens), (0.25, 31));
    assert_eq!(upto_first.team_usd_today, 0.0);
    let no_scopes = store
        .spent("uuuu0001", None, None, day, last)
        .await
        .unwrap();
    assert_eq!((no_scopes.pool_usd, no_scopes.team_usd_today), (0.0, 0.0));
}

/// `drover usage` lines: grouped, ordered by key, cost `None` when a response had no price.
pub async fn usage_report_groups(store: Arc<dyn Store>) {
    for id in ["r1", "r2"] {
        store.create_task(new_task(id)).await.unwrap();
    }
    let mut in_pool = usage_row("r2", 5, Some(0.5), "2026-03-02T01:00:00.000Z");
    in_pool.pool = Some("p".into());
    in_pool.model = "m2".into();
    store
        .record_usage(&[
            usage_row("r1", 10, Some(1.0), "2026-03-01T01:00:00.000Z"),
            usage_row("r1", 1, None, "2026-03-02T02:00:00.000Z"),
            in_pool,
        ])
        .await
        .unwrap();
    let by = |lines: Vec<UsageLine>| -> Vec<(String, i64, i64, Option<f64>)> {
        lines
            .into_iter()
            .map(|l| (l.key, l.requests, l.input_tokens, l.cost_usd))
            .collect()
    };
    assert_eq!(
        by(store
            .usage_report(&UsageGroup::Task.into(), None)
            .await
            .unwrap()),
        [("r1".into(), 2, 11, None), ("r2".into(), 1, 5, Some(0.5))]
    );
    assert_eq!(
        by(store
            .usage_report(&UsageGroup::Pool.into(), None)
            .await
            .unwrap()),
        [("-".into(), 2, 11, None), ("p".into(), 1, 5, Some(0.5))]
    );
    assert_eq!(
        by(store
            .usage_report(&UsageGroup::Model.into(), None)
            .await
            .unwrap()),
        [("m1".into(), 2, 11, None), ("m2".into(), 1, 5, Some(0.5))]
    );
    assert_eq!(
        by(store
            .usage_report(&UsageGroup::Day.into(), None)
            .await
            .unwrap()),
        [
            ("2026-03-01".into(), 1, 10, Some(1.0)),
            ("2026-03-02".into(), 2, 6, None)
        ]
    );
    let line = &store
        .usage_report(&UsageGroup::Task.into(), None)
        .await
        .unwrap()[0];
    assert_eq!(
        (
            line.output_tokens,
            line.cache_read_tokens,
            line.cache_write_tokens
        ),
        (22, 0, 2)
    );
}
