//! Budgets, model policy, and keys: refusals in the provider's format, the in-flight bound.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;

use common::*;
use drover_gateway::{BudgetKind, GatewayConfig, GatewayEvent, Ledger, Limits, Secret, TaskGrant};
use serde_json::{json, Value};

// Every turn: 1000 input + 100 output on test-model = $0.0045.
const SET: &str = r#"{"scenarios": [
  {"name": "default", "turns": [{"content": [{"type": "tool_use", "name": "Bash", "input": {"command": "echo tick"}}],
    "usage": {"input": 1000, "output": 100}, "repeat": true}]}
]}"#;
const TURN_USD: f64 = 0.0045;

/// A scripted agent that never stops: one request after another until refused.
async fn run_forever(env: &Env, token: &str, stream: bool) -> (usize, reqwest::Response) {
    for turn in 0..100 {
        let r = post_anthropic(
            env,
            token,
            &anthropic_body("test-model", "go", turn, stream),
        )
        .await;
        if r.status() != 200 {
            return (turn, r);
        }
        r.bytes().await.unwrap();
    }
    panic!("never refused");
}

#[tokio::test]
async fn max_usd_stops_a_runaway_agent_at_most_one_request_past_the_budget() {
    let env = start(SET).await;
    let limit = 0.01; // crossed by the third request
    let token = env.gateway.grant(TaskGrant {
        limits: Limits {
            task_usd: Some(limit),
            ..Limits::default()
        },
        ..TaskGrant::new("run")
    });
    let (served, refusal) = run_forever(&env, &token, true).await;
    assert_eq!(served, 3);
    assert_eq!(refusal.status(), 402);
    assert_eq!(refusal.headers()["x-should-retry"], "false");
    let v: Value = refusal.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "billing_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("drover budget"));
    let spent: f64 = env
        .ledger
        .task_records("run")
        .iter()
        .map(|r| r.cost_usd.unwrap())
        .sum();
    assert!(
        spent >= limit && spent - limit < TURN_USD,
        "overshoot {spent} is at most one request"
    );
    assert_eq!(
        env.provider.log().len(),
        3,
        "the refused request never reached the provider"
    );
    let ev = env.ledger.task_events("run");
    assert!(
        matches!(
            &ev[..],
            [GatewayEvent::BudgetRefused {
                budget: BudgetKind::TaskUsd,
                ..
            }]
        ),
        "{ev:?}"
    );
}

#[tokio::test]
async fn in_flight_requests_bound_the_overshoot() {
    let env = start(SET).await;
    let token = env.gateway.grant(TaskGrant {
        limits: Limits {
            task_usd: Some(0.001),
            ..Limits::default()
        },
        ..TaskGrant::new("par")
    });
    // Four requests in flight at once, all checked before any spent anything: all served.
    let reqs = (0..4).map(|i| {
        let body = anthropic_body("test-model", &format!("p{i}"), 0, true);
        let (env, token) = (&env, token.clone());
        async move {
            post_anthropic(env, &token, &body)
                .await
                .bytes()
                .await
                .unwrap()
        }
    });
    futures::future::join_all(reqs).await;
    let served = env.ledger.task_records("par").len();
    assert!((1..=4).contains(&served));
    // Once they are recorded, the next one is refused.
    let r = post_anthropic(
        &env,
        &token,
        &anthropic_body("test-model", "next", 0, false),
    )
    .await;
    assert_eq!(r.status(), 402);
}

