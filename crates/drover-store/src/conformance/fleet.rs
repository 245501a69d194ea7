//! [`crate::FleetStore`]: the dashboard's reads.

use super::new_task;
use crate::{NewTask, Store, TaskPatch};
use drover_types::{EventKind, NewEvent, TaskState};
use serde_json::json;
use std::sync::Arc;

async fn finish_at(store: &dyn Store, id: &str, at: &str) {
    store
        .update(
            id,
            None,
            TaskPatch::new()
                .state(TaskState::Succeeded, json!({}))
                .finished_at(Some(at.to_string())),
            vec![],
        )
        .await
        .unwrap();
}

/// Active tasks all; finished ones the newest few per team (no team being one), with counts.
pub async fn fleet_rows_hold_active_and_recent_finished_per_team(store: Arc<dyn Store>) {
    let team = |id: &str, t: Option<&str>| NewTask {
        team: t.map(str::to_string),
        ..new_task(id)
    };
    // Team a: 4 finished, 1 active; team b: 1 finished; no team: 3 finished, 1 active.
    let mut n = 0;
    for (id, t, finished) in [
        ("a0000001", Some("a"), true),
        ("a0000002", Some("a"), true),
        ("a0000003", Some("a"), true),
        ("a0000004", Some("a"), true),
        ("a0000005", Some("a"), false),
        ("b0000001", Some("b"), true),
        ("c0000001", None, true),
        ("c0000002", None, true),
        ("c0000003", None, true),
        ("c0000004", None, false),
    ] {
        store.create_task(team(id, t)).await.unwrap();
        if finished {
            n += 1;
            finish_at(store.as_ref(), id, &format!("2026-01-01T00:00:{n:02}.000Z")).await;
        }
    }
    let rows = store.fleet_tasks(2).await.unwrap();
    let ids = |v: &[crate::TaskRecord]| v.iter().map(|t| t.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&rows.active), vec!["a0000005", "c0000004"]);
    let mut finished = ids(&rows.finished);
    finished.sort();
    // The two newest of a and of no team, b's only one.
    assert_eq!(
        finished,
        vec!["a0000003", "a0000004", "b0000001", "c0000002", "c0000003"]
    );
    let mut counts = rows.finished_by_team.clone();
    counts.sort();
    assert_eq!(
        counts,
        vec![
            (None, 3),
            (Some("a".to_string()), 4),
            (Some("b".to_string()), 1)
        ]
    );
    // Summaries: long texts are cut.
    store
        .create_task(NewTask {
            prompt: "x".repeat(5_000),
            ..new_task("d0000001")
        })
        .await
        .unwrap();
    let rows = store.fleet_tasks(2).await.unwrap();
    let d = rows.active.iter().find(|t| t.id == "d0000001").unwrap();
    assert!(
        d.prompt.chars().count() <= crate::SUMMARY_CHARS + 1,
        "{}",
        d.prompt.len()
    );
}

/// The latest event of the kinds asked for, of many tasks in one call.
pub async fn latest_events_of_many_tasks(store: Arc<dyn Store>) {
    for id in ["11110001", "11110002", "11110003"] {
        store.create_task(new_task(id)).await.unwrap();
    }
    let text = |s: &str| NewEvent::new(EventKind::Text, json!({ "text": s }));
    let usage = NewEvent::new(EventKind::Usage, json!({ "input_tokens": 1 }));
    let mut evs: Vec<NewEvent> = (0..300).map(|i| text(&format!("line {i}"))).collect();
    evs.push(usage.clone());
    evs.push(usage.clone());
    store
        .update("11110001", None, TaskPatch::new(), evs)
        .await
        .unwrap();
    store
        .update(
            "11110002",
            None,
            TaskPatch::new(),
            vec![
                text("first"),
                NewEvent::new(EventKind::Error, json!({ "message": "boom" })),
                usage,
            ],
        )
        .await
        .unwrap();
    let ids: Vec<String> = ["11110001", "11110002", "11110003", "99990000"]
        .map(String::from)
        .to_vec();
    let mut got = store
        .latest_events(&ids, &[EventKind::Text, EventKind::Error])
        .await
        .unwrap();
    got.sort_by(|a, b| a.task_id.cmp(&b.task_id));
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].task_id, "11110001");
    assert_eq!(got[0].data["text"], "line 299");
    assert_eq!(got[1].task_id, "11110002");
    assert_eq!(got[1].kind, EventKind::Error);
    // 11110003 has only its `state` event.
    let states = store
        .latest_events(&ids[2..3], &[EventKind::State])
        .await
        .unwrap();
    assert_eq!(states.len(), 1);
    assert_eq!(states[0].seq, 1);
    assert!(store
        .latest_events(&[], &[EventKind::Text])
        .await
        .unwrap()
        .is_empty());
}

/// Pages read backwards from a cursor come back in seq order, bounded by count and bytes.
pub async fn events_before_pages_backwards(store: Arc<dyn Store>) {
    store.create_task(new_task("bbbb0001")).await.unwrap();
    let evs = (0..100)
        .map(|i| NewEvent::new(EventKind::Text, json!({ "text": format!("{i:04}") })))
        .collect();
    store
        .update("bbbb0001", None, TaskPatch::new(), evs)
        .await
        .unwrap();
    let last = store.get_task("bbbb0001").await.unwrap().next_seq;
    let page = store
        .events_before("bbbb0001", last, 10, 1 << 20)
        .await
        .unwrap();
    let seqs: Vec<i64> = page.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, ((last - 10)..last).collect::<Vec<_>>());
    let older = store
        .events_before("bbbb0001", seqs[0], 10, 1 << 20)
        .await
        .unwrap();
    assert_eq!(older.last().unwrap().seq, seqs[0] - 1);
    assert_eq!(older.len(), 10);
    // The first events: fewer than asked.
    let first = store
        .events_before("bbbb0001", 4, 10, 1 << 20)
        .await
        .unwrap();
    assert_eq!(
        first.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    // A byte bound keeps the newest (at least one).
    let one = store.events_before("bbbb0001", last, 10, 1).await.unwrap();
    assert_eq!(
        one.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![last - 1]
    );
    assert!(store
        .events_before("bbbb0001", 1, 10, 1 << 20)
        .await
        .unwrap()
        .is_empty());
}
