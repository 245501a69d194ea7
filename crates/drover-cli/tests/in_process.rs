//! The daemon as a library: `drover_daemon::run(config, shutdown)` in the test's own runtime
//! (drover-test-support's in-process daemon), driven by the real CLI over its socket.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use drover_test_support::daemon::InProcessDaemon;
use std::path::Path;
use std::time::Duration;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn start(rt: &tokio::runtime::Runtime, env: &Env) -> InProcessDaemon {
    let exe = Path::new(env!("CARGO_BIN_EXE_drover"));
    rt.block_on(InProcessDaemon::start(&env.home, exe))
}

#[test]
fn an_in_process_daemon_runs_a_task_stops_cleanly_and_the_next_one_adopts_what_runs() {
    let env = Env::new();
    let rt = runtime();

    // 1. A command task over the socket succeeds.
    let daemon = start(&rt, &env);
    let id = env.run_command_task("echo hello from in-process", "first");
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    assert_eq!(t["result"], "hello from in-process");

    // 2. A task that waits for a file the test writes only after the daemon is gone.
    // (In the task's checkout: a confined agent sees nothing else of the test's.)
    let cmd = "while [ ! -e go ]; do sleep 0.05; done; echo adopted";
    let held = env.run_command_task(cmd, "second");
    let running = env.until(&held, "the task to run", |t| t["state"] == "running");
    let go = std::path::Path::new(running["sandbox"].as_str().unwrap()).join("go");
    let pid = running["pid"].as_i64().unwrap();

    // 3. Shutdown is explicit and bounded; the agent is not the daemon's to kill.
    let took = rt.block_on(daemon.shutdown());
    assert!(took < Duration::from_secs(10), "shutdown took {took:?}");
    assert!(!env.home.join("daemon.pid").exists(), "pid file removed");
    assert!(
        std::os::unix::net::UnixStream::connect(env.home.join("daemon.sock")).is_err(),
        "nobody listens any more"
    );
    assert!(
        alive(pid),
        "the agent keeps running across a daemon shutdown"
    );

    // 4. A second daemon re-adopts the same agent (not a new attempt) and finishes the task.
    std::fs::write(&go, "").unwrap();
    let daemon = start(&rt, &env);
    let t = env.wait(&held);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    assert_eq!(t["result"], "adopted");
    assert_eq!(t["attempt"], 1, "{t:#}");
    // One start only: the agent that ran under the first daemon is the one that finished.
    let evs = env.events(&held);
    let starts: Vec<&serde_json::Value> = evs
        .iter()
        .filter(|e| e["kind"] == "state" && e["data"]["state"] == "running")
        .collect();
    assert_eq!(starts.len(), 1, "{evs:#?}");
    assert_eq!(starts[0]["data"]["pid"].as_i64(), Some(pid));
    wait_gone(pid);
    let took = rt.block_on(daemon.shutdown());
    assert!(took < Duration::from_secs(10), "shutdown took {took:?}");
}
