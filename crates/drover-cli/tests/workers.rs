//! Workers, claims, leases and fencing at engine level (docs/design.md §8), on the SQLite store
//! of a real daemon: another worker is played by the test through the store API on the same
//! database file (a claim under a made-up worker name, a take-over written as its new holder).
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use drover_store::prelude::*;
use drover_store::{Fence, SqliteStore, TaskPatch};
use drover_types::TaskState;
use serde_json::json;
use std::time::Duration;

fn store(rt: &tokio::runtime::Runtime, env: &Env) -> SqliteStore {
    rt.block_on(SqliteStore::open(&env.home.join("drover.db")))
        .unwrap()
}

fn daemon_log(env: &Env) -> String {
    std::fs::read_to_string(env.home.join("daemon.log")).unwrap_or_default()
}

/// A task held by a worker that never heartbeats again (a claim made with a 1-second lease
/// under a made-up name, moved to `running` as that worker would) is taken over by the live
/// worker: an `interrupted` event (`lost_host`, naming the lost worker), requeued at its place,
/// then run here as attempt 2 and succeeds.
#[test]
fn a_task_of_a_lapsed_worker_is_taken_over_and_finishes_here_as_attempt_two() {
    let env = Env::new()
        .with_env("DROVER_SLOTS", "1")
        .with_env("DROVER_LEASE_SECS", "2")
        .with_env("DROVER_WORKER_NAME", "live");
    let rt = runtime();
    // The one slot is busy until the test says so: the next task stays queued.
    let blocker = env.run_command_task("while [ ! -e go ]; do sleep 0.05; done", "blocker");
    let running = env.until(&blocker, "the blocker to run", |t| t["state"] == "running");
    assert_eq!(running["worker"], "live", "{running:#}");
    assert_eq!(running["attempt"], 1, "{running:#}");
    let id = env.run_command_task("echo done here", "orphan");
    let s = store(&rt, &env);
    let claims = rt.block_on(s.claim("ghost", 1, 1)).unwrap();
    assert_eq!(claims.len(), 1, "the queued task is the ghost's");
    assert_eq!(claims[0].id, id);
    assert_eq!(claims[0].fence, Fence::new("ghost", 1));
    rt.block_on(
        s.update(
            &id,
            Some(&[TaskState::Queued]),
            TaskPatch::new()
                .state(TaskState::Running, json!({ "pid": 1 }))
                .fence(claims[0].fence.clone()),
            vec![],
        ),
    )
    .unwrap();
    // The lease lapses after a second; the live worker's sweep requeues it.
    let requeued = env.until(&id, "the take-over", |t| {
        t["state"] == "queued" && t["worker"].is_null()
    });
    assert_eq!(requeued["attempt"], 1, "{requeued:#}");
    std::fs::write(
        std::path::Path::new(running["sandbox"].as_str().unwrap()).join("go"),
        "",
    )
    .unwrap();
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    assert_eq!(t["result"], "done here");
    assert_eq!(t["attempt"], 2, "{t:#}");
    assert_eq!(t["worker"], "live", "{t:#}");
    let events = env.events(&id);
    let lost: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["kind"] == "state" && e["data"]["state"] == "interrupted")
        .collect();
    assert_eq!(lost.len(), 1, "{events:#?}");
    assert_eq!(lost[0]["data"]["outcome"], "lost_host");
    assert_eq!(lost[0]["data"]["worker"], "ghost");
    assert!(
        lost[0]["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("worker ghost"),
        "{lost:#?}"
    );
    assert_eq!(env.wait(&blocker)["state"], "succeeded");
}

/// A claim taken over behind the holder's back (the task now held by worker B, attempt 2):
/// the holder's next write (its agent's output) is refused by the fence and changes nothing;
/// it ends its local agent, stops writing and says `fenced` and who holds the task.
#[test]
fn a_worker_whose_claim_was_taken_over_stops_writing_and_says_fenced() {
    let env = Env::new()
        .with_env("DROVER_LEASE_SECS", "30")
        .with_env("DROVER_WORKER_NAME", "A");
    let rt = runtime();
    let cmd = "while [ ! -e go ]; do sleep 0.05; done; echo after the take-over; sleep 60";
    let id = env.run_command_task(cmd, "taken");
    let running = env.until(&id, "the task to run", |t| t["state"] == "running");
    assert_eq!(
        (running["worker"].as_str(), running["attempt"].as_i64()),
        (Some("A"), Some(1))
    );
    let pid = running["pid"].as_i64().unwrap();
    // Worker B took it over (as after A's lease lapsed) and holds attempt 2.
    let s = store(&rt, &env);
    rt.block_on(s.update(
        &id,
        None,
        TaskPatch::new().worker(Some("B".into())).inc_attempt(),
        vec![],
    ))
    .unwrap();
    let before = rt.block_on(s.get_task(&id)).unwrap();
    std::fs::write(
        std::path::Path::new(running["sandbox"].as_str().unwrap()).join("go"),
        "",
    )
    .unwrap();
    poll(
        "the fenced line in the log",
        Duration::from_secs(60),
        || daemon_log(&env).contains("fenced"),
    );
    let log = daemon_log(&env);
    let line = log.lines().find(|l| l.contains("fenced")).unwrap();
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("worker B attempt 2"), "{line}");
    assert!(line.contains(&id), "{line}");
    // A's agent is ended; nothing A saw after the take-over reached the store.
    wait_gone(pid);
    let after = rt.block_on(s.get_task(&id)).unwrap();
    assert_eq!(after.state, before.state);
    assert_eq!(after.next_seq, before.next_seq);
    assert_eq!(after.worker.as_deref(), Some("B"));
    assert_eq!(after.attempt, 2);
    let events = env.events(&id);
    assert!(
        !events
            .iter()
            .any(|e| e.to_string().contains("after the take-over")),
        "{events:#?}"
    );
    // The supervisor is gone: A writes nothing more about it.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        rt.block_on(s.get_task(&id)).unwrap().next_seq,
        before.next_seq
    );
    // B ends it (so the test's daemon stop has nothing to wait for).
    rt.block_on(s.update(
        &id,
        None,
        TaskPatch::new().state(TaskState::Cancelled, json!({})),
        vec![],
    ))
    .unwrap();
}
