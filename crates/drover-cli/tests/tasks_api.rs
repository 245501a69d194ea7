//! `POST /v1/tasks` in the seed's shape and `GET /v1/tasks` with filters (docs/design.md §7):
//! 201 with the task, `Idempotency-Key` (one task for ten concurrent retries; another body is a
//! 409), `X-Provider-Key` (reaches the provider, nowhere else), bad bodies (400 malformed, 422
//! wrong values, 413 too large; nothing created), `drover run --tag`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use serde_json::{json, Value};

fn post(env: &Env, body: &Value, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut h = vec![("content-type", "application/json")];
    h.extend_from_slice(headers);
    let (s, _, b) = http(env, "POST", "/v1/tasks", &h, body.to_string().as_bytes());
    let v = serde_json::from_slice(&b)
        .unwrap_or_else(|e| panic!("{s}: not JSON ({e}): {}", String::from_utf8_lossy(&b)));
    (s, v)
}

fn get(env: &Env, path: &str) -> (u16, Value) {
    let (s, _, b) = http(env, "GET", path, &[], b"");
    (s, serde_json::from_slice(&b).unwrap())
}

fn all_tasks(env: &Env) -> Vec<Value> {
    serde_json::from_str(&env.ok(&["ls", "--all", "--json"])).unwrap()
}

/// A 4xx with the API's error shape, one line, saying `needle`.
fn refused(status: u16, v: &Value, want: u16, kind: &str, needle: &str) {
    assert_eq!(status, want, "{v}");
    assert_eq!(v["kind"], kind, "{v}");
    assert!(v["hint"].is_string(), "no hint: {v}");
    let error = v["error"].as_str().unwrap();
    assert!(!error.contains('\n'), "{error:?}");
    assert!(error.contains(needle), "expected {needle:?} in {error:?}");
}

fn seed(env: &Env) -> Value {
    json!({ "repo": env.repo.display().to_string(), "task": "say hi", "agent": "command",
            "cmd": "echo hi", "ref": "HEAD", "timeout": "30m", "name": "seed",
            "team": "platform", "tags": {"customer": "acme"}, "verify": [], "protect": [] })
}

