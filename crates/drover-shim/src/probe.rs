//! Can this host confine an agent? Pure detection (docs/design.md §11, "Honest fallback"): a
//! short-lived child does what the jail will — a user namespace (its uid/gid maps), then mount,
//! PID, network, IPC and UTS namespaces, a private mount, `no_new_privs` — and says which step
//! failed. The host's switches that usually explain a failure are read from `/proc/sys`
//! (`user.max_user_namespaces`, Debian's `kernel.unprivileged_userns_clone`, Ubuntu 24.04's
//! `kernel.apparmor_restrict_unprivileged_userns`) to name the remedy. Nothing outside the
//! child changes: its namespaces and mounts end with it.
//!
//! `drover doctor` prints each [`Finding`]; the daemon probes once at start and refuses to start
//! tasks unconfined while a required feature is missing (unless `sandbox.isolation = "none"`).

use serde::{Deserialize, Serialize};
use std::path::Path;

/// What the jail needs of the host, one line each in `drover doctor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// A user namespace with the daemon's user mapped in (what lets a normal user build the
    /// others; the jail makes one as root too, see `jail::userns`).
    UserNamespace,
    /// A mount namespace in which the jail may mount (bind, tmpfs, remount read-only).
    MountNamespace,
    PidNamespace,
    NetworkNamespace,
    /// IPC and UTS namespaces.
    IpcUtsNamespace,
    /// `prctl(PR_SET_NO_NEW_PRIVS)`: no setuid binary gives the agent more than the daemon has.
    NoNewPrivs,
}

impl Feature {
    /// `drover doctor`'s name of the check.
    pub fn check_name(self) -> &'static str {
        match self {
            Feature::UserNamespace => "userns",
            Feature::MountNamespace => "mountns",
            Feature::PidNamespace => "pidns",
            Feature::NetworkNamespace => "netns",
            Feature::IpcUtsNamespace => "ipc+uts ns",
            Feature::NoNewPrivs => "no_new_privs",
        }
    }

    /// The feature's name in a sentence.
    pub fn name(self) -> &'static str {
        match self {
            Feature::UserNamespace => "user namespace",
            Feature::MountNamespace => "mount namespace",
            Feature::PidNamespace => "pid namespace",
            Feature::NetworkNamespace => "net namespace",
            Feature::IpcUtsNamespace => "ipc+uts namespaces",
            Feature::NoNewPrivs => "no_new_privs",
        }
    }
}

/// One feature: present or not, and if not, why and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub feature: Feature,
    pub ok: bool,
    /// Whether confinement needs it (every feature today; kept so an optional one can be
    /// reported without failing).
    pub required: bool,
    /// What was found (`ok`) or what failed, in one line.
    pub detail: String,
    /// What to do, when missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remedy: Option<String>,
}

/// Every feature's finding, in the order the jail needs them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    /// The first required feature that is missing.
    pub fn first_missing(&self) -> Option<&Finding> {
        self.findings.iter().find(|f| f.required && !f.ok)
    }

    /// A report saying `feature` is missing (tests of the daemon's refusal: the host's own
    /// probe passes here).
    pub fn missing(feature: Feature, detail: &str, remedy: &str) -> Report {
        Report {
            findings: vec![Finding {
                feature,
                ok: false,
                required: true,
                detail: detail.into(),
                remedy: Some(remedy.into()),
            }],
        }
    }

    /// The one line a refused task start says: the feature, why, and the remedy.
    pub fn refusal(&self) -> Option<String> {
        let f = self.first_missing()?;
        Some(format!(
            "this host cannot confine agents: {} is missing ({}){}",
            f.feature.name(),
            f.detail,
            f.remedy
                .as_deref()
                .map(|r| format!("; {r}"))
                .unwrap_or_default()
        ))
    }
}

/// The steps of the child, in order; the first that fails is reported with its errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Step {
    UserNs = 1,
    IdMaps = 2,
    MountNs = 3,
    Mount = 4,
    PidNs = 5,
    NetNs = 6,
    IpcUts = 7,
    NoNewPrivs = 8,
    Done = 0xff,
}

