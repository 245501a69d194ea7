//! Findings of the attack review of the team server (docs/design.md §7), one test each.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use drover_test_support::keys::Keys;
use drover_test_support::net;
use drover_types::Scope;
use serde_json::{json, Value};
use std::path::Path;

/// The owner over the Unix socket.
fn owner(env: &Env, method: &str, path: &str, body: &str) -> (u16, String) {
    let (status, _, b) = drover_test_support::http::request(
        &env.sock(),
        method,
        path,
        &[("content-type", "application/json")],
        body.as_bytes(),
    );
    (status, String::from_utf8_lossy(&b).into_owned())
}

/// A team's `max_usd_per_task` holds for a pool a key starts as for a task it creates: with
/// the gateway off (nothing could enforce the cap) both are refused, never run unmetered.
#[test]
fn a_pool_of_a_capped_team_is_refused_like_a_task_when_nothing_can_enforce_the_cap() {
    let env = Env::new();
    let rt = runtime();
    let exe = Path::new(env!("CARGO_BIN_EXE_drover"));
    let (daemon, addr) = rt.block_on(net::start_listening(&env.home, exe, None));
    let keys = Keys::open(&env.home);
    keys.team("a");
    let (st, b) = owner(&env, "PATCH", "/v1/teams/a", r#"{"max_usd_per_task": 1}"#);
    assert_eq!(st, 200, "{b}");
    let key = keys.key(
        "a",
        &[Scope::TasksRead, Scope::TasksWrite, Scope::PoolsWrite],
        None,
    );
    let repo = env.repo.display().to_string();
    let task = json!({"repo": repo, "prompt": "p", "agent": "command", "cmd": "true"});
    let (st, b) = net::call(
        addr,
        "POST",
        "/v1/tasks",
        Some(&key.secret),
        &task.to_string(),
    );
    assert_eq!(st, 422, "a capped task without a gateway: {b}");
    let pool = json!({
        "name": "capped", "slots": 1, "count": 1, "repo": repo, "prompt": "p",
        "agent": "command", "cmd": "true",
    });
    let (st, b) = net::call(
        addr,
        "POST",
        "/v1/pools",
        Some(&key.secret),
        &pool.to_string(),
    );
    assert!(
        (400..500).contains(&st),
        "a pool of a team capped at $1 a task ran with no cap: {st} {b}"
    );
    // A model off the team's list is a 422 at creation, for a pool as for a task.
    let (st, b) = owner(
        &env,
        "PATCH",
        "/v1/teams/a",
        r#"{"allowed_models": ["m1"]}"#,
    );
    assert_eq!(st, 200, "{b}");
    let mut off = pool;
    off["name"] = json!("off-list");
    off["model"] = json!("m2");
    let (st, b) = net::call(
        addr,
        "POST",
        "/v1/pools",
        Some(&key.secret),
        &off.to_string(),
    );
    assert_eq!(st, 422, "{b}");
    assert!(b.contains("m2"), "{b}");
    let (_, b) = owner(&env, "GET", "/v1/tasks?all=true", "");
    let v: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["tasks"].as_array().map(Vec::len), Some(0), "{v:#}");
    rt.block_on(daemon.shutdown());
}

