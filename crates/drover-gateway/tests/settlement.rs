//! Settlement: a request that reached the provider is never free. An agent that disconnects
//! before the response headers, or a stream that ends before its usage, is charged the
//! request's worst case; refusals caused only by requests in flight are retryable; requests
//! whose cost cannot be bounded are refused under a budget.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use drover_gateway::{BudgetKind, GatewayEvent, Limits, ResponseOutcome, TaskGrant, UsageRecord};
use serde_json::{json, Value};

const DEADLINE: Duration = Duration::from_secs(20);

// Every turn of the held scenario waits for the test to release "h".
const HELD: &str = r#"{"scenarios": [
  {"name": "default", "turns": [{"content": [{"type": "tool_use", "name": "Bash", "input": {"command": "echo tick"}}],
    "usage": {"input": 1000, "output": 100}, "hold": "h", "repeat": true}]}
]}"#;

// The first attempt of every turn is cut mid-stream after its first delta.
const CUT: &str = r#"{"scenarios": [
  {"name": "default", "turns": [{"content": [{"type": "text", "text": "a long answer that is cut"}],
    "usage": {"input": 1000, "output": 100}, "fail_first": [{"drop": "mid_stream"}]}]}
]}"#;

const SET: &str = r#"{"scenarios": [
  {"name": "default", "turns": [{"content": [{"type": "tool_use", "name": "Bash", "input": {"command": "echo tick"}}],
    "usage": {"input": 1000, "output": 100}, "repeat": true}]}
]}"#;

/// The worst case the gateway reserves on `price_in`/`price_out` ($/M: dearest input rate,
/// output rate) for `body` with output cap `cap`.
fn worst(body: &Value, cap: u64, price_in: f64, price_out: f64) -> f64 {
    let bytes = serde_json::to_vec(body).unwrap().len() as f64;
    ((bytes / 4.0).ceil() * price_in + cap as f64 * price_out) / 1e6
}

