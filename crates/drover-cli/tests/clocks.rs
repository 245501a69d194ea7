//! Task clocks (docs/design.md §11): `--timeout`, `--stall-timeout`, `needs_input_timeout`, and a stop's
//! escalation that a daemon SIGKILL does not lose. Every wait has a deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Prints a line every 100 ms, forever.
const TICKING: &str = "while :; do echo tick; sleep 0.1; done";
/// Prints one line, then nothing, forever.
const SILENT: &str = "echo started; sleep 1000";
/// Like the above, but INT and TERM are ignored (by the shell and, inherited, by `sleep`):
/// only KILL ends them, so a stop goes through every step of its escalation.
const STUBBORN_TICKING: &str = "trap '' INT TERM; while :; do echo tick; sleep 0.1; done";
const STUBBORN_SILENT: &str = "trap '' INT TERM; echo started; sleep 1000";

fn with_config(env: Env, toml: &str) -> Env {
    std::fs::create_dir_all(&env.home).unwrap();
    std::fs::write(env.home.join("config.toml"), toml).unwrap();
    env
}

fn terminal(t: &Value) -> bool {
    ["succeeded", "failed", "cancelled", "interrupted"].contains(&t["state"].as_str().unwrap())
}

fn ts(t: &Value, k: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(t[k].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc)
}

/// No member of the process group is left (a zombie does not count).
fn group_gone(pgid: i64) -> bool {
    !group_alive(pgid)
}

/// The agent's pid and pgid while it runs.
fn agent_ids(env: &Env, id: &str) -> (i64, i64) {
    let t = env.until(id, "the agent to run", |t| {
        t["pid"].is_i64() && t["pgid"].is_i64() || terminal(t)
    });
    (t["pid"].as_i64().unwrap(), t["pgid"].as_i64().unwrap())
}

fn assert_no_process_left(env: &Env, ids: &[(i64, i64)]) {
    for &(pid, pgid) in ids {
        wait_gone(pid);
        assert!(group_gone(pgid), "process group {pgid} survived");
    }
    let daemon = env.daemon_pid().map(i64::from);
    let left: Vec<i64> = processes_of(&env.home)
        .into_iter()
        .filter(|p| Some(*p) != daemon)
        .collect();
    assert!(left.is_empty(), "left running: {left:?}");
}

