//! `GET /metrics` and `drover metrics`: real tasks through the gateway on the fake provider,
//! the text read by a Prometheus parser, the figures compared with `drover usage` and
//! `GET /v1/tasks`; who may scrape.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use drover_test_support::daemon::InProcessDaemon;
use prometheus_parse::{Sample, Scrape, Value as PValue};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

/// `f`'s first value, polled every 50 ms for at most two minutes.
fn wait_for<T>(what: &str, limit: Duration, f: impl FnMut() -> Option<T>) -> T {
    drover_test_support::poll::some(what, limit, Duration::from_millis(50), f)
}

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn parse(text: &str) -> Scrape {
    assert!(text.ends_with("# EOF\n"), "{text}");
    Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("a Prometheus text parser reads it")
}

fn value(s: &Sample) -> f64 {
    match s.value {
        PValue::Counter(v) | PValue::Gauge(v) | PValue::Untyped(v) => v,
        _ => panic!("not a single value: {s:?}"),
    }
}

fn samples<'a>(scrape: &'a Scrape, metric: &str) -> Vec<&'a Sample> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .collect()
}

fn label<'a>(s: &'a Sample, name: &str) -> &'a str {
    s.labels
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing on {s:?}"))
}

/// Scrapes over the admin socket: status, content type, text.
fn scrape_sock(env: &Env) -> (u16, String, String) {
    let (status, head, body) = http(env, "GET", "/metrics", &[], b"");
    (status, head, String::from_utf8(body).unwrap())
}

fn metrics(env: &Env) -> Scrape {
    let (status, head, text) = scrape_sock(env);
    assert_eq!(status, 200, "{text}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("content-type: {CONTENT_TYPE}")),
        "{head}"
    );
    parse(&text)
}

/// `drover_tokens_total` and `drover_cost_usd_total` summed by one label, `""` written `-` as
/// `drover usage` does: key → (input, output, cache_read, cache_write, usd).
fn by_label(scrape: &Scrape, name: &str) -> BTreeMap<String, (f64, f64, f64, f64, f64)> {
    let mut out: BTreeMap<String, (f64, f64, f64, f64, f64)> = BTreeMap::new();
    let key = |s: &Sample| match label(s, name) {
        "" => "-".to_string(),
        k => k.to_string(),
    };
    for s in samples(scrape, "drover_tokens_total") {
        let e = out.entry(key(s)).or_default();
        let v = value(s);
        match label(s, "type") {
            "input" => e.0 += v,
            "output" => e.1 += v,
            "cache_read" => e.2 += v,
            "cache_write" => e.3 += v,
            t => panic!("type {t}"),
        }
    }
    for s in samples(scrape, "drover_cost_usd_total") {
        out.entry(key(s)).or_default().4 += value(s);
    }
    out
}

fn usage(env: &Env, by: &str) -> BTreeMap<String, (f64, f64, f64, f64, f64)> {
    let lines: Vec<Value> =
        serde_json::from_str(&env.ok(&["usage", "--by", by, "--json"])).unwrap();
    lines
        .iter()
        .map(|l| {
            let f = |k: &str| l[k].as_f64().unwrap();
            (
                l["key"].as_str().unwrap().to_string(),
                (
                    f("input_tokens"),
                    f("output_tokens"),
                    f("cache_read_tokens"),
                    f("cache_write_tokens"),
                    f("cost_usd"),
                ),
            )
        })
        .collect()
}

fn assert_same(
    ours: &BTreeMap<String, (f64, f64, f64, f64, f64)>,
    theirs: &BTreeMap<String, (f64, f64, f64, f64, f64)>,
    by: &str,
) {
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "--by {by}"
    );
    for (k, a) in ours {
        let b = theirs[k];
        assert_eq!(
            (a.0, a.1, a.2, a.3),
            (b.0, b.1, b.2, b.3),
            "tokens of {by} {k}"
        );
        assert!(
            (a.4 - b.4).abs() < 1e-9,
            "dollars of {by} {k}: {} vs {}",
            a.4,
            b.4
        );
    }
}

