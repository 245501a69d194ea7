//! Limits (docs/design.md §11; issue 10 point 5): a cgroup per task, through the real daemon,
//! against hostile `command` agents — a fork bomb held by `--pids`, an allocation past
//! `--memory` failing with a clear reason, `--cpus` throttling a busy loop, a `setsid nohup`
//! grandchild that ignores TERM ending with `drover stop` and `daemon stop --stop-tasks` — and
//! the figures (`limits`, `isolation`, `peak_memory_bytes`, `cpu_seconds`) of a normal task.
//! On a host without cgroups for the daemon these tests fail (nothing is skipped silently).
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

fn with_config(env: Env, toml: &str) -> Env {
    std::fs::create_dir_all(&env.home).unwrap();
    std::fs::write(env.home.join("config.toml"), toml).unwrap();
    env
}

/// The task's cgroup as the daemon makes it (the daemon is the test's child: same groups).
fn group(env: &Env, id: &str) -> drover_cgroup::TaskGroup {
    drover_cgroup::Cgroups::discover(&env.home)
        .group(id)
        .expect("this host has cgroups for the daemon")
}

/// A file of the task's group, in whichever hierarchy has it (v1: one per controller).
fn group_file(env: &Env, id: &str, name: &str) -> PathBuf {
    group(env, id)
        .dirs()
        .into_iter()
        .map(|d| d.join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("no {name} in the task's cgroup"))
}

/// Live processes whose command line has `marker` (wherever they went: `setsid`, re-parented).
fn with_marker(marker: &str) -> Vec<i64> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i64>().ok()) else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(marker) && alive(pid) {
                out.push(pid);
            }
        }
    }
    out
}

/// Live processes whose `DROVER_HOME` is the test's home or under it.
fn under_home(env: &Env) -> Vec<i64> {
    let home = format!("DROVER_HOME={}", env.home.display());
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i64>().ok()) else {
            continue;
        };
        if pid == i64::from(std::process::id()) || !alive(pid) {
            continue;
        }
        if let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) {
            let hit = environ.split(|&b| b == 0).any(|kv| {
                let kv = String::from_utf8_lossy(kv);
                kv == home || kv.starts_with(&format!("{home}/"))
            });
            if hit {
                out.push(pid);
            }
        }
    }
    out
}

fn assert_nothing_left(env: &Env, id: &str, marker: &str) {
    poll(
        "the task's processes to be gone",
        Duration::from_secs(30),
        || with_marker(marker).is_empty(),
    );
    let daemon = env.daemon_pid().map(i64::from);
    // The daemon, shims, and agents (whose DROVER_HOME is their task's run dir under it).
    let left: Vec<i64> = under_home(env)
        .into_iter()
        .filter(|p| Some(*p) != daemon)
        .collect();
    assert!(left.is_empty(), "left running: {left:?}");
    assert!(
        !group(env, id).exists(),
        "the task's cgroup was not removed"
    );
}

/// A fork bomb (python, so a refused fork is retried instead of ending the shell).
const BOMB: &str = "python3 -c '
import os, time  # bomb_4d2
while True:
    try:
        os.fork()
    except OSError:
        time.sleep(0.05)
'";

/// Exit 2 and one `drover: …` line naming `needle` (plus at most a hint).
fn refused(out: &Output, args: &[&str], needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines[0].starts_with("drover: ") && lines[0].contains(needle),
        "{args:?}: expected one line with {needle:?}, got {err}"
    );
    assert!(lines.len() <= 2, "{args:?}: {err}");
}

