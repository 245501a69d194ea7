//! The real Claude Code CLI (pinned 2.1.328) against the fake provider.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use serde_json::{json, Value};

/// Not a plain file edit, so `acceptEdits` leaves it to the host.
const PERM_CMD: &str = "python3 -c \"open('perm.txt','w').write('allowed\\n')\"";

/// Characters of the long literal in [`big_perm_cmd`]: the request is far over what
/// `pending_input` keeps, and one argument of `bash -c` still fits (< 128 KiB).
const BIG_LEN: usize = 100_000;

/// A permission request with a ~100 KB input; the file it writes says whether the command ran
/// whole (the length of its long literal).
fn big_perm_cmd() -> String {
    format!(
        "python3 -c \"open('big.txt','w').write(str(len('{}')))\"",
        "x".repeat(BIG_LEN)
    )
}

fn scenarios() -> Value {
    json!({ "scenarios": [
        { "name": "write", "match": "WRITE-HELLO", "turns": [
            { "content": [ {"type": "tool_use", "name": "Write",
                            "input": {"file_path": "HELLO.txt", "content": "hello from drover\n"}} ],
              "usage": {"input": 1000, "output": 50, "cache_read": 200, "cache_creation": 300} },
            { "content": [ {"type": "text", "text": "Wrote HELLO.txt as asked."} ],
              "usage": {"input": 1100, "output": 30} } ] },
        { "name": "slow", "match": "SLOW-WRITE", "turns": [
            { "content": [ {"type": "tool_use", "name": "Write",
                            "input": {"file_path": "slow.txt", "content": "slow\n"}} ],
              "hold": "slow" },
            { "content": [ {"type": "text", "text": "slow done"} ] } ] },
        { "name": "resume", "match": "RESUME-ME", "turns": [
            { "content": [ {"type": "tool_use", "name": "Write",
                            "input": {"file_path": "resume.txt", "content": "before the crash\n"}} ] },
            { "content": [ {"type": "text", "text": "resumed done"} ], "hold": "resume" } ] },
        { "name": "perm", "match": "NEEDS-BASH", "turns": [
            { "content": [ {"type": "tool_use", "name": "Bash",
                            "input": {"command": PERM_CMD, "description": "write a file"}} ] },
            { "content": [ {"type": "text", "text": "bash ran"} ] } ] },
        { "name": "bigperm", "match": "BIG-BASH", "turns": [
            { "content": [ {"type": "tool_use", "name": "Bash",
                            "input": {"command": big_perm_cmd(), "description": "write a file"}} ] },
            { "content": [ {"type": "text", "text": "big bash ran"} ] } ] },
        { "name": "default", "turns": [ { "content": [ {"type": "text", "text": "hello"} ] } ] }
    ]})
}

fn last_result_line(env: &Env, id: &str) -> Value {
    let raw = std::fs::read_to_string(env.home.join("tasks").join(id).join("stdout.log")).unwrap();
    raw.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["type"] == "result")
        .expect("a result line in the raw log")
}

fn assert_contiguous(evs: &[Value]) {
    for (i, e) in evs.iter().enumerate() {
        assert_eq!(
            e["seq"].as_i64().unwrap(),
            i as i64 + 1,
            "seq gap or duplicate"
        );
    }
}

