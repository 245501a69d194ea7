//! Process identity and signals. A pid alone can be reused; pid + start time cannot.

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

/// The process's start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`), or
/// `None` if there is no such process or it is a zombie.
pub fn start_time(pid: i64) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain anything; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); starttime is field 22.
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// True if `pid` is alive and is the same process that started at `start`.
pub fn same_process(pid: i64, start: i64) -> bool {
    start_time(pid) == Some(start)
}

/// Live members (zombies excluded) of process group `pgid` that are also in session `sid`.
///
/// A task's agent runs in its own group inside its shim's session (the shim calls `setsid`, so
/// the session id is the shim's pid). Requiring both ids means a group number reused by some
/// other program — after a reboot, say — is never mistaken for the agent's.
pub fn group_members(pgid: i64, sid: i64) -> Vec<i64> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    let mut out = vec![];
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<i64>().ok()) else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            if let Some(i) = stat.rfind(')') {
                let f: Vec<&str> = stat[i + 1..].split_whitespace().collect();
                // f[0] state, f[2] pgrp, f[3] session
                let num = |k: usize| f.get(k).and_then(|g| g.parse::<i64>().ok());
                if num(2) == Some(pgid) && num(3) == Some(sid) && f.first() != Some(&"Z") {
                    out.push(pid);
                }
            }
        }
    }
    out
}

/// Sends `sig` to every live member of the agent's group in the shim's session (see
/// [`group_members`]); returns how many were signalled.
pub fn signal_members(pgid: i64, sid: i64, sig: Signal) -> usize {
    group_members(pgid, sid)
        .into_iter()
        .filter(|p| kill(Pid::from_raw(*p as i32), sig).is_ok())
        .count()
}

pub fn parse_signal(name: &str) -> Option<Signal> {
    match name {
        "INT" => Some(Signal::SIGINT),
        "TERM" => Some(Signal::SIGTERM),
        "KILL" => Some(Signal::SIGKILL),
        _ => None,
    }
}

/// Signals a whole process group. Missing groups are not an error.
pub fn signal_group(pgid: i64, sig: Signal) -> std::io::Result<()> {
    if pgid <= 1 {
        return Err(std::io::Error::other(
            "refusing to signal process group <= 1",
        ));
    }
    match killpg(Pid::from_raw(pgid as i32), sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Signals one process if it is still the one that started at `start`.
pub fn signal_process(pid: i64, start: i64, sig: Signal) -> bool {
    same_process(pid, start) && kill(Pid::from_raw(pid as i32), sig).is_ok()
}
