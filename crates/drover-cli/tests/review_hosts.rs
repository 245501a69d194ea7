//! Review of the many-hosts layer (docs/design.md §8). Needs the test cluster
//! (`source scripts/lib.sh && start_postgres`).
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use drover_daemon::config::Secret;
use drover_store::conformance::pg;
use drover_test_support::daemon::InProcessDaemon;
use std::path::Path;
use std::time::Duration;

/// A second daemon started under the name of a worker that is still alive (another host with
/// the same host name, a copy-pasted config) must not become that worker: both would heartbeat
/// one row, each would "take back" the other's claims and run the same attempt twice at once.
/// It refuses to start, saying why, and the live worker keeps its row.
#[test]
fn a_second_daemon_under_a_live_workers_name_refuses_to_start() {
    let a = Env::new();
    let rt = runtime();
    let url = rt.block_on(pg::fresh_database());
    let exe = Path::new(env!("CARGO_BIN_EXE_drover"));
    let u = url.clone();
    let _da = rt.block_on(InProcessDaemon::start_with(&a.home, exe, move |c| {
        c.database_url = Some(Secret::new(u));
        c.worker_name = "A".into();
        c.lease_secs = 3;
    }));
    let b = Env::new()
        .with_env("DROVER_DATABASE_URL", &url)
        .with_env("DROVER_WORKER_NAME", "A")
        .with_env("DROVER_LEASE_SECS", "3");
    let out = b.run_within(&["daemon", "--foreground"], Duration::from_secs(30));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "second worker A started: {err}");
    assert!(err.contains("worker A"), "{err}");
}

/// SQLite (one host): the worker name changes between two daemons (`worker_name` edited, or
/// its default, the host name, changed) while a task runs with its shim. The new daemon is the
/// same host: it re-adopts the task (attempt 1, the same agent), rather than leaving it to the
/// lapse sweep, which would requeue it as `lost_host` and start a second agent while the first,
/// never adopted, still runs.
#[test]
fn sqlite_readopts_a_running_task_after_the_worker_name_changed() {
    let mut env = Env::new()
        .with_env("DROVER_WORKER_NAME", "old")
        .with_env("DROVER_LEASE_SECS", "2");
    let cmd =
        "echo before; while [ ! -e go ]; do sleep 0.02; done; echo after > after.txt; echo after";
    let id = env.run_command_task(cmd, "rename");
    let t = env.until(&id, "running", |t| t["state"] == "running");
    assert_eq!(t["worker"], "old", "{t:#}");
    let marker = Path::new(t["sandbox"].as_str().unwrap()).join("go");
    let pid = t["pid"].as_i64().unwrap();
    env.ok(&["daemon", "stop"]);
    assert!(alive(pid), "daemon stop killed the agent");
    for (k, v) in env.extra_env.iter_mut() {
        if k == "DROVER_WORKER_NAME" {
            *v = "new".into();
        }
    }
    // Any command starts the new daemon; it re-adopts at start.
    let t = env.until(&id, "held by the new worker", |t| t["worker"] != "old");
    assert_eq!(t["worker"], "new", "{t:#}");
    assert_eq!(t["attempt"], 1, "{t:#}");
    assert_eq!(t["state"], "running", "{t:#}");
    std::fs::write(&marker, "").unwrap();
    let t = env.until(&id, "terminal", |t| {
        t["state"] != "running" && t["state"] != "queued" && t["state"] != "preparing"
    });
    assert_eq!(t["state"], "succeeded", "{t:#}");
    assert_eq!(t["attempt"], 1, "{t:#}");
    assert!(
        !env.events(&id)
            .iter()
            .any(|e| e["data"]["outcome"] == "lost_host"),
        "{:#?}",
        env.events(&id)
    );
}

/// `drover send --allow` through a worker that does not run the task (the agent's shim is on
/// the other host): refused at once in one line naming the worker that runs it, with nothing
/// written (no `input` event of an answer never delivered); through that worker it works.
#[test]
fn an_answer_through_another_worker_is_refused_naming_the_runner_and_writes_nothing() {
    let perm = "python3 -c \"open('perm.txt','w').write('allowed\\n')\"";
    let provider = Provider::start(serde_json::json!({ "scenarios": [
        { "name": "perm", "match": "NEEDS-BASH", "turns": [
            { "content": [ {"type": "tool_use", "name": "Bash",
                            "input": {"command": perm, "description": "write a file"}} ] },
            { "content": [ {"type": "text", "text": "bash ran"} ] } ] },
        { "name": "default", "turns": [ { "content": [ {"type": "text", "text": "hello"} ] } ] }
    ]}));
    let rt = runtime();
    let url = rt.block_on(pg::fresh_database());
    let a = Env::claude(&provider)
        .with_env("DROVER_DATABASE_URL", &url)
        .with_env("DROVER_WORKER_NAME", "A");
    let b = Env::claude(&provider)
        .with_env("DROVER_DATABASE_URL", &url)
        .with_env("DROVER_WORKER_NAME", "B");
    // A local-path task of B: runs on B.
    let id = b.ok(&["run", "NEEDS-BASH: run a command"]);
    let t = b.until(&id, "needs_input", |t| t["state"] == "needs_input");
    assert_eq!(t["worker"], "B", "{t:#}");
    let out = a.run(&["send", &id, "--allow"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("worker B"), "{err}");
    assert!(
        !b.events(&id).iter().any(|e| e["kind"] == "input"),
        "{:#?}",
        b.events(&id)
    );
    b.ok(&["send", &id, "--allow"]);
    let t = b.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
}
