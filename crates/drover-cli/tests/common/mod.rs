//! A hermetic drover for integration tests: its own DROVER_HOME, HOME, git config and repo,
//! driving the real `drover` binary (which auto-starts a real daemon).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Env {
    pub tmp: tempfile::TempDir,
    pub home: PathBuf,
    pub user_home: PathBuf,
    pub repo: PathBuf,
    pub extra_env: Vec<(String, String)>,
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
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
        std::fs::create_dir_all(&user_home).unwrap();
        std::fs::write(
            user_home.join(".gitconfig"),
            "[user]\n\tname = Test\n\temail = test@example.com\n[init]\n\tdefaultBranch = main\n",
        )
        .unwrap();
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

    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.repo)
            .args(args)
            .env("HOME", &self.user_home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
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
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let t = self.show(id);
            if pred(&t) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; task: {t:#}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
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

/// Collects a child's output, killing it (and failing the test) if it runs past `limit`.
pub fn finish_within(mut child: Child, limit: Duration, what: &str) -> Output {
    use std::io::Read;
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = vec![];
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} did not end within {limit:?}; stderr: {}",
                String::from_utf8_lossy(&err.join().unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Polls `cond` until it holds; fails the test after `limit`.
pub fn poll(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn wait_gone(pid: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} did not go away");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Alive and not a zombie.
pub fn alive(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            let rest = &s[s.rfind(')').unwrap() + 1..];
            !matches!(rest.split_whitespace().next(), Some("Z") | Some("X"))
        }
        Err(_) => false,
    }
}

/// Live processes whose environment carries `DROVER_HOME=<home>` (daemon, shims, agents).
pub fn processes_of(home: &Path) -> Vec<i64> {
    let needle = format!("DROVER_HOME={}", home.display());
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i64>().ok()) else {
            continue;
        };
        if pid == std::process::id() as i64 {
            continue;
        }
        if let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) {
            if env.split(|&b| b == 0).any(|kv| kv == needle.as_bytes()) && alive(pid) {
                out.push(pid);
            }
        }
    }
    out
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = self.cmd(&["daemon", "stop", "--stop-tasks"]).output();
        for pid in processes_of(&self.home) {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        // Leave no mount behind even when a test failed half-way.
        if let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") {
            for line in mounts.lines() {
                if let Some(target) = line.split_whitespace().nth(1) {
                    if target.starts_with(&self.home.display().to_string()) {
                        let _ = Command::new("umount").arg("-l").arg(target).status();
                    }
                }
            }
        }
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

/// A fake model provider running in this test process, and the env that points agents at it.
pub struct Provider {
    pub rt: tokio::runtime::Runtime,
    pub running: Option<drover_fake_provider::RunningProvider>,
    pub url: String,
}

impl Provider {
    pub fn start(scenarios: Value) -> Provider {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let set = drover_fake_provider::ScenarioSet::from_json(&scenarios.to_string()).unwrap();
        let running = rt
            .block_on(drover_fake_provider::FakeProvider::start(
                set,
                "127.0.0.1:0".parse().unwrap(),
            ))
            .unwrap();
        let url = running.base_url();
        Provider {
            rt,
            running: Some(running),
            url,
        }
    }

    pub fn log(&self) -> Vec<drover_fake_provider::RequestRecord> {
        self.running.as_ref().unwrap().log()
    }

    /// Lets the turns held under `name` answer (see the fake provider's `hold`).
    pub fn release(&self, name: &str) {
        self.running.as_ref().unwrap().release(name);
    }

    /// Waits (at most 120 s) until `n` requests have reached the held turn `name`: the agent is
    /// then inside that turn, waiting for the test.
    pub fn wait_held(&self, name: &str, n: usize) {
        let holds = self.running.as_ref().unwrap().holds().clone();
        let reached = self
            .rt
            .block_on(holds.reached(name, n, Duration::from_secs(120)));
        assert!(reached, "no request reached the held turn {name:?}");
    }
}

/// The pinned Claude Code binary. The test command installs it; a missing one is a failure,
/// not a skip.
pub fn claude_bin() -> String {
    std::env::var("DROVER_CLAUDE_BIN").ok().filter(|s| !s.is_empty()).expect(
        "DROVER_CLAUDE_BIN is not set: run the test suite through scripts/test.sh, which installs \
         @anthropic-ai/claude-code@2.1.328 and sets it",
    )
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
    let mut s = std::os::unix::net::UnixStream::connect(env.home.join("daemon.sock")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nhost: drover\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    std::io::Write::write_all(&mut s, req.as_bytes()).unwrap();
    // A server may answer (413) before reading the whole body; a broken pipe is fine then.
    let _ = std::io::Write::write_all(&mut s, body);
    let mut raw = vec![];
    let _ = std::io::Read::read_to_end(&mut s, &mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer to {method} {path}: {raw:?}"));
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, head, body)
}

pub fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = vec![];
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(std::str::from_utf8(&b[..i]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + n]);
        b = &b[i + 2 + n + 2..];
    }
    out
}

/// A JSON request over the daemon's socket: the status and the body as text.
pub fn api_json(env: &Env, method: &str, path: &str, body: &str) -> (u16, String) {
    let (status, _, b) = http(
        env,
        method,
        path,
        &[("content-type", "application/json")],
        body.as_bytes(),
    );
    (status, String::from_utf8_lossy(&b).into_owned())
}
