//! The `claude-bg` agent (real Claude Code 2.1.328 in background mode, through its own
//! supervisor) and the `codex` agent (real Codex CLI), both against the fake provider.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// What Claude's background-state classifier (a tool-less side request) is answered: the
/// session is done. Claude writes this into state.json as `state`/`tempo`.
const CLASSIFIED_DONE: &str = r#"{"state":"done","detail":"wrote HELLO.txt","tempo":"idle","output":{"result":"HELLO.txt written"}}"#;

fn bg_scenarios() -> Value {
    json!({ "scenarios": [
        { "name": "write", "match": "WRITE-HELLO", "turns": [
            { "content": [ {"type": "tool_use", "name": "Write",
                            "input": {"file_path": "HELLO.txt", "content": "hello from the background\n"}} ],
              "usage": {"input": 1000, "output": 50, "cache_read": 200, "cache_creation": 300} },
            { "content": [ {"type": "text", "text": "Wrote HELLO.txt as asked."} ],
              "usage": {"input": 1100, "output": 30} } ] },
        { "name": "slow", "match": "SLOW-BG", "turns": [
            { "content": [ {"type": "text", "text": "never sent"} ], "delay_ms": 120000 } ] },
        { "name": "default", "turns": [ { "content": [ {"type": "text", "text": "hello"} ] } ] }
    ], "side_text": CLASSIFIED_DONE })
}

/// Claude's own view of this test's background sessions (its private HOME).
fn claude(env: &Env, args: &[&str]) -> String {
    let out = Command::new(claude_bin())
        .args(args)
        .env("HOME", &env.user_home)
        .env("DISABLE_AUTOUPDATER", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn bg_sessions(env: &Env) -> Vec<Value> {
    serde_json::from_str(&claude(env, &["agents", "--json", "--all"])).unwrap_or_default()
}

fn session_named(env: &Env, id: &str) -> Option<Value> {
    let name = format!("drover-{id}");
    bg_sessions(env).into_iter().find(|s| s["name"] == name)
}

/// Live processes running with this test's private HOME whose command line mentions claude.
fn claude_processes(home: &Path) -> Vec<(i64, String)> {
    let needle = format!("HOME={}", home.display());
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i64>().ok()) else {
            continue;
        };
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if !environ.split(|&b| b == 0).any(|kv| kv == needle.as_bytes()) || !alive(pid) {
            continue;
        }
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains("claude") && !cmd.contains("claude-bg-follow") {
            out.push((pid, cmd));
        }
    }
    out
}

fn poll_until<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    drover_test_support::poll::some(what, Duration::from_secs(60), Duration::from_millis(100), f)
}

/// Stops the test's Claude supervisor at the end (also when the test failed), and checks that
/// nothing of Claude is left running.
struct Supervisor<'a>(&'a Env);

impl Supervisor<'_> {
    fn stop_and_check(&self) {
        claude(self.0, &["daemon", "stop", "--any"]);
        let left = poll_until("no Claude process left", || {
            let left = claude_processes(&self.0.user_home);
            left.is_empty().then_some(left)
        });
        assert!(left.is_empty());
    }
}

impl Drop for Supervisor<'_> {
    fn drop(&mut self) {
        claude(self.0, &["daemon", "stop", "--any"]);
        for (pid, _) in claude_processes(&self.0.user_home) {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    }
}

fn raw_results(env: &Env, id: &str) -> Vec<Value> {
    let raw = std::fs::read_to_string(env.home.join("tasks").join(id).join("stdout.log")).unwrap();
    raw.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "result")
        .collect()
}

/// The agent's own usage and cost: `agent_usage`/`agent_cost_usd` when the gateway meters the
/// task, else `usage`/`cost_usd`.
fn agent_figures(t: &Value) -> (Value, f64) {
    let (usage, cost) = if t["agent_usage"].is_object() {
        (&t["agent_usage"], &t["agent_cost_usd"])
    } else {
        (&t["usage"], &t["cost_usd"])
    };
    (usage.clone(), cost.as_f64().unwrap_or(0.0))
}

