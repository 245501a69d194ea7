//! The shim binary against real processes: the sub-reaper ends what left the agent's group,
//! and a launch file of an unknown protocol version is refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use drover_shim::files::encode_pretty;
use drover_shim::{proc, ExitInfo, LaunchFile, TaskFiles};
use drover_test_support::poll::some;

mod common;
use common::start;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a test waits for the shim's exit record.
const EXIT_DEADLINE: Duration = Duration::from_secs(30);

fn launch(dir: &std::path::Path, script: &str) -> LaunchFile {
    LaunchFile {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), script.into()],
        cwd: dir.to_path_buf(),
        env_remove: vec![],
        stdin_lines: vec![],
        close_stdin: true,
        keep_detached: false,
        jail: None,
        cgroup_procs: vec![],
    }
}

#[test]
fn a_grandchild_that_left_the_group_is_ended_with_the_task() {
    let tmp = tempfile::tempdir().unwrap();
    let files = TaskFiles::new(tmp.path().join("task"));
    std::fs::create_dir_all(&files.dir).unwrap();
    let pidfile = tmp.path().join("escaped.pid");
    // The grandchild runs in a session (and group) of its own, then the agent exits at once.
    let script = format!(
        "setsid sh -c 'echo $$ > {p}.tmp; mv {p}.tmp {p}; exec sleep 1000' & \
         while [ ! -s {p} ]; do :; done; exit 3",
        p = pidfile.display()
    );
    std::fs::write(
        files.launch(),
        encode_pretty(&launch(tmp.path(), &script)).unwrap(),
    )
    .unwrap();
    let (mut shim, ready) = start(&files);
    assert!(ready.error.is_none(), "{ready:?}");

    let exit: ExitInfo = some(
        "exit.json",
        EXIT_DEADLINE,
        Duration::from_millis(20),
        || files.read_exit().unwrap(),
    );
    assert_eq!(exit.code, Some(3));
    let escaped: i64 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // It really had left the agent's group and session.
    assert_ne!(escaped, ready.pgid);
    // exit.json is written after the leftovers are ended and reaped: already gone.
    assert_eq!(
        proc::start_time(escaped),
        None,
        "pid {escaped} survived its task"
    );
    assert!(shim.wait().unwrap().success());
    let raw = std::fs::read_to_string(files.exit()).unwrap();
    assert!(raw.contains("\"v\":1"), "{raw}");
}

#[test]
fn a_leftover_that_ignores_term_is_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let files = TaskFiles::new(tmp.path().join("task"));
    std::fs::create_dir_all(&files.dir).unwrap();
    let pidfile = tmp.path().join("stubborn.pid");
    let script = format!(
        "sh -c 'trap \"\" TERM; echo $$ > {p}.tmp; mv {p}.tmp {p}; while :; do sleep 1; done' & \
         while [ ! -s {p} ]; do :; done; exit 0",
        p = pidfile.display()
    );
    std::fs::write(
        files.launch(),
        encode_pretty(&launch(tmp.path(), &script)).unwrap(),
    )
    .unwrap();
    let started = Instant::now();
    let (mut shim, _) = start(&files);
    let exit: ExitInfo = some(
        "exit.json",
        EXIT_DEADLINE,
        Duration::from_millis(20),
        || files.read_exit().unwrap(),
    );
    assert!(exit.success());
    let stubborn: i64 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(proc::start_time(stubborn), None);
    // TERM was ignored: it took the grace period, and not much more.
    let took = started.elapsed();
    assert!(took >= drover_shim::run::GRACE, "{took:?}");
    assert!(
        took < drover_shim::run::GRACE + drover_shim::run::KILL_WAIT,
        "{took:?}"
    );
    assert!(shim.wait().unwrap().success());
}

#[test]
fn a_launch_file_of_an_unknown_version_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let files = TaskFiles::new(tmp.path().join("task"));
    std::fs::create_dir_all(&files.dir).unwrap();
    let marker = tmp.path().join("ran");
    let mut body: serde_json::Value = serde_json::from_slice(
        &encode_pretty(&launch(tmp.path(), &format!("touch {}", marker.display()))).unwrap(),
    )
    .unwrap();
    body["v"] = 2.into();
    std::fs::write(files.launch(), body.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_drover-shim"))
        .arg(&files.dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "no ready line");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("launch.json has protocol version 2; this drover reads version 1"),
        "{err}"
    );
    assert!(!marker.exists(), "the agent must not run");
    assert!(!files.exit().exists());
}

#[test]
fn keep_detached_ends_the_group_but_not_what_left_it() {
    let tmp = tempfile::tempdir().unwrap();
    let files = TaskFiles::new(tmp.path().join("task"));
    std::fs::create_dir_all(&files.dir).unwrap();
    let (service, member) = (
        tmp.path().join("service.pid"),
        tmp.path().join("member.pid"),
    );
    let script = format!(
        "setsid sh -c 'echo $$ > {s}.tmp; mv {s}.tmp {s}; exec sleep 1000' & \
         sh -c 'echo $$ > {m}.tmp; mv {m}.tmp {m}; exec sleep 1000' & \
         while [ ! -s {s} ] || [ ! -s {m} ]; do :; done; exit 0",
        s = service.display(),
        m = member.display()
    );
    let mut l = launch(tmp.path(), &script);
    l.keep_detached = true;
    std::fs::write(files.launch(), encode_pretty(&l).unwrap()).unwrap();
    let (mut shim, _) = start(&files);
    let exit: ExitInfo = some(
        "exit.json",
        EXIT_DEADLINE,
        Duration::from_millis(20),
        || files.read_exit().unwrap(),
    );
    assert!(exit.success());
    let read = |p: &std::path::Path| -> i64 {
        std::fs::read_to_string(p).unwrap().trim().parse().unwrap()
    };
    let (service, member) = (read(&service), read(&member));
    assert_eq!(proc::start_time(member), None, "the group member is ended");
    let alive = proc::start_time(service).is_some();
    // Not left behind by the test either.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(service as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    assert!(alive, "the detached service keeps running");
    assert!(shim.wait().unwrap().success());
}

#[test]
fn a_cgroup_that_cannot_be_opened_is_the_tasks_spawn_error_and_nothing_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let files = TaskFiles::new(tmp.path().join("task"));
    std::fs::create_dir_all(&files.dir).unwrap();
    let ran = tmp.path().join("ran");
    let mut l = launch(tmp.path(), &format!("touch {}", ran.display()));
    l.cgroup_procs = vec![tmp.path().join("no-such-group/cgroup.procs")];
    std::fs::write(files.launch(), encode_pretty(&l).unwrap()).unwrap();
    let (mut shim, ready) = start(&files);
    let err = ready.error.expect("a spawn error in the ready line");
    assert!(err.contains("the task's cgroup"), "{err}");
    let exit = files.read_exit().unwrap().expect("exit.json");
    assert!(exit.spawn_error.unwrap().contains("no-such-group"));
    assert!(
        shim.wait().unwrap().success(),
        "the shim itself did not crash"
    );
    assert!(!ran.exists(), "the agent ran outside its cgroup");
}
