//! Finding where this daemon may make cgroups: the hierarchies in `/proc/self/mountinfo`, the
//! daemon's own groups in `/proc/self/cgroup`.

use crate::group::{TaskGroup, V1Group};
use crate::{CgroupError, Controller, Version};
use drover_types::Limits;
use std::path::{Path, PathBuf};

/// Where this daemon's task groups live (see the crate docs); found once at start.
#[derive(Debug, Clone)]
pub struct Cgroups {
    layout: Layout,
    instance: String,
    /// Per task, the most `memory.current` seen ([`Cgroups::sample`]), where the host keeps no
    /// `memory.peak`.
    sampled: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, u64>>>,
}

#[derive(Debug, Clone)]
enum Layout {
    /// `parent/drover/<instance>/<task>`.
    V2 { parent: PathBuf },
    /// Per v1 controller, the daemon's own group in its hierarchy (`None`: not mounted or not
    /// writable).
    V1(V1Parents),
    /// Neither: why, and what to do.
    None { why: String, remedy: String },
}

#[derive(Debug, Clone, Default)]
struct V1Parents {
    memory: Option<PathBuf>,
    pids: Option<PathBuf>,
    cpu: Option<PathBuf>,
    cpuacct: Option<PathBuf>,
    freezer: Option<PathBuf>,
    /// Why a wanted controller is missing, for [`Probe::remedy`].
    missing_why: Vec<String>,
}

/// What `drover doctor` shows: which controllers a task's group gets here, and what to do
/// about the missing ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// `None`: no usable cgroup hierarchy at all.
    pub version: Option<Version>,
    pub working: Vec<Controller>,
    pub missing: Vec<Controller>,
    /// One line: why some are missing and the remedy (`None` when all work).
    pub remedy: Option<String>,
}

const REMEDY_V2: &str = "run the daemon as root, or in a delegated cgroup (e.g. `systemd-run \
                         --user -p Delegate=yes drover daemon --foreground`)";

impl Cgroups {
    /// This host's cgroups, for the daemon whose `DROVER_HOME` is `home`.
    pub fn discover(home: &Path) -> Cgroups {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        Cgroups::from_parts(&mountinfo, &own, &crate::instance_of(home))
    }

    /// [`Cgroups::discover`] from the text of `/proc/self/mountinfo` and `/proc/self/cgroup`.
    pub fn from_parts(mountinfo: &str, own: &str, instance: &str) -> Cgroups {
        let mounts = parse_mounts(mountinfo);
        let own = parse_own(own);
        let layout = match v2_layout(&mounts, &own) {
            Some(layout) => layout,
            None => v1_layout(&mounts, &own),
        };
        Cgroups {
            layout,
            instance: instance.to_string(),
            sampled: Default::default(),
        }
    }

    pub fn version(&self) -> Option<Version> {
        match self.layout {
            Layout::V2 { .. } => Some(Version::V2),
            Layout::V1(_) => Some(Version::V1),
            Layout::None { .. } => None,
        }
    }

    /// The task's group (whether or not it exists).
    pub fn group(&self, task: &str) -> Option<TaskGroup> {
        let leaf = |p: &PathBuf| p.join("drover").join(&self.instance).join(task);
        match &self.layout {
            Layout::V2 { parent } => Some(TaskGroup::V2(leaf(parent))),
            Layout::V1(p) => Some(TaskGroup::V1(V1Group {
                memory: p.memory.as_ref().map(leaf),
                pids: p.pids.as_ref().map(leaf),
                cpu: p.cpu.as_ref().map(leaf),
                cpuacct: p.cpuacct.as_ref().map(leaf),
                freezer: p.freezer.as_ref().map(leaf),
            })),
            Layout::None { .. } => None,
        }
    }

