//! The jail's filesystem, built by the init in its new mount namespace (docs/design.md §11).
//!
//! Everything is made private first; a tmpfs becomes the root (`pivot_root` twice, as
//! bubblewrap does: the first time onto a scratch tmpfs so that the host's tree is reachable
//! under `/oldroot` while the new root is built, the second time onto the new root, after
//! which the old tree is detached). The new root holds:
//! - the system read-only: `/usr`, `/bin`, `/sbin`, `/lib*`, `/etc`, `/opt` (the top-level
//!   symlinks of a merged-`/usr` system as symlinks), minus `/etc/shadow`, `/etc/gshadow`,
//!   `/etc/ssl/private` and the ssh host keys (masked);
//! - a fresh `/proc` of the new PID namespace (`/proc/sys`, `/proc/sysrq-trigger` read-only,
//!   `/proc/kcore` masked), a minimal `/dev` (null, zero, full, random, urandom, tty, a private
//!   devpts, `/dev/shm`), private tmpfs `/tmp`, `/var/tmp` and `/run`;
//! - the task's socket directory at `/run/drover`, the private HOME at `home_at`, the checkout
//!   writable at its own path, `ro_paths` read-only, `rw_paths` writable, `hidden` masked.
//!
//! Nothing else: not `/home` or `/root` (only the private HOME and read-only paths under it),
//! not `DROVER_HOME` (only the checkout and the run dir), not other sandboxes, not `/sys`.
//! Every bind is remounted `nosuid,nodev` (read-only ones `ro` too), keeping the flags the
//! kernel locks in a user namespace (`noexec`, atime).

use crate::files::{JailSpec, SANDBOX_RUN_DIR};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::statvfs::{statvfs, FsFlags};
use nix::unistd::{chdir, pivot_root};
use std::path::{Component, Path, PathBuf};

/// The host's system directories visible read-only in every jail.
const SYSTEM: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt",
];
/// Files and directories of the system that stay hidden.
const SECRETS: &[&str] = &[
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/ssl/private",
    "/etc/sudoers",
    "/etc/sudoers.d",
];
const OLD: &str = "/oldroot";
const NEW: &str = "/newroot";

/// One step of building the new root; `dst` is the path inside.
#[derive(Debug, Clone)]
enum Op {
    Bind {
        src: PathBuf,
        dst: PathBuf,
        ro: bool,
    },
    Tmpfs {
        dst: PathBuf,
        mode: &'static str,
    },
    Mask {
        dst: PathBuf,
    },
    Symlink {
        target: PathBuf,
        dst: PathBuf,
    },
}

impl Op {
    fn dst(&self) -> &Path {
        match self {
            Op::Bind { dst, .. } | Op::Tmpfs { dst, .. } | Op::Mask { dst } => dst,
            Op::Symlink { dst, .. } => dst,
        }
    }
}

fn depth(p: &Path) -> usize {
    p.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count()
}

/// Inside path `p` as seen while building (under `/newroot`), and the host's `p` (under
/// `/oldroot`).
fn new(p: &Path) -> PathBuf {
    Path::new(NEW).join(p.strip_prefix("/").unwrap_or(p))
}
fn old(p: &Path) -> PathBuf {
    Path::new(OLD).join(p.strip_prefix("/").unwrap_or(p))
}

fn err<E: std::fmt::Display>(what: impl std::fmt::Display) -> impl FnOnce(E) -> String {
    move |e| format!("{what}: {e}")
}

/// The plan: every op, parents before children (stable by depth), read from the host as it
/// is now (`/` not yet pivoted).
fn plan(spec: &JailSpec) -> Vec<Op> {
    let mut ops = vec![];
    for dir in SYSTEM {
        let p = Path::new(dir);
        match std::fs::symlink_metadata(p) {
            Ok(m) if m.file_type().is_symlink() => {
                if let Ok(target) = std::fs::read_link(p) {
                    ops.push(Op::Symlink {
                        target,
                        dst: p.into(),
                    });
                }
            }
            Ok(m) if m.is_dir() => ops.push(Op::Bind {
                src: p.into(),
                dst: p.into(),
                ro: true,
            }),
            _ => {}
        }
    }
    for (dst, mode) in [("/tmp", "1777"), ("/var/tmp", "1777"), ("/run", "0755")] {
        ops.push(Op::Tmpfs {
            dst: dst.into(),
            mode,
        });
    }
    let mut secrets: Vec<PathBuf> = SECRETS.iter().map(PathBuf::from).collect();
    if let Ok(dir) = std::fs::read_dir("/etc/ssh") {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with("ssh_host_") && name.ends_with("_key") {
                secrets.push(e.path());
            }
        }
    }
    for s in secrets.iter().chain(&spec.hidden) {
        if s.exists() {
            ops.push(Op::Mask { dst: s.clone() });
        }
    }
    ops.push(Op::Bind {
        src: spec.home.clone(),
        dst: spec.home_at.clone(),
        ro: false,
    });
    ops.push(Op::Bind {
        src: spec.run_dir.clone(),
        dst: SANDBOX_RUN_DIR.into(),
        ro: false,
    });
    ops.push(Op::Bind {
        src: spec.checkout.clone(),
        dst: spec.checkout.clone(),
        ro: false,
    });
    for (paths, ro) in [(&spec.ro_paths, true), (&spec.rw_paths, false)] {
        for p in paths.iter().filter(|p| p.exists()) {
            ops.push(Op::Bind {
                src: p.clone(),
                dst: p.clone(),
                ro,
            });
        }
    }
    ops.sort_by_key(|op| depth(op.dst()));
    ops
}