/// Every error over TCP is `{kind, error, hint}` JSON: also a raw-log request without `stream`.
#[test]
fn a_raw_log_request_with_a_bad_query_is_a_json_400() {
    let env = Env::new();
    let rt = runtime();
    let exe = Path::new(env!("CARGO_BIN_EXE_drover"));
    let (daemon, addr) = rt.block_on(net::start_listening(&env.home, exe, None));
    let keys = Keys::open(&env.home);
    keys.team("a");
    let key = keys.key("a", &[Scope::TasksRead, Scope::TasksWrite], None);
    let repo = env.repo.display().to_string();
    let task = json!({"repo": repo, "prompt": "p", "agent": "command", "cmd": "echo hi"});
    let (st, b) = net::call(
        addr,
        "POST",
        "/v1/tasks",
        Some(&key.secret),
        &task.to_string(),
    );
    assert_eq!(st, 201, "{b}");
    let id = serde_json::from_str::<Value>(&b).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    for query in ["", "?stream=nope", "?stream=stdout&offset=-1"] {
        let path = format!("/v1/tasks/{id}/raw{query}");
        let (st, b) = net::call(addr, "GET", &path, Some(&key.secret), "");
        assert_eq!(st, 400, "{path}: {b}");
        let v: Value = serde_json::from_str(&b).unwrap_or_else(|_| panic!("{path}: not JSON: {b}"));
        assert_eq!(v["kind"], "invalid", "{path}: {b}");
    }
    rt.block_on(daemon.shutdown());
}

/// A key's repo URL may not make the daemon call this host or a private network (as a webhook
/// URL may not): 403 with nothing fetched and nothing created; a path on the server still works.
#[test]
fn a_keys_repo_url_may_not_name_an_internal_address() {
    let env = Env::new();
    let rt = runtime();
    let exe = Path::new(env!("CARGO_BIN_EXE_drover"));
    let (daemon, addr) = rt.block_on(net::start_listening(&env.home, exe, None));
    let keys = Keys::open(&env.home);
    keys.team("a");
    let key = keys.key(
        "a",
        &[Scope::TasksRead, Scope::TasksWrite, Scope::PoolsWrite],
        None,
    );
    // A listener that records whether anything connected.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.set_nonblocking(true).unwrap();
    let port = probe.local_addr().unwrap().port();
    for repo in [
        format!("http://127.0.0.1:{port}/internal.git"),
        format!("http://localhost:{port}/internal.git"),
        format!("ssh://git@127.0.0.1:{port}/internal.git"),
        "git@169.254.169.254:x/y.git".to_string(),
        "https://10.0.0.1/x.git".to_string(),
    ] {
        let task = json!({"repo": repo, "prompt": "p", "agent": "command", "cmd": "true"});
        let (st, b) = net::call(
            addr,
            "POST",
            "/v1/tasks",
            Some(&key.secret),
            &task.to_string(),
        );
        assert_eq!(st, 403, "{repo}: {b}");
        let pool = json!({"name": "p", "slots": 1, "repo": repo, "prompt": "p",
            "agent": "command", "cmd": "true"});
        let (st, b) = net::call(
            addr,
            "POST",
            "/v1/pools",
            Some(&key.secret),
            &pool.to_string(),
        );
        assert_eq!(st, 403, "pool {repo}: {b}");
    }
    assert!(
        probe.accept().is_err(),
        "the daemon connected to the internal address"
    );
    // The host owner may; a key's path on the server is not a URL.
    let task = json!({"repo": env.repo.display().to_string(), "prompt": "p",
        "agent": "command", "cmd": "true"});
    let (st, b) = net::call(
        addr,
        "POST",
        "/v1/tasks",
        Some(&key.secret),
        &task.to_string(),
    );
    assert_eq!(st, 201, "{b}");
    rt.block_on(daemon.shutdown());
}

