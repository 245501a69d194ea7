//! A task's own sockets (`DROVER_HOME/run/<id>/`): the task-scoped control endpoint a hostile
//! `command` agent reaches through the unchanged CLI, the gateway relay, their life across a
//! daemon restart. Only the sockets are used, so these pass with or without the jail.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A file the task's agent wrote, from its committed branch.
fn written(env: &Env, id: &str, file: &str) -> String {
    env.git(&["show", &format!("drover/{id}:{file}")])
}

fn run_dir(env: &Env, id: &str) -> PathBuf {
    env.home.join("run").join(id)
}

/// Lets an agent waiting for `go` in its checkout go on.
fn release(env: &Env, id: &str) {
    let t = env.show(id);
    let sandbox = t["sandbox"].as_str().expect("a sandbox");
    std::fs::write(Path::new(sandbox).join("go"), "").unwrap();
}

const WAIT_FOR_GO: &str = "while [ ! -e go ]; do sleep 0.1; done";

#[test]
fn a_hostile_agent_cannot_drive_the_daemon_through_its_endpoint() {
    let env = Env::new();
    let victim = env.run_command_task(WAIT_FOR_GO, "victim");
    let v = env.until(&victim, "the victim running", |t| {
        t["state"] == "running" && t["pid"].is_i64()
    });
    let victim_pid = v["pid"].as_i64().unwrap();
    let daemon = env.daemon_pid().unwrap();
    // Each attempt's exit code and stderr, kept in the hostile task's checkout.
    let script = r#"
try() { name=$1; shift; "$@" >/dev/null 2>"$name.err"; echo $? > "$name.code"; }
try stop drover stop "$DROVER_PROMPT"
try rm drover rm "$DROVER_PROMPT"
try send drover send "$DROVER_PROMPT" hello
try show drover show "$DROVER_PROMPT" --json
try logs drover logs "$DROVER_PROMPT"
try daemon drover daemon stop --stop-tasks
try run drover run --agent command --cmd true spawned
try ls drover ls --all
try pools drover pool ls
try usage drover usage
try stopself drover stop "$DROVER_TASK_ID"
try rmself drover rm "$DROVER_TASK_ID"
true
"#;
    let hostile = env.run_command_task(script, &victim);
    let t = env.wait(&hostile);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    for name in [
        "stop", "rm", "send", "show", "logs", "daemon", "run", "ls", "pools", "usage", "stopself",
        "rmself",
    ] {
        let code = written(&env, &hostile, &format!("{name}.code"));
        let err = written(&env, &hostile, &format!("{name}.err"));
        assert_eq!(code, "2", "{name}: exit {code}, stderr {err}");
        let refusals: Vec<&str> = err.lines().filter(|l| l.starts_with("drover: ")).collect();
        assert_eq!(refusals.len(), 1, "{name}: {err}");
        assert!(
            refusals[0].starts_with(
                "drover: forbidden: from inside a task's sandbox drover only allows `drover lock` and reading this task"
            ),
            "{name}: {err}"
        );
    }
    // Nothing happened: the victim runs on, the daemon is the same, no task was made.
    let v = env.show(&victim);
    assert_eq!(v["state"], "running", "{v:#}");
    assert!(!v["stop_requested"].as_bool().unwrap_or(false), "{v:#}");
    assert!(alive(victim_pid));
    assert_eq!(env.daemon_pid(), Some(daemon));
    assert!(alive(daemon as i64));
    let all: Value = env.json(&["ls", "--all", "--json"]);
    let ids: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{all:#}");
    assert!(ids.contains(&victim.as_str()) && ids.contains(&hostile.as_str()));
    release(&env, &victim);
    assert_eq!(env.wait(&victim)["state"], "succeeded");
}

#[test]
fn inside_a_task_lock_and_reading_itself_work_and_the_holder_is_the_task() {
    let env = Env::new();
    // The second lock claims to be held by someone else: the endpoint makes it this task's.
    let script = format!(
        "drover lock build -- true && drover show \"$DROVER_TASK_ID\" --json > me.json && \
         drover logs \"$DROVER_TASK_ID\" --json > /dev/null && \
         drover daemon status --json > status.json && \
         DROVER_TASK_ID=ffffffff drover lock forged -- sh -c '{WAIT_FOR_GO}'"
    );
    let id = env.run_command_task(&script, "locker");
    let t = env.until(&id, "holding the forged lock", |t| {
        t["locks"]["holding"]
            .as_array()
            .is_some_and(|h| h.iter().any(|n| n == "forged"))
    });
    assert_eq!(t["id"], id.as_str());
    let (status, locks) = api_json(&env, "GET", "/v1/locks", "");
    assert_eq!(status, 200);
    let locks: Value = serde_json::from_str(&locks).unwrap();
    let forged = locks
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "forged")
        .unwrap();
    assert_eq!(forged["holders"], json!([id]), "{locks:#}");
    release(&env, &id);
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    let me: Value = serde_json::from_str(&written(&env, &id, "me.json")).unwrap();
    assert_eq!(me["id"], id.as_str());
    // The status it sees names its own DROVER_HOME (its run dir, mounted at /run/drover), not
    // the daemon's home, pid or the fleet's counts.
    let status: Value = serde_json::from_str(&written(&env, &id, "status.json")).unwrap();
    assert_eq!(status["home"], drover_shim::SANDBOX_RUN_DIR, "{status:#}");
    assert_eq!(status["pid"], 0, "{status:#}");
    assert_eq!(
        (&status["running"], &status["queued"]),
        (&json!(0), &json!(0))
    );
}

