//! The view gates run in when a task has protected paths: the task's work with every protected
//! path exactly as at the base commit (changed files back, deleted files back, added files gone).
//!
//! * **overlay**: a second overlay at `root/gate/merged` with lower layers `root/gate/layer` (on
//!   top) and the task's own mounted view. The top layer holds hard links to the base checkout's
//!   copies of *all* protected files (so a protected file the agent changes while the gates run
//!   stays at its base version too) and whiteouts for the protected files the agent added. Cost:
//!   one `git ls-tree`, one hard link per protected file, a walk of the task's upper layer (its
//!   changes only) and a mount — independent of the repository's size otherwise.
//! * **worktree**: a copy of the work tree (`cp -a --reflink=auto`) at `root/gate/tree`, frozen
//!   before it is checked, in which the changed protected paths are restored from the base
//!   commit's blobs and the added ones removed. Cost grows with the repository.
//!
//! Either way the gates' own writes land in the view and are thrown away with it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::error::{Result, SandboxError};
use crate::git;
use crate::overlay;
use crate::protect::{blocking, diff, walk, BaseFiles, ChangeKind, Protect, ProtectedChange};
use crate::{Sandbox, SandboxKind, Sandboxes};

/// A prepared gate view; give it back to [`Sandboxes::drop_gate_view`].
#[derive(Debug, Clone, Serialize)]
pub struct GateView {
    /// Where the gates run.
    pub path: PathBuf,
    pub kind: SandboxKind,
    /// The protected paths the task had changed, which the view shows at their base version
    /// (added ones are absent).
    pub restored: Vec<ProtectedChange>,
    /// How long preparing the view took.
    pub prepare_ms: u64,
    #[serde(skip)]
    root: PathBuf,
}

impl Sandboxes {
    /// Prepares the gates' view of `sb` with `protect`'s paths as at the base commit. A view left
    /// by a crash is removed first. On error nothing is left mounted.
    pub async fn gate_view(&self, sb: &Sandbox, protect: &Protect) -> Result<GateView> {
        let started = Instant::now();
        let root = sb.root.join("gate");
        drop_view_dir(&root).await?;
        tokio::fs::create_dir_all(&root)
            .await
            .map_err(|e| SandboxError::io("create", &root, e))?;
        let made = match sb.kind {
            SandboxKind::Overlay => self.overlay_view(sb, protect, &root).await,
            SandboxKind::Worktree => self.copy_view(sb, protect, &root).await,
        };
        match made {
            Ok((path, restored)) => Ok(GateView {
                path,
                kind: sb.kind,
                restored,
                prepare_ms: started.elapsed().as_millis() as u64,
                root,
            }),
            Err(e) => {
                let _ = drop_view_dir(&root).await;
                Err(e)
            }
        }
    }

    /// Unmounts and deletes a gate view (what the gates wrote goes with it).
    pub async fn drop_gate_view(&self, view: &GateView) -> Result<()> {
        drop_view_dir(&view.root).await
    }

    async fn overlay_view(
        &self,
        sb: &Sandbox,
        protect: &Protect,
        root: &Path,
    ) -> Result<(PathBuf, Vec<ProtectedChange>)> {
        self.ensure_mounted(sb)?;
        let (base, checkout) = self.protected_base(sb, protect).await?;
        let Some(checkout) = checkout else {
            return Err(SandboxError::BaseMissing {
                task_id: sb.task_id.clone(),
                base: String::new(),
                upper: sb.upper_dir().display().to_string(),
            });
        };
        let (sb2, protect, root2) = (sb.clone(), protect.clone(), root.to_path_buf());
        let changes = blocking(move || -> Result<Vec<ProtectedChange>> {
            let present = walk(&sb2.upper_dir(), true);
            let changes = diff(
                &protect,
                &base,
                &BaseFiles::Dir(&checkout),
                &sb2.path,
                &present,
            );
            let layer = root2.join("layer");
            for rel in base.keys() {
                link_or_copy(&checkout.join(rel), &layer.join(rel))?;
            }
            for c in changes.iter().filter(|c| c.change == ChangeKind::Added) {
                whiteout(&layer, &c.path)?;
            }
            for d in ["upper", "work", "merged"] {
                let p = root2.join(d);
                std::fs::create_dir_all(&p).map_err(|e| SandboxError::io("create", &p, e))?;
            }
            Ok(changes)
        })
        .await??;
        let merged = root.join("merged");
        overlay::mount_overlay_layers(
            &[&root.join("layer"), &sb.path],
            &root.join("upper"),
            &root.join("work"),
            &merged,
        )?;
        Ok((merged, changes))
    }

