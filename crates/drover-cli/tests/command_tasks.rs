//! The core with the `command` agent: slots, states, events, sandboxes, stop, rm, restarts.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use serde_json::Value;

fn assert_contiguous(evs: &[Value]) {
    for (i, e) in evs.iter().enumerate() {
        assert_eq!(
            e["seq"].as_i64().unwrap(),
            i as i64 + 1,
            "seq gap or duplicate in {evs:#?}"
        );
    }
}

#[test]
fn forty_tasks_on_four_slots_never_exceed_four() {
    let env = Env::new();
    env.ok(&["daemon", "--slots", "4"]);
    let ids: Vec<String> = (0..40)
        .map(|i| {
            env.run_command_task(
                &format!("sleep 0.1; echo out-{i} > out.txt; echo line-{i}"),
                &format!("task {i}"),
            )
        })
        .collect();
    let mut args = vec!["wait", "--json"];
    args.extend(ids.iter().map(|s| s.as_str()));
    let done: Vec<Value> = serde_json::from_str(&env.ok(&args)).unwrap();
    assert_eq!(done.len(), 40);
    for (i, t) in done.iter().enumerate() {
        assert_eq!(t["state"], "succeeded", "{t:#}");
        assert_eq!(t["result"], format!("line-{i}"));
        let commit = t["commit"].as_str().unwrap();
        assert_eq!(
            env.git(&["rev-parse", &format!("drover/{}", ids[i])]),
            commit
        );
        assert_eq!(
            env.git(&["show", &format!("{commit}:out.txt")]),
            format!("out-{i}")
        );
    }
    let overlap = max_overlap(&busy_intervals(&env, &ids));
    assert!(overlap <= 4, "{overlap} tasks ran at once on 4 slots");
    assert!(
        overlap >= 2,
        "slots were not used in parallel (max {overlap})"
    );
    for id in &ids {
        assert_contiguous(&env.events(id));
    }
}

#[test]
fn work_is_committed_untracked_included_ignored_excluded() {
    let env = Env::new();
    std::fs::write(env.repo.join("tracked.txt"), "v1\n").unwrap();
    env.git(&["add", "tracked.txt"]);
    env.git(&["commit", "-qm", "tracked"]);
    let id = env.run_command_task(
        "echo v2 > tracked.txt; mkdir -p target sub; echo x > target/junk; echo new > sub/new.txt; echo done",
        "edit",
    );
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    let branch = format!("drover/{id}");
    assert_eq!(t["branch"], branch);
    let files = env.git(&["ls-tree", "-r", "--name-only", &branch]);
    assert!(files.contains("sub/new.txt"), "{files}");
    assert!(!files.contains("target/junk"), "{files}");
    assert_eq!(env.git(&["show", &format!("{branch}:tracked.txt")]), "v2");
    // The user's own checkout is untouched.
    assert_eq!(
        std::fs::read_to_string(env.repo.join("tracked.txt")).unwrap(),
        "v1\n"
    );
    assert!(t["sandbox"].is_null(), "sandbox should be gone: {t:#}");
    let commit_ev = env
        .events(&id)
        .into_iter()
        .find(|e| e["kind"] == "commit")
        .expect("commit event");
    assert_eq!(commit_ev["data"]["commit"], t["commit"]);
}

