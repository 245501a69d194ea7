//! HTTP tests of the fake provider with a real client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use drover_fake_provider::{AnswerKind, RunningProvider};
use drover_test_support::provider::anthropic_body;
use drover_test_support::sse::json_frames;
use futures::StreamExt;
use serde_json::{json, Value};

const SET: &str = r#"{"scenarios": [
  {"name": "write", "match": "WRITE", "turns": [
    {"content": [{"type": "text", "text": "I will write the file now, hold on."},
                 {"type": "tool_use", "name": "Write", "input": {"file_path": "HELLO.txt", "content": "hello\n"}}],
     "usage": {"input": 1000, "output": 50, "cache_read": 300, "cache_creation": 200}},
    {"content": [{"type": "text", "text": "SUCCESS"}]}
  ]},
  {"name": "flaky", "match": "FLAKY", "turns": [
    {"content": [{"type": "text", "text": "finally"}],
     "fail_first": [{"status": 429, "retry_after": 7}, {"status": 529}, {"status": 500}]}
  ]},
  {"name": "drops", "match": "DROPS", "turns": [
    {"content": [{"type": "text", "text": "a fairly long answer that gets cut in the middle"}],
     "fail_first": [{"drop": "mid_stream"}, {"drop": "before_headers"}, {"stream_error": "overloaded_error"}]}
  ]},
  {"name": "slow", "match": "SLOW", "turns": [{"content": [{"type": "text", "text": "late"}], "delay_ms": 3000}]},
  {"name": "loop", "match": "LOOP", "turns": [
    {"content": [{"type": "tool_use", "name": "Bash", "input": {"command": "true"}}], "repeat": true}]},
  {"name": "held", "match": "HELD", "turns": [
    {"content": [{"type": "text", "text": "first"}]},
    {"content": [{"type": "text", "text": "released"}], "hold": "gate"},
    {"content": [{"type": "text", "text": "never released"}], "hold": "shut", "hold_timeout_ms": 200}]},
  {"name": "default", "turns": [{"content": [{"type": "text", "text": "default"}]}]}
]}"#;

async fn start() -> RunningProvider {
    drover_test_support::provider::start(SET).await
}

fn body(prompt: &str, assistants: usize, stream: bool) -> Value {
    anthropic_body("claude-sonnet-4-5", prompt, assistants, stream, "Write")
}

async fn post(p: &RunningProvider, body: &Value) -> reqwest::Result<reqwest::Response> {
    reqwest::Client::new()
        .post(format!("{}/v1/messages?beta=true", p.base_url()))
        .header("x-api-key", "fake")
        .json(body)
        .send()
        .await
}

#[tokio::test]
async fn streams_text_and_tool_use() {
    let p = start().await;
    let resp = post(&p, &body("please WRITE", 0, true)).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let events = json_frames(&resp.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.last(), Some(&"message_stop"));
    let start = &events[0].1["message"];
    assert_eq!(start["model"], "claude-sonnet-4-5");
    assert_eq!(start["usage"]["input_tokens"], 1000);
    assert_eq!(start["usage"]["cache_read_input_tokens"], 300);
    let text: String = events
        .iter()
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .collect();
    assert_eq!(text, "I will write the file now, hold on.");
    let json_text: String = events
        .iter()
        .filter_map(|(_, d)| d["delta"]["partial_json"].as_str())
        .collect();
    let input: Value = serde_json::from_str(&json_text).unwrap();
    assert_eq!(
        input,
        json!({"file_path": "HELLO.txt", "content": "hello\n"})
    );
    let tool_start = events
        .iter()
        .find(|(e, d)| e == "content_block_start" && d["index"] == 1)
        .unwrap();
    assert_eq!(tool_start.1["content_block"]["name"], "Write");
    let delta = events.iter().find(|(e, _)| e == "message_delta").unwrap();
    assert_eq!(delta.1["delta"]["stop_reason"], "tool_use");
    assert_eq!(delta.1["usage"]["output_tokens"], 50);

    // The next turn is chosen by the number of assistant messages.
    let resp = post(&p, &body("please WRITE", 1, true)).await.unwrap();
    let events = json_frames(&resp.text().await.unwrap());
    let delta = events.iter().find(|(e, _)| e == "message_delta").unwrap();
    assert_eq!(delta.1["delta"]["stop_reason"], "end_turn");

    let log = p.log();
    assert_eq!(log.len(), 2);
    assert_eq!(
        (log[0].scenario.as_deref(), log[0].turn),
        (Some("write"), Some(0))
    );
    assert_eq!(log[0].usage.cache_creation_input_tokens, 200);
    assert_eq!(log[0].tool_uses, vec!["Write".to_string()]);
    assert_eq!(log[1].turn, Some(1));
    assert!(log[1].stream && !log[1].side);
    assert_eq!(log[1].path, "/v1/messages?beta=true");
}

