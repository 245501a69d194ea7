//! A request whose worst case does not fit its budget is forwarded with the output cap the
//! budget still affords (down to MIN_OUTPUT), and refused below that.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use drover_gateway::{BudgetKind, GatewayEvent, Limits, TaskGrant, MIN_OUTPUT};
use serde_json::{json, Value};

// Every turn: 1000 input + 100 output on test-model ($3/M in, $15/M out) = $0.0045.
const SET: &str = r#"{"scenarios": [
  {"name": "default", "turns": [{"content": [{"type": "tool_use", "name": "Bash", "input": {"command": "echo tick"}}],
    "usage": {"input": 1000, "output": 100}, "repeat": true}]}
]}"#;

/// Claude Code's shape: a 128k output cap and a thinking budget.
fn big_body(turn: usize) -> Value {
    let mut b = anthropic_body("test-model", "go", turn, true);
    b["max_tokens"] = json!(128_000);
    b["thinking"] = json!({"type": "enabled", "budget_tokens": 31_999});
    b
}

fn prompt_tokens(body: &Value) -> u64 {
    (serde_json::to_vec(body).unwrap().len() as u64).div_ceil(4)
}

#[tokio::test]
async fn a_small_dollar_budget_lowers_max_tokens_and_thinking_instead_of_refusing() {
    let env = start(SET).await;
    let limit = 0.05;
    let token = env.gateway.grant(TaskGrant {
        limits: Limits {
            task_usd: Some(limit),
            ..Limits::default()
        },
        ..TaskGrant::new("small")
    });
    let mut spent = 0.0;
    let mut served = 0;
    let refused = loop {
        let body = big_body(served);
        let r = post_anthropic(&env, &token, &body).await;
        if r.status() != 200 {
            break (r, body);
        }
        r.bytes().await.unwrap();
        let fwd = env.provider.log().last().cloned().unwrap();
        let granted = fwd.max_tokens.unwrap();
        // What was left after the turns before, for this prompt at the dearest input rate.
        let room = limit - spent - prompt_tokens(&body) as f64 * 3.75e-6;
        let affordable = (room / 15e-6).floor() as u64;
        assert!(
            granted <= affordable && granted + 1 >= affordable,
            "turn {served}: forwarded max_tokens {granted}, affordable {affordable}"
        );
        assert!(granted >= MIN_OUTPUT);
        match fwd.thinking_budget {
            Some(t) => assert_eq!(t, granted / 2, "thinking halved"),
            None => assert!(granted / 2 < 1024, "thinking dropped only under 1,024"),
        }
        spent += 0.0045;
        served += 1;
        assert!(served < 100, "never refused");
    };
    // The first request's cap left room for thinking; the later ones dropped it.
    let log = env.provider.log();
    assert!(log[0].thinking_budget.is_some());
    assert!(log.last().unwrap().thinking_budget.is_none());
    assert!(served >= 5, "served {served}");
    // Refused once the prompt plus MIN_OUTPUT no longer fit; nothing over the limit.
    assert_eq!(refused.0.status(), 402);
    let room = limit - spent - prompt_tokens(&refused.1) as f64 * 3.75e-6;
    assert!(room < MIN_OUTPUT as f64 * 15e-6, "refused with room {room}");
    let recorded: f64 = env
        .ledger
        .task_records("small")
        .iter()
        .map(|r| r.cost_usd.unwrap())
        .sum();
    assert!(recorded <= limit, "overshoot: {recorded} of {limit}");
    assert_eq!(log.len(), served);
    let capped: Vec<_> = env
        .ledger
        .task_events("small")
        .into_iter()
        .filter_map(|e| match e {
            GatewayEvent::OutputCapped {
                requested,
                granted,
                budget,
                ..
            } => Some((requested, granted, budget)),
            _ => None,
        })
        .collect();
    assert_eq!(capped.len(), served);
    for ((requested, granted, budget), fwd) in capped.iter().zip(&log) {
        assert_eq!((*requested, *budget), (128_000, BudgetKind::TaskUsd));
        assert_eq!(Some(*granted), fwd.max_tokens);
    }
    assert_eq!(env.gateway.reservations_in_flight(), 0);
}

#[tokio::test]
async fn a_token_budget_lowers_max_completion_tokens() {
    let env = start(SET).await;
    let limit = 20_000;
    let token = env.gateway.grant(TaskGrant {
        limits: Limits {
            task_tokens: Some(limit),
            ..Limits::default()
        },
        ..TaskGrant::new("tok")
    });
    let body = json!({"model": "gpt-test", "max_completion_tokens": 64_000,
        "messages": [{"role": "user", "content": "go"}],
        "tools": [{"type": "function", "function": {"name": "Bash", "parameters": {"type": "object"}}}]});
    let r = post_openai(&env, "chat/completions", &token, &body).await;
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    // The fake provider records the cap from whichever field carried it.
    let fwd = env.provider.log();
    assert_eq!(fwd.len(), 1);
    assert_eq!(fwd[0].max_tokens, Some(limit - prompt_tokens(&body)));
    // The same request after 1,100 tokens were spent: lowered again, by what was spent.
    let r = post_openai(&env, "chat/completions", &token, &body).await;
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    assert_eq!(
        env.provider.log()[1].max_tokens,
        Some(limit - 1100 - prompt_tokens(&body))
    );
}

#[tokio::test]
async fn below_min_output_the_request_is_refused_as_before() {
    let env = start(SET).await;
    let body = big_body(0);
    // Room for the prompt and MIN_OUTPUT - 1 output tokens only.
    let limit = prompt_tokens(&body) as f64 * 3.75e-6 + (MIN_OUTPUT - 1) as f64 * 15e-6;
    let token = env.gateway.grant(TaskGrant {
        limits: Limits {
            task_usd: Some(limit),
            ..Limits::default()
        },
        ..TaskGrant::new("tiny")
    });
    let r = post_anthropic(&env, &token, &body).await;
    assert_eq!(r.status(), 402);
    assert!(env.provider.log().is_empty());
    assert!(env
        .ledger
        .task_events("tiny")
        .iter()
        .all(|e| !matches!(e, GatewayEvent::OutputCapped { .. })));
}