#[test]
fn the_seed_shape_creates_a_task_and_lists_filter_by_state_team_and_tag() {
    let env = Env::new();
    env.ok(&["daemon"]);
    env.ok(&["team", "create", "platform"]);
    let (s, t) = post(&env, &seed(&env), &[]);
    assert_eq!(s, 201, "{t}");
    let id = t["id"].as_str().unwrap().to_string();
    assert_eq!(t["prompt"], "say hi");
    assert_eq!(t["team"], "platform");
    assert_eq!(t["tags"], json!({"customer": "acme"}));
    assert_eq!(t["timeout_secs"], 1800);
    assert_eq!(t["name"], "seed");
    // The owner keeps today's `created_by` (whatever its client sent; here none).
    assert!(t["created_by"].is_null(), "{t}");
    assert_eq!(env.wait(&id)["state"], "succeeded");
    // The older names still work (`prompt`, `base_ref`, `timeout_secs`), as does `run --tag`.
    let old = json!({ "repo": env.repo.display().to_string(), "prompt": "p", "agent": "command",
                      "cmd": "true", "base_ref": "HEAD", "timeout_secs": 60 });
    let (s, t) = post(&env, &old, &[]);
    assert_eq!(s, 201, "{t}");
    assert_eq!(t["timeout_secs"], 60);
    assert_eq!(env.wait(t["id"].as_str().unwrap())["state"], "succeeded");
    let other = env.ok(&[
        "run",
        "--agent",
        "command",
        "--cmd",
        "true",
        "--tag",
        "customer=zeta",
        "--tag",
        "tier=gold",
        "--tag",
        "empty=",
        "tagged",
    ]);
    let shown = env.show(&other);
    assert_eq!(
        shown["tags"],
        json!({"customer": "zeta", "tier": "gold", "empty": ""})
    );
    assert_eq!(env.wait(&other)["state"], "succeeded");
    let text = env.ok(&["show", &other]);
    assert!(
        text.contains("tags         customer=zeta empty= tier=gold"),
        "{text}"
    );
    for bad in ["nokey", "=v"] {
        let out = env.run(&[
            "run", "--agent", "command", "--cmd", "true", "--tag", bad, "x",
        ]);
        assert_eq!(out.status.code(), Some(2), "--tag {bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("drover: --tag"), "{err}");
    }
    assert_eq!(all_tasks(&env).len(), 3);

    // Filters: tag, team, state, pool; `next_cursor` pages.
    let ids = |path: &str| -> Vec<String> {
        let (s, v) = get(&env, path);
        assert_eq!(s, 200, "{path}: {v}");
        v["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids("/v1/tasks?tag=customer:acme"), [id.as_str()]);
    assert_eq!(ids("/v1/tasks?tag=customer:zeta"), [other.as_str()]);
    assert_eq!(ids("/v1/tasks?team=platform"), [id.as_str()]);
    assert_eq!(
        ids("/v1/tasks?team=platform&tag=customer:zeta"),
        Vec::<String>::new()
    );
    assert_eq!(ids("/v1/tasks?pool=none"), Vec::<String>::new());
    assert_eq!(ids("/v1/tasks?state=succeeded").len(), 3);
    assert_eq!(ids("/v1/tasks?state=queued"), Vec::<String>::new());
    let (_, page) = get(&env, "/v1/tasks?all=true&limit=2");
    assert_eq!(page["tasks"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let (_, rest) = get(&env, &format!("/v1/tasks?all=true&limit=2&cursor={cursor}"));
    assert_eq!(rest["tasks"].as_array().unwrap().len(), 1);
    assert!(rest["next_cursor"].is_null(), "{rest}");
    for (q, needle) in [
        ("state=banana", "queued"),
        ("tag=nocolon", "NAME:VALUE"),
        ("cursor=-1", "cursor"),
        ("cursor=abc", "cursor"),
        ("limit=0", "limit"),
    ] {
        let (s, v) = get(&env, &format!("/v1/tasks?{q}"));
        refused_any_hint(s, &v, 400, "invalid", needle);
    }
}

/// As [`refused`], the hint may be absent (serde's query errors carry the valid values).
fn refused_any_hint(status: u16, v: &Value, want: u16, kind: &str, needle: &str) {
    assert_eq!(status, want, "{v}");
    assert_eq!(v["kind"], kind, "{v}");
    assert!(v.get("hint").is_some(), "{v}");
    assert!(
        v["error"].as_str().unwrap().contains(needle),
        "expected {needle:?}: {v}"
    );
}

#[test]
fn bad_bodies_get_the_contracts_status_and_create_nothing() {
    let env = Env::new();
    env.ok(&["daemon"]);
    env.ok(&["team", "create", "platform"]);
    let with = |k: &str, v: Value| {
        let mut b = seed(&env);
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = seed(&env);
        b.as_object_mut().unwrap().remove(k);
        b
    };
    // Malformed: 400 `invalid`, naming the field.
    for (body, needle) in [
        (with("colour", json!("red")), "unknown field `colour`"),
        (
            with("budget", json!({"maxUSD": 1})),
            "unknown field `maxUSD`",
        ),
        (with("budget", json!({"maxUsd": "2"})), "budget.maxUsd"),
        (with("task", json!(5)), "task: invalid type"),
        (with("tags", json!({"customer": 5})), "tags.customer"),
        (with("timeout", json!("soon")), "soon"),
        (with("timeout", json!(-5)), "timeout"),
        (without("task"), "missing field `task`"),
        (json!([1, 2]), "JSON object"),
    ] {
        let (s, v) = post(&env, &body, &[]);
        refused(s, &v, 400, "invalid", needle);
    }
    let (s, _, b) = http(
        &env,
        "POST",
        "/v1/tasks",
        &[("content-type", "application/json")],
        b"{\"repo\": ",
    );
    let v: Value = serde_json::from_slice(&b).unwrap();
    refused(s, &v, 400, "invalid", "");
    // Well-formed but wrong: 422 `invalid_field`.
    for (body, needle) in [
        (with("repo", json!("/no/such/repo")), "/no/such/repo"),
        (with("ref", json!("no-such-branch")), "no-such-branch"),
        (with("agent", json!("nobody")), "nobody"),
        (with("task", json!("   ")), "the prompt is empty"),
        (with("budget", json!({"maxUsd": -1.0})), "--max-usd"),
        (with("budget", json!({"maxTokens": 0})), "--max-tokens"),
        (with("timeout", json!(0)), "timeout"),
        (with("tags", json!({"": "x"})), "tag name"),
        (with("team", json!("nosuch")), "no team named nosuch"),
        (
            with("budget", json!({"maxUsd": 1.0})).tap_insert("max_usd", json!(2.0)),
            "give the budget once",
        ),
    ] {
        let (s, v) = post(&env, &body, &[]);
        refused(s, &v, 422, "invalid_field", needle);
    }
    // A budget this daemon cannot enforce (its gateway is off) is refused too, never unmetered.
    let (s, v) = post(&env, &with("budget", json!({"maxUsd": 2.0})), &[]);
    refused(s, &v, 422, "invalid_field", "cannot be enforced");
    // Headers: an Idempotency-Key over 200 characters or not printable ASCII; an empty
    // provider key.
    let long = "k".repeat(201);
    for (h, needle) in [
        (("idempotency-key", long.as_str()), "Idempotency-Key"),
        (("idempotency-key", ""), "Idempotency-Key"),
        (("x-provider-key", ""), "X-Provider-Key"),
    ] {
        let (s, v) = post(&env, &seed(&env), &[h]);
        refused(s, &v, 400, "invalid", needle);
    }
    // Over 1 MiB on a route without a prompt: 413; a prompt over 1 MiB: 413.
    let big = json!({ "message": "m".repeat((1 << 20) + 10) }).to_string();
    let (s, _, b) = http(
        &env,
        "POST",
        "/v1/tasks/abcd/send",
        &[("content-type", "application/json")],
        big.as_bytes(),
    );
    let v: Value = serde_json::from_slice(&b).unwrap();
    refused(s, &v, 413, "too_large", "1 MiB");
    let (s, v) = post(&env, &with("task", json!("p".repeat((1 << 20) + 1))), &[]);
    refused(s, &v, 413, "too_large", "1 MiB");
    // The task route takes 4 MiB for the prompt's sake; the rest of its body is held to 1 MiB.
    let (s, v) = post(&env, &with("name", json!("n".repeat(1_500_000))), &[]);
    refused(s, &v, 413, "too_large", "without its prompt");
    // A prompt just under 1 MiB with the other fields fits.
    let (s, t) = post(&env, &with("task", json!("p".repeat((1 << 20) - 100))), &[]);
    assert_eq!(s, 201, "{t}");
    let big_id = t["id"].as_str().unwrap().to_string();
    env.wait(&big_id);
    env.ok(&["rm", &big_id]);
    assert!(all_tasks(&env).is_empty(), "a refused body created a task");
}

trait TapInsert {
    fn tap_insert(self, k: &str, v: Value) -> Value;
}
impl TapInsert for Value {
    fn tap_insert(mut self, k: &str, v: Value) -> Value {
        self[k] = v;
        self
    }
}

#[test]
fn ten_concurrent_posts_with_one_idempotency_key_make_one_task() {
    let env = Env::new();
    env.ok(&["daemon"]);
    env.ok(&["team", "create", "platform"]);
    let body = seed(&env);
    // All ten are sent before any answer is read (the collect is needed).
    #[allow(clippy::needless_collect)]
    let answers: Vec<(u16, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..10)
            .map(|_| s.spawn(|| post(&env, &body, &[("idempotency-key", "retry-me-1")])))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let created = answers.iter().filter(|(s, _)| *s == 201).count();
    let replayed = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!((created, replayed), (1, 9), "{answers:?}");
    let id = answers[0].1["id"].as_str().unwrap().to_string();
    assert!(
        answers.iter().all(|(_, t)| t["id"] == id.as_str()),
        "{answers:?}"
    );
    assert_eq!(all_tasks(&env).len(), 1);
    // The same body written in another key order is the same request.
    let mut reordered = serde_json::Map::new();
    let obj = body.as_object().unwrap();
    let mut keys: Vec<&String> = obj.keys().collect();
    keys.reverse();
    for k in keys {
        reordered.insert(k.clone(), obj[k].clone());
    }
    let (s, t) = post(
        &env,
        &Value::Object(reordered),
        &[("idempotency-key", "retry-me-1")],
    );
    assert_eq!((s, t["id"].as_str()), (200, Some(id.as_str())));
    // Another body with the key: 409, nothing created.
    let mut changed = body.clone();
    changed["task"] = json!("say bye");
    let (s, v) = post(&env, &changed, &[("idempotency-key", "retry-me-1")]);
    refused(s, &v, 409, "conflict", "Idempotency-Key");
    assert_eq!(all_tasks(&env).len(), 1);
    // Another key: another task.
    let (s, t) = post(&env, &changed, &[("idempotency-key", "retry-me-2")]);
    assert_eq!(s, 201, "{t}");
    assert_ne!(t["id"].as_str(), Some(id.as_str()));
    // No key: every POST is a new task.
    assert_eq!(post(&env, &body, &[]).0, 201);
    assert_eq!(all_tasks(&env).len(), 3);
}

/// Every file under `dir` (recursively) whose bytes contain `needle`.
fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut hits = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                if let Ok(bytes) = std::fs::read(&p) {
                    if bytes.windows(needle.len()).any(|w| w == needle) {
                        hits.push(p.display().to_string());
                    }
                }
            }
        }
    }
    hits
}

#[test]
fn a_provider_key_in_the_header_reaches_the_provider_and_nowhere_else() {
    let provider = Provider::start(json!({ "scenarios": [
        { "name": "default", "turns": [{ "content": [{ "type": "text", "text": "pong-from-fake" }] }] }
    ]}));
    let env = Env::new()
        .with_env("ANTHROPIC_BASE_URL", &provider.url)
        .with_env("ANTHROPIC_API_KEY", "sk-ant-daemon-key");
    let body =
        drover_test_support::provider::anthropic_body("claude-sonnet-4-6", "ping", 0, false, "t");
    std::fs::write(env.repo.join("body.json"), body.to_string()).unwrap();
    env.git(&["add", "body.json"]);
    env.git(&["commit", "-qm", "body"]);
    env.ok(&["daemon"]);
    env.ok(&["team", "create", "platform"]);
    let key = format!("sk-ant-byok-{}", std::process::id());
    // The agent dumps its environment and every file it can see in its sandbox, then calls
    // the provider through the gateway.
    let cmd = "env | sort > env.txt; cat /proc/self/environ > environ.bin; \
               find . -path ./.git -prune -o -type f -print | sort > files.txt; \
               cat $(cat files.txt) > contents.txt 2>/dev/null; \
               curl -sf -m 20 -X POST \"$ANTHROPIC_BASE_URL/v1/messages\" -H \"x-api-key: $ANTHROPIC_API_KEY\" \
               -H 'anthropic-version: 2023-06-01' -H 'content-type: application/json' -d @body.json -o reply.json";
    let req = json!({ "repo": env.repo.display().to_string(), "task": "byok", "agent": "command",
                      "cmd": cmd });
    let (s, t) = post(&env, &req, &[("x-provider-key", key.as_str())]);
    assert_eq!(s, 201, "{t}");
    let answer = t.to_string();
    let id = t["id"].as_str().unwrap().to_string();
    let done = env.wait(&id);
    assert_eq!(done["state"], "succeeded", "{done:#}");
    // The upstream saw this task's own key, not the daemon's.
    let log = provider.log();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].api_key.as_deref(), Some(key.as_str()));
    let reply = env.git(&["show", &format!("drover/{id}:reply.json")]);
    assert!(reply.contains("pong-from-fake"), "{reply}");
    // Nowhere else: the sandbox (what the agent saw), the store, logs and events under
    // DROVER_HOME, the task's JSON (the POST's answer too), `ls`, `logs`.
    for f in ["env.txt", "environ.bin", "contents.txt", "files.txt"] {
        let seen = env.git(&["show", &format!("drover/{id}:{f}")]);
        assert!(!seen.is_empty() || f == "contents.txt", "{f} is empty");
        assert!(!seen.contains(&key), "the key reached the sandbox ({f})");
    }
    let env_txt = env.git(&["show", &format!("drover/{id}:env.txt")]);
    assert!(env_txt.contains("ANTHROPIC_API_KEY="), "{env_txt}");
    let hits = files_containing(&env.home, key.as_bytes());
    assert!(hits.is_empty(), "the key is in {hits:?}");
    assert!(!files_containing(&env.home, b"sk-ant-daemon-key")
        .iter()
        .any(|p| p.ends_with(".db")));
    for out in [
        answer,
        env.ok(&["show", &id, "--json"]),
        env.ok(&["logs", &id, "--json"]),
        env.ok(&["ls", "--all", "--json"]),
    ] {
        assert!(!out.contains(&key), "the key was echoed: {out}");
    }
    // A bad provider key header is refused without repeating it.
    let (s, v) = post(&env, &req, &[("x-provider-key", "sk-ant-has space")]);
    refused(s, &v, 400, "invalid", "X-Provider-Key");
    assert!(!v.to_string().contains("has space"), "{v}");
}
