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

/// The worst case the gateway reserves for `body` on test-model ($3.75/M dearest input rate,
/// $15/M output): about 4 body bytes per prompt token, plus `max_tokens` of output.
fn worst_case(body: &Value) -> f64 {
    let bytes = serde_json::to_vec(body).unwrap().len() as f64;
    let max_tokens = body["max_tokens"].as_f64().unwrap();
    ((bytes / 4.0).ceil() * 3.75 + max_tokens * 15.0) / 1e6
}

fn refusals(env: &Env, task: &str) -> Vec<(BudgetKind, f64, f64, f64, Option<f64>)> {
    env.ledger
        .task_events(task)
        .into_iter()
        .filter_map(|e| match e {
            GatewayEvent::BudgetRefused {
                budget,
                limit,
                spent,
                reserved,
                request,
            } => Some((budget, limit, spent, reserved, request)),
            _ => None,
        })
        .collect()
}

fn spent_usd(env: &Env, task: &str) -> f64 {
    env.ledger
        .task_records(task)
        .iter()
        .map(|r| r.cost_usd.unwrap())
        .sum()
}

#[tokio::test]
async fn max_usd_stops_a_runaway_agent_without_overshoot() {
    let env = start(SET).await;
    let limit = 0.05;
    let token = env.gateway.grant(TaskGrant {
        limits: Limits {
            task_usd: Some(limit),
            ..Limits::default()
        },
        ..TaskGrant::new("run")
    });
    let (served, refusal) = run_forever(&env, &token, true).await;
    assert_eq!(refusal.status(), 402);
    assert_eq!(refusal.headers()["x-should-retry"], "false");
    let v: Value = refusal.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "billing_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("drover budget"));
    // A request is forwarded only if its worst case fits: never a cent past the limit, and it
    // stopped only when the next request's worst case no longer fitted.
    let spent = spent_usd(&env, "run");
    assert!(served >= 2, "served {served}");
    assert!(spent <= limit, "overshoot: spent {spent} of {limit}");
    let next = worst_case(&anthropic_body("test-model", "go", served, true));
    assert!(spent + next > limit, "refused too early: {spent} + {next}");
    assert!((served as f64 * TURN_USD - spent).abs() < 1e-12);
    assert_eq!(
        env.provider.log().len(),
        served,
        "the refused request never reached the provider"
    );
    let r = refusals(&env, "run");
    assert_eq!(r.len(), 1, "{r:?}");
    let (budget, l, s, reserved, request) = r[0];
    assert_eq!(budget, BudgetKind::TaskUsd);
    assert_eq!((l, reserved), (limit, 0.0));
    assert!((s - spent).abs() < 1e-12);
    assert!((request.unwrap() - next).abs() < 1e-12);
    assert_eq!(env.gateway.reservations_in_flight(), 0);
}

// The first request is held at the provider (until the test releases "h") while the others
// are checked.
const HELD: &str = r#"{"scenarios": [
  {"name": "default", "turns": [{"content": [{"type": "tool_use", "name": "Bash", "input": {"command": "echo tick"}}],
    "usage": {"input": 1000, "output": 100}, "hold": "h", "repeat": true}]}
]}"#;

