//! The shim process. Synchronous on purpose: two threads and no runtime keep it small (< 3 MB).
//!
//! The shim is a *sub-reaper* (`PR_SET_CHILD_SUBREAPER`): whatever the agent starts stays the
//! shim's descendant even if it leaves the agent's process group or session (`setsid`, a double
//! fork) — orphans are re-parented to the shim, not to init. When the agent exits, the shim
//! ends every descendant still alive (TERM, [`GRACE`], KILL; bounded by [`KILL_WAIT`]), reaps
//! them, and only then writes `exit.json`: no task leaves a process behind.

use crate::files::{
    decode, encode, write_atomic, ExitInfo, LaunchFile, ShimCommand, ShimReady, ShimReply,
    TaskFiles,
};
use crate::proc::{descendants, descendants_in_group, parse_signal, signal_group, start_time};
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, IntoRawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type SharedStdin = Arc<Mutex<Option<ChildStdin>>>;

/// How long what the agent left running gets to exit after TERM before it is killed.
pub const GRACE: Duration = Duration::from_secs(2);
/// How long the shim waits for killed leftovers to go before it writes `exit.json` anyway.
pub const KILL_WAIT: Duration = Duration::from_secs(5);
/// How often the shim looks again while it waits for leftovers.
const POLL: Duration = Duration::from_millis(20);

/// Runs the shim for the task directory `dir`; returns the process exit code.
pub fn run(dir: &Path) -> i32 {
    let files = TaskFiles::new(dir);
    match run_inner(&files) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("drover shim: {e}");
            1
        }
    }
}

