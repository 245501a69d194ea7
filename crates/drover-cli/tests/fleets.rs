//! Pools, verdicts, quality gates, failure streaks and build locks.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

fn pool_show(env: &Env, name: &str) -> Value {
    env.json(&["pool", "show", name, "--json"])
}

fn until_pool(env: &Env, name: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    drover_test_support::poll::until(
        what,
        Duration::from_secs(180),
        Duration::from_millis(100),
        || pool_show(env, name),
        pred,
    )
}

fn pool_tasks(env: &Env, name: &str) -> Vec<Value> {
    let all: Vec<Value> = serde_json::from_str(&env.ok(&["ls", "--all", "--json"])).unwrap();
    all.into_iter().filter(|t| t["pool"] == name).collect()
}

fn judge_turn(verdict: &str, reason: &str) -> Value {
    json!([{ "content": [{ "type": "tool_use", "name": "record_verdict",
                            "input": { "verdict": verdict, "reason": reason } }] }])
}

fn final_text(text: &str, delay_ms: u64) -> Value {
    json!([{ "content": [{ "type": "text", "text": text }], "delay_ms": delay_ms }])
}

#[test]
fn a_judged_pool_stops_after_three_failures_and_notifies_once() {
    let fails = "could not deploy: build failed";
    let mut scenarios = vec![
        // The judge's requests carry the agent's final message; they come first so they match first.
        json!({ "name": "judge-ok1", "match": "Agent's final message:\npipeline complete", "turns": judge_turn("success", "the pipeline passed") }),
        json!({ "name": "judge-ok2", "match": "Agent's final message:\ndeployed to", "turns": judge_turn("success", "deployed and emailed") }),
        json!({ "name": "judge-fail", "match": "Agent's final message:\ncould not deploy", "turns": judge_turn("fail", "the build failed") }),
        json!({ "name": "s1", "match": "POOLJ #1.", "turns": final_text("pipeline complete: test-abc passed", 0) }),
        json!({ "name": "s2", "match": "POOLJ #2.", "turns": final_text("deployed to https://app.example.invalid, sent email", 0) }),
    ];
    for n in 3..=9 {
        scenarios.push(json!({ "name": format!("s{n}"), "match": format!("POOLJ #{n}."), "turns": final_text(fails, 1500) }));
    }
    scenarios.push(json!({ "name": "default", "turns": final_text("?", 0) }));
    let provider = Provider::start(json!({ "scenarios": scenarios }));
    let env = Env::claude(&provider);
    let notified = env.tmp.path().join("notified");
    let notify = format!(
        "echo \"$DROVER_POOL $DROVER_STREAK\" >> {}; echo \"$DROVER_REASON\" > {}.reason",
        notified.display(),
        notified.display()
    );
    env.ok(&[
        "pool",
        "start",
        "deploys",
        "--slots",
        "3",
        "--prompt",
        "POOLJ #{n}. Run the pipeline.",
        "--judge-model",
        "claude-haiku-4-5",
        "--max-failures",
        "3",
        "--notify",
        &notify,
    ]);
    let p = until_pool(&env, "deploys", "the pool to stop", |p| {
        p["state"] == "failed" && p["running"] == 0
    });
    assert!(p["streak"].as_i64().unwrap() >= 3, "{p:#}");
    // Notify ran exactly once, with the pool and the streak.
    poll("notify to run", Duration::from_secs(30), || {
        notified.exists()
    });
    let p = until_pool(&env, "deploys", "the notify event", |p| {
        p["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "notify")
    });
    let lines = std::fs::read_to_string(&notified).unwrap();
    // Exactly one notification, for this pool, with a streak of at least 3 (two failures can land
    // between two scheduler passes).
    let lines: Vec<&str> = lines.lines().collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let (pool, streak) = lines[0].split_once(' ').unwrap();
    assert_eq!(pool, "deploys");
    assert!(streak.parse::<u32>().unwrap() >= 3, "{lines:?}");
    assert!(
        std::fs::read_to_string(format!("{}.reason", notified.display()))
            .unwrap()
            .contains("the build failed")
    );
    let notify_ev = p["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "notify")
        .unwrap();
    assert_eq!(notify_ev["data"]["exit_code"], 0);
    // The verdicts came from the judge, by task number.
    let tasks = pool_tasks(&env, "deploys");
    for t in &tasks {
        let n: u32 = t["name"]
            .as_str()
            .unwrap()
            .trim_start_matches("deploys-")
            .parse()
            .unwrap();
        let verdict = &t["outcome"]["verdict"];
        if n <= 2 {
            assert_eq!(verdict, "success", "{t:#}");
            assert_eq!(t["state"], "succeeded");
        } else {
            assert_eq!(verdict, "fail", "{t:#}");
            assert_eq!(t["state"], "failed");
            assert!(
                t["outcome"]["reason"].as_str().unwrap().contains("judge"),
                "{t:#}"
            );
        }
    }
    // No dispatch after the stop: every task was created before the pool's `failed` event.
    let stopped_at = p["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "state" && e["data"]["state"] == "failed")
        .unwrap()["ts"]
        .as_str()
        .unwrap()
        .to_string();
    for t in &tasks {
        assert!(
            t["created_at"].as_str().unwrap() <= stopped_at.as_str(),
            "{t:#} after {stopped_at}"
        );
    }
    assert_eq!(p["launched"].as_u64().unwrap() as usize, tasks.len());
    // Never more than 3 at once.
    let ids: Vec<String> = tasks
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    assert!(max_overlap(&busy_intervals(&env, &ids)) <= 3);
    assert_eq!(p["finished"].as_i64().unwrap() as usize, tasks.len());
}

#[test]
fn a_failing_gate_reaches_the_agent_which_fixes_it() {
    let provider = Provider::start(json!({ "scenarios": [
        { "name": "gate", "match": "GATED", "turns": [
            { "content": [{ "type": "tool_use", "name": "Write", "input": { "file_path": "calc.txt", "content": "2+2=5\n" } }] },
            { "content": [{ "type": "text", "text": "Wrote calc.txt." }] },
            { "content": [{ "type": "tool_use", "name": "Write", "input": { "file_path": "calc.txt", "content": "2+2=4\n" } }] },
            { "content": [{ "type": "text", "text": "Fixed calc.txt." }] }
        ] },
        { "name": "default", "turns": [{ "content": [{ "type": "text", "text": "?" }] }] }
    ]}));
    let env = Env::claude(&provider);
    let gate = "grep -q '2+2=4' calc.txt || { echo GATE-MARKER-7 wrong sum in calc.txt; exit 1; }";
    let id = env.ok(&["run", "--verify", gate, "GATED: write calc.txt"]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    assert_eq!(t["result"], "Fixed calc.txt.");
    let evs = env.events(&id);
    let gates: Vec<&Value> = evs.iter().filter(|e| e["kind"] == "gate").collect();
    assert_eq!(gates.len(), 2, "{gates:#?}");
    assert_eq!(gates[0]["data"]["passed"], false);
    assert_eq!(gates[0]["data"]["exit_code"], 1);
    assert!(gates[0]["data"]["output_tail"]
        .as_str()
        .unwrap()
        .contains("GATE-MARKER-7"));
    assert_eq!(gates[1]["data"]["passed"], true);
    assert!(evs
        .iter()
        .any(|e| e["kind"] == "state" && e["data"]["state"] == "verifying"));
    assert_eq!(
        env.git(&["show", &format!("drover/{id}:calc.txt")]),
        "2+2=4"
    );
    // The gate's output reached the same session: it is in Claude's own transcript (in the
    // confined agent's private home).
    let session = t["session_id"].as_str().unwrap();
    let config = env.home.join("tasks").join(&id).join("home/.claude");
    let transcript = find_file(&config, &format!("{session}.jsonl")).expect("transcript");
    assert!(std::fs::read_to_string(transcript)
        .unwrap()
        .contains("GATE-MARKER-7"));
}

#[test]
fn a_gate_that_never_passes_exhausts_verify_rounds_then_fails() {
    // The agent answers every turn (the first and each gate feedback) with the same text.
    let provider = Provider::start(json!({ "scenarios": [
        { "name": "stuck", "match": "NEVER-GREEN", "turns": [
            { "content": [{ "type": "text", "text": "I think it is fixed." }], "repeat": true } ] },
        { "name": "default", "turns": [{ "content": [{ "type": "text", "text": "?" }] }] }
    ]}));
    let env = Env::claude(&provider);
    let gate = "echo GATE-RED; exit 3";
    let id = env.ok(&[
        "run",
        "--verify",
        gate,
        "--verify-rounds",
        "2",
        "NEVER-GREEN: fix it",
    ]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "failed", "{t:#}");
    assert_eq!(t["outcome"]["error_kind"], "gate_failed", "{t:#}");
    let evs = env.events(&id);
    // The first run, then one after each of the 2 feedback rounds: 3 runs, all failed.
    let gates: Vec<&Value> = evs.iter().filter(|e| e["kind"] == "gate").collect();
    assert_eq!(gates.len(), 3, "{gates:#?}");
    for (i, g) in gates.iter().enumerate() {
        assert_eq!(g["data"]["passed"], false, "{g}");
        assert_eq!(g["data"]["exit_code"], 3, "{g}");
        assert_eq!(g["data"]["round"], i as i64 + 1, "{g}");
    }
    let feedback: Vec<&Value> = evs
        .iter()
        .filter(|e| e["kind"] == "input" && e["data"]["by"] == "gate")
        .collect();
    assert_eq!(feedback.len(), 2, "{feedback:#?}");
    assert!(feedback[0]["data"]["message"]
        .as_str()
        .unwrap()
        .contains("GATE-RED"));
    // The model saw exactly three turns of this task: the prompt and the two feedbacks.
    let turns = provider
        .log()
        .iter()
        .filter(|r| r.scenario.as_deref() == Some("stuck") && !r.side && r.status == 200)
        .count();
    assert_eq!(turns, 3);
}

#[test]
fn gates_that_keep_failing_end_in_gate_failed_and_a_missing_gate_command_is_clear() {
    let env = Env::new();
    let id = env.ok(&[
        "run",
        "--agent",
        "command",
        "--cmd",
        "echo done",
        "--verify",
        "no-such-gate-cmd --flag",
        "x",
    ]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "failed", "{t:#}");
    assert_eq!(t["outcome"]["error_kind"], "gate_failed");
    let gate = env
        .events(&id)
        .into_iter()
        .find(|e| e["kind"] == "gate")
        .unwrap();
    assert_eq!(gate["data"]["exit_code"], 127);
    assert!(
        gate["data"]["output_tail"]
            .as_str()
            .unwrap()
            .contains("not found"),
        "{gate:#}"
    );
    let id = env.ok(&[
        "run",
        "--agent",
        "command",
        "--cmd",
        "echo ok > f",
        "--verify",
        "test -s f",
        "y",
    ]);
    assert_eq!(env.wait(&id)["state"], "succeeded");
}

#[test]
fn a_pool_survives_sigkill_of_the_daemon_without_double_filling() {
    let env = Env::new();
    env.ok(&[
        "pool",
        "start",
        "steady",
        "--slots",
        "2",
        "--count",
        "6",
        "--agent",
        "command",
        "--cmd",
        "sleep 0.4; echo ok > out.txt; echo ok",
        "--prompt",
        "p",
    ]);
    until_pool(&env, "steady", "two running", |p| {
        p["running"] == 2 && p["launched"].as_i64().unwrap() >= 2
    });
    env.kill_daemon();
    let p = until_pool(&env, "steady", "the pool to finish", |p| {
        p["state"] == "done"
    });
    assert_eq!(p["launched"], 6);
    assert_eq!(p["finished"], 6);
    assert_eq!(p["successes"], 6);
    assert_eq!(p["failures"], 0);
    let tasks = pool_tasks(&env, "steady");
    assert_eq!(tasks.len(), 6);
    let ids: Vec<String> = tasks
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    assert!(max_overlap(&busy_intervals(&env, &ids)) <= 2);
}

#[test]
fn pool_bad_input() {
    let env = Env::new();
    env.ok(&[
        "pool", "start", "one", "--slots", "1", "--agent", "command", "--cmd", "true", "--prompt",
        "p", "--count", "1",
    ]);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "pool", "start", "one", "--slots", "1", "--agent", "command", "--cmd", "true",
                "--prompt", "p",
            ],
            "already exists",
        ),
        (
            vec!["pool", "start", "two", "--slots", "0", "--prompt", "p"],
            "at least 1",
        ),
        (
            vec![
                "pool",
                "start",
                "three",
                "--slots",
                "1",
                "--prompt-file",
                "/no/such/file",
            ],
            "--prompt-file",
        ),
        (vec!["pool", "show", "nope"], "nope"),
    ];
    for (args, needle) in cases {
        let out = env.run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn a_failing_notify_command_is_recorded_and_the_pool_still_stops() {
    let env = Env::new();
    env.ok(&[
        "pool",
        "start",
        "bad",
        "--slots",
        "1",
        "--agent",
        "command",
        "--cmd",
        "exit 1",
        "--prompt",
        "p",
        "--max-failures",
        "2",
        "--notify",
        "no-such-notifier",
    ]);
    let p = until_pool(&env, "bad", "notify", |p| {
        p["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "notify")
    });
    assert_eq!(p["state"], "failed");
    assert_eq!(p["launched"], 2);
    let ev = p["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "notify")
        .unwrap();
    assert_eq!(ev["data"]["exit_code"], 127);
    assert!(ev["data"]["output_tail"]
        .as_str()
        .unwrap()
        .contains("not found"));
    // Resume starts a new streak and dispatches again.
    env.ok(&["pool", "resume", "bad"]);
    until_pool(&env, "bad", "stopped again", |p| {
        p["state"] == "failed" && p["launched"] == 4
    });
}

#[test]
fn build_locks_serialize_their_holders() {
    let env = Env::new();
    let section =
        "drover lock build --slots 1 -- sh -c 'date +%s%N > start; sleep 0.4; date +%s%N > end'";
    let ids: Vec<String> = (0..3)
        .map(|i| env.run_command_task(section, &format!("lock {i}")))
        .collect();
    let mut spans = vec![];
    for id in &ids {
        let t = env.wait(id);
        assert_eq!(t["state"], "succeeded", "{t:#}");
        let read = |f: &str| {
            env.git(&["show", &format!("drover/{id}:{f}")])
                .parse::<u128>()
                .unwrap()
        };
        spans.push((read("start"), read("end")));
    }
    spans.sort();
    for w in spans.windows(2) {
        assert!(w[0].1 <= w[1].0, "locked sections overlap: {spans:?}");
    }
}

#[test]
fn a_lock_holder_that_dies_releases_the_lock() {
    let env = Env::new();
    // The first holder is killed while it holds the lock; the second must still get it.
    let first = env.run_command_task(
        "drover lock solo -- sh -c 'echo $$ > holder.pid; exec sleep 60'",
        "holder",
    );
    // Holding, and its process group recorded (the lock can be taken before the supervisor has
    // stored the agent's pids).
    let t = env.until(&first, "holding", |t| {
        t["locks"]["holding"]
            .as_array()
            .is_some_and(|h| !h.is_empty())
            && t["pgid"].is_i64()
    });
    assert_eq!(t["locks"]["holding"][0], "solo");
    let second = env.run_command_task("drover lock solo -- echo got it", "waiter");
    env.until(&second, "waiting", |t| {
        t["locks"]["waiting"]
            .as_array()
            .is_some_and(|h| !h.is_empty())
    });
    unsafe { libc::kill(-(t["pgid"].as_i64().unwrap() as i32), libc::SIGKILL) };
    let t2 = env.wait(&second);
    assert_eq!(t2["state"], "succeeded", "{t2:#}");
    assert_eq!(t2["result"], "got it");
}

fn find_file(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(f) = find_file(&p, name) {
                return Some(f);
            }
        } else if p.file_name().and_then(|n| n.to_str()) == Some(name) {
            return Some(p);
        }
    }
    None
}

#[test]
fn a_hard_failure_policy_stops_the_running_tasks_too() {
    let env = Env::new();
    // Task 1 runs long; every other task fails at once.
    let cmd = "if [ \"$DROVER_PROMPT\" = 'job 1' ]; then exec sleep 60; else exit 1; fi";
    env.ok(&[
        "pool",
        "start",
        "harsh",
        "--slots",
        "2",
        "--agent",
        "command",
        "--cmd",
        cmd,
        "--prompt",
        "job {n}",
        "--max-failures",
        "2",
        "--on-failures",
        "hard",
    ]);
    let p = until_pool(&env, "harsh", "the pool to stop and drain", |p| {
        p["state"] == "failed" && p["running"] == 0
    });
    // The cancelled task was stopped by the pool: not a failure of its own.
    assert_eq!(p["cancelled"], 1);
    assert_eq!(
        p["failures"].as_i64().unwrap(),
        p["finished"].as_i64().unwrap() - 1
    );
    let first = pool_tasks(&env, "harsh")
        .into_iter()
        .find(|t| t["name"] == "harsh-1")
        .unwrap();
    assert_eq!(first["state"], "cancelled", "{first:#}");
}
