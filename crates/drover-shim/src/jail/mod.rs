//! The jail: how a confined agent (or gate) runs (docs/design.md §11).
//!
//! The shim does not start a confined agent itself: it starts `EXE jail --launch DIR` (the same
//! binary, a hidden entry), the *jail process*, in the agent's process group. The jail process
//! - makes a user namespace mapping the daemon's uid and gid to themselves (single-id maps,
//!   `setgroups` denied; also when the daemon is root, so the agent's capabilities, if any were
//!   left, would only count in that namespace), then new mount, PID, network, IPC and UTS
//!   namespaces ([`userns`]);
//! - forks the *init*, PID 1 of the new PID namespace ([`init`]), and waits for it: it
//!   survives INT and TERM (the group's signals reach the agent directly) and ends with the
//!   agent's status (exit code, or the same signal). KILL of the group kills the init, and the
//!   kernel then kills everything left in the namespace — nothing started by the agent, not even
//!   after `setsid`, survives;
//! - the init builds the agent's filesystem on a tmpfs and `pivot_root`s into it ([`mounts`]),
//!   brings `lo` up and runs the loopback forwarders ([`net`]), then starts the agent with
//!   `no_new_privs` and no capabilities ([`caps`]), reaps every orphan and, once the agent has
//!   exited, ends the rest (TERM, then KILL by leaving).
//!
//! Setup is reported on a pipe (fd 3 of the jail process) to the shim: `ok` once the agent was
//! exec'd, or one line saying which step failed — the shim turns that into the task's
//! `spawn_error`; an agent never runs unconfined because the jail could not be built.

pub mod caps;
pub mod init;
pub mod mounts;
pub mod net;
pub mod userns;

use crate::files::{decode, JailSpec, LaunchFile, TaskFiles};
use nix::sys::signal::{signal, SigHandler, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The exit code of a jail that could not be set up (the message is on its stderr).
pub const SETUP_FAILED: i32 = 125;
/// The fd on which the jail process reports its setup to the shim.
pub const REPORT_FD: i32 = 3;

/// What runs in the jail.
#[derive(Debug, Clone)]
pub struct JailRun {
    pub spec: JailSpec,
    pub program: OsString,
    pub args: Vec<OsString>,
    pub cwd: PathBuf,
}

/// The hidden entry's arguments: `--launch DIR` (from the shim: the task's launch file; setup
/// reported on fd 3) or `--spec FILE -- PROGRAM ARGS…` (gates: a JailSpec file and a command,
/// run in the checkout). Returns the process exit code.
pub fn main_args(args: &[OsString]) -> i32 {
    match parse(args) {
        Ok((job, from_shim)) => run(&job, report_pipe(from_shim)),
        Err(e) => {
            eprintln!("drover jail: {e}");
            2
        }
    }
}

fn parse(args: &[OsString]) -> Result<(JailRun, bool), String> {
    let usage = "usage: drover jail --launch TASK_DIR | --spec FILE -- PROGRAM [ARGS…]";
    match args.first().and_then(|a| a.to_str()) {
        Some("--launch") => {
            let dir = args.get(1).ok_or(usage)?;
            let files = TaskFiles::new(Path::new(dir));
            let body = std::fs::read(files.launch()).map_err(|e| format!("launch.json: {e}"))?;
            let launch: LaunchFile = decode("launch.json", &body).map_err(|e| e.to_string())?;
            let spec = launch.jail.ok_or("launch.json has no jail")?;
            let job = JailRun {
                spec,
                program: launch.program.into(),
                args: launch.args.into_iter().map(OsString::from).collect(),
                cwd: launch.cwd,
            };
            Ok((job, true))
        }
        Some("--spec") => {
            let file = Path::new(args.get(1).ok_or(usage)?);
            if args.get(2).and_then(|a| a.to_str()) != Some("--") {
                return Err(usage.into());
            }
            let program = args.get(3).ok_or(usage)?.clone();
            let body = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
            let spec: JailSpec =
                serde_json::from_slice(&body).map_err(|e| format!("jail spec: {e}"))?;
            let cwd = spec.checkout.clone();
            let job = JailRun {
                spec,
                program,
                args: args[4..].to_vec(),
                cwd,
            };
            Ok((job, false))
        }
        _ => Err(usage.into()),
    }
}

/// The report pipe the shim passed as fd 3, if this jail was started by a shim.
fn report_pipe(from_shim: bool) -> Option<File> {
    if !from_shim {
        return None;
    }
    // SAFETY: fcntl(F_GETFD) only asks whether fd 3 is open.
    if unsafe { libc::fcntl(REPORT_FD, libc::F_GETFD) } < 0 {
        return None;
    }
    // SAFETY: the shim dup2s its report pipe to fd 3 for this process; nothing else here owns
    // it. Close-on-exec from now on: the agent must not inherit it.
    unsafe {
        libc::fcntl(REPORT_FD, libc::F_SETFD, libc::FD_CLOEXEC);
        Some(File::from(OwnedFd::from_raw_fd(REPORT_FD)))
    }
}

extern "C" fn ignore(_: libc::c_int) {}

/// Marks every descriptor above stderr close-on-exec: what the jail process inherited (the
/// daemon's and the shim's, and whatever started the daemon: an open directory of the host is a
/// way around the jail's whole filesystem through `/proc/self/fd`) never reaches the agent.
fn cloexec_inherited() -> Result<(), String> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range with the CLOEXEC flag only sets a descriptor flag on open fds.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if rc == 0 {
        return Ok(());
    }
    // Kernels before 5.11: each open descriptor, as /proc lists them (collected first: the
    // listing itself holds one).
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| format!("listing /proc/self/fd: {e}"))?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: F_SETFD on a descriptor number; one that closed meanwhile just fails.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}