    /// Creates the task's group afresh (an earlier attempt's is ended and removed first) and
    /// sets `limits`. `Ok(None)`: this host has no cgroups for the daemon and no limit was
    /// asked for. A limit that cannot be enforced is an error (limits fail closed).
    pub fn create(&self, task: &str, limits: &Limits) -> Result<Option<TaskGroup>, CgroupError> {
        let asked = asked(limits);
        let Some(group) = self.group(task) else {
            return match (asked.first(), &self.layout) {
                (Some(c), Layout::None { why, remedy }) => Err(CgroupError::Unavailable(format!(
                    "{} cannot be enforced: {why}; {remedy}",
                    c.flag()
                ))),
                _ => Ok(None),
            };
        };
        if group.exists() {
            group.kill(std::time::Duration::from_secs(2));
            group.remove()?;
        }
        // Another task's group removed just now may take `drover/<instance>` with it (see
        // `TaskGroup::remove`): making the group again is enough.
        let mut tries = 0;
        loop {
            tries += 1;
            if let Layout::V2 { parent } = &self.layout {
                enable_v2(parent, &self.instance);
            }
            let made = group.make();
            let missing = asked
                .iter()
                .find(|c| !group.controllers().contains(c))
                .copied();
            match (made, missing) {
                (Ok(()), None) => break,
                (Err(_), _) | (_, Some(_)) if tries < 3 => {
                    let _ = group.remove();
                }
                (Err(e), _) => return Err(e),
                (Ok(()), Some(c)) => {
                    // Nothing of it is any use: leave no empty group behind.
                    group.remove()?;
                    return Err(CgroupError::Unavailable(format!(
                        "{} cannot be enforced: {}",
                        c.flag(),
                        self.missing_why(c)
                    )));
                }
            }
        }
        group.apply(limits)?;
        Ok(Some(group))
    }

    /// Notes the task's memory now, on hosts that keep no peak of their own (v2 before Linux
    /// 5.19): the most seen stands in for the peak ([`Cgroups::peak`]). Cheap: one file read.
    pub fn sample(&self, task: &str) {
        let Some(now) = self.group(task).and_then(|g| g.current_without_peak()) else {
            return;
        };
        let mut map = self.sampled.lock().unwrap_or_else(|e| e.into_inner());
        let seen = map.entry(task.to_string()).or_default();
        *seen = (*seen).max(now);
    }

    /// What the task's group used: [`TaskGroup::stats`], with the sampled peak where the host
    /// keeps none. Forgets the samples.
    pub fn stats(&self, task: &str, group: &TaskGroup) -> crate::Stats {
        let sampled = self
            .sampled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(task);
        let mut stats = group.stats();
        stats.peak_memory_bytes = stats.peak_memory_bytes.or(sampled);
        stats
    }

    /// Task ids that have a group of this daemon's (for the garbage collector).
    pub fn task_ids(&self) -> Vec<String> {
        let dirs: Vec<PathBuf> = match &self.layout {
            Layout::V2 { parent } => vec![parent.clone()],
            Layout::V1(p) => [&p.memory, &p.pids, &p.cpu, &p.cpuacct, &p.freezer]
                .into_iter()
                .flatten()
                .cloned()
                .collect(),
            Layout::None { .. } => vec![],
        };
        let mut ids: Vec<String> = dirs
            .iter()
            .filter_map(|d| std::fs::read_dir(d.join("drover").join(&self.instance)).ok())
            .flat_map(|rd| rd.flatten())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Which controllers a task's group gets here: made for real (a throwaway group), so the
    /// answer is what a task would get.
    pub fn probe(&self) -> Probe {
        let name = format!("probe-{}", std::process::id());
        let working = match &self.layout {
            Layout::None { .. } => vec![],
            _ => match self.create(&name, &Limits::default()) {
                Ok(Some(g)) => {
                    let w = g.controllers();
                    let _ = g.remove();
                    w
                }
                Ok(None) | Err(_) => vec![],
            },
        };
        let missing: Vec<Controller> = Controller::ALL
            .into_iter()
            .filter(|c| !working.contains(c))
            .collect();
        let remedy = match (&self.layout, missing.first()) {
            (_, None) => None,
            (Layout::None { why, remedy }, _) => Some(format!("{why}; {remedy}")),
            (_, Some(c)) => Some(self.missing_why(*c)),
        };
        Probe {
            version: self.version(),
            working,
            missing,
            remedy,
        }
    }

    fn missing_why(&self, c: Controller) -> String {
        match &self.layout {
            Layout::V2 { parent } => format!(
                "the {} controller is not delegated to {} (cgroup v2); {REMEDY_V2}",
                c.as_str(),
                parent.display()
            ),
            Layout::V1(p) => {
                let why = p
                    .missing_why
                    .iter()
                    .find(|w| w.contains(c.as_str()))
                    .cloned()
                    .unwrap_or_else(|| {
                        format!("the v1 {} controller is not usable here", c.as_str())
                    });
                format!("{why}; mount it, or run the daemon as root")
            }
            Layout::None { why, remedy } => format!("{why}; {remedy}"),
        }
    }
}

/// The controllers `limits` needs.
pub(crate) fn asked(limits: &Limits) -> Vec<Controller> {
    let mut v = vec![];
    if limits.memory_bytes.is_some() {
        v.push(Controller::Memory);
    }
    if limits.cpus.is_some() {
        v.push(Controller::Cpu);
    }
    if limits.pids.is_some() {
        v.push(Controller::Pids);
    }
    v
}

/// Turns the controllers on down to `drover/<instance>` (v2: a group's controllers are those
/// its parent enables). Best effort: what could not be enabled shows as missing in the group.
fn enable_v2(parent: &Path, instance: &str) {
    let chain = [
        parent.to_path_buf(),
        parent.join("drover"),
        parent.join("drover").join(instance),
    ];
    for dir in chain {
        // Racing another task's create is fine: both make the same directories.
        if std::fs::create_dir_all(&dir).is_err() {
            return;
        }
        let offered = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
        let on = std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
        for c in Controller::ALL {
            let name = c.as_str();
            let has = |s: &str| s.split_whitespace().any(|w| w == name);
            if has(&offered) && !has(&on) {
                // EBUSY when `dir` holds processes itself: the group then lacks `c`, and a
                // limit needing it fails with the reason.
                let _ = std::fs::write(dir.join("cgroup.subtree_control"), format!("+{name}"));
            }
        }
    }
}

#[derive(Debug)]
struct Mount {
    root: String,
    point: PathBuf,
    fstype: String,
    options: Vec<String>,
}

fn parse_mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let mut post = post.split(' ');
            let fstype = post.next()?.to_string();
            let _source = post.next()?;
            let options = post.next()?.split(',').map(str::to_string).collect();
            Some(Mount {
                root: unescape(pre.get(3)?),
                point: PathBuf::from(unescape(pre.get(4)?)),
                fstype,
                options,
            })
        })
        .collect()
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 4);
        match code.and_then(|c| u8::from_str_radix(c, 8).ok()) {
            Some(b) => {
                out.push(char::from(b));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `/proc/self/cgroup`: (controllers, path) per hierarchy; v2's line has no controllers.
fn parse_own(text: &str) -> Vec<(Vec<String>, String)> {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let _id = parts.next()?;
            let ctrls = parts.next()?;
            let path = parts.next()?;
            let ctrls = ctrls
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect();
            Some((ctrls, path.to_string()))
        })
        .collect()
}