fn run_inner(files: &TaskFiles) -> std::io::Result<()> {
    let launch: LaunchFile =
        decode("launch.json", &std::fs::read(files.launch())?).map_err(std::io::Error::other)?;
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| std::io::Error::other(format!("cannot become a sub-reaper: {e}")))?;
    let append = |p| OpenOptions::new().create(true).append(true).open(p);
    // Confined: the jail process (this binary's hidden `jail` entry) in the agent's place; it
    // reports its setup on a pipe (its fd 3) before the agent counts as started.
    let jailed = launch.jail.is_some();
    let mut cmd = if jailed {
        let mut c = Command::new(std::env::current_exe()?);
        c.arg("jail").arg("--launch").arg(&files.dir);
        c
    } else {
        let mut c = Command::new(&launch.program);
        c.args(&launch.args);
        c
    };
    cmd.current_dir(&launch.cwd)
        .stdin(Stdio::piped())
        .stdout(append(files.stdout())?)
        .stderr(append(files.stderr())?)
        .process_group(0);
    for k in &launch.env_remove {
        cmd.env_remove(k);
    }
    // A cgroup that cannot be opened is the task's spawn error (below), never a shim crash.
    let opened = open_cgroups(&launch.cgroup_procs);
    let cgroups = opened.as_ref().map(Vec::clone).unwrap_or_default();
    let (report_r, report_w) = match jailed {
        true => {
            let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
            (Some(r), Some(w))
        }
        false => (None, None),
    };
    let report_fd = report_w.as_ref().map(|w| w.as_raw_fd());
    // SAFETY: between fork and exec only write(2) and dup2(2) on fds opened before the fork.
    unsafe {
        cmd.pre_exec(move || {
            for fd in &cgroups {
                // "0": the writing process itself (v1 and v2 alike).
                if libc::write(*fd, b"0".as_ptr().cast(), 1) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if let Some(fd) = report_fd {
                if libc::dup2(fd, crate::jail::REPORT_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let me = std::process::id() as i64;
    let spawned = opened.and_then(|_| cmd.spawn()).and_then(|child| {
        drop(report_w);
        match report_r {
            Some(r) => match jail_report(r) {
                Ok(()) => Ok(child),
                Err(e) => {
                    // The jail could not be built: nothing of it may run on.
                    let pid = Pid::from_raw(child.id() as i32);
                    let _ = nix::sys::signal::killpg(pid, Signal::SIGKILL);
                    let _ = waitpid(pid, None);
                    Err(std::io::Error::other(e))
                }
            },
            None => Ok(child),
        }
    });
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let msg = match jailed {
                true => e.to_string(),
                false => format!("{}: {e}", launch.program),
            };
            let exit = ExitInfo {
                code: None,
                signal: None,
                spawn_error: Some(msg.clone()),
            };
            write_atomic(&files.exit(), &encode(&exit).unwrap_or_default())?;
            let ready = ShimReady {
                shim_pid: me,
                shim_start: start_time(me).unwrap_or(0),
                pid: 0,
                pgid: 0,
                agent_start: 0,
                error: Some(msg),
            };
            announce(&ready);
            return Ok(());
        }
    };
    let pid = child.id() as i64;
    let stdin: SharedStdin = Arc::new(Mutex::new(child.stdin.take()));
    // The agent is waited for below (`wait_agent`), together with the orphans it leaves.
    drop(child);
    write_initial(&stdin, &launch);

    let sock = files.socket();
    // A socket left by an earlier attempt of this task; absent is the usual case.
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock)?;
    std::thread::spawn(move || serve(listener, stdin, Target { me, pid }));
    let ready = ShimReady {
        shim_pid: me,
        shim_start: start_time(me).unwrap_or(0),
        pid,
        pgid: pid,
        agent_start: start_time(pid).unwrap_or(0),
        error: None,
    };
    write_atomic(&files.ready(), &encode(&ready).unwrap_or_default())?;
    announce(&ready);

    let exit = wait_agent(pid);
    // The agent is gone; whatever it left running goes too (no orphans), even what left its
    // group: the shim is their sub-reaper.
    let scope = if launch.keep_detached {
        Leftovers::Group
    } else {
        Leftovers::All
    };
    if !end_leftovers(me, pid, scope) {
        // Still alive after KILL and KILL_WAIT (uninterruptible sleep, or forking faster than
        // they die): say which, in the shim's stderr (the task's `shim.log`).
        let left = match scope {
            Leftovers::All => descendants(me),
            Leftovers::Group => descendants_in_group(me, pid),
        };
        eprintln!("drover shim: processes still alive after KILL: {left:?}");
    }
    // Nobody can talk to a finished agent; a socket already gone is fine.
    let _ = std::fs::remove_file(&sock);
    write_atomic(&files.exit(), &encode(&exit).unwrap_or_default())
}

/// Opens each cgroup's `cgroup.procs` for writing (before the fork: the child only writes).
fn open_cgroups(paths: &[std::path::PathBuf]) -> std::io::Result<Vec<std::os::fd::RawFd>> {
    let mut fds = vec![];
    for p in paths {
        let f = OpenOptions::new().write(true).open(p).map_err(|e| {
            std::io::Error::new(e.kind(), format!("the task's cgroup {}: {e}", p.display()))
        })?;
        // Kept open for the life of the shim (a few fds): the child writes to them after fork.
        fds.push(f.into_raw_fd());
    }
    Ok(fds)
}

/// Reads the jail's setup report: `ok` once the agent was exec'd, else what failed.
fn jail_report(r: std::os::fd::OwnedFd) -> Result<(), String> {
    let mut said = String::new();
    let _ = std::fs::File::from(r).read_to_string(&mut said);
    match said.as_str() {
        "ok" => Ok(()),
        "" => Err("drover jail: it exited before the agent started (see stderr.log)".into()),
        e => Err(e.to_string()),
    }
}

/// Waits for the agent, reaping on the way the orphans re-parented to the shim.
fn wait_agent(pid: i64) -> ExitInfo {
    let agent = Pid::from_raw(pid as i32);
    loop {
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(p, code)) if p == agent => {
                return ExitInfo {
                    code: Some(code),
                    signal: None,
                    spawn_error: None,
                }
            }
            Ok(WaitStatus::Signaled(p, sig, _)) if p == agent => {
                return ExitInfo {
                    code: None,
                    signal: Some(sig as i32),
                    spawn_error: None,
                }
            }
            // An orphan reaped, or a stop/continue report (not asked for): wait on.
            Ok(_) | Err(Errno::EINTR) => {}
            // No child at all: the agent is gone and its status with it.
            Err(_) => {
                return ExitInfo {
                    code: None,
                    signal: None,
                    spawn_error: None,
                }
            }
        }
    }
}

/// Which of the agent's leftovers the shim ends when the agent exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leftovers {
    /// Every descendant of the shim: the agent's group and whatever left it.
    All,
    /// Only the agent's process group ([`LaunchFile::keep_detached`]).
    Group,
}

/// Ends the shim's (`me`) live descendants in `scope`: TERM first, then KILL after [`GRACE`];
/// gives up after [`KILL_WAIT`] more. Reaps as it goes. Returns whether none is left.
pub fn end_leftovers(me: i64, pgid: i64, scope: Leftovers) -> bool {
    let left = || match scope {
        Leftovers::All => descendants(me),
        Leftovers::Group => descendants_in_group(me, pgid),
    };
    // The group as a whole first (the old contract), then each descendant by pid.
    let signal_all = |sig| {
        // A group already gone is not an error; group <= 1 is refused and never ours.
        let _ = signal_group(pgid, sig);
        let left = left();
        for p in &left {
            // ESRCH: it went in the meantime.
            let _ = kill(Pid::from_raw(*p as i32), sig);
        }
        left.is_empty()
    };
    if signal_all(Signal::SIGTERM) {
        reap();
        return true;
    }
    if gone_within(&left, GRACE) {
        return true;
    }
    signal_all(Signal::SIGKILL);
    let deadline = Instant::now() + KILL_WAIT;
    loop {
        // Killed processes may have forked meanwhile: kill again until nothing is left.
        if gone_within(&left, POLL) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        signal_all(Signal::SIGKILL);
    }
}

