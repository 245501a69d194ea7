//! The unchanged CLI against a team server over TLS (docs/design.md §7): `DROVER_URL`,
//! `DROVER_API_KEY`, `DROVER_CA_CERT`. A real in-process daemon with an rcgen certificate; the
//! CLI runs with a DROVER_HOME of its own, where no daemon may appear.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use drover_test_support::daemon::InProcessDaemon;
use drover_test_support::keys::{Keys, TestKey};
use drover_test_support::net;
use drover_types::Scope;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

struct Remote {
    rt: tokio::runtime::Runtime,
    daemon: Option<InProcessDaemon>,
    env: Env,
    url: String,
    ca: PathBuf,
    key: TestKey,
    /// The CLI's own DROVER_HOME: nothing may start there.
    cli_home: PathBuf,
}

impl Remote {
    fn start() -> Remote {
        let env = Env::new();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let certs = net::certs(&env.tmp.path().join("certs"));
        let exe = Path::new(env!("CARGO_BIN_EXE_drover"));
        let (daemon, addr) = rt.block_on(net::start_listening(
            &env.home,
            exe,
            Some(certs.server.clone()),
        ));
        let keys = Keys::open(&env.home);
        keys.team("a");
        let key = keys.key(
            "a",
            &[
                Scope::TasksRead,
                Scope::TasksWrite,
                Scope::PoolsWrite,
                Scope::UsageRead,
            ],
            None,
        );
        let cli_home = env.tmp.path().join("cli-home");
        Remote {
            rt,
            daemon: Some(daemon),
            url: format!("https://localhost:{}", addr.port()),
            ca: certs.ca,
            key,
            cli_home,
            env,
        }
    }

