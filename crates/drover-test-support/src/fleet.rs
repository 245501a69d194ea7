//! A fleet of drover workers on one PostgreSQL database, as separate "hosts" (docs/design.md §8).
//!
//! [`Fleet::new`] makes a fresh database on the test cluster
//! ([`drover_store::conformance::pg::fresh_database`]: it panics when `DROVER_TEST_DATABASE_URL`
//! is unset, so no fleet test passes without PostgreSQL), a bare git repo reached by a `file://`
//! URL (so any worker may run its tasks) and a directory the tasks may write their own records to.
//! Each worker is a real `drover daemon --foreground` PROCESS with its own `DROVER_HOME`,
//! `DROVER_WORKER_NAME`, `DROVER_LEASE_SECS` and `DROVER_SLOTS`, started as PID 1 of its own PID
//! namespace (`unshare --pid --fork --kill-child --mount-proc`): SIGKILL of it
//! ([`Fleet::kill`]) ends every process of that "host" (shims and agents too), as a host that
//! dies would. With [`WorkerOpts::net`], the worker also gets its own network namespace made by
//! the harness (`ip netns add`, a veth pair, `10.x.y.1/30` on the host side and `.2` inside; it
//! reaches the cluster at `10.x.y.1:PORT`): [`Fleet::cut`] takes the host side down (packets are
//! dropped, connections hang, as on a cut cable), [`Fleet::restore`] brings it back up.
//! Everything is removed on drop.
//!
//! The CLI talks to a worker through its `DROVER_HOME/daemon.sock` (Unix sockets cross network
//! namespaces). A helper refuses to talk to a killed worker: the CLI would auto-start a new
//! daemon on its home.

use crate::process::{alive, finish_within, wait_gone};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// The longest one CLI command of a fleet test may take.
pub const CLI_DEADLINE: Duration = Duration::from_secs(300);
/// How long a worker may take to answer on its socket after it was started.
pub const START_DEADLINE: Duration = Duration::from_secs(60);

/// The tools a fleet needs on the host; a missing one fails the test with one line.
const TOOLS: &[&str] = &["unshare", "nsenter", "ip", "git"];

/// How to start one worker.
#[derive(Clone, Debug)]
pub struct WorkerOpts {
    pub name: String,
    pub slots: usize,
    /// Its own network namespace (for [`Fleet::cut`]).
    pub net: bool,
    /// Extra `DROVER_*` variables.
    pub env: Vec<(String, String)>,
}

impl WorkerOpts {
    pub fn new(name: &str, slots: usize) -> WorkerOpts {
        WorkerOpts {
            name: name.into(),
            slots,
            net: false,
            env: vec![],
        }
    }

    pub fn with_net(mut self) -> WorkerOpts {
        self.net = true;
        self
    }

    pub fn with_env(mut self, k: &str, v: &str) -> WorkerOpts {
        self.env.push((k.into(), v.into()));
        self
    }
}

/// A network namespace with a veth pair to the host.
struct NetNs {
    name: String,
    host_if: String,
    host_ip: String,
}

