//! A cgroup per task (docs/design.md §11, "Limits"): one interface over cgroup v2 and the v1
//! `memory` / `pids` / `cpu` / `cpuacct` (+ `freezer`) controllers.
//!
//! Each task's group is `<parent>/drover/<instance>/<task id>`, where `<instance>` is a hash of
//! the daemon's `DROVER_HOME` (several daemons side by side never share a group, and a restarted
//! daemon finds its predecessor's) and `<parent>` is:
//! - v2: the highest cgroup on the way from the hierarchy's root to the daemon's own cgroup that
//!   the daemon may write (the root for root; a delegated subtree such as systemd's
//!   `user@<uid>.service` for a normal user);
//! - v1: the daemon's own cgroup in each controller's hierarchy (nested, so any limit on the
//!   daemon's group still holds).
//!
//! Written on the cgroup files directly rather than with `cgroups-rs`: that crate's v1 and v2
//! types differ per controller, it has no notion of a delegated v2 subtree, and its kill needs
//! the freezer; the few files drover uses (limits, peak, CPU time, OOM count, kill) are
//! [`TaskGroup`]'s whole job.

mod discover;
mod group;

pub use discover::{Cgroups, Probe};
pub use group::{Stats, TaskGroup};

use std::path::PathBuf;

/// Which cgroup interface a host offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The unified hierarchy with the memory / pids / cpu controllers.
    V2,
    /// One hierarchy per controller (e.g. `/sys/fs/cgroup/memory`).
    V1,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V2 => "v2",
            Version::V1 => "v1",
        }
    }
}

/// What a task's group can limit and measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    /// `--memory`, the peak memory and the OOM count.
    Memory,
    /// `--pids`.
    Pids,
    /// `--cpus` and the CPU time (v1: `cpu` + `cpuacct`).
    Cpu,
}

impl Controller {
    pub const ALL: [Controller; 3] = [Controller::Memory, Controller::Pids, Controller::Cpu];

    pub fn as_str(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Cpu => "cpu",
        }
    }

    /// The flag that asks for this controller's limit.
    pub fn flag(self) -> &'static str {
        match self {
            Controller::Memory => "--memory",
            Controller::Pids => "--pids",
            Controller::Cpu => "--cpus",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// Limits were asked for that this host (or this daemon's user) cannot enforce; the message
    /// is one line that says why and what to do.
    #[error("{0}")]
    Unavailable(String),
    #[error("cgroup {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> CgroupError {
    let path = path.into();
    move |source| CgroupError::Io { path, source }
}

/// FNV-1a, 64 bits: the stable `<instance>` name of a `DROVER_HOME`.
pub fn instance_of(home: &std::path::Path) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in home.as_os_str().as_encoded_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// For `drover doctor`: which controllers a task's group gets on this host for the daemon whose
/// `DROVER_HOME` is `home`, and one remedy line for the missing ones (see [`Probe`]). Makes and
/// removes a throwaway group, so the answer is what a task would get.
pub fn probe(home: &std::path::Path) -> Probe {
    Cgroups::discover(home).probe()
}