/// Reaps exited children until `left` finds none alive or `limit` passes.
fn gone_within(left: &impl Fn() -> Vec<i64>, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        reap();
        if left().is_empty() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

/// Collects every exited child without blocking.
fn reap() {
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

/// Sends `sig` to the agent's process group. An agent can leave its group (`setpgid` into the
/// shim's, or `setsid`), so TERM and KILL also go to the agent's pid itself, and KILL to every
/// descendant of the shim — complete, as the shim is their sub-reaper. A process already gone
/// is not an error.
fn signal_agent(target: Target, sig: Signal) -> std::io::Result<()> {
    signal_group(target.pid, sig)?;
    if matches!(sig, Signal::SIGTERM | Signal::SIGKILL) {
        // ESRCH: the agent is gone (a zombie still takes the signal harmlessly).
        let _ = kill(Pid::from_raw(target.pid as i32), sig);
    }
    if sig == Signal::SIGKILL {
        for p in descendants(target.me) {
            // ESRCH: it went in the meantime.
            let _ = kill(Pid::from_raw(p as i32), sig);
        }
    }
    Ok(())
}

/// Prints the ready line for the daemon, then detaches stdout so a dead daemon cannot SIGPIPE us.
fn announce(ready: &ShimReady) {
    let mut out = std::io::stdout();
    let line = String::from_utf8(encode(ready).unwrap_or_default()).unwrap_or_default();
    // A daemon that is gone cannot read it; ready.json has the same facts.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
    if let Ok(null) = OpenOptions::new().write(true).open("/dev/null") {
        use std::os::fd::AsRawFd;
        // SAFETY: dup2 onto fd 1 with a valid open fd; no Rust object owns fd 1 exclusively.
        unsafe { libc::dup2(null.as_raw_fd(), 1) };
    }
}

fn write_initial(stdin: &SharedStdin, launch: &LaunchFile) {
    let Ok(mut guard) = stdin.lock() else { return };
    if let Some(pipe) = guard.as_mut() {
        for line in &launch.stdin_lines {
            if writeln!(pipe, "{line}").is_err() {
                break;
            }
        }
        let _ = pipe.flush();
    }
    if launch.close_stdin {
        *guard = None;
    }
}

/// What a signal from the daemon reaches: the agent (`pid`, also its process group's id) and,
/// for KILL, every descendant of the shim (`me`).
#[derive(Debug, Clone, Copy)]
struct Target {
    me: i64,
    pid: i64,
}

fn serve(listener: UnixListener, stdin: SharedStdin, target: Target) {
    for conn in listener.incoming().flatten() {
        let stdin = stdin.clone();
        std::thread::spawn(move || handle(conn, stdin, target));
    }
}

fn handle(conn: UnixStream, stdin: SharedStdin, target: Target) {
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    for line in BufReader::new(conn).lines() {
        let Ok(line) = line else { return };
        let reply = match serde_json::from_str::<ShimCommand>(&line) {
            Ok(cmd) => apply(cmd, &stdin, target),
            Err(e) => Err(format!("bad command: {e}")),
        };
        let reply = match reply {
            Ok(()) => ShimReply {
                ok: true,
                error: None,
            },
            Err(e) => ShimReply {
                ok: false,
                error: Some(e),
            },
        };
        let body = serde_json::to_string(&reply).unwrap_or_default();
        if writeln!(writer, "{body}").is_err() {
            return;
        }
    }
}

fn apply(cmd: ShimCommand, stdin: &SharedStdin, target: Target) -> Result<(), String> {
    match cmd {
        ShimCommand::Ping => Ok(()),
        ShimCommand::Write { line } => {
            let mut guard = stdin
                .lock()
                .map_err(|_| "stdin lock poisoned".to_string())?;
            let pipe = guard.as_mut().ok_or("the agent's stdin is closed")?;
            writeln!(pipe, "{line}")
                .and_then(|_| pipe.flush())
                .map_err(|e| format!("write to agent: {e}"))
        }
        ShimCommand::CloseStdin => {
            let mut guard = stdin
                .lock()
                .map_err(|_| "stdin lock poisoned".to_string())?;
            *guard = None;
            Ok(())
        }
        ShimCommand::Signal { signal } => {
            let sig = parse_signal(&signal).ok_or_else(|| format!("unknown signal {signal}"))?;
            signal_agent(target, sig).map_err(|e| e.to_string())
        }
    }
}
