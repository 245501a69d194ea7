//! Conformance: the audit log, accounting rows, usage by team and tag.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::{new_task, usage_row};
use crate::{AuditFilter, NewAuditRecord, NewTask, Store, TaskPatch, UsageBy, UsageGroup};
use drover_types::{Actor, Outcome, TaskState, Verdict, ACCOUNTING_SCHEMA};
use serde_json::json;
use std::sync::Arc;

fn record(at: &str, team: Option<&str>, action: &str) -> NewAuditRecord {
    NewAuditRecord {
        at: at.into(),
        actor: Actor {
            key_id: team.map(|t| format!("key_{t}")),
            team: team.map(str::to_string),
        },
        action: action.into(),
        target: Some("t1".into()),
        remote_addr: Some("unix".into()),
        status: 201,
    }
}

/// Records get seq 1, 2, 3… in the order appended, round-trip whole, and filter by time,
/// team, seq and count.
pub async fn audit_log_appends_in_order_and_filters(store: Arc<dyn Store>) {
    let input = [
        record("2026-03-01T00:00:00.000Z", None, "task.create"),
        record("2026-03-02T00:00:00.000Z", Some("a"), "task.stop"),
        record("2026-03-03T00:00:00.000Z", Some("b"), "key.create"),
        record("2026-03-04T00:00:00.000Z", Some("a"), "task.delete"),
    ];
    for (i, r) in input.iter().enumerate() {
        assert_eq!(store.append_audit(r.clone()).await.unwrap(), i as i64 + 1);
    }
    let all = store.audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(all[1].actor, input[1].actor);
    assert_eq!(
        (
            all[1].at.as_str(),
            all[1].action.as_str(),
            all[1].target.as_deref(),
            all[1].remote_addr.as_deref(),
            all[1].status
        ),
        (
            "2026-03-02T00:00:00.000Z",
            "task.stop",
            Some("t1"),
            Some("unix"),
            201
        )
    );
    let seqs = |f: AuditFilter| {
        let store = store.clone();
        async move {
            store
                .audit(&f)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.seq)
                .collect::<Vec<_>>()
        }
    };
    let since = Some("2026-03-02T00:00:00.000Z".to_string());
    assert_eq!(
        seqs(AuditFilter {
            since: since.clone(),
            ..Default::default()
        })
        .await,
        [2, 3, 4]
    );
    let team = Some("a".to_string());
    assert_eq!(
        seqs(AuditFilter {
            team: team.clone(),
            ..Default::default()
        })
        .await,
        [2, 4]
    );
    assert_eq!(
        seqs(AuditFilter {
            after_seq: Some(2),
            ..Default::default()
        })
        .await,
        [3, 4]
    );
    assert_eq!(
        seqs(AuditFilter {
            limit: Some(2),
            ..Default::default()
        })
        .await,
        [1, 2]
    );
    assert_eq!(
        seqs(AuditFilter {
            team,
            after_seq: Some(2),
            limit: Some(1),
            since,
            ..Default::default()
        })
        .await,
        [4]
    );
    // Seqs keep growing after reads.
    assert_eq!(store.append_audit(input[0].clone()).await.unwrap(), 5);
}

fn tagged(id: &str, team: Option<&str>, customer: Option<&str>) -> NewTask {
    NewTask {
        team: team.map(str::to_string),
        created_by: team.map(|t| format!("key_{t}")),
        model: Some("m1".into()),
        tags: customer
            .map(|c| [("customer".to_string(), c.to_string())].into())
            .unwrap_or_default(),
        ..new_task(id)
    }
}

async fn end(store: &dyn Store, id: &str, state: TaskState, verdict: Option<Verdict>, at: &str) {
    let outcome = verdict.map(|v| Outcome {
        verdict: v,
        reason: "r".into(),
        error_kind: None,
    });
    store
        .update(
            id,
            None,
            TaskPatch::new()
                .state(state, json!({}))
                .outcome(outcome.as_ref())
                .started_at(Some("2026-03-01T00:00:00.000Z".into()))
                .finished_at(Some(at.into())),
            vec![],
        )
        .await
        .unwrap();
}

