//! One task's group: its limits, what it used, ending everything in it, removing it.

use crate::{io, CgroupError, Controller};
use drover_types::Limits;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The CFS period drover uses for `--cpus` (100 ms, the kernel's default).
const PERIOD_US: u64 = 100_000;
const POLL: Duration = Duration::from_millis(10);

/// A task's cgroup: one directory on v2, one per controller hierarchy on v1.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskGroup {
    V2(PathBuf),
    V1(V1Group),
}

/// The task's directory in each v1 hierarchy that is usable here (co-mounted controllers, e.g.
/// `cpu,cpuacct`, share one).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct V1Group {
    pub memory: Option<PathBuf>,
    pub pids: Option<PathBuf>,
    pub cpu: Option<PathBuf>,
    pub cpuacct: Option<PathBuf>,
    pub freezer: Option<PathBuf>,
}

/// What the task's processes used, read when they are gone (before the group is removed).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stats {
    /// The most memory the group held at once (v2 `memory.peak`, else `memory.current` at the
    /// time of reading; v1 `memory.max_usage_in_bytes`).
    pub peak_memory_bytes: Option<u64>,
    /// CPU time, user + system (v2 `cpu.stat usage_usec`, v1 `cpuacct.usage`).
    pub cpu_seconds: Option<f64>,
    /// How many of its processes the OOM killer ended (v2 `memory.events oom_kill`, v1
    /// `memory.oom_control oom_kill`).
    pub oom_kills: u64,
}

impl TaskGroup {
    /// Every distinct directory of the group.
    pub fn dirs(&self) -> Vec<PathBuf> {
        match self {
            TaskGroup::V2(d) => vec![d.clone()],
            TaskGroup::V1(g) => {
                let mut v: Vec<PathBuf> = [&g.memory, &g.pids, &g.cpu, &g.cpuacct, &g.freezer]
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect();
                v.dedup();
                let mut seen = vec![];
                v.retain(|d| {
                    let new = !seen.contains(d);
                    seen.push(d.clone());
                    new
                });
                v
            }
        }
    }

