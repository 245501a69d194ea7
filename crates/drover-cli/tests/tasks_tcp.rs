//! Tasks over TCP with team keys (docs/design.md §7): a key's task is its team's and names the
//! key as `created_by`; another team in the body is 403 with nothing created; `Idempotency-Key`
//! is per team (the same key in two teams is two tasks; two keys of one team share it); a key
//! lists only its team's tasks (`team=` of another team: an empty page); another team's event
//! stream is a 404, its own resumes with `Last-Event-ID`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use drover_test_support::keys::{Keys, TestKey};
use drover_test_support::net;
use drover_types::Scope;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::Path;

fn post(addr: SocketAddr, key: &TestKey, body: &Value, extra: &[(&str, &str)]) -> (u16, Value) {
    let auth = format!("Bearer {}", key.secret);
    let mut h = vec![
        ("content-type", "application/json"),
        ("authorization", auth.as_str()),
    ];
    h.extend_from_slice(extra);
    let (s, _, b) = net::request(addr, "POST", "/v1/tasks", &h, body.to_string().as_bytes());
    (s, serde_json::from_slice(&b).unwrap())
}

fn get(addr: SocketAddr, key: &TestKey, path: &str, extra: &[(&str, &str)]) -> (u16, String) {
    let auth = format!("Bearer {}", key.secret);
    let mut h = vec![("authorization", auth.as_str())];
    h.extend_from_slice(extra);
    let (s, _, b) = net::request(addr, "GET", path, &h, b"");
    (s, String::from_utf8_lossy(&b).into_owned())
}

fn ids(addr: SocketAddr, key: &TestKey, path: &str) -> Vec<String> {
    let (s, b) = get(addr, key, path, &[]);
    assert_eq!(s, 200, "{path}: {b}");
    let v: Value = serde_json::from_str(&b).unwrap();
    v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_keys_tasks_are_its_teams_idempotency_is_per_team_and_lists_show_only_its_team() {
    let env = Env::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let exe = Path::new(env!("CARGO_BIN_EXE_drover"));
    let (daemon, addr) = rt.block_on(net::start_listening(&env.home, exe, None));
    let keys = Keys::open(&env.home);
    keys.team("a");
    keys.team("b");
    let a = keys.key("a", &[Scope::TasksWrite, Scope::TasksRead], None);
    let a2 = keys.key("a", &[Scope::TasksWrite, Scope::TasksRead], None);
    let b = keys.key("b", &[Scope::TasksWrite, Scope::TasksRead], None);
    let a_read = keys.key("a", &[Scope::TasksRead], None);
    let body = json!({ "repo": env.repo.display().to_string(), "task": "echo", "agent": "command",
                       "cmd": "for i in $(seq 1 20); do echo l$i; done", "tags": {"customer": "acme"},
                       "created_by": "mallory" });

    // The key's team and the key's id; the body's `created_by` is ignored.
    let (s, t) = post(addr, &a, &body, &[]);
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["team"], "a");
    assert_eq!(t["created_by"], a.id.as_str());
    let ta = t["id"].as_str().unwrap().to_string();
    // Another team in the body: 403, nothing created; a read-only key: 403.
    let mut other = body.clone();
    other["team"] = json!("b");
    let (s, v) = post(addr, &a, &other, &[]);
    assert_eq!((s, v["kind"].as_str()), (403, Some("forbidden")), "{v}");
    let (s, v) = post(addr, &a_read, &body, &[]);
    assert_eq!((s, v["kind"].as_str()), (403, Some("forbidden")), "{v}");

    // Idempotency per team: the same key and body in team b is b's own task; a second key of
    // team a replays a's.
    let idem = [("idempotency-key", "same-key")];
    let (s, first) = post(addr, &a, &body, &idem);
    assert_eq!(s, 201, "{first}");
    let (s, again) = post(addr, &a2, &body, &idem);
    assert_eq!((s, &again["id"]), (200, &first["id"]), "{again}");
    let (s, theirs) = post(addr, &b, &body, &idem);
    assert_eq!(s, 201, "{theirs}");
    assert_ne!(theirs["id"], first["id"]);
    assert_eq!(theirs["team"], "b");
    let tb = theirs["id"].as_str().unwrap().to_string();
    // The owner (Unix socket) sees all three of a's and b's tasks, nothing else was made.
    let all: Vec<Value> = serde_json::from_str(&env.ok(&["ls", "--all", "--json"])).unwrap();
    assert_eq!(all.len(), 3, "{all:?}");

    // Lists: each key its own team's; `team=` of another team is an empty page.
    let first_id = first["id"].as_str().unwrap().to_string();
    let mut mine = ids(addr, &a, "/v1/tasks?all=true");
    mine.sort();
    let mut want = vec![ta.clone(), first_id];
    want.sort();
    assert_eq!(mine, want);
    assert_eq!(ids(addr, &b, "/v1/tasks?all=true"), [tb.as_str()]);
    assert!(ids(addr, &a, "/v1/tasks?team=b").is_empty());
    assert_eq!(ids(addr, &b, "/v1/tasks?tag=customer:acme"), [tb.as_str()]);
    assert_eq!(ids(addr, &a_read, "/v1/tasks?team=a").len(), 2);

    // Events: another team's stream is the 404 of a missing task; its own resumes.
    env.wait(&ta);
    let path = format!("/v1/tasks/{ta}/events");
    let sse = [("accept", "text/event-stream"), ("last-event-id", "3")];
    let (s, body) = get(addr, &b, &path, &sse);
    assert_eq!(s, 404, "{body}");
    let (s, text) = get(addr, &a, &path, &sse);
    assert_eq!(s, 200, "{text}");
    let frames = drover_test_support::sse::frames(&text);
    let (last_event, last_data) = frames.last().unwrap();
    assert_eq!(last_event, "end", "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(last_data).unwrap()["state"],
        "succeeded"
    );
    let seqs: Vec<i64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id:"))
        .map(|v| v.trim().parse().unwrap())
        .collect();
    assert_eq!(seqs.first(), Some(&4), "{text}");
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    rt.block_on(daemon.shutdown());
}