/// Inside a task (`DROVER_TASK_ID` set) an endpoint that does not answer is exit 3 with one
/// line; no daemon is started in its place.
#[test]
fn inside_a_task_the_cli_never_starts_a_daemon() {
    let env = Env::new();
    let dead = env.tmp.path().join("run-of-a-gone-task");
    std::fs::create_dir_all(&dead).unwrap();
    for args in [
        &["ls"][..],
        &["daemon"][..],
        &["lock", "x", "--", "true"][..],
    ] {
        let out = env
            .cmd(args)
            .env("DROVER_HOME", &dead)
            .env("DROVER_TASK_ID", "abcd1234")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {err}");
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("drover: inside task abcd1234 drover does not start a daemon"),
            "{args:?}: {err}"
        );
        assert_eq!(err.lines().filter(|l| l.starts_with("drover: ")).count(), 1);
    }
    assert!(!dead.join("daemon.pid").exists());
    assert!(!dead.join("daemon.log").exists());
    assert!(!dead.join("drover.db").exists());
}

#[test]
fn the_sockets_come_back_after_a_daemon_restart_and_go_with_the_task() {
    let env = Env::new();
    let script = format!(
        "{WAIT_FOR_GO}; drover lock relock -- true && drover show \"$DROVER_TASK_ID\" --json > me.json"
    );
    let id = env.run_command_task(&script, "restart");
    env.until(&id, "running", |t| t["state"] == "running");
    let dir = run_dir(&env, &id);
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(&dir).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o700);
    let ino = meta.ino();
    let sock = std::fs::metadata(dir.join("daemon.sock")).unwrap();
    assert!(sock.file_type().is_socket());
    // The agent keeps DROVER_HOME = its run dir (mounted at /run/drover in its jail), never
    // the admin socket's home.
    let pid = env.show(&id)["pid"].as_i64().unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let want = format!("DROVER_HOME={}", drover_shim::SANDBOX_RUN_DIR);
    assert!(
        environ.split(|b| *b == 0).any(|v| v == want.as_bytes()),
        "the agent's DROVER_HOME is not its run dir"
    );
    env.ok(&["daemon", "stop"]);
    assert!(alive(pid), "the agent outlives the daemon");
    // The next command starts a daemon, which re-adopts the task and serves its sockets again
    // in the same directory (a sandbox that has it mounted sees them).
    env.until(&id, "re-adopted", |t| t["state"] == "running");
    assert_eq!(std::fs::metadata(&dir).unwrap().ino(), ino);
    release(&env, &id);
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    let me: Value = serde_json::from_str(&written(&env, &id, "me.json")).unwrap();
    assert_eq!(me["id"], id.as_str());
    poll("the run dir removed", Duration::from_secs(30), || {
        !dir.exists()
    });
}

