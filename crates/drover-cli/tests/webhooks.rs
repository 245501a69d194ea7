//! Webhooks (docs/design.md §7): a team's URL gets a signed POST when one of its tasks ends,
//! retried until the receiver answers 2xx, and never repeated once delivered — across a daemon
//! restart too. The receiver is a small axum server in the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use hmac::{Hmac, Mac};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug)]
struct Hit {
    event: String,
    delivery: String,
    signature: String,
    content_type: String,
    body: Vec<u8>,
}

/// A receiver on 127.0.0.1 that records every request and answers 500 to the first attempt
/// of each delivery, 200 to the next ones.
struct Receiver {
    url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let seen = hits.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                let app = axum::Router::new().route(
                    "/hook",
                    axum::routing::post(
                        move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                            let seen = seen.clone();
                            async move {
                                let h = |k: &str| {
                                    headers
                                        .get(k)
                                        .and_then(|v| v.to_str().ok())
                                        .unwrap_or("")
                                        .to_string()
                                };
                                let hit = Hit {
                                    event: h("drover-event"),
                                    delivery: h("drover-delivery"),
                                    signature: h("drover-signature"),
                                    content_type: h("content-type"),
                                    body: body.to_vec(),
                                };
                                let mut all = seen.lock().unwrap();
                                let first = !all.iter().any(|x| x.delivery == hit.delivery);
                                all.push(hit);
                                if first {
                                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                                } else {
                                    axum::http::StatusCode::OK
                                }
                            }
                        },
                    ),
                );
                axum::serve(listener, app).await.unwrap();
            });
        });
        let addr = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Receiver {
            url: format!("http://{addr}/hook"),
            hits,
        }
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// The attempts that carried `task`'s id.
    fn of_task(&self, task: &str) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| serde_json::from_slice::<Value>(&h.body).unwrap()["task"]["id"] == task)
            .collect()
    }
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Waits until `task` has had `n` attempts (the second of one delivery is the 200).
fn until_attempts(r: &Receiver, task: &str, n: usize) -> Vec<Hit> {
    drover_test_support::poll::some(
        &format!("{n} webhook attempts for {task}"),
        Duration::from_secs(60),
        Duration::from_millis(50),
        || {
            let hits = r.of_task(task);
            (hits.len() >= n).then_some(hits)
        },
    )
}

/// The task's one outbox row once it is marked delivered (read from the store's file).
fn outbox_delivered(env: &Env, task: &str) -> drover_store::WebhookDelivery {
    use drover_store::WebhookStore;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = rt
        .block_on(drover_store::SqliteStore::open(&env.home.join("drover.db")))
        .unwrap();
    drover_test_support::poll::some(
        "the delivery recorded as delivered",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            let rows = rt.block_on(store.webhooks_of(task)).unwrap();
            assert!(rows.len() <= 1, "{rows:#?}");
            rows.into_iter().find(|d| d.delivered_at.is_some())
        },
    )
}

