//! Isolation (docs/design.md §11): hostile `command` agents, through the real daemon, try to
//! reach what is not theirs; each attempt must fail — and the same run must do the legitimate
//! thing, so a jail that blocks everything fails these tests too.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The lines of the report a hostile script wrote to `report.txt` in its checkout (committed
/// to its branch).
fn report(env: &Env, id: &str) -> String {
    env.git(&["show", &format!("drover/{id}:report.txt")])
}

/// `WHAT: ok` when `cmd` fails (the attack is refused), `WHAT: LEAK` when it succeeds.
fn attack(what: &str, cmd: &str) -> String {
    format!("if {cmd} >/dev/null 2>&1; then echo '{what}: LEAK'; else echo '{what}: ok'; fi >> report.txt; ")
}

/// `WHAT: works` when `cmd` succeeds (the legitimate path), `WHAT: BROKEN` when it fails.
fn legit(what: &str, cmd: &str) -> String {
    format!("if {cmd} >/dev/null 2>&1; then echo '{what}: works'; else echo '{what}: BROKEN'; fi >> report.txt; ")
}

fn assert_report(report: &str, expected: &[&str]) {
    for e in expected {
        assert!(
            report.lines().any(|l| l == *e),
            "missing {e:?} in:\n{report}"
        );
    }
    assert!(
        !report.contains("LEAK") && !report.contains("BROKEN"),
        "{report}"
    );
}

/// An agent that runs until the test ends it; returns its task id once it runs.
fn long_task(env: &Env, marker: &str) -> (String, Value) {
    let id = env.run_command_task(&format!("echo {marker} > mine.txt; sleep 1000"), "other");
    let t = env.until(&id, "running", |t| t["state"] == "running");
    (id, t)
}

#[test]
fn a_hostile_agent_reads_nothing_of_drover_the_user_or_other_tasks() {
    let env = Env::new();
    env.ok(&["daemon"]);
    std::fs::create_dir_all(env.user_home.join(".ssh")).unwrap();
    std::fs::write(env.user_home.join(".ssh/id_test"), "PRIVATE KEY\n").unwrap();
    let (other, other_t) = long_task(&env, "other-secret");
    let other_sandbox = other_t["sandbox"].as_str().unwrap().to_string();
    assert!(
        std::path::Path::new(&other_sandbox)
            .join("mine.txt")
            .exists()
            || {
                // The other agent writes its file right after it starts.
                drover_test_support::poll::until(
                    "mine.txt",
                    Duration::from_secs(30),
                    Duration::from_millis(20),
                    || {
                        std::path::Path::new(&other_sandbox)
                            .join("mine.txt")
                            .exists()
                    },
                    |b| *b,
                )
            }
    );
    let home = env.home.display().to_string();
    let user = env.user_home.display().to_string();
    let daemon_pid = env.daemon_pid().unwrap();
    let other_pid = other_t["pid"].as_i64().unwrap();
    let script = [
        legit("own checkout readable", "cat README.md"),
        legit("own checkout writable", "echo mine > new.txt"),
        legit("private home writable", "touch \"$HOME/.made-by-agent\""),
        legit("tmp writable", "echo t > /tmp/t"),
        legit("drover visible", "test -x \"$DROVER_BIN\""),
        attack("drover.db", &format!("cat {home}/drover.db")),
        attack("drover home listing", &format!("ls {home}/tasks")),
        attack("other sandbox", &format!("cat {other_sandbox}/mine.txt")),
        attack("ssh key", &format!("cat {user}/.ssh/id_test")),
        attack("ssh key by HOME", "cat \"$HOME/.ssh/id_test\""),
        attack("shadow", "test -s /etc/shadow"),
        attack(
            "admin socket by path",
            &format!("test -S {home}/daemon.sock"),
        ),
        // (The real daemon would show the other task.)
        attack(
            "admin socket",
            &format!("DROVER_HOME={home} \"$DROVER_BIN\" show {other}"),
        ),
        attack("signal daemon", &format!("kill -0 {daemon_pid}")),
        attack("signal other agent", &format!("kill -0 {other_pid}")),
        attack("kill other agent", &format!("kill -9 {other_pid}")),
        attack("write /usr", "touch /usr/drover-was-here"),
        attack("write /etc", "touch /etc/drover-was-here"),
        attack("write /", "touch /drover-was-here"),
        "true".to_string(),
    ]
    .concat();
    let id = env.run_command_task(&script, "hostile");
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    let r = report(&env, &id);
    assert_report(
        &r,
        &[
            "own checkout readable: works",
            "own checkout writable: works",
            "private home writable: works",
            "drover.db: ok",
            "other sandbox: ok",
            "ssh key: ok",
            "admin socket: ok",
            "admin socket by path: ok",
            "signal daemon: ok",
            "signal other agent: ok",
            "kill other agent: ok",
            "write /usr: ok",
            "write /etc: ok",
        ],
    );
    // Nothing was written outside, and the other task still runs.
    assert!(!std::path::Path::new("/usr/drover-was-here").exists());
    assert!(!std::path::Path::new("/etc/drover-was-here").exists());
    assert!(alive(other_pid));
    assert_eq!(env.show(&other)["state"], "running");
    env.ok(&["stop", &other]);
    env.wait(&other);
}

