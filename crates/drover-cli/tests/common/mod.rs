//! A hermetic drover for integration tests: its own DROVER_HOME, HOME, git config and repo,
//! driving the real `drover` binary (which auto-starts a real daemon).
// Each test binary uses its own part of this module and of what it re-exports.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

pub use drover_test_support::agents::{claude_bin, codex_bin};
pub use drover_test_support::git::git;
pub use drover_test_support::http::dechunk;
pub use drover_test_support::poll::poll;
pub use drover_test_support::process::{
    alive, finish_within, group_alive, processes_of, wait_gone,
};
pub use drover_test_support::provider::Provider;

pub mod tcp;
pub use tcp::{runtime, TcpServer};

pub struct Env {
    pub tmp: tempfile::TempDir,
    pub home: PathBuf,
    pub user_home: PathBuf,
    pub repo: PathBuf,
    pub extra_env: Vec<(String, String)>,
}

impl Env {
    pub fn new() -> Env {
        let tmp = tempfile::Builder::new()
            .prefix("dt")
            .tempdir_in("/tmp")
            .unwrap();
        let home = tmp.path().join("h");
        let user_home = tmp.path().join("u");
        let repo = tmp.path().join("repo");
        drover_test_support::git::write_user_config(&user_home);
        let env = Env {
            tmp,
            home,
            user_home,
            repo,
            extra_env: vec![],
        };
        std::fs::create_dir_all(&env.repo).unwrap();
        env.git(&["init", "-q"]);
        std::fs::write(env.repo.join("README.md"), "demo\n").unwrap();
        std::fs::write(env.repo.join(".gitignore"), "target/\n").unwrap();
        env.git(&["add", "-A"]);
        env.git(&["commit", "-qm", "init"]);
        env
    }

    /// git in the test's repo, as the test's user (its own `.gitconfig`).
    pub fn git(&self, args: &[&str]) -> String {
        drover_test_support::git::git_env(&self.repo, args, &[("HOME", self.user_home.as_os_str())])
    }

    /// The daemon's socket.
    pub fn sock(&self) -> PathBuf {
        self.home.join("daemon.sock")
    }

    pub fn with_env(mut self, k: &str, v: &str) -> Env {
        self.extra_env.push((k.into(), v.into()));
        self
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_drover"));
        c.args(args)
            .current_dir(&self.repo)
            .env("DROVER_HOME", &self.home)
            .env("HOME", &self.user_home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("DISABLE_AUTOUPDATER", "1")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            // The suite may itself run inside a drover task (an agent working on drover).
            .env_remove("DROVER_TASK_ID")
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("ANTHROPIC_BASE_URL")
            .env_remove("DROVER_SLOTS");
        for (k, v) in &self.extra_env {
            c.env(k, v);
        }
        c
    }

    /// Runs drover (stdin empty) and returns its output; fails the test if it has not ended
    /// within [`CLI_DEADLINE`].
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_within(args, CLI_DEADLINE)
    }

    /// Runs drover with a deadline: past it, drover is killed and the test fails (no test
    /// waits forever on a command).
    pub fn run_within(&self, args: &[&str], limit: Duration) -> Output {
        let child = self
            .cmd(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        finish_within(child, limit, &format!("drover {args:?}"))
    }

    /// Runs and asserts exit 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "drover {args:?} exited {:?}\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let s = self.ok(args);
        serde_json::from_str(&s).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {s}"))
    }

    pub fn show(&self, id: &str) -> Value {
        self.json(&["show", id, "--json"])
    }

    /// Blocks (through `drover wait`, which long-polls the daemon) until the task is terminal,
    /// at most [`CLI_DEADLINE`].
    pub fn wait(&self, id: &str) -> Value {
        let out = self.run(&["wait", id, "--json"]);
        let s = String::from_utf8_lossy(&out.stdout);
        let v: Value = serde_json::from_str(&s).unwrap_or_else(|e| {
            panic!(
                "wait printed no JSON ({e}): {s} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        v[0].clone()
    }

    pub fn events(&self, id: &str) -> Vec<Value> {
        let s = self.ok(&["logs", id, "--json"]);
        s.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Polls `show` until `pred` holds (a state the test cannot be told about any other way).
    pub fn until(&self, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        drover_test_support::poll::until(
            what,
            Duration::from_secs(120),
            Duration::from_millis(50),
            || self.show(id),
            pred,
        )
    }

    pub fn daemon_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.home.join("daemon.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// SIGKILLs the daemon and waits until it is gone.
    pub fn kill_daemon(&self) {
        let pid = self.daemon_pid().expect("daemon pid");
        unsafe { libc::kill(pid, libc::SIGKILL) };
        wait_gone(pid as i64);
    }

    pub fn run_command_task(&self, cmd: &str, prompt: &str) -> String {
        self.ok(&["run", "--agent", "command", "--cmd", cmd, prompt])
    }
}

/// The longest any one drover command may take in a test.
pub const CLI_DEADLINE: Duration = Duration::from_secs(300);

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.cmd(&["daemon", "stop", "--stop-tasks"]).output();
        for pid in processes_of(&self.home) {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        // Leave no mount behind even when a test failed half-way.
        drover_test_support::mounts::unmount_below(&self.home);
    }
}

/// The intervals during which tasks were past `queued` and not yet terminal, from their
/// recorded state events.
pub fn busy_intervals(env: &Env, ids: &[String]) -> Vec<(String, String)> {
    ids.iter()
        .map(|id| {
            let evs = env.events(id);
            let start = evs
                .iter()
                .find(|e| e["kind"] == "state" && e["data"]["state"] == "preparing")
                .unwrap()["ts"]
                .as_str()
                .unwrap()
                .to_string();
            let end = evs
                .iter()
                .find(|e| {
                    e["kind"] == "state"
                        && ["succeeded", "failed", "cancelled", "interrupted"]
                            .contains(&e["data"]["state"].as_str().unwrap())
                })
                .unwrap()["ts"]
                .as_str()
                .unwrap()
                .to_string();
            (start, end)
        })
        .collect()
}

/// The most intervals open at once (RFC 3339 UTC strings sort like times).
pub fn max_overlap(intervals: &[(String, String)]) -> usize {
    let mut points: Vec<(String, i32)> = vec![];
    for (s, e) in intervals {
        points.push((s.clone(), 1));
        points.push((e.clone(), -1));
    }
    // Ends before starts at the same instant.
    points.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut cur, mut max) = (0i32, 0i32);
    for (_, d) in points {
        cur += d;
        max = max.max(cur);
    }
    max as usize
}

impl Env {
    /// An env whose agents use Claude Code against `provider`.
    pub fn claude(provider: &Provider) -> Env {
        Env::new()
            .with_env("DROVER_CLAUDE_BIN", &claude_bin())
            .with_env("ANTHROPIC_BASE_URL", &provider.url)
            .with_env("ANTHROPIC_API_KEY", "sk-ant-test-key")
    }
}

/// One raw HTTP/1.1 request over the daemon's socket (for what the CLI would refuse before
/// sending): the status, the head and the (de-chunked) body.
pub fn http(
    env: &Env,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    drover_test_support::http::request(&env.sock(), method, path, headers, body)
}

/// A JSON request over the daemon's socket: the status and the body as text.
pub fn api_json(env: &Env, method: &str, path: &str, body: &str) -> (u16, String) {
    drover_test_support::http::json(&env.sock(), method, path, body)
}