/// A key's `ref` never checks out another team's work: its task branch, an abbreviated sha of
/// its commit or `:/text` are the 422 of a ref that does not exist (so they tell nothing); its
/// own team's task branch still works.
#[test]
fn a_keys_ref_never_reaches_another_teams_work() {
    let env = Env::new();
    let rt = runtime();
    let exe = Path::new(env!("CARGO_BIN_EXE_drover"));
    let (daemon, addr) = rt.block_on(net::start_listening(&env.home, exe, None));
    let keys = Keys::open(&env.home);
    keys.team("a");
    keys.team("b");
    let scopes = [Scope::TasksRead, Scope::TasksWrite, Scope::PoolsWrite];
    let a = keys.key("a", &scopes, None);
    let b = keys.key("b", &scopes, None);
    let repo = env.repo.display().to_string();
    let run = |key: &str, git_ref: Option<&str>, cmd: &str| {
        let mut body = json!({"repo": repo, "prompt": "p", "agent": "command", "cmd": cmd});
        if let Some(r) = git_ref {
            body["ref"] = json!(r);
        }
        let (st, b) = net::call(addr, "POST", "/v1/tasks", Some(key), &body.to_string());
        (st, serde_json::from_str::<Value>(&b).unwrap())
    };
    let finished = |key: &str, id: &str| {
        let (st, b) = net::call(
            addr,
            "GET",
            &format!("/v1/tasks/{id}/wait?timeout=120"),
            Some(key),
            "",
        );
        assert_eq!(st, 200, "{b}");
        let t: Value = serde_json::from_str(&b).unwrap();
        assert_eq!(t["state"], "succeeded", "{t:#}");
        t
    };
    let (st, t) = run(&b.secret, None, "echo TOPSECRET-B > secret.txt");
    assert_eq!(st, 201, "{t}");
    let bt = finished(&b.secret, t["id"].as_str().unwrap());
    let b_commit = bt["commit"]
        .as_str()
        .expect("b's task committed")
        .to_string();
    let b_branch = bt["branch"].as_str().unwrap().to_string();
    let (st, missing) = run(&a.secret, Some("drover/ffffffff"), "cat secret.txt");
    assert_eq!(st, 422, "{missing}");
    for r in [b_branch.as_str(), &b_commit[..8], ":/"] {
        let (st, v) = run(&a.secret, Some(r), "cat secret.txt");
        assert_eq!(
            (st, v["kind"].clone()),
            (422, missing["kind"].clone()),
            "ref {r}: {v}"
        );
        let pool = json!({"name": "peek", "slots": 1, "count": 1, "repo": repo, "prompt": "p",
            "agent": "command", "cmd": "cat secret.txt", "base_ref": r});
        let (st, v) = net::call(
            addr,
            "POST",
            "/v1/pools",
            Some(&a.secret),
            &pool.to_string(),
        );
        assert!((400..500).contains(&st), "pool ref {r}: {st} {v}");
    }
    // Its own team's work, and the owner's view, are unchanged.
    let (st, t) = run(&a.secret, None, "echo A > mine.txt");
    assert_eq!(st, 201, "{t}");
    let at = finished(&a.secret, t["id"].as_str().unwrap());
    let (st, t) = run(&a.secret, at["branch"].as_str(), "cat mine.txt");
    assert_eq!(st, 201, "{t}");
    finished(&a.secret, t["id"].as_str().unwrap());
    rt.block_on(daemon.shutdown());
}

/// A key revoked while its event stream is open: the stream ends (within seconds), it does not
/// go on for as long as the task runs.
#[test]
fn an_open_event_stream_ends_when_its_key_is_revoked() {
    let env = Env::new();
    let rt = runtime();
    let exe = Path::new(env!("CARGO_BIN_EXE_drover"));
    let (daemon, addr) = rt.block_on(net::start_listening(&env.home, exe, None));
    let keys = Keys::open(&env.home);
    keys.team("a");
    let key = keys.key("a", &[Scope::TasksRead, Scope::TasksWrite], None);
    let repo = env.repo.display().to_string();
    let task = json!({"repo": repo, "prompt": "p", "agent": "command", "cmd": "sleep 300"});
    let (st, b) = net::call(
        addr,
        "POST",
        "/v1/tasks",
        Some(&key.secret),
        &task.to_string(),
    );
    assert_eq!(st, 201, "{b}");
    let id = serde_json::from_str::<Value>(&b).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    let secret = key.secret.clone();
    let path = format!("/v1/tasks/{id}/events?follow=1");
    std::thread::spawn(move || {
        let _ = tx.send(net::call(addr, "GET", &path, Some(&secret), ""));
    });
    // The stream is open (nothing came back yet), then the key is revoked.
    assert!(rx.recv_timeout(std::time::Duration::from_secs(1)).is_err());
    keys.revoke(&key.id);
    let ended = rx.recv_timeout(std::time::Duration::from_secs(30));
    let (st, b) = net::call(addr, "POST", &format!("/v1/tasks/{id}/stop"), None, "");
    assert_eq!(st, 401, "{b}");
    let (st, b) = owner(&env, "POST", &format!("/v1/tasks/{id}/stop"), "{}");
    assert_eq!(st, 200, "{b}");
    let (status, _) = ended.expect("the stream of a revoked key is still open after 30 s");
    assert_eq!(status, 200);
    rt.block_on(daemon.shutdown());
}

