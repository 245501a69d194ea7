//! The jail's namespaces: a user namespace first (single-id maps of the daemon's own uid and
//! gid, `setgroups` denied), then mount, PID, network, IPC and UTS namespaces owned by it.
//!
//! The user namespace is made also when the daemon runs as root (uid 0 then maps to itself):
//! one code path for every host, and whatever the namespaces grant counts only inside them.

use nix::sched::{unshare, CloneFlags};
use nix::unistd::{getgid, getuid};

/// Moves the calling (single-threaded) process into new namespaces. Its next child is PID 1
/// of the new PID namespace.
pub fn enter() -> Result<(), String> {
    let uid = getuid();
    let gid = getgid();
    unshare(CloneFlags::CLONE_NEWUSER).map_err(|e| {
        format!(
            "cannot create a user namespace: {e} (the kernel or the host forbids it: see \
             `drover doctor`; or set sandbox.isolation = \"none\" on purpose)"
        )
    })?;
    write("/proc/self/setgroups", "deny")?;
    write("/proc/self/uid_map", &format!("{uid} {uid} 1\n"))?;
    write("/proc/self/gid_map", &format!("{gid} {gid} 1\n"))?;
    let rest = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWUTS;
    unshare(rest).map_err(|e| format!("cannot create mount/PID/network namespaces: {e}"))
}

fn write(path: &str, body: &str) -> Result<(), String> {
    std::fs::write(path, body).map_err(|e| format!("writing {path}: {e}"))
}
