//! `--protect GLOB`: gates run with protected paths as at the base commit, and a task whose work
//! changed a protected path fails with `gate_failed`, naming the paths. `command` agents.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use serde_json::Value;

/// The repo of every test: `check.sh` (the gate: prints a marker, passes only when `value.txt`
/// holds 42), `value.txt` (41), `tests/test_value.sh` and `tests/helper.sh`.
fn repo(env: &Env) {
    std::fs::write(
        env.repo.join("check.sh"),
        "echo BASE-GATE-RAN; test \"$(cat value.txt)\" = 42\n",
    )
    .unwrap();
    std::fs::write(env.repo.join("value.txt"), "41\n").unwrap();
    std::fs::create_dir_all(env.repo.join("tests")).unwrap();
    std::fs::write(
        env.repo.join("tests/test_value.sh"),
        "echo BASE-TEST-RAN; ls tests; test \"$(cat value.txt)\" = 42\n",
    )
    .unwrap();
    std::fs::write(env.repo.join("tests/helper.sh"), "true\n").unwrap();
    env.git(&["add", "-A"]);
    env.git(&["commit", "-qm", "gates"]);
}

fn gate_events(env: &Env, id: &str) -> Vec<Value> {
    env.events(id)
        .into_iter()
        .filter(|e| e["kind"] == "gate")
        .map(|e| e["data"].clone())
        .collect()
}

