//! The real Claude Code CLI through the gateway to the fake provider.
//!
//! Needs `DROVER_CLAUDE_BIN` (the `claude` executable); fails with a clear message without it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use drover_gateway::{Gateway, GatewayEvent, Limits, TaskGrant, Tokens};
use drover_test_support::agents;
use serde_json::Value;

const SET: &str = r#"{"scenarios": [
  {"name": "hello", "match": "HELLO-FILE", "turns": [
    {"content": [{"type": "text", "text": "I will create the file."},
      {"type": "tool_use", "name": "Write", "input": {"file_path": "HELLO.txt", "content": "hello through the gateway\n"}}],
     "usage": {"input": 2100, "output": 45, "cache_read": 0, "cache_creation": 1800}},
    {"content": [{"type": "text", "text": "SUCCESS: wrote HELLO.txt"}],
     "usage": {"input": 1500, "output": 12, "cache_read": 1000, "cache_creation": 0}, "hold": "second-turn"}
  ]},
  {"name": "forever", "match": "FOREVER", "turns": [
    {"content": [{"type": "tool_use", "name": "Bash", "input": {"command": "echo tick", "description": "tick"}}],
     "usage": {"input": 1000, "output": 100}, "repeat": true}]},
  {"name": "default", "turns": [{"content": [{"type": "text", "text": "unexpected prompt"}]}]}
]}"#;

/// Runs `claude -p` with the gateway's agent environment only; returns the child.
fn spawn_claude(
    env: &Env,
    token: &str,
    home: &std::path::Path,
    cwd: &std::path::Path,
    extra: &[&str],
) -> tokio::process::Child {
    let mut cmd = agents::claude_stream_json(&agents::claude_bin(), home, cwd);
    cmd.args(["--model", "claude-sonnet-4-5"])
        .args(extra)
        .env("CLAUDE_CODE_MAX_RETRIES", "2");
    for (k, v) in Gateway::agent_env(&env.base, token) {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// Waits (at most 120 s) for claude to end: its status, its JSON lines, all it printed.
async fn finish(child: tokio::process::Child) -> (std::process::ExitStatus, Vec<Value>, String) {
    let done = agents::finish(child, Duration::from_secs(120)).await;
    (done.status, done.lines, done.stdout + &done.stderr)
}

#[tokio::test]
async fn claude_code_through_the_gateway_is_metered_exactly_and_never_sees_the_key() {
    let env = start(SET).await;
    let home = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    let token = env.gateway.grant(TaskGrant::new("claude-task"));
    let mut child = spawn_claude(
        &env,
        &token,
        home.path(),
        repo.path(),
        &["--permission-mode", "acceptEdits"],
    );
    let pid = child.id().unwrap();
    agents::send_user_message(&mut child, "Create HELLO-FILE please").await;

    // While it runs (its second turn is held until released below): no provider key in its
    // environment or arguments.
    assert!(
        env.provider
            .holds()
            .reached("second-turn", 1, std::time::Duration::from_secs(120))
            .await,
        "claude never reached its second turn"
    );
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    for blob in [&environ, &cmdline] {
        let text = String::from_utf8_lossy(blob);
        assert!(
            !text.contains(REAL_KEY),
            "provider key visible to the agent"
        );
    }
    assert!(String::from_utf8_lossy(&environ).contains(&token));
    env.provider.release("second-turn");
    drop(child.stdin.take());

    let (status, lines, all) = finish(child).await;
    assert!(status.success(), "claude failed: {status:?}\n{all}");
    let result = lines
        .iter()
        .rev()
        .find(|l| l["type"] == "result")
        .expect("no result line");
    assert_eq!(result["result"], "SUCCESS: wrote HELLO.txt", "{all}");
    assert!(repo.path().join("HELLO.txt").exists());

    let log = env.provider.log();
    let sent = log.iter().fold(Tokens::default(), |mut t, r| {
        t.input += r.usage.input_tokens;
        t.output += r.usage.output_tokens;
        t.cache_read += r.usage.cache_read_input_tokens;
        t.cache_write += r.usage.cache_creation_input_tokens;
        t
    });
    let recs = env.ledger.task_records("claude-task");
    assert_eq!(recs.len(), log.iter().filter(|r| r.status == 200).count());
    let got = recs.iter().fold(Tokens::default(), |mut t, r| {
        t.input += r.tokens.input;
        t.output += r.tokens.output;
        t.cache_read += r.tokens.cache_read;
        t.cache_write += r.tokens.cache_write;
        t
    });
    assert_eq!(got, sent);
    assert_eq!(
        got,
        Tokens {
            input: 3600,
            output: 57,
            cache_read: 1000,
            cache_write: 1800
        }
    );
    // claude-sonnet-4-5 list price: $3 in, $15 out, $0.30 cache read, $3.75 cache write.
    let want = (3600.0 * 3.0 + 57.0 * 15.0 + 1000.0 * 0.3 + 1800.0 * 3.75) / 1e6;
    let cost: f64 = recs.iter().map(|r| r.cost_usd.unwrap()).sum();
    assert!((cost - want).abs() < 1e-9, "{cost} vs {want}");
    // Claude Code's own figure agrees (the cross-check the daemon keeps).
    let own = result["total_cost_usd"].as_f64().unwrap();
    assert!(
        (own - want).abs() < 1e-6,
        "claude says {own}, gateway {want}"
    );
}

#[tokio::test]
async fn claude_code_stops_when_the_budget_is_spent() {
    // Each request reserves its worst case first: Claude Code asks claude-sonnet-4-5 for up to
    // 32,000 output tokens ($0.48) plus its prompt; turns cost $0.0045 each.
    const LIMIT: f64 = 0.6;
    let env = start(SET).await;
    let home = tempfile::tempdir().unwrap();
    let repo = tempfile::tempdir().unwrap();
    let grant = TaskGrant {
        limits: Limits {
            task_usd: Some(LIMIT),
            ..Limits::default()
        },
        ..TaskGrant::new("runaway")
    };
    let token = env.gateway.grant(grant);
    let mut child = spawn_claude(
        &env,
        &token,
        home.path(),
        repo.path(),
        &["--allowedTools", "Bash"],
    );
    agents::send_user_message(&mut child, "Loop FOREVER please").await;
    drop(child.stdin.take());
    let (status, lines, all) = finish(child).await;
    assert!(!status.success(), "{all}");
    let result = lines
        .iter()
        .rev()
        .find(|l| l["type"] == "result")
        .expect("no result line");
    assert_eq!(result["is_error"], true, "{result}");
    // Served until the next request's worst case no longer fitted; never past the limit; the
    // refusal came once (Claude Code does not retry it) and never reached the provider.
    let served = env.provider.log().len();
    assert!(served >= 1, "{all}");
    let spent: f64 = env
        .ledger
        .task_records("runaway")
        .iter()
        .map(|r| r.cost_usd.unwrap())
        .sum();
    assert!((spent - served as f64 * 0.0045).abs() < 1e-9 && spent <= LIMIT);
    let refused: Vec<_> = env
        .ledger
        .task_events("runaway")
        .into_iter()
        .filter_map(|e| match e {
            GatewayEvent::BudgetRefused { spent, request, .. } => Some((spent, request)),
            _ => None,
        })
        .collect();
    assert_eq!(refused.len(), 1, "{all}");
    let (at, request) = refused[0];
    assert!(at + request.unwrap() > LIMIT);
}
