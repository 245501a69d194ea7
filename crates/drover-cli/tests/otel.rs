//! OpenTelemetry (docs/design.md §10): a daemon with `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at an
//! OTLP/HTTP receiver exports one trace per pool run — an `invoke_agent` span per task, its
//! `sandbox`, `gate` and `commit` children, a `chat` span per gateway request with the GenAI
//! attributes — and the `gen_ai.client.token.usage` histogram; the agents see `TRACEPARENT` of
//! that trace. The collector's headers reach the collector and nothing else; an unreachable
//! collector slows nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use drover_test_support::otlp::{OtlpReceiver, Received};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const SECRET: &str = "otlp-s3cret-4f2a";

fn scenarios() -> Value {
    json!({ "scenarios": [
        { "name": "tp", "match": "OTEL-TP", "turns": [
            { "content": [ {"type": "tool_use", "name": "Bash",
                            "input": {"command": "printf %s \"$TRACEPARENT\" > tp.txt",
                                      "description": "record the trace context"}} ],
              "usage": {"input": 1000, "output": 50, "cache_read": 200, "cache_creation": 300} },
            { "content": [ {"type": "text", "text": "recorded"} ],
              "usage": {"input": 1100, "output": 30} } ] },
        { "name": "default", "turns": [ { "content": [ {"type": "text", "text": "hello"} ] } ] }
    ]})
}