/// The daemon's group `own` (a path in the hierarchy) as a directory under `mount`.
fn under_mount(mount: &Mount, own: &str) -> PathBuf {
    let rel = own
        .strip_prefix(mount.root.as_str())
        .unwrap_or(own)
        .trim_start_matches('/');
    if rel.is_empty() {
        mount.point.clone()
    } else {
        mount.point.join(rel)
    }
}

fn writable(p: &Path) -> bool {
    nix::unistd::access(p, nix::unistd::AccessFlags::W_OK).is_ok()
}

/// v2 when a unified hierarchy offers memory, pids or cpu at its root.
fn v2_layout(mounts: &[Mount], own: &[(Vec<String>, String)]) -> Option<Layout> {
    let mount = mounts.iter().find(|m| {
        m.fstype == "cgroup2"
            && std::fs::read_to_string(m.point.join("cgroup.controllers")).is_ok_and(|s| {
                s.split_whitespace()
                    .any(|c| matches!(c, "memory" | "pids" | "cpu"))
            })
    })?;
    let own = own
        .iter()
        .find(|(c, _)| c.is_empty())
        .map(|(_, p)| p.as_str())
        .unwrap_or("/");
    let leaf = under_mount(mount, own);
    // From the root down to the daemon's own group: the first the daemon may write.
    let mut chain: Vec<PathBuf> = leaf.ancestors().map(Path::to_path_buf).collect();
    chain.retain(|p| p.starts_with(&mount.point));
    chain.reverse();
    match chain
        .into_iter()
        .find(|p| writable(p) && writable(&p.join("cgroup.procs")))
    {
        Some(parent) => Some(Layout::V2 { parent }),
        None => Some(Layout::None {
            why: format!(
                "cgroups are not available to this daemon: no cgroup (v2) from {} down to its \
                 own {} is writable by uid {}",
                mount.point.display(),
                leaf.display(),
                nix::unistd::geteuid()
            ),
            remedy: REMEDY_V2.to_string(),
        }),
    }
}