/// The gateway relay carries bytes only: a task's token is its identity wherever a request
/// comes from, and nothing drover writes lets another task learn it.
#[test]
fn a_gateway_token_spends_only_its_task_and_is_nowhere_another_task_could_read_it() {
    let provider = Provider::start(json!({ "scenarios": [
        { "name": "default", "turns": [{ "content": [{ "type": "text", "text": "hi" }] }] }
    ]}));
    let env = Env::claude(&provider);
    let a = env.run_command_task(WAIT_FOR_GO, "task a");
    let b = env.run_command_task(WAIT_FOR_GO, "task b");
    let ta = env.until(&a, "a running", |t| {
        t["state"] == "running" && t["pid"].is_i64()
    });
    env.until(&b, "b running", |t| t["state"] == "running");
    // A's token, from its agent's environment (only the test, as root, reads it here).
    let pid = ta["pid"].as_i64().unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let token = environ
        .split(|b| *b == 0)
        .filter_map(|v| std::str::from_utf8(v).ok())
        .find_map(|v| v.strip_prefix("ANTHROPIC_API_KEY="))
        .unwrap()
        .to_string();
    assert!(token.starts_with("drv-"), "{token}");
    // Nowhere in DROVER_HOME (launch files, logs, the store and its WAL, the daemon's log),
    // not in the agent's or its shim's command line, not in what the API shows.
    let mut files = vec![];
    collect_files(&env.home, &mut files);
    for f in &files {
        if f.file_name().is_some_and(|n| n == "gateway.key") {
            continue;
        }
        let bytes = std::fs::read(f).unwrap_or_default();
        assert!(
            memmem(&bytes, token.as_bytes()).is_none(),
            "the token is in {}",
            f.display()
        );
    }
    assert!(files.iter().any(|f| f.ends_with("launch.json")));
    // The agent and its parent (the shim).
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let ppid: i64 = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    for p in [pid, ppid] {
        let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).unwrap();
        assert!(memmem(&cmdline, token.as_bytes()).is_none());
    }
    for out in [
        env.ok(&["show", &a, "--json"]),
        env.ok(&["logs", &a, "--json"]),
        env.ok(&["ls", "--all", "--json"]),
    ] {
        assert!(!out.contains(&token));
    }
    // Through B's relay, A's token is A's: the request is metered to A, never to B.
    let relay_b = run_dir(&env, &b).join("gateway.sock");
    let call = |key: &str| {
        drover_test_support::http::request(
            &relay_b,
            "POST",
            "/v1/messages",
            &[
                ("x-api-key", key),
                ("anthropic-version", "2023-06-01"),
                ("content-type", "application/json"),
            ],
            json!({ "model": "claude-sonnet-4-6", "max_tokens": 50,
                    "messages": [{ "role": "user", "content": "hello" }] })
            .to_string()
            .as_bytes(),
        )
    };
    let (status, _, body) = call(&token);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let ta = env.until(&a, "A metered", |t| {
        t["usage"]["input_tokens"].as_u64().unwrap_or(0) > 0
    });
    assert!(ta["cost_usd"].as_f64().unwrap() > 0.0, "{ta:#}");
    let tb = env.show(&b);
    assert_eq!(
        tb["usage"]["input_tokens"].as_u64().unwrap_or(0),
        0,
        "{tb:#}"
    );
    // A made-up token is refused; so is A's once A has ended.
    let (status, _, _) = call(&format!("drv-{}", "0".repeat(64)));
    assert_eq!(status, 401);
    release(&env, &a);
    assert_eq!(env.wait(&a)["state"], "succeeded");
    let (status, _, _) = call(&token);
    assert_eq!(status, 401, "an ended task's token still works");
    release(&env, &b);
    assert_eq!(env.wait(&b)["state"], "succeeded");
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            collect_files(&p, out);
        } else if ft.is_file() {
            out.push(p);
        }
    }
}

