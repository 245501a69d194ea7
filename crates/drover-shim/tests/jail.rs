//! The jail's mechanics against the real binary (docs/design.md §11): what a confined process
//! sees, can write and can reach; its exit status and signals; the shim's setup report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use drover_shim::files::encode_pretty;
use drover_shim::{ExitInfo, Forward, JailSpec, LaunchFile, ShimReady, TaskFiles};
use drover_test_support::poll::some;

mod common;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

struct Jail {
    tmp: tempfile::TempDir,
    spec: JailSpec,
}

impl Jail {
    fn new() -> Jail {
        let tmp = tempfile::tempdir().unwrap();
        let p = |s: &str| {
            let d = tmp.path().join(s);
            std::fs::create_dir_all(&d).unwrap();
            d
        };
        let spec = JailSpec {
            checkout: p("checkout"),
            home: p("home"),
            home_at: PathBuf::from("/home/agent"),
            run_dir: p("run"),
            ..JailSpec::default()
        };
        std::fs::write(tmp.path().join("secret"), "s3cret").unwrap();
        std::fs::write(spec.checkout.join("mine.txt"), "mine").unwrap();
        Jail { tmp, spec }
    }

    /// Runs `sh -c script` in the jail (`drover-shim jail --spec FILE -- …`).
    fn sh(&self, script: &str) -> Output {
        let file = self.tmp.path().join("spec.json");
        std::fs::write(&file, serde_json::to_vec(&self.spec).unwrap()).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_drover-shim"))
            .args(["jail", "--spec"])
            .arg(&file)
            .args(["--", "/bin/sh", "-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drover_test_support::process::finish_within(child, Duration::from_secs(60), "jail")
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn the_agent_is_pid_one_s_child_without_privileges_in_its_checkout() {
    let j = Jail::new();
    let o = j.sh("echo $$; pwd; grep -E '^Cap(Eff|Prm|Bnd|Amb)' /proc/self/status; grep NoNewPrivs /proc/self/status; ls /proc | grep -cE '^[0-9]+$'");
    assert!(o.status.success(), "{o:?}");
    let out = stdout(&o);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("2"), "{out}");
    assert_eq!(lines.next(), j.spec.checkout.to_str(), "{out}");
    for cap in ["CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert!(out.contains(&format!("{cap}:\t0000000000000000")), "{out}");
    }
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    // init, sh, grep/ls: only the jail's own processes.
    let procs: usize = out.lines().last().unwrap().parse().unwrap();
    assert!(procs <= 4, "{out}");
}

#[test]
fn only_the_checkout_home_and_tmp_are_writable_and_the_host_is_hidden() {
    let j = Jail::new();
    let secret = j.tmp.path().join("secret");
    let o = j.sh(&format!(
        "cat mine.txt && echo new > new.txt && touch $HOME_AT/h /tmp/t /run/drover/r && \
         ! cat {s} 2>/dev/null && ! touch /usr/x 2>/dev/null && ! touch /etc/x 2>/dev/null && \
         ! touch /x 2>/dev/null && ! test -s /etc/shadow && ! ls /sys/fs 2>/dev/null && echo fine",
        s = secret.display()
    )
    .replace("$HOME_AT", "/home/agent"));
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).ends_with("fine"), "{o:?}");
    assert_eq!(
        std::fs::read_to_string(j.spec.checkout.join("new.txt")).unwrap(),
        "new\n"
    );
    assert!(j.spec.home.join("h").exists());
    assert!(j.spec.run_dir.join("r").exists());
}

#[test]
fn ro_paths_are_read_only_rw_paths_writable_hidden_masked() {
    let mut j = Jail::new();
    let ro = j.tmp.path().join("ro");
    let rw = j.tmp.path().join("rw");
    let hidden = ro.join("hidden.txt");
    for d in [&ro, &rw] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(ro.join("a"), "a").unwrap();
    std::fs::write(&hidden, "h").unwrap();
    j.spec.ro_paths = vec![ro.clone()];
    j.spec.rw_paths = vec![rw.clone()];
    j.spec.hidden = vec![hidden.clone()];
    let o = j.sh(&format!(
        "cat {ro}/a && ! touch {ro}/b 2>/dev/null && touch {rw}/c && test ! -s {h} && echo fine",
        ro = ro.display(),
        rw = rw.display(),
        h = hidden.display()
    ));
    assert!(stdout(&o).ends_with("fine"), "{o:?}");
    assert!(rw.join("c").exists());
    assert!(!ro.join("b").exists());
}

#[test]
fn the_agent_cannot_reach_into_its_init() {
    let j = Jail::new();
    let o = j.sh("cat /proc/1/environ >/dev/null 2>&1 && echo LEAK-environ; \
         head -c1 /proc/1/mem >/dev/null 2>&1 && echo LEAK-mem; \
         grep -E '^CapEff' /proc/1/status; kill -KILL 1; kill -0 1 && echo init-alive");
    let out = stdout(&o);
    assert!(!out.contains("LEAK"), "{out}");
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    assert!(out.contains("init-alive"), "{out}");
}

#[test]
fn exit_codes_and_signals_are_the_agents() {
    let j = Jail::new();
    assert_eq!(j.sh("exit 7").status.code(), Some(7));
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(j.sh("kill -TERM $$").status.signal(), Some(15));
}

#[test]
fn a_forward_relays_loopback_to_its_unix_socket_and_nothing_else_is_reachable() {
    let mut j = Jail::new();
    let sock = j.spec.run_dir.join("svc.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let server = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).unwrap();
        c.write_all(b"pong:").unwrap();
        c.write_all(&buf).unwrap();
    });
    j.spec.forwards = vec![Forward {
        port: 4567,
        socket: PathBuf::from("/run/drover/svc.sock"),
    }];
    let host = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = host.local_addr().unwrap().port();
    // bash: /bin/sh may not speak /dev/tcp.
    let o = j.sh(&format!(
        "exec bash -c 'exec 3<>/dev/tcp/127.0.0.1/4567 && printf hello >&3 && head -c 10 <&3; echo; \
         if (exec 4<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null; then echo LEAK; fi'"
    ));
    server.join().unwrap();
    let out = stdout(&o);
    assert!(out.contains("pong:hello"), "{o:?}");
    assert!(!out.contains("LEAK"), "{o:?}");
}