fn restored(gate: &Value) -> Vec<(String, String)> {
    gate["protect"]["restored"]
        .as_array()
        .unwrap_or_else(|| panic!("no protect.restored in {gate:#}"))
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap().to_string(),
                r["change"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pair(p: &str, c: &str) -> (String, String) {
    (p.to_string(), c.to_string())
}

/// The Must-show case: the agent makes the failing gate script pass by rewriting it.
fn overwritten_gate_script(env: &Env, kind: &str) {
    repo(env);
    let id = env.ok(&[
        "run",
        "--agent",
        "command",
        "--cmd",
        "printf 'echo AGENT-GATE; exit 0\\n' > check.sh; echo more >> notes.txt; echo done",
        "--verify",
        "sh check.sh",
        "--protect",
        "check.sh",
        "make the gate pass",
    ]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "failed", "{t:#}");
    assert_eq!(t["sandbox_kind"], kind);
    assert_eq!(t["outcome"]["error_kind"], "gate_failed", "{t:#}");
    let reason = t["outcome"]["reason"].as_str().unwrap();
    assert!(reason.contains("check.sh (modified)"), "{reason}");
    assert_eq!(t["protect"], serde_json::json!(["check.sh"]));
    // The gate ran the base version of the script, not the agent's.
    let gates = gate_events(env, &id);
    assert_eq!(gates.len(), 1, "{gates:#?}");
    let tail = gates[0]["output_tail"].as_str().unwrap();
    assert!(tail.contains("BASE-GATE-RAN"), "{tail}");
    assert!(!tail.contains("AGENT-GATE"), "{tail}");
    assert_eq!(gates[0]["exit_code"], 1);
    assert_eq!(gates[0]["protect"]["view"], kind);
    assert_eq!(restored(&gates[0]), vec![pair("check.sh", "modified")]);
    // The work is never lost: the agent's version is committed on its branch.
    let branch = format!("drover/{id}");
    assert_eq!(t["branch"], branch);
    assert_eq!(
        env.git(&["show", &format!("{branch}:check.sh")]),
        "echo AGENT-GATE; exit 0"
    );
    assert_eq!(env.git(&["show", &format!("{branch}:notes.txt")]), "more");
    // The user's checkout is untouched.
    assert!(std::fs::read_to_string(env.repo.join("check.sh"))
        .unwrap()
        .contains("BASE-GATE-RAN"));
}

#[test]
fn an_agent_that_rewrites_the_gate_script_fails_and_the_gate_runs_the_base_version() {
    let env = Env::new().with_env("DROVER_SANDBOX", "overlay");
    overwritten_gate_script(&env, "overlay");
}

#[test]
fn the_worktree_fallback_protects_the_same_way() {
    let env = Env::new().with_env("DROVER_SANDBOX", "worktree");
    overwritten_gate_script(&env, "worktree");
}

#[test]
fn weakened_tests_fail_the_task_even_when_the_gates_pass() {
    let env = Env::new();
    repo(&env);
    // The agent does the job (value 42), but also guts the test, deletes a helper and adds a file.
    let id = env.ok(&[
        "run",
        "--agent",
        "command",
        "--cmd",
        "echo 42 > value.txt; echo 'exit 0' > tests/test_value.sh; rm tests/helper.sh; \
         echo x > tests/added.sh; chmod +x check.sh",
        "--verify",
        "sh tests/test_value.sh",
        "--protect",
        "tests",
        "--protect",
        "check.sh",
        "fix value",
    ]);
    let t = env.wait(&id);
    let gates = gate_events(&env, &id);
    assert_eq!(gates.len(), 1, "{gates:#?}");
    let g = &gates[0];
    assert_eq!(
        g["passed"], true,
        "the base test passes on the fixed value: {g:#}"
    );
    let tail = g["output_tail"].as_str().unwrap();
    assert!(tail.contains("BASE-TEST-RAN"), "{tail}");
    assert!(
        tail.contains("helper.sh"),
        "deleted file is back for the gate: {tail}"
    );
    assert!(
        !tail.contains("added.sh"),
        "added file is gone for the gate: {tail}"
    );
    assert_eq!(
        restored(g),
        vec![
            pair("check.sh", "mode_changed"),
            pair("tests/added.sh", "added"),
            pair("tests/helper.sh", "deleted"),
            pair("tests/test_value.sh", "modified"),
        ]
    );
    assert_eq!(t["state"], "failed", "{t:#}");
    assert_eq!(t["outcome"]["error_kind"], "gate_failed");
    let reason = t["outcome"]["reason"].as_str().unwrap();
    for p in [
        "check.sh (mode changed)",
        "tests/added.sh (added)",
        "tests/helper.sh (deleted)",
        "tests/test_value.sh (modified)",
    ] {
        assert!(reason.contains(p), "{p} not in {reason}");
    }
    assert_eq!(
        env.git(&["show", &format!("drover/{id}:value.txt")]),
        "42",
        "the work is committed"
    );
}

#[test]
fn unprotected_changes_succeed_and_config_globs_apply_to_every_task() {
    let env = Env::new();
    repo(&env);
    std::fs::create_dir_all(&env.home).unwrap();
    std::fs::write(env.home.join("config.toml"), "protect = [\"tests/**\"]\n").unwrap();
    let id = env.ok(&[
        "run",
        "--agent",
        "command",
        "--cmd",
        "echo 42 > value.txt; echo fixed",
        "--verify",
        "sh check.sh",
        "--verify",
        "sh tests/test_value.sh",
        "--protect",
        "check.sh",
        "fix value",
    ]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    assert_eq!(t["protect"], serde_json::json!(["tests/**", "check.sh"]));
    let gates = gate_events(&env, &id);
    assert_eq!(gates.len(), 2);
    for g in &gates {
        assert_eq!(g["passed"], true, "{g:#}");
        assert_eq!(restored(g), vec![]);
    }
    assert_eq!(env.git(&["show", &format!("drover/{id}:value.txt")]), "42");
}

#[test]
fn protect_without_verify_still_fails_and_ignored_files_count() {
    let env = Env::new();
    repo(&env);
    // `target/` is ignored and has no file at the base commit: a warning, not a failure.
    let out = env.run(&[
        "run",
        "--agent",
        "command",
        "--cmd",
        "mkdir -p target; echo x > target/junk; echo changed > tests/helper.sh",
        "--protect",
        "target/**",
        "--protect",
        "tests/helper.sh",
        "p",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains("\"target/**\" matches no file at the base commit"),
        "{stderr}"
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let t = env.wait(&id);
    assert_eq!(t["state"], "failed", "{t:#}");
    assert_eq!(t["outcome"]["error_kind"], "gate_failed");
    let reason = t["outcome"]["reason"].as_str().unwrap();
    assert!(reason.contains("target/junk (added)"), "{reason}");
    assert!(reason.contains("tests/helper.sh (modified)"), "{reason}");
    assert!(
        gate_events(&env, &id).is_empty(),
        "no --verify, so no gate ran"
    );
}

#[test]
fn bad_globs_are_refused_with_exit_two_and_nothing_starts() {
    let env = Env::new();
    repo(&env);
    let cases: Vec<Vec<&str>> = vec![
        vec![
            "run",
            "--agent",
            "command",
            "--cmd",
            "true",
            "--protect",
            "tests/[oops",
            "p",
        ],
        vec![
            "run",
            "--agent",
            "command",
            "--cmd",
            "true",
            "--protect",
            "/etc/passwd",
            "p",
        ],
        vec![
            "run",
            "--agent",
            "command",
            "--cmd",
            "true",
            "--protect",
            "../up",
            "p",
        ],
        vec![
            "pool",
            "start",
            "px",
            "--slots",
            "1",
            "--agent",
            "command",
            "--cmd",
            "true",
            "--prompt",
            "p",
            "--protect",
            "a/{b",
        ],
    ];
    for args in cases {
        let out = env.run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        let first = err.lines().next().unwrap_or_default();
        assert!(first.contains("is not a valid glob"), "{args:?}: {err}");
    }
    assert!(
        !env.home.join("daemon.sock").exists(),
        "the CLI refused before starting the daemon"
    );
    // The API refuses too: 422 with {kind: invalid_field, error, hint}.
    env.ok(&["daemon"]);
    let body = serde_json::json!({
        "repo": env.repo.display().to_string(), "agent": "command", "cmd": "true",
        "prompt": "p", "protect": ["ok.sh", "tests/[oops"],
    })
    .to_string();
    let (status, reply) = post(&env, "/v1/tasks", &body);
    assert_eq!(status, 422, "{reply}");
    let err: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(err["kind"], "invalid_field", "{err:#}");
    assert!(
        err["error"].as_str().unwrap().contains("tests/[oops"),
        "{err:#}"
    );
    assert!(
        err["hint"].as_str().unwrap().contains("relative"),
        "{err:#}"
    );
    let tasks: Vec<Value> = serde_json::from_str(&env.ok(&["ls", "--all", "--json"])).unwrap();
    assert!(tasks.is_empty(), "{tasks:#?}");
    let pools: Vec<Value> = serde_json::from_str(&env.ok(&["pool", "ls", "--json"])).unwrap();
    assert!(pools.is_empty(), "{pools:#?}");
}

#[test]
fn pool_tasks_inherit_protect() {
    let env = Env::new();
    repo(&env);
    // The agent fixes the value and also rewrites the gate script.
    let out = env.run(&[
        "pool",
        "start",
        "guarded",
        "--slots",
        "1",
        "--count",
        "1",
        "--agent",
        "command",
        "--cmd",
        "echo 42 > value.txt; echo 'exit 0' > check.sh",
        "--prompt",
        "p",
        "--verify",
        "sh check.sh",
        "--protect",
        "check.sh",
        "--protect",
        "docs/**",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("\"docs/**\" matches no file"), "{stderr}");
    let p = env.json(&["pool", "show", "guarded", "--json"]);
    assert_eq!(p["protect"], serde_json::json!(["check.sh", "docs/**"]));
    let id = drover_test_support::poll::some(
        "the pool to launch a task",
        std::time::Duration::from_secs(60),
        std::time::Duration::from_millis(50),
        || {
            let all: Vec<Value> =
                serde_json::from_str(&env.ok(&["ls", "--all", "--json"])).unwrap();
            all.iter()
                .find(|t| t["pool"] == "guarded")
                .map(|t| t["id"].as_str().unwrap().to_string())
        },
    );
    let t = env.wait(&id);
    assert_eq!(t["protect"], serde_json::json!(["check.sh", "docs/**"]));
    assert_eq!(t["state"], "failed", "{t:#}");
    assert_eq!(t["outcome"]["error_kind"], "gate_failed");
    assert!(t["outcome"]["reason"]
        .as_str()
        .unwrap()
        .contains("check.sh (modified)"));
    let gates = gate_events(&env, &id);
    assert_eq!(gates[0]["passed"], true, "base check.sh passes on 42");
}

/// A raw HTTP/1.1 POST on the daemon's socket: (status, body).
fn post(env: &Env, path: &str, body: &str) -> (u16, String) {
    api_json(env, "POST", path, body)
}

/// A multi-turn agent (Claude Code against the fake provider) that rewrites the gate script is
/// told which protected path to restore; once it restores it and does the work, it succeeds.
#[test]
fn claude_is_told_to_restore_a_protected_path_and_then_succeeds() {
    let provider = Provider::start(serde_json::json!({ "scenarios": [
        { "name": "tamper", "match": "TAMPER", "turns": [
            { "content": [{ "type": "tool_use", "name": "Read", "input": { "file_path": "check.sh" } }] },
            { "content": [{ "type": "tool_use", "name": "Write", "input": { "file_path": "check.sh", "content": "exit 0\n" } }] },
            { "content": [{ "type": "text", "text": "Made the gate pass." }] },
            { "content": [{ "type": "tool_use", "name": "Write", "input": { "file_path": "check.sh", "content": "grep -q '2+2=4' calc.txt\n" } }] },
            { "content": [{ "type": "tool_use", "name": "Write", "input": { "file_path": "calc.txt", "content": "2+2=4\n" } }] },
            { "content": [{ "type": "text", "text": "Restored check.sh and fixed calc.txt." }] }
        ] },
        { "name": "default", "turns": [{ "content": [{ "type": "text", "text": "?" }] }] }
    ]}));
    let env = Env::claude(&provider);
    std::fs::write(env.repo.join("check.sh"), "grep -q '2+2=4' calc.txt\n").unwrap();
    env.git(&["add", "-A"]);
    env.git(&["commit", "-qm", "gate"]);
    let id = env.ok(&[
        "run",
        "--verify",
        "sh check.sh",
        "--protect",
        "check.sh",
        "TAMPER: make the gate pass",
    ]);
    let t = env.wait(&id);
    let gates = gate_events(&env, &id);
    assert_eq!(gates.len(), 2, "{gates:#?}");
    assert_eq!(
        gates[0]["passed"], false,
        "the base script ran: {:#}",
        gates[0]
    );
    assert_eq!(restored(&gates[0]), vec![pair("check.sh", "modified")]);
    assert_eq!(gates[1]["passed"], true, "{:#}", gates[1]);
    assert_eq!(restored(&gates[1]), vec![]);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    // The feedback named the path, in the same session.
    let feedback = env
        .events(&id)
        .into_iter()
        .find(|e| e["kind"] == "input" && e["data"]["by"] == "gate")
        .expect("a gate feedback message");
    assert!(
        feedback["data"]["message"]
            .as_str()
            .unwrap()
            .contains("You changed protected paths: check.sh (modified)"),
        "{feedback:#}"
    );
    assert_eq!(
        env.git(&["show", &format!("drover/{id}:calc.txt")]),
        "2+2=4"
    );
}

#[test]
fn a_bad_glob_in_the_config_is_named_when_the_daemon_starts() {
    let env = Env::new();
    std::fs::create_dir_all(&env.home).unwrap();
    std::fs::write(
        env.home.join("config.toml"),
        "protect = [\"ok.sh\", \"a/[b\"]\n",
    )
    .unwrap();
    let out = env.run(&["ls"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("protect") && err.contains("\"a/[b\" is not a valid glob"),
        "{err}"
    );
}

/// An agent that leaves a work tree of many files cannot make the protected view's preparation
/// (a copy of the work tree in worktree mode) outlast the gate budget: it is cut at the budget,
/// its `cp` is killed, the gates never run, and the task fails saying why.
#[test]
fn a_huge_work_tree_cannot_outlast_the_gate_budget() {
    let env = Env::new().with_env("DROVER_SANDBOX", "worktree");
    std::fs::create_dir_all(&env.home).unwrap();
    std::fs::write(env.home.join("config.toml"), "gate_timeout_secs = 0.3\n").unwrap();
    repo(&env);
    // Ignored: the commit at finish skips them; the gate view's copy does not.
    std::fs::write(env.repo.join(".gitignore"), "junk/\n").unwrap();
    env.git(&["add", "-A"]);
    env.git(&["commit", "-qm", "ignore junk"]);
    let id = env.ok(&[
        "run",
        "--agent",
        "command",
        "--cmd",
        "mkdir junk && cd junk && seq 1 20000 | xargs touch && echo made",
        "--verify",
        "echo GATE-RAN",
        "--protect",
        "check.sh",
        "make many files",
    ]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "failed", "{t:#}");
    assert_eq!(t["sandbox_kind"], "worktree");
    assert_eq!(t["outcome"]["error_kind"], "gate_failed", "{t:#}");
    let reason = t["outcome"]["reason"].as_str().unwrap();
    assert!(reason.contains("protected check timed out"), "{reason}");
    let gates = gate_events(&env, &id);
    assert_eq!(gates.len(), 1, "{gates:#?}");
    assert!(gates[0]["exit_code"].is_null(), "{gates:#?}");
    assert!(
        gates[0]["protect"]["error"]
            .as_str()
            .unwrap()
            .contains("timed out"),
        "{gates:#?}"
    );
    // The gate's command never ran: its log was never written.
    assert!(!env.home.join("tasks").join(&id).join("gate-1.log").exists());
    // No copy is left running.
    let cps: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.starts_with("cp ") && c.contains(&id))
        .collect();
    assert!(cps.is_empty(), "copies still running: {cps:?}");
}