#[test]
fn a_finished_task_is_delivered_signed_retried_once_and_never_repeated() {
    let r = Receiver::start();
    let env = Env::new();
    env.ok(&["team", "create", "hooks", "--webhook-url", &r.url]);
    env.ok(&["team", "create", "quiet"]);
    let secret = env.ok(&["team", "webhook-secret", "hooks"]);
    let long_prompt = format!("finish {}", "p".repeat(2000));
    let id = env.ok(&[
        "run",
        "--agent",
        "command",
        "--cmd",
        "echo done",
        "--team",
        "hooks",
        &long_prompt,
    ]);
    // A task of a team without a webhook, and one of no team: nothing is sent for them.
    let quiet = env.ok(&[
        "run", "--agent", "command", "--cmd", "true", "--team", "quiet", "q",
    ]);
    let none = env.ok(&["run", "--agent", "command", "--cmd", "true", "n"]);
    assert_eq!(env.wait(&id)["state"], "succeeded");
    env.wait(&quiet);
    env.wait(&none);

    // Attempt 1 got a 500, attempt 2 (after the 1 s backoff) a 200.
    let hits = until_attempts(&r, &id, 2);
    assert_eq!(hits.len(), 2, "{hits:#?}");
    assert_eq!(
        hits[0].delivery, hits[1].delivery,
        "a retry is the same delivery"
    );
    assert_eq!(hits[0].body, hits[1].body, "a retry sends the same body");
    for h in &hits {
        assert_eq!(h.event, "task.finished");
        assert_eq!(h.content_type, "application/json");
        assert_eq!(h.signature, sign(&secret, &h.body), "bad signature");
        // A receiver with a wrong secret (another team's) rejects it.
        let other = env.ok(&["team", "webhook-secret", "quiet"]);
        assert_ne!(h.signature, sign(&other, &h.body));
        let body = String::from_utf8(h.body.clone()).unwrap();
        assert!(!body.contains(&secret[6..]), "the secret is in the body");
    }
    let v: Value = serde_json::from_slice(&hits[1].body).unwrap();
    assert_eq!(v["event"], "task.finished");
    assert_eq!(v["delivery"], hits[1].delivery.as_str());
    assert!(v["at"].is_string());
    assert_eq!(v["task"]["id"], id.as_str());
    assert_eq!(v["task"]["state"], "succeeded");
    assert_eq!(v["task"]["team"], "hooks");
    assert_eq!(v["task"]["result"], "done");
    // The prompt is cut like a list summary's.
    let prompt = v["task"]["prompt"].as_str().unwrap();
    assert!(
        prompt.chars().count() <= 501 && prompt.ends_with('…'),
        "{prompt}"
    );

    // The outbox records it: two attempts, the last a 200, delivered.
    let d = outbox_delivered(&env, &id);
    assert_eq!((d.attempts, d.last_status), (2, Some(200)), "{d:?}");
    assert_eq!(d.event, "task.finished");

    // A restart neither loses nor repeats a delivery: the next task's delivery arrives, and
    // the first task's count stays at two attempts.
    env.ok(&["daemon", "stop"]);
    let next = env.ok(&[
        "run", "--agent", "command", "--cmd", "true", "--team", "hooks", "again",
    ]);
    env.wait(&next);
    until_attempts(&r, &next, 2);
    assert_eq!(
        r.of_task(&id).len(),
        2,
        "a delivered webhook was sent again"
    );
    assert!(r.of_task(&quiet).is_empty() && r.of_task(&none).is_empty());
    let deliveries: std::collections::HashSet<String> =
        r.hits().into_iter().map(|h| h.delivery).collect();
    assert_eq!(deliveries.len(), 2, "one delivery per task end");
}

/// A command Claude Code asks permission for (as in tests/claude.rs).
const PERM_CMD: &str = "python3 -c \"open('perm.txt','w').write('allowed\\n')\"";

#[test]
fn entering_needs_input_is_delivered_then_the_end() {
    let provider = Provider::start(serde_json::json!({ "scenarios": [
        { "name": "perm", "match": "NEEDS-BASH", "turns": [
            { "content": [ {"type": "tool_use", "name": "Bash",
                            "input": {"command": PERM_CMD, "description": "write a file"}} ] },
            { "content": [ {"type": "text", "text": "bash ran"} ] } ] },
        { "name": "default", "turns": [ { "content": [ {"type": "text", "text": "hello"} ] } ] }
    ]}));
    let r = Receiver::start();
    let env = Env::claude(&provider);
    env.ok(&["team", "create", "hooks", "--webhook-url", &r.url]);
    let secret = env.ok(&["team", "webhook-secret", "hooks"]);
    let id = env.ok(&["run", "--team", "hooks", "NEEDS-BASH: run a command"]);
    env.until(&id, "needs_input", |t| t["state"] == "needs_input");
    let hits = until_attempts(&r, &id, 2);
    assert!(
        hits.iter().all(|h| h.event == "task.needs_input"),
        "{hits:#?}"
    );
    let v: Value = serde_json::from_slice(&hits[1].body).unwrap();
    assert_eq!(v["event"], "task.needs_input");
    assert_eq!(hits[1].signature, sign(&secret, &hits[1].body));
    env.ok(&["send", &id, "--allow"]);
    assert_eq!(env.wait(&id)["state"], "succeeded");
    let hits = until_attempts(&r, &id, 4);
    let events: Vec<&str> = hits.iter().map(|h| h.event.as_str()).collect();
    assert_eq!(
        events,
        [
            "task.needs_input",
            "task.needs_input",
            "task.finished",
            "task.finished"
        ]
    );
    for h in &hits {
        assert_eq!(h.signature, sign(&secret, &h.body));
    }
}
