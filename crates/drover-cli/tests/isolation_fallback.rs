//! Honest fallback (docs/design.md §11): a daemon on a host that cannot confine agents runs,
//! but starts none — the CLI says which feature is missing, the remedy, and that
//! `sandbox.isolation = "none"` runs agents unconfined on purpose; a task queued before fails
//! with that reason instead of running. The host here can confine, so the probe's verdict is
//! fixed through `Config::isolation_probe` (set in-process only: no file, variable or flag
//! reaches it).
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use drover_daemon::config::IsolationProbe;
use drover_shim::probe::{Feature, Report};
use drover_test_support::daemon::InProcessDaemon;
use std::path::Path;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn apparmor() -> Report {
    Report::missing(
        Feature::UserNamespace,
        "AppArmor restricts unprivileged user namespaces",
        "`sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`, or add an AppArmor \
         profile for drover — see docs/design.md §11",
    )
}

fn start(rt: &tokio::runtime::Runtime, env: &Env, probe: Option<Report>) -> InProcessDaemon {
    let exe = Path::new(env!("CARGO_BIN_EXE_drover"));
    rt.block_on(InProcessDaemon::start_with(&env.home, exe, |c| {
        c.slots = 1;
        if let Some(r) = probe {
            c.isolation_probe = IsolationProbe::Fixed(r);
        }
    }))
}

fn assert_refusal(out: &std::process::Output, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{what}: {err}");
    let first = err.lines().next().unwrap_or_default();
    for want in [
        "user namespace is missing",
        "AppArmor restricts unprivileged user namespaces",
        "kernel.apparmor_restrict_unprivileged_userns=0",
        "isolation = \"none\"",
        "unconfined on purpose",
    ] {
        assert!(first.contains(want), "{what}: {want:?} not in {first:?}");
    }
}

#[test]
fn a_host_that_cannot_confine_starts_no_agent_and_says_why() {
    let env = Env::new();
    let rt = runtime();

    // Before: a confining host. One slot: the first task holds it, the second stays queued.
    let daemon = start(&rt, &env, None);
    let go = env.tmp.path().join("go");
    let holder = env.run_command_task(
        &format!("while [ ! -e {} ]; do sleep 0.05; done", go.display()),
        "hold the slot",
    );
    env.until(&holder, "the holder to run", |t| t["state"] == "running");
    let ran = env.tmp.path().join("queued-ran");
    let queued = env.run_command_task(&format!("touch {}", ran.display()), "queued");
    assert_eq!(env.show(&queued)["state"], "queued");
    rt.block_on(daemon.shutdown());

    // After: the host lost user namespaces (e.g. an upgrade turned AppArmor's restriction on).
    let daemon = start(&rt, &env, Some(apparmor()));

    // The CLI and the API still answer.
    env.ok(&["ls"]);
    // A new task is refused with one line naming the feature, the remedy and the way out.
    let out = env.run(&["run", "--agent", "command", "--cmd", "echo hi", "p"]);
    assert_refusal(&out, "run");
    let req = serde_json::json!({
        "prompt": "p", "agent": "command", "cmd": "echo hi", "repo": env.repo,
    });
    let (status, body) = api_json(&env, "POST", "/v1/tasks", &req.to_string());
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("\"kind\":\"isolation_unavailable\""),
        "{body}"
    );
    // So is a pool.
    let out = env.run(&[
        "pool", "start", "p1", "--slots", "1", "--agent", "command", "--cmd", "true", "--prompt",
        "p",
    ]);
    assert_refusal(&out, "pool start");

    // The queued task fails with the reason once the slot frees; it never ran.
    std::fs::write(&go, "").unwrap();
    let t = env.wait(&queued);
    assert_eq!(t["state"], "failed", "{t:#}");
    let reason = t["outcome"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(reason.contains("user namespace is missing"), "{t:#}");
    assert!(reason.contains("isolation = \"none\""), "{t:#}");
    assert!(!ran.exists(), "the queued task's agent ran unconfined");
    assert_eq!(env.wait(&holder)["state"], "succeeded");
    rt.block_on(daemon.shutdown());
}

#[test]
fn isolation_none_runs_agents_on_the_same_host_on_purpose() {
    let env = Env::new();
    std::fs::create_dir_all(&env.home).unwrap();
    std::fs::write(
        env.home.join("config.toml"),
        "[sandbox]\nisolation = \"none\"\n",
    )
    .unwrap();
    let rt = runtime();
    let daemon = start(&rt, &env, Some(apparmor()));
    let id = env.run_command_task("echo unconfined", "p");
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    assert_eq!(t["result"], "unconfined");
    rt.block_on(daemon.shutdown());
}
