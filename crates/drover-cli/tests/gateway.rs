//! The gateway inside the daemon: budgets, retries, broken streams, `drover usage`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use serde_json::{json, Value};

fn gateway_events(env: &Env, id: &str, kind: &str) -> Vec<Value> {
    env.events(id)
        .into_iter()
        .filter(|e| {
            e["kind"] == "error" && e["data"]["source"] == "gateway" && e["data"]["kind"] == kind
        })
        .collect()
}

/// A never-ending script: every turn is another tool call.
fn forever(usage: Value) -> Provider {
    Provider::start(json!({ "scenarios": [
        { "name": "forever", "match": "FOREVER", "turns": [
            { "content": [{ "type": "tool_use", "name": "Write", "input": { "file_path": "loop.txt", "content": "again\n" } }],
              "usage": usage, "repeat": true } ] },
        { "name": "default", "turns": [{ "content": [{ "type": "text", "text": "?" }] }] }
    ]}))
}

fn agent_requests(provider: &Provider) -> Vec<drover_fake_provider::RequestRecord> {
    provider
        .log()
        .into_iter()
        .filter(|r| !r.side && r.status == 200)
        .collect()
}

#[test]
fn a_runaway_agent_is_stopped_by_its_budget_without_overshoot() {
    // claude-sonnet-4-6: 10,000 in + 100 out = $0.0315 a request. The input is no more than
    // Claude Code's request body holds (its system prompt and tools alone are larger), as the
    // gateway's prompt estimate assumes: a budget too small for the asked max_tokens lowers it,
    // so only that estimate stands between the spend and the limit.
    let provider = forever(json!({ "input": 10000, "output": 100 }));
    let env = Env::claude(&provider);
    let limit = 0.3;
    let id = env.ok(&[
        "run",
        "--model",
        "claude-sonnet-4-6",
        "--max-usd",
        "0.3",
        "FOREVER: keep going",
    ]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "failed", "{t:#}");
    assert_eq!(t["outcome"]["error_kind"], "budget_exceeded");
    let served = agent_requests(&provider);
    assert!(served.len() >= 2, "{} requests served", served.len());
    // Each request reserved its worst case (prompt estimate + max_tokens of output) before it
    // was forwarded: the spend never passes the limit, and the refused request would have.
    let cost = t["cost_usd"].as_f64().unwrap();
    assert!(cost <= limit, "overshoot: {t:#}");
    assert!((cost - served.len() as f64 * 0.0315).abs() < 1e-9, "{t:#}");
    let refused = gateway_events(&env, &id, "budget_refused");
    assert_eq!(refused.len(), 1, "{refused:#?}");
    let d = &refused[0]["data"];
    assert!((d["spent"].as_f64().unwrap() - cost).abs() < 1e-9);
    assert!(d["spent"].as_f64().unwrap() + d["request"].as_f64().unwrap() > limit);
    let reason = t["outcome"]["reason"].as_str().unwrap();
    assert!(reason.contains("could cost up to"), "{reason}");
    // Spent amounts are in the store: `drover usage` shows them, after a restart too.
    env.ok(&["daemon", "stop"]);
    let usage: Vec<Value> =
        serde_json::from_str(&env.ok(&["usage", "--by", "task", "--json"])).unwrap();
    let line = usage
        .iter()
        .find(|l| l["key"] == id.as_str())
        .expect("usage line");
    assert_eq!(line["requests"].as_u64().unwrap() as usize, served.len());
    assert!((line["cost_usd"].as_f64().unwrap() - cost).abs() < 1e-9);
}

#[test]
fn claude_on_its_default_model_under_a_small_budget_fails_within_seconds() {
    let provider = forever(json!({ "input": 1000, "output": 100 }));
    let env = Env::claude(&provider);
    let started = std::time::Instant::now();
    // No --model: Claude Code picks its own default (claude-opus-5-5, max_tokens 128000).
    let id = env.ok(&["run", "--max-usd", "0.02", "FOREVER: keep going"]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "failed", "{t:#}");
    assert_eq!(t["outcome"]["error_kind"], "budget_exceeded");
    assert!(started.elapsed().as_secs() < 60, "{:?}", started.elapsed());
    assert!(
        agent_requests(&provider).len() <= 3,
        "{:#?}",
        provider.log()
    );
    assert!(t["cost_usd"].as_f64().unwrap_or(0.0) <= 0.02, "{t:#}");
    let refused = gateway_events(&env, &id, "budget_refused");
    assert!(!refused.is_empty(), "{:#?}", env.events(&id));
}

