//! Fuzzing the JSON routes (issue "Bad input"): arbitrary JSON values, arbitrary bytes and
//! mutated valid bodies against an in-process daemon over its socket. Every answer is a 2xx, or
//! a 4xx whose body is `{kind, error, hint}`; never a 5xx, never a dropped connection; and the
//! daemon still answers afterwards. Prints `FUZZ: N cases, 0 panics`.
//!
//! Harmless by construction: bodies that could create a task or a pool name a repo that does not
//! resolve; the daemon's working directory is an empty directory (so a relative `repo` resolves
//! to nothing either); the one valid task body that runs is a `command` agent's `true`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use drover_test_support::daemon::InProcessDaemon;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// Field names of every JSON route, so fuzzed objects often hit real fields.
const FIELDS: &[&str] = &[
    "repo",
    "task",
    "prompt",
    "model",
    "team",
    "agent",
    "ref",
    "base_ref",
    "verify",
    "protect",
    "timeout",
    "timeout_secs",
    "stall_timeout",
    "stall_timeout_secs",
    "budget",
    "maxUsd",
    "maxTokens",
    "max_usd",
    "max_tokens",
    "tags",
    "name",
    "cmd",
    "verify_rounds",
    "judge_model",
    "permissions",
    "memory_bytes",
    "cpus",
    "pids",
    "created_by",
    "api_key",
    "message",
    "allow",
    "deny",
    "slots",
    "count",
    "on_failures",
    "allowed_models",
    "notify",
    "scopes",
    "scope",
    "expires",
    "expires_in",
    "overlap",
    "overlap_secs",
    "max_usd_per_day",
    "max_usd_per_task",
    "webhook_url",
    "label",
    "hard",
    "stop_tasks",
];

const MISSING_REPO: &str = "/nonexistent/drover-fuzz-repo";

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(FIELDS).prop_map(String::from),
        1 => "[a-zA-Z_]{1,8}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "\\PC{0,12}".prop_map(Value::String),
        key().prop_map(Value::String),
        Just(json!("")),
        Just(json!(-1)),
        Just(json!(0)),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// The JSON routes and a valid body of each (with a repo that does not resolve where a repo
/// is taken).
fn routes(task_id: &str) -> Vec<(String, Value)> {
    vec![
        (
            "/v1/tasks".into(),
            json!({ "repo": MISSING_REPO, "task": "fuzz", "agent": "command", "cmd": "true",
                    "ref": "HEAD", "timeout": "30m", "budget": {"maxUsd": 1.0, "maxTokens": 10},
                    "tags": {"k": "v"}, "name": "fz", "verify": ["true"], "protect": ["a"] }),
        ),
        (
            "/v1/pools".into(),
            json!({ "name": "fz", "slots": 1, "prompt": "fuzz", "repo": MISSING_REPO,
                    "agent": "command", "cmd": "true" }),
        ),
        (
            format!("/v1/tasks/{task_id}/send"),
            json!({ "message": "hi" }),
        ),
        ("/v1/tasks/ffffffff/send".into(), json!({ "allow": true })),
        (
            "/v1/teams".into(),
            json!({ "name": "fz", "max_usd_per_day": 1.0 }),
        ),
        (
            "/v1/keys".into(),
            json!({ "team": "fz", "scopes": ["tasks:read"] }),
        ),
        (
            "/v1/keys/key_000000000000/rotate".into(),
            json!({ "overlap_secs": 60 }),
        ),
        ("/v1/pools/fz/stop".into(), json!({ "hard": true })),
    ]
}

#[derive(Debug, Clone)]
enum Body {
    Json(Value),
    Bytes(Vec<u8>),
}

fn mutate(valid: Value) -> impl Strategy<Value = Value> {
    let fields: Vec<String> = valid.as_object().unwrap().keys().cloned().collect();
    let fields = prop::sample::select(fields);
    (0..4u8, fields, key(), json_value()).prop_map(move |(op, field, new_key, v)| {
        let mut b = valid.clone();
        let obj = b.as_object_mut().unwrap();
        match op {
            0 => {
                obj.insert(field, v);
            }
            1 => {
                obj.remove(&field);
            }
            2 => {
                obj.insert(new_key, v);
            }
            _ => {
                // Inside a nested object (budget, tags) or the field itself.
                match obj.get_mut(&field) {
                    Some(Value::Object(inner)) => {
                        inner.insert(new_key, v);
                    }
                    _ => {
                        obj.insert(field, v);
                    }
                }
            }
        }
        // Whatever the mutation, a body that names a repo names one that does not resolve,
        // and a command stays `true`.
        if obj.contains_key("repo") && obj["repo"].is_string() {
            obj.insert("repo".into(), json!(MISSING_REPO));
        }
        if obj.contains_key("cmd") {
            obj.insert("cmd".into(), json!("true"));
        }
        b
    })
}