#[test]
fn a_hostile_agent_cannot_reach_the_host_network() {
    let env = Env::new();
    env.ok(&["daemon"]);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let script = [
        legit("loopback inside", "true"),
        attack(
            "host port",
            &format!("timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}'"),
        ),
        attack("outside", "timeout 5 bash -c 'exec 3<>/dev/tcp/1.1.1.1/80'"),
        "true".to_string(),
    ]
    .concat();
    let id = env.run_command_task(&script, "net");
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    assert_report(&report(&env, &id), &["host port: ok", "outside: ok"]);
    // And nothing connected to the host's listener.
    assert!(listener.accept().is_err(), "a connection reached the host");
}

#[test]
fn setsid_nohup_and_ignoring_term_do_not_survive_a_stop() {
    let env = Env::new();
    env.ok(&["daemon"]);
    let id = env.run_command_task(
        "setsid nohup sh -c 'trap \"\" TERM; echo escaped > escaped.txt; exec sleep 1000' >/dev/null 2>&1 & sleep 1000",
        "escape",
    );
    let t = env.until(&id, "running", |t| t["state"] == "running");
    let sandbox = std::path::PathBuf::from(t["sandbox"].as_str().unwrap());
    drover_test_support::poll::until(
        "the escapee",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || sandbox.join("escaped.txt").exists(),
        |b| *b,
    );
    // The task's pid is the jail's; everything of the task descends from it.
    let jail = t["pid"].as_i64().unwrap();
    let agent_sid = session_of(jail);
    let mine = descendants(jail);
    let escapee = mine
        .iter()
        .copied()
        .find(|p| cmdline(*p) == "sleep\x001000\x00" && session_of(*p) != agent_sid)
        .unwrap_or_else(|| panic!("no escaped sleep among {mine:?}"));
    assert!(alive(escapee));
    let stopped = Instant::now();
    env.ok(&["stop", &id]);
    let t = env.wait(&id);
    assert!(t["state"] != "running", "{t:#}");
    for p in mine.iter().chain([&jail]) {
        assert!(!alive(*p), "pid {p} ({:?}) survived the stop", cmdline(*p));
    }
    println!("stop took {:?}", stopped.elapsed());
}

#[test]
fn a_gate_cannot_read_the_gateway_key() {
    let provider = Provider::start(json!({ "scenarios": [
        { "name": "default", "turns": [{ "content": [{ "type": "text", "text": "?" }] }] }
    ]}));
    let env = Env::new()
        .with_env("ANTHROPIC_BASE_URL", &provider.url)
        .with_env("ANTHROPIC_API_KEY", "sk-ant-test-key");
    env.ok(&["daemon"]);
    let key = env.home.join("gateway.key");
    let ok = env.ok(&[
        "run",
        "--agent",
        "command",
        "--cmd",
        "echo done",
        "--verify",
        "test -f README.md",
        "legit gate",
    ]);
    assert_eq!(env.wait(&ok)["state"], "succeeded");
    assert!(key.exists(), "the gateway is on, so its key exists");
    let id = env.ok(&[
        "run",
        "--agent",
        "command",
        "--cmd",
        "echo done",
        "--verify",
        &format!("cat {}", key.display()),
        "steal the key",
    ]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "failed", "{t:#}");
    let gate = env
        .events(&id)
        .into_iter()
        .find(|e| e["kind"] == "gate")
        .unwrap();
    let tail = gate["data"]["output_tail"].as_str().unwrap();
    assert!(tail.contains("No such file"), "{tail}");
    let secret = std::fs::read(&key).unwrap();
    assert!(
        !tail.contains(String::from_utf8_lossy(&secret).trim()),
        "the gate printed the key"
    );
}