#[tokio::test]
async fn token_pool_and_team_budgets_and_openai_refusal_shape() {
    let env = start(SET).await;
    let ledger: &dyn Ledger = env.ledger.as_ref();
    let t1 = env.gateway.grant(TaskGrant {
        limits: Limits {
            task_tokens: Some(2000),
            ..Limits::default()
        },
        ..TaskGrant::new("tok")
    });
    let (served, _) = run_forever(&env, &t1, false).await;
    assert_eq!(served, 2, "1100 tokens per request, limit 2000");
    // Pool budget shared by two tasks of the same pool.
    let pool = |id: &str| TaskGrant {
        pool: Some("ci".into()),
        team: Some("core".into()),
        limits: Limits {
            pool_usd: Some(0.005),
            ..Limits::default()
        },
        ..TaskGrant::new(id)
    };
    let a = env.gateway.grant(pool("a"));
    let b = env.gateway.grant(pool("b"));
    assert_eq!(run_forever(&env, &a, true).await.0, 2);
    assert_eq!(run_forever(&env, &b, true).await.0, 0);
    let spent = ledger.spent(&pool("b")).await;
    assert!(spent.pool_usd >= 0.005 && spent.team_usd_today >= 0.005);
    // Team per-day budget, OpenAI format: 429 insufficient_quota, not retryable.
    let c = env.gateway.grant(TaskGrant {
        team: Some("core".into()),
        limits: Limits {
            team_usd_per_day: Some(0.001),
            ..Limits::default()
        },
        ..TaskGrant::new("c")
    });
    let r = post_openai(
        &env,
        "responses",
        &c,
        &json!({"model": "gpt-test", "input": "x"}),
    )
    .await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["x-should-retry"], "false");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "insufficient_quota");
    assert!(matches!(
        env.ledger.task_events("c")[..],
        [GatewayEvent::BudgetRefused {
            budget: BudgetKind::TeamUsdPerDay,
            ..
        }]
    ));
}

#[tokio::test]
async fn aliases_and_allowed_models() {
    let env = start_with(SET, |c| {
        c.aliases.insert("worker".into(), "test-model".into());
    })
    .await;
    let t = env.gateway.grant(TaskGrant {
        allowed_models: Some(vec!["test-model".into()]),
        aliases: HashMap::from([("boss".to_string(), "claude-opus-5".to_string())]),
        ..TaskGrant::new("m")
    });
    let r = post_anthropic(&env, &t, &anthropic_body("worker", "x", 0, false)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        env.provider.log()[0].model.as_deref(),
        Some("test-model"),
        "alias rewritten upstream"
    );
    assert_eq!(env.ledger.task_records("m")[0].model, "test-model");
    for model in ["boss", "claude-sonnet-5"] {
        let r = post_anthropic(&env, &t, &anthropic_body(model, "x", 0, false)).await;
        assert_eq!(r.status(), 403);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], "permission_error");
    }
    assert_eq!(env.provider.log().len(), 1);
    let refused: Vec<_> = env
        .ledger
        .task_events("m")
        .into_iter()
        .filter(|e| matches!(e, GatewayEvent::ModelRefused { .. }))
        .collect();
    assert_eq!(
        refused,
        vec![
            GatewayEvent::ModelRefused {
                model: "claude-opus-5".into()
            },
            GatewayEvent::ModelRefused {
                model: "claude-sonnet-5".into()
            },
        ]
    );
}

#[tokio::test]
async fn keys_are_redacted_and_a_task_key_overrides() {
    let cfg = GatewayConfig {
        anthropic_key: Some(Secret::new(REAL_KEY)),
        openai_key: Some(Secret::new(REAL_KEY)),
        ..GatewayConfig::default()
    };
    let grant = TaskGrant {
        key_override: Some(Secret::new("sk-task-key-999")),
        ..TaskGrant::new("k")
    };
    for text in [
        format!("{cfg:?}"),
        format!("{grant:?}"),
        format!("{}", Secret::new(REAL_KEY)),
    ] {
        assert!(
            !text.contains(REAL_KEY) && !text.contains("sk-task-key-999"),
            "{text}"
        );
    }
    // No key configured at all: 401, nothing sent upstream.
    let env = start_with(SET, |c| c.anthropic_key = None).await;
    let t = env.gateway.grant(TaskGrant::new("nokey"));
    let r = post_anthropic(&env, &t, &anthropic_body("test-model", "x", 0, false)).await;
    assert_eq!(r.status(), 401);
    assert!(env.provider.log().is_empty());
    let t = env.gateway.grant(grant);
    let r = post_anthropic(&env, &t, &anthropic_body("test-model", "x", 0, false)).await;
    assert_eq!(r.status(), 200);
    let events = serde_json::to_string(&env.ledger.events()).unwrap();
    let records = serde_json::to_string(&env.ledger.records()).unwrap();
    assert!(!events.contains("sk-") && !records.contains("sk-"));
}