/// One accounting row per terminal task (never an active one), its tokens and dollars the sums
/// of its usage rows, its tags, team and creator from the task; filters and paging work.
pub async fn accounting_rows_sum_usage_of_finished_tasks(store: Arc<dyn Store>) {
    store
        .create_task(tagged("f1", Some("a"), Some("acme")))
        .await
        .unwrap();
    store
        .create_task(tagged("f2", Some("b"), Some("globex")))
        .await
        .unwrap();
    store.create_task(tagged("f3", None, None)).await.unwrap();
    store
        .create_task(tagged("live", Some("a"), Some("acme")))
        .await
        .unwrap();
    let mut f2 = usage_row("f2", 7, None, "2026-03-01T00:00:01.000Z");
    f2.team = Some("b".into());
    store
        .record_usage(&[
            usage_row("f1", 10, Some(1.25), "2026-03-01T00:00:01.000Z"),
            usage_row("f1", 5, Some(0.5), "2026-03-01T00:00:02.000Z"),
            f2,
            usage_row("live", 3, Some(0.1), "2026-03-01T00:00:03.000Z"),
        ])
        .await
        .unwrap();
    end(
        &*store,
        "f1",
        TaskState::Succeeded,
        Some(Verdict::Success),
        "2026-03-01T00:01:30.500Z",
    )
    .await;
    end(
        &*store,
        "f2",
        TaskState::Failed,
        Some(Verdict::Fail),
        "2026-03-02T00:00:00.000Z",
    )
    .await;
    end(
        &*store,
        "f3",
        TaskState::Cancelled,
        None,
        "2026-03-03T00:00:00.000Z",
    )
    .await;
    let rows = store.accounting(&AuditFilter::default()).await.unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r.task_id.as_str()).collect();
    assert_eq!(ids, ["f1", "f2", "f3"]);
    let f1 = &rows[0];
    assert_eq!(f1.schema, ACCOUNTING_SCHEMA);
    assert_eq!(
        (
            f1.input_tokens,
            f1.output_tokens,
            f1.cache_read_tokens,
            f1.cache_write_tokens
        ),
        (15, 30, 0, 2)
    );
    assert_eq!(f1.cost_usd, Some(1.75));
    assert_eq!(f1.duration_s, Some(90.5));
    assert_eq!(f1.verdict.as_deref(), Some("success"));
    assert_eq!(
        (f1.team.as_deref(), f1.created_by.as_deref()),
        (Some("a"), Some("key_a"))
    );
    assert_eq!(f1.tags.get("customer").map(String::as_str), Some("acme"));
    assert_eq!(
        (f1.repo.as_str(), f1.agent.as_str(), f1.model.as_deref()),
        ("/r", "command", Some("m1"))
    );
    // An unpriced response makes the dollars unknown; no usage at all is 0.
    assert_eq!((rows[1].input_tokens, rows[1].cost_usd), (7, None));
    assert_eq!(rows[1].verdict.as_deref(), Some("fail"));
    assert_eq!(
        (
            rows[2].input_tokens,
            rows[2].cost_usd,
            rows[2].verdict.as_deref()
        ),
        (0, Some(0.0), None)
    );
    assert!(rows[2].tags.is_empty() && rows[2].team.is_none());

    let ids_of = |f: AuditFilter| {
        let store = store.clone();
        async move {
            store
                .accounting(&f)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.task_id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        ids_of(AuditFilter {
            team: Some("b".into()),
            ..Default::default()
        })
        .await,
        ["f2"]
    );
    assert_eq!(
        ids_of(AuditFilter {
            since: Some("2026-03-02T00:00:00.000Z".into()),
            ..Default::default()
        })
        .await,
        ["f2", "f3"]
    );
    assert_eq!(
        ids_of(AuditFilter {
            limit: Some(1),
            ..Default::default()
        })
        .await,
        ["f1"]
    );
    let after = Some(("2026-03-01T00:01:30.500Z".to_string(), "f1".to_string()));
    assert_eq!(
        ids_of(AuditFilter {
            after_task: after,
            ..Default::default()
        })
        .await,
        ["f2", "f3"]
    );
}

/// `usage --by team` and `--by tag:NAME` (tag read from the task; `-` without it), and the
/// team filter a key's view is forced to.
pub async fn usage_report_by_team_and_tag(store: Arc<dyn Store>) {
    store
        .create_task(tagged("g1", Some("a"), Some("acme")))
        .await
        .unwrap();
    store
        .create_task(tagged("g2", Some("a"), Some("globex")))
        .await
        .unwrap();
    store.create_task(tagged("g3", None, None)).await.unwrap();
    let row = |task: &str, team: Option<&str>, n: i64| {
        let mut r = usage_row(task, n, Some(n as f64), "2026-03-01T00:00:00.000Z");
        r.team = team.map(str::to_string);
        r
    };
    store
        .record_usage(&[
            row("g1", Some("a"), 1),
            row("g1", Some("a"), 2),
            row("g2", Some("a"), 4),
            row("g3", None, 8),
        ])
        .await
        .unwrap();
    let keys = |by: UsageBy, team: Option<&'static str>| {
        let store = store.clone();
        async move {
            store
                .usage_report(&by, team)
                .await
                .unwrap()
                .into_iter()
                .map(|l| (l.key, l.requests, l.input_tokens, l.cost_usd))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        keys(UsageGroup::Team.into(), None).await,
        [("-".into(), 1, 8, Some(8.0)), ("a".into(), 3, 7, Some(7.0))]
    );
    let customer = UsageBy::Tag("customer".into());
    assert_eq!(
        keys(customer.clone(), None).await,
        [
            ("-".into(), 1, 8, Some(8.0)),
            ("acme".into(), 2, 3, Some(3.0)),
            ("globex".into(), 1, 4, Some(4.0))
        ]
    );
    assert_eq!(
        keys(customer, Some("a")).await,
        [
            ("acme".into(), 2, 3, Some(3.0)),
            ("globex".into(), 1, 4, Some(4.0))
        ]
    );
    // A tag name is data, not SQL or a JSON path.
    assert_eq!(
        keys(UsageBy::Tag("x' OR '1'='1".into()), None).await,
        [("-".into(), 4, 15, Some(15.0))]
    );
    assert_eq!(keys(UsageGroup::Task.into(), Some("b")).await, []);
}
