//! The audit log and the accounting export (docs/design.md §7, docs/accounting.md): every
//! mutating call recorded (refusals too, from inside a task's sandbox too), one accounting row
//! per finished task equal to `drover usage`, NDJSON = CSV, no secret anywhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn audit(env: &Env, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["audit", "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&env.ok(&args)).unwrap()
}

/// The records of `action` (in seq order).
fn of<'a>(records: &'a [Value], action: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["action"] == action).collect()
}

/// Texts that must never reach the audit log or an export: API keys, gateway tokens, the
/// provider key.
fn assert_no_secret(what: &str, text: &str) {
    for secret in ["drv_", "drv-", "sk-ant-test-key"] {
        assert!(!text.contains(secret), "{secret} in {what}:\n{text}");
    }
}

/// `drover audit export --format FORMAT …`'s stdout exactly as written (not trimmed).
fn export(env: &Env, format: &str, extra: &[&str]) -> String {
    let mut args = vec!["audit", "export", "--format", format];
    args.extend_from_slice(extra);
    let out = env.run(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn is_2xx(v: &Value) -> bool {
    v.as_u64().is_some_and(|s| (200..300).contains(&s))
}

#[test]
fn mutating_calls_over_the_unix_socket_are_audited_with_their_answers() {
    let env = Env::new();
    let id = env.run_command_task("sleep 60", "long");
    env.until(&id, "running", |t| t["state"] == "running");
    // A message to a task; a refused stop of a task that does not exist; a malformed create.
    let _ = env.run(&["send", &id, "hello"]);
    let out = env.run(&["stop", "nosuchtask"]);
    assert_eq!(out.status.code(), Some(2));
    let (status, _) = api_json(&env, "POST", "/v1/tasks", "{not json");
    assert_eq!(status, 400);
    // A path that looks like a key is not kept.
    let (status, _) = api_json(&env, "POST", "/v1/tasks/drv_0123456789abcdef/stop", "{}");
    assert_eq!(status, 404);
    // Forged headers and a key in the query change nothing: the socket says who and from where.
    let (status, _, _) = http(
        &env,
        "POST",
        "/v1/tasks/nosuchtask/stop?api_key=drv_querysecret",
        &[
            ("authorization", "Bearer drv_headersecret"),
            ("x-forwarded-for", "6.6.6.6"),
            ("content-type", "application/json"),
        ],
        b"{}",
    );
    assert_eq!(status, 404);
    env.ok(&["stop", &id]);
    env.wait(&id);
    env.ok(&["rm", &id]);
    env.ok(&[
        "pool", "start", "p1", "--slots", "1", "--agent", "command", "--cmd", "sleep 60",
        "--prompt", "x",
    ]);
    env.ok(&["pool", "stop", "p1", "--hard"]);
    env.ok(&["lock", "build", "--", "true"]);
    // A mutating call to no route: `unknown`, no target.
    let (status, _) = api_json(&env, "POST", "/v1/nope/drv_x", "{}");
    assert_eq!(status, 404);
    // Reads are not recorded.
    env.ok(&["ls", "--all"]);
    env.ok(&["usage"]);

    let records = audit(&env, &[]);
    let seqs: Vec<i64> = records.iter().map(|r| r["seq"].as_i64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "{records:#?}"
    );
    for r in &records {
        assert_eq!(r["actor"], json!({"key_id": null, "team": null}), "{r}");
        assert_eq!(r["remote_addr"], "unix", "{r}");
        assert!(r["at"].as_str().unwrap().ends_with('Z'), "{r}");
    }
    let creates = of(&records, "task.create");
    assert_eq!(creates[0]["target"], id.as_str());
    // 200 today, 201 once creation answers 201 (docs/design.md §7).
    assert!(is_2xx(&creates[0]["status"]), "{creates:#?}");
    // The malformed one: refused, recorded, no target.
    assert!(
        creates
            .iter()
            .any(|r| r["status"] == 400 && r["target"].is_null()),
        "{creates:#?}"
    );
    assert_eq!(of(&records, "task.send")[0]["target"], id.as_str());
    let stops = of(&records, "task.stop");
    let refused = stops
        .iter()
        .find(|r| r["target"] == "nosuchtask")
        .expect("the refused stop");
    assert_eq!(refused["status"], 404);
    assert_eq!(
        stops.iter().filter(|r| r["target"] == "nosuchtask").count(),
        2,
        "{stops:#?}"
    );
    let text = serde_json::to_string(&records).unwrap();
    assert!(
        !text.contains("6.6.6.6") && !text.contains("secret"),
        "{text}"
    );
    assert!(stops
        .iter()
        .any(|r| r["target"] == "(redacted)" && r["status"] == 404));
    assert!(stops
        .iter()
        .any(|r| r["target"] == id.as_str() && r["status"] == 200));
    let rm = of(&records, "task.delete");
    assert_eq!(
        (rm[0]["target"].as_str(), rm[0]["status"].as_u64()),
        (Some(id.as_str()), Some(200))
    );
    let pool = of(&records, "pool.create");
    assert_eq!(pool[0]["target"], "p1");
    assert!(is_2xx(&pool[0]["status"]), "{pool:#?}");
    assert_eq!(of(&records, "pool.stop")[0]["target"], "p1");
    let lock = of(&records, "lock.acquire");
    assert_eq!(
        (lock[0]["target"].as_str(), lock[0]["status"].as_u64()),
        (Some("build"), Some(200))
    );
    // Only mutating calls: ls, usage, show, wait and audit itself left nothing.
    let unknown = of(&records, "unknown");
    assert_eq!(unknown.len(), 1, "{records:#?}");
    assert_eq!(
        (unknown[0]["status"].as_u64(), &unknown[0]["target"]),
        (Some(404), &Value::Null)
    );
    for r in &records {
        let a = r["action"].as_str().unwrap();
        assert!(a.contains('.') || a == "unknown", "{r}");
    }
    assert_no_secret(
        "drover audit --json",
        &serde_json::to_string(&records).unwrap(),
    );

    // The table: who is `owner`, from `unix`.
    let table = env.ok(&["audit"]);
    let head: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        head,
        ["SEQ", "AT", "WHO", "TEAM", "ACTION", "TARGET", "FROM", "STATUS"]
    );
    assert!(
        table
            .lines()
            .any(|l| l.contains("owner") && l.contains("task.delete") && l.contains("unix")),
        "{table}"
    );
    // --limit, and --since as an age or a time.
    assert_eq!(audit(&env, &["--limit", "2"]).len(), 2);
    assert_eq!(audit(&env, &["--since", "1h"]).len(), records.len());
    assert!(audit(&env, &["--since", "2999-01-01T00:00:00Z"]).is_empty());
    let out = env.run(&["audit", "--since", "yesterday"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--since"));
}

#[test]
fn calls_from_inside_a_task_are_audited_as_that_task() {
    let env = Env::new();
    // From the task's own socket: a lock (allowed) and a stop of itself (refused, 403).
    let id = env.run_command_task(
        "drover lock inner -- true && (drover stop \"$DROVER_TASK_ID\" || true)",
        "inside",
    );
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    let records = audit(&env, &[]);
    let from_task: Vec<&Value> = records
        .iter()
        .filter(|r| r["remote_addr"] == format!("task:{id}").as_str())
        .collect();
    let got: Vec<(String, String, u64)> = from_task
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_string(),
                r["target"].as_str().unwrap_or("").to_string(),
                r["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("lock.acquire".to_string(), "inner".to_string(), 200),
            ("task.stop".to_string(), id.clone(), 403)
        ],
        "{records:#?}"
    );
}

#[test]
fn bad_filters_and_formats_are_refused_naming_the_valid_ones() {
    let env = Env::new();
    env.ok(&["ls"]);
    let (status, body) = api_json(&env, "GET", "/v1/audit/export?format=xml", "");
    assert_eq!(status, 400, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["kind"], "invalid");
    let msg = v["error"].as_str().unwrap();
    assert!(msg.contains("ndjson") && msg.contains("csv"), "{msg}");
    assert!(!msg.contains('\n'));
    for (path, needle) in [
        ("/v1/usage?by=bogus", "tag:NAME"),
        ("/v1/usage?by=tag:", "tag:NAME"),
        ("/v1/audit?since=yesterday", "RFC 3339"),
        ("/v1/audit?cursor=abc", "cursor"),
        ("/v1/audit?limit=-1", "limit"),
        ("/v1/audit/export?since=soon", "RFC 3339"),
    ] {
        let (status, body) = api_json(&env, "GET", path, "");
        assert_eq!(status, 400, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["kind"], "invalid", "{path}");
        assert!(
            v["error"].as_str().unwrap().contains(needle),
            "{path}: {body}"
        );
    }
    let out = env.run(&["usage", "--by", "bogus"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("task, pool, model, day, team or tag:NAME"),
        "{err}"
    );
    let out = env.run(&["audit", "export", "--format", "xml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ndjson"));
    // Reads of a log with nothing matching: empty, not an error.
    assert_eq!(export(&env, "ndjson", &[]), "");
    assert_eq!(
        export(&env, "csv", &[]).lines().count(),
        1,
        "the header only"
    );
}

/// RFC 4180 records (quoted cells, doubled quotes, CRLF).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = vec![];
    let mut row = vec![];
    let mut cell = String::new();
    let mut quoted = false;
    let mut it = text.chars().peekable();
    while let Some(c) = it.next() {
        match (quoted, c) {
            (true, '"') if it.peek() == Some(&'"') => {
                it.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    assert!(
        cell.is_empty() && row.is_empty(),
        "unterminated last record"
    );
    rows
}

/// A JSON value as its CSV cell: null empty, strings bare, objects as JSON.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn create(env: &Env, body: Value) -> String {
    let (status, text) = api_json(env, "POST", "/v1/tasks", &body.to_string());
    assert!((200..300).contains(&status), "{text}");
    serde_json::from_str::<Value>(&text).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn an_export_after_a_mixed_run_bills_exactly_what_usage_metered() {
    let provider = Provider::start(json!({ "scenarios": [
        { "name": "write", "match": "WRITE", "turns": [
            { "content": [{ "type": "tool_use", "name": "Write", "input": { "file_path": "w.txt", "content": "w" } }],
              "usage": { "input": 1200, "output": 80, "cache_read": 300, "cache_creation": 50 } },
            { "content": [{ "type": "text", "text": "Wrote w.txt." }],
              "usage": { "input": 1500, "output": 40 } } ] },
        { "name": "forever", "match": "FOREVER", "turns": [
            { "content": [{ "type": "tool_use", "name": "Write", "input": { "file_path": "loop.txt", "content": "again\n" } }],
              "usage": { "input": 10000, "output": 100 }, "repeat": true } ] },
        { "name": "default", "turns": [{ "content": [{ "type": "text", "text": "?" }] }] }
    ]}));
    let env = Env::claude(&provider);
    env.ok(&["ls"]);
    let repo = env.repo.to_str().unwrap().to_string();
    let claude = |prompt: &str, customer: &str, extra: Value| {
        let mut body = json!({
            "repo": repo, "prompt": prompt, "agent": "claude", "model": "claude-sonnet-4-6",
            "permissions": "allow", "tags": { "customer": customer },
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        create(&env, body)
    };
    let command = |cmd: &str, tags: Value| {
        create(
            &env,
            json!({ "repo": repo, "prompt": "c", "agent": "command", "cmd": cmd, "tags": tags }),
        )
    };
    // Succeeded with usage (two customers), failed with usage (its budget), failed and
    // cancelled without usage, and one untagged.
    let ok_acme = claude("WRITE: w.txt", "acme", json!({}));
    let ok_globex = claude("WRITE: w.txt", "globex", json!({}));
    let over_budget = claude("FOREVER: go", "acme", json!({ "max_usd": 0.3 }));
    let failed = command("exit 3", json!({ "customer": "globex" }));
    let cancelled = command("sleep 60", json!({ "customer": "acme" }));
    let untagged = command("true", json!({}));
    env.until(&cancelled, "running", |t| t["state"] == "running");
    env.ok(&["stop", &cancelled]);
    let mut state = BTreeMap::new();
    for id in [
        &ok_acme,
        &ok_globex,
        &over_budget,
        &failed,
        &cancelled,
        &untagged,
    ] {
        state.insert(
            id.clone(),
            env.wait(id)["state"].as_str().unwrap().to_string(),
        );
    }
    assert_eq!(state[&ok_acme], "succeeded", "{:#?}", env.events(&ok_acme));
    assert_eq!(state[&ok_globex], "succeeded");
    assert_eq!(state[&over_budget], "failed");
    assert_eq!(state[&failed], "failed");
    assert_eq!(state[&cancelled], "cancelled");
    assert_eq!(state[&untagged], "succeeded");

    let ndjson = export(&env, "ndjson", &[]);
    let rows: Vec<Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Exactly one row per finished task.
    let mut ids: Vec<&str> = rows
        .iter()
        .map(|r| r["task_id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut want: Vec<&str> = state.keys().map(String::as_str).collect();
    want.sort();
    assert_eq!(ids, want);
    let by_id: BTreeMap<&str, &Value> = rows
        .iter()
        .map(|r| (r["task_id"].as_str().unwrap(), r))
        .collect();
    for r in &rows {
        assert_eq!(r["schema"], 1);
        let id = r["task_id"].as_str().unwrap();
        assert_eq!(r["repo"].as_str(), Some(repo.as_str()), "{r}");
        assert!(
            r["finished_at"].is_string() && r["duration_s"].as_f64().unwrap() >= 0.0,
            "{r}"
        );
        match state[id].as_str() {
            "succeeded" => assert_eq!(r["verdict"], "success", "{r}"),
            "failed" => assert_eq!(r["verdict"], "fail", "{r}"),
            _ => {}
        }
    }
    assert_eq!(by_id[over_budget.as_str()]["error_kind"], "budget_exceeded");
    assert_eq!(by_id[ok_acme.as_str()]["agent"], "claude");
    assert_eq!(by_id[ok_acme.as_str()]["model"], "claude-sonnet-4-6");
    assert_eq!(by_id[untagged.as_str()]["tags"], json!({}));

    // Tokens and dollars equal `drover usage --by task`, row by row.
    let usage: Vec<Value> =
        serde_json::from_str(&env.ok(&["usage", "--by", "task", "--json"])).unwrap();
    let metered: BTreeMap<&str, &Value> = usage
        .iter()
        .map(|l| (l["key"].as_str().unwrap(), l))
        .collect();
    for id in [&ok_acme, &ok_globex, &over_budget] {
        assert!(
            metered.contains_key(id.as_str()),
            "{id} has no usage: {usage:#?}"
        );
    }
    for r in &rows {
        let id = r["task_id"].as_str().unwrap();
        let fields = [
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
        ];
        match metered.get(id) {
            Some(l) => {
                for f in fields {
                    assert_eq!(r[f], l[f], "{id} {f}");
                }
                let (a, b) = (
                    r["cost_usd"].as_f64().unwrap(),
                    l["cost_usd"].as_f64().unwrap(),
                );
                assert!(a > 0.0 && (a - b).abs() < 1e-9, "{id}: {a} vs {b}");
            }
            None => {
                for f in fields {
                    assert_eq!(r[f], 0, "{id} {f}");
                }
                assert_eq!(r["cost_usd"], 0.0, "{id}");
            }
        }
    }
    // Summed by tags.customer, they equal `drover usage --by tag:customer`.
    let by_tag: Vec<Value> =
        serde_json::from_str(&env.ok(&["usage", "--by", "tag:customer", "--json"])).unwrap();
    let mut sums: BTreeMap<String, (u64, u64, f64)> = BTreeMap::new();
    for r in &rows {
        if !metered.contains_key(r["task_id"].as_str().unwrap()) {
            continue;
        }
        let k = r["tags"]["customer"].as_str().unwrap_or("-").to_string();
        let e = sums.entry(k).or_default();
        e.0 += r["input_tokens"].as_u64().unwrap();
        e.1 += r["output_tokens"].as_u64().unwrap();
        e.2 += r["cost_usd"].as_f64().unwrap();
    }
    let keys: Vec<&str> = by_tag.iter().map(|l| l["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["acme", "globex"], "{by_tag:#?}");
    for l in &by_tag {
        let s = &sums[l["key"].as_str().unwrap()];
        assert_eq!(l["input_tokens"].as_u64().unwrap(), s.0);
        assert_eq!(l["output_tokens"].as_u64().unwrap(), s.1);
        assert!((l["cost_usd"].as_f64().unwrap() - s.2).abs() < 1e-9, "{l}");
    }
    // The CLI table groups the same way.
    let table = env.ok(&["usage", "--by", "tag:customer"]);
    assert!(table.starts_with("TAG:CUSTOMER"), "{table}");

    // CSV: the header in schema order, then the same rows, cell for cell.
    let csv = export(&env, "csv", &[]);
    assert!(csv.ends_with("\r\n"));
    let table = parse_csv(&csv);
    let header: Vec<&str> = table[0].iter().map(String::as_str).collect();
    assert_eq!(header, drover_types::ACCOUNTING_FIELDS);
    assert_eq!(table.len() - 1, rows.len());
    for (csv_row, json_row) in table[1..].iter().zip(&rows) {
        let want: Vec<String> = header.iter().map(|f| cell(&json_row[*f])).collect();
        assert_eq!(csv_row, &want);
    }
    // Filters: by time (nothing finished in the future) and by team (these have none).
    assert_eq!(
        env.ok(&[
            "audit",
            "export",
            "--format",
            "ndjson",
            "--since",
            "2999-01-01T00:00:00Z"
        ]),
        ""
    );
    assert_eq!(
        env.ok(&["audit", "export", "--format", "ndjson", "--team", "nobody"]),
        ""
    );
    // No key, token or provider key in the export or the log.
    assert_no_secret("the NDJSON export", &ndjson);
    assert_no_secret("the CSV export", &csv);
    assert_no_secret("drover audit --json", &env.ok(&["audit", "--json"]));
}

#[test]
fn usage_and_exports_filter_by_team() {
    let env = Env::new();
    env.ok(&["team", "create", "a"]);
    env.ok(&["team", "create", "b"]);
    let repo = env.repo.to_str().unwrap().to_string();
    let a = create(
        &env,
        json!({ "repo": repo, "prompt": "a", "agent": "command", "cmd": "true", "team": "a" }),
    );
    let b = create(
        &env,
        json!({ "repo": repo, "prompt": "b", "agent": "command", "cmd": "true", "team": "b" }),
    );
    env.wait(&a);
    env.wait(&b);
    let only = |team: &str| -> Vec<String> {
        env.ok(&["audit", "export", "--format", "ndjson", "--team", team])
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["task_id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    assert_eq!(only("a"), [a]);
    assert_eq!(only("b"), [b]);
    let (status, body) = api_json(&env, "GET", "/v1/usage?by=team&team=a", "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "[]", "command tasks meter nothing");
}