impl NetNs {
    fn create(seq: u32) -> NetNs {
        let pid = std::process::id();
        // 10.(200 + pid % 50).(pid / 50 % 64 * 4 + seq % 4).(0..3): distinct per test process and
        // per namespace of one test (at most 4 each), inside the cluster's trusted 10.0.0.0/8.
        let b = 200 + pid % 50;
        let c = (pid / 50 % 64) * 4 + seq % 4;
        let name = format!("drvf{pid}-{seq}");
        let host_if = format!("df{:06}{seq}h", pid % 1_000_000);
        let ns_if = format!("df{:06}{seq}n", pid % 1_000_000);
        let host_ip = format!("10.{b}.{c}.1");
        let ns_ip = format!("10.{b}.{c}.2");
        let net = NetNs {
            name,
            host_if,
            host_ip,
        };
        ip(&["netns", "add", &net.name]);
        ip(&[
            "link",
            "add",
            &net.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &ns_if,
            "netns",
            &net.name,
        ]);
        ip(&[
            "addr",
            "add",
            &format!("{}/30", net.host_ip),
            "dev",
            &net.host_if,
        ]);
        ip(&["link", "set", &net.host_if, "up"]);
        ip(&[
            "-n",
            &net.name,
            "addr",
            "add",
            &format!("{ns_ip}/30"),
            "dev",
            &ns_if,
        ]);
        ip(&["-n", &net.name, "link", "set", &ns_if, "up"]);
        ip(&["-n", &net.name, "link", "set", "lo", "up"]);
        net
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap_or_else(|e| {
        panic!("fleet: `ip` is needed to make network namespaces (iproute2): {e}")
    });
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One worker process.
pub struct Worker {
    pub name: String,
    pub home: PathBuf,
    pub slots: usize,
    /// Its stdout + stderr (the daemon's tracing log).
    pub log: PathBuf,
    /// `unshare` (the namespace's parent, outside it).
    child: Child,
    net: Option<NetNs>,
    killed: bool,
}

impl Worker {
    /// The host pid of the namespace's init: the daemon itself.
    pub fn init_pid(&self) -> Option<i32> {
        let pid = self.child.id();
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
        children.split_whitespace().next()?.parse().ok()
    }

    pub fn sock(&self) -> PathBuf {
        self.home.join("daemon.sock")
    }

    pub fn killed(&self) -> bool {
        self.killed
    }
}

/// Workers on one fresh PostgreSQL database.
pub struct Fleet {
    pub tmp: tempfile::TempDir,
    /// The database's URL as the test reaches it (127.0.0.1).
    pub url: String,
    /// The bare repo and its `file://` URL.
    pub repo: PathBuf,
    pub repo_url: String,
    /// A directory the tasks' commands may write records to (isolation is off in a fleet).
    pub records: PathBuf,
    pub user_home: PathBuf,
    pub lease_secs: u32,
    exe: PathBuf,
    pub workers: Vec<Worker>,
    nets: u32,
}

impl Fleet {
    /// A fleet with no worker yet, on a fresh database; workers' leases last `lease_secs`.
    /// `exe` is the `drover` binary (`env!("CARGO_BIN_EXE_drover")`).
    pub fn new(exe: &Path, lease_secs: u32) -> Fleet {
        for tool in TOOLS {
            let found = std::env::var_os("PATH")
                .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
            assert!(
                found,
                "fleet tests need `{tool}` on PATH (util-linux: unshare, nsenter; iproute2: ip; git) and root"
            );
        }
        assert!(
            nix::unistd::geteuid().is_root(),
            "fleet tests need root (PID and network namespaces)"
        );
        let url = fresh_database();
        let tmp = tempfile::Builder::new()
            .prefix("dfleet")
            .tempdir_in("/tmp")
            .unwrap();
        let user_home = tmp.path().join("u");
        crate::git::write_user_config(&user_home);
        let work = tmp.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        let git = |dir: &Path, args: &[&str]| {
            crate::git::git_env(dir, args, &[("HOME", user_home.as_os_str())])
        };
        git(&work, &["init", "-q", "-b", "main"]);
        std::fs::write(work.join("README.md"), "fleet\n").unwrap();
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-qm", "init"]);
        let repo = tmp.path().join("repo.git");
        git(
            tmp.path(),
            &["clone", "-q", "--bare", "work", repo.to_str().unwrap()],
        );
        let records = tmp.path().join("records");
        std::fs::create_dir_all(&records).unwrap();
        Fleet {
            repo_url: format!("file://{}", repo.display()),
            repo,
            records,
            url,
            user_home,
            lease_secs,
            exe: exe.to_path_buf(),
            workers: vec![],
            nets: 0,
            tmp,
        }
    }

    /// Starts a worker and waits until it answers; returns its index.
    pub fn start(&mut self, opts: WorkerOpts) -> usize {
        let i = self.spawn(opts);
        self.wait_ready(i);
        i
    }

    /// Starts a worker process without waiting for it.
    pub fn spawn(&mut self, opts: WorkerOpts) -> usize {
        let home = self.tmp.path().join(&opts.name);
        std::fs::create_dir_all(&home).unwrap();
        let log = self.tmp.path().join(format!("{}.log", opts.name));
        let net = opts.net.then(|| {
            self.nets += 1;
            NetNs::create(self.nets)
        });
        let url = match &net {
            Some(n) => self.url.replacen("127.0.0.1", &n.host_ip, 1),
            None => self.url.clone(),
        };
        let mut cmd = match &net {
            Some(n) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/var/run/netns/{}", n.name))
                    .arg("unshare");
                c
            }
            None => Command::new("unshare"),
        };
        cmd.args(["--pid", "--fork", "--kill-child", "--mount-proc"])
            .arg(&self.exe)
            .args(["daemon", "--foreground"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.user_home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("DROVER_HOME", &home)
            .env("DROVER_DATABASE_URL", &url)
            .env("DROVER_WORKER_NAME", &opts.name)
            .env("DROVER_LEASE_SECS", self.lease_secs.to_string())
            .env("DROVER_SLOTS", opts.slots.to_string())
            .env("DROVER_SANDBOX_ISOLATION", "none")
            .env("DROVER_LOG", "info,drover_daemon=debug")
            .stdin(Stdio::null());
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        // stdout and stderr as one file.
        let file = std::fs::File::create(&log).unwrap();
        cmd.stdout(file.try_clone().unwrap()).stderr(file);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("fleet: cannot start worker {} (unshare): {e}", opts.name));
        self.workers.push(Worker {
            name: opts.name,
            home,
            slots: opts.slots,
            log,
            child,
            net,
            killed: false,
        });
        self.workers.len() - 1
    }

    /// Waits until worker `i` answers on its socket (fails the test with its log if it exits).
    pub fn wait_ready(&mut self, i: usize) {
        let deadline = std::time::Instant::now() + START_DEADLINE;
        loop {
            let sock = self.workers[i].sock();
            if std::os::unix::net::UnixStream::connect(&sock).is_ok()
                && crate::http::request(&sock, "GET", "/v1/status", &[], b"").0 == 200
            {
                return;
            }
            if let Some(st) = self.workers[i].child.try_wait().unwrap() {
                panic!(
                    "worker {} exited ({st}) before it listened:\n{}",
                    self.workers[i].name,
                    self.log(i)
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "worker {} did not listen within {START_DEADLINE:?}:\n{}",
                self.workers[i].name,
                self.log(i)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn worker(&self, i: usize) -> &Worker {
        &self.workers[i]
    }

    /// Worker `i`'s log so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.workers[i].log).unwrap_or_default()
    }

    /// The `drover` CLI aimed at worker `i` (its socket).
    pub fn cmd(&self, i: usize, args: &[&str]) -> Command {
        let w = &self.workers[i];
        assert!(
            !w.killed,
            "worker {} was killed: the CLI would start a new daemon on its home",
            w.name
        );
        let mut c = Command::new(&self.exe);
        c.args(args)
            .current_dir(self.tmp.path())
            .env("DROVER_HOME", &w.home)
            .env("HOME", &self.user_home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env_remove("DROVER_TASK_ID")
            .env_remove("DROVER_URL")
            .env_remove("DROVER_DATABASE_URL")
            .env_remove("DROVER_SLOTS");
        c
    }

    /// Runs the CLI on worker `i` within `limit`.
    pub fn run_within(&self, i: usize, args: &[&str], limit: Duration) -> Output {
        let child = self
            .cmd(i, args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        finish_within(
            child,
            limit,
            &format!("drover {args:?} on {}", self.workers[i].name),
        )
    }

    /// Runs the CLI on worker `i`, asserts exit 0, returns stdout.
    pub fn ok(&self, i: usize, args: &[&str]) -> String {
        let out = self.run_within(i, args, CLI_DEADLINE);
        assert!(
            out.status.success(),
            "drover {args:?} on {} exited {:?}\nstdout: {}\nstderr: {}",
            self.workers[i].name,
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn json(&self, i: usize, args: &[&str]) -> Value {
        let s = self.ok(i, args);
        serde_json::from_str(&s).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {s}"))
    }

    /// Submits a command task on the fleet's `file://` repo through worker `i`; returns its id.
    /// `extra` are more `drover run` flags (e.g. `--on-interrupt resume`).
    pub fn submit(&self, i: usize, cmd: &str, prompt: &str, extra: &[&str]) -> String {
        let mut args = vec![
            "run",
            "--repo",
            &self.repo_url,
            "--agent",
            "command",
            "--cmd",
            cmd,
        ];
        args.extend_from_slice(extra);
        args.push(prompt);
        self.ok(i, &args)
    }

    /// A task as worker `i` reports it (`show --json`).
    pub fn show(&self, i: usize, id: &str) -> Value {
        self.json(i, &["show", id, "--json"])
    }

    /// Every task, as worker `i` lists them.
    pub fn tasks(&self, i: usize) -> Vec<Value> {
        serde_json::from_str(&self.ok(i, &["ls", "--all", "--json"])).unwrap()
    }

    /// A task's events as worker `i` reads them (`logs --json`).
    pub fn events(&self, i: usize, id: &str) -> Vec<Value> {
        self.ok(i, &["logs", id, "--json"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Polls `show` on worker `i` until `pred` holds (at most `limit`).
    pub fn until(
        &self,
        i: usize,
        id: &str,
        what: &str,
        limit: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        crate::poll::until(
            what,
            limit,
            Duration::from_millis(100),
            || self.show(i, id),
            pred,
        )
    }

    /// Polls the task list on worker `i` until `pred` holds for it (at most `limit`).
    pub fn until_tasks(
        &self,
        i: usize,
        what: &str,
        limit: Duration,
        pred: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        crate::poll::until(
            what,
            limit,
            Duration::from_millis(200),
            || Value::Array(self.tasks(i)),
            |v| pred(v.as_array().map(Vec::as_slice).unwrap_or_default()),
        )
        .as_array()
        .cloned()
        .unwrap_or_default()
    }

    /// SIGKILLs worker `i`'s namespace init (the daemon): the kernel ends every process in its
    /// PID namespace. Waits until none of them is left.
    pub fn kill(&mut self, i: usize) {
        let w = &mut self.workers[i];
        let init = w.init_pid().expect("the worker's namespace init");
        // SAFETY: sending a signal to a pid of ours.
        unsafe { libc::kill(init, libc::SIGKILL) };
        wait_gone(init as i64);
        let _ = finish_within_child(&mut w.child);
        w.killed = true;
        let home = w.home.clone();
        crate::poll::poll(
            "every process of the killed worker to end",
            Duration::from_secs(20),
            || crate::process::processes_of(&home).is_empty(),
        );
    }

    /// Cuts worker `i` off the network (its veth's host side down).
    pub fn cut(&self, i: usize) {
        let net = self.workers[i]
            .net
            .as_ref()
            .expect("a worker made with_net");
        ip(&["link", "set", &net.host_if, "down"]);
    }

    /// Brings worker `i`'s network back.
    pub fn restore(&self, i: usize) {
        let net = self.workers[i]
            .net
            .as_ref()
            .expect("a worker made with_net");
        ip(&["link", "set", &net.host_if, "up"]);
    }

    /// Whether worker `i`'s daemon is still alive.
    pub fn alive(&self, i: usize) -> bool {
        self.workers[i].init_pid().is_some_and(|p| alive(p as i64))
    }
}

fn finish_within_child(child: &mut Child) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(st) = child.try_wait().ok().flatten() {
            return Some(st);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            return child.wait().ok();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for w in &mut self.workers {
            if let Some(init) = w.init_pid() {
                // SAFETY: sending a signal to a pid of ours.
                unsafe { libc::kill(init, libc::SIGKILL) };
            }
            let _ = w.child.kill();
            let _ = finish_within_child(&mut w.child);
            for pid in crate::process::processes_of(&w.home) {
                // SAFETY: as above.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
            crate::mounts::unmount_below(&w.home);
            w.net.take();
        }
    }
}

/// A new empty database on the test cluster (panics when there is none).
pub fn fresh_database() -> String {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(drover_store::conformance::pg::fresh_database())
}

/// The intervals `[start, end)` (RFC 3339 UTC strings, which sort like times) during which
/// attempts ran, from a task's state events: each `preparing` opens one, the next terminal or
/// `interrupted` state (or a `queued` one, a requeue) closes it.
pub fn attempt_intervals(events: &[Value]) -> Vec<(String, String)> {
    let mut out = vec![];
    let mut open: Option<String> = None;
    for e in events.iter().filter(|e| e["kind"] == "state") {
        let state = e["data"]["state"].as_str().unwrap_or_default();
        let ts = e["ts"].as_str().unwrap_or_default().to_string();
        match state {
            "preparing" => {
                if let Some(s) = open.take() {
                    out.push((s, ts.clone()));
                }
                open = Some(ts);
            }
            "succeeded" | "failed" | "cancelled" | "interrupted" | "queued" => {
                if let Some(s) = open.take() {
                    out.push((s, ts));
                }
            }
            _ => {}
        }
    }
    if let Some(s) = open {
        out.push((s, "9999".into()));
    }
    out
}

/// The most intervals open at once (ends before starts at the same instant).
pub fn max_overlap<S: AsRef<str> + Ord>(intervals: &[(S, S)]) -> usize {
    let mut points: Vec<(&str, i32)> = vec![];
    for (s, e) in intervals {
        points.push((s.as_ref(), 1));
        points.push((e.as_ref(), -1));
    }
    points.sort_by(|a, b| a.0.cmp(b.0).then(a.1.cmp(&b.1)));
    let (mut cur, mut max) = (0i32, 0i32);
    for (_, d) in points {
        cur += d;
        max = max.max(cur);
    }
    max as usize
}

/// Reads the records the fleet's tasks wrote (`record_cmd`): one `(task, home, start, end)` per
/// run, times as seconds since the epoch.
/// (`(task, cwd, start, end)`.)
pub fn records(dir: &Path) -> Vec<Record> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap();
        let mut start = None;
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            match f.as_slice() {
                ["start", task, cwd, t] => {
                    start = Some((task.to_string(), cwd.to_string(), t.parse::<f64>().unwrap()))
                }
                ["end", _, _, t] => {
                    if let Some((task, cwd, s)) = start.take() {
                        out.push(Record {
                            task,
                            cwd,
                            start: s,
                            end: t.parse().unwrap(),
                        });
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// One run of a task as its command recorded it.
#[derive(Clone, Debug)]
pub struct Record {
    pub task: String,
    /// The checkout it ran in (under the `DROVER_HOME` of the worker that ran it).
    pub cwd: String,
    pub start: f64,
    pub end: f64,
}

/// A shell command that records its run in `dir` (one file per run: task id, the checkout's
/// path — under the worker's `DROVER_HOME` —, start and end times) around `sleep secs`.
pub fn record_cmd(dir: &Path, secs: &str) -> String {
    let d = dir.display();
    format!(
        "f={d}/$DROVER_TASK_ID.$$.$(date +%s%N); \
         echo start $DROVER_TASK_ID $(pwd) $(date +%s.%N) >> $f; \
         sleep {secs}; \
         echo end $DROVER_TASK_ID $(pwd) $(date +%s.%N) >> $f"
    )
}