/// A command that posts `file` to the gateway (as the agent's own Anthropic client would).
fn curl(file: &str) -> String {
    format!(
        "curl -sf -m 30 -X POST \"$ANTHROPIC_BASE_URL/v1/messages\" -H \"x-api-key: $ANTHROPIC_API_KEY\" \
         -H 'anthropic-version: 2023-06-01' -H 'content-type: application/json' -d @{file} -o reply.json"
    )
}

fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect()
}

#[test]
fn metrics_match_drover_usage_and_the_task_list() {
    let provider = Provider::start(json!({ "scenarios": [
        { "name": "flaky", "match": "FLAKY", "turns": [
            { "content": [{ "type": "text", "text": "made it" }], "usage": { "input": 1200, "output": 80 },
              "fail_first": [ { "status": 529 }, { "status": 500 } ] } ] },
        { "name": "default", "turns": [{ "content": [{ "type": "text", "text": "hi" }],
            "usage": { "input": 300, "output": 40 } }] }
    ]}));
    let env = Env::new()
        .with_env("ANTHROPIC_BASE_URL", &provider.url)
        .with_env("ANTHROPIC_API_KEY", "sk-ant-test-key");
    let body = |model: &str, prompt: &str| {
        drover_test_support::provider::anthropic_body(model, prompt, 0, false, "t").to_string()
    };
    std::fs::write(
        env.repo.join("flaky.json"),
        body("claude-sonnet-4-6", "FLAKY: go"),
    )
    .unwrap();
    std::fs::write(
        env.repo.join("haiku.json"),
        body("claude-haiku-4-5", "hello"),
    )
    .unwrap();
    env.git(&["add", "-A"]);
    env.git(&["commit", "-qm", "bodies"]);
    env.ok(&["daemon"]);
    env.ok(&["team", "create", "platform"]);

    // No team, no pool, after a scripted 529 and 500; a team's; a pool's.
    let a = env.run_command_task(&curl("flaky.json"), "flaky");
    let b = env.ok(&[
        "run",
        "--agent",
        "command",
        "--team",
        "platform",
        "--cmd",
        &curl("haiku.json"),
        "team",
    ]);
    env.ok(&[
        "pool",
        "start",
        "p1",
        "--slots",
        "1",
        "--count",
        "1",
        "--prompt",
        "pooled",
        "--agent",
        "command",
        "--cmd",
        &curl("haiku.json"),
    ]);
    for id in [&a, &b] {
        assert_eq!(env.wait(id)["state"], "succeeded", "{id}");
    }
    let pooled = wait_for("the pool's task to end", Duration::from_secs(120), || {
        let (_, page) = api_json(&env, "GET", "/v1/tasks?all=true&pool=p1", "");
        let page: Value = serde_json::from_str(&page).unwrap();
        let t = page["tasks"].as_array()?.first()?.clone();
        (t["state"] == "succeeded" || t["state"] == "failed").then_some(t)
    });
    assert_eq!(pooled["state"], "succeeded", "{pooled:#}");
    // One still running.
    let sleeper = env.run_command_task("sleep 600", "sleeping");
    env.until(&sleeper, "running", |t| t["state"] == "running");

    let scrape = metrics(&env);
    // Tokens and dollars: exactly `drover usage`, by model, team and pool.
    for (label_name, by) in [("model", "model"), ("team", "team"), ("pool", "pool")] {
        assert_same(&by_label(&scrape, label_name), &usage(&env, by), by);
    }
    let models = by_label(&scrape, "model");
    assert!(
        models.contains_key("claude-sonnet-4-6") && models.contains_key("claude-haiku-4-5"),
        "{models:?}"
    );
    assert!(models.values().all(|v| v.4 > 0.0));

    // Tasks by state: every state, 0 included, equal to the task list's counts.
    let (_, page) = api_json(&env, "GET", "/v1/tasks?all=true", "");
    let page: Value = serde_json::from_str(&page).unwrap();
    let mut listed: BTreeMap<String, f64> = BTreeMap::new();
    for t in page["tasks"].as_array().unwrap() {
        *listed
            .entry(t["state"].as_str().unwrap().to_string())
            .or_default() += 1.0;
    }
    let tasks = samples(&scrape, "drover_tasks");
    assert_eq!(tasks.len(), 9, "every state: {tasks:?}");
    for s in tasks {
        let st = label(s, "state");
        assert_eq!(
            value(s),
            listed.get(st).copied().unwrap_or(0.0),
            "state {st}"
        );
    }
    assert_eq!(listed["succeeded"], 3.0);
    let one = |m: &str| value(samples(&scrape, m)[0]);
    assert_eq!(one("drover_slots"), 4.0);
    assert_eq!(one("drover_slots_used"), 1.0);
    assert_eq!(one("drover_queue_length"), 0.0);
    assert_eq!(one("drover_build_info"), 1.0);

    // The gateway: three requests answered 200, two retries (the 529 and the 500) among them.
    let upstream = provider
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let requests: Vec<_> = samples(&scrape, "drover_gateway_requests_total");
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(
        (label(requests[0], "upstream"), label(requests[0], "status")),
        (upstream.as_str(), "200")
    );
    assert_eq!(value(requests[0]), 3.0);
    let retries = samples(&scrape, "drover_gateway_retries_total");
    assert_eq!(retries.len(), 1, "{retries:?}");
    assert_eq!(value(retries[0]), 2.0);
    let latency: Vec<_> = samples(&scrape, "drover_gateway_request_duration_seconds")
        .into_iter()
        .filter(|s| label(s, "model") == "claude-sonnet-4-6")
        .collect();
    match &latency[..] {
        [s] => match &s.value {
            PValue::Histogram(h) => assert_eq!(h.last().unwrap().count, 1.0, "{h:?}"),
            v => panic!("not a histogram: {v:?}"),
        },
        other => panic!("{other:?}"),
    }
    // Task durations: the three that ended here.
    let ended: f64 = samples(&scrape, "drover_task_duration_seconds")
        .iter()
        .map(|s| match &s.value {
            PValue::Histogram(h) => h.last().unwrap().count,
            v => panic!("{v:?}"),
        })
        .sum();
    assert_eq!(ended, 3.0);

    // A follower of the task's events is counted while it follows.
    let followers = |env: &Env| {
        samples(&metrics(env), "drover_sse_followers")
            .iter()
            .find(|s| label(s, "stream") == "task")
            .map(|s| value(s))
            .unwrap()
    };
    assert_eq!(followers(&env), 0.0);
    let mut follow = env
        .cmd(&["logs", "--follow", &sleeper])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the follower counted", Duration::from_secs(30), || {
        (followers(&env) == 1.0).then_some(())
    });
    follow.kill().unwrap();
    follow.wait().unwrap();
    wait_for("the follower gone", Duration::from_secs(30), || {
        (followers(&env) == 0.0).then_some(())
    });

    // `drover metrics` prints the same families.
    let printed = env.ok(&["metrics"]);
    parse(&format!("{printed}\n").replace("\n\n", "\n"));
    let (_, _, served) = scrape_sock(&env);
    assert_eq!(families(&printed), families(&served));
    assert!(families(&served).len() >= 12, "{:?}", families(&served));
    env.ok(&["stop", &sleeper]);
}