#[tokio::test]
async fn concurrent_requests_reserve_their_worst_case_one_of_four_passes() {
    // Refused at once, without waiting for the held request to settle.
    let env = start_with(HELD, |c| c.busy_wait = std::time::Duration::ZERO).await;
    let body = anthropic_body("test-model", "p", 0, true);
    let worst = worst_case(&body);
    // The budget covers one request's worst case, not two (nor a second one lowered to the
    // 1,024-token minimum: that is the request's own cap here).
    let limit = worst * 1.5;
    let token = env.gateway.grant(TaskGrant {
        limits: Limits {
            task_usd: Some(limit),
            ..Limits::default()
        },
        ..TaskGrant::new("par")
    });
    let first = {
        let (base, token, body) = (env.base.clone(), token.clone(), body.clone());
        tokio::spawn(async move {
            let r = client()
                .post(format!("{base}/v1/messages"))
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
    assert!(
        env.provider
            .holds()
            .reached("h", 1, std::time::Duration::from_secs(20))
            .await,
        "the first request is at the provider"
    );
    let reqs = (0..3).map(|_| {
        let (env, token, body) = (&env, token.clone(), body.clone());
        async move {
            let r = post_anthropic(env, &token, &body).await;
            let status = r.status().as_u16();
            let retry = r.headers()["x-should-retry"].to_str().unwrap().to_string();
            r.bytes().await.unwrap();
            (status, retry)
        }
    });
    // Refused while the first is in flight: nothing was spent, so they may retry (429), and
    // the task is not stopped.
    let others = futures::future::join_all(reqs).await;
    assert_eq!(others, vec![(429, "true".to_string()); 3]);
    env.provider.release("h");
    assert_eq!(first.await.unwrap(), 200);
    assert_eq!(env.provider.log().len(), 1, "exactly one request forwarded");
    // The three were refused by the first one's reservation (it was still in flight).
    let busy: Vec<_> = env
        .ledger
        .task_events("par")
        .into_iter()
        .filter_map(|e| match e {
            GatewayEvent::BudgetBusy {
                budget,
                spent,
                reserved,
                request,
                ..
            } => Some((budget, spent, reserved, request)),
            _ => None,
        })
        .collect();
    assert_eq!(busy.len(), 3, "{busy:?}");
    assert!(
        refusals(&env, "par").is_empty(),
        "no refusal stops the task"
    );
    for (budget, spent, reserved, request) in busy {
        assert_eq!(budget, BudgetKind::TaskUsd);
        assert_eq!(spent, 0.0);
        assert!((reserved - worst).abs() < 1e-12, "reserved {reserved}");
        assert!((request.unwrap() - worst).abs() < 1e-12);
    }
    // Settled to the metered figure, reservation released.
    assert_eq!(env.gateway.reservations_in_flight(), 0);
    assert!((spent_usd(&env, "par") - TURN_USD).abs() < 1e-12);
}

#[tokio::test]
async fn a_model_without_a_price_is_refused_under_any_dollar_budget_and_allowed_without() {
    let env = start(SET).await;
    let budgets = [
        (
            BudgetKind::TaskUsd,
            Limits {
                task_usd: Some(100.0),
                ..Limits::default()
            },
        ),
        (
            BudgetKind::PoolUsd,
            Limits {
                pool_usd: Some(100.0),
                ..Limits::default()
            },
        ),
        (
            BudgetKind::TeamUsdPerDay,
            Limits {
                team_usd_per_day: Some(100.0),
                ..Limits::default()
            },
        ),
    ];
    for (kind, limits) in budgets {
        let id = format!("np-{kind:?}");
        let t = env.gateway.grant(TaskGrant {
            pool: Some("p".into()),
            team: Some("t".into()),
            limits,
            ..TaskGrant::new(id.clone())
        });
        let r = post_anthropic(&env, &t, &anthropic_body("mystery-model", "x", 0, true)).await;
        assert_eq!(r.status(), 402);
        assert_eq!(r.headers()["x-should-retry"], "false");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], "billing_error");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("no price for model \"mystery-model\""),
            "{msg}"
        );
        assert!(msg.contains(r#"gateway.prices."mystery-model""#), "{msg}");
        assert_eq!(
            env.ledger.task_events(&id),
            vec![GatewayEvent::NoPrice {
                model: "mystery-model".into(),
                budget: kind
            }]
        );
        // OpenAI's shape for the same refusal.
        let r = post_openai(
            &env,
            "chat/completions",
            &t,
            &json!({"model": "gpt-mystery", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
        assert_eq!(r.status(), 429);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "insufficient_quota");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains(r#"gateway.prices."gpt-mystery""#));
    }
    assert!(
        env.provider.log().is_empty(),
        "nothing reached the provider"
    );
    // A token budget alone does not need prices; no budget at all: allowed, cost null.
    for limits in [
        Limits {
            task_tokens: Some(1_000_000),
            ..Limits::default()
        },
        Limits::default(),
    ] {
        let t = env.gateway.grant(TaskGrant {
            limits,
            ..TaskGrant::new("free")
        });
        let r = post_anthropic(&env, &t, &anthropic_body("mystery-model", "x", 0, false)).await;
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    let recs = env.ledger.task_records("free");
    assert_eq!(recs.len(), 2);
    assert!(recs.iter().all(|r| r.cost_usd.is_none()));
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
    // 1100 tokens a request, and each may use its 1024 max_tokens: the second cannot fit.
    let (served, _) = run_forever(&env, &t1, false).await;
    assert_eq!(served, 1);
    let r = refusals(&env, "tok");
    assert_eq!(r[0].0, BudgetKind::TaskTokens);
    assert_eq!(r[0].2, 1100.0);
    assert!(r[0].2 + r[0].4.unwrap() > 2000.0);
    // Pool budget shared by two tasks of the same pool.
    let limit = 0.04;
    let pool = |id: &str| TaskGrant {
        pool: Some("ci".into()),
        team: Some("core".into()),
        limits: Limits {
            pool_usd: Some(limit),
            ..Limits::default()
        },
        ..TaskGrant::new(id)
    };
    let a = env.gateway.grant(pool("a"));
    let b = env.gateway.grant(pool("b"));
    assert!(run_forever(&env, &a, true).await.0 >= 1);
    assert_eq!(run_forever(&env, &b, true).await.0, 0);
    let spent = ledger.spent(&pool("b")).await.unwrap();
    assert!(spent.pool_usd <= limit && spent.team_usd_today == spent.pool_usd);
    let r = refusals(&env, "b");
    assert_eq!(r[0].0, BudgetKind::PoolUsd);
    assert!(r[0].2 + r[0].4.unwrap() > limit);
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
            request: None,
            ..
        }]
    ));
}

#[tokio::test]
async fn without_max_tokens_one_request_at_a_time_and_at_most_one_past_the_budget() {
    let env = start(SET).await;
    let limit = 0.01;
    let t = env.gateway.grant(TaskGrant {
        limits: Limits {
            task_usd: Some(limit),
            ..Limits::default()
        },
        ..TaskGrant::new("open")
    });
    // Responses requests without max_output_tokens: each costs 1000 in + 100 out on gpt-test.
    let per = (1000.0 * 2.0 + 100.0 * 8.0) / 1e6;
    let mut served = 0;
    for _ in 0..100 {
        let body = json!({"model": "gpt-test", "input": "x",
            "tools": [{"type": "function", "name": "Bash", "parameters": {"type": "object"}}]});
        let r = post_openai(&env, "responses", &t, &body).await;
        if r.status() != 200 {
            break;
        }
        r.bytes().await.unwrap();
        served += 1;
    }
    let spent = spent_usd(&env, "open");
    assert!(spent >= limit && spent < limit + per, "spent {spent}");
    assert_eq!(env.provider.log().len(), served);
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
    // The provider got the task's own key, not the drover token.
    let keys: Vec<_> = env.provider.log().into_iter().map(|r| r.api_key).collect();
    assert_eq!(keys, vec![Some("sk-task-key-999".to_string())]);
    let events = serde_json::to_string(&env.ledger.events()).unwrap();
    let records = serde_json::to_string(&env.ledger.records()).unwrap();
    assert!(!events.contains("sk-") && !records.contains("sk-"));
}

#[tokio::test]
async fn the_provider_gets_the_real_key_never_the_task_token() {
    let env = start(SET).await;
    let t = env.gateway.grant(TaskGrant::new("keys"));
    assert!(t.starts_with("drv-"));
    let r = post_anthropic(&env, &t, &anthropic_body("test-model", "x", 0, true)).await;
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    for path in ["chat/completions", "responses"] {
        let body = if path == "responses" {
            json!({"model": "gpt-test", "input": "x"})
        } else {
            json!({"model": "gpt-test", "messages": [{"role": "user", "content": "x"}]})
        };
        let r = post_openai(&env, path, &t, &body).await;
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    let log = env.provider.log();
    assert_eq!(log.len(), 3);
    for rec in log {
        assert_eq!(rec.api_key.as_deref(), Some(REAL_KEY), "{}", rec.path);
    }
}