#[test]
fn failing_command_fails_and_run_wait_exits_one() {
    let env = Env::new();
    let out = env.run(&[
        "run",
        "--wait",
        "--agent",
        "command",
        "--cmd",
        // No newline at the end: the last line still counts once the agent exited.
        "printf 'last words'; exit 3",
        "p",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "last words");
    let tasks: Vec<Value> = serde_json::from_str(&env.ok(&["ls", "--json"])).unwrap();
    let t = &tasks[0];
    assert_eq!(t["state"], "failed");
    assert_eq!(t["outcome"]["verdict"], "fail");
    assert_eq!(t["outcome"]["error_kind"], "agent_exit");
    assert!(t["outcome"]["reason"].as_str().unwrap().contains("code 3"));
    let out = env.run(&[
        "run",
        "--wait",
        "--agent",
        "command",
        "--cmd",
        "echo fine",
        "p",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "fine");
}

#[test]
fn bad_input_gets_exit_two_and_a_clear_message() {
    let env = Env::new();
    let not_repo = env.tmp.path().join("plain");
    std::fs::create_dir_all(&not_repo).unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "run",
                "--repo",
                not_repo.to_str().unwrap(),
                "--agent",
                "command",
                "--cmd",
                "true",
                "x",
            ],
            "not a git repository",
        ),
        (vec!["run", "--repo", "/no/such/dir", "x"], "No such file"),
        (
            vec![
                "run",
                "--ref",
                "no-such-ref",
                "--agent",
                "command",
                "--cmd",
                "true",
                "x",
            ],
            "unknown ref",
        ),
        (vec!["run", "--agent", "nope", "x"], "unknown agent"),
        (vec!["run", "--agent", "command", "x"], "--cmd"),
        (vec!["show", "ffffffff"], "no task matches"),
        (vec!["logs", "ffffffff"], "no task matches"),
        (vec!["stop", "ffffffff"], "no task matches"),
        (vec!["rm", "ffffffff"], "no task matches"),
    ];
    for (args, needle) in cases {
        let out = env.run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: expected {needle:?} in {err}"
        );
    }
    let id = env.run_command_task("echo hi", "p");
    env.wait(&id);
    let out = env.run(&["send", &id, "more"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no more input"));
    // Nothing was created by the refused runs.
    assert_eq!(
        serde_json::from_str::<Vec<Value>>(&env.ok(&["ls", "--all", "--json"]))
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn daemon_unreachable_is_exit_three() {
    let env = Env::new();
    let out = env.run(&["daemon", "status"]);
    assert_eq!(out.status.code(), Some(3));
    // A config the daemon cannot start with is the user's input: the CLI reads it before
    // starting a daemon, names the file and exits 2, never hangs.
    std::fs::create_dir_all(&env.home).unwrap();
    std::fs::write(env.home.join("config.toml"), "slots = \"many\"\n").unwrap();
    let out = env.run(&["ls"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("config.toml"));
}

#[test]
fn stop_is_polite_then_firm_and_leaves_no_process() {
    let env = Env::new();
    // A short grace between signals keeps the test quick; the order is what it checks.
    std::fs::create_dir_all(&env.home).unwrap();
    std::fs::write(env.home.join("config.toml"), "stop_grace_secs = 0.5\n").unwrap();
    // The agent notes every signal it survives, in order, in its checkout (the only place a
    // confined agent writes that the test can read); KILL cannot be trapped.
    let cmd = "trap 'echo INT >> signals.txt' INT; trap 'echo TERM >> signals.txt' TERM; \
               echo partial > part.txt; echo started; while :; do sleep 1 & wait $!; done";
    let id = env.run_command_task(cmd, "stubborn");
    let t = env.until(&id, "running", |t| t["state"] == "running");
    poll("the agent's started line", CLI_DEADLINE, || {
        env.events(&id)
            .iter()
            .any(|e| e["data"]["text"] == "started")
    });
    let pgid = t["pgid"].as_i64().unwrap();
    env.ok(&["stop", &id]);
    assert_eq!(
        env.git(&["show", &format!("drover/{id}:signals.txt")]),
        "INT\nTERM",
        "the agent must get INT, then TERM, then (untrappable) KILL"
    );
    let t = env.show(&id);
    assert_eq!(t["state"], "cancelled", "{t:#}");
    assert_eq!(t["outcome"]["error_kind"], "cancelled");
    assert_eq!(
        env.git(&["show", &format!("drover/{id}:part.txt")]),
        "partial"
    );
    assert!(!group_alive(pgid), "process group {pgid} survived stop");
}

#[test]
fn rm_commits_work_first_and_forgets_the_task() {
    let env = Env::new();
    let id = env.run_command_task("echo wip > wip.txt; echo ready; sleep 60", "long");
    env.until(&id, "output", |t| {
        t["state"] == "running" && t["result"].is_null()
    });
    // `ready` is printed after the file is written.
    poll("the ready line", std::time::Duration::from_secs(30), || {
        env.events(&id).iter().any(|e| e["data"]["text"] == "ready")
    });
    env.ok(&["rm", &id]);
    assert_eq!(env.git(&["show", &format!("drover/{id}:wip.txt")]), "wip");
    assert_eq!(env.run(&["show", &id]).status.code(), Some(2));
    assert!(!env.home.join("sandboxes").join(&id).exists());
}

#[test]
fn daemon_stop_leaves_tasks_running_and_the_next_daemon_adopts_them() {
    let env = Env::new();
    // The marker is in the task's checkout: a confined agent sees nothing else of the test's.
    let cmd =
        "echo before; while [ ! -e go ]; do sleep 0.02; done; echo after > after.txt; echo after";
    let id = env.run_command_task(cmd, "survive");
    let t = env.until(&id, "running", |t| t["state"] == "running");
    let marker = std::path::Path::new(t["sandbox"].as_str().unwrap()).join("go");
    let pid = t["pid"].as_i64().unwrap();
    env.ok(&["daemon", "stop"]);
    assert!(alive(pid), "daemon stop killed the agent");
    std::fs::write(&marker, "").unwrap();
    // Any command starts a new daemon, which re-adopts the shim and finishes the task.
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    let evs = env.events(&id);
    assert_contiguous(&evs);
    let texts: Vec<&str> = evs
        .iter()
        .filter(|e| e["kind"] == "text")
        .map(|e| e["data"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, vec!["before", "after"]);
    assert_eq!(
        env.git(&["show", &format!("drover/{id}:after.txt")]),
        "after"
    );
}

#[test]
fn sigkill_of_the_daemon_loses_nothing() {
    let env = Env::new();
    // The marker is in the task's checkout: a confined agent sees nothing else of the test's.
    let cmd = "for i in 1 2 3; do echo early-$i; done; while [ ! -e go ]; do sleep 0.02; done; for i in 1 2 3; do echo late-$i; done; echo x > x.txt";
    let id = env.run_command_task(cmd, "crash");
    let t = env.until(&id, "running", |t| t["state"] == "running");
    let marker = std::path::Path::new(t["sandbox"].as_str().unwrap()).join("go");
    env.kill_daemon();
    std::fs::write(&marker, "").unwrap();
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    let evs = env.events(&id);
    assert_contiguous(&evs);
    let texts: Vec<&str> = evs
        .iter()
        .filter(|e| e["kind"] == "text")
        .map(|e| e["data"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        vec!["early-1", "early-2", "early-3", "late-1", "late-2", "late-3"]
    );
    // No stale mount and no sandbox dir after the next daemon finished it.
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(
        !mounts.contains(&env.home.display().to_string()),
        "stale mount: {mounts}"
    );
}

#[test]
fn a_task_whose_shim_dies_is_interrupted_and_its_work_kept() {
    let env = Env::new();
    let id = env.run_command_task("echo kept > kept.txt; echo ready; sleep 60", "doomed");
    let t = env.until(&id, "running", |t| t["state"] == "running");
    poll("the agent's ready line", CLI_DEADLINE, || {
        env.events(&id).iter().any(|e| e["data"]["text"] == "ready")
    });
    // Kill the shim, then the agent: as if the host lost both.
    let shim = shim_pid_of(&env, &id);
    unsafe { libc::kill(shim as i32, libc::SIGKILL) };
    unsafe { libc::kill(-(t["pgid"].as_i64().unwrap() as i32), libc::SIGKILL) };
    let t = env.wait(&id);
    assert_eq!(t["state"], "interrupted", "{t:#}");
    assert_eq!(t["outcome"]["error_kind"], "lost_host");
    assert_eq!(env.git(&["show", &format!("drover/{id}:kept.txt")]), "kept");
}

#[test]
fn huge_and_binary_output_lines_are_survived() {
    let env = Env::new();
    let id = env.run_command_task(
        "head -c 3000000 /dev/zero | tr '\\0' 'a'; echo; printf '\\377\\376 not utf8\\n'; echo end",
        "noisy",
    );
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    assert_eq!(t["result"], "end");
    let evs = env.events(&id);
    let texts: Vec<&Value> = evs.iter().filter(|e| e["kind"] == "text").collect();
    assert_eq!(texts.len(), 3);
    // The long line: a 16 KiB excerpt and its byte range in the raw log.
    let long = &texts[0]["data"];
    assert!(long["text"].as_str().unwrap().len() <= (16 << 10) + 3);
    assert_eq!(long["truncated"], true);
    assert_eq!(long["raw"]["offset"], 0);
    assert_eq!(long["raw"]["len"], 3_000_000);
    // Not UTF-8: a placeholder, never the bytes.
    assert_eq!(texts[1]["data"]["binary"], true, "{:#}", texts[1]);
    assert_eq!(texts[1]["data"]["raw"]["offset"], 3_000_001);
    let raw = std::fs::read(env.home.join("tasks").join(&id).join("stdout.log")).unwrap();
    assert!(
        raw.windows(2).any(|w| w == [0xff, 0xfe]),
        "raw log must keep the bytes as written"
    );
}

fn shim_pid_of(env: &Env, id: &str) -> i64 {
    let ready =
        std::fs::read_to_string(env.home.join("tasks").join(id).join("ready.json")).unwrap();
    let v: Value = serde_json::from_str(&ready).unwrap();
    let pid = v["shim_pid"].as_i64().unwrap();
    assert!(alive(pid), "the shim of {id} is not running");
    pid
}

#[test]
fn logs_follow_resumes_across_a_daemon_restart_without_gaps_or_repeats() {
    use std::io::BufRead;
    let env = Env::new();
    // The marker is in the task's checkout: a confined agent sees nothing else of the test's.
    let cmd = "echo one; echo two; while [ ! -e go ]; do sleep 0.02; done; echo three; echo four";
    let id = env.run_command_task(cmd, "follow me");
    let t = env.until(&id, "running", |t| t["state"] == "running");
    let marker = std::path::Path::new(t["sandbox"].as_str().unwrap()).join("go");
    let mut child = env
        .cmd(&["logs", &id, "--follow", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for l in std::io::BufReader::new(out).lines() {
            let l = l.unwrap();
            let _ = tx.send(l.clone());
        }
    });
    // Wait until the follower printed "two", then kill the daemon under it.
    let mut seen = vec![];
    loop {
        let l = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("follow output");
        seen.push(l.clone());
        if l.contains("\"two\"") {
            break;
        }
    }
    env.kill_daemon();
    env.ok(&["daemon"]);
    std::fs::write(&marker, "").unwrap();
    assert!(child.wait().unwrap().success());
    reader.join().unwrap();
    // Everything the follower printed, before and after the restart: every event once, in order.
    let all = env.events(&id);
    seen.extend(rx.try_iter());
    let printed: Vec<Value> = seen
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        printed, all,
        "the follower's output differs from the stored events"
    );
    let texts: Vec<&str> = all
        .iter()
        .filter(|e| e["kind"] == "text")
        .map(|e| e["data"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, vec!["one", "two", "three", "four"]);
}

#[test]
fn a_full_disk_during_the_commit_fails_with_git_error_and_keeps_the_sandbox() {
    let env = Env::new();
    // Sandboxes live on a 3 MB filesystem; the agent's 2 MB file fits, git's copy of it does not.
    let sandboxes = env.home.join("sandboxes");
    std::fs::create_dir_all(&sandboxes).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(&sandboxes)
        .status()
        .unwrap();
    assert!(ok.success(), "mounting a tmpfs needs root");
    let id = env.run_command_task(
        "head -c 2000000 /dev/urandom > big.bin && echo wrote",
        "fill the disk",
    );
    let t = env.wait(&id);
    assert_eq!(t["state"], "failed", "{t:#}");
    assert_eq!(t["outcome"]["error_kind"], "git_error");
    let sandbox = t["sandbox"]
        .as_str()
        .expect("the sandbox is kept for inspection");
    assert_eq!(
        std::fs::metadata(std::path::Path::new(sandbox).join("big.bin"))
            .unwrap()
            .len(),
        2_000_000
    );
    // rm refuses rather than lose the work.
    let out = env.run(&["rm", &id]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was removed"));
    assert!(std::path::Path::new(sandbox).join("big.bin").exists());
}