fn with_otlp(env: Env, endpoint: &str) -> Env {
    env.with_env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .with_env(
            "OTEL_EXPORTER_OTLP_HEADERS",
            &format!("authorization=Bearer%20{SECRET}"),
        )
        .with_env("OTEL_METRIC_EXPORT_INTERVAL", "300")
        .with_env("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
}

fn sum(spans: &[&drover_test_support::otlp::Span], key: &str) -> i64 {
    spans.iter().map(|s| s.int(key).unwrap_or(0)).sum()
}

#[test]
fn a_pool_run_is_one_trace_with_task_chat_and_child_spans() {
    let receiver = OtlpReceiver::start();
    let provider = Provider::start(scenarios());
    let env = with_otlp(Env::claude(&provider), &receiver.endpoint());
    env.ok(&[
        "pool",
        "start",
        "tp",
        "--slots",
        "3",
        "--count",
        "3",
        "--model",
        "claude-sonnet-4-6",
        "--permissions",
        "allow",
        "--verify",
        "test -s tp.txt",
        "--prompt",
        "OTEL-TP {n}",
    ]);
    let pool = drover_test_support::poll::until(
        "the pool to finish",
        Duration::from_secs(240),
        Duration::from_millis(200),
        || env.json(&["pool", "show", "tp", "--json"]),
        |p| p["state"] == "done",
    );
    assert_eq!(pool["successes"], 3, "{pool:#}");
    let all: Vec<Value> = serde_json::from_str(&env.ok(&["ls", "--all", "--json"])).unwrap();
    let tasks: Vec<Value> = all.into_iter().filter(|t| t["pool"] == "tp").collect();
    assert_eq!(tasks.len(), 3);
    let ids: BTreeSet<String> = tasks
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();

    let got = receiver.wait_for(
        "3 invoke_agent spans, the pool's root span and the token histogram",
        Duration::from_secs(60),
        |r| {
            r.named("invoke_agent").len() >= 3
                && !r.named("pool tp").is_empty()
                && r.latest("gen_ai.client.token.usage").len() >= 2
        },
    );

    // One trace for the pool's tasks, under the pool's root span.
    let root = got.named("pool tp")[0].clone();
    assert_eq!(root.parent_span_id, "", "the pool's span is the root");
    let agents = got.named("invoke_agent");
    assert_eq!(agents.len(), 3, "{agents:#?}");
    let traces: BTreeSet<&str> = agents.iter().map(|s| s.trace_id.as_str()).collect();
    assert_eq!(traces.len(), 1, "one trace id for the pool: {traces:?}");
    assert_eq!(agents[0].trace_id, root.trace_id);
    assert_eq!(root.resource["service.name"], "drover");
    assert_eq!(root.resource["deployment.environment"], "test");

    for t in &tasks {
        let id = t["id"].as_str().unwrap();
        let span = agents
            .iter()
            .find(|s| s.str("gen_ai.agent.id") == id)
            .unwrap_or_else(|| panic!("no invoke_agent span for {id}: {agents:#?}"));
        assert_eq!(span.parent_span_id, root.span_id);
        assert_eq!(span.str("gen_ai.operation.name"), "invoke_agent");
        assert_eq!(span.str("drover.task.id"), id);
        assert_eq!(span.str("drover.pool"), "tp");
        assert_eq!(span.str("gen_ai.provider.name"), "anthropic");
        assert_eq!(span.str("gen_ai.request.model"), "claude-sonnet-4-6");
        assert_eq!(span.str("drover.outcome"), "succeeded");
        assert!(!span.str("drover.repo").is_empty());
        assert_ne!(span.status_code, 2, "a success is no error: {span:#?}");
        assert!(span.end_unix_nano > span.start_unix_nano);
        let usage = &t["usage"];
        assert_eq!(
            span.int("gen_ai.usage.input_tokens"),
            usage["input_tokens"].as_i64(),
            "{span:#?}\n{t:#}"
        );

        // The agent saw TRACEPARENT of this trace and this task's span (its Bash tool wrote
        // it into the committed work).
        let branch = t["branch"].as_str().unwrap();
        let seen = env.git(&["show", &format!("{branch}:tp.txt")]);
        assert_eq!(
            seen.trim(),
            format!("00-{}-{}-01", span.trace_id, span.span_id),
            "TRACEPARENT the agent saw"
        );

        // Children: sandbox, gate, commit.
        let children: Vec<_> = got
            .spans
            .iter()
            .filter(|s| s.parent_span_id == span.span_id)
            .collect();
        for name in ["sandbox", "gate", "commit"] {
            let c = children
                .iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("no {name} span under task {id}: {children:#?}"));
            assert_eq!(c.trace_id, span.trace_id);
        }
        let gate = children.iter().find(|s| s.name == "gate").unwrap();
        assert_eq!(gate.str("drover.gate.command"), "test -s tp.txt");
        assert_eq!(gate.int("drover.gate.exit_code"), Some(0));

        // One chat span per gateway request, under the task's span; tokens add up to the
        // task's usage.
        let chats: Vec<_> = children
            .iter()
            .filter(|s| s.str("gen_ai.operation.name") == "chat")
            .copied()
            .collect();
        assert!(chats.len() >= 2, "{chats:#?}");
        for c in &chats {
            assert_eq!(c.kind, 3, "chat spans are client spans");
            assert_eq!(c.name, format!("chat {}", c.str("gen_ai.request.model")));
            assert_eq!(c.str("gen_ai.provider.name"), "anthropic");
            assert!(!c.str("server.address").is_empty(), "{c:#?}");
            assert!(
                c.attributes.contains_key("gen_ai.response.finish_reasons"),
                "{c:#?}"
            );
        }
        assert!(chats
            .iter()
            .any(|c| c.str("gen_ai.request.model") == "claude-sonnet-4-6"));
        assert!(chats
            .iter()
            .any(|c| c.str("gen_ai.response.model") == "claude-sonnet-4-6"));
        for (attr, field) in [
            ("gen_ai.usage.input_tokens", "input_tokens"),
            ("gen_ai.usage.output_tokens", "output_tokens"),
            ("gen_ai.usage.cache_read.input_tokens", "cache_read_tokens"),
            (
                "gen_ai.usage.cache_creation.input_tokens",
                "cache_write_tokens",
            ),
        ] {
            assert_eq!(
                sum(&chats, attr),
                usage[field].as_i64().unwrap(),
                "{attr} over the chat spans vs the task's {field}\n{t:#}"
            );
        }
    }
    let chat_ids: BTreeSet<String> = got
        .spans
        .iter()
        .filter(|s| s.str("gen_ai.operation.name") == "chat")
        .map(|s| s.str("drover.task.id").to_string())
        .collect();
    assert_eq!(chat_ids, ids, "chat spans only for the pool's tasks");

    // The token histogram: input and output, by provider and model, adding up to the usage.
    let got = receiver.wait_for(
        "the token histogram to count every task's tokens",
        Duration::from_secs(30),
        |r: &Received| {
            let total: f64 = r
                .latest("gen_ai.client.token.usage")
                .iter()
                .filter(|p| p.attributes["gen_ai.token.type"] == "input")
                .map(|p| p.sum)
                .sum();
            let want: i64 = tasks
                .iter()
                .map(|t| t["usage"]["input_tokens"].as_i64().unwrap())
                .sum();
            total as i64 == want
        },
    );
    let points = got.latest("gen_ai.client.token.usage");
    for p in &points {
        assert_eq!(p.kind, "histogram");
        assert_eq!(p.unit, "{token}");
        assert_eq!(p.attributes["gen_ai.provider.name"], "anthropic");
        assert_eq!(p.attributes["gen_ai.operation.name"], "chat");
        assert!(p.attributes.contains_key("gen_ai.request.model"));
    }
    let types: BTreeSet<&str> = points
        .iter()
        .map(|p| p.attributes["gen_ai.token.type"].as_str().unwrap())
        .collect();
    assert_eq!(types, BTreeSet::from(["input", "output"]));
    let out_total: f64 = points
        .iter()
        .filter(|p| p.attributes["gen_ai.token.type"] == "output")
        .map(|p| p.sum)
        .sum();
    let out_want: i64 = tasks
        .iter()
        .map(|t| t["usage"]["output_tokens"].as_i64().unwrap())
        .sum();
    assert_eq!(out_total as i64, out_want);
    assert!(got
        .points
        .iter()
        .any(|p| p.metric == "gen_ai.client.operation.duration" && p.unit == "s"));

    // The collector's credential went to the collector, and nowhere else.
    assert!(got.requests.iter().all(|(_, h)| h
        .iter()
        .any(|(k, v)| k == "authorization" && v == &format!("Bearer {SECRET}"))));
    let doctor = env.ok(&["doctor"]);
    assert!(
        doctor.contains(&format!("{}/v1/traces", receiver.endpoint())),
        "{doctor}"
    );
    env.ok(&["daemon", "stop"]);
    assert_no_secret(&env);
}

