//! Conformance: tasks, their events, patches.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::new_task;
use crate::{ListFilter, NewTask, Store, StoreError, TaskFilter, TaskPatch, SUMMARY_CHARS};
use drover_types::clock::StopStep;
use drover_types::{
    ErrorKind, EventKind, GateStatus, MeteredBy, NewEvent, Outcome, SandboxKind, StopReason,
    TaskState, Usage, Verdict,
};
use serde_json::json;
use std::sync::Arc;

/// Eight writers appending two events each, 25 times: seqs are 1..=401 without gaps.
pub async fn seq_contiguous_under_concurrent_updates(store: Arc<dyn Store>) {
    store.create_task(new_task("aaaa1111")).await.unwrap();
    let mut handles = vec![];
    for i in 0..8 {
        let s = store.clone();
        handles.push(tokio::spawn(async move {
            for j in 0..25 {
                let ev = NewEvent::new(EventKind::Text, json!({"text": format!("{i}-{j}")}));
                s.update("aaaa1111", None, TaskPatch::new(), vec![ev.clone(), ev])
                    .await
                    .unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let evs = store.events("aaaa1111", 0, 10_000).await.unwrap();
    assert_eq!(evs.len(), 1 + 8 * 25 * 2);
    for (i, e) in evs.iter().enumerate() {
        assert_eq!(e.seq, i as i64 + 1);
    }
    assert_eq!(store.events("aaaa1111", 399, 10).await.unwrap().len(), 2);
    assert_eq!(store.get_task("aaaa1111").await.unwrap().next_seq, 402);
}

/// A state change writes the state and its event together, after the patch's own events; a
/// refused `from` check writes nothing.
pub async fn state_change_and_event_are_atomic(store: Arc<dyn Store>) {
    let t = store.create_task(new_task("bbbb2222")).await.unwrap();
    assert_eq!(t.state, TaskState::Queued);
    let first = store.events("bbbb2222", 0, 10).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].kind, EventKind::State);
    assert_eq!(first[0].data["state"], "queued");

    let note = NewEvent::new(EventKind::Text, json!({"text": "hi"}));
    let (t, evs) = store
        .update(
            "bbbb2222",
            Some(&[TaskState::Queued]),
            TaskPatch::new()
                .state(TaskState::Preparing, json!({"reason": "slot"}))
                .stdout_offset(Some(42)),
            vec![note],
        )
        .await
        .unwrap();
    assert_eq!(t.state, TaskState::Preparing);
    assert_eq!(t.stdout_offset, 42);
    assert!(t.activity_at.is_some(), "a new event is activity");
    assert_eq!(
        evs.iter().map(|e| (e.seq, e.kind)).collect::<Vec<_>>(),
        vec![(2, EventKind::Text), (3, EventKind::State)]
    );
    assert_eq!(evs[1].data, json!({"state": "preparing", "reason": "slot"}));

    let err = store
        .update(
            "bbbb2222",
            Some(&[TaskState::Queued]),
            TaskPatch::new()
                .state(TaskState::Running, json!({}))
                .stdout_offset(Some(99)),
            vec![NewEvent::new(EventKind::Text, json!({"text": "lost"}))],
        )
        .await
        .unwrap_err();
    match err {
        StoreError::WrongState {
            id,
            actual,
            expected,
        } => {
            assert_eq!(id, "bbbb2222");
            assert_eq!(actual, TaskState::Preparing);
            assert_eq!(expected, "queued");
        }
        other => panic!("expected WrongState, got {other}"),
    }
    // Nothing was written by the refused update.
    let t = store.get_task("bbbb2222").await.unwrap();
    assert_eq!((t.state, t.stdout_offset), (TaskState::Preparing, 42));
    assert_eq!(store.events("bbbb2222", 0, 100).await.unwrap().len(), 3);
    // `from` is checked only when the patch changes the state.
    store
        .update(
            "bbbb2222",
            Some(&[TaskState::Queued]),
            TaskPatch::new().stdout_offset(Some(50)),
            vec![],
        )
        .await
        .unwrap();
    // Unknown ids.
    assert!(matches!(
        store
            .update("nope", None, TaskPatch::new().pid(Some(1)), vec![])
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .update(
                "nope",
                Some(&[TaskState::Queued]),
                TaskPatch::new().state(TaskState::Running, json!({})),
                vec![]
            )
            .await,
        Err(StoreError::NotFound(_))
    ));
}

/// Full id, unique prefix (plain text, no wildcards), name; ambiguous, unknown and empty.
pub async fn find_by_id_prefix_and_name(store: Arc<dyn Store>) {
    for id in ["abc00001", "abd00002", "xyz00003"] {
        store.create_task(new_task(id)).await.unwrap();
    }
    store
        .create_task(NewTask {
            name: Some("fix-login".into()),
            ..new_task("fff00004")
        })
        .await
        .unwrap();
    assert_eq!(store.find_task("abc00001").await.unwrap().id, "abc00001");
    assert_eq!(store.find_task("abd").await.unwrap().id, "abd00002");
    assert_eq!(store.find_task("fix-login").await.unwrap().id, "fff00004");
    assert!(matches!(
        store.find_task("ab").await,
        Err(StoreError::Ambiguous(..))
    ));
    let err = store.find_task("a").await.unwrap_err().to_string();
    assert!(
        err.contains("abc00001") && err.contains("abd00002"),
        "{err}"
    );
    assert!(matches!(
        store.find_task("nope").await,
        Err(StoreError::NotFound(_))
    ));
    // LIKE wildcards are plain characters.
    for wild in ["%", "_", "ab%", "a_c", "%%%%%%%%"] {
        assert!(
            matches!(store.find_task(wild).await, Err(StoreError::NotFound(_))),
            "{wild:?} acted as a pattern"
        );
    }
    // An empty id matches nothing (it would be a prefix of every id).
    for empty in ["", " "] {
        assert!(matches!(
            store.find_task(empty).await,
            Err(StoreError::EmptyId)
        ));
    }
    assert!(matches!(
        store.get_task("abc").await,
        Err(StoreError::NotFound(_))
    ));
}

/// FIFO queue, requeue to the back, delete with events; `active` is the live states.
pub async fn queue_order_requeue_and_delete(store: Arc<dyn Store>) {
    for id in ["q1", "q2", "q3"] {
        store.create_task(new_task(id)).await.unwrap();
    }
    store
        .update("q1", None, TaskPatch::new().requeue(), vec![])
        .await
        .unwrap();
    assert_eq!(store.queued().await.unwrap(), vec!["q2", "q3", "q1"]);
    let all = store.list_tasks(ListFilter::All, "").await.unwrap();
    assert_eq!(
        all.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["q2", "q3", "q1"]
    );
    store
        .update(
            "q3",
            None,
            TaskPatch::new().state(TaskState::Running, json!({})),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(store.queued().await.unwrap(), vec!["q2", "q1"]);
    let active = store.active().await.unwrap();
    assert_eq!(
        active.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["q3"]
    );
    store.delete_task("q3").await.unwrap();
    assert!(store.events("q3", 0, 10).await.unwrap().is_empty());
    assert!(matches!(
        store.get_task("q3").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.delete_task("q3").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store.list_tasks(ListFilter::All, "").await.unwrap().len(),
        2
    );
}

/// Pages of summaries in queue order, long texts cut; the task itself whole; the
/// active-or-recent filter.
pub async fn list_pages_hold_summaries(store: Arc<dyn Store>) {
    let long = "é".repeat(300_000);
    for i in 0..5 {
        let mut t = new_task(&format!("cccc000{i}"));
        t.prompt = long.clone();
        t.cmd = Some(format!("echo {i}"));
        store.create_task(t).await.unwrap();
    }
    store
        .update(
            "cccc0001",
            None,
            TaskPatch::new().result(Some(long.clone())),
            vec![],
        )
        .await
        .unwrap();
    let mut after = 0;
    let mut seen = vec![];
    loop {
        let page = store
            .list_page(ListFilter::All, "", &TaskFilter::default(), after, 2)
            .await
            .unwrap();
        assert!(page.len() <= 2);
        for t in &page {
            assert_eq!(t.prompt.chars().count(), SUMMARY_CHARS + 1);
            assert!(t.prompt.ends_with('…'));
            seen.push(t.id.clone());
        }
        match page.last() {
            Some(t) if page.len() == 2 => after = t.queue_seq,
            _ => break,
        }
    }
    assert_eq!(
        seen,
        (0..5).map(|i| format!("cccc000{i}")).collect::<Vec<_>>()
    );
    let page = store
        .list_page(ListFilter::All, "", &TaskFilter::default(), 0, 5)
        .await
        .unwrap();
    assert_eq!(
        page[1].result.as_ref().unwrap().chars().count(),
        SUMMARY_CHARS + 1
    );
    assert_eq!(page[0].result, None);
    assert_eq!(page[3].cmd.as_deref(), Some("echo 3"));
    // Not summarised: the task itself.
    let whole = store.get_task("cccc0001").await.unwrap();
    assert_eq!(whole.prompt, long);
    assert_eq!(whole.result.as_deref(), Some(long.as_str()));
    // A pending request is summarised to who asks for what.
    let input = "x".repeat(5_000);
    store
        .update(
            "cccc0004",
            None,
            TaskPatch::new().pending_input(Some(
                &json!({"request_id": "r1", "tool": "Bash", "input": input}),
            )),
            vec![],
        )
        .await
        .unwrap();
    let page = store
        .list_page(ListFilter::All, "", &TaskFilter::default(), 0, 5)
        .await
        .unwrap();
    let pending = page[4].pending_input.as_ref().unwrap();
    assert_eq!(pending["request_id"], "r1");
    assert_eq!(pending["summary"], true);
    assert!(pending["input"].as_str().unwrap().len() <= 200);
    // Active-or-recent: a finished task from before `since` is left out.
    store
        .update(
            "cccc0002",
            None,
            TaskPatch::new()
                .state(TaskState::Failed, json!({}))
                .finished_at(Some("2000-01-01T00:00:00.000Z".into())),
            vec![],
        )
        .await
        .unwrap();
    for recent in [
        store
            .list_page(
                ListFilter::ActiveOrFinishedSince,
                "2020-01-01T00:00:00.000Z",
                &TaskFilter::default(),
                0,
                10,
            )
            .await
            .unwrap(),
        store
            .list_tasks(
                ListFilter::ActiveOrFinishedSince,
                "2020-01-01T00:00:00.000Z",
            )
            .await
            .unwrap(),
    ] {
        let ids: Vec<&str> = recent.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["cccc0000", "cccc0001", "cccc0003", "cccc0004"]);
    }
}

/// ~10 KB events: a 35 KB budget holds 3; a budget smaller than one event still gives one.
pub async fn events_page_stops_at_a_byte_bound(store: Arc<dyn Store>) {
    store.create_task(new_task("eeee0001")).await.unwrap();
    let big = "z".repeat(10_000);
    let evs = (0..50)
        .map(|_| NewEvent::new(EventKind::Text, json!({ "text": big })))
        .collect();
    store
        .update("eeee0001", None, TaskPatch::new(), evs)
        .await
        .unwrap();
    let all = store.events("eeee0001", 0, 1000).await.unwrap();
    assert_eq!(all.len(), 51);
    let s0 = all.iter().find(|e| e.kind == EventKind::Text).unwrap().seq - 1;
    let page = store
        .events_page("eeee0001", s0, 1000, 35_000)
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![s0 + 1, s0 + 2, s0 + 3]
    );
    assert_eq!(page[0].data["text"].as_str().unwrap().len(), 10_000);
    let one = store
        .events_page("eeee0001", s0 + 3, 1000, 10)
        .await
        .unwrap();
    assert_eq!(one.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![s0 + 4]);
    let rest = store
        .events_page("eeee0001", s0 + 45, 1000, 1 << 20)
        .await
        .unwrap();
    assert_eq!(rest.len(), 5);
    let limited = store.events_page("eeee0001", 0, 2, 1 << 20).await.unwrap();
    assert_eq!(limited.len(), 2);
}

/// Every setter of [`TaskPatch`] lands in its field, and clearing works.
pub async fn patch_fields_round_trip(store: Arc<dyn Store>) {
    store
        .create_task(NewTask {
            name: Some("n".into()),
            model: Some("m".into()),
            repo_dir: Some("/d".into()),
            base_commit: Some("c0".into()),
            cmd: Some("make".into()),
            verify: vec!["cargo test".into()],
            budget: drover_types::Budget {
                max_usd: Some(1.5),
                max_tokens: Some(1000),
            },
            session_id: Some("s0".into()),
            team: Some("t".into()),
            created_by: Some("me".into()),
            verify_rounds: 3,
            judge_model: Some("j".into()),
            protect: vec!["*.lock".into()],
            timeout_secs: Some(60),
            stall_timeout_secs: Some(30),
            limits: drover_types::Limits {
                memory_bytes: Some(64 << 20),
                cpus: Some(0.5),
                pids: Some(64),
            },
            ..new_task("pppp0001")
        })
        .await
        .unwrap();
    let t = store.get_task("pppp0001").await.unwrap();
    assert_eq!(t.name.as_deref(), Some("n"));
    assert_eq!(t.branch, "drover/pppp0001");
    assert_eq!(t.verify, ["cargo test"]);
    assert_eq!(t.protect, ["*.lock"]);
    assert_eq!(t.budget.max_tokens, Some(1000));
    assert_eq!(t.budget.max_usd, Some(1.5));
    assert_eq!((t.verify_rounds, t.timeout_secs), (3, Some(60)));
    assert_eq!(t.stall_timeout_secs, Some(30));
    assert_eq!(t.limits.memory_bytes, Some(64 << 20));
    assert_eq!((t.limits.cpus, t.limits.pids), (Some(0.5), Some(64)));
    assert_eq!(t.isolation, None);
    assert_eq!(t.metered_by, MeteredBy::Agent);
    assert_eq!(t.attempt, 0);

    let usage = Usage {
        input_tokens: 1,
        output_tokens: 2,
        cache_read_tokens: 3,
        cache_write_tokens: 4,
    };
    let agent_usage = Usage {
        input_tokens: 9,
        ..Usage::default()
    };
    let outcome = Outcome {
        verdict: Verdict::Fail,
        reason: "why".into(),
        error_kind: Some(ErrorKind::AgentExit),
    };
    let request = json!({"request_id": "r", "tool": "Bash", "input": "ls"});
    let ts = |n: u32| format!("2026-01-01T00:00:0{n}.000Z");
    let patch = TaskPatch::new()
        .outcome(Some(&outcome))
        .usage(usage)
        .pending_input(Some(&request))
        .stop_requested(true)
        .started_at(Some(ts(1)))
        .finished_at(Some(ts(2)))
        .result(Some("done".into()))
        .cost_usd(Some(0.25))
        .session_id(Some("s1".into()))
        .commit(Some("abc".into()))
        .repo_dir(Some("/d2".into()))
        .base_commit(Some("c1".into()))
        .sandbox(Some("/sb".into()))
        .sandbox_kind(Some(SandboxKind::Overlay))
        .shim_pid(Some(10))
        .shim_start(Some(11))
        .pid(Some(12))
        .pgid(Some(13))
        .agent_start(Some(14))
        .stdout_offset(Some(15))
        .stderr_offset(Some(16))
        .turns_done(Some(4))
        .turns_sent(Some(5))
        .gate_status(Some(GateStatus::Passed))
        .stop_reason(Some(StopReason::User))
        .metered_by(Some(MeteredBy::Gateway))
        .agent_cost_usd(Some(0.5))
        .activity_at(Some(ts(3)))
        .stop_requested_at(Some(ts(4)))
        .stop_step_at(Some(ts(5)))
        .stop_step(StopStep::Int)
        .agent_usage(agent_usage)
        .isolation(Some(drover_types::Isolation::Full))
        .peak_memory_bytes(Some(1 << 20))
        .cpu_seconds(Some(1.25))
        .inc_gate_rounds()
        .inc_attempt();
    let (t, evs) = store.update("pppp0001", None, patch, vec![]).await.unwrap();
    assert!(evs.is_empty());
    assert_eq!(t.outcome.as_ref(), Some(&outcome));
    assert_eq!(t.usage, usage);
    assert_eq!(t.pending_input.as_ref(), Some(&request));
    assert!(t.pending_since.is_some());
    assert!(t.stop_requested);
    assert_eq!(t.started_at, Some(ts(1)));
    assert_eq!(t.finished_at, Some(ts(2)));
    assert_eq!(t.result.as_deref(), Some("done"));
    assert_eq!(t.cost_usd, Some(0.25));
    assert_eq!(t.session_id.as_deref(), Some("s1"));
    assert_eq!(t.commit.as_deref(), Some("abc"));
    assert_eq!(t.repo_dir.as_deref(), Some("/d2"));
    assert_eq!(t.base_commit.as_deref(), Some("c1"));
    assert_eq!(t.sandbox.as_deref(), Some("/sb"));
    assert_eq!(t.sandbox_kind, Some(SandboxKind::Overlay));
    assert_eq!(
        (t.shim_pid, t.shim_start, t.pid, t.pgid, t.agent_start),
        (Some(10), Some(11), Some(12), Some(13), Some(14))
    );
    assert_eq!((t.stdout_offset, t.stderr_offset), (15, 16));
    assert_eq!((t.turns_done, t.turns_sent), (4, 5));
    assert_eq!(t.gate_status, Some(GateStatus::Passed));
    assert_eq!(t.stop_reason, Some(StopReason::User));
    assert_eq!(t.metered_by, MeteredBy::Gateway);
    assert_eq!(t.agent_cost_usd, Some(0.5));
    assert_eq!(t.activity_at, Some(ts(3)));
    assert_eq!(t.stop_requested_at, Some(ts(4)));
    assert_eq!(t.stop_step_at, Some(ts(5)));
    assert_eq!(t.stop_step, Some(StopStep::Int));
    assert_eq!(t.agent_usage, Some(agent_usage));
    assert_eq!(t.isolation, Some(drover_types::Isolation::Full));
    assert_eq!(
        (t.peak_memory_bytes, t.cpu_seconds),
        (Some(1 << 20), Some(1.25))
    );
    assert_eq!((t.gate_rounds, t.attempt), (1, 1));

    // Increments add to the stored value and win over a set of the same field.
    let (t, _) = store
        .update(
            "pppp0001",
            None,
            TaskPatch::new()
                .turns_done(Some(100))
                .inc_turns_done()
                .inc_turns_sent(),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!((t.turns_done, t.turns_sent), (5, 6));

    // Clearing.
    let (t, _) = store
        .update(
            "pppp0001",
            None,
            TaskPatch::new()
                .outcome(None)
                .pending_input(None)
                .stop_requested(false)
                .result(None)
                .pid(None)
                .gate_status(None)
                .stop_reason(None),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(t.outcome, None);
    assert_eq!((t.pending_input, t.pending_since), (None, None));
    assert!(!t.stop_requested);
    assert_eq!((t.result, t.pid), (None, None));
    assert_eq!((t.gate_status, t.stop_reason), (None, None));
    // Untouched by the clearing patch.
    assert_eq!(t.commit.as_deref(), Some("abc"));
}

/// One idempotency key names one task: ten concurrent creations with one key and body make
/// one task and all see its id; another body is a conflict that creates nothing; keys are per
/// scope; an expired key (or one whose task is gone) is free again.
pub async fn idempotent_create_makes_one_task(store: Arc<dyn Store>) {
    use crate::{Idempotency, Idempotent};
    let idem = |scope: &str, key: &str, hash: &str| Idempotency {
        scope: scope.into(),
        key: key.into(),
        body_hash: hash.into(),
        not_before: "2020-01-01T00:00:00.000Z".into(),
    };
    let mut joins = vec![];
    for i in 0..10 {
        let store = store.clone();
        let idem = idem("team:a", "k1", "h1");
        joins.push(tokio::spawn(async move {
            store
                .create_task_idempotent(new_task(&format!("1dem000{i}")), &idem)
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
    assert_eq!(created, 1);
    assert_eq!(ids.len(), 1, "{ids:?}");
    let first = ids.into_iter().next().unwrap();
    assert_eq!(
        store.list_tasks(ListFilter::All, "").await.unwrap().len(),
        1
    );
    // Another body: a conflict naming the task, nothing created.
    match store
        .create_task_idempotent(new_task("1dem0100"), &idem("team:a", "k1", "h2"))
        .await
        .unwrap()
    {
        Idempotent::Conflict(id) => assert_eq!(id, first),
        other => panic!("{other:?}"),
    }
    assert!(store.get_task("1dem0100").await.is_err());
    // The same key in another scope is another key.
    assert!(matches!(
        store
            .create_task_idempotent(new_task("1dem0101"), &idem("owner", "k1", "h2"))
            .await
            .unwrap(),
        Idempotent::Created(_)
    ));
    // Expired (recorded before `not_before`): free again.
    let mut later = idem("team:a", "k1", "h3");
    later.not_before = "2999-01-01T00:00:00.000Z".into();
    match store
        .create_task_idempotent(new_task("1dem0102"), &later)
        .await
        .unwrap()
    {
        Idempotent::Created(t) => assert_eq!(t.id, "1dem0102"),
        other => panic!("{other:?}"),
    }
    // A key whose task was removed is free again.
    store.delete_task("1dem0101").await.unwrap();
    assert!(matches!(
        store
            .create_task_idempotent(new_task("1dem0103"), &idem("owner", "k1", "h9"))
            .await
            .unwrap(),
        Idempotent::Created(_)
    ));
}

/// Pages narrowed by state, pool, team and tag.
pub async fn list_page_filters(store: Arc<dyn Store>) {
    let mut a = new_task("f11t0001");
    a.team = Some("a".into());
    a.tags = [("customer".to_string(), "acme".to_string())].into();
    store.create_task(a).await.unwrap();
    let mut b = new_task("f11t0002");
    b.team = Some("b".into());
    b.tags = [("customer".to_string(), "zeta".to_string())].into();
    store.create_task(b).await.unwrap();
    store
        .update(
            "f11t0002",
            None,
            TaskPatch::new().state(TaskState::Failed, json!({})),
            vec![],
        )
        .await
        .unwrap();
    let ids = |f: TaskFilter| {
        let store = store.clone();
        async move {
            store
                .list_page(ListFilter::All, "", &f, 0, 10)
                .await
                .unwrap()
                .into_iter()
                .map(|t| t.id)
                .collect::<Vec<_>>()
        }
    };
    let tag = |k: &str, v: &str| Some((k.to_string(), v.to_string()));
    assert_eq!(ids(TaskFilter::default()).await, ["f11t0001", "f11t0002"]);
    let team_a = TaskFilter {
        team: Some("a".into()),
        ..Default::default()
    };
    assert_eq!(ids(team_a).await, ["f11t0001"]);
    let failed = TaskFilter {
        state: Some(TaskState::Failed),
        ..Default::default()
    };
    assert_eq!(ids(failed).await, ["f11t0002"]);
    let acme = TaskFilter {
        tag: tag("customer", "acme"),
        ..Default::default()
    };
    assert_eq!(ids(acme).await, ["f11t0001"]);
    let mixed = TaskFilter {
        tag: tag("customer", "acme"),
        team: Some("b".into()),
        ..Default::default()
    };
    assert!(ids(mixed).await.is_empty());
    let odd = TaskFilter {
        tag: tag("cust'o\"mer", "acme"),
        ..Default::default()
    };
    assert!(ids(odd).await.is_empty());
    let pool = TaskFilter {
        pool: Some("p".into()),
        ..Default::default()
    };
    assert!(ids(pool).await.is_empty());
}
