//! Garbage collection of base checkouts and leftovers.

use std::collections::HashSet;
use std::path::PathBuf;

use serde::Serialize;

use crate::base::base_lock_name;
use crate::overlay;
use crate::sandbox::read_meta;
use crate::Sandboxes;

/// What [`Sandboxes::collect_garbage`] did and what it leaves to the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Base checkout keys removed (no sandbox used them).
    pub removed_bases: Vec<String>,
    /// Leftover temp dirs, probe dirs and sandbox dirs without `sandbox.json` that were removed.
    pub removed_leftovers: Vec<PathBuf>,
    /// Overlays still mounted for tasks that are not live: the caller should `load`,
    /// `commit_all`, then `remove` them.
    pub stale_mounts: Vec<String>,
    /// Sandboxes (with `sandbox.json`) of tasks that are not live, mounted or not: same as above.
    pub orphaned: Vec<String>,
    /// Things that could not be removed, with the reason.
    pub errors: Vec<String>,
}

impl Sandboxes {
    /// Removes base checkouts no existing sandbox uses, temp dirs of interrupted builds and
    /// probes, and sandbox dirs that never got a `sandbox.json` (a prepare that died before doing
    /// anything). Never touches a sandbox with metadata: non-live ones are reported in
    /// [`GcReport::orphaned`] / [`GcReport::stale_mounts`] for the caller to commit and remove.
    pub async fn collect_garbage(&self, live_task_ids: &HashSet<String>) -> GcReport {
        let mut report = GcReport::default();
        let mounts = overlay::mounts();
        let mounted_ids = self.mounted_task_ids();
        report.stale_mounts = mounted_ids
            .iter()
            .filter(|id| !live_task_ids.contains(*id))
            .cloned()
            .collect();

        // Sandboxes: collect used base keys; remove dirs that never became sandboxes.
        for entry in read_dir(&self.sandboxes_dir()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if read_meta(&path).is_some() {
                if !live_task_ids.contains(&name) && crate::validate_task_id(&name).is_ok() {
                    report.orphaned.push(name);
                }
                continue;
            }
            // A prepare in progress holds the task lock until it has written sandbox.json.
            let lock = self.lock_for(&format!("task:{name}"));
            let Ok(_guard) = lock.try_lock() else {
                continue;
            };
            let busy = live_task_ids.contains(&name)
                || read_meta(&path).is_some()
                || mounts.iter().any(|m| m.point.starts_with(&path));
            if !busy {
                self.remove_leftover(&path, &mut report).await;
            }
        }

        for entry in read_dir(&self.home().to_path_buf()) {
            let path = entry.path();
            let is_probe = entry.file_name().to_string_lossy().starts_with(".probe-");
            if is_probe && !mounts.iter().any(|m| m.point.starts_with(&path)) {
                self.remove_leftover(&path, &mut report).await;
            }
        }

        // Bases: remove those no sandbox.json refers to, holding the base's lock so a concurrent
        // prepare either finished writing its sandbox.json or has not started using the base
        // (a base whose lock is held is in use and skipped).
        for entry in read_dir(&self.bases_dir()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if let Some(rest) = name.strip_prefix(".tmp-") {
                let key = rest.rsplit_once('-').map_or(rest, |(k, _)| k);
                let lock = self.lock_for(&base_lock_name(key));
                let Ok(_guard) = lock.try_lock() else {
                    continue;
                };
                if path.exists() {
                    self.remove_leftover(&path, &mut report).await;
                }
                continue;
            }
            let lock = self.lock_for(&base_lock_name(&name));
            let Ok(_guard) = lock.try_lock() else {
                continue;
            };
            let used = self.base_in_use(&name);
            let mounted = overlay::mounts().iter().any(|m| m.lower.contains(&path));
            if used || mounted {
                continue;
            }
            match tokio::fs::remove_dir_all(&path).await {
                Ok(()) => report.removed_bases.push(name),
                Err(e) => report
                    .errors
                    .push(format!("remove base {}: {e}", path.display())),
            }
        }
        report
    }

    fn base_in_use(&self, key: &str) -> bool {
        read_dir(&self.sandboxes_dir())
            .iter()
            .filter_map(|e| read_meta(&e.path()))
            .any(|sb| {
                std::iter::once(&sb)
                    .chain(&sb.members)
                    .any(|s| s.base_key.as_deref() == Some(key))
            })
    }

    async fn remove_leftover(&self, path: &std::path::Path, report: &mut GcReport) {
        match tokio::fs::remove_dir_all(path).await {
            Ok(()) => report.removed_leftovers.push(path.to_path_buf()),
            Err(e) => report
                .errors
                .push(format!("remove {}: {e}", path.display())),
        }
    }
}

fn read_dir(dir: &PathBuf) -> Vec<std::fs::DirEntry> {
    std::fs::read_dir(dir)
        .map(|it| it.flatten().filter(|e| e.path().is_dir()).collect())
        .unwrap_or_default()
}