#[tokio::test]
async fn non_streaming_message_and_past_the_end() {
    let p = start().await;
    let resp = post(&p, &body("WRITE", 0, false)).await.unwrap();
    let msg: Value = resp.json().await.unwrap();
    assert_eq!(msg["type"], "message");
    assert_eq!(msg["content"][1]["type"], "tool_use");
    assert!(msg["content"][1]["id"]
        .as_str()
        .unwrap()
        .starts_with("toolu_"));
    assert_eq!(msg["stop_reason"], "tool_use");
    let msg: Value = post(&p, &body("WRITE", 2, false))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(msg["content"][0]["text"], "done");
    let msg: Value = post(&p, &body("LOOP", 5, false))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(msg["content"][0]["name"], "Bash");
    let msg: Value = post(&p, &body("other", 0, false))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(msg["content"][0]["text"], "default");
}

#[tokio::test]
async fn scripted_errors_then_success_per_conversation() {
    let p = start().await;
    let b = body("FLAKY one", 0, true);
    let r = post(&p, &b).await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "rate_limit_error");
    // Another conversation has its own attempt counter.
    let other = post(&p, &body("FLAKY two", 0, true)).await.unwrap();
    assert_eq!(other.status(), 429);
    let r = post(&p, &b).await.unwrap();
    assert_eq!(r.status(), 529);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["type"],
        "overloaded_error"
    );
    let r = post(&p, &b).await.unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["type"],
        "api_error"
    );
    let r = post(&p, &b).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("finally"));
    let attempts: Vec<_> = p.log().iter().map(|r| (r.attempt, r.status)).collect();
    assert_eq!(
        attempts,
        vec![
            (Some(1), 429),
            (Some(1), 429),
            (Some(2), 529),
            (Some(3), 500),
            (Some(4), 200)
        ]
    );
}

#[tokio::test]
async fn drops_mid_stream_and_before_headers() {
    let p = start().await;
    let b = body("DROPS", 0, true);
    // 1: headers, message_start and the first delta, then the connection is cut.
    let resp = post(&p, &b).await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    let mut got = Vec::new();
    let mut failed = false;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => got.extend_from_slice(&c),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "the body must end in an error");
    let text = String::from_utf8(got).unwrap();
    assert!(text.contains("event: message_start"));
    assert!(text.contains("content_block_delta"));
    assert!(!text.contains("message_stop"));
    // 2: no answer at all.
    assert!(post(&p, &b).await.is_err());
    // 3: a 200 stream that ends in an error event.
    let text = post(&p, &b).await.unwrap().text().await.unwrap();
    let events = json_frames(&text);
    assert_eq!(events.last().unwrap().0, "error");
    assert_eq!(
        events.last().unwrap().1["error"]["type"],
        "overloaded_error"
    );
    // 4: success.
    let text = post(&p, &b).await.unwrap().text().await.unwrap();
    assert!(text.contains("message_stop"));
    let outcomes: Vec<_> = p.log().iter().map(|r| (r.outcome, r.status)).collect();
    assert_eq!(
        outcomes,
        vec![
            (AnswerKind::DropMidStream, 200),
            (AnswerKind::DropBeforeHeaders, 0),
            (AnswerKind::StreamError, 200),
            (AnswerKind::Ok, 200)
        ]
    );
}

