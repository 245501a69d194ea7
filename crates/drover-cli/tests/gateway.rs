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

#[test]
fn a_runaway_agent_is_stopped_by_its_budget_one_request_past_it_at_most() {
    // Every turn is another tool call: without a budget this never ends.
    let provider = Provider::start(json!({ "scenarios": [
        { "name": "forever", "match": "FOREVER", "turns": [
            { "content": [{ "type": "tool_use", "name": "Write", "input": { "file_path": "loop.txt", "content": "again\n" } }],
              "usage": { "input": 1000, "output": 100 }, "repeat": true } ] },
        { "name": "default", "turns": [{ "content": [{ "type": "text", "text": "?" }] }] }
    ]}));
    let env = Env::claude(&provider);
    // claude-sonnet-4-6: 1000 in + 100 out = $0.0045 a request; $0.01 lasts 3 requests.
    let id = env.ok(&[
        "run",
        "--model",
        "claude-sonnet-4-6",
        "--max-usd",
        "0.01",
        "FOREVER: keep going",
    ]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "failed", "{t:#}");
    assert_eq!(t["outcome"]["error_kind"], "budget_exceeded");
    let served: Vec<_> = provider
        .log()
        .into_iter()
        .filter(|r| !r.side && r.status == 200)
        .collect();
    let per = 0.0045;
    // Every request that reached the provider started before the budget was spent.
    let before_last = (served.len() - 1) as f64 * per;
    assert!(
        before_last < 0.01,
        "{} requests served: a request started after the budget was spent",
        served.len()
    );
    assert!(t["cost_usd"].as_f64().unwrap() >= 0.01 - 1e-9, "{t:#}");
    assert!(
        t["cost_usd"].as_f64().unwrap() <= 0.01 + per + 1e-9,
        "overshoot beyond one request: {t:#}"
    );
    assert!(!gateway_events(&env, &id, "budget_refused").is_empty());
    // Spent amounts are in the store: `drover usage` shows them, after a restart too.
    env.ok(&["daemon", "stop"]);
    let usage: Vec<Value> =
        serde_json::from_str(&env.ok(&["usage", "--by", "task", "--json"])).unwrap();
    let line = usage
        .iter()
        .find(|l| l["key"] == id.as_str())
        .expect("usage line");
    assert_eq!(line["requests"].as_u64().unwrap() as usize, served.len());
    assert!((line["cost_usd"].as_f64().unwrap() - t["cost_usd"].as_f64().unwrap()).abs() < 1e-9);
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
    assert!(t["state"] == "succeeded" || t["state"] == "failed", "{t:#}");
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
    // The team's model list: another model is refused before it reaches the provider.
    let before = provider.log().len();
    let id = env.ok(&[
        "run",
        "--team",
        "frugal",
        "--model",
        "claude-sonnet-4-6",
        "hello",
    ]);
    assert_eq!(env.wait(&id)["state"], "failed");
    assert!(!gateway_events(&env, &id, "model_refused").is_empty());
    assert_eq!(
        provider.log().len(),
        before,
        "a refused model reached the provider"
    );
    // The team's daily budget: its first request spends it (1000 in + 100 out on haiku = $0.0015).
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
}