/// Waits (up to [`DEADLINE`]) until `task` has `n` usage records.
async fn records(env: &Env, task: &str, n: usize) -> Vec<UsageRecord> {
    let end = Instant::now() + DEADLINE;
    loop {
        let r = env.ledger.task_records(task);
        if r.len() >= n {
            return r;
        }
        assert!(Instant::now() < end, "{task}: {} of {n} records", r.len());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Sends `body` and disconnects once the provider holds it (before any response header).
async fn disconnect_before_headers(env: &Env, token: &str, body: &Value, nth: usize) {
    let (base, token, body) = (env.base.clone(), token.to_string(), body.clone());
    let req = tokio::spawn(async move {
        client()
            .post(format!("{base}/v1/messages"))
            .header("x-api-key", token)
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
            .await
    });
    assert!(
        env.provider.holds().reached("h", nth, DEADLINE).await,
        "the request reached the provider"
    );
    req.abort();
    assert!(req.await.unwrap_err().is_cancelled());
}

#[tokio::test]
async fn disconnecting_before_headers_is_charged_the_worst_case_until_the_budget_stops_it() {
    let env = start(HELD).await;
    // The attack: non-streaming, a large max_tokens, disconnect early.
    let mut body = anthropic_body("test-model", "go", 0, false);
    body["max_tokens"] = json!(32000);
    let w = worst(&body, 32000, 3.75, 15.0);
    // Room for two worst cases, and not for a third even lowered to 1,024 output tokens.
    let limit = 2.0 * w + worst(&body, 1024, 3.75, 15.0) / 2.0;
    let token = env.gateway.grant(TaskGrant {
        limits: Limits {
            task_usd: Some(limit),
            ..Limits::default()
        },
        ..TaskGrant::new("gone")
    });
    for n in 1..=2 {
        disconnect_before_headers(&env, &token, &body, n).await;
        let recs = records(&env, "gone", n).await;
        let rec = &recs[n - 1];
        assert_eq!(rec.outcome, ResponseOutcome::Unsettled);
        assert!((rec.cost_usd.unwrap() - w).abs() < 1e-12, "{rec:?}");
        assert_eq!(rec.tokens.output, 32000);
    }
    // Charged rows count in what was spent: the third request does not fit and stops the task.
    let r = post_anthropic(&env, &token, &body).await;
    assert_eq!(r.status(), 402);
    let refused: Vec<_> = env
        .ledger
        .task_events("gone")
        .into_iter()
        .filter_map(|e| match e {
            GatewayEvent::BudgetRefused { spent, .. } => Some(spent),
            _ => None,
        })
        .collect();
    assert_eq!(refused.len(), 1);
    assert!((refused[0] - 2.0 * w).abs() < 1e-12, "{refused:?}");
    let unsettled = env
        .ledger
        .task_events("gone")
        .into_iter()
        .filter(|e| matches!(e, GatewayEvent::Unsettled { .. }))
        .count();
    assert_eq!(unsettled, 2);
    assert_eq!(env.gateway.reservations_in_flight(), 0);
    env.provider.release("h");
}

#[tokio::test]
async fn an_openai_stream_cut_before_its_usage_is_charged_the_worst_case() {
    let env = start(CUT).await;
    let body = json!({"model": "gpt-test", "stream": true, "max_completion_tokens": 2000,
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "Bash", "parameters": {"type": "object"}}}]});
    let token = env.gateway.grant(TaskGrant {
        limits: Limits {
            task_usd: Some(1.0),
            ..Limits::default()
        },
        ..TaskGrant::new("cut")
    });
    let r = post_openai(&env, "chat/completions", &token, &body).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("stream_interrupted"), "{text}");
    let recs = records(&env, "cut", 1).await;
    assert_eq!(recs.len(), 1);
    // The gateway added include_usage to the body it forwarded; its prompt estimate is of
    // that body. gpt-test: $2/M input (no dearer cache write), $8/M output.
    let mut sent = body.clone();
    sent["stream_options"] = json!({"include_usage": true});
    let w = worst(&sent, 2000, 2.0, 8.0);
    assert_eq!(recs[0].outcome, ResponseOutcome::Unsettled);
    assert!(
        (recs[0].cost_usd.unwrap() - w).abs() < 1e-12,
        "{:?} vs {w}",
        recs[0]
    );
    // A stream that ends with its usage is charged the metered figure.
    let r = post_openai(&env, "chat/completions", &token, &body).await;
    r.text().await.unwrap();
    let recs = records(&env, "cut", 2).await;
    assert_eq!(recs[1].outcome, ResponseOutcome::Complete);
    assert!((recs[1].cost_usd.unwrap() - (1000.0 * 2.0 + 100.0 * 8.0) / 1e6).abs() < 1e-12);
}

#[tokio::test]
async fn an_anthropic_stream_cut_after_its_first_delta_is_charged_the_worst_case() {
    let env = start(CUT).await;
    let body = anthropic_body("test-model", "x", 0, true);
    let token = env.gateway.grant(TaskGrant {
        limits: Limits {
            task_usd: Some(1.0),
            ..Limits::default()
        },
        ..TaskGrant::new("acut")
    });
    let r = post_anthropic(&env, &token, &body).await;
    assert_eq!(r.status(), 200);
    r.text().await.unwrap();
    let recs = records(&env, "acut", 1).await;
    assert_eq!(recs[0].outcome, ResponseOutcome::Unsettled);
    let w = worst(&body, 1024, 3.75, 15.0);
    assert!(
        (recs[0].cost_usd.unwrap() - w).abs() < 1e-12,
        "{:?}",
        recs[0]
    );
}

