//! Conformance tests, written once against the traits: every implementation runs all of them
//! (SQLite in `tests/sqlite.rs`; a PostgreSQL store the same way) through
//! [`conformance_tests!`](crate::conformance_tests), which turns each into a `#[tokio::test]`
//! given a function that opens a fresh, empty store.
//!
//! Each test takes a fresh store and panics (asserts) when the store breaks a promise of the
//! traits' docs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::{
    ListFilter, NewPool, NewTask, PoolStats, Spent, Store, StoreError, TaskPatch, UsageGroup,
    UsageRow, SUMMARY_CHARS,
};
use drover_types::{ErrorKind, EventKind, NewEvent, Outcome, TaskState, Usage, Verdict};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Generates one `#[tokio::test]` per conformance test. `$open` is an async fn returning
/// `(Arc<dyn Store>, guard)`: a fresh, empty store and whatever must live as long as it (a temp
/// dir, a database handle).
#[macro_export]
macro_rules! conformance_tests {
    ($open:path) => {
        $crate::conformance_tests!(@each $open;
            seq_contiguous_under_concurrent_updates,
            state_change_and_event_are_atomic,
            find_by_id_prefix_and_name,
            queue_order_requeue_and_delete,
            list_pages_hold_summaries,
            events_page_stops_at_a_byte_bound,
            pool_events_are_the_latest,
            patch_fields_round_trip,
            pool_create_get_list,
            pool_launch_never_exceeds_slots_under_concurrency,
            pool_launch_respects_count_and_state,
            pool_stats_come_from_tasks,
            usage_record_is_all_or_none_and_spent_sums,
            usage_report_groups,
            writes_notify_and_reads_do_not,
        );
    };
    (@each $open:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (store, _guard) = $open().await;
                $crate::conformance::$name(store).await;
            }
        )*
    };
}

/// A minimal queued task.
pub fn new_task(id: &str) -> NewTask {
    NewTask {
        id: id.into(),
        agent: "command".into(),
        repo: "/r".into(),
        base_ref: "HEAD".into(),
        prompt: "p".into(),
        permissions: "ask".into(),
        ..Default::default()
    }
}

/// A pool of `slots`, at most `count` tasks.
pub fn new_pool(name: &str, slots: i64, count: Option<i64>) -> NewPool {
    NewPool {
        name: name.into(),
        slots,
        prompt: "do {n}".into(),
        repo: "/r".into(),
        base_ref: "HEAD".into(),
        agent: "command".into(),
        cmd: Some("true".into()),
        permissions: "ask".into(),
        count_total: count,
        max_failures: 3,
        verify_rounds: 2,
        failure_policy: "finish".into(),
        ..Default::default()
    }
}

fn pool_task(pool: &str, id: &str) -> NewTask {
    NewTask {
        pool: Some(pool.into()),
        ..new_task(id)
    }
}

fn usage_row(task: &str, tokens: i64, cost: Option<f64>, at: &str) -> UsageRow {
    UsageRow {
        task_id: task.into(),
        pool: None,
        team: None,
        api: "anthropic".into(),
        model: "m1".into(),
        input_tokens: tokens,
        output_tokens: 2 * tokens,
        cache_read_tokens: 0,
        cache_write_tokens: 1,
        cost_usd: cost,
        stop_reason: Some("end_turn".into()),
        outcome: "ok".into(),
        at: at.into(),
    }
}

/// Ends a task (terminal state, finish time) with an outcome.
async fn finish(store: &dyn Store, id: &str, state: TaskState, verdict: Option<Verdict>) {
    let outcome = verdict.map(|v| Outcome {
        verdict: v,
        reason: format!("{id} {}", v.as_str()),
        error_kind: None,
    });
    store
        .update(
            id,
            None,
            TaskPatch::new()
                .state(state, json!({}))
                .outcome(outcome.as_ref())
                .finished_at(Some(crate::now())),
            vec![],
        )
        .await
        .unwrap();
}

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
            .list_page(ListFilter::All, "", after, 2)
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
    let page = store.list_page(ListFilter::All, "", 0, 5).await.unwrap();
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
    let page = store.list_page(ListFilter::All, "", 0, 5).await.unwrap();
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

