//! Input that used to do the wrong thing silently: each is refused with exit 2 and a one-line
//! error (CLI), or a 4xx `{kind, error, hint}` (API, through the daemon's socket, for what the
//! CLI would refuse before sending), and nothing is started.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Output, Stdio};

/// Exit 2, and stderr is one `drover: …` line that says `needle` (plus at most a hint line).
fn refused(out: &Output, args: &[&str], needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines[0].starts_with("drover: ") && lines[0].contains(needle),
        "{args:?}: expected one line with {needle:?}, got {err}"
    );
    assert!(
        lines.len() == 1 || (lines.len() == 2 && lines[1].starts_with("  hint: ")),
        "{args:?}: more than an error and a hint: {err}"
    );
}

fn all_tasks(env: &Env) -> Vec<Value> {
    serde_json::from_str(&env.ok(&["ls", "--all", "--json"])).unwrap()
}

/// One HTTP/1.1 request over the daemon's socket; returns (status, headers, body).
/// A 4xx whose body is the API's error shape.
fn api_error(status: u16, body: &[u8], want: u16, needle: &str) -> Value {
    let v: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "status {status}: not a JSON error ({e}): {}",
            String::from_utf8_lossy(body)
        )
    });
    assert_eq!(status, want, "{v}");
    assert!(v["kind"].is_string() && v.get("hint").is_some(), "{v}");
    let error = v["error"].as_str().unwrap();
    assert!(!error.contains('\n'), "not one line: {error:?}");
    assert!(error.contains(needle), "expected {needle:?} in {error:?}");
    v
}

fn run_json(env: &Env, body: Value) -> (u16, Vec<u8>) {
    let (s, _, b) = http(
        env,
        "POST",
        "/v1/tasks",
        &[("content-type", "application/json")],
        body.to_string().as_bytes(),
    );
    (s, b)
}

#[test]
fn budgets_that_would_mean_no_budget_are_refused_and_nothing_starts() {
    let env = Env::new();
    let run = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut v = vec!["run", "--agent", "command", "--cmd", "true"];
        v.extend_from_slice(extra);
        v.push("x");
        v
    };
    let pool = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut v = vec!["pool", "start", "p", "--slots", "1", "--prompt", "x"];
        v.extend_from_slice(extra);
        v
    };
    let cases = [
        (run(&["--max-usd", "NaN"]), "--max-usd"),
        (run(&["--max-usd", "inf"]), "--max-usd"),
        (run(&["--max-usd=-inf"]), "--max-usd"),
        (run(&["--max-usd=-3"]), "--max-usd"),
        (run(&["--max-usd", "0"]), "--max-usd"),
        (run(&["--max-tokens", "0"]), "--max-tokens"),
        (pool(&["--max-usd=-3"]), "--max-usd"),
        (pool(&["--max-usd", "NaN"]), "--max-usd"),
        (pool(&["--max-usd", "infinity"]), "--max-usd"),
    ];
    for (args, needle) in &cases {
        refused(&env.run(args), args, needle);
    }
    // Refused before anything was sent: no daemon was even started.
    assert!(
        !env.home.join("daemon.sock").exists(),
        "a refused command started the daemon"
    );

    // The API refuses the same for clients other than this CLI.
    env.ok(&["daemon"]);
    let repo = env.repo.display().to_string();
    let base = json!({ "repo": repo, "agent": "command", "cmd": "true", "prompt": "x" });
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    for (body, needle) in [
        (with("max_usd", json!(-3.0)), "--max-usd"),
        (with("max_usd", json!(0)), "--max-usd"),
        (with("max_tokens", json!(0)), "--max-tokens"),
    ] {
        let (s, b) = run_json(&env, body);
        // A well-formed but wrong value of POST /v1/tasks: 422 (docs/design.md §7).
        let v = api_error(s, &b, 422, needle);
        assert_eq!(v["kind"], "invalid_field");
    }
    // 1e400 is not a number JSON can carry as a float: a JSON error, not "no budget".
    let (s, _, b) = http(
        &env,
        "POST",
        "/v1/tasks",
        &[("content-type", "application/json")],
        format!(
            r#"{{"repo":"{repo}","agent":"command","cmd":"true","prompt":"x","max_usd":1e400}}"#
        )
        .as_bytes(),
    );
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert!((400..500).contains(&s), "{s} {v}");
    let (s, _, b) = http(
        &env,
        "POST",
        "/v1/pools",
        &[("content-type", "application/json")],
        json!({ "name": "p", "slots": 1, "prompt": "x", "repo": repo, "agent": "command", "cmd": "true", "max_usd": -3.0 })
            .to_string()
            .as_bytes(),
    );
    api_error(s, &b, 400, "--max-usd");

    // A valid budget this daemon cannot enforce (no provider key: the gateway is off) is
    // refused, never run unmetered: money fails closed.
    for args in [
        run(&["--max-usd", "1"]),
        run(&["--max-tokens", "1000"]),
        pool(&["--max-usd", "1"]),
    ] {
        refused(&env.run(&args), &args, "cannot be enforced");
    }
    assert_eq!(all_tasks(&env).len(), 0);
    let pools: Vec<Value> = serde_json::from_str(&env.ok(&["pool", "ls", "--json"])).unwrap();
    assert!(pools.is_empty(), "a refused pool was stored: {pools:?}");
}