#[test]
fn a_normal_task_shows_its_limits_isolation_peak_memory_and_cpu_time() {
    let env = Env::new();
    let id = env.ok(&[
        "run",
        "--agent",
        "command",
        "--cmd",
        "echo hello",
        "--memory",
        "256M",
        "--cpus",
        "1.5",
        "--pids",
        "100",
        "plain",
    ]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t}");
    let t = env.show(&id);
    assert_eq!(
        t["limits"],
        json!({"memory_bytes": 268435456u64, "cpus": 1.5, "pids": 100})
    );
    assert_eq!(t["isolation"], "full");
    let peak = t["peak_memory_bytes"].as_u64().expect("peak_memory_bytes");
    assert!(peak > 0 && peak < 256 << 20, "{t}");
    let cpu = t["cpu_seconds"].as_f64().expect("cpu_seconds");
    assert!((0.0..5.0).contains(&cpu), "{t}");
    let human = env.ok(&["show", &id]);
    assert!(
        human.contains("resources    memory 256 MiB · cpus 1.5 · pids 100 · peak "),
        "{human}"
    );
    assert!(!group(&env, &id).exists(), "the cgroup outlived the task");

    // Without limits the task still gets its group: the figures are there.
    let free = env.run_command_task("echo free", "free");
    env.wait(&free);
    let t = env.show(&free);
    assert_eq!(t["state"], "succeeded", "{t}");
    assert_eq!(
        t["limits"],
        json!({"memory_bytes": null, "cpus": null, "pids": null})
    );
    assert!(t["peak_memory_bytes"].as_u64().is_some(), "{t}");
    assert!(t["cpu_seconds"].as_f64().is_some(), "{t}");

    // A pool's tasks carry the pool's limits.
    env.ok(&[
        "pool", "start", "limited", "--slots", "1", "--count", "1", "--agent", "command", "--cmd",
        "true", "--pids", "32", "--memory", "1G", "--prompt", "go",
    ]);
    let pooled = drover_test_support::poll::some(
        "the pool's task",
        Duration::from_secs(60),
        Duration::from_millis(50),
        || {
            let all: Vec<Value> = serde_json::from_str(&env.ok(&["ls", "--all", "--json"])).ok()?;
            all.into_iter()
                .find(|t| t["pool"] == "limited")
                .map(|t| t["id"].as_str().unwrap().to_string())
        },
    );
    let t = env.wait(&pooled);
    assert_eq!(
        t["limits"],
        json!({"memory_bytes": 1u64 << 30, "cpus": null, "pids": 32})
    );
}

#[test]
fn an_allocation_past_memory_fails_with_out_of_memory_and_the_peak_near_the_limit() {
    let env = Env::new();
    let id = env.ok(&[
        "run",
        "--agent",
        "command",
        "--memory",
        "64M",
        "--cmd",
        "python3 -c \"b = b'x' * (512 << 20); print(len(b))\"",
        "hog",
    ]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "failed", "{t}");
    assert_eq!(t["outcome"]["error_kind"], "out_of_memory", "{t}");
    let reason = t["outcome"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("the agent ran out of memory: its limit is 64 MiB (--memory); peak "),
        "{reason}"
    );
    let peak = t["peak_memory_bytes"].as_u64().unwrap();
    assert!(
        ((48 << 20)..=(65 << 20)).contains(&peak),
        "peak {peak} is not near the 64 MiB limit"
    );
    assert_nothing_left(&env, &id, "512 << 20");
}

#[test]
fn a_fork_bomb_is_held_by_pids_the_host_can_still_fork_and_stop_ends_it_all() {
    let env = with_config(Env::new(), "stop_grace_secs = 1\n");
    // Every copy forks for ever, and so does every child (a refused fork is retried): the
    // population grows exponentially until the limit holds it. (The shell's classic bomb dies
    // out when its forks fail, so it would not keep testing the limit.)
    let id = env.ok(&[
        "run", "--agent", "command", "--pids", "64", "--cpus", "0.5", "--cmd", BOMB, "bomb",
    ]);
    env.until(&id, "the agent to run", |t| t["state"] == "running");
    let current = group_file(&env, &id, "pids.current");
    let read = || {
        std::fs::read_to_string(&current)
            .map(|s| s.trim().parse::<u64>().unwrap_or(0))
            .unwrap_or(0)
    };
    // The bomb reaches the limit and is held there.
    poll("the bomb to hit pids.max", Duration::from_secs(60), || {
        read() >= 60
    });
    for _ in 0..20 {
        let n = read();
        assert!(n <= 64, "pids.current {n} is past --pids 64");
        // The host is unaffected: this process still forks.
        let st = std::process::Command::new("true").status().unwrap();
        assert!(st.success());
    }
    env.ok(&["stop", &id]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "cancelled", "{t}");
    assert_nothing_left(&env, &id, "bomb_4d2");
}

#[test]
fn cpus_half_holds_a_busy_loop_to_about_half_its_wall_time() {
    let env = Env::new();
    let id = env.ok(&[
        "run",
        "--agent",
        "command",
        "--cpus",
        "0.5",
        "--cmd",
        "timeout 4 sh -c 'while :; do :; done'; echo spun",
        "spin",
    ]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t}");
    let cpu = t["cpu_seconds"].as_f64().unwrap();
    // 4 s of wall time at half a CPU: about 2 s (unlimited it would be about 4; the machine
    // is shared, so the lower bound is loose).
    assert!(
        (0.5..=2.6).contains(&cpu),
        "cpu_seconds {cpu} for 4 s at --cpus 0.5"
    );
}