/// No file under DROVER_HOME (the daemon's log, the store, every task's launch file, logs,
/// events and its agent's private home) holds the collector's credential.
fn assert_no_secret(env: &Env) {
    let mut stack = vec![env.home.clone()];
    let mut seen = 0;
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                if let Ok(bytes) = std::fs::read(&p) {
                    seen += 1;
                    assert!(
                        !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
                        "{} holds the OTLP header",
                        p.display()
                    );
                }
            }
        }
    }
    assert!(seen > 10, "only {seen} files looked at");
}

#[test]
fn an_unreachable_collector_slows_nothing() {
    // Accepts connections and never answers: every export waits for its timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let env = with_otlp(Env::new(), &endpoint).with_env("OTEL_EXPORTER_OTLP_TIMEOUT", "30000");
    let started = Instant::now();
    let mut ids = vec![];
    for i in 0..3 {
        ids.push(env.run_command_task("printf '%s\\n' \"$TRACEPARENT\"", &format!("trace {i}")));
    }
    for id in &ids {
        let t = env.wait(id);
        assert_eq!(t["state"], "succeeded", "{t:#}");
        // The agent's TRACEPARENT: its own trace (no pool), its own span.
        let evs = env.events(id);
        let line = serde_json::to_string(&evs).unwrap();
        let tp = regex_like_traceparent(&line).unwrap_or_else(|| panic!("{line}"));
        assert!(tp.starts_with("00-") && tp.ends_with("-01"), "{tp}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "three command tasks took {:?}",
        started.elapsed()
    );
    let stop = Instant::now();
    env.ok(&["daemon", "stop"]);
    assert!(
        stop.elapsed() < Duration::from_secs(20),
        "the daemon took {:?} to stop with a silent collector",
        stop.elapsed()
    );
    drop(silent);
}

/// The first `00-<32 hex>-<16 hex>-01` in `s`.
fn regex_like_traceparent(s: &str) -> Option<String> {
    let b = s.as_bytes();
    (0..b.len().saturating_sub(55)).find_map(|i| {
        let c = s.get(i..i + 55)?;
        let parts: Vec<&str> = c.split('-').collect();
        let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|x| x.is_ascii_hexdigit());
        (parts.len() == 4
            && parts[0] == "00"
            && hex(parts[1], 32)
            && hex(parts[2], 16)
            && parts[3] == "01")
            .then(|| c.to_string())
    })
}

