//! Process identity and signals. A pid alone can be reused; pid + start time cannot.
//!
//! `/proc` is read through the `procfs` crate (one parser for `stat`, not a hand-split line).

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use procfs::process::{Process, Stat};
use std::collections::{HashMap, HashSet};

/// `stat` of a live process (`None`: no such process, or a zombie / dead one).
fn live_stat(pid: i64) -> Option<Stat> {
    let pid = i32::try_from(pid).ok().filter(|p| *p > 0)?;
    let stat = Process::new(pid).ok()?.stat().ok()?;
    (!matches!(stat.state, 'Z' | 'X')).then_some(stat)
}

/// `stat` of every live process (zombies excluded).
fn all_live() -> Vec<Stat> {
    let Ok(all) = procfs::process::all_processes() else {
        return vec![];
    };
    all.flatten()
        .filter_map(|p| p.stat().ok())
        .filter(|s| !matches!(s.state, 'Z' | 'X'))
        .collect()
}

/// The process's start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`), or
/// `None` if there is no such process or it is a zombie.
pub fn start_time(pid: i64) -> Option<i64> {
    live_stat(pid).and_then(|s| i64::try_from(s.starttime).ok())
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
    all_live()
        .into_iter()
        .filter(|s| i64::from(s.pgrp) == pgid && i64::from(s.session) == sid)
        .map(|s| i64::from(s.pid))
        .collect()
}

/// Live descendants of `pid` (children, their children, …), found by the parent links in
/// `/proc`. The shim is a sub-reaper, so whatever its agent left behind — even a process that
/// moved to its own group or session — stays its descendant until reaped.
pub fn descendants(pid: i64) -> Vec<i64> {
    descendants_where(pid, |_| true)
}

/// Live descendants of `pid` that are in process group `pgid`.
pub fn descendants_in_group(pid: i64, pgid: i64) -> Vec<i64> {
    descendants_where(pid, |s| i64::from(s.pgrp) == pgid)
}

fn descendants_where(pid: i64, keep: impl Fn(&Stat) -> bool) -> Vec<i64> {
    let all = all_live();
    let mut children: HashMap<i64, Vec<i64>> = HashMap::new();
    for s in &all {
        children
            .entry(i64::from(s.ppid))
            .or_default()
            .push(i64::from(s.pid));
    }
    let kept: HashSet<i64> = all
        .iter()
        .filter(|s| keep(s))
        .map(|s| i64::from(s.pid))
        .collect();
    let mut seen = HashSet::new();
    let mut todo = vec![pid];
    let mut out = vec![];
    while let Some(p) = todo.pop() {
        for &c in children.get(&p).map(Vec::as_slice).unwrap_or_default() {
            if seen.insert(c) {
                if kept.contains(&c) {
                    out.push(c);
                }
                todo.push(c);
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

/// Sends `sig` to every live process of the shim's session (`sid`, the shim's pid) that started
/// no earlier than the shim (`shim_start`), and to every live descendant of the shim if it is
/// still that process: whatever a task left running, also outside the agent's group. Nothing
/// when `sid` now names another process (a reused pid). Returns how many were signalled.
pub fn signal_task_processes(sid: i64, shim_start: i64, sig: Signal) -> usize {
    let shim_alive = match start_time(sid) {
        Some(s) if s != shim_start => return 0,
        Some(_) => true,
        None => false,
    };
    let mut targets: HashSet<i64> = all_live()
        .into_iter()
        .filter(|s| {
            i64::from(s.session) == sid
                && i64::from(s.pid) != sid
                && i64::try_from(s.starttime).is_ok_and(|t| t >= shim_start)
        })
        .map(|s| i64::from(s.pid))
        .collect();
    if shim_alive {
        targets.extend(descendants(sid));
    }
    targets
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::time::{Duration, Instant};

    fn until(what: &str, mut ok: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ok() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn start_time_tells_a_live_process_from_a_missing_one() {
        let me = std::process::id() as i64;
        let start = start_time(me).expect("our own start time");
        assert!(same_process(me, start));
        assert!(!same_process(me, start + 1));
        assert_eq!(start_time(0), None);
        assert_eq!(start_time(i64::from(i32::MAX)), None);
    }

    #[test]
    fn killing_the_group_kills_every_member() {
        // A leader with two background members, all in a group of their own.
        let mut leader = std::process::Command::new("sh")
            .args(["-c", "sleep 1000 & sleep 1000 & wait"])
            .process_group(0)
            .spawn()
            .expect("spawn sh");
        let pgid = leader.id() as i64;
        let sid = Process::myself()
            .expect("self")
            .stat()
            .expect("stat")
            .session;
        let sid = i64::from(sid);
        until("three members", || group_members(pgid, sid).len() == 3);
        assert!(descendants(std::process::id() as i64).contains(&pgid));

        signal_group(pgid, Signal::SIGKILL).expect("killpg");
        leader.wait().expect("reap the leader");
        until("an empty group", || group_members(pgid, sid).is_empty());
        // A group that is gone is not an error; group 0/1 is refused.
        signal_group(pgid, Signal::SIGKILL).expect("a missing group is fine");
        assert!(signal_group(1, Signal::SIGKILL).is_err());
    }

    #[test]
    fn group_members_need_the_session_too() {
        let mut leader = std::process::Command::new("sleep")
            .arg("1000")
            .process_group(0)
            .spawn()
            .expect("spawn sleep");
        let pgid = leader.id() as i64;
        let sid = i64::from(
            Process::myself()
                .expect("self")
                .stat()
                .expect("stat")
                .session,
        );
        until("the member", || group_members(pgid, sid) == vec![pgid]);
        assert!(group_members(pgid, sid + 1).is_empty());
        assert_eq!(signal_members(pgid, sid, Signal::SIGKILL), 1);
        leader.wait().expect("reap");
        assert!(group_members(pgid, sid).is_empty());
    }
}
