//! PID 1 of the jail's PID namespace: builds the filesystem and network, starts the agent,
//! reaps every orphan, and once the agent has exited ends the rest (TERM, a grace period,
//! then its own exit, on which the kernel kills whatever is left in the namespace).
//!
//! As the namespace's init it gets no signal it has no handler for, from inside or outside;
//! the group's INT/TERM reach the agent directly (it stays in the jail process's group).

use super::{caps, mounts, net, JailRun, SETUP_FAILED};
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::fs::File;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long what the agent left running gets after TERM before the init exits (and the kernel
/// kills the rest): the shim's own grace for leftovers (`run::GRACE`).
const GRACE: Duration = Duration::from_secs(2);

/// How the agent ended, as the init tells the jail process: `c<code>` or `s<signal>`.
pub fn encode(status: &WaitStatus) -> String {
    match status {
        WaitStatus::Signaled(_, sig, _) => format!("s{}", *sig as i32),
        WaitStatus::Exited(_, code) => format!("c{code}"),
        _ => format!("c{SETUP_FAILED}"),
    }
}

/// Runs the init; never returns.
pub fn run(job: &JailRun, mut report: Option<File>, mut status: File) -> ! {
    let setup = || -> Result<(u32, Vec<_>), String> {
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(|e| format!("pdeathsig: {e}"))?;
        nix::sys::prctl::set_dumpable(false).map_err(|e| format!("PR_SET_DUMPABLE: {e}"))?;
        mounts::build(&job.spec)?;
        // A name of its own (UTS namespace): the host's is nobody's business.
        let _ = nix::unistd::sethostname("drover");
        net::lo_up()?;
        let listeners = net::bind(&job.spec.forwards)?;
        let mut cmd = Command::new(&job.program);
        cmd.args(&job.args).current_dir(&job.cwd);
        // SAFETY: caps::drop_all only makes raw prctl/capset syscalls (async-signal-safe, no
        // allocation) in the child between fork and exec.
        unsafe {
            cmd.pre_exec(caps::drop_all);
        }
        let child = cmd.spawn().map_err(|e| {
            format!(
                "cannot run {} in the sandbox: {e} (is it visible there? see sandbox.ro_paths)",
                job.program.to_string_lossy()
            )
        })?;
        Ok((child.id(), listeners))
    };
    let (agent, listeners) = match setup() {
        Ok(v) => v,
        Err(e) => {
            let line = format!("drover jail: {e}");
            eprintln!("{line}");
            if let Some(r) = report.as_mut() {
                let _ = r.write_all(line.as_bytes());
            }
            std::process::exit(SETUP_FAILED);
        }
    };
    // The init keeps its namespace's capabilities only as long as it builds the jail: the
    // agent (same uid) must not be able to borrow them by ptrace or /proc/1/mem — not dumpable,
    // then no capability at all.
    // (Not dumpable since the start of setup.)
    let lock = caps::drop_all().map_err(|e| format!("dropping the init's capabilities: {e}"));
    if let Err(e) = lock {
        let line = format!("drover jail: {e}");
        eprintln!("{line}");
        if let Some(r) = report.as_mut() {
            let _ = r.write_all(line.as_bytes());
        }
        std::process::exit(SETUP_FAILED);
    }
    if let Some(mut r) = report.take() {
        let _ = r.write_all(b"ok");
    }
    net::serve(listeners);
    let agent = Pid::from_raw(agent as i32);
    let ended = loop {
        match waitpid(None, None) {
            Ok(s @ (WaitStatus::Exited(p, _) | WaitStatus::Signaled(p, _, _))) if p == agent => {
                break s
            }
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => break WaitStatus::Exited(agent, SETUP_FAILED),
        }
    };
    // The agent is gone: what it left gets TERM and the grace period, then dies with us.
    let _ = kill(Pid::from_raw(-1), Signal::SIGTERM);
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Err(Errno::ECHILD) => break,
            Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(20)),
            _ => {}
        }
    }
    let _ = status.write_all(encode(&ended).as_bytes());
    std::process::exit(0)
}