#[test]
fn a_shim_reports_a_jail_that_cannot_start_the_agent_as_a_spawn_error() {
    let j = Jail::new();
    let files = TaskFiles::new(j.tmp.path().join("task"));
    std::fs::create_dir_all(&files.dir).unwrap();
    let launch = jailed(j.spec, "/no/such/agent", &[]);
    std::fs::write(files.launch(), encode_pretty(&launch).unwrap()).unwrap();
    let ready = start_shim(&files);
    let err = ready.error.unwrap();
    assert!(err.contains("/no/such/agent"), "{err}");
    let exit: ExitInfo = some(
        "exit.json",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || files.read_exit().unwrap(),
    );
    assert!(exit.spawn_error.is_some());
}

#[test]
fn a_shim_runs_a_confined_agent_and_its_group_signal_reaches_it() {
    let j = Jail::new();
    let files = TaskFiles::new(j.tmp.path().join("task"));
    std::fs::create_dir_all(&files.dir).unwrap();
    let launch = jailed(
        j.spec,
        "/bin/sh",
        &[
            "-c",
            "trap 'echo got-term; exit 5' TERM; echo up; while :; do sleep 0.05; done",
        ],
    );
    std::fs::write(files.launch(), encode_pretty(&launch).unwrap()).unwrap();
    let ready = start_shim(&files);
    assert!(ready.error.is_none(), "{ready:?}");
    some(
        "the agent's first line",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || {
            std::fs::read_to_string(files.stdout())
                .ok()
                .filter(|s| s.contains("up"))
        },
    );
    let client = drover_shim::ShimClient::new(TaskFiles::new(files.dir.clone()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(client.signal("TERM")).unwrap();
    let exit: ExitInfo = some(
        "exit.json",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || files.read_exit().unwrap(),
    );
    assert_eq!(exit.code, Some(5), "{exit:?}");
    assert!(std::fs::read_to_string(files.stdout())
        .unwrap()
        .contains("got-term"));
    assert!(!drover_shim::proc::same_process(
        ready.pid,
        ready.agent_start
    ));
}

/// A launch of `program args` confined by `spec`, in its checkout, stdin closed.
fn jailed(spec: JailSpec, program: &str, args: &[&str]) -> LaunchFile {
    LaunchFile {
        program: program.into(),
        args: args.iter().map(|a| a.to_string()).collect(),
        cwd: spec.checkout.clone(),
        env_remove: vec![],
        stdin_lines: vec![],
        close_stdin: true,
        keep_detached: false,
        jail: Some(spec),
        cgroup_procs: vec![],
    }
}

fn start_shim(files: &TaskFiles) -> ShimReady {
    let (shim, ready) = common::start(files);
    let mut shim = shim;
    std::thread::spawn(move || shim.wait());
    ready
}

#[test]
fn the_jail_adds_milliseconds_to_a_start() {
    let j = Jail::new();
    let median = |f: &dyn Fn() -> Output| {
        let mut ms: Vec<f64> = (0..15)
            .map(|_| {
                let t = std::time::Instant::now();
                assert!(f().status.success());
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        ms.sort_by(|a, b| a.total_cmp(b));
        ms[7]
    };
    let jailed = median(&|| j.sh("true"));
    let plain = median(&|| {
        Command::new("/bin/sh")
            .args(["-c", "true"])
            .output()
            .unwrap()
    });
    println!(
        "sh -c true: {plain:.1} ms plain, {jailed:.1} ms in the jail (+{:.1} ms)",
        jailed - plain
    );
    assert!(jailed - plain < 500.0, "{jailed} vs {plain}");
}

/// Most hosts run the daemon as a normal user: the same jail, built without any privilege.
#[test]
fn an_unprivileged_user_gets_the_same_jail() {
    if !nix::unistd::Uid::effective().is_root() {
        // Already unprivileged: every other test here is this one.
        return;
    }
    let Ok(setpriv) = which("setpriv") else {
        println!("SKIPPED: no setpriv to drop to an unprivileged user");
        return;
    };
    let j = Jail::new();
    use std::os::unix::fs::PermissionsExt;
    let open = std::fs::Permissions::from_mode(0o777);
    for p in [
        j.tmp.path(),
        &j.spec.checkout,
        &j.spec.home,
        &j.spec.run_dir,
    ] {
        std::fs::set_permissions(p, open.clone()).unwrap();
    }
    // The test binary's directory may not be reachable by nobody: a copy in the temp dir.
    let bin = j.tmp.path().join("drover-shim");
    std::fs::copy(env!("CARGO_BIN_EXE_drover-shim"), &bin).unwrap();
    let file = j.tmp.path().join("spec.json");
    std::fs::write(&file, serde_json::to_vec(&j.spec).unwrap()).unwrap();
    std::fs::set_permissions(&file, open).unwrap();
    let child = Command::new(setpriv)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args(["jail", "--spec"])
        .arg(&file)
        .args(["--", "/bin/sh", "-c"])
        .arg("id -u; echo $$; echo x > made.txt && ! touch /usr/x 2>/dev/null && echo fine")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let o = drover_test_support::process::finish_within(child, Duration::from_secs(60), "jail");
    assert_eq!(stdout(&o), "65534\n2\nfine", "{o:?}");
    assert!(j.spec.checkout.join("made.txt").exists());
}

fn which(name: &str) -> Result<PathBuf, ()> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| PathBuf::from(d).join(name))
        .find(|p| p.is_file())
        .ok_or(())
}

/// Whatever the jail process inherited (the daemon keeps the fds of whoever started it): an open
/// directory of the host, passed into the jail, is a way around its whole filesystem
/// (`/proc/self/fd/N/…`). The agent gets stdin, stdout and stderr, nothing else.
#[test]
fn no_inherited_descriptor_reaches_the_agent() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let j = Jail::new();
    let file = j.tmp.path().join("spec.json");
    std::fs::write(&file, serde_json::to_vec(&j.spec).unwrap()).unwrap();
    let host = std::fs::File::open(j.tmp.path()).unwrap();
    let fd = host.as_raw_fd();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_drover-shim"));
    cmd.args(["jail", "--spec"])
        .arg(&file)
        .args(["--", "/bin/sh", "-c"])
        .arg("cat /proc/self/fd/7/secret; ls /proc/self/fd | sort -n | tr '\\n' ' '")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: dup2 of a descriptor this test owns onto fd 7 of the child, between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, 7) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    let o = drover_test_support::process::finish_within(child, Duration::from_secs(60), "jail");
    let out = stdout(&o);
    assert!(!out.contains("s3cret"), "{out}");
    // sh's own descriptors: 0, 1, 2 and the one ls lists through (3).
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["0", "1", "2", "3"],
        "{out}"
    );
}
