//! OpenAI pass-through: Chat Completions and Responses, streamed and not, exact usage.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use drover_gateway::{TaskGrant, Tokens};
use serde_json::{json, Value};

const SET: &str = r#"{"scenarios": [
  {"name": "tool", "match": "TOOL", "turns": [
    {"content": [{"type": "text", "text": "Running it."},
                 {"type": "tool_use", "name": "shell", "input": {"command": ["ls", "-la"]}}],
     "usage": {"input": 1200, "output": 60, "cache_read": 800}},
    {"content": [{"type": "text", "text": "DONE"}], "usage": {"input": 50, "output": 5}}
  ]},
  {"name": "default", "turns": [{"content": [{"type": "text", "text": "default"}]}]}
]}"#;

fn tools() -> Value {
    json!([{"type": "function", "function": {"name": "shell", "parameters": {"type": "object"}}}])
}

fn sent(env: &Env, i: usize) -> Tokens {
    let u = env.provider.log()[i].usage;
    Tokens {
        input: u.input_tokens,
        output: u.output_tokens,
        cache_read: u.cache_read_input_tokens,
        cache_write: 0,
    }
}

#[tokio::test]
async fn chat_completions_streamed_and_plain() {
    let env = start(SET).await;
    let token = env.gateway.grant(TaskGrant::new("c"));
    // The agent did not ask for usage: the gateway asks, meters, and strips the chunk.
    let body = json!({"model": "gpt-test", "stream": true, "tools": tools(),
                      "messages": [{"role": "user", "content": "TOOL please"}]});
    let text = post_openai(&env, "chat/completions", &token, &body)
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("\"tool_calls\""));
    assert!(text.trim_end().ends_with("data: [DONE]"));
    assert!(
        !text.contains("\"prompt_tokens\""),
        "usage chunk stripped: {text}"
    );
    // Asking for it explicitly keeps it.
    let mut asked = body.clone();
    asked["stream_options"] = json!({"include_usage": true});
    let text = post_openai(&env, "chat/completions", &token, &asked)
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("\"prompt_tokens\":2000"));
    // Non-streamed, second turn.
    let plain = json!({"model": "gpt-test", "tools": tools(), "messages": [
        {"role": "user", "content": "TOOL please"},
        {"role": "assistant", "content": null, "tool_calls": []},
        {"role": "tool", "content": "ok"}]});
    let v: Value = post_openai(&env, "chat/completions", &token, &plain)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "DONE");

    let recs = env.ledger.task_records("c");
    assert_eq!(recs.len(), 3);
    assert_eq!(
        recs[0].tokens,
        Tokens {
            input: 1200,
            output: 60,
            cache_read: 800,
            cache_write: 0
        }
    );
    assert_eq!(recs[1].tokens, sent(&env, 1));
    assert_eq!(recs[2].tokens, sent(&env, 2));
    assert_eq!(recs[0].stop_reason.as_deref(), Some("tool_calls"));
    let want = (1200.0 * 2.0 + 60.0 * 8.0 + 800.0 * 0.5) / 1e6;
    assert!((recs[0].cost_usd.unwrap() - want).abs() < 1e-12);
}

#[tokio::test]
async fn responses_api_streamed_and_plain() {
    let env = start(SET).await;
    let token = env.gateway.grant(TaskGrant::new("r"));
    let body = json!({"model": "gpt-test", "stream": true, "tools": tools(),
                      "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "TOOL now"}]}]});
    let text = post_openai(&env, "responses", &token, &body)
        .await
        .text()
        .await
        .unwrap();
    let names: Vec<String> = sse(&text).into_iter().map(|(e, _)| e).collect();
    assert_eq!(names.first().unwrap(), "response.created");
    assert_eq!(names.last().unwrap(), "response.completed");
    assert!(names.iter().any(|n| n == "response.output_text.delta"));
    assert!(text.contains("\"type\":\"function_call\""));

    let mut second = body.clone();
    second["stream"] = json!(false);
    second["input"] = json!([
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "TOOL now"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Running it."}]},
        {"type": "function_call", "call_id": "c1", "name": "shell", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "ok"}]);
    let v: Value = post_openai(&env, "responses", &token, &second)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "completed");
    assert_eq!(v["output"][0]["content"][0]["text"], "DONE");

    let recs = env.ledger.task_records("r");
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].tokens, sent(&env, 0));
    assert_eq!(recs[0].tokens.cache_read, 800);
    assert_eq!(
        recs[1].tokens,
        Tokens {
            input: 50,
            output: 5,
            cache_read: 0,
            cache_write: 0
        }
    );
    assert_eq!(recs[0].stop_reason.as_deref(), Some("completed"));
}