#[test]
fn the_jail_adds_milliseconds_to_a_start() {
    let env = Env::new();
    env.ok(&["daemon"]);
    // Warm up (the first task builds the base checkout).
    env.wait(&env.run_command_task("true", "warm"));
    let mut ms = vec![];
    for i in 0..5 {
        let id = env.run_command_task("true", &format!("t{i}"));
        env.wait(&id);
        let evs = env.events(&id);
        let at = |s: &str| {
            evs.iter()
                .find(|e| e["kind"] == "state" && e["data"]["state"] == s)
                .map(|e| chrono_ms(e["ts"].as_str().unwrap()))
                .unwrap()
        };
        ms.push(at("running") - at("preparing"));
    }
    ms.sort();
    println!(
        "preparing → running, confined: median {} ms (of {ms:?})",
        ms[2]
    );
    assert!(ms[2] < 2000, "{ms:?}");
}

/// Milliseconds of an RFC 3339 UTC timestamp's time of day.
fn chrono_ms(ts: &str) -> i64 {
    let t = ts.split('T').nth(1).unwrap().trim_end_matches('Z');
    let mut parts = t.split(':');
    let h: i64 = parts.next().unwrap().parse().unwrap();
    let m: i64 = parts.next().unwrap().parse().unwrap();
    let s: f64 = parts
        .next()
        .unwrap()
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .unwrap();
    (h * 3600 + m * 60) * 1000 + (s * 1000.0) as i64
}

fn cmdline(pid: i64) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default()
}

fn session_of(pid: i64) -> i64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default().to_string();
    after
        .split_whitespace()
        .nth(3)
        .and_then(|s| s.parse().ok())
        .unwrap_or(-1)
}

fn descendants(root: i64) -> Vec<i64> {
    let mut out = vec![];
    let mut todo = vec![root];
    while let Some(p) = todo.pop() {
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i64>().ok()) else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let after = stat.rsplit(')').next().unwrap_or_default().to_string();
            if after
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse::<i64>().ok())
                == Some(p)
            {
                out.push(pid);
                todo.push(pid);
            }
        }
    }
    out
}

#[test]
fn the_gateway_is_reachable_and_nothing_else_on_the_host() {
    let provider = Provider::start(json!({ "scenarios": [
        { "name": "default", "turns": [{ "content": [{ "type": "text", "text": "pong-from-fake" }] }] }
    ]}));
    let env = Env::new()
        .with_env("ANTHROPIC_BASE_URL", &provider.url)
        .with_env("ANTHROPIC_API_KEY", "sk-ant-test-key");
    let body =
        drover_test_support::provider::anthropic_body("claude-sonnet-4-6", "ping", 0, false, "t");
    std::fs::write(env.repo.join("body.json"), body.to_string()).unwrap();
    env.git(&["add", "body.json"]);
    env.git(&["commit", "-qm", "body"]);
    env.ok(&["daemon"]);
    // The fake provider's own port is on the host's loopback: reachable only through drover.
    let provider_port = provider
        .url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let script = [
        legit(
            "gateway",
            "curl -sf -m 20 -X POST \"$ANTHROPIC_BASE_URL/v1/messages\" -H \"x-api-key: $ANTHROPIC_API_KEY\" \
             -H 'anthropic-version: 2023-06-01' -H 'content-type: application/json' -d @body.json -o reply.json",
        ),
        attack(
            "provider directly",
            &format!("curl -s -m 5 -o /dev/null http://127.0.0.1:{provider_port}/v1/messages"),
        ),
        "true".to_string(),
    ]
    .concat();
    let id = env.run_command_task(&script, "through the gateway only");
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    assert_report(
        &report(&env, &id),
        &["gateway: works", "provider directly: ok"],
    );
    let reply = env.git(&["show", &format!("drover/{id}:reply.json")]);
    assert!(reply.contains("pong-from-fake"), "{reply}");
    assert_eq!(provider.log().len(), 1, "one request, through the gateway");
}