#[test]
fn ids_are_never_patterns_and_empty_or_ambiguous_ids_are_refused() {
    let env = Env::new();
    let a = env.ok(&[
        "run", "--agent", "command", "--cmd", "true", "--name", "twin", "one",
    ]);
    let b = env.ok(&[
        "run", "--agent", "command", "--cmd", "true", "--name", "twin", "two",
    ]);
    env.wait(&a);
    env.wait(&b);
    for cmd in ["show", "stop", "rm", "logs", "wait", "attach"] {
        let args = [cmd, ""];
        refused(&env.run(&args), &args, "the task id is empty");
    }
    let args = ["send", "", "hi"];
    refused(&env.run(&args), &args, "the task id is empty");
    let args = ["send", a.as_str(), "  "];
    refused(&env.run(&args), &args, "the message is empty");
    let (s, _, body) = http(
        &env,
        "POST",
        &format!("/v1/tasks/{a}/send"),
        &[("content-type", "application/json")],
        br#"{"message": " \n\t"}"#,
    );
    api_error(s, &body, 400, "the message is empty");
    for wild in ["%", "_", "%%", "_%", "________"] {
        for cmd in ["show", "rm", "stop"] {
            let args = [cmd, wild];
            refused(&env.run(&args), &args, "no task matches");
        }
    }
    // The same through the API: `%25` is a literal `%`, not "every task".
    for path in ["/v1/tasks/%25", "/v1/tasks/_", "/v1/tasks/%25%25"] {
        let (s, _, body) = http(&env, "DELETE", path, &[], b"");
        api_error(s, &body, 404, "no task matches");
    }
    let (s, _, body) = http(&env, "GET", "/v1/tasks/%20", &[], b"");
    api_error(s, &body, 400, "empty");
    assert_eq!(all_tasks(&env).len(), 2, "a pattern removed a task");
    // A name (or prefix) that fits two tasks: refused, with the candidates.
    let args = ["rm", "twin"];
    let out = env.run(&args);
    refused(&out, &args, "matches several tasks");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&a) && err.contains(&b), "{err}");
    assert_eq!(all_tasks(&env).len(), 2);
    // A unique prefix still works.
    assert_eq!(env.show(&a[..6])["id"], a.as_str());
}

#[test]
fn api_errors_are_json_for_bad_bodies_types_sizes_and_routes() {
    let env = Env::new();
    env.ok(&["daemon"]);
    let json_ct = [("content-type", "application/json")];
    let (s, _, b) = http(&env, "POST", "/v1/tasks", &json_ct, b"{\"repo\": ");
    api_error(s, &b, 400, "JSON");
    // A wrong type in POST /v1/tasks is a malformed body: 400 naming the field.
    let (s, _, b) = http(&env, "POST", "/v1/tasks", &json_ct, b"{\"task\": 5}");
    let v = api_error(s, &b, 400, "task: invalid type");
    assert_eq!(v["kind"], "invalid");
    let (s, _, b) = http(
        &env,
        "POST",
        "/v1/tasks",
        &[("content-type", "text/plain")],
        b"{}",
    );
    api_error(s, &b, 415, "Content-Type");
    let huge = vec![b'a'; 8 * 1024 * 1024];
    let (s, _, b) = http(&env, "POST", "/v1/tasks", &json_ct, &huge);
    api_error(s, &b, 413, "");
    let (s, _, b) = http(&env, "GET", "/v1/no-such-route", &[], b"");
    api_error(s, &b, 404, "no such API route");
    let (s, _, b) = http(&env, "PUT", "/v1/tasks", &[], b"");
    api_error(s, &b, 405, "method");
    let (s, _, b) = http(&env, "GET", "/v1/tasks/abc/wait?timeout=banana", &[], b"");
    api_error(s, &b, 400, "timeout");
    // NaN parses as a float: refused, not a panic in the handler.
    let (s, _, b) = http(&env, "GET", "/v1/tasks/abc/wait?timeout=NaN", &[], b"");
    api_error(s, &b, 400, "timeout");
    let (s, _, b) = http(&env, "POST", "/v1/tasks/abc/send", &json_ct, b"[1,2]");
    api_error(s, &b, 422, "");
    assert_eq!(all_tasks(&env).len(), 0);
}