fn memmem(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `sandbox.egress` through the real daemon: the task's `egress.sock` connects a listed
/// authority (bytes both ways), refuses another, and both attempts are events on the task.
#[test]
fn egress_through_a_tasks_socket_is_allow_listed_and_logged_on_the_task() {
    use std::io::{Read, Write};
    let env = Env::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Two "hosts" on loopback: one listed (it greets, then echoes), one not.
    let listed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listed_port = listed.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in listed.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = s.write_all(b"hello\n");
                let mut r = s.try_clone().unwrap();
                let _ = std::io::copy(&mut r, &mut s);
            });
        }
    });
    let unlisted = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let unlisted_port = unlisted.local_addr().unwrap().port();
    unlisted.set_nonblocking(true).unwrap();
    let exe = Path::new(env!("CARGO_BIN_EXE_drover"));
    let allowed = format!("127.0.0.1:{listed_port}");
    let daemon = rt.block_on(drover_test_support::daemon::InProcessDaemon::start_with(
        &env.home,
        exe,
        |c| c.confinement.egress = vec![allowed.clone()],
    ));
    let id = env.run_command_task(WAIT_FOR_GO, "egress");
    let t = env.until(&id, "running", |t| {
        t["state"] == "running" && t["pid"].is_i64()
    });
    // The agent is told to use the proxy (its forwarder is the jail's, inside the sandbox).
    let environ = std::fs::read(format!("/proc/{}/environ", t["pid"])).unwrap();
    assert!(environ
        .split(|b| *b == 0)
        .any(|v| v == b"HTTPS_PROXY=http://127.0.0.1:3128"));
    let sock = run_dir(&env, &id).join("egress.sock");
    let open = |authority: &str| {
        let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n"
        )
        .unwrap();
        s
    };
    let read_until = |s: &mut std::os::unix::net::UnixStream, want: &str| {
        let mut got = vec![];
        let mut buf = [0u8; 1024];
        while !String::from_utf8_lossy(&got).contains(want) {
            let n = s.read(&mut buf).unwrap();
            assert!(
                n > 0,
                "closed before {want:?}: {}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&got).to_string()
    };
    let mut s = open(&allowed);
    let got = read_until(&mut s, "hello\n");
    assert!(got.starts_with("HTTP/1.1 200 "), "{got}");
    s.write_all(b"through the tunnel").unwrap();
    read_until(&mut s, "through the tunnel");
    drop(s);
    let mut s = open(&format!("127.0.0.1:{unlisted_port}"));
    let mut refused = String::new();
    s.read_to_string(&mut refused).unwrap();
    assert!(refused.starts_with("HTTP/1.1 403 "), "{refused}");
    assert!(
        unlisted.accept().is_err(),
        "the unlisted host was connected"
    );
    let egress = drover_test_support::poll::some(
        "two egress events",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            let evs: Vec<Value> = env
                .events(&id)
                .into_iter()
                .filter(|e| e["kind"] == "egress")
                .collect();
            (evs.len() == 2).then_some(evs)
        },
    );
    assert_eq!(egress[0]["data"]["verdict"], "allowed", "{egress:#?}");
    assert_eq!(egress[0]["data"]["authority"], allowed.as_str());
    assert_eq!(egress[1]["data"]["verdict"], "refused");
    assert_eq!(
        egress[1]["data"]["authority"],
        format!("127.0.0.1:{unlisted_port}")
    );
    release(&env, &id);
    assert_eq!(env.wait(&id)["state"], "succeeded");
    poll("the egress socket removed", Duration::from_secs(30), || {
        !sock.exists()
    });
    rt.block_on(daemon.shutdown());
}