/// Runs the jail process: namespaces, the init, and the agent's status as this process's.
fn run(job: &JailRun, mut report: Option<File>) -> i32 {
    let fail = |report: &mut Option<File>, e: String| {
        let line = format!("drover jail: {e}");
        eprintln!("{line}");
        if let Some(r) = report.as_mut() {
            let _ = r.write_all(line.as_bytes());
        }
        SETUP_FAILED
    };
    // Survive the group's INT/TERM/HUP (they reach the agent itself); a handler, not SIG_IGN,
    // so that the agent (exec) starts with the default dispositions.
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler does nothing, which is async-signal-safe.
        let _ = unsafe { signal(sig, SigHandler::Handler(ignore)) };
    }
    if let Err(e) = cloexec_inherited().and_then(|()| userns::enter()) {
        return fail(&mut report, e);
    }
    let (status_r, status_w) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => return fail(&mut report, format!("pipe: {e}")),
    };
    // SAFETY: this process is single-threaded (the jail entry starts no thread), so the child
    // may run arbitrary code after fork.
    match unsafe { fork() } {
        Err(e) => fail(&mut report, format!("fork: {e}")),
        Ok(ForkResult::Child) => {
            drop(status_r);
            init::run(job, report, File::from(status_w))
        }
        Ok(ForkResult::Parent { child }) => {
            drop(report);
            drop(status_w);
            let mut said = String::new();
            let _ = File::from(status_r).read_to_string(&mut said);
            let init = loop {
                match waitpid(child, None) {
                    Err(nix::errno::Errno::EINTR) => {}
                    other => break other,
                }
            };
            let (code, sig) = match (said.strip_prefix('c'), said.strip_prefix('s'), init) {
                (Some(c), _, _) => (c.parse().unwrap_or(SETUP_FAILED), None),
                (_, Some(s), _) => (128, s.parse::<i32>().ok()),
                (_, _, Ok(WaitStatus::Signaled(_, s, _))) => (128, Some(s as i32)),
                (_, _, Ok(WaitStatus::Exited(_, c))) => {
                    (if c == 0 { SETUP_FAILED } else { c }, None)
                }
                _ => (SETUP_FAILED, None),
            };
            if let Some(sig) = sig.and_then(|s| Signal::try_from(s).ok()) {
                // End the way the agent did, so the shim records the same signal.
                // SAFETY: restoring the default action of a signal.
                let _ = unsafe { signal(sig, SigHandler::SigDfl) };
                let _ = nix::sys::signal::raise(sig);
                return 128 + sig as i32;
            }
            code
        }
    }
}
