//! The daemon refuses a shim record of a protocol version it does not know: the task fails
//! saying so, rather than misreading it, and nothing of the agent is left running.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;

#[test]
fn an_exit_record_of_an_unknown_version_fails_the_task_clearly() {
    let env = Env::new();
    // What a future shim might write, while the agent lingers. (The agent cannot write it
    // itself any more: its task directory is outside its jail, see tests/isolation.rs.)
    let id = env.run_command_task("exec sleep 1000", "a v2 exit record");
    env.until(&id, "running", |t| t["state"] == "running");
    let f = env.home.join("tasks").join(&id).join("exit.json");
    std::fs::write(f.with_extension("part"), r#"{"v":2,"status":{"code":0}}"#).unwrap();
    std::fs::rename(f.with_extension("part"), &f).unwrap();
    let t = env.wait(&id);
    assert_eq!(t["state"], "failed", "{t:#}");
    assert_eq!(t["outcome"]["error_kind"], "agent_exit", "{t:#}");
    let reason = t["outcome"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("exit.json has protocol version 2; this drover reads version 1"),
        "{reason}"
    );
    let pid = env
        .events(&id)
        .iter()
        .find(|e| e["kind"] == "state" && e["data"]["state"] == "running")
        .and_then(|e| e["data"]["pid"].as_i64())
        .expect("the agent ran");
    wait_gone(pid);
}