/// One request; `None` when the connection was dropped without an answer.
fn request(
    sock: &Path,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<(u16, Vec<u8>)> {
    let mut s = UnixStream::connect(sock).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nhost: drover\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let _ = s.write_all(body);
    let mut raw = vec![];
    let _ = s.read_to_end(&mut raw);
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Some((status, body))
}

fn check(
    sock: &Path,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    seen: &std::cell::RefCell<std::collections::BTreeMap<(String, u16), u32>>,
) -> Result<(), TestCaseError> {
    let Some((status, answer)) = request(sock, path, headers, body) else {
        return Err(TestCaseError::fail(format!(
            "POST {path}: the connection was dropped; body {}",
            String::from_utf8_lossy(body)
        )));
    };
    let text = String::from_utf8_lossy(&answer);
    *seen
        .borrow_mut()
        .entry((path.to_string(), status))
        .or_default() += 1;
    prop_assert!(
        (200..300).contains(&status) || (400..500).contains(&status),
        "POST {path} → {status} {text}; body {}",
        String::from_utf8_lossy(body)
    );
    let v: Value = serde_json::from_slice(&answer).map_err(|e| {
        TestCaseError::fail(format!("POST {path} → {status}: not JSON ({e}): {text}"))
    })?;
    if status >= 400 {
        prop_assert!(v["kind"].is_string(), "POST {path} → {status}: {text}");
        prop_assert!(v["error"].is_string(), "POST {path} → {status}: {text}");
        prop_assert!(v.get("hint").is_some(), "POST {path} → {status}: {text}");
        prop_assert!(!v["error"].as_str().unwrap().contains('\n'), "{text}");
    }
    Ok(())
}

#[test]
fn fuzzed_json_bodies_never_get_a_5xx_or_a_dropped_connection() {
    let env = Env::new();
    let cwd = env.tmp.path().join("empty-cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    // The only test of this binary: the daemon (in this process) resolves relative repos here.
    std::env::set_current_dir(&cwd).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let exe = Path::new(env!("CARGO_BIN_EXE_drover"));
    let daemon = rt.block_on(InProcessDaemon::start(&env.home, exe));
    let sock = daemon.socket();
    // One real task, so `send` reaches a task that exists.
    let id = env.run_command_task("true", "fuzz target");
    env.wait(&id);
    let routes = routes(&id);
    let route_bodies: Vec<BoxedStrategy<(String, Body)>> = routes
        .iter()
        .map(|(path, valid)| {
            let p1 = path.clone();
            let p2 = path.clone();
            let p3 = path.clone();
            prop_oneof![
                3 => mutate(valid.clone()).prop_map(move |b| (p1.clone(), Body::Json(b))),
                2 => json_value().prop_map(move |b| {
                    // A bare value that resolves nothing: any repo in it is replaced.
                    let mut b = b;
                    if let Some(o) = b.as_object_mut() {
                        if o.contains_key("repo") {
                            o.insert("repo".into(), json!(MISSING_REPO));
                        }
                        if o.contains_key("cmd") {
                            o.insert("cmd".into(), json!("true"));
                        }
                    }
                    (p2.clone(), Body::Json(b))
                }),
                1 => prop::collection::vec(any::<u8>(), 0..64)
                    .prop_map(move |b| (p3.clone(), Body::Bytes(b))),
            ]
            .boxed()
        })
        .collect();
    let strategy = (
        prop::sample::select((0..route_bodies.len()).collect::<Vec<_>>()),
        0..1000usize,
    )
        .prop_flat_map(move |(i, _)| route_bodies[i].clone());
    let headers = (
        prop_oneof![
            Just(None),
            "[ -~]{0,20}".prop_map(Some),
            "\\PC{0,8}".prop_map(Some)
        ],
        any::<bool>(),
    );
    let cases = 6000;
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 200,
        ..Config::default()
    });
    let started = Instant::now();
    let tried = std::cell::Cell::new(0u32);
    let seen = std::cell::RefCell::new(std::collections::BTreeMap::new());
    let result = runner.run(&(strategy, headers), |((path, body), (idem, json_type))| {
        tried.set(tried.get() + 1);
        let bytes = match &body {
            Body::Json(v) => v.to_string().into_bytes(),
            Body::Bytes(b) => b.clone(),
        };
        let mut h: Vec<(&str, &str)> = vec![];
        if json_type {
            h.push(("content-type", "application/json"));
        } else {
            h.push(("content-type", "application/json; charset=utf-8"));
        }
        // A header value that is not valid HTTP is the client's own error; send only those
        // hyper could carry (printable ASCII).
        if let Some(k) = idem
            .as_deref()
            .filter(|k| k.bytes().all(|b| (0x20..0x7f).contains(&b)))
        {
            h.push(("idempotency-key", k));
        }
        check(&sock, &path, &h, &bytes, &seen)
    });
    let elapsed = started.elapsed();
    if let Err(e) = result {
        panic!("after {} cases: {e}", tried.get());
    }
    // Still answers.
    let (status, body) = drover_test_support::http::json(&sock, "GET", "/v1/status", "");
    assert_eq!(status, 200, "{body}");
    println!(
        "FUZZ: {} cases, 0 panics ({:.1} s)",
        tried.get(),
        elapsed.as_secs_f64()
    );
    for ((path, status), n) in seen.borrow().iter() {
        println!("  {path} → {status}: {n}");
    }
    // The routes that exist answered with their own checks, not only the router's 404.
    let answered = |p: &str| seen.borrow().keys().any(|(path, s)| path == p && *s != 404);
    assert!(
        answered("/v1/tasks") && answered("/v1/pools"),
        "{:?}",
        seen.borrow()
    );
    assert!(tried.get() >= cases, "ran {} of {cases} cases", tried.get());
    // No fuzzed body started a task: the only one is the test's own.
    let all: Vec<Value> = serde_json::from_str(&env.ok(&["ls", "--all", "--json"])).unwrap();
    assert!(
        all.iter()
            .all(|t| t["id"] == id.as_str() || t["repo"] == MISSING_REPO),
        "{all:?}"
    );
    rt.block_on(daemon.shutdown());
}