#[test]
fn last_event_id_resumes_like_after() {
    let env = Env::new();
    let id = env.run_command_task("echo one; echo two; echo three", "p");
    env.wait(&id);
    let all = env.events(&id);
    assert!(all.len() > 4, "{all:?}");
    let path = format!("/v1/tasks/{id}/events");
    let (s, _, b) = http(&env, "GET", &path, &[("last-event-id", "3")], b"");
    assert_eq!(s, 200);
    let evs: Vec<Value> = serde_json::from_slice(&b).unwrap();
    assert_eq!(evs.len(), all.len() - 3);
    assert_eq!(evs[0]["seq"], 4);
    // The SSE stream (a reconnecting EventSource sends only the header).
    let (s, head, b) = http(
        &env,
        "GET",
        &format!("{path}?follow=true"),
        &[("last-event-id", "3"), ("accept", "text/event-stream")],
        b"",
    );
    assert_eq!(s, 200, "{head}");
    let text = String::from_utf8_lossy(&b);
    let ids: Vec<i64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id:"))
        .map(|v| v.trim().parse().unwrap())
        .collect();
    assert_eq!(ids, (4..=all.len() as i64).collect::<Vec<_>>(), "{text}");
    let (s, _, b) = http(&env, "GET", &path, &[("last-event-id", "banana")], b"");
    api_error(s, &b, 400, "Last-Event-ID");
}

