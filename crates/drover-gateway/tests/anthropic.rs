//! Anthropic pass-through: streamed and not, exact usage from the wire, cost, auth.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use drover_fake_provider::AnswerKind;
use drover_gateway::{GatewayEvent, ResponseOutcome, TaskGrant, Tokens};
use serde_json::Value;

const SET: &str = r#"{"scenarios": [
  {"name": "write", "match": "WRITE", "turns": [
    {"content": [{"type": "text", "text": "I will write the file now, hold on a second."},
                 {"type": "tool_use", "name": "Write", "input": {"file_path": "HELLO.txt", "content": "hello\n"}}],
     "usage": {"input": 1000, "output": 50, "cache_read": 300, "cache_creation": 200}},
    {"content": [{"type": "text", "text": "SUCCESS"}]}
  ]},
  {"name": "trunc", "match": "TRUNC", "turns": [
    {"content": [{"type": "text", "text": "cut"}], "stop_reason": "max_tokens", "usage": {"output": 1024}}]},
  {"name": "default", "turns": [{"content": [{"type": "text", "text": "default"}]}]}
]}"#;

fn cost(t: &Tokens) -> f64 {
    (t.input as f64 * 3.0
        + t.output as f64 * 15.0
        + t.cache_read as f64 * 0.3
        + t.cache_write as f64 * 3.75)
        / 1e6
}

#[tokio::test]
async fn streamed_and_plain_messages_are_metered_exactly() {
    let env = start(SET).await;
    let token = env.gateway.grant(TaskGrant {
        pool: Some("p".into()),
        team: Some("t".into()),
        ..TaskGrant::new("task-1")
    });
    assert!(token.starts_with("drv-") && token.len() == 36, "{token}");

    let resp = post_anthropic(
        &env,
        &token,
        &anthropic_body("test-model", "WRITE it", 0, true),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = resp.text().await.unwrap();
    let names: Vec<String> = sse(&text).into_iter().map(|(e, _)| e).collect();
    assert_eq!(names.first().unwrap(), "message_start");
    assert_eq!(names.last().unwrap(), "message_stop");
    assert!(text.contains("\"name\":\"Write\""));

    let resp = post_anthropic(
        &env,
        &token,
        &anthropic_body("test-model", "WRITE it", 1, false),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let msg: Value = resp.json().await.unwrap();
    assert_eq!(msg["content"][0]["text"], "SUCCESS");

    let log = env.provider.log();
    assert_eq!(log.len(), 2);
    let recs = env.ledger.task_records("task-1");
    assert_eq!(recs.len(), 2);
    for (rec, sent) in recs.iter().zip(&log) {
        let u = sent.usage;
        let want = Tokens {
            input: u.input_tokens,
            output: u.output_tokens,
            cache_read: u.cache_read_input_tokens,
            cache_write: u.cache_creation_input_tokens,
        };
        assert_eq!(rec.tokens, want);
        assert_eq!(rec.model, "test-model");
        assert_eq!(rec.outcome, ResponseOutcome::Complete);
        assert_eq!(rec.pool.as_deref(), Some("p"));
        assert_eq!(rec.team.as_deref(), Some("t"));
        let c = rec.cost_usd.unwrap();
        assert!((c - cost(&want)).abs() < 1e-12, "{c} vs {}", cost(&want));
    }
    assert_eq!(
        recs[0].tokens,
        Tokens {
            input: 1000,
            output: 50,
            cache_read: 300,
            cache_write: 200
        }
    );
    assert_eq!(recs[0].stop_reason.as_deref(), Some("tool_use"));
    assert_eq!(recs[1].stop_reason.as_deref(), Some("end_turn"));
    assert!(env.ledger.events().is_empty(), "{:?}", env.ledger.events());
}

#[tokio::test]
async fn unknown_model_costs_null_with_one_warning_and_truncation_is_typed() {
    let env = start(SET).await;
    let token = env.gateway.grant(TaskGrant::new("task-2"));
    for stream in [true, false] {
        let r = post_anthropic(
            &env,
            &token,
            &anthropic_body("claude-unknown-9", "hi", 0, stream),
        )
        .await;
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    let r = post_anthropic(
        &env,
        &token,
        &anthropic_body("claude-haiku-4-5-20251001", "TRUNC", 0, true),
    )
    .await;
    r.bytes().await.unwrap();
    let recs = env.ledger.task_records("task-2");
    assert_eq!(recs.len(), 3);
    assert!(recs[0].cost_usd.is_none() && recs[1].cost_usd.is_none());
    // Dated ids take the undated price: haiku 4.5 is $1 / $5.
    let want = (100.0 * 1.0 + 1024.0 * 5.0) / 1e6;
    assert!((recs[2].cost_usd.unwrap() - want).abs() < 1e-12);
    let events = env.ledger.task_events("task-2");
    assert_eq!(
        events,
        vec![
            GatewayEvent::UnknownModelPrice {
                model: "claude-unknown-9".into()
            },
            GatewayEvent::Truncated {
                model: "claude-haiku-4-5-20251001".into(),
                stop_reason: "max_tokens".into()
            },
        ]
    );
}

#[tokio::test]
async fn unknown_and_revoked_tokens_get_401_in_the_providers_format() {
    let env = start(SET).await;
    let body = anthropic_body("test-model", "hi", 0, false);
    let r = post_anthropic(&env, "drv-00000000000000000000000000000000", &body).await;
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "authentication_error");

    let token = env.gateway.grant(TaskGrant::new("task-3"));
    assert_eq!(post_anthropic(&env, &token, &body).await.status(), 200);
    assert!(env.gateway.revoke(&token));
    assert_eq!(post_anthropic(&env, &token, &body).await.status(), 401);

    let r = post_openai(
        &env,
        "chat/completions",
        &token,
        &serde_json::json!({"model": "x"}),
    )
    .await;
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_api_key");
    // No request reached the provider without a valid token.
    assert_eq!(env.provider.log().len(), 1);
}

#[tokio::test]
async fn count_tokens_passes_through_unmetered() {
    let env = start(SET).await;
    let token = env.gateway.grant(TaskGrant::new("task-4"));
    let r = client()
        .post(format!("{}/v1/messages/count_tokens?beta=true", env.base))
        .header("x-api-key", &token)
        .json(&anthropic_body("test-model", "count me", 0, false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["input_tokens"].as_u64().unwrap() > 0);
    assert!(env.ledger.records().is_empty());
    let log = env.provider.log();
    assert_eq!(log[0].path, "/v1/messages/count_tokens?beta=true");
    assert_eq!(log[0].outcome, AnswerKind::Ok);
}