/// An agent that opens connection after connection to its endpoint gets `busy` past the
/// endpoint's share (64); the daemon's own socket, and its file descriptors, are not its to take.
#[test]
fn a_task_endpoint_takes_at_most_its_share_of_connections() {
    use std::io::{Read, Write};
    let env = Env::new();
    let id = env.run_command_task(WAIT_FOR_GO, "flooder");
    env.until(&id, "running", |t| t["state"] == "running");
    let sock = run_dir(&env, &id).join("daemon.sock");
    // Each one sends a partial head, so it counts and stays open (for the 5 s head timeout).
    let held: Vec<_> = (0..64)
        .map(|_| {
            let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
            s.write_all(b"GET /v1/status HTTP/1.1\r\n").unwrap();
            s
        })
        .collect();
    let mut extra = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    extra
        .write_all(b"GET /v1/status HTTP/1.1\r\nhost: d\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = extra.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert!(answer.contains("\"busy\""), "{answer}");
    // Meanwhile the admin socket answers.
    let (status, _) = api_json(&env, "GET", "/v1/status", "");
    assert_eq!(status, 200);
    drop(held);
    release(&env, &id);
    assert_eq!(env.wait(&id)["state"], "succeeded");
}

/// The endpoint over raw HTTP, as an agent that skips the CLI would use it: another task by id,
/// prefix, name or HEAD is refused alike (never a 404 that would say it does not exist), unknown
/// routes stay 404, and the task's own row reads.
#[test]
fn the_endpoint_refuses_every_spelling_of_another_task() {
    let env = Env::new();
    let other = env.ok(&[
        "run",
        "--agent",
        "command",
        "--cmd",
        WAIT_FOR_GO,
        "--name",
        "victim",
        "other",
    ]);
    let own = env.run_command_task(WAIT_FOR_GO, "own");
    env.until(&own, "running", |t| t["state"] == "running");
    let sock = run_dir(&env, &own).join("daemon.sock");
    let req = |method: &str, path: &str| {
        let (status, _, body) = drover_test_support::http::request(&sock, method, path, &[], b"");
        (status, String::from_utf8_lossy(&body).to_string())
    };
    for (method, path) in [
        ("GET", format!("/v1/tasks/{other}")),
        ("GET", format!("/v1/tasks/{}", &other[..4])),
        ("GET", "/v1/tasks/victim".to_string()),
        ("GET", "/v1/tasks/nosuchtask".to_string()),
        ("GET", format!("/v1/tasks/{other}/events")),
        ("GET", format!("/v1/tasks/{other}/raw?stream=stdout")),
        ("HEAD", format!("/v1/tasks/{own}")),
        ("POST", format!("/v1/tasks/{own}/stop")),
        ("DELETE", format!("/v1/tasks/{own}")),
        ("GET", "/v1/locks".to_string()),
    ] {
        let (status, body) = req(method, &path);
        assert_eq!(status, 403, "{method} {path}: {body}");
        if method != "HEAD" {
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["kind"], "forbidden", "{method} {path}");
        }
    }
    let (status, body) = req("GET", "/v1/no/such/route");
    assert_eq!(status, 404, "{body}");
    let (status, body) = req("GET", &format!("/v1/tasks/{own}"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["id"],
        own.as_str()
    );
    assert_eq!(env.show(&own)["state"], "running");
    assert_eq!(env.show(&other)["state"], "running");
    release(&env, &own);
    release(&env, &other);
    assert_eq!(env.wait(&own)["state"], "succeeded");
    assert_eq!(env.wait(&other)["state"], "succeeded");
}