    async fn copy_view(
        &self,
        sb: &Sandbox,
        protect: &Protect,
        root: &Path,
    ) -> Result<(PathBuf, Vec<ProtectedChange>)> {
        let tree = root.join("tree");
        // `cp -a src/. dst`: the work tree as it is now, `.git` file included (gates may run git).
        // Killed when this future is dropped (the engine bounds the view's preparation by the
        // gate budget): a huge work tree leaves no copy running behind it.
        let out = tokio::process::Command::new("cp")
            .args(["-a", "--reflink=auto", "--"])
            .arg(sb.path.join("."))
            .arg(&tree)
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| SandboxError::io("run cp for", &tree, e))?;
        if !out.status.success() {
            return Err(SandboxError::io(
                "copy the work tree to",
                &tree,
                std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
            ));
        }
        let (base, _) = self.protected_base(sb, protect).await?;
        let (protect2, tree2, base2) = (protect.clone(), tree.clone(), base.clone());
        let changes = blocking(move || {
            let present = walk(&tree2, false);
            diff(&protect2, &base2, &BaseFiles::Blobs, &tree2, &present)
        })
        .await?;
        for c in &changes {
            let dest = tree.join(&c.path);
            remove_any(&tree, Path::new(&c.path)).await?;
            let Some(entry) = base.get(&c.path) else {
                continue; // added: gone is its base state
            };
            let args = ["--no-replace-objects", "cat-file", "blob", &entry.sha];
            let (code, bytes, stderr) = git::run_raw(&sb.repo_dir, &args).await?;
            if code != Some(0) {
                let out = git::Output {
                    code,
                    stdout: String::new(),
                    stderr,
                };
                return Err(git::git_error(&sb.repo_dir, "cat-file", &out));
            }
            restore_file(&dest, entry.mode, bytes).await?;
        }
        Ok((tree, changes))
    }
}

/// Unmounts `root/merged` if mounted and deletes `root`.
pub(crate) async fn drop_view_dir(root: &Path) -> Result<()> {
    let merged = root.join("merged");
    if overlay::is_mounted(&merged) {
        overlay::unmount(&merged)?;
    }
    match tokio::fs::remove_dir_all(root).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SandboxError::io("remove", root, e)),
    }
}

fn create_parent(p: &Path) -> Result<()> {
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).map_err(|e| SandboxError::io("create", parent, e))?;
    }
    Ok(())
}

/// A hard link to the base checkout's file (a lower layer is never written), or a copy when the
/// two are on different filesystems; a symlink is recreated.
fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    create_parent(to)?;
    let meta = std::fs::symlink_metadata(from).map_err(|e| SandboxError::io("stat", from, e))?;
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(from).map_err(|e| SandboxError::io("readlink", from, e))?;
        return std::os::unix::fs::symlink(target, to)
            .map_err(|e| SandboxError::io("symlink", to, e));
    }
    match std::fs::hard_link(from, to) {
        Ok(()) => Ok(()),
        Err(_) => std::fs::copy(from, to)
            .map(|_| ())
            .map_err(|e| SandboxError::io("copy", to, e)),
    }
}

/// An overlay whiteout (character device 0/0) at `layer/rel`: hides the path of the layers below.
/// Nothing to do when a parent of it in the layer is a file already (that hides all below it).
fn whiteout(layer: &Path, rel: &str) -> Result<()> {
    let p = &layer.join(rel);
    let mut at = layer.to_path_buf();
    for part in rel
        .split('/')
        .take(rel.split('/').count().saturating_sub(1))
    {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if !m.is_dir() => return Ok(()),
            _ => {}
        }
    }
    create_parent(p)?;
    nix::sys::stat::mknod(
        p,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o000),
        0,
    )
    .map_err(|e| SandboxError::io("mknod (whiteout)", p, std::io::Error::from(e)))
}

/// Removes whatever is at `tree/rel` (file, symlink or directory) without following a link on
/// the way: walking down from `tree`, the first component of `rel` that is not a real directory
/// (a file where a directory should be, or a symlink the agent planted — `.github ->
/// /elsewhere`) is removed itself, and nothing behind it is touched, so the base version can be
/// written in its place inside the view, never outside it.
async fn remove_any(tree: &Path, rel: &Path) -> Result<()> {
    let mut at = tree.to_path_buf();
    let mut parts = rel.components().peekable();
    while let Some(part) = parts.next() {
        at.push(part);
        // lstat: every component above `at` is a real directory, so nothing here is followed.
        let Ok(m) = tokio::fs::symlink_metadata(&at).await else {
            return Ok(()); // absent, and so is everything below it
        };
        let last = parts.peek().is_none();
        if m.is_dir() && !last {
            continue;
        }
        return match m.is_dir() {
            true => tokio::fs::remove_dir_all(&at).await,
            false => tokio::fs::remove_file(&at).await,
        }
        .map_err(|e| SandboxError::io("remove", &at, e));
    }
    Ok(())
}

/// Writes a base blob at `p` with git's mode (`100644`, `100755` or a symlink).
async fn restore_file(p: &Path, mode: u32, bytes: Vec<u8>) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    create_parent(p)?;
    if mode == 0o120000 {
        let target = os_string(bytes);
        return std::os::unix::fs::symlink(target, p)
            .map_err(|e| SandboxError::io("symlink", p, e));
    }
    tokio::fs::write(p, bytes)
        .await
        .map_err(|e| SandboxError::io("write", p, e))?;
    let perm = if mode & 0o100 != 0 { 0o755 } else { 0o644 };
    tokio::fs::set_permissions(p, std::fs::Permissions::from_mode(perm))
        .await
        .map_err(|e| SandboxError::io("chmod", p, e))
}

fn os_string(bytes: Vec<u8>) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt;
    std::ffi::OsString::from_vec(bytes)
}
