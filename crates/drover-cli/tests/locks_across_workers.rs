//! Many hosts (docs/design.md §8): build locks and the worker list across two daemons (two
//! workers, two DROVER_HOMEs) on one PostgreSQL database — the throwaway cluster of
//! `scripts/test.sh` (`drover_store::conformance::pg`; without it these tests fail, never pass).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{poll, runtime, Env};
use drover_test_support::daemon::InProcessDaemon;
use drover_test_support::http;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

/// A worker's DROVER_HOME with its config: the shared database and its name.
fn worker_home(env: &Env, name: &str, url: &str) -> PathBuf {
    let home = env.tmp.path().join(name);
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join("config.toml"),
        format!("database_url = {url:?}\nworker_name = {name:?}\n"),
    )
    .unwrap();
    home
}

/// `drover ARGS` against the daemon of `home`, in the background.
fn spawn(env: &Env, home: &Path, args: &[&str]) -> Child {
    env.cmd(args)
        .env("DROVER_HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn locks(home: &Path) -> Vec<Value> {
    let (status, body) = http::json(&home.join("daemon.sock"), "GET", "/v1/locks", "");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// A lock held through daemon A makes `drover lock` through daemon B wait (both see the holder
/// on A and the waiter on B) until A's holder ends; then B's command runs.
#[test]
fn a_lock_held_through_one_worker_holds_for_the_other() {
    let env = Env::new();
    let rt = runtime();
    let url = rt.block_on(drover_store::conformance::pg::fresh_database());
    let exe = Path::new(env!("CARGO_BIN_EXE_drover"));
    let (home_a, home_b) = (worker_home(&env, "wa", &url), worker_home(&env, "wb", &url));
    let a = rt.block_on(InProcessDaemon::start(&home_a, exe));
    let b = rt.block_on(InProcessDaemon::start(&home_b, exe));
    let dir = env.tmp.path();
    let (holding, go, got) = (dir.join("holding"), dir.join("go"), dir.join("got"));

    let hold = format!(
        "touch {h}; while [ ! -e {g} ]; do sleep 0.05; done",
        h = holding.display(),
        g = go.display()
    );
    let first = spawn(&env, &home_a, &["lock", "shared", "--", "sh", "-c", &hold]);
    poll("A's holder to run", LIMIT, || holding.exists());
    let mut second = spawn(
        &env,
        &home_b,
        &["lock", "shared", "--", "touch", got.to_str().unwrap()],
    );
    // Both workers see A's holder and B's waiter.
    for home in [&home_a, &home_b] {
        poll("B's waiter to show", LIMIT, || {
            let l = locks(home);
            l.len() == 1 && l[0]["waiters"].as_array().is_some_and(|w| w.len() == 1)
        });
        let l = &locks(home)[0];
        assert_eq!(l["name"], "shared");
        assert_eq!(l["held_on"], serde_json::json!(["wa"]), "{l}");
        assert_eq!(l["waiting_on"], serde_json::json!(["wb"]), "{l}");
    }
    assert!(!got.exists(), "B ran while A held the lock");
    // A waiter whose client goes away leaves the queue on every worker.
    let mut quitter = spawn(&env, &home_b, &["lock", "shared", "--", "true"]);
    poll("the second waiter to show", LIMIT, || {
        locks(&home_a)[0]["waiters"].as_array().map(Vec::len) == Some(2)
    });
    quitter.kill().unwrap();
    quitter.wait().unwrap();
    poll("the gone waiter to leave", LIMIT, || {
        locks(&home_a)[0]["waiters"].as_array().map(Vec::len) == Some(1)
    });
    assert!(second.try_wait().unwrap().is_none(), "B's lock ended early");

    std::fs::write(&go, "").unwrap();
    let out = common::finish_within(first, LIMIT, "A's holder");
    assert!(out.status.success(), "{out:?}");
    let out = common::finish_within(second, LIMIT, "B's lock");
    assert!(out.status.success(), "{out:?}");
    assert!(got.exists(), "B's command did not run");
    poll("the lock to be free everywhere", LIMIT, || {
        locks(&home_a).is_empty() && locks(&home_b).is_empty()
    });
    rt.block_on(b.shutdown());
    rt.block_on(a.shutdown());
}
