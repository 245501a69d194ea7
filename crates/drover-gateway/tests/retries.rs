//! Retries before the first byte, typed interruptions after it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use drover_fake_provider::AnswerKind;
use drover_gateway::{GatewayEvent, ResponseOutcome, TaskGrant};
use serde_json::{json, Value};

const SET: &str = r#"{"scenarios": [
  {"name": "flaky", "match": "FLAKY", "turns": [
    {"content": [{"type": "text", "text": "finally"}],
     "fail_first": [{"status": 429, "retry_after": 1}, {"status": 529}, {"status": 500}]}]},
  {"name": "dropper", "match": "DROP-EARLY", "turns": [
    {"content": [{"type": "text", "text": "made it"}], "fail_first": [{"drop": "before_headers"}]}]},
  {"name": "cut", "match": "CUT", "turns": [
    {"content": [{"type": "text", "text": "a fairly long answer that gets cut in the middle of it"}],
     "usage": {"input": 700, "output": 90},
     "fail_first": [{"drop": "mid_stream"}, {"drop": "mid_stream"}, {"drop": "mid_stream"}]}]},
  {"name": "serr", "match": "STREAM-ERROR", "turns": [
    {"content": [{"type": "text", "text": "a fairly long answer that gets an error"}],
     "fail_first": [{"stream_error": "overloaded_error"}]}]},
  {"name": "down", "match": "DOWN", "turns": [
    {"content": [{"type": "text", "text": "never"}],
     "fail_first": [{"status": 503}, {"status": 503}, {"status": 503}, {"status": 503}]}]},
  {"name": "bad", "match": "BAD", "turns": [
    {"content": [{"type": "text", "text": "never"}], "fail_first": [{"status": 400}]}]},
  {"name": "slow", "match": "SLOW", "turns": [{"content": [{"type": "text", "text": "late"}], "delay_ms": 1500}]},
  {"name": "default", "turns": [{"content": [{"type": "text", "text": "default"}]}]}
]}"#;

fn retries(events: &[GatewayEvent]) -> Vec<(u32, Option<u16>, u64)> {
    events
        .iter()
        .filter_map(|e| match e {
            GatewayEvent::Retry {
                attempt,
                status,
                delay_ms,
                ..
            } => Some((*attempt, *status, *delay_ms)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn retries_429_529_500_then_succeeds_with_three_retry_events() {
    let env = start(SET).await;
    let token = env.gateway.grant(TaskGrant::new("t"));
    let started = Instant::now();
    let r = post_anthropic(
        &env,
        &token,
        &anthropic_body("test-model", "FLAKY", 0, true),
    )
    .await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("finally") && text.contains("message_stop"));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "retry-after: 1 was not honoured"
    );
    let ev = env.ledger.task_events("t");
    let r = retries(&ev);
    assert_eq!(
        r.iter().map(|x| (x.0, x.1)).collect::<Vec<_>>(),
        vec![(1, Some(429)), (2, Some(529)), (3, Some(500))]
    );
    assert_eq!(r[0].2, 1000, "retry-after honoured");
    assert_eq!(ev.len(), 3);
    let statuses: Vec<u16> = env.provider.log().iter().map(|l| l.status).collect();
    assert_eq!(statuses, vec![429, 529, 500, 200]);
    assert_eq!(env.ledger.task_records("t").len(), 1);
}

#[tokio::test]
async fn drop_before_headers_is_retried_transparently() {
    let env = start(SET).await;
    let token = env.gateway.grant(TaskGrant::new("t"));
    let r = post_anthropic(
        &env,
        &token,
        &anthropic_body("test-model", "DROP-EARLY", 0, false),
    )
    .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["content"][0]["text"], "made it");
    let r = retries(&env.ledger.task_events("t"));
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].1, None);
    assert_eq!(env.provider.log()[0].outcome, AnswerKind::DropBeforeHeaders);
}

#[tokio::test]
async fn mid_stream_drop_gives_a_typed_error_event_and_is_not_replayed() {
    let env = start(SET).await;
    let token = env.gateway.grant(TaskGrant::new("t"));
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        post_anthropic(&env, &token, &anthropic_body("test-model", "CUT", 0, true)),
    )
    .await
    .expect("no hang");
    assert_eq!(r.status(), 200);
    let text = tokio::time::timeout(Duration::from_secs(5), r.text())
        .await
        .expect("no hang")
        .unwrap();
    let events = sse(&text);
    assert_eq!(events[0].0, "message_start");
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "error");
    let v: Value = serde_json::from_str(data).unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "api_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("drover gateway"));
    // Exactly one upstream request: nothing replayed after bytes reached the agent.
    assert_eq!(env.provider.log().len(), 1);
    let ev = env.ledger.task_events("t");
    assert!(
        matches!(&ev[..], [GatewayEvent::StreamInterrupted { .. }]),
        "{ev:?}"
    );
    let recs = env.ledger.task_records("t");
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].outcome, ResponseOutcome::Interrupted);
    assert_eq!(
        recs[0].tokens.input, 700,
        "input tokens of message_start are kept"
    );
}