fn v1_layout(mounts: &[Mount], own: &[(Vec<String>, String)]) -> Layout {
    let mut p = V1Parents::default();
    let mut any = false;
    for name in ["memory", "pids", "cpu", "cpuacct", "freezer"] {
        let Some(mount) = mounts
            .iter()
            .find(|m| m.fstype == "cgroup" && m.options.iter().any(|o| o == name))
        else {
            p.missing_why
                .push(format!("the v1 {name} controller is not mounted"));
            continue;
        };
        any = true;
        let path = own
            .iter()
            .find(|(c, _)| c.iter().any(|c| c == name))
            .map(|(_, p)| p.as_str())
            .unwrap_or("/");
        let dir = under_mount(mount, path);
        if !writable(&dir) {
            p.missing_why.push(format!(
                "the v1 {name} group {} is not writable by uid {}",
                dir.display(),
                nix::unistd::geteuid()
            ));
            continue;
        }
        let slot = match name {
            "memory" => &mut p.memory,
            "pids" => &mut p.pids,
            "cpu" => &mut p.cpu,
            "cpuacct" => &mut p.cpuacct,
            _ => &mut p.freezer,
        };
        *slot = Some(dir);
    }
    if !any {
        return Layout::None {
            why: "no cgroup hierarchy with the memory, pids or cpu controller is mounted".into(),
            remedy: "mount cgroup2 at /sys/fs/cgroup (most distributions do)".into(),
        };
    }
    Layout::V1(p)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn mountinfo_and_own_groups_are_read() {
        let m = parse_mounts(
            "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
             41 31 0:38 /sub /sys/fs/cgroup/uni\\040fied rw - cgroup2 cgroup2 rw\n",
        );
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].options, vec!["rw", "memory"]);
        assert_eq!(m[1].point, PathBuf::from("/sys/fs/cgroup/uni fied"));
        assert_eq!(
            under_mount(&m[1], "/sub/a/b"),
            PathBuf::from("/sys/fs/cgroup/uni fied/a/b")
        );
        assert_eq!(
            under_mount(&m[0], "/"),
            PathBuf::from("/sys/fs/cgroup/memory")
        );
        let own = parse_own("4:memory:/process_api/x\n2:cpu,cpuacct:/\n0::/user.slice\n");
        assert_eq!(
            own[0],
            (vec!["memory".to_string()], "/process_api/x".into())
        );
        assert_eq!(own[1].0, vec!["cpu", "cpuacct"]);
        assert!(own[2].0.is_empty());
    }

    #[test]
    fn a_fake_unified_hierarchy_is_v2_with_the_first_writable_group_as_parent() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("cg");
        std::fs::create_dir_all(root.join("user.slice/me.service")).unwrap();
        std::fs::write(root.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        std::fs::write(root.join("cgroup.procs"), "").unwrap();
        let info = format!("41 31 0:38 / {} rw - cgroup2 cgroup2 rw\n", root.display());
        let cg = Cgroups::from_parts(&info, "0::/user.slice/me.service\n", "abc");
        assert_eq!(cg.version(), Some(Version::V2));
        let g = cg.group("t1").unwrap();
        assert_eq!(
            g.procs_files(),
            vec![root.join("drover/abc/t1/cgroup.procs")]
        );
    }

    #[test]
    fn without_memory_peak_the_most_memory_current_seen_is_the_peak() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("cg");
        let g = root.join("drover/abc/t1");
        std::fs::create_dir_all(&g).unwrap();
        std::fs::write(root.join("cgroup.controllers"), "memory\n").unwrap();
        std::fs::write(root.join("cgroup.procs"), "").unwrap();
        let info = format!("41 31 0:38 / {} rw - cgroup2 cgroup2 rw\n", root.display());
        let cg = Cgroups::from_parts(&info, "0::/\n", "abc");
        for v in ["1000", "5000", "2000"] {
            std::fs::write(g.join("memory.current"), v).unwrap();
            cg.sample("t1");
        }
        let group = cg.group("t1").unwrap();
        assert_eq!(cg.stats("t1", &group).peak_memory_bytes, Some(5000));
        // Forgotten once read; a host with memory.peak is never sampled.
        std::fs::write(g.join("memory.peak"), "7000").unwrap();
        cg.sample("t1");
        assert_eq!(cg.stats("t1", &group).peak_memory_bytes, Some(7000));
    }

    #[test]
    fn without_any_hierarchy_a_limit_fails_closed_and_no_limit_runs() {
        let cg = Cgroups::from_parts("", "", "abc");
        assert_eq!(cg.version(), None);
        assert!(cg.create("t", &Limits::default()).unwrap().is_none());
        let limited = Limits {
            pids: Some(10),
            ..Limits::default()
        };
        let err = cg.create("t", &limited).unwrap_err().to_string();
        assert!(err.starts_with("--pids cannot be enforced: "), "{err}");
        let probe = cg.probe();
        assert_eq!(probe.missing.len(), 3);
        assert!(probe.remedy.is_some());
    }
}
