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

/// With `probe` the daemon takes that verdict; without, it runs agents unconfined (the first
/// daemon's tasks wait on a file of the test's, which a confined agent could not see).
fn start(rt: &tokio::runtime::Runtime, env: &Env, probe: Option<Report>) -> InProcessDaemon {
    let exe = Path::new(env!("CARGO_BIN_EXE_drover"));
    rt.block_on(InProcessDaemon::start_with(&env.home, exe, |c| {
        c.slots = 1;
        match probe {
            Some(r) => c.isolation_probe = IsolationProbe::Fixed(r),
            None => c.confinement.isolation = drover_types::Isolation::None,
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

    // Before: a daemon that starts agents. One slot: the first task holds it, the second stays queued.
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
    let out = env.run(&["pool", "resume", "p1"]);
    assert_refusal(&out, "pool resume");

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
    assert_eq!(t["isolation"], "none", "{t:#}");
    let shown = env.ok(&["show", &id]);
    assert!(shown.contains("isolation    none (unconfined"), "{shown}");
    rt.block_on(daemon.shutdown());
}

/// `drover doctor` on a host that really refuses user namespaces: a normal user in a user
/// namespace whose `user.max_user_namespaces` is 0 (the switch some distributions ship).
/// Needs root to map a range of uids into that namespace.
#[test]
fn doctor_names_the_missing_feature_and_its_remedy() {
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIPPED: doctor_names_the_missing_feature_and_its_remedy needs root");
        return;
    }
    let env = Env::new();
    std::fs::create_dir_all(&env.home).unwrap();
    let tmp = env.tmp.path();
    // The unprivileged user must reach the binary and DROVER_HOME.
    let exe = tmp.join("drover");
    std::fs::copy(env!("CARGO_BIN_EXE_drover"), &exe).unwrap();
    for p in [tmp, &env.home, &exe] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    // The shell exec'd before its uids were mapped (no capabilities); once mapped, a second
    // exec as the namespace's root regains them, to set the switch, then drops to a user.
    let script = format!(
        "read go && exec sh -c 'echo 0 > /proc/sys/user/max_user_namespaces && \
         exec setpriv --reuid=65534 --regid=65534 --clear-groups \
         env DROVER_HOME={home} HOME={tmp} {exe} doctor --json'",
        home = env.home.display(),
        tmp = tmp.display(),
        exe = exe.display()
    );
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // SAFETY: unshare is a system call; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::unshare(libc::CLONE_NEWUSER) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let proc_dir = format!("/proc/{}", child.id());
    std::fs::write(format!("{proc_dir}/uid_map"), "0 0 65536\n").unwrap();
    std::fs::write(format!("{proc_dir}/gid_map"), "0 0 65536\n").unwrap();
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let out = drover_test_support::poll::some(
        "drover doctor to end",
        std::time::Duration::from_secs(60),
        std::time::Duration::from_millis(20),
        || child.try_wait().unwrap(),
    );
    let stdout = {
        use std::io::Read;
        let mut s = String::new();
        child.stdout.take().unwrap().read_to_string(&mut s).unwrap();
        s
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(out.code(), Some(1), "doctor must fail: {stdout}\n{stderr}");
    let checks: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    let get = |name: &str| {
        checks
            .iter()
            .find(|c| c["check"] == name)
            .unwrap_or_else(|| panic!("no {name} check: {stdout}"))
            .clone()
    };
    let userns = get("userns");
    assert_eq!(userns["ok"], false, "{userns:#}");
    let detail = userns["detail"].as_str().unwrap();
    assert!(detail.contains("user.max_user_namespaces is 0"), "{detail}");
    let hint = userns["hint"].as_str().unwrap();
    assert!(
        hint.contains("sysctl -w user.max_user_namespaces="),
        "{hint}"
    );
    let iso = get("isolation");
    assert_eq!(iso["ok"], false, "{iso:#}");
    assert!(
        iso["detail"]
            .as_str()
            .unwrap()
            .contains("the daemon starts no task"),
        "{iso:#}"
    );
    assert!(iso["hint"]
        .as_str()
        .unwrap()
        .contains("isolation = \"none\""));
    // Namespaces that need the user namespace first are not reported as present.
    assert_eq!(get("mountns")["ok"], false);
    assert_eq!(get("home")["ok"], true);
}
