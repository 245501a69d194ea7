//! The gateway tells its observer about every request of a task exactly once: after the last
//! byte of a success (with the metered usage), after retries ran out, when it refused the
//! request itself, and when the stream broke.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use drover_gateway::{Api, Exchange, Limits, Observer, TaskGrant};
use serde_json::json;

const SET: &str = r#"{"scenarios": [
  {"name": "flaky", "match": "FLAKY", "turns": [
    {"content": [{"type": "text", "text": "finally"}], "usage": {"input": 120, "output": 30},
     "fail_first": [{"status": 529}, {"status": 500}]}]},
  {"name": "down", "match": "DOWN", "turns": [
    {"content": [{"type": "text", "text": "never"}],
     "fail_first": [{"status": 503}, {"status": 503}, {"status": 503}, {"status": 503}]}]},
  {"name": "cut", "match": "CUT", "turns": [
    {"content": [{"type": "text", "text": "a fairly long answer that gets cut in the middle of it"}],
     "usage": {"input": 700, "output": 90},
     "fail_first": [{"drop": "mid_stream"}, {"drop": "mid_stream"}, {"drop": "mid_stream"}]}]},
  {"name": "default", "turns": [{"content": [{"type": "text", "text": "default"}]}]}
]}"#;

#[derive(Default)]
struct Recorder(Mutex<Vec<(String, Exchange)>>);

impl Observer for Recorder {
    fn exchange(&self, task_id: &str, ex: &Exchange) {
        self.0
            .lock()
            .unwrap()
            .push((task_id.to_string(), ex.clone()));
    }
}