#[test]
fn claude_bg_writes_a_file_stops_on_request_and_leaves_nothing_behind() {
    let provider = Provider::start(bg_scenarios());
    // Claude's supervisor shared with the user, as this test drives it, is the unconfined
    // setup: a confined claude-bg task has a supervisor of its own in its jail, ended with it
    // (claude_bg_finishes_from_facts_whatever_the_classifier_says runs confined).
    let env = Env::claude(&provider).with_env("DROVER_SANDBOX_ISOLATION", "none");
    let supervisor = Supervisor(&env);

    // 1. A background session writes a file; its work is committed on the task branch.
    let id = env.ok(&[
        "run",
        "--agent",
        "claude-bg",
        "WRITE-HELLO: create HELLO.txt",
    ]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}\n{:#?}", env.events(&id));
    assert_eq!(t["agent"], "claude-bg");
    assert_eq!(t["result"], "Wrote HELLO.txt as asked.");
    let commit = t["commit"].as_str().unwrap();
    assert_eq!(env.git(&["rev-parse", &format!("drover/{id}")]), commit);
    assert_eq!(
        env.git(&["show", &format!("{commit}:HELLO.txt")]),
        "hello from the background"
    );
    // No trace of Claude's own plumbing in the committed work.
    let files = env.git(&["ls-tree", "-r", "--name-only", commit]);
    assert!(!files.contains(".claude"), "{files}");
    // Claude's state went working → done, and the task running → succeeded.
    let results = raw_results(&env, &id);
    assert_eq!(results.len(), 1, "{results:#?}");
    assert_eq!(results[0]["drover_bg"]["state"], "done");
    let evs = env.events(&id);
    let states: Vec<&str> = evs
        .iter()
        .filter(|e| e["kind"] == "state")
        .filter_map(|e| e["data"]["state"].as_str())
        .collect();
    let running = states.iter().position(|s| *s == "running").unwrap();
    assert_eq!(states.last(), Some(&"succeeded"), "{states:?}");
    assert!(running < states.len() - 1);
    assert!(evs
        .iter()
        .any(|e| e["kind"] == "tool_call" && e["data"]["name"] == "Write"));
    // Cost and usage: the session's own accounting (cost-state in its transcript); the task's
    // figures are these, or the gateway's when it meters the wire.
    let (usage, cost) = agent_figures(&t);
    assert_eq!(usage["input_tokens"], 2100, "{t:#}");
    assert_eq!(usage["output_tokens"], 80);
    assert_eq!(usage["cache_read_tokens"], 200);
    assert_eq!(usage["cache_write_tokens"], 300);
    assert!(cost > 0.0);
    assert!(t["session_id"].as_str().is_some_and(|s| s.len() == 36));
    // The finished session was stopped and removed from Claude's supervisor.
    assert!(
        session_named(&env, &id).is_none(),
        "{:#?}",
        bg_sessions(&env)
    );

    // 2. `drover stop` of a second one stops it in Claude's supervisor too.
    let slow = env.ok(&["run", "--agent", "claude-bg", "SLOW-BG: take your time"]);
    let live = poll_until("the session to work in Claude's supervisor", || {
        session_named(&env, &slow).filter(|s| s["state"] == "working" && s["pid"].is_i64())
    });
    let worker = live["pid"].as_i64().unwrap();
    assert!(alive(worker));
    env.until(&slow, "the session id", |t| !t["session_id"].is_null());
    env.ok(&["stop", &slow]);
    let t = env.wait(&slow);
    assert_eq!(t["state"], "cancelled", "{t:#}");
    assert!(
        session_named(&env, &slow).is_none_or(|s| s["state"] == "stopped"),
        "{:#?}",
        bg_sessions(&env)
    );
    wait_gone(worker);

    // 3. After `rm` nothing of either session is left: no session, no process.
    env.ok(&["rm", &id]);
    env.ok(&["rm", &slow]);
    assert!(session_named(&env, &id).is_none());
    assert!(
        session_named(&env, &slow).is_none(),
        "{:#?}",
        bg_sessions(&env)
    );
    let drover_left: Vec<i64> = processes_of(&env.home)
        .into_iter()
        .filter(|p| Some(*p) != env.daemon_pid().map(i64::from))
        .filter(|p| {
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmd).contains("claude-bg-follow")
        })
        .collect();
    assert!(drover_left.is_empty(), "followers left: {drover_left:?}");
    supervisor.stop_and_check();
}