/// A pool's event log: seq per pool, the latest `limit`, oldest first.
pub async fn pool_events_are_the_latest(store: Arc<dyn Store>) {
    for i in 0..30 {
        store
            .pool_event("p", "note", json!({ "i": i }))
            .await
            .unwrap();
    }
    store.pool_event("q", "note", json!({})).await.unwrap();
    let latest = store.pool_events("p", 10).await.unwrap();
    let seqs: Vec<i64> = latest.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (21..=30).collect::<Vec<_>>());
    assert_eq!(latest[9].data, json!({ "i": 29 }));
    assert_eq!(latest[9].kind, "note");
    assert_eq!(store.pool_events("q", 10).await.unwrap()[0].seq, 1);
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
    assert_eq!(t.metered_by, "agent");
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
        .sandbox_kind(Some("overlay".into()))
        .shim_pid(Some(10))
        .shim_start(Some(11))
        .pid(Some(12))
        .pgid(Some(13))
        .agent_start(Some(14))
        .stdout_offset(Some(15))
        .stderr_offset(Some(16))
        .turns_done(Some(4))
        .turns_sent(Some(5))
        .gate_status(Some("passed".into()))
        .stop_reason(Some("user".into()))
        .metered_by(Some("gateway".into()))
        .agent_cost_usd(Some(0.5))
        .activity_at(Some(ts(3)))
        .stop_requested_at(Some(ts(4)))
        .stop_step_at(Some(ts(5)))
        .stop_step(2)
        .agent_usage(agent_usage)
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
    assert_eq!(t.sandbox_kind.as_deref(), Some("overlay"));
    assert_eq!(
        (t.shim_pid, t.shim_start, t.pid, t.pgid, t.agent_start),
        (Some(10), Some(11), Some(12), Some(13), Some(14))
    );
    assert_eq!((t.stdout_offset, t.stderr_offset), (15, 16));
    assert_eq!((t.turns_done, t.turns_sent), (4, 5));
    assert_eq!(t.gate_status.as_deref(), Some("passed"));
    assert_eq!(t.stop_reason.as_deref(), Some("user"));
    assert_eq!(t.metered_by, "gateway");
    assert_eq!(t.agent_cost_usd, Some(0.5));
    assert_eq!(t.activity_at, Some(ts(3)));
    assert_eq!(t.stop_requested_at, Some(ts(4)));
    assert_eq!(t.stop_step_at, Some(ts(5)));
    assert_eq!(t.stop_step, 2);
    assert_eq!(t.agent_usage, Some(agent_usage));
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

/// Create, get, list; a taken name; an unknown pool.
pub async fn pool_create_get_list(store: Arc<dyn Store>) {
    let mut p = new_pool("alpha", 2, Some(5));
    p.allowed_models = Some(vec!["m1".into()]);
    p.protect = vec!["Cargo.lock".into()];
    p.verify = vec!["make test".into()];
    p.timeout_secs = Some(600);
    let created = store.create_pool(p).await.unwrap();
    assert_eq!(created.state, "running");
    assert_eq!((created.slots, created.count_total), (2, Some(5)));
    assert_eq!(created.allowed_models, Some(vec!["m1".to_string()]));
    assert_eq!(created.protect, ["Cargo.lock"]);
    assert_eq!(created.verify, ["make test"]);
    assert_eq!(created.timeout_secs, Some(600));
    assert_eq!((created.launched, created.notified), (0, false));
    assert_eq!(store.get_pool("alpha").await.unwrap(), created);
    assert!(matches!(
        store.create_pool(new_pool("alpha", 1, None)).await,
        Err(StoreError::Exists(name)) if name == "alpha"
    ));
    store.create_pool(new_pool("beta", 1, None)).await.unwrap();
    let names: Vec<String> = store
        .list_pools()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["alpha", "beta"]);
    assert!(matches!(
        store.get_pool("gamma").await,
        Err(StoreError::PoolNotFound(_))
    ));
    assert!(matches!(
        store.set_pool_state("gamma", "stopped", None, false).await,
        Err(StoreError::PoolNotFound(_))
    ));
    let stopped = store
        .set_pool_state("beta", "stopped", Some("by request"), false)
        .await
        .unwrap();
    assert_eq!(stopped.state, "stopped");
    assert_eq!(stopped.stop_reason.as_deref(), Some("by request"));
    assert!(store.mark_pool_notified("beta").await.unwrap());
    assert!(!store.mark_pool_notified("beta").await.unwrap());
    let restarted = store
        .set_pool_state("beta", "running", None, true)
        .await
        .unwrap();
    assert!(
        !restarted.notified,
        "a new streak allows a new notification"
    );
    assert!(restarted.streak_since >= stopped.streak_since);
}