impl Recorder {
    fn of(&self, task: &str) -> Vec<Exchange> {
        let all = self.0.lock().unwrap();
        all.iter()
            .filter(|(t, _)| t == task)
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// The one exchange of `task`, once reported (and never a second one).
    async fn one(&self, task: &str) -> Exchange {
        eventually(|| !self.of(task).is_empty()).await;
        // A second report would come right after the first; give it a moment to show.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let got = self.of(task);
        assert_eq!(got.len(), 1, "exactly one exchange for {task}: {got:#?}");
        got.into_iter().next().unwrap()
    }
}

struct Observed {
    env: Env,
    rec: Arc<Recorder>,
}

async fn observed(tweak: impl FnOnce(&mut drover_gateway::GatewayConfig)) -> Observed {
    let rec = Arc::new(Recorder::default());
    let env = start_observed(SET, tweak, Some(rec.clone())).await;
    Observed { env, rec }
}

fn upstream(env: &Env) -> String {
    env.provider
        .base_url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

#[tokio::test]
async fn a_success_after_retries_is_reported_once_with_its_retries_status_and_usage() {
    let Observed { env, rec } = observed(|_| {}).await;
    let token = env.gateway.grant(TaskGrant::new("ok"));
    let r = post_anthropic(
        &env,
        &token,
        &anthropic_body("test-model", "FLAKY", 0, true),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("message_stop"));
    let ex = rec.one("ok").await;
    let record = env.ledger.task_records("ok").pop().unwrap();
    assert_eq!(ex.api, Api::Messages);
    assert_eq!(ex.provider, "anthropic");
    assert_eq!(ex.upstream, upstream(&env));
    assert_eq!(ex.request_model, "test-model");
    assert_eq!(ex.response_model.as_deref(), Some(record.model.as_str()));
    assert_eq!(ex.status, Some(200));
    assert_eq!(ex.refused, None);
    assert_eq!(ex.retries, 2, "the scripted 529 and 500 were retried");
    assert!(ex.duration > Duration::ZERO);
    assert_eq!(ex.tokens, Some(record.tokens));
    assert_eq!(ex.tokens.unwrap().input, 120);
    assert_eq!(ex.tokens.unwrap().output, 30);
    assert_eq!(ex.cost_usd, record.cost_usd);
    assert!(ex.cost_usd.unwrap() > 0.0);
    assert_eq!(ex.finish_reason, record.stop_reason);
    assert!(!ex.interrupted);
    assert!(ex.started_at <= chrono::Utc::now());

    // A plain (non-streamed) answer too, without retries.
    let token = env.gateway.grant(TaskGrant::new("plain"));
    let r = post_anthropic(&env, &token, &anthropic_body("test-model", "x", 0, false)).await;
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    let ex = rec.one("plain").await;
    assert_eq!((ex.status, ex.retries), (Some(200), 0));
    assert!(ex.tokens.is_some());
}

#[tokio::test]
async fn an_upstream_failure_after_retries_carries_the_last_status_and_the_retries() {
    let Observed { env, rec } = observed(|c| c.max_retries = 2).await;
    let token = env.gateway.grant(TaskGrant::new("down"));
    let r = post_anthropic(&env, &token, &anthropic_body("test-model", "DOWN", 0, true)).await;
    assert_eq!(r.status(), 503);
    let ex = rec.one("down").await;
    assert_eq!(ex.status, Some(503));
    assert_eq!(ex.retries, 2);
    assert_eq!(ex.refused, None);
    assert_eq!(ex.tokens, None);
    assert!(ex.duration > Duration::ZERO);
}

#[tokio::test]
async fn no_answer_at_all_is_an_error_without_status() {
    // Nothing listens there.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = dead.local_addr().unwrap();
    drop(dead);
    let Observed { env, rec } = observed(|c| {
        c.anthropic_base = format!("http://{addr}");
        c.max_retries = 1;
    })
    .await;
    let token = env.gateway.grant(TaskGrant::new("gone"));
    let r = post_anthropic(&env, &token, &anthropic_body("test-model", "x", 0, true)).await;
    assert_eq!(r.status(), 502);
    let ex = rec.one("gone").await;
    assert_eq!((ex.status, ex.refused, ex.retries), (None, None, 1));
    assert_eq!(ex.upstream, addr.to_string());
}

#[tokio::test]
async fn refusals_by_the_gateway_itself_are_reported_as_refused() {
    let Observed { env, rec } = observed(|_| {}).await;
    // A model the task may not use.
    let t = env.gateway.grant(TaskGrant {
        allowed_models: Some(vec!["test-model".into()]),
        ..TaskGrant::new("model")
    });
    let r = post_anthropic(&env, &t, &anthropic_body("claude-opus-5", "x", 0, false)).await;
    assert_eq!(r.status(), 403);
    let ex = rec.one("model").await;
    assert_eq!(ex.refused, Some("model"));
    assert_eq!(ex.status, None);
    assert_eq!(ex.request_model, "claude-opus-5");

    // A model without a price under a dollar budget.
    let t = env.gateway.grant(TaskGrant {
        limits: Limits {
            task_usd: Some(10.0),
            ..Limits::default()
        },
        ..TaskGrant::new("price")
    });
    let r = post_anthropic(&env, &t, &anthropic_body("unpriced-model", "x", 0, false)).await;
    assert_eq!(r.status(), 402);
    let ex = rec.one("price").await;
    assert_eq!((ex.refused, ex.status), (Some("no_price"), None));
    assert_eq!(ex.request_model, "unpriced-model");

    // Output the gateway never sees, under a budget.
    let t = env.gateway.grant(TaskGrant {
        limits: Limits {
            task_usd: Some(10.0),
            ..Limits::default()
        },
        ..TaskGrant::new("bg")
    });
    let body = json!({"model": "gpt-test", "input": "hi", "background": true});
    let r = post_openai(&env, "responses", &t, &body).await;
    assert_eq!(r.status(), 400);
    let ex = rec.one("bg").await;
    assert_eq!(
        (ex.refused, ex.api, ex.provider),
        (Some("unmeterable"), Api::Responses, "openai")
    );

    // No provider was asked for any of them.
    assert!(env.provider.log().is_empty());

    // An unknown token is no task's request: nothing reported.
    let r = post_anthropic(
        &env,
        "drover-nope",
        &anthropic_body("test-model", "x", 0, false),
    )
    .await;
    assert_eq!(r.status(), 401);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(rec.0.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn a_stream_broken_after_bytes_reached_the_agent_is_interrupted() {
    let Observed { env, rec } = observed(|_| {}).await;
    let token = env.gateway.grant(TaskGrant::new("cut"));
    let r = post_anthropic(&env, &token, &anthropic_body("test-model", "CUT", 0, true)).await;
    assert_eq!(r.status(), 200);
    let _ = r.text().await;
    let ex = rec.one("cut").await;
    assert!(ex.interrupted);
    assert_eq!(ex.status, Some(200));
    assert_eq!(ex.retries, 0);
}
