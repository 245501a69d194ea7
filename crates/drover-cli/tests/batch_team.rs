//! Batches on the team server (docs/design.md §7, §9): a key sees and acts on its own team's
//! batches only (another team's is the 404 of a missing one), needs `tasks:write` to start,
//! stop or retry one, and every repository meets the team's `allowed_repos` before anything is
//! stored.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use drover_types::Scope;
use serde_json::{json, Value};

#[test]
fn a_key_sees_and_acts_on_its_own_teams_batches_only() {
    let s = TcpServer::start();
    s.keys.team("a");
    s.keys.team("b");
    let a_write = s
        .keys
        .key("a", &[Scope::TasksRead, Scope::TasksWrite], None);
    let a_read = s.keys.key("a", &[Scope::TasksRead], None);
    let b_write = s
        .keys
        .key("b", &[Scope::TasksRead, Scope::TasksWrite], None);
    let repo = s.env.repo.display().to_string();
    let body = |name: &str, repos: &[&str]| {
        json!({
            "name": name, "repos": repos, "task": "upgrade",
            "agent": "command", "cmd": "echo marker-of-a", "slots": 1,
        })
        .to_string()
    };

    // tasks:read is not enough to start one.
    let (status, b) = s.call(
        "POST",
        "/v1/batches",
        Some(&a_read.secret),
        &body("ba", &[&repo]),
    );
    assert_eq!(status, 403, "{b}");
    assert!(b.contains("tasks:write"), "{b}");

    let (status, b) = s.call(
        "POST",
        "/v1/batches",
        Some(&a_write.secret),
        &body("ba", &[&repo]),
    );
    assert_eq!(status, 201, "{b}");
    let v: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["team"], "a", "a key's batch is its team's: {v:#}");
    assert_eq!(v["created_by"], a_write.id.as_str());
    let task = v["repos"][0]["task"].as_str().unwrap().to_string();
    let (status, t) = s.call(
        "GET",
        &format!("/v1/tasks/{task}/wait?timeout=120"),
        Some(&a_read.secret),
        "",
    );
    assert_eq!(status, 200, "{t}");
    let t: Value = serde_json::from_str(&t).unwrap();
    assert_eq!(
        (t["team"].as_str(), t["batch"].as_str()),
        (Some("a"), Some("ba"))
    );

    // Team a's own read key sees it.
    let (status, b) = s.call("GET", "/v1/batches/ba", Some(&a_read.secret), "");
    assert_eq!(status, 200, "{b}");
    let (_, list) = s.call("GET", "/v1/batches", Some(&a_read.secret), "");
    assert!(list.contains("\"ba\""), "{list}");
    // Stopping or retrying needs tasks:write.
    let (status, b) = s.call("POST", "/v1/batches/ba/retry", Some(&a_read.secret), "{}");
    assert_eq!(status, 403, "{b}");

    // Team b: the very 404 of a batch that does not exist, for every route; its list is empty.
    let (status, missing) = s.call("GET", "/v1/batches/nosuch", Some(&b_write.secret), "");
    assert_eq!(status, 404, "{missing}");
    for (method, path) in [
        ("GET", "/v1/batches/ba"),
        ("POST", "/v1/batches/ba/stop"),
        ("POST", "/v1/batches/ba/retry"),
    ] {
        let (status, b) = s.call(method, path, Some(&b_write.secret), "{}");
        assert_eq!(status, 404, "{method} {path}: {b}");
        assert!(!b.contains("marker-of-a") && !b.contains(&task), "{b}");
        assert_eq!(
            b.replace(r#"\"ba\""#, r#"\"nosuch\""#),
            missing,
            "{method} {path}: not the answer of a missing batch"
        );
    }
    let (_, list) = s.call("GET", "/v1/batches", Some(&b_write.secret), "");
    assert_eq!(list.trim(), "[]");
    // Naming the other team in the body changes nothing: a key's batch is its own team's.
    let mut other = serde_json::from_str::<Value>(&body("bb", &[&repo])).unwrap();
    other["team"] = json!("a");
    let (status, b) = s.call(
        "POST",
        "/v1/batches",
        Some(&b_write.secret),
        &other.to_string(),
    );
    assert_eq!(status, 403, "{b}");

    // The team's allowed repos: one repository outside them refuses the whole batch.
    let outside = s.env.tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    drover_test_support::git::git(&outside, &["init", "-q"]);
    std::fs::write(outside.join("f"), "x").unwrap();
    drover_test_support::git::git(&outside, &["add", "-A"]);
    drover_test_support::git::git(&outside, &["commit", "-qm", "i"]);
    // (Set by the host owner, on the Unix socket.)
    let (status, _, b) = drover_test_support::http::request(
        &s.env.sock(),
        "PATCH",
        "/v1/teams/b",
        &[("content-type", "application/json")],
        json!({"allowed_repos": [repo]}).to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&b));
    let outside = outside.display().to_string();
    let (status, b) = s.call(
        "POST",
        "/v1/batches",
        Some(&b_write.secret),
        &body("bc", &[&repo, &outside]),
    );
    assert_eq!(status, 403, "{b}");
    assert!(b.contains(&format!("repo {outside}")), "{b}");
    let (_, list) = s.call("GET", "/v1/batches", Some(&b_write.secret), "");
    assert_eq!(list.trim(), "[]", "nothing was stored");
    let (_, page) = s.call("GET", "/v1/tasks?all=true", Some(&b_write.secret), "");
    let page: Value = serde_json::from_str(&page).unwrap();
    assert_eq!(page["tasks"], json!([]), "no task of the refused batch");
}