/// The stop steps recorded in the task's events, in order, with their times.
fn stop_steps(env: &Env, id: &str) -> Vec<(String, String)> {
    env.events(id)
        .iter()
        .filter(|e| e["kind"] == "input" && e["data"]["stop"].is_string())
        .map(|e| {
            (
                e["data"]["stop"].as_str().unwrap().to_string(),
                e["ts"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn wall_and_stall_clocks_end_tasks_as_timeouts_and_leave_no_process() {
    let env = with_config(Env::new(), "stop_grace_secs = 1\nslots = 4\n");
    let wall = env.ok(&[
        "run",
        "--agent",
        "command",
        "--cmd",
        TICKING,
        "--timeout",
        "3s",
        "ticking",
    ]);
    let stall = env.ok(&[
        "run",
        "--agent",
        "command",
        "--cmd",
        SILENT,
        "--stall-timeout",
        "3s",
        "silent",
    ]);
    // Time in gates counts: the gate is cut at the wall clock's deadline.
    let gated = env.ok(&[
        "run",
        "--agent",
        "command",
        "--cmd",
        "echo done",
        "--verify",
        "sleep 1000",
        "--timeout",
        "3s",
        "gated",
    ]);
    env.ok(&[
        "pool",
        "start",
        "clocked",
        "--slots",
        "1",
        "--count",
        "1",
        "--agent",
        "command",
        "--cmd",
        TICKING,
        "--prompt",
        "pool ticking",
        "--timeout",
        "2s",
    ]);
    // The clocks are part of the task as shown.
    let t = env.show(&wall);
    assert_eq!(t["timeout_secs"], 3, "{t:#}");
    assert_eq!(
        t["stall_timeout_secs"], 1800,
        "the config default is 30 min"
    );
    let t = env.show(&stall);
    assert!(t["timeout_secs"].is_null(), "no wall clock by default");
    assert_eq!(t["stall_timeout_secs"], 3);
    let text = env.ok(&["show", &wall]);
    assert!(
        text.contains("timeout 3s") && text.contains("stall 30m"),
        "{text}"
    );

    let ids = [agent_ids(&env, &wall), agent_ids(&env, &stall)];
    let w = env.until(&wall, "the wall clock", terminal);
    assert_eq!(w["state"], "failed", "{w:#}");
    assert_eq!(w["outcome"]["error_kind"], "timeout");
    assert_eq!(w["outcome"]["reason"], "wall-clock timeout 3s");
    let ran = ts(&w, "finished_at") - ts(&w, "started_at");
    assert!(ran >= chrono::Duration::seconds(3), "ended after {ran}");
    // The ticking agent ignored nothing: the polite step (stdin closed) or INT ended it.
    let steps: Vec<String> = stop_steps(&env, &wall).into_iter().map(|s| s.0).collect();
    assert_eq!(
        steps.first().map(String::as_str),
        Some("polite"),
        "{steps:?}"
    );
    assert!(!steps.contains(&"KILL".to_string()), "{steps:?}");

    let s = env.until(&stall, "the stall clock", terminal);
    assert_eq!(s["state"], "failed", "{s:#}");
    assert_eq!(s["outcome"]["error_kind"], "timeout");
    assert_eq!(s["outcome"]["reason"], "no output for 3s (stall timeout)");
    // Three seconds after its last event (the `started` line), not before.
    let evs = env.events(&stall);
    let started = evs
        .iter()
        .find(|e| e["kind"] == "text" && e["data"]["text"] == "started")
        .unwrap();
    let asked = evs
        .iter()
        .find(|e| e["kind"] == "error" && e["data"]["error_kind"] == "timeout")
        .unwrap();
    let quiet = ts(asked, "ts") - ts(started, "ts");
    assert!(quiet >= chrono::Duration::seconds(3), "fired after {quiet}");
    assert!(quiet < chrono::Duration::seconds(10), "fired after {quiet}");

    let g = env.until(&gated, "the gate to be cut", terminal);
    assert_eq!(g["state"], "failed", "{g:#}");
    assert_eq!(g["outcome"]["error_kind"], "timeout", "{g:#}");
    assert_eq!(g["outcome"]["reason"], "wall-clock timeout 3s");
    let gate = env
        .events(&gated)
        .into_iter()
        .find(|e| e["kind"] == "gate")
        .unwrap();
    assert_eq!(gate["data"]["passed"], false, "{gate:#}");
    let ran = ts(&g, "finished_at") - ts(&g, "started_at");
    assert!(
        ran < chrono::Duration::seconds(30),
        "the gate ran for {ran}"
    );

    // The pool's task inherited the pool's clock.
    let deadline = Instant::now() + Duration::from_secs(60);
    let pooled = loop {
        let all = env.json(&["ls", "--all", "--json"]);
        let found = all
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["pool"] == "clocked")
            .cloned();
        if let Some(t) = found.filter(terminal) {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "the pool task did not end: {all:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(pooled["timeout_secs"], 2, "{pooled:#}");
    assert_eq!(pooled["outcome"]["error_kind"], "timeout", "{pooled:#}");
    assert_eq!(pooled["outcome"]["reason"], "wall-clock timeout 2s");

    assert_no_process_left(&env, &ids);
}

#[test]
fn a_daemon_sigkill_in_the_middle_of_a_stop_does_not_lose_it() {
    // A grace long enough that the daemon can be killed between INT and KILL.
    let env = with_config(Env::new(), "stop_grace_secs = 3\nslots = 4\n");
    let wall = env.ok(&[
        "run",
        "--agent",
        "command",
        "--cmd",
        STUBBORN_TICKING,
        "--timeout",
        "2s",
        "stubborn",
    ]);
    let stall = env.ok(&[
        "run",
        "--agent",
        "command",
        "--cmd",
        STUBBORN_SILENT,
        "--stall-timeout",
        "2s",
        "stubborn and silent",
    ]);
    // A deadline that falls after the kill: the next daemon keeps it.
    let later = env.ok(&[
        "run",
        "--agent",
        "command",
        "--cmd",
        TICKING,
        "--timeout",
        "20s",
        "later",
    ]);
    let ids = [
        agent_ids(&env, &wall),
        agent_ids(&env, &stall),
        agent_ids(&env, &later),
    ];
    // Both escalations are under way — INT (or TERM) sent, KILL not yet — as the stored rows
    // say: then the daemon dies.
    let under_way = |t: &Value| matches!(t["stop_step"].as_str(), Some("INT" | "TERM"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (a, b) = (env.show(&wall), env.show(&stall));
        if under_way(&a) && under_way(&b) {
            assert!(a["stop_requested_at"].is_string());
            break;
        }
        assert!(
            !terminal(&a) && !terminal(&b),
            "ended before the kill: {a:#} {b:#}"
        );
        assert!(
            Instant::now() < deadline,
            "no escalation under way: {a:#} {b:#}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let first = env.daemon_pid().unwrap();
    env.kill_daemon();
    let killed_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for &(pid, _) in &ids {
        assert!(alive(pid), "the agent {pid} died with the daemon");
    }
    // Any command starts the next daemon; it carries both escalations on.
    env.ok(&["ls"]);
    assert_ne!(env.daemon_pid(), Some(first));
    for (id, reason) in [
        (&wall, "wall-clock timeout 2s"),
        (&stall, "no output for 2s (stall timeout)"),
    ] {
        let t = env.until(id, "the stop to finish", terminal);
        assert_eq!(t["state"], "failed", "{t:#}");
        assert_eq!(t["outcome"]["error_kind"], "timeout", "{t:#}");
        assert_eq!(t["outcome"]["reason"], reason);
        let steps = stop_steps(&env, id);
        let names: Vec<&str> = steps.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(names, ["polite", "INT", "TERM", "KILL"], "{steps:?}");
        // KILL came from the second daemon (the first was dead by then).
        assert!(steps[3].1 > killed_at, "{steps:?} vs {killed_at}");
    }
    let t = env.until(&later, "the later deadline", terminal);
    assert_eq!(t["outcome"]["reason"], "wall-clock timeout 20s", "{t:#}");
    assert!(t["stop_requested_at"].as_str().unwrap() > killed_at.as_str());
    let ran = ts(&t, "finished_at") - ts(&t, "started_at");
    assert!(ran >= chrono::Duration::seconds(20), "ended after {ran}");
    assert_no_process_left(&env, &ids);
}

#[test]
fn bad_durations_are_refused_and_nothing_starts() {
    let env = Env::new();
    for args in [
        vec![
            "run",
            "--agent",
            "command",
            "--cmd",
            "true",
            "--timeout",
            "0",
            "x",
        ],
        vec![
            "run",
            "--agent",
            "command",
            "--cmd",
            "true",
            "--timeout",
            "banana",
            "x",
        ],
        vec![
            "run",
            "--agent",
            "command",
            "--cmd",
            "true",
            "--stall-timeout",
            "1500ms",
            "x",
        ],
        vec![
            "run",
            "--agent",
            "command",
            "--cmd",
            "true",
            "--timeout",
            "3",
            "x",
        ],
        vec![
            "pool",
            "start",
            "p",
            "--slots",
            "1",
            "--agent",
            "command",
            "--cmd",
            "true",
            "--prompt",
            "x",
            "--stall-timeout",
            "soon",
        ],
    ] {
        let out = env.run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        let first = err.lines().next().unwrap_or_default();
        assert!(first.contains("timeout"), "{args:?}: {err}");
        assert!(err.contains("30s, 10m or 1h30m"), "{args:?}: {err}");
    }
    // The CLI refused before it reached a daemon: none was started, no task exists.
    assert!(env.daemon_pid().is_none());
    // The API refuses the same: 422 {kind: invalid_field, error, hint} (a well-formed value
    // that is wrong, docs/design.md §7), nothing stored.
    env.ok(&["ls"]);
    for body in [
        json!({"repo": env.repo.display().to_string(), "agent": "command", "cmd": "true",
               "prompt": "x", "timeout_secs": 0}),
        json!({"repo": env.repo.display().to_string(), "agent": "command", "cmd": "true",
               "prompt": "x", "stall_timeout_secs": 999_999_999u64}),
    ] {
        let (status, v) = post(&env, "/v1/tasks", &body);
        assert_eq!(status, 422, "{v:#}");
        assert_eq!(v["kind"], "invalid_field");
        assert!(v["error"].as_str().unwrap().contains("timeout"), "{v:#}");
        assert!(v["hint"].is_string());
    }
    let (status, v) = post(
        &env,
        "/v1/pools",
        &json!({"name": "p", "slots": 1, "prompt": "x", "repo": env.repo.display().to_string(),
                "agent": "command", "cmd": "true", "timeout_secs": 0}),
    );
    assert_eq!(status, 400, "{v:#}");
    assert_eq!(env.json(&["ls", "--all", "--json"]), json!([]));
    assert_eq!(env.json(&["pool", "ls", "--json"]), json!([]));
}

/// One HTTP request over the daemon's socket; returns the status and the JSON body.
fn post(env: &Env, path: &str, body: &Value) -> (u16, Value) {
    let (status, text) = api_json(env, "POST", path, &body.to_string());
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[test]
fn an_unanswered_permission_request_is_denied_after_needs_input_timeout() {
    let perm = "python3 -c \"open('perm.txt','w').write('allowed\\n')\"";
    let provider = Provider::start(json!({ "scenarios": [
        { "name": "perm", "match": "NEEDS-BASH", "turns": [
            { "content": [ {"type": "tool_use", "name": "Bash",
                            "input": {"command": perm, "description": "write a file"}} ] },
            { "content": [ {"type": "text", "text": "went on without bash"} ] } ] },
        { "name": "default", "turns": [ { "content": [ {"type": "text", "text": "hello"} ] } ] }
    ]}));
    let env = with_config(Env::claude(&provider), "needs_input_timeout = \"6s\"\n");
    let id = env.ok(&["run", "--stall-timeout", "4s", "NEEDS-BASH: run a command"]);
    let t = env.until(&id, "needs_input", |t| {
        t["state"] == "needs_input" || terminal(t)
    });
    assert_eq!(t["state"], "needs_input", "{t:#}");
    let t = env.until(&id, "the end", terminal);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    assert_eq!(t["result"], "went on without bash");
    let evs = env.events(&id);
    let asked = evs.iter().find(|e| e["kind"] == "needs_input").unwrap();
    let denied = evs
        .iter()
        .find(|e| e["kind"] == "input" && e["data"]["by"] == "needs_input_timeout")
        .unwrap_or_else(|| panic!("no timed-out answer: {evs:#?}"));
    assert_eq!(denied["data"]["behavior"], "deny");
    assert!(denied["data"]["message"]
        .as_str()
        .unwrap()
        .contains("no answer within 6s"));
    let waited = ts(denied, "ts") - ts(asked, "ts");
    assert!(
        waited >= chrono::Duration::seconds(6),
        "denied after {waited}"
    );
    // Waiting for a person is not a stall: the 4 s stall clock did not fire in 6 s of needs_input.
    assert!(!evs
        .iter()
        .any(|e| e["kind"] == "error" && e["data"]["error_kind"] == "timeout"));
    let files = env.git(&["ls-tree", "-r", "--name-only", &format!("drover/{id}")]);
    assert!(!files.contains("perm.txt"), "denied command ran: {files}");
}

/// `(ppid, pgrp)` of a live process, from `/proc/<pid>/stat`.
fn parent_and_group(pid: i64) -> Option<(i64, i64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut rest = s[s.rfind(')')? + 1..].split_whitespace().skip(1);
    let ppid = rest.next()?.parse().ok()?;
    let pgrp = rest.next()?.parse().ok()?;
    Some((ppid, pgrp))
}

/// An agent that moves itself into its shim's process group (out of the group drover signals)
/// and ignores INT and TERM is still ended by `drover stop`: TERM and KILL also go to its pid,
/// KILL to every process the shim has below it.
#[test]
fn stop_ends_an_agent_that_moved_into_its_shims_group() {
    // Unconfined on purpose: in a jail the shim's group is not the agent's to join (its parent
    // is the jail's init, in its own group already); isolation's escapes are tests/isolation.rs.
    let env = with_config(
        Env::new().with_env("DROVER_SANDBOX_ISOLATION", "none"),
        "stop_grace_secs = 1\n",
    );
    let id = env.run_command_task(
        r#"exec perl -e '$| = 1; setpgrp(0, getppid()) or die "setpgrp: $!"; $SIG{INT} = $SIG{TERM} = "IGNORE"; print "moved\n"; sleep 1000'"#,
        "escape the group",
    );
    let (pid, pgid) = agent_ids(&env, &id);
    assert_eq!(pid, pgid);
    // It has left its own group for its parent's (the shim's).
    drover_test_support::poll::until(
        "the agent to join its shim's group",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || format!("{:?}", parent_and_group(pid)),
        |_| parent_and_group(pid).is_some_and(|(ppid, pgrp)| pgrp == ppid && pgrp != pid),
    );
    assert_eq!(env.show(&id)["state"], "running");

    env.ok(&["stop", &id]);
    // Polite, INT, TERM, KILL a second apart: well within 30 s.
    let t = drover_test_support::poll::until(
        "the stopped task to end",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || env.show(&id),
        terminal,
    );
    assert_eq!(t["state"], "cancelled", "{t:#}");
    wait_gone(pid);
    assert!(!alive(pid), "the agent {pid} survived the stop");
    let steps: Vec<String> = stop_steps(&env, &id).into_iter().map(|s| s.0).collect();
    assert_eq!(steps.last().map(String::as_str), Some("KILL"), "{steps:?}");
    assert_no_process_left(&env, &[(pid, pgid)]);
}