#[tokio::test]
async fn side_requests_auth_count_tokens_and_http_log() {
    let p = start().await;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/messages", p.base_url());
    // No key: 401 in Anthropic's shape.
    let r = client
        .post(&url)
        .json(&body("WRITE", 0, true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["type"],
        "authentication_error"
    );
    // Bearer works; a request without tools is a side request and does not use the script.
    let mut side = body("FLAKY side", 0, false);
    side.as_object_mut().unwrap().remove("tools");
    let r = client
        .post(&url)
        .bearer_auth("k")
        .json(&side)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["content"][0]["text"], "ok");
    assert_eq!(
        post(&p, &body("FLAKY side", 0, false))
            .await
            .unwrap()
            .status(),
        429
    );
    let n: Value = client
        .post(format!("{url}/count_tokens"))
        .header("x-api-key", "k")
        .json(&body("WRITE", 0, false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(n["input_tokens"].as_u64().unwrap() > 0);
    let health: Value = client
        .get(format!("{}/_fake/health", p.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["ok"], true);
    let log: Vec<Value> = client
        .get(format!("{}/_fake/log", p.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log.len(), 4);
    assert_eq!(log[0]["status"], 401);
    assert_eq!(log[1]["side"], true);
    assert_eq!(log[1]["usage"]["input_tokens"], 10);
    assert_eq!(log[2]["attempt"], 1);
    assert_eq!(log[3]["path"], "/v1/messages/count_tokens");
}

#[tokio::test]
async fn client_closing_during_delay_is_logged() {
    let p = start().await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let r = client
        .post(format!("{}/v1/messages", p.base_url()))
        .header("x-api-key", "k")
        .json(&body("SLOW", 0, true))
        .send()
        .await;
    assert!(r.is_err());
    for _ in 0..50 {
        if !p.log().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = p.log();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].outcome, log[0].status),
        (AnswerKind::ClientClosed, 0)
    );
    p.stop().await;
}

#[tokio::test]
async fn a_held_turn_answers_only_once_released_and_a_forgotten_hold_times_out() {
    let p = start().await;
    // The first turn is not held.
    let r = post(&p, &body("HELD", 0, false)).await.unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["content"][0]["text"],
        "first"
    );
    let held = tokio::spawn({
        let b = body("HELD", 1, false);
        let url = format!("{}/v1/messages", p.base_url());
        async move {
            reqwest::Client::new()
                .post(url)
                .header("x-api-key", "k")
                .json(&b)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    });
    assert!(p.holds().reached("gate", 1, Duration::from_secs(10)).await);
    let state: Value = reqwest::get(format!("{}/_fake/holds", p.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["waiting"]["gate"], 1, "{state}");
    assert!(
        !held.is_finished(),
        "a held turn answered before its release"
    );
    let r: Value = reqwest::Client::new()
        .post(format!("{}/_fake/release/gate", p.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["released"], "gate");
    let answer = tokio::time::timeout(Duration::from_secs(10), held)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer["content"][0]["text"], "released");
    // Sticky: a retry of the released turn passes at once.
    let again = post(&p, &body("HELD", 1, false)).await.unwrap();
    assert_eq!(
        again.json::<Value>().await.unwrap()["content"][0]["text"],
        "released"
    );
    // Never released: answered after its hold_timeout_ms instead of hanging.
    let late = tokio::time::timeout(Duration::from_secs(10), post(&p, &body("HELD", 2, false)))
        .await
        .expect("a forgotten hold must not hang")
        .unwrap();
    assert_eq!(
        late.json::<Value>().await.unwrap()["content"][0]["text"],
        "never released"
    );
    assert_eq!(p.holds().state().waiting.len(), 0);
    p.stop().await;
}