#[tokio::test]
async fn openai_streams_get_their_own_interruption_shapes() {
    let env = start(SET).await;
    let token = env.gateway.grant(TaskGrant::new("t"));
    let tools = json!([{"type": "function", "function": {"name": "f", "parameters": {}}}]);
    let body = json!({"model": "gpt-test", "stream": true, "tools": tools,
                      "messages": [{"role": "user", "content": "CUT chat"}]});
    let text = post_openai(&env, "chat/completions", &token, &body)
        .await
        .text()
        .await
        .unwrap();
    let last = sse(&text).pop().unwrap().1;
    let v: Value = serde_json::from_str(&last).unwrap();
    assert_eq!(v["error"]["code"], "stream_interrupted");
    assert!(!text.contains("[DONE]"));

    let body =
        json!({"model": "gpt-test", "stream": true, "tools": tools, "input": "CUT responses"});
    let text = post_openai(&env, "responses", &token, &body)
        .await
        .text()
        .await
        .unwrap();
    let (name, data) = sse(&text).pop().unwrap();
    assert_eq!(name, "response.failed");
    let v: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(v["response"]["status"], "failed");
    assert!(v["response"]["id"].as_str().unwrap().starts_with("resp_"));
    let interrupted = env
        .ledger
        .task_events("t")
        .iter()
        .filter(|e| matches!(e, GatewayEvent::StreamInterrupted { .. }))
        .count();
    assert_eq!(interrupted, 2);
}

#[tokio::test]
async fn upstream_error_event_is_relayed_and_recorded_as_interrupted() {
    let env = start(SET).await;
    let token = env.gateway.grant(TaskGrant::new("t"));
    let text = post_anthropic(
        &env,
        &token,
        &anthropic_body("test-model", "STREAM-ERROR", 0, true),
    )
    .await
    .text()
    .await
    .unwrap();
    let (name, data) = sse(&text).pop().unwrap();
    assert_eq!(name, "error");
    assert!(
        data.contains("overloaded_error"),
        "the provider's own error event passes unchanged"
    );
    assert_eq!(sse(&text).iter().filter(|(n, _)| n == "error").count(), 1);
    let ev = env.ledger.task_events("t");
    assert!(
        matches!(&ev[..], [GatewayEvent::StreamInterrupted { error, .. }] if error.contains("overloaded_error")),
        "{ev:?}"
    );
}

#[tokio::test]
async fn exhausted_or_non_retryable_errors_reach_the_agent_unchanged() {
    let env = start_with(SET, |c| c.max_retries = 2).await;
    let token = env.gateway.grant(TaskGrant::new("t"));
    let r = post_anthropic(&env, &token, &anthropic_body("test-model", "DOWN", 0, true)).await;
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(env.provider.log().len(), 3, "1 + max_retries attempts");
    let ev = env.ledger.task_events("t");
    assert_eq!(retries(&ev).len(), 2);
    assert!(matches!(
        ev.last(),
        Some(GatewayEvent::UpstreamFailed {
            attempts: 3,
            status: Some(503),
            ..
        })
    ));

    let r = post_anthropic(&env, &token, &anthropic_body("test-model", "BAD", 0, false)).await;
    assert_eq!(r.status(), 400);
    assert_eq!(env.provider.log().len(), 4, "400 is not retried");
}

#[tokio::test]
async fn ttfb_timeout_is_retried_then_reported() {
    let env = start_with(SET, |c| {
        c.ttfb_timeout = Duration::from_millis(300);
        c.max_retries = 1;
    })
    .await;
    let token = env.gateway.grant(TaskGrant::new("t"));
    let r = post_anthropic(&env, &token, &anthropic_body("test-model", "SLOW", 0, true)).await;
    assert_eq!(r.status(), 504);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "timeout_error");
    let r = retries(&env.ledger.task_events("t"));
    assert_eq!(r.len(), 1);
}

#[tokio::test]
async fn client_leaving_mid_stream_records_what_was_seen() {
    let slow = r#"{"scenarios": [{"name": "default", "turns": [
        {"content": [{"type": "text", "text": "a long slow answer, one piece at a time, a long slow answer"}],
         "usage": {"input": 321, "output": 40}, "chunk_delay_ms": 100}]}]}"#;
    let env = start(slow).await;
    let token = env.gateway.grant(TaskGrant::new("t"));
    let mut r = post_anthropic(&env, &token, &anthropic_body("test-model", "x", 0, true)).await;
    let first = r.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("message_start"));
    drop(r);
    eventually(|| !env.ledger.task_records("t").is_empty()).await;
    let rec = &env.ledger.task_records("t")[0];
    assert_eq!(rec.outcome, ResponseOutcome::ClientClosed);
    assert_eq!(rec.tokens.input, 321);
}