/// Many launches at once never fill more than the pool's slots; a finished task frees one.
pub async fn pool_launch_never_exceeds_slots_under_concurrency(store: Arc<dyn Store>) {
    store.create_pool(new_pool("wide", 3, None)).await.unwrap();
    let mut handles = vec![];
    for i in 0..12 {
        let s = store.clone();
        handles.push(tokio::spawn(async move {
            s.launch_pool_task("wide", pool_task("wide", &format!("w{i:02}")))
                .await
                .unwrap()
        }));
    }
    let mut launched = vec![];
    for h in handles {
        if let Some(t) = h.await.unwrap() {
            assert_eq!(t.state, TaskState::Queued);
            assert_eq!(t.pool.as_deref(), Some("wide"));
            launched.push(t.id);
        }
    }
    assert_eq!(launched.len(), 3, "{launched:?}");
    assert_eq!(store.get_pool("wide").await.unwrap().launched, 3);
    assert!(store
        .launch_pool_task("wide", pool_task("wide", "w99"))
        .await
        .unwrap()
        .is_none());
    finish(
        &*store,
        &launched[0],
        TaskState::Succeeded,
        Some(Verdict::Success),
    )
    .await;
    assert!(store
        .launch_pool_task("wide", pool_task("wide", "w98"))
        .await
        .unwrap()
        .is_some());
    assert!(store
        .launch_pool_task("wide", pool_task("wide", "w97"))
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        store.launch_pool_task("none", pool_task("none", "x")).await,
        Err(StoreError::PoolNotFound(_))
    ));
}

/// A pool stops launching at its count and when it is not running.
pub async fn pool_launch_respects_count_and_state(store: Arc<dyn Store>) {
    store
        .create_pool(new_pool("two", 5, Some(2)))
        .await
        .unwrap();
    for id in ["c1", "c2"] {
        assert!(store
            .launch_pool_task("two", pool_task("two", id))
            .await
            .unwrap()
            .is_some());
        finish(&*store, id, TaskState::Succeeded, Some(Verdict::Success)).await;
    }
    assert!(store
        .launch_pool_task("two", pool_task("two", "c3"))
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        store.get_task("c3").await,
        Err(StoreError::NotFound(_))
    ));

    store.create_pool(new_pool("held", 5, None)).await.unwrap();
    store
        .set_pool_state("held", "stopped", None, false)
        .await
        .unwrap();
    assert!(store
        .launch_pool_task("held", pool_task("held", "h1"))
        .await
        .unwrap()
        .is_none());
    assert_eq!(store.get_pool("held").await.unwrap().launched, 0);
}

/// Counters from the tasks: running, successes, failures, soft fails, cancelled (neither), the
/// streak of failures finished since `streak_since`, newest reasons first.
pub async fn pool_stats_come_from_tasks(store: Arc<dyn Store>) {
    store.create_pool(new_pool("s", 10, None)).await.unwrap();
    let ends = [
        ("s1", TaskState::Failed, Some(Verdict::Fail)),
        ("s2", TaskState::Succeeded, Some(Verdict::Success)),
        ("s3", TaskState::Failed, Some(Verdict::Fail)),
        ("s4", TaskState::Cancelled, None),
        ("s5", TaskState::Succeeded, Some(Verdict::SoftFail)),
        ("s6", TaskState::Failed, Some(Verdict::Fail)),
    ];
    for (i, (id, state, verdict)) in ends.into_iter().enumerate() {
        store
            .launch_pool_task("s", pool_task("s", id))
            .await
            .unwrap()
            .unwrap();
        finish(&*store, id, state, verdict).await;
        // Fixed, ordered finish times (after the streak began).
        store
            .update(
                id,
                None,
                TaskPatch::new()
                    .cost_usd(Some(0.5))
                    .finished_at(Some(format!("2999-01-01T00:00:0{i}.000Z"))),
                vec![],
            )
            .await
            .unwrap();
    }
    store
        .launch_pool_task("s", pool_task("s", "s7"))
        .await
        .unwrap()
        .unwrap();
    let strict = store.pool_stats("s", true).await.unwrap();
    assert_eq!(
        strict,
        PoolStats {
            running: 1,
            finished: 6,
            successes: 1,
            failures: 4,
            soft_fails: 1,
            cancelled: 1,
            streak: 3,
            total_cost_usd: 3.0,
            last_reasons: vec!["s6 fail".into(), "s5 soft_fail".into(), "s3 fail".into()],
        }
    );
    let lenient = store.pool_stats("s", false).await.unwrap();
    assert_eq!((lenient.successes, lenient.failures), (2, 3));
    assert_eq!(lenient.streak, 1);
    assert_eq!(lenient.last_reasons, ["s6 fail"]);

    // Failures finished before the streak began count as failures, not in the streak.
    store.create_pool(new_pool("old", 1, None)).await.unwrap();
    store
        .launch_pool_task("old", pool_task("old", "o1"))
        .await
        .unwrap()
        .unwrap();
    finish(&*store, "o1", TaskState::Failed, Some(Verdict::Fail)).await;
    store
        .update(
            "o1",
            None,
            TaskPatch::new().finished_at(Some("2000-01-01T00:00:00.000Z".into())),
            vec![],
        )
        .await
        .unwrap();
    let old = store.pool_stats("old", true).await.unwrap();
    assert_eq!((old.failures, old.streak), (1, 0));
    assert!(old.last_reasons.is_empty());
    assert!(matches!(
        store.pool_stats("none", true).await,
        Err(StoreError::PoolNotFound(_))
    ));
}

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
    let by = |lines: Vec<crate::UsageLine>| -> Vec<(String, i64, i64, Option<f64>)> {
        lines
            .into_iter()
            .map(|l| (l.key, l.requests, l.input_tokens, l.cost_usd))
            .collect()
    };
    assert_eq!(
        by(store.usage_report(UsageGroup::Task).await.unwrap()),
        [("r1".into(), 2, 11, None), ("r2".into(), 1, 5, Some(0.5))]
    );
    assert_eq!(
        by(store.usage_report(UsageGroup::Pool).await.unwrap()),
        [("-".into(), 2, 11, None), ("p".into(), 1, 5, Some(0.5))]
    );
    assert_eq!(
        by(store.usage_report(UsageGroup::Model).await.unwrap()),
        [("m1".into(), 2, 11, None), ("m2".into(), 1, 5, Some(0.5))]
    );
    assert_eq!(
        by(store.usage_report(UsageGroup::Day).await.unwrap()),
        [
            ("2026-03-01".into(), 1, 10, Some(1.0)),
            ("2026-03-02".into(), 2, 6, None)
        ]
    );
    let line = &store.usage_report(UsageGroup::Task).await.unwrap()[0];
    assert_eq!(
        (
            line.output_tokens,
            line.cache_read_tokens,
            line.cache_write_tokens
        ),
        (22, 0, 2)
    );
}