#[test]
fn claude_on_its_default_model_under_a_half_dollar_budget_gets_a_lower_max_tokens_and_succeeds() {
    let provider = Provider::start(json!({ "scenarios": [
        { "name": "write", "match": "WRITE-SMALL", "turns": [
            { "content": [{ "type": "tool_use", "name": "Write", "input": { "file_path": "small.txt", "content": "cheap" } }],
              "usage": { "input": 1000, "output": 100 } },
            { "content": [{ "type": "text", "text": "Wrote small.txt." }],
              "usage": { "input": 1000, "output": 100 } } ] },
        { "name": "default", "turns": [{ "content": [{ "type": "text", "text": "?" }] }] }
    ]}));
    let env = Env::claude(&provider);
    // No --model: Claude Code asks claude-opus-5-5 for max_tokens 128000, a worst case of
    // about $2.60 — more than the whole budget.
    let id = env.ok(&["run", "--max-usd", "0.5", "WRITE-SMALL: write small.txt"]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}\n{:#?}", env.events(&id));
    assert_eq!(
        env.git(&["show", &format!("drover/{id}:small.txt")]),
        "cheap"
    );
    let cost = t["cost_usd"].as_f64().unwrap();
    assert!(cost > 0.0 && cost <= 0.5, "{t:#}");
    // The agent's requests reached the provider with the cap the budget affords.
    let turns: Vec<_> = agent_requests(&provider)
        .into_iter()
        .filter(|r| r.model.as_deref() == Some("claude-opus-5-5"))
        .collect();
    assert!(turns.len() >= 2, "{:#?}", provider.log());
    let capped = gateway_events(&env, &id, "output_capped");
    for r in &turns {
        let granted = r.max_tokens.unwrap();
        assert!((1024..128_000).contains(&granted), "{r:#?}");
        // Each lowered request has its event, naming the cap asked for and the one granted.
        assert!(
            capped.iter().any(|e| e["data"]["granted"] == granted
                && e["data"]["requested"] == 128_000
                && e["data"]["budget"] == "task_usd"),
            "{capped:#?}"
        );
        // A thinking budget, if any, stays below the new cap.
        assert!(r.thinking_budget.is_none_or(|b| b < granted), "{r:#?}");
    }
}

#[test]
fn an_unpriced_default_model_under_a_dollar_budget_is_refused_before_the_provider() {
    let provider = forever(json!({ "input": 1000, "output": 100 }));
    let env = Env::claude(&provider);
    // The shipped table minus everything: Claude Code's own default model has no price.
    std::fs::create_dir_all(&env.home).unwrap();
    std::fs::write(
        env.home.join("config.toml"),
        "[gateway]\nbuiltin_prices = false\n",
    )
    .unwrap();
    let id = env.ok(&["run", "--max-usd", "0.02", "FOREVER: keep going"]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "failed", "{t:#}");
    assert_eq!(t["outcome"]["error_kind"], "budget_exceeded");
    let reason = t["outcome"]["reason"].as_str().unwrap();
    assert!(reason.contains("no price for claude-opus-5-5"), "{reason}");
    assert!(
        reason.contains(r#"gateway.prices."claude-opus-5-5""#),
        "{reason}"
    );
    let np = gateway_events(&env, &id, "no_price");
    assert_eq!(np[0]["data"]["model"], "claude-opus-5-5");
    assert!(
        provider
            .log()
            .iter()
            .all(|r| r.model.as_deref() != Some("claude-opus-5-5")),
        "an unpriced request reached the provider: {:#?}",
        provider.log()
    );
    // Without a dollar budget the same model is allowed (cost unknown, not a guess).
    let id = env.ok(&["run", "hello"]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    assert!(t["cost_usd"].is_null(), "{t:#}");
}

#[test]
fn a_negative_price_override_is_refused_and_nothing_starts() {
    let env = Env::new();
    std::fs::create_dir_all(&env.home).unwrap();
    std::fs::write(
        env.home.join("config.toml"),
        "[gateway.prices.\"my-model\"]\ninput = -1.0\noutput = 4.0\ncache_read = 0.1\ncache_write = 1.25\n",
    )
    .unwrap();
    let out = env.run(&["run", "--agent", "command", "--cmd", "true", "x"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"gateway.prices."my-model".input = -1"#),
        "{err}"
    );
    assert!(err.lines().next().unwrap().starts_with("drover:"), "{err}");
    assert!(out.stdout.is_empty());
    assert!(!env.home.join("daemon.sock").exists(), "a daemon started");
    assert!(!env.home.join("drover.db").exists() && env.daemon_pid().is_none());
}

#[test]
fn provider_errors_are_retried_and_each_retry_is_an_event() {
    let provider = Provider::start(json!({ "scenarios": [
        { "name": "flaky", "match": "FLAKY", "turns": [
            { "content": [{ "type": "text", "text": "made it" }],
              "fail_first": [ { "status": 429, "retry_after": 1 }, { "status": 529 }, { "status": 500 } ] } ] },
        { "name": "default", "turns": [{ "content": [{ "type": "text", "text": "?" }] }] }
    ]}));
    let env = Env::claude(&provider);
    let id = env.ok(&["run", "FLAKY: say something"]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    assert_eq!(t["result"], "made it");
    let retries = gateway_events(&env, &id, "retry");
    let statuses: Vec<u64> = retries
        .iter()
        .map(|e| e["data"]["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, vec![429, 529, 500], "{retries:#?}");
    // The 429's retry-after was honoured.
    assert!(retries[0]["data"]["delay_ms"].as_u64().unwrap() >= 1000);
}

#[test]
fn a_stream_dropped_mid_way_is_typed_and_the_task_does_not_hang() {
    let provider = Provider::start(json!({ "scenarios": [
        { "name": "drop", "match": "DROPPED", "turns": [
            { "content": [{ "type": "text", "text": "a long answer that will be cut" }],
              "fail_first": [ { "drop": "mid_stream" } ] } ] },
        { "name": "default", "turns": [{ "content": [{ "type": "text", "text": "?" }] }] }
    ]}));
    let env = Env::claude(&provider);
    let id = env.ok(&["run", "DROPPED: answer"]);
    let t = env.wait(&id);
    // The agent got a well-formed error event, retried the turn (the fake fails only its
    // first attempt) and finished it.
    assert_eq!(t["state"], "succeeded", "{t:#}");
    assert_eq!(t["result"], "a long answer that will be cut");
    let attempts: Vec<_> = provider
        .log()
        .into_iter()
        .filter(|r| !r.side)
        .map(|r| r.outcome)
        .collect();
    use drover_fake_provider::AnswerKind::{DropMidStream, Ok};
    assert_eq!(attempts, vec![DropMidStream, Ok], "{:#?}", provider.log());
    let ev = gateway_events(&env, &id, "stream_interrupted");
    assert_eq!(ev.len(), 1, "{:#?}", env.events(&id));
    assert!(ev[0]["data"]["message"]
        .as_str()
        .unwrap()
        .starts_with("stream_interrupted"));
}

#[test]
fn usage_groups_by_model_and_day_and_refuses_nonsense() {
    let provider = Provider::start(json!({ "scenarios": [
        { "name": "default", "turns": [{ "content": [{ "type": "text", "text": "hi" }], "usage": { "input": 10, "output": 5 } }] }
    ]}));
    let env = Env::claude(&provider);
    let id = env.ok(&["run", "--model", "claude-haiku-4-5", "hello"]);
    assert_eq!(env.wait(&id)["state"], "succeeded");
    let by_model: Vec<Value> =
        serde_json::from_str(&env.ok(&["usage", "--by", "model", "--json"])).unwrap();
    let haiku = by_model
        .iter()
        .find(|l| l["key"].as_str().unwrap().starts_with("claude-haiku-4-5"))
        .expect("haiku line");
    assert_eq!(haiku["input_tokens"], 10);
    assert_eq!(haiku["output_tokens"], 5);
    assert!((haiku["cost_usd"].as_f64().unwrap() - (10.0 * 1.0 + 5.0 * 5.0) / 1e6).abs() < 1e-12);
    let by_day: Vec<Value> =
        serde_json::from_str(&env.ok(&["usage", "--by", "day", "--json"])).unwrap();
    assert_eq!(by_day.len(), 1);
    let out = env.run(&["usage", "--by", "planet"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn model_aliases_team_model_lists_and_team_budgets_are_enforced() {
    let provider = Provider::start(json!({ "scenarios": [
        { "name": "twice", "match": "TWO-TURNS", "turns": [
            { "content": [{ "type": "tool_use", "name": "Write", "input": { "file_path": "a.txt", "content": "a\n" } }],
              "usage": { "input": 1000, "output": 100 } },
            { "content": [{ "type": "text", "text": "done" }] } ] },
        { "name": "default", "turns": [{ "content": [{ "type": "text", "text": "hi" }] }] }
    ]}));
    let env = Env::claude(&provider);
    std::fs::create_dir_all(&env.home).unwrap();
    std::fs::write(
        env.home.join("config.toml"),
        "[gateway.aliases]\nworker = \"claude-haiku-4-5\"\n\n\
         [teams.frugal]\nallowed_models = [\"claude-haiku-4-5\"]\nmax_usd_per_day = 0.0001\n",
    )
    .unwrap();
    // The alias: the agent asks for `worker`, the provider sees the model it stands for.
    let id = env.ok(&["run", "--model", "worker", "hello"]);
    assert_eq!(env.wait(&id)["state"], "succeeded");
    assert!(provider
        .log()
        .iter()
        .any(|r| r.model.as_deref() == Some("claude-haiku-4-5")));
    assert!(!provider
        .log()
        .iter()
        .any(|r| r.model.as_deref() == Some("worker")));
    // The team's model list: a task asking for another model is refused when it is created
    // (422, exit 2), and nothing is created.
    let before = provider.log().len();
    let out = env.run(&[
        "run",
        "--team",
        "frugal",
        "--model",
        "claude-sonnet-4-6",
        "hello",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("may not use model claude-sonnet-4-6"));
    // Without --model the agent's own default model is not on the list either: the gateway
    // refuses it before it reaches the provider.
    let id = env.ok(&["run", "--team", "frugal", "hello"]);
    assert_eq!(env.wait(&id)["state"], "failed");
    assert!(!gateway_events(&env, &id, "model_refused").is_empty());
    assert_eq!(
        provider.log().len(),
        before,
        "a refused model reached the provider"
    );
    // The team's daily budget ($0.0001) is smaller than one request's worst case: the first
    // request is refused before it reaches the provider.
    let before = provider.log().len();
    let id = env.ok(&[
        "run",
        "--team",
        "frugal",
        "--model",
        "claude-haiku-4-5",
        "TWO-TURNS: go",
    ]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "failed", "{t:#}");
    assert_eq!(t["outcome"]["error_kind"], "budget_exceeded");
    let refused = gateway_events(&env, &id, "budget_refused");
    assert_eq!(refused[0]["data"]["budget"], "team_usd_per_day");
    assert_eq!(refused[0]["data"]["spent"], 0.0);
    assert_eq!(
        provider.log().len(),
        before,
        "a refused request was forwarded"
    );
}

#[test]
fn doctor_names_unpriced_default_models() {
    let env = Env::new();
    std::fs::create_dir_all(&env.home).unwrap();
    let doctor = |env: &Env| -> Value {
        let out = env.run(&["doctor", "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == "prices")
            .cloned()
            .expect("a prices check")
    };
    // As shipped: the agents' defaults and the configured tiers are priced.
    std::fs::write(
        env.home.join("config.toml"),
        "[models]\nworker = \"claude-sonnet-4-6\"\njudge = \"claude-haiku-4-5\"\n",
    )
    .unwrap();
    let c = doctor(&env);
    assert_eq!(c["ok"], true, "{c:#}");
    assert!(c["detail"].as_str().unwrap().contains("claude-opus-5-5"));
    // An unpriced worker model and a table without the built-in prices.
    std::fs::write(
        env.home.join("config.toml"),
        "[models]\nworker = \"my-fine-tune\"\n\n[gateway]\nbuiltin_prices = false\n",
    )
    .unwrap();
    let c = doctor(&env);
    assert_eq!(c["ok"], false, "{c:#}");
    let detail = c["detail"].as_str().unwrap();
    for m in [
        "claude-opus-5-5 (Claude Code's default)",
        "gpt-6.1-sol (Codex's default)",
        "my-fine-tune (models.worker)",
    ] {
        assert!(detail.contains(m), "{detail}");
    }
    assert!(c["hint"]
        .as_str()
        .unwrap()
        .contains(r#"gateway.prices."claude-opus-5-5""#));
}

/// A budgeted task accepted while the gateway was on, still queued when the daemon comes back
/// without a provider key, is failed at start — never run unmetered with the agent's own login.
#[test]
fn a_budgeted_task_is_never_started_by_a_daemon_without_the_gateway() {
    let provider = forever(json!({ "input": 10, "output": 1 }));
    let mut env = Env::claude(&provider).with_env("DROVER_SLOTS", "1");
    let blocker = env.ok(&["run", "--agent", "command", "--cmd", "sleep 600", "block"]);
    env.until(&blocker, "the blocker to run", |t| t["state"] == "running");
    let id = env.ok(&[
        "run",
        "--agent",
        "command",
        "--cmd",
        "true",
        "--max-usd",
        "1",
        "budgeted",
    ]);
    assert_eq!(env.show(&id)["state"], "queued");
    env.ok(&["daemon", "stop"]);
    env.extra_env.retain(|(k, _)| k != "ANTHROPIC_API_KEY");
    // The next command starts a daemon without the key (no gateway); freeing the slot starts
    // the budgeted task's turn.
    env.ok(&["stop", &blocker]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "failed", "{t:#}");
    assert_eq!(t["outcome"]["error_kind"], "budget_exceeded", "{t:#}");
    let reason = t["outcome"]["reason"].as_str().unwrap();
    assert!(reason.contains("cannot be enforced"), "{reason}");
    assert!(t["started_at"].is_string() && t["pid"].is_null(), "{t:#}");
    assert_eq!(t["metered_by"], "agent", "{t:#}");
}