#[test]
fn a_real_claude_code_task_succeeds_confined() {
    let provider = Provider::start(json!({ "scenarios": [
        { "name": "write", "match": "WRITE-HELLO", "turns": [
            { "content": [ {"type": "tool_use", "name": "Write",
                            "input": {"file_path": "HELLO.txt", "content": "hello from the jail\n"}} ] },
            { "content": [ {"type": "text", "text": "Wrote HELLO.txt."} ] } ] },
        { "name": "default", "turns": [ { "content": [ {"type": "text", "text": "hello"} ] } ] }
    ]}));
    let env = Env::claude(&provider);
    let started = Instant::now();
    let id = env.ok(&[
        "run",
        "--permissions",
        "allow",
        "WRITE-HELLO: write the file",
    ]);
    let t = env.wait(&id);
    println!("a confined Claude Code task took {:?}", started.elapsed());
    assert_eq!(t["state"], "succeeded", "{t:#}");
    assert_eq!(
        env.git(&["show", &format!("drover/{id}:HELLO.txt")]),
        "hello from the jail"
    );
    // It kept its sessions in its private home, not in the user's.
    let private = env
        .home
        .join("tasks")
        .join(&id)
        .join("home/.claude/projects");
    assert!(
        private.is_dir(),
        "no private Claude config dir at {}",
        private.display()
    );
    assert!(!env.user_home.join(".claude/projects").exists());
}

#[test]
fn a_worktree_agent_commits_but_cannot_touch_the_repos_config_or_hooks() {
    let env = Env::new();
    std::fs::create_dir_all(&env.home).unwrap();
    std::fs::write(env.home.join("config.toml"), "sandbox = \"worktree\"\n").unwrap();
    env.ok(&["daemon"]);
    let common = env.repo.join(".git");
    let main_before = env.git(&["rev-parse", "main"]);
    let script = [
        legit(
            "commit",
            "sh -c 'echo a > a.txt && git add a.txt && git -c user.name=a -c user.email=a@example.com commit -qm agent-commit'",
        ),
        attack("hook", "sh -c 'echo evil > \"$(git rev-parse --git-common-dir)/hooks/post-checkout\"'"),
        attack("config", "git config core.hooksPath /tmp"),
        attack("user branch", "git update-ref refs/heads/main HEAD"),
        attack("user tag", "git tag evil"),
        attack("user work tree", &format!("cat {}/README.md", env.repo.display())),
        // (Its mount point's parents are in the jail's private /tmp: a write lands there.)
        format!("touch {}/planted 2>/dev/null; ", env.repo.display()),
        "true".to_string(),
    ]
    .concat();
    let id = env.run_command_task(&script, "worktree");
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    assert_eq!(t["sandbox_kind"], "worktree", "{t:#}");
    assert_report(
        &report(&env, &id),
        &[
            "commit: works",
            "hook: ok",
            "config: ok",
            "user branch: ok",
            "user tag: ok",
            "user work tree: ok",
        ],
    );
    // The user's branch and tags are where they were (the agent could move only its task
    // branch's directory, refs/heads/drover/).
    assert_eq!(env.git(&["rev-parse", "main"]), main_before);
    assert!(env.git(&["tag", "-l"]).trim().is_empty());
    let log = env.git(&["log", "--format=%s", &format!("drover/{id}")]);
    assert!(log.contains("agent-commit"), "{log}");
    assert!(!common.join("hooks/post-checkout").exists());
    assert!(!env.repo.join("planted").exists());
    let config = std::fs::read_to_string(common.join("config")).unwrap();
    assert!(!config.contains("hooksPath"), "{config}");
}