#[test]
fn claude_bg_finishes_from_facts_whatever_the_classifier_says() {
    // Claude's state classifier (a model call) is answered "still working", then garbage: the
    // session goes idle with its final answer in the transcript, and that is what ends the task.
    for side in [
        r#"{"state":"working","detail":"still busy","tempo":"active"}"#,
        "no idea, honestly",
    ] {
        let mut scenarios = bg_scenarios();
        scenarios["side_text"] = json!(side);
        let provider = Provider::start(scenarios);
        let env = Env::claude(&provider);
        let supervisor = Supervisor(&env);
        let id = env.ok(&[
            "run",
            "--agent",
            "claude-bg",
            "WRITE-HELLO: create HELLO.txt",
        ]);
        let started = Instant::now();
        let t = env.until(&id, "the task to end", |t| {
            ["succeeded", "failed", "cancelled", "interrupted"]
                .contains(&t["state"].as_str().unwrap())
        });
        assert_eq!(t["state"], "succeeded", "classifier {side:?}: {t:#}");
        assert!(started.elapsed() < Duration::from_secs(90));
        assert_eq!(t["result"], "Wrote HELLO.txt as asked.");
        let commit = t["commit"].as_str().unwrap();
        assert_eq!(
            env.git(&["show", &format!("{commit}:HELLO.txt")]),
            "hello from the background"
        );
        let results = raw_results(&env, &id);
        assert_eq!(results.len(), 1, "{results:#?}");
        assert_eq!(results[0]["drover_bg"]["state"], "done");
        supervisor.stop_and_check();
    }
}

#[test]
fn codex_writes_a_file_and_records_usage_and_cost() {
    // Codex puts its environment context before the prompt, and the fake matches the first
    // user message: the scenario is the default one.
    let provider = Provider::start(json!({ "scenarios": [
        { "name": "default", "turns": [
            { "content": [ {"type": "tool_use", "name": "exec_command",
                            "input": {"cmd": "printf 'hello from codex\\n' > HELLO.txt"}} ],
              "usage": {"input": 1000, "output": 50, "cache_read": 200} },
            { "content": [ {"type": "text", "text": "Wrote HELLO.txt."} ],
              "usage": {"input": 1100, "output": 30, "cache_read": 900} } ] }
    ]}));
    let env = Env::new()
        .with_env("DROVER_CODEX_BIN", &codex_bin())
        .with_env("OPENAI_BASE_URL", &format!("{}/v1", provider.url))
        .with_env("OPENAI_API_KEY", "sk-test-openai");
    let id = env.ok(&[
        "run",
        "--agent",
        "codex",
        "--model",
        "gpt-5.5",
        "create HELLO.txt",
    ]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}\n{:#?}", env.events(&id));
    assert_eq!(t["result"], "Wrote HELLO.txt.");
    let commit = t["commit"].as_str().unwrap();
    assert_eq!(env.git(&["rev-parse", &format!("drover/{id}")]), commit);
    assert_eq!(
        env.git(&["show", &format!("{commit}:HELLO.txt")]),
        "hello from codex"
    );
    // Usage as Codex reported it (input without the cached part); dollars metered by the gateway
    // from the wire at gpt-5.5's list price: 2100 × $5 + 1100 × $0.5 + 80 × $30 per million.
    let (usage, _) = agent_figures(&t);
    assert_eq!(usage["input_tokens"], 2100, "{t:#}");
    assert_eq!(usage["cache_read_tokens"], 1100);
    assert_eq!(usage["output_tokens"], 80);
    assert_eq!(t["metered_by"], "gateway");
    let cost = t["cost_usd"].as_f64().unwrap();
    assert!((cost - 0.01345).abs() < 1e-9, "{t:#}");
    assert!(t["session_id"].as_str().is_some_and(|s| !s.is_empty()));
    let evs = env.events(&id);
    assert!(evs.iter().any(|e| e["kind"] == "tool_call"
        && e["data"]["name"] == "command_execution"
        && e["data"]["input"]["command"]
            .as_str()
            .is_some_and(|c| c.contains("HELLO.txt"))));
    // Both model turns went to the fake's Responses API.
    let turns: Vec<Option<usize>> = provider
        .log()
        .iter()
        .filter(|r| r.path.starts_with("/v1/responses") && !r.side)
        .map(|r| r.turn)
        .collect();
    assert_eq!(turns, vec![Some(0), Some(1)]);
}