/// An in-process team server with a scrape token.
fn team_server(
    env: &Env,
    token: &str,
) -> (
    tokio::runtime::Runtime,
    InProcessDaemon,
    std::net::SocketAddr,
) {
    let rt = runtime();
    let exe = Path::new(env!("CARGO_BIN_EXE_drover"));
    let addr_file = drover_daemon::api::tcp::addr_file(&env.home);
    let token = token.to_string();
    let daemon = rt.block_on(InProcessDaemon::start_with(&env.home, exe, move |c| {
        c.listen = Some(drover_daemon::config::Listen {
            addr: "127.0.0.1:0".parse().unwrap(),
            tls: None,
        });
        c.metrics_token = Some(drover_types::Secret::new(&token));
    }));
    let addr = wait_for("listen.addr", Duration::from_secs(30), || {
        std::fs::read_to_string(&addr_file)
            .ok()?
            .trim()
            .parse()
            .ok()
    });
    (rt, daemon, addr)
}

#[test]
fn who_may_scrape() {
    let env = Env::new();
    let token = "scrape-token-0123456789abcdef";
    let (rt, daemon, addr) = team_server(&env, token);
    let keys = drover_test_support::keys::Keys::open(&env.home);
    keys.team("a");
    keys.team("b");
    let reader = keys.key("a", &[drover_types::Scope::UsageRead], None);
    let writer = keys.key("a", &[drover_types::Scope::TasksWrite], None);
    let get = |path: &str, auth: Option<&str>| {
        let mut h = vec![];
        if let Some(a) = auth {
            h.push(("authorization", a));
        }
        let (s, head, b) = drover_test_support::net::request(addr, "GET", path, &h, b"");
        (s, head, String::from_utf8(b).unwrap())
    };
    let bearer = |t: &str| format!("Bearer {t}");

    // No key: 401 with the challenge; a key without usage:read: 403.
    let (s, head, _) = get("/metrics", None);
    assert_eq!(s, 401);
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{head}"
    );
    assert_eq!(get("/metrics", Some(&bearer(&writer.secret))).0, 403);
    // A wrong token, and the right one with a byte more or less: 401.
    for wrong in [
        "scrape-token-0123456789abcdeX",
        "scrape-token-0123456789abcde",
        "scrape-token-0123456789abcdef0",
    ] {
        assert_eq!(get("/metrics", Some(&bearer(wrong))).0, 401, "{wrong}");
    }
    // The scrape token: everything, and for /metrics only.
    let (s, head, text) = get("/metrics", Some(&bearer(token)));
    assert_eq!(s, 200, "{text}");
    assert!(head.to_ascii_lowercase().contains(CONTENT_TYPE), "{head}");
    let all = parse(&text);
    assert!(!samples(&all, "drover_slots").is_empty());
    assert!(!samples(&all, "drover_sse_followers").is_empty());
    for path in ["/v1/usage", "/v1/tasks", "/v1/teams"] {
        assert_eq!(get(path, Some(&bearer(token))).0, 401, "{path}");
    }
    // A usage:read key: its team's task counts and usage only, no fleet figures.
    let (s, _, text) = get("/metrics", Some(&bearer(&reader.secret)));
    assert_eq!(s, 200, "{text}");
    let mine = parse(&text);
    assert_eq!(samples(&mine, "drover_tasks").len(), 9);
    assert!(
        samples(&mine, "drover_slots").is_empty()
            && samples(&mine, "drover_gateway_requests_total").is_empty()
    );
    assert!(samples(&mine, "drover_sse_followers").is_empty());

    // A task of team b: counted for the scrape token, not for team a's key.
    let (s, body) = drover_test_support::http::json(
        &env.home.join("daemon.sock"),
        "POST",
        "/v1/tasks",
        &json!({"repo": env.repo.display().to_string(), "prompt": "x", "agent": "command",
                "cmd": "sleep 600", "team": "b"})
        .to_string(),
    );
    assert_eq!(s, 201, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let count = |scrape: &Scrape| -> f64 {
        samples(scrape, "drover_tasks")
            .iter()
            .map(|s| value(s))
            .sum()
    };
    assert_eq!(count(&parse(&get("/metrics", Some(&bearer(token))).2)), 1.0);
    assert_eq!(
        count(&parse(&get("/metrics", Some(&bearer(&reader.secret))).2)),
        0.0
    );

    // The task's own socket: 403.
    let sock = env.home.join("run").join(&id).join("daemon.sock");
    wait_for("the task's socket", Duration::from_secs(60), || {
        sock.exists().then_some(())
    });
    let (s, _, b) = drover_test_support::http::request(&sock, "GET", "/metrics", &[], b"");
    assert_eq!(s, 403, "{}", String::from_utf8_lossy(&b));
    rt.block_on(daemon.shutdown());
}