/// Every committed write bumps the change feed before it returns; reads and refused writes do
/// not; a follower waiting on the feed wakes.
pub async fn writes_notify_and_reads_do_not(store: Arc<dyn Store>) {
    let mut rx = store.subscribe();
    let mut bumped = move || {
        let changed = rx.has_changed().unwrap();
        rx.borrow_and_update();
        changed
    };
    store.create_task(new_task("nnnn0001")).await.unwrap();
    assert!(bumped(), "create_task");
    store
        .update(
            "nnnn0001",
            None,
            TaskPatch::new().pid(Some(1)),
            vec![NewEvent::new(EventKind::Text, json!({"text": "x"}))],
        )
        .await
        .unwrap();
    assert!(bumped(), "update");
    store.get_task("nnnn0001").await.unwrap();
    store.find_task("nnnn").await.unwrap();
    store.events("nnnn0001", 0, 10).await.unwrap();
    store.list_tasks(ListFilter::All, "").await.unwrap();
    store.queued().await.unwrap();
    assert!(!bumped(), "reads");
    store
        .update(
            "nnnn0001",
            Some(&[TaskState::Running]),
            TaskPatch::new().state(TaskState::Failed, json!({})),
            vec![],
        )
        .await
        .unwrap_err();
    assert!(!bumped(), "a refused update");
    store.create_pool(new_pool("np", 1, None)).await.unwrap();
    assert!(bumped(), "create_pool");
    store
        .launch_pool_task("np", pool_task("np", "nnnn0002"))
        .await
        .unwrap()
        .unwrap();
    assert!(bumped(), "launch_pool_task");
    store
        .launch_pool_task("np", pool_task("np", "nnnn0003"))
        .await
        .unwrap();
    assert!(!bumped(), "a launch without room writes nothing");
    store.pool_event("np", "note", json!({})).await.unwrap();
    assert!(bumped(), "pool_event");
    store
        .set_pool_state("np", "stopped", None, false)
        .await
        .unwrap();
    assert!(bumped(), "set_pool_state");
    assert!(store.mark_pool_notified("np").await.unwrap());
    assert!(bumped(), "mark_pool_notified");
    store
        .record_usage(&[usage_row("nnnn0001", 1, None, "2026-03-02T00:00:00.000Z")])
        .await
        .unwrap();
    assert!(bumped(), "record_usage");
    store.usage_report(UsageGroup::Task).await.unwrap();
    store.usage_last_id().await.unwrap();
    store.pool_stats("np", true).await.unwrap();
    assert!(!bumped(), "reads");
    store.delete_task("nnnn0002").await.unwrap();
    assert!(bumped(), "delete_task");

    // A follower parked on the feed wakes on the next write.
    let mut follower = store.subscribe();
    follower.borrow_and_update();
    let waiting = tokio::spawn(async move {
        tokio::time::timeout(Duration::from_secs(10), follower.changed()).await
    });
    store
        .update("nnnn0001", None, TaskPatch::new().pid(Some(2)), vec![])
        .await
        .unwrap();
    assert!(matches!(waiting.await.unwrap(), Ok(Ok(()))));
    // Bumps from outside the store (in-memory changes of its user) reach the same followers.
    let mut rx = store.subscribe();
    rx.borrow_and_update();
    store.changes().bump();
    assert!(rx.has_changed().unwrap());
}