/// A team's `allowed_repos` (set by the host owner) bound what its keys may check out: a repo
/// outside them — another directory, a `..` walk out of an allowed one, a URL — is a 403 before
/// anything is resolved or fetched, and nothing is created; a key cannot widen the list.
#[test]
fn a_team_uses_only_its_allowed_repos() {
    let env = Env::new();
    let rt = runtime();
    let exe = Path::new(env!("CARGO_BIN_EXE_drover"));
    let (daemon, addr) = rt.block_on(net::start_listening(&env.home, exe, None));
    let other = env.repo.parent().unwrap().join("other");
    let cp = std::process::Command::new("cp")
        .arg("-a")
        .arg(&env.repo)
        .arg(&other)
        .status()
        .unwrap();
    assert!(cp.success());
    let keys = Keys::open(&env.home);
    keys.team("a");
    let repo = env.repo.display().to_string();
    let body = json!({ "allowed_repos": [repo] }).to_string();
    let (st, b) = owner(&env, "PATCH", "/v1/teams/a", &body);
    assert_eq!(st, 200, "{b}");
    let key = keys.key("a", &[Scope::Admin], None);
    let post = |repo: &str| {
        let task = json!({"repo": repo, "task": "p", "agent": "command", "cmd": "true"});
        net::call(
            addr,
            "POST",
            "/v1/tasks",
            Some(&key.secret),
            &task.to_string(),
        )
    };
    let (st, b) = post(&repo);
    assert_eq!(st, 201, "its own repo: {b}");
    for outside in [
        other.display().to_string(),
        format!("{repo}/../other"),
        "https://example.invalid/acme/api.git".to_string(),
        "other".to_string(),
    ] {
        let (st, b) = post(&outside);
        assert_eq!(st, 403, "{outside}: {b}");
        assert!(b.contains("forbidden") && b.contains("may use only"), "{b}");
    }
    // A pool too.
    let pool = json!({
        "name": "p1", "slots": 1, "count": 1, "repo": other.display().to_string(),
        "prompt": "p", "agent": "command", "cmd": "true",
    });
    let (st, b) = net::call(
        addr,
        "POST",
        "/v1/pools",
        Some(&key.secret),
        &pool.to_string(),
    );
    assert_eq!(st, 403, "{b}");
    // The key (even admin) cannot widen the list.
    let widen = json!({ "allowed_repos": [other.display().to_string()] }).to_string();
    let (st, b) = net::call(addr, "PATCH", "/v1/teams/a", Some(&key.secret), &widen);
    assert_eq!(st, 403, "{b}");
    let (_, b) = owner(&env, "GET", "/v1/tasks?all=true", "");
    let v: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["tasks"].as_array().map(Vec::len), Some(1), "{v:#}");
    // A bad entry is refused with what to give.
    let (st, b) = owner(
        &env,
        "PATCH",
        "/v1/teams/a",
        r#"{"allowed_repos": ["relative/dir"]}"#,
    );
    assert_eq!(st, 422, "{b}");
    rt.block_on(daemon.shutdown());
}