    /// The `cgroup.procs` files the agent's first process is written to
    /// (`LaunchFile::cgroup_procs`).
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs()
            .into_iter()
            .map(|d| d.join("cgroup.procs"))
            .collect()
    }

    pub fn exists(&self) -> bool {
        self.dirs().iter().any(|d| d.is_dir())
    }

    pub(crate) fn make(&self) -> Result<(), CgroupError> {
        for d in self.dirs() {
            std::fs::create_dir_all(&d).map_err(io(&d))?;
        }
        Ok(())
    }

    /// The controllers this group has.
    pub fn controllers(&self) -> Vec<Controller> {
        match self {
            TaskGroup::V2(d) => {
                let have =
                    std::fs::read_to_string(d.join("cgroup.controllers")).unwrap_or_default();
                Controller::ALL
                    .into_iter()
                    .filter(|c| have.split_whitespace().any(|w| w == c.as_str()))
                    .collect()
            }
            TaskGroup::V1(g) => {
                let mut v = vec![];
                if g.memory.is_some() {
                    v.push(Controller::Memory);
                }
                if g.pids.is_some() {
                    v.push(Controller::Pids);
                }
                if g.cpu.is_some() && g.cpuacct.is_some() {
                    v.push(Controller::Cpu);
                }
                v
            }
        }
    }

    /// Sets the limits asked for; a limit that cannot be written is an error.
    pub fn apply(&self, limits: &Limits) -> Result<(), CgroupError> {
        let quota = limits
            .cpus
            .map(|c| ((c * PERIOD_US as f64).round() as u64).max(1_000));
        match self {
            TaskGroup::V2(d) => {
                if let Some(m) = limits.memory_bytes {
                    write(&d.join("memory.max"), &m.to_string())?;
                    // No swap: the limit is the memory the task really has. Absent without
                    // swap accounting: nothing to turn off then.
                    let swap = d.join("memory.swap.max");
                    if swap.exists() {
                        write(&swap, "0")?;
                    }
                }
                if let Some(p) = limits.pids {
                    write(&d.join("pids.max"), &p.to_string())?;
                }
                if let Some(q) = quota {
                    write(&d.join("cpu.max"), &format!("{q} {PERIOD_US}"))?;
                }
            }
            TaskGroup::V1(g) => {
                if let (Some(m), Some(d)) = (limits.memory_bytes, &g.memory) {
                    write(&d.join("memory.limit_in_bytes"), &m.to_string())?;
                    // memory + swap at the same figure: no swap (only with swap accounting).
                    let memsw = d.join("memory.memsw.limit_in_bytes");
                    if memsw.exists() {
                        write(&memsw, &m.to_string())?;
                    }
                }
                if let (Some(p), Some(d)) = (limits.pids, &g.pids) {
                    write(&d.join("pids.max"), &p.to_string())?;
                }
                if let (Some(q), Some(d)) = (quota, &g.cpu) {
                    write(&d.join("cpu.cfs_period_us"), &PERIOD_US.to_string())?;
                    write(&d.join("cpu.cfs_quota_us"), &q.to_string())?;
                }
            }
        }
        Ok(())
    }

    /// What the group used; a figure this host does not keep is `None`.
    pub fn stats(&self) -> Stats {
        let num =
            |p: PathBuf| -> Option<u64> { std::fs::read_to_string(p).ok()?.trim().parse().ok() };
        match self {
            TaskGroup::V2(d) => Stats {
                // Before Linux 5.19 there is no memory.peak: the caller's samples of
                // `memory.current` stand in ([`crate::Cgroups::sample`]).
                peak_memory_bytes: num(d.join("memory.peak")),
                cpu_seconds: std::fs::read_to_string(d.join("cpu.stat"))
                    .ok()
                    .and_then(|s| keyed(&s, "usage_usec"))
                    .map(|us| us as f64 / 1e6),
                oom_kills: std::fs::read_to_string(d.join("memory.events"))
                    .ok()
                    .and_then(|s| keyed(&s, "oom_kill"))
                    .unwrap_or(0),
            },
            TaskGroup::V1(g) => Stats {
                peak_memory_bytes: g
                    .memory
                    .as_ref()
                    .and_then(|d| num(d.join("memory.max_usage_in_bytes"))),
                cpu_seconds: g
                    .cpuacct
                    .as_ref()
                    .and_then(|d| num(d.join("cpuacct.usage")))
                    .map(|ns| ns as f64 / 1e9),
                oom_kills: g
                    .memory
                    .as_ref()
                    .and_then(|d| std::fs::read_to_string(d.join("memory.oom_control")).ok())
                    .and_then(|s| keyed(&s, "oom_kill"))
                    .unwrap_or(0),
            },
        }
    }

    /// Memory the group holds now, where the host keeps no peak of its own (v2 before Linux
    /// 5.19: no `memory.peak`); `None` otherwise.
    pub fn current_without_peak(&self) -> Option<u64> {
        match self {
            TaskGroup::V2(d) if !d.join("memory.peak").exists() => {
                std::fs::read_to_string(d.join("memory.current"))
                    .ok()?
                    .trim()
                    .parse()
                    .ok()
            }
            _ => None,
        }
    }

    /// The processes in the group now (every hierarchy's, merged).
    pub fn pids(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self
            .procs_files()
            .iter()
            .filter_map(|f| std::fs::read_to_string(f).ok())
            .flat_map(|s| {
                s.lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Ends every process in the group — also those that left the agent's session
    /// (`setsid`), ignore TERM, or fork as they die — and waits up to `wait` for it to be
    /// empty. v2: `cgroup.kill`; v1: freeze (if the freezer is mounted), KILL each, thaw, and
    /// KILL again until empty. Returns whether the group is empty.
    pub fn kill(&self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        match self {
            TaskGroup::V2(d) => {
                let knob = d.join("cgroup.kill");
                if !knob.exists() || std::fs::write(&knob, "1").is_err() {
                    // Before Linux 5.14: by hand, as on v1.
                    kill_each(&self.pids());
                }
            }
            TaskGroup::V1(g) => {
                if let Some(f) = &g.freezer {
                    let state = f.join("freezer.state");
                    if std::fs::write(&state, "FROZEN").is_ok() {
                        // Frozen, nothing can fork between reading the list and the KILLs.
                        let frozen = Instant::now() + Duration::from_secs(1);
                        while Instant::now() < frozen
                            && !std::fs::read_to_string(&state).is_ok_and(|s| s.trim() == "FROZEN")
                        {
                            std::thread::sleep(POLL);
                        }
                        kill_each(&self.pids());
                        let _ = std::fs::write(&state, "THAWED");
                    }
                }
            }
        }
        loop {
            let left = self.pids();
            if left.is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            kill_each(&left);
            std::thread::sleep(POLL);
        }
    }

    /// Removes the group (it must be empty: [`TaskGroup::kill`] first). Gone already is fine.
    pub fn remove(&self) -> Result<(), CgroupError> {
        for d in self.dirs() {
            match std::fs::remove_dir(&d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(CgroupError::Io { path: d, source: e }),
            }
            // The daemon's `drover/<instance>` too once its last task is gone (busy or not
            // empty otherwise: fine).
            if let Some(parent) = d.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
        Ok(())
    }
}

fn kill_each(pids: &[i32]) {
    for p in pids {
        if *p > 1 {
            // ESRCH: gone meanwhile.
            let _ = kill(Pid::from_raw(*p), Signal::SIGKILL);
        }
    }
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(io(path))
}

/// `key N` in a flat-keyed cgroup file (`cpu.stat`, `memory.events`, `memory.oom_control`).
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A v2 group as a plain directory: only the file formats are exercised (this machine has
    /// no unified hierarchy with controllers).
    fn fake_v2() -> (tempfile::TempDir, TaskGroup) {
        let dir = tempfile::tempdir().unwrap();
        let g = dir.path().join("t1");
        std::fs::create_dir(&g).unwrap();
        for (f, v) in [
            ("cgroup.controllers", "cpu memory pids\n"),
            ("cgroup.procs", ""),
            ("memory.max", "max\n"),
            ("memory.swap.max", "max\n"),
            ("pids.max", "max\n"),
            ("cpu.max", "max 100000\n"),
            ("memory.peak", "268435456\n"),
            (
                "cpu.stat",
                "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n",
            ),
            (
                "memory.events",
                "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n",
            ),
        ] {
            std::fs::write(g.join(f), v).unwrap();
        }
        (dir, TaskGroup::V2(g))
    }

    #[test]
    fn v2_limits_are_written_in_the_kernels_format() {
        let (_dir, g) = fake_v2();
        let TaskGroup::V2(d) = &g else { panic!() };
        g.apply(&Limits {
            memory_bytes: Some(64 << 20),
            cpus: Some(0.5),
            pids: Some(64),
        })
        .unwrap();
        let read = |f: &str| std::fs::read_to_string(d.join(f)).unwrap();
        assert_eq!(read("memory.max"), "67108864");
        assert_eq!(read("memory.swap.max"), "0");
        assert_eq!(read("pids.max"), "64");
        assert_eq!(read("cpu.max"), "50000 100000");
        assert_eq!(
            g.controllers(),
            vec![Controller::Memory, Controller::Pids, Controller::Cpu]
        );
    }

    #[test]
    fn v2_stats_are_read_and_memory_current_is_sampled_only_without_a_peak() {
        let (_dir, g) = fake_v2();
        let s = g.stats();
        assert_eq!(s.peak_memory_bytes, Some(268_435_456));
        assert_eq!(s.cpu_seconds, Some(2.5));
        assert_eq!(s.oom_kills, 1);
        let TaskGroup::V2(d) = &g else { panic!() };
        std::fs::write(d.join("memory.current"), "4096\n").unwrap();
        assert_eq!(g.current_without_peak(), None);
        std::fs::remove_file(d.join("memory.peak")).unwrap();
        assert_eq!(g.current_without_peak(), Some(4096));
        assert_eq!(g.stats().peak_memory_bytes, None);
    }

    #[test]
    fn v2_kill_writes_cgroup_kill_and_an_empty_group_is_done() {
        let (_dir, g) = fake_v2();
        let TaskGroup::V2(d) = &g else { panic!() };
        std::fs::write(d.join("cgroup.kill"), "").unwrap();
        assert!(g.kill(Duration::from_millis(100)));
        assert_eq!(std::fs::read_to_string(d.join("cgroup.kill")).unwrap(), "1");
    }

    #[test]
    fn keyed_files_are_parsed_by_key_not_position() {
        let oom_control = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed(oom_control, "oom_kill"), Some(3));
        assert_eq!(keyed(oom_control, "nope"), None);
    }
}
