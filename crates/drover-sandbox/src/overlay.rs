//! overlayfs: the probe, mounting and unmounting, and reading the mount table.

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::error::{Result, SandboxError};
use crate::git::path_str;

/// Checks that overlayfs can be mounted under `home` by mounting (and unmounting) a tiny overlay
/// in `home/.probe-<random>/`. `Err` carries a sentence for `drover doctor` saying why not.
pub fn probe_overlay(home: &Path) -> std::result::Result<(), String> {
    std::fs::create_dir_all(home).map_err(|e| format!("cannot create {}: {e}", home.display()))?;
    let dir = home.join(format!(".probe-{:016x}", rand::random::<u64>()));
    let result = probe_in(&dir);
    if is_mounted(&dir.join("merged")) {
        let _ = umount2(&dir.join("merged"), MntFlags::MNT_DETACH);
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn probe_in(dir: &Path) -> std::result::Result<(), String> {
    let [lower, upper, work, merged] = ["lower", "upper", "work", "merged"].map(|d| dir.join(d));
    for d in [&lower, &upper, &work, &merged] {
        std::fs::create_dir_all(d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    }
    std::fs::write(lower.join("probe"), b"lower")
        .map_err(|e| format!("cannot write under {}: {e}", lower.display()))?;
    mount_overlay(&lower, &upper, &work, &merged).map_err(|e| match e {
        SandboxError::Mount { reason, .. } => {
            format!("overlay mount under {} failed: {reason}", dir.display())
        }
        other => other.to_string(),
    })?;
    let checked = (|| {
        let seen = std::fs::read(merged.join("probe"))
            .map_err(|e| format!("lower file not visible through the overlay: {e}"))?;
        if seen != b"lower" {
            return Err("lower file reads back wrong through the overlay".to_string());
        }
        std::fs::write(merged.join("probe"), b"upper")
            .map_err(|e| format!("cannot write through the overlay: {e}"))?;
        match std::fs::read(lower.join("probe")) {
            Ok(b) if b == b"lower" => Ok(()),
            _ => Err("a write through the overlay changed the lower layer".to_string()),
        }
    })();
    unmount(&merged).map_err(|e| e.to_string())?;
    checked
}

/// Characters the kernel's overlay option parser treats specially.
fn check_option_path(p: &Path) -> Result<&str> {
    let s = path_str(p)?;
    if s.contains([',', ':', '\\']) {
        return Err(SandboxError::BadPath {
            path: s.to_string(),
            reason: "overlay mount options cannot hold ',', ':' or '\\'".to_string(),
        });
    }
    Ok(s)
}

/// Mounts an overlay of `lower` (read-only) and `upper` (writes) at `merged`.
pub(crate) fn mount_overlay(lower: &Path, upper: &Path, work: &Path, merged: &Path) -> Result<()> {
    mount_overlay_layers(&[lower], upper, work, merged)
}

/// Mounts an overlay of `lowers` (read-only, the first on top) and `upper` at `merged`.
pub(crate) fn mount_overlay_layers(
    lowers: &[&Path],
    upper: &Path,
    work: &Path,
    merged: &Path,
) -> Result<()> {
    let lowers = lowers
        .iter()
        .map(|l| check_option_path(l))
        .collect::<Result<Vec<_>>>()?;
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowers.join(":"),
        check_option_path(upper)?,
        check_option_path(work)?
    );
    mount(
        Some("overlay"),
        merged,
        Some("overlay"),
        MsFlags::MS_NOATIME,
        Some(opts.as_str()),
    )
    .map_err(|e| SandboxError::Mount {
        op: "mount".to_string(),
        path: merged.display().to_string(),
        reason: e.desc().to_string(),
    })
}

/// Unmounts `merged`; falls back to a lazy detach when it is busy. Not mounted is not an error.
pub(crate) fn unmount(merged: &Path) -> Result<()> {
    match umount2(merged, MntFlags::empty()) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(()),
        Err(Errno::EBUSY) => {
            tracing::warn!(path = %merged.display(), "overlay busy; detaching lazily");
            umount2(merged, MntFlags::MNT_DETACH).map_err(|e| SandboxError::Mount {
                op: "lazy unmount".to_string(),
                path: merged.display().to_string(),
                reason: e.desc().to_string(),
            })
        }
        Err(e) => Err(SandboxError::Mount {
            op: "unmount".to_string(),
            path: merged.display().to_string(),
            reason: e.desc().to_string(),
        }),
    }
}

/// One line of `/proc/self/mountinfo` (read through `procfs`): the mount point, the file
/// system type and, for an overlay, its lower directories.
pub(crate) struct MountEntry {
    pub point: PathBuf,
    pub fstype: String,
    /// `lowerdir=` of the super options, split on `:` (empty for other file systems).
    pub lower: Vec<PathBuf>,
}

/// The current mount table (empty if it cannot be read).
pub(crate) fn mounts() -> Vec<MountEntry> {
    let Ok(table) = procfs::process::Process::myself().and_then(|me| me.mountinfo()) else {
        return Vec::new();
    };
    table.into_iter().map(entry).collect()
}

fn entry(m: procfs::process::MountInfo) -> MountEntry {
    // procfs leaves the kernel's octal escapes in place (`\040` for a space).
    let lower = m
        .super_options
        .get("lowerdir")
        .and_then(|v| v.as_deref())
        .map(|v| v.split(':').map(|d| PathBuf::from(unescape(d))).collect())
        .unwrap_or_default();
    MountEntry {
        point: PathBuf::from(unescape(&m.mount_point.to_string_lossy())),
        fstype: m.fs_type,
        lower,
    }
}

/// Undoes the kernel's octal escapes (`\040` for a space and so on).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let code = b.get(i + 1..i + 4).and_then(|d| {
            d.iter().try_fold(0u16, |acc, c| {
                (b'0'..=b'7')
                    .contains(c)
                    .then(|| acc * 8 + u16::from(c - b'0'))
            })
        });
        if let (b'\\', Some(code @ 0..=255)) = (b[i], code) {
            out.push(code as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `true` when `path` is a mount point.
pub(crate) fn is_mounted(path: &Path) -> bool {
    mounts().iter().any(|m| m.point == path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_mountinfo() {
        let line = "36 35 0:31 / /tmp/a\\040b/merged rw,relatime shared:1 - overlay overlay rw,lowerdir=/x:/y\\040z,upperdir=/u";
        let m = entry(procfs::process::MountInfo::from_line(line).unwrap());
        assert_eq!(m.point, PathBuf::from("/tmp/a b/merged"));
        assert_eq!(m.fstype, "overlay");
        assert_eq!(m.lower, [PathBuf::from("/x"), PathBuf::from("/y z")]);
        assert!(!mounts().is_empty(), "this process's own mount table");
    }
}