/// A grandchild that leaves the session, ignores HUP, INT and TERM: `drover stop`, then
/// `daemon stop --stop-tasks`, leave nothing of their task running.
#[test]
fn a_setsid_nohup_grandchild_that_ignores_term_does_not_survive_a_stop() {
    let env = with_config(Env::new(), "stop_grace_secs = 1\n");
    let escape = |marker: &str| {
        format!(
            "setsid nohup sh -c \"trap '' HUP INT TERM; while :; do sleep {marker}; done\" \
             >/dev/null 2>&1 & trap '' INT TERM; echo started; sleep 1000"
        )
    };
    let id = env.ok(&[
        "run",
        "--agent",
        "command",
        "--cmd",
        &escape("313.1"),
        "escape",
    ]);
    poll("the grandchild to start", Duration::from_secs(60), || {
        !with_marker("sleep 313.1").is_empty()
    });
    env.ok(&["stop", &id]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "cancelled", "{t}");
    assert_nothing_left(&env, &id, "313.1");

    let id = env.ok(&[
        "run",
        "--agent",
        "command",
        "--cmd",
        &escape("313.2"),
        "escape2",
    ]);
    poll(
        "the second grandchild to start",
        Duration::from_secs(60),
        || !with_marker("sleep 313.2").is_empty(),
    );
    env.ok(&["daemon", "stop", "--stop-tasks"]);
    poll("the grandchild to be gone", Duration::from_secs(60), || {
        with_marker("313.2").is_empty()
    });
    let t = env.show(&id);
    assert_eq!(t["state"], "cancelled", "{t}");
    assert_nothing_left(&env, &id, "313.2");
}

#[test]
fn bad_limits_are_refused_with_one_line_and_nothing_starts() {
    let env = Env::new();
    for (flag, value, needle) in [
        ("--memory", "12X", "--memory 12X: give a size such as 512M"),
        ("--memory", "100", "too small"),
        (
            "--cpus",
            "0",
            "--cpus 0: give a number of CPUs of at least 0.01",
        ),
        ("--cpus", "lots", "--cpus lots: give a number of CPUs"),
        ("--pids", "0", "--pids 0: give at least 1 process"),
        ("--pids", "1.5", "--pids 1.5: give a whole number"),
    ] {
        let args = [
            "run", "--agent", "command", "--cmd", "true", flag, value, "p",
        ];
        refused(&env.run(&args), &args, needle);
        let args = [
            "pool", "start", "p", "--slots", "1", "--agent", "command", "--cmd", "true", flag,
            value, "--prompt", "p",
        ];
        refused(&env.run(&args), &args, needle);
    }
    // Over the API: a 422 (a well-formed but wrong value) naming what to give.
    env.ok(&["daemon"]);
    for (field, value) in [
        ("memory_bytes", json!(5)),
        ("cpus", json!(-1.0)),
        ("pids", json!(0)),
    ] {
        let mut body = json!({"repo": env.repo.display().to_string(), "agent": "command",
                              "cmd": "true", "prompt": "p"});
        body[field] = value;
        let (status, _, b) = http(
            &env,
            "POST",
            "/v1/tasks",
            &[("content-type", "application/json")],
            body.to_string().as_bytes(),
        );
        assert_eq!(status, 422, "{field}: {}", String::from_utf8_lossy(&b));
    }
    let all: Vec<Value> = serde_json::from_str(&env.ok(&["ls", "--all", "--json"])).unwrap();
    assert!(all.is_empty(), "{all:?}");
}

/// The daemon and the shim both die (SIGKILL) while a grandchild that left the session runs:
/// the next daemon finds the task without its shim, and its cgroup ends the grandchild too.
#[test]
fn a_grandchild_left_by_a_dead_shim_and_daemon_is_ended_by_the_next_daemon() {
    let env = with_config(Env::new(), "stop_grace_secs = 1\n");
    let id = env.ok(&[
        "run",
        "--agent",
        "command",
        "--cmd",
        "setsid nohup sh -c \"trap '' HUP INT TERM; while :; do sleep 313.3; done\" \
         >/dev/null 2>&1 & echo started; sleep 1000",
        "orphan",
    ]);
    let t = env.until(&id, "the agent to run", |t| t["pid"].is_i64());
    poll("the grandchild to start", Duration::from_secs(60), || {
        !with_marker("sleep 313.3").is_empty()
    });
    let agent = t["pid"].as_i64().unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{agent}/stat")).unwrap();
    // `pid (comm) state ppid …`: the shim is the agent's parent.
    let shim: i32 = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    env.kill_daemon();
    unsafe { libc::kill(shim, libc::SIGKILL) };
    wait_gone(i64::from(shim));
    // The next daemon (auto-started) settles the task.
    let t = env.until(&id, "the task to end", |t| {
        ["failed", "interrupted", "cancelled"].contains(&t["state"].as_str().unwrap())
    });
    assert_eq!(t["state"], "interrupted", "{t}");
    assert_nothing_left(&env, &id, "313.3");
}