#[test]
fn claude_writes_a_file_and_it_is_committed_on_the_task_branch() {
    let provider = Provider::start(scenarios());
    let env = Env::claude(&provider);
    let id = env.ok(&[
        "run",
        "--name",
        "hello",
        "--model",
        "claude-sonnet-4-6",
        "WRITE-HELLO: create HELLO.txt",
    ]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}\n{:#?}", env.events(&id));
    assert_eq!(t["result"], "Wrote HELLO.txt as asked.");
    let commit = t["commit"].as_str().unwrap();
    assert_eq!(env.git(&["rev-parse", &format!("drover/{id}")]), commit);
    assert_eq!(
        env.git(&["show", &format!("{commit}:HELLO.txt")]),
        "hello from drover"
    );
    // Claude's own figure (the last result line's total_cost_usd, never a sum) is kept as the
    // cross-check; the task's cost is metered by the gateway from the wire — and they agree.
    let line = last_result_line(&env, &id);
    let claude_cost = line["total_cost_usd"].as_f64().unwrap();
    assert_eq!(t["agent_cost_usd"].as_f64(), Some(claude_cost));
    assert_eq!(t["metered_by"], "gateway");
    let cost = t["cost_usd"].as_f64().unwrap();
    assert!(
        (cost - claude_cost).abs() < 1e-9,
        "gateway {cost} vs claude {claude_cost}"
    );
    assert_eq!(t["session_id"], line["session_id"]);
    let evs = env.events(&id);
    assert_contiguous(&evs);
    let call = evs
        .iter()
        .find(|e| e["kind"] == "tool_call")
        .expect("tool_call event");
    assert_eq!(call["data"]["name"], "Write");
    assert!(evs.iter().any(|e| e["kind"] == "tool_result"));
    assert!(evs
        .iter()
        .any(|e| e["kind"] == "result" && e["data"]["result"] == "Wrote HELLO.txt as asked."));
    // Two scripted turns were played, nothing else.
    let log = provider.log();
    let turns: Vec<Option<usize>> = log.iter().filter(|r| !r.side).map(|r| r.turn).collect();
    assert_eq!(turns, vec![Some(0), Some(1)]);
    // Tokens: exactly what the provider sent; dollars: tokens × the configured prices
    // (claude-sonnet-4-6: $3 in, $15 out, $0.30 cache read, $3.75 cache write per million).
    let sum =
        |f: &dyn Fn(&drover_fake_provider::RequestRecord) -> u64| log.iter().map(f).sum::<u64>();
    let (i, o) = (
        sum(&|r| r.usage.input_tokens),
        sum(&|r| r.usage.output_tokens),
    );
    let (cr, cw) = (
        sum(&|r| r.usage.cache_read_input_tokens),
        sum(&|r| r.usage.cache_creation_input_tokens),
    );
    assert_eq!(t["usage"]["input_tokens"], i);
    assert_eq!(t["usage"]["output_tokens"], o);
    assert_eq!(t["usage"]["cache_read_tokens"], cr);
    assert_eq!(t["usage"]["cache_write_tokens"], cw);
    let expected = (i as f64 * 3.0 + o as f64 * 15.0 + cr as f64 * 0.30 + cw as f64 * 3.75) / 1e6;
    assert!((cost - expected).abs() < 1e-9, "cost {cost} != {expected}");
}

#[test]
fn the_agent_never_holds_the_provider_key() {
    let provider = Provider::start(scenarios());
    let env = Env::claude(&provider);
    let id = env.ok(&["run", "SLOW-WRITE: take your time"]);
    // The agent is inside its first turn, which answers only when released: it stays alive.
    provider.wait_held("slow", 1);
    let t = env.until(&id, "the agent started", |t| {
        t["state"] == "running" && !t["session_id"].is_null()
    });
    let ready: Value = serde_json::from_str(
        &std::fs::read_to_string(env.home.join("tasks").join(&id).join("ready.json")).unwrap(),
    )
    .unwrap();
    for pid in [
        t["pid"].as_i64().unwrap(),
        ready["shim_pid"].as_i64().unwrap(),
    ] {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        for bytes in [&environ, &cmdline] {
            let text = String::from_utf8_lossy(bytes);
            assert!(
                !text.contains("sk-ant-test-key"),
                "the provider key leaked into process {pid}"
            );
        }
        // The agent has a task token and the gateway as its base URL instead.
        if pid == t["pid"].as_i64().unwrap() {
            let text = String::from_utf8_lossy(&environ);
            assert!(text.contains("ANTHROPIC_API_KEY=drv-"), "no task token");
            assert!(
                !text.contains(&provider.url),
                "the agent talks to the provider directly"
            );
        }
    }
    provider.release("slow");
    assert_eq!(env.wait(&id)["state"], "succeeded");
    // No key in the store, the logs or the events either.
    for entry in walk(&env.home) {
        if let Ok(bytes) = std::fs::read(&entry) {
            assert!(
                !String::from_utf8_lossy(&bytes).contains("sk-ant-test-key"),
                "key found in {}",
                entry.display()
            );
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                out.extend(walk(&p));
            } else if p.is_file() {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn sigkill_of_the_daemon_during_a_claude_task_loses_nothing() {
    let provider = Provider::start(scenarios());
    let env = Env::claude(&provider);
    let id = env.ok(&["run", "SLOW-WRITE: take your time"]);
    // The agent is inside its first turn, which answers only when released: it stays alive.
    provider.wait_held("slow", 1);
    let t = env.until(&id, "the agent started", |t| {
        t["state"] == "running" && !t["session_id"].is_null()
    });
    let pid = t["pid"].as_i64().unwrap();
    env.kill_daemon();
    assert!(alive(pid), "the agent died with the daemon");
    // The turn answers only now, with no daemon watching; the next daemon picks it up.
    provider.release("slow");
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    assert_eq!(t["result"], "slow done");
    assert_eq!(env.git(&["show", &format!("drover/{id}:slow.txt")]), "slow");
    let evs = env.events(&id);
    assert_contiguous(&evs);
    assert_eq!(evs.iter().filter(|e| e["kind"] == "result").count(), 1);
    // Only the daemon is left: no shim, no agent.
    let daemon = env.daemon_pid().unwrap() as i64;
    let left: Vec<i64> = processes_of(&env.home)
        .into_iter()
        .filter(|p| *p != daemon)
        .collect();
    assert!(left.is_empty(), "orphans: {left:?}");
}

#[test]
fn a_permission_request_waits_for_an_answer() {
    let provider = Provider::start(scenarios());
    let env = Env::claude(&provider);
    let id = env.ok(&["run", "NEEDS-BASH: run a command"]);
    let t = env.until(&id, "needs_input", |t| t["state"] == "needs_input");
    assert_eq!(t["pending_input"]["tool"], "Bash");
    assert_eq!(t["pending_input"]["input"]["command"], PERM_CMD);
    let shown = env.ok(&["show", &id]);
    assert!(
        shown.contains("--allow"),
        "show should say how to answer: {shown}"
    );
    env.ok(&["send", &id, "--allow"]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    assert_eq!(t["result"], "bash ran");
    assert_eq!(
        env.git(&["show", &format!("drover/{id}:perm.txt")]),
        "allowed"
    );
    let evs = env.events(&id);
    let kinds: Vec<&str> = evs.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    let ni = kinds.iter().position(|k| *k == "needs_input").unwrap();
    let input = kinds.iter().position(|k| *k == "input").unwrap();
    assert!(ni < input, "{kinds:?}");
    assert_eq!(evs[input]["data"]["behavior"], "allow");
}

#[test]
fn a_deny_policy_answers_without_a_person() {
    let provider = Provider::start(scenarios());
    let env = Env::claude(&provider);
    let id = env.ok(&["run", "--permissions", "deny", "NEEDS-BASH: run a command"]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    let evs = env.events(&id);
    assert!(evs.iter().any(|e| e["kind"] == "input"
        && e["data"]["behavior"] == "deny"
        && e["data"]["by"] == "policy"));
    assert!(!evs
        .iter()
        .any(|e| e["kind"] == "state" && e["data"]["state"] == "needs_input"));
    let files = env.git(&["ls-tree", "-r", "--name-only", &format!("drover/{id}")]);
    assert!(!files.contains("perm.txt"), "denied command ran: {files}");
}

#[test]
fn a_missing_claude_binary_fails_the_task_with_a_hint() {
    let provider = Provider::start(scenarios());
    let env = Env::claude(&provider).with_env("DROVER_CLAUDE_BIN", "/nonexistent/claude");
    let out = env.run(&["run", "--wait", "WRITE-HELLO"]);
    assert_eq!(out.status.code(), Some(1));
    let tasks: Vec<Value> = serde_json::from_str(&env.ok(&["ls", "--json"])).unwrap();
    assert_eq!(tasks[0]["outcome"]["error_kind"], "agent_exit");
    assert!(tasks[0]["outcome"]["reason"]
        .as_str()
        .unwrap()
        .contains("DROVER_CLAUDE_BIN"));
}

#[test]
fn an_interrupted_claude_task_resumes_its_session() {
    let provider = Provider::start(scenarios());
    let env = Env::claude(&provider);
    let id = env.ok(&["run", "RESUME-ME: write, then think"]);
    // The first turn's tool ran (so the session has a transcript); the second is in flight,
    // held by the provider until this test lets it answer.
    provider.wait_held("resume", 1);
    poll("the first turn's tool result", CLI_DEADLINE, || {
        env.events(&id).iter().any(|e| e["kind"] == "tool_result")
    });
    let t = env.show(&id);
    let session = t["session_id"].as_str().unwrap().to_string();
    // The host loses both the shim and the agent mid-turn.
    let shim =
        std::fs::read_to_string(env.home.join("tasks").join(&id).join("ready.json")).unwrap();
    let shim: Value = serde_json::from_str(&shim).unwrap();
    unsafe { libc::kill(shim["shim_pid"].as_i64().unwrap() as i32, libc::SIGKILL) };
    unsafe { libc::kill(-(t["pgid"].as_i64().unwrap() as i32), libc::SIGKILL) };
    // The resumed session asks for the second turn again; from now on it is answered.
    provider.release("resume");
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}\n{:#?}", env.events(&id));
    assert_eq!(t["attempt"], 2);
    assert_eq!(
        t["session_id"],
        session.as_str(),
        "the same session continued"
    );
    assert_eq!(t["result"], "resumed done");
    assert_eq!(
        env.git(&["show", &format!("drover/{id}:resume.txt")]),
        "before the crash"
    );
    let states: Vec<String> = env
        .events(&id)
        .iter()
        .filter(|e| e["kind"] == "state")
        .map(|e| e["data"]["state"].as_str().unwrap().to_string())
        .collect();
    let i = states
        .iter()
        .position(|s| s == "interrupted")
        .expect("an interrupted state");
    assert_eq!(states[i + 1], "queued", "{states:?}");
    let raw =
        std::fs::read_to_string(env.home.join("tasks").join(&id).join("launch.json")).unwrap();
    assert!(
        raw.contains("--resume"),
        "the second attempt resumes: {raw}"
    );
    // The Write of the first attempt was not played twice: one tool call in all.
    assert_eq!(
        env.events(&id)
            .iter()
            .filter(|e| e["kind"] == "tool_call")
            .count(),
        1
    );
}

#[test]
fn attach_shows_the_transcript_and_sends_typed_lines() {
    use std::io::Write;
    let provider = Provider::start(json!({ "scenarios": [
        { "name": "chat", "match": "ATTACH-ME", "turns": [
            { "content": [{ "type": "text", "text": "first answer" }], "hold": "first" },
            { "content": [{ "type": "text", "text": "second answer" }] } ] },
        { "name": "bigperm", "match": "BIG-BASH", "turns": [
            { "content": [ {"type": "tool_use", "name": "Bash",
                            "input": {"command": big_perm_cmd(), "description": "write a file"}} ] },
            { "content": [ {"type": "text", "text": "big bash ran"} ] } ] },
        { "name": "default", "turns": [{ "content": [{ "type": "text", "text": "?" }] }] }
    ]}));
    let env = Env::claude(&provider);
    let id = env.ok(&["run", "ATTACH-ME: talk to me"]);
    env.until(&id, "running", |t| {
        t["state"] == "running" && !t["session_id"].is_null()
    });
    let mut child = env
        .cmd(&["attach", &id])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "ATTACH-FOLLOWUP also say more").unwrap();
    // The follow-up reached the task while the first turn was still held: now let it answer.
    poll("the follow-up as an input event", CLI_DEADLINE, || {
        env.events(&id).iter().any(|e| {
            e["kind"] == "input" && e["data"]["message"] == "ATTACH-FOLLOWUP also say more"
        })
    });
    provider.release("first");
    let out = finish_within(child, CLI_DEADLINE, "drover attach");
    drop(stdin);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("first answer"), "{text}");
    assert!(text.contains("second answer"), "{text}");
    let t = env.show(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    assert_eq!(t["result"], "second answer");
    let evs = env.events(&id);
    assert!(evs
        .iter()
        .any(|e| e["kind"] == "input" && e["data"]["message"] == "ATTACH-FOLLOWUP also say more"));
    assert_eq!(evs.iter().filter(|e| e["kind"] == "result").count(), 2);
}

#[test]
fn a_huge_permission_request_is_stored_small_and_allow_runs_it_whole() {
    let provider = Provider::start(scenarios());
    let env = Env::claude(&provider);
    let id = env.ok(&["run", "BIG-BASH: run a long command"]);
    let t = env.until(&id, "needs_input", |t| t["state"] == "needs_input");
    // The task row holds a bounded form: marked, pointing at the whole line in the raw log.
    let p = &t["pending_input"];
    assert_eq!(p["tool"], "Bash");
    assert_eq!(p["truncated"], true, "{p:#}");
    let stored = p.to_string().len();
    assert!(stored < 10 << 10, "pending_input is {stored} bytes");
    assert_eq!(p["raw"]["stream"], "stdout");
    let (off, len) = (
        p["raw"]["offset"].as_u64().unwrap() as usize,
        p["raw"]["len"].as_u64().unwrap() as usize,
    );
    let log = std::fs::read(env.home.join("tasks").join(&id).join("stdout.log")).unwrap();
    let line: Value = serde_json::from_slice(&log[off..off + len]).unwrap();
    assert_eq!(line["type"], "control_request", "{line:#}");
    assert_eq!(
        line["request"]["input"]["command"].as_str().unwrap(),
        big_perm_cmd()
    );
    // A list page carries a short form only: request id and tool, an input excerpt.
    let page = env.ok(&["ls", "--json"]);
    assert!(page.len() < 8 << 10, "ls page is {} bytes", page.len());
    let tasks: Vec<Value> = serde_json::from_str(&page).unwrap();
    let summary = &tasks.iter().find(|x| x["id"] == id.as_str()).unwrap()["pending_input"];
    assert_eq!(summary["request_id"], p["request_id"]);
    assert_eq!(summary["tool"], "Bash");
    assert!(summary.to_string().len() < 1024, "{summary}");
    // Allow needs only the request id: Claude Code runs the command it asked for, whole.
    env.ok(&["send", &id, "--allow"]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    assert_eq!(t["result"], "big bash ran");
    assert_eq!(
        env.git(&["show", &format!("drover/{id}:big.txt")]),
        BIG_LEN.to_string()
    );
}