#[test]
fn a_lone_failed_task_is_its_own_trace_with_an_error_status() {
    use sha2::Digest;
    let receiver = OtlpReceiver::start();
    let env = with_otlp(Env::new(), &receiver.endpoint());
    let id = env.ok(&[
        "run",
        "--agent",
        "command",
        "--cmd",
        "printf '%s\\n' \"$TRACEPARENT\"",
        "--verify",
        "printf '%s\\n' \"$TRACEPARENT\"; exit 3",
        "lone",
    ]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "failed", "{t:#}");
    assert_eq!(t["outcome"]["error_kind"], "gate_failed");
    let got = receiver.wait_for("the task's span", Duration::from_secs(60), |r| {
        r.named("invoke_agent")
            .iter()
            .any(|s| s.str("gen_ai.agent.id") == id)
    });
    let span = got
        .named("invoke_agent")
        .into_iter()
        .find(|s| s.str("gen_ai.agent.id") == id)
        .unwrap()
        .clone();
    // Derived from the task id alone: SHA-256("task:" id).
    let d = sha2::Sha256::digest(format!("task:{id}").as_bytes());
    assert_eq!(span.trace_id, hex::encode(&d[..16]));
    assert_eq!(span.span_id, hex::encode(&d[..8]));
    assert_eq!(span.parent_span_id, "", "a lone task is its trace's root");
    assert_eq!(span.status_code, 2, "{span:#?}");
    assert_eq!(span.str("drover.outcome"), "gate_failed");
    assert_eq!(span.str("error.type"), "gate_failed");
    assert_eq!(
        span.str("gen_ai.provider.name"),
        "",
        "a command agent has no provider"
    );
    let gate = got
        .spans
        .iter()
        .find(|s| s.name == "gate" && s.parent_span_id == span.span_id)
        .unwrap_or_else(|| panic!("no gate span: {:#?}", got.spans));
    assert_eq!(gate.int("drover.gate.exit_code"), Some(3));
    assert_eq!(gate.status_code, 2);
    // The agent and its gate printed the TRACEPARENT of its span.
    let want = format!("00-{}-{}-01", span.trace_id, span.span_id);
    let evs = env.events(&id);
    let text: Vec<&Value> = evs.iter().filter(|e| e["kind"] == "text").collect();
    let line = serde_json::to_string(&text).unwrap();
    assert_eq!(
        regex_like_traceparent(&line).as_deref(),
        Some(want.as_str()),
        "{line}"
    );
    let gate_ev = evs
        .iter()
        .find(|e| e["kind"] == "gate")
        .expect("a gate event");
    assert_eq!(
        gate_ev["data"]["output_tail"].as_str().unwrap().trim(),
        want,
        "{gate_ev:#}"
    );
}