/// Builds the new root and enters it. Runs in the init (PID 1 of the new PID namespace, in
/// the new mount namespace), before anything else of the task.
pub fn build(spec: &JailSpec) -> Result<(), String> {
    let ops = plan(spec);
    let none: Option<&str> = None;
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .map_err(err("making / private"))?;
    // The scratch root: a tmpfs on /tmp (the host's /tmp stays reachable under /oldroot/tmp).
    mount(
        Some("tmpfs"),
        "/tmp",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    )
    .map_err(err("mounting the scratch tmpfs"))?;
    chdir("/tmp").map_err(err("chdir /tmp"))?;
    for d in ["oldroot", "newroot"] {
        std::fs::create_dir(d).map_err(err(format!("mkdir {d}")))?;
    }
    std::fs::write("empty", b"").map_err(err("creating the mask file"))?;
    pivot_root(".", "oldroot").map_err(err("pivot_root to the scratch root"))?;
    chdir("/").map_err(err("chdir /"))?;
    mount(
        Some("tmpfs"),
        NEW,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    )
    .map_err(err("mounting the new root"))?;
    let mut masks = vec![];
    for op in &ops {
        apply(op, &mut masks)?;
    }
    proc_and_dev()?;
    for m in masks {
        remount(&m, true)?;
    }
    // Detach the host's tree, then enter the new root.
    mount(none, OLD, none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .map_err(err("making the old root private"))?;
    umount2(OLD, MntFlags::MNT_DETACH).map_err(err("detaching the old root"))?;
    chdir(NEW).map_err(err("chdir to the new root"))?;
    pivot_root(".", ".").map_err(err("pivot_root to the new root"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(err("detaching the scratch root"))?;
    chdir("/").map_err(err("chdir /"))?;
    // The root itself read-only: the agent writes only where it was given a place.
    remount(Path::new("/"), true)
}

fn apply(op: &Op, masks: &mut Vec<PathBuf>) -> Result<(), String> {
    let none: Option<&str> = None;
    match op {
        Op::Symlink { target, dst } => std::os::unix::fs::symlink(target, new(dst))
            .map_err(err(format!("symlink {}", dst.display()))),
        Op::Tmpfs { dst, mode } => {
            let at = new(dst);
            std::fs::create_dir_all(&at).map_err(err(format!("mkdir {}", dst.display())))?;
            mount(
                Some("tmpfs"),
                &at,
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some(format!("mode={mode}").as_str()),
            )
            .map_err(err(format!("tmpfs on {}", dst.display())))
        }
        Op::Mask { dst } => {
            let at = new(dst);
            if !at.exists() {
                // Under nothing visible: hidden already.
                return Ok(());
            }
            if at.is_dir() {
                mount(
                    Some("tmpfs"),
                    &at,
                    Some("tmpfs"),
                    MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                    Some("mode=0755"),
                )
                .map_err(err(format!("masking {}", dst.display())))?;
            } else {
                mount(Some("/empty"), &at, none, MsFlags::MS_BIND, none)
                    .map_err(err(format!("masking {}", dst.display())))?;
            }
            masks.push(at);
            Ok(())
        }
        Op::Bind { src, dst, ro } => {
            let from = old(src);
            let at = new(dst);
            let meta = std::fs::metadata(&from).map_err(err(format!("{}", src.display())))?;
            if std::fs::symlink_metadata(&at).is_err() {
                if meta.is_dir() {
                    std::fs::create_dir_all(&at)
                        .map_err(err(format!("mkdir {}", dst.display())))?;
                } else {
                    if let Some(parent) = at.parent() {
                        std::fs::create_dir_all(parent)
                            .map_err(err(format!("mkdir {}", dst.display())))?;
                    }
                    std::fs::write(&at, b"").map_err(err(format!("creating {}", dst.display())))?;
                }
            }
            mount(
                Some(&from),
                &at,
                none,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                none,
            )
            .map_err(err(format!("binding {}", src.display())))?;
            for m in mounts_under(&at) {
                match remount(&m, *ro) {
                    // A submount the host removed between the listing and now (another task's
                    // sandbox ending: its unmount propagates here, its directory is deleted):
                    // nothing is left there to restrict; the bind above it is remounted.
                    Err(_) if m != at && std::fs::symlink_metadata(&m).is_err() => {}
                    r => r?,
                }
            }
            Ok(())
        }
    }
}

/// A fresh `/proc` for the new PID namespace and a minimal `/dev`.
fn proc_and_dev() -> Result<(), String> {
    let none: Option<&str> = None;
    let proc_at = new(Path::new("/proc"));
    std::fs::create_dir_all(&proc_at).map_err(err("mkdir /proc"))?;
    mount(
        Some("proc"),
        &proc_at,
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        none,
    )
    .map_err(err("mounting /proc"))?;
    for p in ["sys", "sysrq-trigger", "irq", "bus"] {
        let at = proc_at.join(p);
        if at.exists() {
            mount(
                Some(&at),
                &at,
                none,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                none,
            )
            .map_err(err(format!("binding /proc/{p}")))?;
            remount(&at, true)?;
        }
    }
    for p in ["kcore", "keys", "timer_list"] {
        let at = proc_at.join(p);
        if at.exists() {
            mount(Some("/empty"), &at, none, MsFlags::MS_BIND, none)
                .map_err(err(format!("masking /proc/{p}")))?;
        }
    }
    let dev = new(Path::new("/dev"));
    std::fs::create_dir_all(&dev).map_err(err("mkdir /dev"))?;
    mount(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=0755"),
    )
    .map_err(err("tmpfs on /dev"))?;
    for d in ["null", "zero", "full", "random", "urandom", "tty"] {
        let from = Path::new(OLD).join("dev").join(d);
        if !from.exists() {
            continue;
        }
        let at = dev.join(d);
        std::fs::write(&at, b"").map_err(err(format!("creating /dev/{d}")))?;
        mount(Some(&from), &at, none, MsFlags::MS_BIND, none)
            .map_err(err(format!("binding /dev/{d}")))?;
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        std::os::unix::fs::symlink(target, dev.join(name))
            .map_err(err(format!("symlink /dev/{name}")))?;
    }
    let shm = dev.join("shm");
    std::fs::create_dir(&shm).map_err(err("mkdir /dev/shm"))?;
    mount(
        Some("tmpfs"),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777"),
    )
    .map_err(err("tmpfs on /dev/shm"))?;
    let pts = dev.join("pts");
    std::fs::create_dir(&pts).map_err(err("mkdir /dev/pts"))?;
    // A private pty instance; a host that refuses it leaves the agent without ptys, nothing else.
    let _ = mount(
        Some("devpts"),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    );
    Ok(())
}

/// Remounts the mount at `at` `nosuid,nodev` (and `ro`), keeping the flags a user namespace
/// locks (`noexec`, the atime mode, `ro` itself).
fn remount(at: &Path, ro: bool) -> Result<(), String> {
    let have = statvfs(at)
        .map_err(err(format!("statvfs {}", at.display())))?
        .flags();
    let mut flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_NOSUID;
    for (st, ms) in [
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
    ] {
        if have.contains(st) {
            flags |= ms;
        }
    }
    // Device nodes stay usable where the host's were (a nodev remount of a bound /dev/null
    // would make it unopenable); everything else gets nodev.
    if !at.starts_with(new(Path::new("/dev"))) {
        flags |= MsFlags::MS_NODEV;
    }
    if ro {
        flags |= MsFlags::MS_RDONLY;
    }
    let none: Option<&str> = None;
    mount(none, at, none, flags, none)
        .map_err(err(format!("remounting {} read-only={ro}", at.display())))
}

/// The mount points at or under `at` (this process's view), parents first.
fn mounts_under(at: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string(Path::new(OLD).join("proc/self/mountinfo"))
        .or_else(|_| std::fs::read_to_string("/proc/self/mountinfo"))
        .unwrap_or_default();
    let mut out: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape(m)))
        .filter(|m| m.starts_with(at))
        .collect();
    out.dedup();
    if out.is_empty() {
        out.push(at.to_path_buf());
    }
    out.sort_by_key(|p| depth(p));
    out
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo_paths() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
    }

    #[test]
    fn parents_are_mounted_before_children() {
        let spec = JailSpec {
            checkout: "/tmp/h/sandboxes/t1/merged".into(),
            home: "/tmp/h/tasks/t1/home".into(),
            home_at: "/root".into(),
            run_dir: "/tmp/h/run/t1".into(),
            ro_paths: vec!["/root/.cache".into()],
            ..JailSpec::default()
        };
        let ops = plan(&spec);
        let pos = |p: &str| ops.iter().position(|o| o.dst() == Path::new(p));
        assert!(pos("/tmp") < pos("/tmp/h/sandboxes/t1/merged"));
        assert!(pos("/run") < pos("/run/drover"));
        // /root/.cache is under the private home only if it exists on this host.
        if Path::new("/root/.cache").exists() {
            assert!(pos("/root") < pos("/root/.cache"));
        }
    }
}