#[test]
fn control_sequences_from_agents_and_prompts_never_reach_the_terminal() {
    let env = Env::new();
    let evil = "\x1b]0;pwned\x07\x1b[2J";
    let id = env.ok(&[
        "run",
        "--agent",
        "command",
        "--cmd",
        r"printf '\033]0;pwned\007\033[2Jvisible\n'; printf '\233\061J\302\233x\n' >&2; printf 'b\033[31mred\033[0m\n'",
        "--name",
        &format!("n{evil}"),
        &format!("prompt {evil} end"),
    ]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    // The store keeps what the agent wrote; --json shows it exactly.
    let shown = env.ok(&["show", &id, "--json"]);
    assert!(shown.contains(r"\u001b]0;pwned"), "{shown}");
    let raw_logs = env.ok(&["logs", &id, "--json"]);
    assert!(raw_logs.contains(r"\u001b[2J"), "{raw_logs}");
    for args in [
        vec!["logs", id.as_str()],
        vec!["show", id.as_str()],
        vec!["ls"],
        vec!["ls", "--all"],
        vec!["wait", id.as_str()],
        vec!["agents"],
    ] {
        let out = env.run(&args);
        assert!(out.status.success(), "{args:?}");
        for stream in [&out.stdout, &out.stderr] {
            let text = String::from_utf8_lossy(stream);
            assert!(
                !text
                    .chars()
                    .any(|c| c == '\x1b' || c == '\x07' || ('\u{80}'..='\u{9f}').contains(&c)),
                "{args:?} printed a control character: {text:?}"
            );
        }
    }
    let logs = env.ok(&["logs", &id]);
    assert!(logs.contains("visible") && logs.contains("bred"), "{logs}");
    assert!(env.ok(&["show", &id]).contains("prompt  end"));
}

#[test]
fn long_prompts_come_from_a_file_or_stdin_and_empty_ones_are_refused_by_every_agent() {
    let env = Env::new();
    // Over the ~128 KB a single argument may be: only a file or stdin can carry it.
    let prompt: String = (0..200_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let file = env.tmp.path().join("prompt.txt");
    std::fs::write(&file, &prompt).unwrap();
    let f = file.to_str().unwrap();
    // The command agent gets the prompt on stdin (one line: plus a newline); it counts the bytes.
    let id = env.ok(&[
        "run",
        "--agent",
        "command",
        "--cmd",
        "wc -c",
        "--prompt-file",
        f,
    ]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{}", t["outcome"]);
    assert_eq!(t["result"].as_str().unwrap().trim(), "200001");
    assert!(
        env.show(&id)["prompt"].as_str().unwrap() == prompt,
        "the prompt changed"
    );

    let mut child = env
        .cmd(&["run", "--agent", "command", "--cmd", "wc -c", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let p2 = prompt;
    let writer = std::thread::spawn(move || stdin.write_all(p2.as_bytes()));
    let out = finish_within(child, CLI_DEADLINE, "drover run -");
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id2 = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(env.wait(&id2)["result"].as_str().unwrap().trim(), "200001");

    env.ok(&[
        "pool",
        "start",
        "long",
        "--slots",
        "1",
        "--count",
        "1",
        "--agent",
        "command",
        "--cmd",
        "wc -c",
        "--prompt-file",
        f,
    ]);
    let p: Value = env.json(&["pool", "show", "long", "--json"]);
    assert_eq!(p["prompt"].as_str().unwrap().len(), 200_000);
    // A pool list row is a summary: the prompt cut to 500 characters (and marked).
    let pools: Vec<Value> = serde_json::from_str(&env.ok(&["pool", "ls", "--json"])).unwrap();
    let row = pools.iter().find(|p| p["name"] == "long").unwrap();
    let prompt = row["prompt"].as_str().unwrap();
    assert_eq!(prompt.chars().count(), 501, "{prompt}");
    assert!(prompt.ends_with('…'));

    // One rule for an empty prompt, whatever the agent.
    let empty = env.tmp.path().join("empty.txt");
    std::fs::write(&empty, " \n\t\n").unwrap();
    let before = all_tasks(&env).len();
    for args in [
        vec!["run", ""],
        vec!["run", "   "],
        vec!["run", "--agent", "command", "--cmd", "true", ""],
        vec!["run", "--agent", "command", "--cmd", "true", " \n "],
        vec!["run", "--agent", "codex", ""],
        vec!["run", "--agent", "claude-bg", ""],
        vec![
            "run",
            "--agent",
            "command",
            "--cmd",
            "true",
            "--prompt-file",
            empty.to_str().unwrap(),
        ],
        vec![
            "pool", "start", "e", "--slots", "1", "--agent", "command", "--cmd", "true",
            "--prompt", " ",
        ],
    ] {
        refused(&env.run(&args), &args, "the prompt is empty");
    }
    // Codex takes its prompt as one argument (at most 128 KiB): refused up front, not at launch.
    let args = ["run", "--agent", "codex", "--prompt-file", f];
    refused(&env.run(&args), &args, "command-line argument");
    let args = [
        "run",
        "--agent",
        "command",
        "--cmd",
        "true",
        "--prompt-file",
        "/no/such/file",
    ];
    refused(&env.run(&args), &args, "--prompt-file /no/such/file");
    // The API applies the same rule to the command agent.
    let (s, b) = run_json(
        &env,
        json!({ "repo": env.repo.display().to_string(), "agent": "command", "cmd": "true", "prompt": "  " }),
    );
    api_error(s, &b, 422, "the prompt is empty");
    assert_eq!(
        all_tasks(&env).len(),
        before,
        "an empty prompt started a task"
    );
}

#[test]
fn a_team_daily_budget_without_the_gateway_is_refused_and_nothing_starts() {
    let env = Env::new();
    std::fs::create_dir_all(&env.home).unwrap();
    std::fs::write(
        env.home.join("config.toml"),
        "[teams.frugal]\nmax_usd_per_day = 1.0\n\n[teams.other]\n",
    )
    .unwrap();
    env.ok(&["daemon"]);
    let args = [
        "run", "--agent", "command", "--cmd", "true", "--team", "frugal", "x",
    ];
    refused(&env.run(&args), &args, "cannot be enforced");
    // A team without a budget runs as before.
    let ok = [
        "run", "--agent", "command", "--cmd", "true", "--team", "other", "y",
    ];
    let id = env.ok(&ok);
    assert_eq!(env.wait(&id)["state"], "succeeded");
    assert_eq!(all_tasks(&env).len(), 1);
}

#[test]
fn a_config_the_daemon_cannot_use_is_named_in_one_line_and_nothing_starts() {
    let env = Env::new();
    std::fs::create_dir_all(&env.home).unwrap();
    let file = env.home.join("config.toml");
    let ls = ["ls"];
    // Unreadable (here a directory): no longer taken for "no file".
    std::fs::create_dir(&file).unwrap();
    let out = env.run(&ls);
    refused(&out, &ls, &format!("cannot read {}", file.display()));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hint: make"));
    std::fs::remove_dir(&file).unwrap();
    // Not TOML: the line; an unknown key: the key.
    std::fs::write(&file, "slots = 4\nsandbox = \n").unwrap();
    refused(&env.run(&ls), &ls, "config.toml: invalid TOML at line 2");
    std::fs::write(&file, "slotz = 4\n").unwrap();
    refused(&env.run(&ls), &ls, "slotz");
    std::fs::remove_file(&file).unwrap();
    // A variable and a flag are named as what they are.
    let bad_env = Env::new().with_env("DROVER_SANDBOX", "bogus");
    refused(
        &bad_env.run(&ls),
        &ls,
        "environment variable DROVER_SANDBOX: unknown sandbox mode",
    );
    let args = ["daemon", "--foreground", "--slots", "0"];
    refused(
        &env.run(&args),
        &args,
        "flag --slots: slots must be at least 1",
    );
    let args = ["daemon", "--sandbox", "nope"];
    refused(&env.run(&args), &args, "flag --sandbox");
    assert!(
        !env.home.join("daemon.pid").exists(),
        "no daemon started on a bad config"
    );
}

#[test]
fn an_io_failure_is_not_the_users_input() {
    // DROVER_HOME under a regular file cannot be created: drover's failure (exit 3), not a
    // bad argument (it was exit 2).
    let env = Env::new();
    let file = env.tmp.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let home = file.join("home");
    let env = env.with_env("DROVER_HOME", home.to_str().unwrap());
    let out = env.run(&["ls"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.starts_with(&format!(
            "drover: cannot create DROVER_HOME {}: ",
            home.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("hint: set DROVER_HOME to a writable directory"),
        "{err}"
    );
}

/// A word outside one of drover's closed sets: the CLI's flag is refused by clap with the valid
/// values (exit 2); over the API it is a 400 `{kind: invalid, error, hint}` that names the field
/// and lists the valid values (not serde's 422). Nothing starts either way.
#[test]
fn a_word_outside_a_closed_set_is_refused_with_the_valid_ones() {
    let env = Env::new();
    let cases: [(&[&str], &str); 4] = [
        (&["run", "--permissions", "banana", "x"], "ask, allow, deny"),
        (
            &[
                "pool",
                "start",
                "p",
                "--slots",
                "1",
                "--prompt",
                "x",
                "--permissions",
                "always",
            ],
            "ask, allow, deny",
        ),
        (
            &[
                "pool",
                "start",
                "p",
                "--slots",
                "1",
                "--prompt",
                "x",
                "--on-failures",
                "often",
            ],
            "finish, hard",
        ),
        (&["usage", "--by", "planet"], "task, pool, model, day"),
    ];
    for (args, valid) in cases {
        let out = env.run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(valid), "{args:?}: expected {valid:?} in {err}");
    }
    env.ok(&["daemon"]);
    let (s, b) = run_json(
        &env,
        json!({ "repo": env.repo.display().to_string(), "prompt": "x", "agent": "command",
                "cmd": "true", "permissions": "banana" }),
    );
    let v = api_error(s, &b, 400, "permissions");
    assert_eq!(v["kind"], "invalid");
    let error = v["error"].as_str().unwrap();
    assert!(
        error.contains("banana") && error.contains("`ask`, `allow`, `deny`"),
        "{error}"
    );
    let (s, _, b) = http(
        &env,
        "POST",
        "/v1/pools",
        &[("content-type", "application/json")],
        json!({ "name": "p", "slots": 1, "prompt": "x", "repo": env.repo.display().to_string(),
                "agent": "command", "cmd": "true", "on_failures": "often" })
        .to_string()
        .as_bytes(),
    );
    let v = api_error(s, &b, 400, "on_failures");
    assert!(
        v["error"].as_str().unwrap().contains("`finish` or `hard`"),
        "{v}"
    );
    let (s, _, b) = http(&env, "GET", "/v1/usage?by=planet", &[], b"");
    api_error(
        s,
        &b,
        400,
        "--by planet: use task, pool, model, day, team or tag:NAME",
    );
    assert_eq!(all_tasks(&env).len(), 0);
    let pools: Value = serde_json::from_str(&env.ok(&["pool", "ls", "--json"])).unwrap();
    assert_eq!(pools.as_array().map(Vec::len), Some(0), "{pools}");
}

/// A variable whose value is not UTF-8 (allowed by Unix) is left out of drover's environment
/// snapshot: `drover ls` starts the daemon and lists, where it used to panic (exit 101).
#[test]
fn a_variable_that_is_not_utf8_is_not_a_panic() {
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new();
    let child = env
        .cmd(&["ls"])
        .env(
            "DROVER_TEST_NOT_UTF8",
            std::ffi::OsStr::from_bytes(b"caf\xe9 \xff"),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = finish_within(child, CLI_DEADLINE, "drover ls with a non-UTF-8 variable");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(env.home.join("daemon.pid").exists(), "the daemon started");
}
