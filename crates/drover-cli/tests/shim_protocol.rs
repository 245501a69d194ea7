//! The daemon refuses a shim record of a protocol version it does not know: the task fails
//! saying so, rather than misreading it, and nothing of the agent is left running.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;

#[test]
fn an_exit_record_of_an_unknown_version_fails_the_task_clearly() {
    let env = Env::new();
    // The agent forges what a future shim might write, then lingers.
    let cmd = r#"f="$DROVER_HOME/tasks/$DROVER_TASK_ID/exit.json"; printf '{"v":2,"status":{"code":0}}' > "$f.part"; mv "$f.part" "$f"; exec sleep 1000"#;
    let id = env.run_command_task(cmd, "forge a v2 exit record");
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