impl Step {
    fn from_u8(v: u8) -> Option<Step> {
        Some(match v {
            1 => Step::UserNs,
            2 => Step::IdMaps,
            3 => Step::MountNs,
            4 => Step::Mount,
            5 => Step::PidNs,
            6 => Step::NetNs,
            7 => Step::IpcUts,
            8 => Step::NoNewPrivs,
            0xff => Step::Done,
            _ => return None,
        })
    }
}

/// The host switches read from `/proc/sys` (absent files: `None`).
#[derive(Debug, Clone, Copy, Default)]
struct Switches {
    max_user_namespaces: Option<u64>,
    unprivileged_userns_clone: Option<u64>,
    apparmor_restrict: Option<u64>,
}

fn read_num(path: &str) -> Option<u64> {
    std::fs::read_to_string(Path::new(path))
        .ok()?
        .trim()
        .parse()
        .ok()
}

impl Switches {
    fn read() -> Self {
        Switches {
            max_user_namespaces: read_num("/proc/sys/user/max_user_namespaces"),
            unprivileged_userns_clone: read_num("/proc/sys/kernel/unprivileged_userns_clone"),
            apparmor_restrict: read_num("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
        }
    }

    /// Why user namespaces fail here, and the remedy, as far as the switches tell.
    fn userns_cause(&self, root: bool) -> (String, String) {
        if self.max_user_namespaces == Some(0) {
            return (
                "user.max_user_namespaces is 0".into(),
                "`sudo sysctl -w user.max_user_namespaces=15000` (and in /etc/sysctl.d/ to keep it)"
                    .into(),
            );
        }
        if !root && self.unprivileged_userns_clone == Some(0) {
            return (
                "kernel.unprivileged_userns_clone is 0".into(),
                "`sudo sysctl -w kernel.unprivileged_userns_clone=1` (and in /etc/sysctl.d/ to keep it)"
                    .into(),
            );
        }
        if !root && self.apparmor_restrict == Some(1) {
            return (
                "AppArmor restricts unprivileged user namespaces \
                 (kernel.apparmor_restrict_unprivileged_userns = 1)"
                    .into(),
                APPARMOR_REMEDY.into(),
            );
        }
        (
            "the kernel or a container runtime refuses user namespaces".into(),
            "run the daemon where user namespaces are allowed (a container needs e.g. \
             `--security-opt seccomp=unconfined` or a runtime with userns support) — see docs/design.md §11"
                .into(),
        )
    }
}

const APPARMOR_REMEDY: &str = "`sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`, \
     or add an AppArmor profile for drover that allows `userns` — see docs/design.md §11";

/// Probes the host (a child process; a few milliseconds).
pub fn probe() -> Report {
    // SAFETY: geteuid/getegid only read this process's credentials.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let root = uid == 0;
    let switches = Switches::read();
    let (step, errno) = match run_child(uid, gid) {
        Ok(r) => r,
        Err(e) => {
            return Report {
                findings: vec![Finding {
                    feature: Feature::UserNamespace,
                    ok: false,
                    required: true,
                    detail: format!("the probe could not run: {e}"),
                    remedy: Some("run `drover doctor` again; report a bug if it persists".into()),
                }],
            }
        }
    };
    let userns_ok = !matches!(step, Step::UserNs | Step::IdMaps);
    let failed_at = |s: Step| step != Step::Done && step as u8 <= s as u8;
    let err = std::io::Error::from_raw_os_error(errno).to_string();
    let (ns_cause, ns_remedy) = switches.userns_cause(root);
    let mut findings = vec![];
    findings.push(if userns_ok {
        ok(Feature::UserNamespace, true, "created, uid and gid mapped")
    } else {
        Finding {
            feature: Feature::UserNamespace,
            ok: false,
            required: true,
            detail: format!("{ns_cause}: {err}"),
            remedy: Some(ns_remedy.clone()),
        }
    });
    let missing = |feature: Feature, why: String, remedy: String| Finding {
        feature,
        ok: false,
        required: true,
        detail: why,
        remedy: Some(remedy),
    };
    let blocked = "not tried: the user namespace failed".to_string();
    let later = |s: Step,
                 feature: Feature,
                 ok_detail: &str,
                 fail_remedy: &str,
                 findings: &mut Vec<Finding>| {
        let f = if !userns_ok {
            missing(feature, blocked.clone(), ns_remedy.clone())
        } else if step == s || (s == Step::MountNs && step == Step::Mount) {
            // In a user namespace that AppArmor confines, the namespaces are made but carry no
            // capabilities: the first mount fails. Say so.
            if step == Step::Mount && switches.apparmor_restrict == Some(1) && !root {
                missing(
                    feature,
                    format!(
                        "mounting in the new namespaces was refused ({err}): AppArmor restricts \
                         unprivileged user namespaces"
                    ),
                    APPARMOR_REMEDY.into(),
                )
            } else {
                missing(feature, format!("refused: {err}"), fail_remedy.into())
            }
        } else if failed_at(s) {
            missing(
                feature,
                "not tried: an earlier step failed".into(),
                "fix the feature above first".into(),
            )
        } else {
            ok(feature, true, ok_detail)
        };
        findings.push(f);
    };
    let kernel =
        "a kernel built with namespaces (CONFIG_NAMESPACES) and a runtime that allows them \
                  — see docs/design.md §11";
    later(
        Step::MountNs,
        Feature::MountNamespace,
        "created; private mounts work",
        kernel,
        &mut findings,
    );
    later(
        Step::PidNs,
        Feature::PidNamespace,
        "created",
        kernel,
        &mut findings,
    );
    later(
        Step::NetNs,
        Feature::NetworkNamespace,
        "created",
        kernel,
        &mut findings,
    );
    later(
        Step::IpcUts,
        Feature::IpcUtsNamespace,
        "created",
        kernel,
        &mut findings,
    );
    later(
        Step::NoNewPrivs,
        Feature::NoNewPrivs,
        "set",
        "a kernel of 3.5 or later (PR_SET_NO_NEW_PRIVS)",
        &mut findings,
    );
    Report { findings }
}

fn ok(feature: Feature, required: bool, detail: &str) -> Finding {
    Finding {
        feature,
        ok: true,
        required,
        detail: detail.into(),
        remedy: None,
    }
}

/// The jail's maps: the daemon's own uid and gid, each to itself.
fn run_child(uid: libc::uid_t, gid: libc::gid_t) -> std::io::Result<(Step, i32)> {
    let uid_map = format!("{uid} {uid} 1\n").into_bytes();
    let gid_map = format!("{gid} {gid} 1\n").into_bytes();
    fork_probe(&uid_map, &gid_map)
}

/// Forks a child that walks the [`Step`]s and writes `[step, errno (4 bytes)]` to a pipe. The
/// child only makes system calls (the parent may have threads): no allocation, no locks.
fn fork_probe(uid_map: &[u8], gid_map: &[u8]) -> std::io::Result<(Step, i32)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-element array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let (rd, wr) = (fds[0], fds[1]);
    // SAFETY: the child runs only async-signal-safe system calls on memory prepared before the
    // fork (the maps, C string literals), then `_exit`s.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let e = std::io::Error::last_os_error();
        // SAFETY: closing the two descriptors pipe2 just made.
        unsafe {
            libc::close(rd);
            libc::close(wr);
        }
        return Err(e);
    }
    if pid == 0 {
        // SAFETY: see above; this branch never returns.
        unsafe { child(wr, uid_map, gid_map) }
    }
    // SAFETY: closing our copy of the write end; reading into a 5-byte buffer we own.
    unsafe { libc::close(wr) };
    let mut buf = [0u8; 5];
    let mut got = 0usize;
    while got < buf.len() {
        // SAFETY: the pointer and length stay inside `buf`.
        let n = unsafe { libc::read(rd, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        if n > 0 {
            got += n as usize;
        } else if n == 0
            || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
        {
            break;
        }
    }
    let mut status = 0;
    // SAFETY: closing our read end; reaping our own child.
    unsafe {
        libc::close(rd);
        while libc::waitpid(pid, &mut status, 0) < 0
            && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
        {}
    }
    if got != buf.len() {
        return Err(std::io::Error::other(
            "the probe's child died without a report",
        ));
    }
    let step = Step::from_u8(buf[0])
        .ok_or_else(|| std::io::Error::other("the probe's child sent an unknown step"))?;
    Ok((step, i32::from_ne_bytes([buf[1], buf[2], buf[3], buf[4]])))
}

/// The child's side of [`fork_probe`].
///
/// # Safety
/// Only after `fork`, in the child.
unsafe fn child(wr: libc::c_int, uid_map: &[u8], gid_map: &[u8]) -> ! {
    unsafe fn report(wr: libc::c_int, step: Step, errno: i32) -> ! {
        let e = errno.to_ne_bytes();
        let buf = [step as u8, e[0], e[1], e[2], e[3]];
        libc::write(wr, buf.as_ptr().cast(), buf.len());
        libc::_exit(0)
    }
    unsafe fn errno() -> i32 {
        *libc::__errno_location()
    }
    unsafe fn write_file(path: &std::ffi::CStr, data: &[u8]) -> bool {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return false;
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        libc::close(fd);
        n == data.len() as isize
    }
    if libc::unshare(libc::CLONE_NEWUSER) != 0 {
        report(wr, Step::UserNs, errno());
    }
    if !write_file(c"/proc/self/setgroups", b"deny")
        || !write_file(c"/proc/self/uid_map", uid_map)
        || !write_file(c"/proc/self/gid_map", gid_map)
    {
        report(wr, Step::IdMaps, errno());
    }
    if libc::unshare(libc::CLONE_NEWNS) != 0 {
        report(wr, Step::MountNs, errno());
    }
    if libc::mount(
        std::ptr::null(),
        c"/".as_ptr(),
        std::ptr::null(),
        libc::MS_REC | libc::MS_PRIVATE,
        std::ptr::null(),
    ) != 0
        || libc::mount(
            c"drover-probe".as_ptr(),
            c"/tmp".as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            std::ptr::null(),
        ) != 0
    {
        report(wr, Step::Mount, errno());
    }
    if libc::unshare(libc::CLONE_NEWPID) != 0 {
        report(wr, Step::PidNs, errno());
    }
    if libc::unshare(libc::CLONE_NEWNET) != 0 {
        report(wr, Step::NetNs, errno());
    }
    if libc::unshare(libc::CLONE_NEWIPC | libc::CLONE_NEWUTS) != 0 {
        report(wr, Step::IpcUts, errno());
    }
    if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
        report(wr, Step::NoNewPrivs, errno());
    }
    report(wr, Step::Done, 0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn this_host_confines_and_the_report_says_so() {
        // The test machines allow every namespace (root, or unprivileged userns allowed).
        let r = probe();
        assert!(r.first_missing().is_none(), "{r:#?}");
        assert_eq!(r.findings.len(), 6, "{r:#?}");
        assert!(r.refusal().is_none());
    }

    #[test]
    fn a_missing_feature_names_itself_and_its_remedy() {
        let r = Report::missing(
            Feature::UserNamespace,
            "AppArmor restricts unprivileged user namespaces",
            APPARMOR_REMEDY,
        );
        let line = r.refusal().unwrap();
        assert!(line.contains("user namespace is missing"), "{line}");
        assert!(
            line.contains("apparmor_restrict_unprivileged_userns=0"),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn switches_name_their_remedy() {
        let s = Switches {
            max_user_namespaces: Some(15000),
            unprivileged_userns_clone: None,
            apparmor_restrict: Some(1),
        };
        let (why, remedy) = s.userns_cause(false);
        assert!(why.contains("AppArmor"), "{why}");
        assert!(remedy.contains("kernel.apparmor_restrict_unprivileged_userns=0"));
        let s = Switches {
            max_user_namespaces: Some(0),
            ..s
        };
        assert!(s.userns_cause(false).1.contains("user.max_user_namespaces"));
        let s = Switches {
            max_user_namespaces: None,
            unprivileged_userns_clone: Some(0),
            apparmor_restrict: None,
        };
        assert!(s
            .userns_cause(false)
            .1
            .contains("unprivileged_userns_clone=1"));
    }
}