    /// drover with the remote settings (and `vars` over them).
    fn drover(&self, args: &[&str], vars: &[(&str, &str)]) -> Output {
        let mut c = self.env.cmd(args);
        c.env("DROVER_HOME", &self.cli_home)
            .env("DROVER_URL", &self.url)
            .env("DROVER_API_KEY", &self.key.secret)
            .env("DROVER_CA_CERT", &self.ca)
            .stdin(std::process::Stdio::null());
        for (k, v) in vars {
            c.env(k, v);
        }
        let child = c
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        finish_within(
            child,
            std::time::Duration::from_secs(120),
            &format!("drover {args:?}"),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.drover(args, &[]);
        assert!(
            out.status.success(),
            "drover {args:?} exited {:?}\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn repo(&self) -> String {
        self.env.repo.display().to_string()
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        if let Some(d) = self.daemon.take() {
            self.rt.block_on(d.shutdown());
        }
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn the_cli_works_against_a_tls_team_server() {
    let r = Remote::start();
    let repo = r.repo();

    // The API itself over TLS (reqwest trusting the private CA).
    let api = net::Api::new(&r.url, Some(&r.ca), Some(&r.key.secret));
    let anon = net::Api::new(&r.url, Some(&r.ca), None);
    r.rt.block_on(async {
        let (status, health) = anon.call(reqwest::Method::GET, "/v1/health", None).await;
        assert_eq!((status, &health["ok"]), (200, &Value::Bool(true)));
        assert_eq!(
            anon.call(reqwest::Method::GET, "/v1/tasks", None).await.0,
            401
        );
        let (status, page) = api.call(reqwest::Method::GET, "/v1/tasks", None).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["tasks"], serde_json::json!([]));
    });

    // run --wait, ls, show, logs -f, wait.
    let out = r.ok(&[
        "run",
        "--agent",
        "command",
        "--cmd",
        "echo remote-hello",
        "--repo",
        &repo,
        "--wait",
        "p",
    ]);
    assert!(out.contains("remote-hello"), "{out}");
    let id = r.ok(&[
        "run",
        "--agent",
        "command",
        "--cmd",
        "sleep 0.5; echo second-task",
        "--repo",
        &repo,
        "p2",
    ]);
    let id = id.lines().last().unwrap().trim().to_string();
    let logs = r.ok(&["logs", "-f", &id]);
    assert!(logs.contains("second-task"), "{logs}");
    let t: Value = serde_json::from_str(&r.ok(&["wait", &id, "--json"])).unwrap();
    assert_eq!(t[0]["state"], "succeeded", "{t:#}");
    let t: Value = serde_json::from_str(&r.ok(&["show", &id, "--json"])).unwrap();
    assert_eq!(t["team"], "a");
    assert_eq!(t["created_by"], r.key.id.as_str());
    let ls: Vec<Value> = serde_json::from_str(&r.ok(&["ls", "--all", "--json"])).unwrap();
    assert_eq!(ls.len(), 2, "{ls:#?}");

    // send (the server's own answer comes back: this task takes no more input), stop, rm.
    let out = r.drover(&["send", &id, "more"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no more input"), "{}", stderr(&out));
    let long = r.ok(&[
        "run",
        "--agent",
        "command",
        "--cmd",
        "sleep 600",
        "--repo",
        &repo,
        "p3",
    ]);
    let long = long.lines().last().unwrap().trim().to_string();
    r.ok(&["stop", &long]);
    // (`wait` exits 1 for a task that did not succeed.)
    let out = r.drover(&["wait", &long, "--json"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let t: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(t[0]["state"], "cancelled", "{t:#}");
    r.ok(&["rm", &long]);
    let out = r.drover(&["show", &long], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // pool start / ls / stop; usage.
    r.ok(&[
        "pool",
        "start",
        "remote-pool",
        "--slots",
        "1",
        "--count",
        "1",
        "--agent",
        "command",
        "--cmd",
        "true",
        "--repo",
        &repo,
        "--prompt",
        "p",
    ]);
    let pools = r.ok(&["pool", "ls", "--json"]);
    assert!(pools.contains("remote-pool"), "{pools}");
    r.ok(&["pool", "stop", "remote-pool"]);
    r.ok(&["usage"]);

    // Nothing was started on the CLI's side.
    assert!(!r.cli_home.join("daemon.sock").exists());
    assert!(!r.cli_home.join("daemon.pid").exists());

    // The key is stored only as a hash.
    let mut stored = vec![];
    for f in std::fs::read_dir(&r.env.home).unwrap() {
        let p = f.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("drover.db")
        {
            stored.extend(std::fs::read(&p).unwrap());
        }
    }
    assert!(!stored.is_empty());
    let secret = r.key.secret.as_bytes();
    assert!(
        !stored.windows(secret.len()).any(|w| w == secret),
        "the API key is in the store"
    );
}

#[test]
fn remote_refusals_are_one_line_with_the_right_exit_code() {
    let r = Remote::start();
    let id = "0123abcd";
    // Commands that need this machine's daemon.
    for args in [
        vec!["attach", id],
        vec!["agents"],
        vec!["daemon", "status"],
        vec!["daemon", "stop"],
        vec!["doctor"],
        vec!["lock", "build", "--", "true"],
    ] {
        let out = r.drover(&args, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("does not work against a remote server"),
            "{args:?}: {err}"
        );
        assert_eq!(
            err.lines().filter(|l| l.starts_with("drover:")).count(),
            1,
            "{err}"
        );
    }
    // run without --repo: the checkout is the server's.
    let out = r.drover(&["run", "--agent", "command", "--cmd", "true", "p"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("give --repo"), "{}", stderr(&out));

    // A bad key: exit 2 with the server's message and hint; never the key itself.
    let bad = format!("drv_{}", "ab".repeat(32));
    let out = r.drover(&["ls"], &[("DROVER_API_KEY", &bad)]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("unauthorized"), "{}", stderr(&out));
    assert!(stderr(&out).contains("Bearer"), "{}", stderr(&out));
    assert!(!stderr(&out).contains(&bad));
    // No key at all.
    let out = r.drover(&["ls"], &[("DROVER_API_KEY", "")]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("needs an API key"),
        "{}",
        stderr(&out)
    );

    // Without the private CA the certificate is not trusted: exit 3, naming the server.
    let out = r.drover(&["ls"], &[("DROVER_CA_CERT", "")]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&r.url), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(!err.contains(&r.key.secret));
    // Plain HTTP to the TLS port, and a port nobody listens on: exit 3 naming the URL.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = format!("http://127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);
    let out = r.drover(&["ls"], &[("DROVER_URL", &gone)]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains(&gone), "{}", stderr(&out));
    // Not a URL.
    let out = r.drover(&["ls"], &[("DROVER_URL", "localhost:7420")]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!r.cli_home.join("daemon.sock").exists());
}

#[test]
fn a_tls_handshake_that_never_comes_is_cut() {
    use std::io::Read;
    let r = Remote::start();
    let port: u16 = r.url.rsplit(':').next().unwrap().parse().unwrap();
    let mut idle = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let limit = drover_daemon::listen::TLS_HANDSHAKE_TIMEOUT + std::time::Duration::from_secs(10);
    idle.set_read_timeout(Some(limit)).unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let closed = matches!(idle.read(&mut buf), Ok(0));
    assert!(closed, "not closed within {:?}", started.elapsed());
    // And the server still serves.
    let out = r.drover(&["ls", "--json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