#[tokio::test]
async fn a_refusal_caused_only_by_requests_in_flight_is_retryable_and_does_not_stop_the_task() {
    let env = start_with(HELD, |c| c.busy_wait = Duration::ZERO).await;
    let pool = |id: &str| TaskGrant {
        pool: Some("ci".into()),
        limits: Limits {
            pool_usd: Some(1.0),
            ..Limits::default()
        },
        ..TaskGrant::new(id)
    };
    let a = env.gateway.grant(pool("a"));
    let b = env.gateway.grant(pool("b"));
    // No output cap: A's request holds the whole pool while in flight.
    let open = json!({"model": "gpt-test", "input": "x",
        "tools": [{"type": "function", "name": "Bash", "parameters": {"type": "object"}}]});
    let first = {
        let (base, a, open) = (env.base.clone(), a.clone(), open.clone());
        tokio::spawn(async move {
            let r = client()
                .post(format!("{base}/v1/responses"))
                .bearer_auth(a)
                .json(&open)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    assert!(env.provider.holds().reached("h", 1, DEADLINE).await);
    // B fits what was spent: refused with a retryable 429, in both formats.
    let r = post_openai(&env, "responses", &b, &open).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["x-should-retry"], "true");
    assert_eq!(r.headers()["retry-after"], "1");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    let r = post_anthropic(&env, &b, &anthropic_body("test-model", "x", 0, true)).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["x-should-retry"], "true");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error");
    let ev = env.ledger.task_events("b");
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert!(ev.iter().all(|e| matches!(
        e,
        GatewayEvent::BudgetBusy {
            budget: BudgetKind::PoolUsd,
            spent,
            ..
        } if *spent == 0.0
    )));
    // Once A settles, B's retry passes.
    env.provider.release("h");
    assert_eq!(first.await.unwrap().0, 200);
    let r = post_openai(&env, "responses", &b, &open).await;
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
}

#[tokio::test]
async fn chat_n_multiplies_the_reservation() {
    let env = start(SET).await;
    let body = |n: u64| {
        json!({"model": "gpt-test", "max_tokens": 1024, "n": n,
            "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "Bash", "parameters": {"type": "object"}}}]})
    };
    // A token budget that fits one choice of 1,024 tokens, not three.
    let token = env.gateway.grant(TaskGrant {
        limits: Limits {
            task_tokens: Some(2600),
            ..Limits::default()
        },
        ..TaskGrant::new("n")
    });
    let r = post_openai(&env, "chat/completions", &token, &body(3)).await;
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    let prompt = (serde_json::to_vec(&body(3)).unwrap().len() as u64).div_ceil(4);
    let granted = (2600 - prompt) / 3;
    let log = env.provider.log();
    assert_eq!(
        log[0].max_tokens,
        Some(granted),
        "per choice: the total over n"
    );
    assert!(env.ledger.task_events("n").iter().any(|e| matches!(
        e,
        GatewayEvent::OutputCapped { requested: 1024, granted: g, .. } if *g == granted
    )));
}

#[tokio::test]
async fn requests_whose_cost_cannot_be_bounded_are_refused_under_a_budget() {
    let env = start(SET).await;
    let usd = env.gateway.grant(TaskGrant {
        limits: Limits {
            task_usd: Some(1.0),
            ..Limits::default()
        },
        ..TaskGrant::new("u")
    });
    let tokens_only = env.gateway.grant(TaskGrant {
        limits: Limits {
            task_tokens: Some(1_000_000),
            ..Limits::default()
        },
        ..TaskGrant::new("tok")
    });
    let cases = [
        (
            "responses",
            json!({"model": "gpt-test", "input": "x", "background": true}),
            "background",
        ),
        (
            "responses",
            json!({"model": "gpt-test", "input": "x", "previous_response_id": "resp_1"}),
            "previous_response_id",
        ),
        (
            "responses",
            json!({"model": "gpt-test", "input": "x", "conversation": "conv_1"}),
            "conversation",
        ),
    ];
    for (path, body, field) in &cases {
        let r = post_openai(&env, path, &usd, body).await;
        assert_eq!(r.status(), 400, "{field}");
        assert_eq!(r.headers()["x-should-retry"], "false");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(field),
            "{v}"
        );
    }
    let mut body = anthropic_body("test-model", "x", 0, false);
    body["messages"][0]["content"].as_array_mut().unwrap().push(
        json!({"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}),
    );
    let r = post_anthropic(&env, &usd, &body).await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("source.type: \"url\""));
    // background is refused under any budget; the others need a dollar budget.
    let r = post_openai(&env, "responses", &tokens_only, &cases[0].1).await;
    assert_eq!(r.status(), 400);
    assert!(
        env.provider.log().is_empty(),
        "nothing reached the provider"
    );
    let refused = env
        .ledger
        .task_events("u")
        .into_iter()
        .filter(|e| matches!(e, GatewayEvent::Unmeterable { .. }))
        .count();
    assert_eq!(refused, 4);
    let r = post_openai(&env, "responses", &tokens_only, &cases[1].1).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_request_refused_only_by_requests_in_flight_waits_for_them_to_settle() {
    let env = start(HELD).await;
    let pool = |id: &str| TaskGrant {
        pool: Some("ci".into()),
        limits: Limits {
            pool_usd: Some(1.0),
            ..Limits::default()
        },
        ..TaskGrant::new(id)
    };
    let a = env.gateway.grant(pool("a"));
    let b = env.gateway.grant(pool("b"));
    let open = json!({"model": "gpt-test", "input": "x",
        "tools": [{"type": "function", "name": "Bash", "parameters": {"type": "object"}}]});
    let send = |token: String| {
        let (base, open) = (env.base.clone(), open.clone());
        tokio::spawn(async move {
            let r = client()
                .post(format!("{base}/v1/responses"))
                .bearer_auth(token)
                .json(&open)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    let first = send(a);
    assert!(env.provider.holds().reached("h", 1, DEADLINE).await);
    // B is held back by A's hold on the whole pool: it waits in the gateway.
    let second = send(b);
    let end = Instant::now() + DEADLINE;
    while env.gateway.waiting_for_budget() == 0 {
        assert!(Instant::now() < end, "B never waited");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        env.provider.holds().state().reached.get("h"),
        Some(&1),
        "B has not reached the provider"
    );
    env.provider.release("h");
    assert_eq!(first.await.unwrap().0, 200);
    assert_eq!(second.await.unwrap().0, 200, "admitted once A settled");
    assert_eq!(env.provider.log().len(), 2);
    assert!(
        env.ledger.task_events("b").is_empty(),
        "neither refused nor busy"
    );
    assert_eq!(env.gateway.waiting_for_budget(), 0);
}

#[tokio::test]
async fn an_attempt_that_timed_out_and_was_retried_is_charged_its_worst_case() {
    // The provider may have run an attempt that gave no headers in time: the retry does not
    // make it free.
    let env = start_with(HELD, |c| c.ttfb_timeout = Duration::from_millis(500)).await;
    let body = anthropic_body("test-model", "x", 0, false);
    let token = env.gateway.grant(TaskGrant {
        limits: Limits {
            task_usd: Some(1.0),
            ..Limits::default()
        },
        ..TaskGrant::new("slow")
    });
    let req = {
        let (env_base, token, body) = (env.base.clone(), token.clone(), body.clone());
        tokio::spawn(async move {
            let r = client()
                .post(format!("{env_base}/v1/messages"))
                .header("x-api-key", token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            r.bytes().await.unwrap();
            status
        })
    };
    // The first attempt timed out and a retry reached the provider.
    assert!(env.provider.holds().reached("h", 2, DEADLINE).await);
    env.provider.release("h");
    assert_eq!(req.await.unwrap(), 200);
    // Every retry after a timeout charged the attempt it gave up on.
    let abandoned = env
        .ledger
        .task_events("slow")
        .iter()
        .filter(|e| matches!(e, GatewayEvent::Retry { error, .. } if error.contains("TTFB")))
        .count();
    assert!(abandoned >= 1);
    let recs = records(&env, "slow", abandoned + 1).await;
    let w = worst(&body, 1024, 3.75, 15.0);
    let unsettled: Vec<_> = recs
        .iter()
        .filter(|r| r.outcome == ResponseOutcome::Unsettled)
        .collect();
    assert_eq!(unsettled.len(), abandoned, "{recs:?}");
    assert!(unsettled
        .iter()
        .all(|r| (r.cost_usd.unwrap() - w).abs() < 1e-12));
    assert_eq!(
        recs.iter()
            .filter(|r| r.outcome == ResponseOutcome::Complete)
            .count(),
        1
    );
}
