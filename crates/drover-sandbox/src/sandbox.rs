//! The per-task lifecycle: prepare, commit_all, remove, finish, load, list.

use std::path::{Path, PathBuf};

use crate::base::{base_lock_name, DEFAULT_EMAIL, DEFAULT_NAME};
use crate::error::{Result, SandboxError};
use crate::git::{self, path_str};
use crate::overlay::{self, is_mounted};
use crate::{validate_task_id, worktree, Resolved, Sandbox, SandboxKind, Sandboxes};

const META: &str = "sandbox.json";

/// Prefix for git commands drover runs inside a sandbox on the agent's files: no hooks and no
/// fsmonitor command from a config the agent may have edited, so saving work runs nothing else.
pub(crate) const INSIDE: [&str; 4] = [
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
];

/// What a config key the agent may have set must be overridden with on the daemon's git: the
/// commands of filter, diff and merge drivers (a `.gitattributes` line names a driver, the
/// config gives its command — which the daemon's git, outside the jail, would run) and an
/// external diff. `None`: the key names no command.
fn neutralized(key: &str) -> Option<&'static str> {
    let k = key.to_ascii_lowercase();
    let driver = |section: &str, vars: &[&str]| {
        k.starts_with(section) && vars.iter().any(|v| k.ends_with(v))
    };
    if k == "diff.external" || driver("filter.", &[".clean", ".smudge", ".process"]) {
        Some("")
    } else if driver("filter.", &[".required"]) {
        Some("false")
    } else if driver("diff.", &[".textconv", ".command"]) || driver("merge.", &[".driver"]) {
        Some("")
    } else {
        None
    }
}

/// `INSIDE`, an override for every command-naming key the checkout's config holds (any scope,
/// includes followed: [`neutralized`]), the checkout as the work tree whatever `core.worktree`
/// says, then `args`. Submodules' own configs are never read: callers' `status` ignores their
/// work trees.
pub(crate) async fn inside(dir: &Path, args: &[&str]) -> Result<Vec<String>> {
    let listed = git::run_raw(dir, &["config", "--list", "--name-only", "-z"]).await?;
    let mut out: Vec<String> = INSIDE.map(String::from).to_vec();
    for key in listed.1.split(|b| *b == 0).filter(|k| !k.is_empty()) {
        let key = String::from_utf8_lossy(key);
        if let Some(value) = neutralized(&key) {
            out.extend(["-c".to_string(), format!("{key}={value}")]);
        }
    }
    out.push(format!("--work-tree={}", path_str(dir)?));
    out.extend(args.iter().map(|a| a.to_string()));
    Ok(out)
}

/// Refuses to run the daemon's git on a checkout whose `.git` no longer is the sandbox's own
/// repository: the agent may have replaced it (a gitfile or symlink to another repository on
/// the host, one it cannot even see from its jail) or redirected it (`commondir`), and the
/// daemon's `add`/`commit` would then write there. Overlay: `.git` is a real directory without
/// `commondir`. Worktree: `.git` is a file naming a directory under the user's repository's
/// `worktrees/`, whose `commondir` leads back to that repository.
pub(crate) async fn check_git_dir(sb: &Sandbox) -> Result<()> {
    let dot_git = sb.path.join(".git");
    let meta = std::fs::symlink_metadata(&dot_git);
    let ok = match sb.kind {
        SandboxKind::Overlay => {
            meta.is_ok_and(|m| m.is_dir())
                && std::fs::symlink_metadata(dot_git.join("commondir")).is_err()
        }
        SandboxKind::Worktree => meta.is_ok_and(|m| m.is_file()) && worktree_link_ok(sb).await,
    };
    if ok {
        return Ok(());
    }
    Err(SandboxError::Git {
        op: "check .git".to_string(),
        dir: sb.path.display().to_string(),
        stderr: "the checkout's .git was replaced or redirected away from the sandbox's own \
                 repository; nothing is committed through it"
            .to_string(),
    })
}

async fn worktree_link_ok(sb: &Sandbox) -> bool {
    let common = git::run(
        &sb.repo_dir,
        &["rev-parse", "--path-format=absolute", "--git-common-dir"],
    )
    .await;
    let Some(common) = common
        .ok()
        .filter(|o| o.ok())
        .and_then(|o| std::fs::canonicalize(o.stdout.trim()).ok())
    else {
        return false;
    };
    let Ok(body) = std::fs::read_to_string(sb.path.join(".git")) else {
        return false;
    };
    let Some(gitdir) = body
        .trim()
        .strip_prefix("gitdir:")
        .map(|g| sb.path.join(g.trim()))
        .and_then(|g| std::fs::canonicalize(g).ok())
    else {
        return false;
    };
    if gitdir.parent() != Some(common.join("worktrees").as_path()) {
        return false;
    }
    match std::fs::read_to_string(gitdir.join("commondir")) {
        Ok(c) => std::fs::canonicalize(gitdir.join(c.trim())).is_ok_and(|c| c == common),
        Err(_) => false,
    }
}

async fn git_inside(dir: &Path, op: &str, args: &[&str]) -> Result<String> {
    let args = inside(dir, args).await?;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    git::git(dir, op, &args).await
}

impl Sandboxes {
    /// Makes the checkout for `task_id` at `resolved.commit`, on branch `drover/<task_id>`.
    ///
    /// Overlay: builds (once per repository and commit, under a lock, in a temp dir renamed into
    /// place) the base checkout, mounts `root/{upper,work,merged}` over it and points HEAD at the new
    /// branch with `update-ref` + `symbolic-ref` — no checkout, so constant time.
    /// Worktree: `git worktree add -b drover/<id> root/wt <commit>` in the user's repository.
    /// `root/sandbox.json` is written before the mount / worktree so a restarted daemon finds it.
    /// On failure nothing is left behind (there is no work yet).
    pub async fn prepare(&self, task_id: &str, resolved: &Resolved) -> Result<Sandbox> {
        validate_task_id(task_id)?;
        let task_lock = self.lock_for(&format!("task:{task_id}"));
        let _task_guard = task_lock.lock().await;
        let root = self.fresh_root(task_id).await?;
        let result = match self.kind() {
            SandboxKind::Overlay => self.prepare_overlay(task_id, resolved, &root).await,
            SandboxKind::Worktree => self.prepare_worktree(task_id, resolved, &root).await,
        };
        if let Err(e) = &result {
            tracing::warn!(task_id, error = %e, "sandbox prepare failed; cleaning up");
            unmount_under(&root);
            let _ = tokio::fs::remove_dir_all(&root).await;
        }
        result
    }

    /// `DROVER_HOME/sandboxes/<task_id>`, created empty: [`SandboxError::SandboxExists`] when it
    /// holds a sandbox; the leftovers of a prepare that died before writing any metadata (so
    /// before any work) are removed. Call with the task's lock held.
    pub(crate) async fn fresh_root(&self, task_id: &str) -> Result<PathBuf> {
        let dir = self.sandboxes_dir();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| SandboxError::io("create", &dir, e))?;
        let root = dir.join(task_id);
        match tokio::fs::create_dir(&root).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if read_meta(&root).is_some() {
                    return Err(SandboxError::SandboxExists(task_id.to_string()));
                }
                // A prepare that died half-way (no metadata yet, so no work): start over.
                unmount_under(&root);
                tokio::fs::remove_dir_all(&root)
                    .await
                    .map_err(|e| SandboxError::io("remove", &root, e))?;
                tokio::fs::create_dir(&root)
                    .await
                    .map_err(|e| SandboxError::io("create", &root, e))?;
            }
            Err(e) => return Err(SandboxError::io("create", &root, e)),
        }
        Ok(root)
    }

    async fn prepare_overlay(
        &self,
        task_id: &str,
        resolved: &Resolved,
        root: &Path,
    ) -> Result<Sandbox> {
        self.overlay_at(task_id, resolved, root, None, &mut Meta::Own)
            .await
    }

    /// An overlay checkout with its layers under `root` and its view at `path` (default
    /// `root/merged`); its metadata is written as `meta` says (while the base's lock is held, so
    /// garbage collection sees the base in use).
    pub(crate) async fn overlay_at(
        &self,
        task_id: &str,
        resolved: &Resolved,
        root: &Path,
        path: Option<PathBuf>,
        meta: &mut Meta<'_>,
    ) -> Result<Sandbox> {
        let sb = {
            let key = crate::base::base_key(resolved);
            let lock = self.lock_for(&base_lock_name(&key));
            let _guard = lock.lock().await;
            let (key, base) = self.ensure_base(resolved).await?;
            let mut sb = new_sandbox(
                task_id,
                SandboxKind::Overlay,
                root,
                resolved,
                Some((key, base)),
            );
            if let Some(path) = path {
                sb.path = path;
            }
            meta.record(&sb).await?;
            sb
        };
        for p in [root.join("upper"), root.join("work"), sb.path.clone()] {
            tokio::fs::create_dir_all(&p)
                .await
                .map_err(|e| SandboxError::io("create", &p, e))?;
        }
        self.mount(&sb)?;
        // The branch and HEAD are two small files in the sandbox's own `.git` (its upper
        // layer): written directly, they cost no git process — constant time, whatever the repo.
        let git_dir = sb.path.join(".git");
        let ref_path = git_dir.join("refs").join("heads").join(&sb.branch);
        if let Some(parent) = ref_path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| SandboxError::io("create", parent, e))?;
        }
        tokio::fs::write(&ref_path, format!("{}\n", sb.base_commit))
            .await
            .map_err(|e| SandboxError::io("write", &ref_path, e))?;
        let head = git_dir.join("HEAD");
        tokio::fs::write(&head, format!("ref: refs/heads/{}\n", sb.branch))
            .await
            .map_err(|e| SandboxError::io("write", &head, e))?;
        Ok(sb)
    }

    async fn prepare_worktree(
        &self,
        task_id: &str,
        resolved: &Resolved,
        root: &Path,
    ) -> Result<Sandbox> {
        self.worktree_at(task_id, resolved, root, None, &mut Meta::Own)
            .await
    }

    /// A worktree checkout at `path` (default `root/wt`); metadata as in `overlay_at`.
    pub(crate) async fn worktree_at(
        &self,
        task_id: &str,
        resolved: &Resolved,
        root: &Path,
        path: Option<PathBuf>,
        meta: &mut Meta<'_>,
    ) -> Result<Sandbox> {
        let mut sb = new_sandbox(task_id, SandboxKind::Worktree, root, resolved, None);
        if let Some(path) = path {
            sb.path = path;
        }
        meta.record(&sb).await?;
        let lock = self.repo_lock(&sb.repo_dir);
        let _guard = lock.lock().await;
        let added = worktree::add(&sb.repo_dir, &sb.branch, &sb.path, &sb.base_commit).await;
        if added.is_err() {
            let _ = git::run(&sb.repo_dir, &["worktree", "prune"]).await;
        }
        added.map(|()| sb)
    }

    /// Commits every change in the sandbox (`git add -A`: untracked files included, ignored files
    /// left out) on the task branch, then makes the branch reach the user's repository (overlay:
    /// `git -C repo_dir fetch <merged> +refs/heads/drover/<id>:refs/heads/drover/<id>`; worktree:
    /// the branch already lives there).
    ///
    /// The commit uses the repository's / user's git identity, or `drover <drover@localhost>` when
    /// none is set; hooks are skipped (`--no-verify`) and signing is off, so saving work cannot be
    /// blocked. If the agent moved HEAD off the branch, the branch is fast-forwarded to HEAD when
    /// possible; otherwise HEAD is also delivered as `drover/<id>-head`.
    ///
    /// Returns `Some(sha of the branch head)` — also when nothing changed (then it is the base
    /// commit, or whatever the agent committed itself). `None` is never returned today.
    /// On error (e.g. a failed `git commit`: [`SandboxError::Git`]) the sandbox is left intact.
    ///
    /// A workspace: every member, in order ([`Sandboxes::commit_members`]); the first's head.
    pub async fn commit_all(&self, sb: &Sandbox, message: &str) -> Result<Option<String>> {
        if !sb.members.is_empty() {
            let heads = self.commit_members(sb, message).await?;
            return Ok(heads.into_iter().next().map(|(_, head)| head));
        }
        self.ensure_mounted(sb)?;
        check_git_dir(sb).await?;
        let dir = &sb.path;
        // One `status` decides whether there is anything to commit (the common no-change case
        // then costs no further git process here).
        let status_args = ["status", "--porcelain", "--ignore-submodules=dirty"];
        let status = git_inside(dir, "status", &status_args).await?;
        let staged = if status.is_empty() {
            None
        } else {
            git_inside(dir, "add -A", &["add", "-A"]).await?;
            let quiet = inside(dir, &["diff", "--cached", "--quiet"]).await?;
            let quiet: Vec<&str> = quiet.iter().map(String::as_str).collect();
            Some(git::run(dir, &quiet).await?)
        };
        match staged.as_ref().and_then(|s| s.code) {
            None | Some(0) => {}
            Some(1) => {
                let mut args: Vec<String> = inside(dir, &[]).await?;
                for (key, value) in [("user.name", DEFAULT_NAME), ("user.email", DEFAULT_EMAIL)] {
                    if !git::config_is_set(dir, key).await? {
                        args.extend(["-c".to_string(), format!("{key}={value}")]);
                    }
                }
                args.extend(
                    [
                        "-c",
                        "commit.gpgsign=false",
                        "commit",
                        "-q",
                        "--no-verify",
                        "-m",
                        message,
                    ]
                    .map(String::from),
                );
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                git::git(dir, "commit", &args).await?;
            }
            _ => {
                if let Some(staged) = &staged {
                    return Err(git::git_error(dir, "diff --cached", staged));
                }
            }
        }
        let branch_ref = format!("refs/heads/{}", sb.branch);
        let mut deliver = vec![sb.branch.clone()];
        let on = match head_ref(dir).await {
            Some(r) => r,
            // A worktree's `.git` is a file pointing elsewhere: ask git.
            None => git::run(dir, &["symbolic-ref", "-q", "HEAD"])
                .await?
                .stdout
                .trim()
                .to_string(),
        };
        if on != branch_ref {
            let ff = git::run(dir, &["merge-base", "--is-ancestor", &branch_ref, "HEAD"]).await?;
            if ff.ok() {
                git::git(dir, "update-ref", &["update-ref", &branch_ref, "HEAD"]).await?;
            } else {
                let side = format!("{}-head", sb.branch);
                tracing::warn!(task_id = %sb.task_id, side, "HEAD left the task branch; delivering it separately");
                git::git(
                    dir,
                    "update-ref",
                    &["update-ref", &format!("refs/heads/{side}"), "HEAD"],
                )
                .await?;
                deliver.push(side);
            }
        }
        let head = match loose_ref(dir, &branch_ref).await {
            Some(sha) => sha,
            None => git::git(dir, "rev-parse", &["rev-parse", "--verify", &branch_ref]).await?,
        };
        if sb.kind == SandboxKind::Overlay && deliver.len() == 1 && head == sb.base_commit {
            // Nothing new: the user's repository has the commit already; only the ref is new.
            let lock = self.repo_lock(&sb.repo_dir);
            let _guard = lock.lock().await;
            git::git(
                &sb.repo_dir,
                "update-ref (deliver task branch)",
                &["update-ref", &branch_ref, &head],
            )
            .await?;
        } else if sb.kind == SandboxKind::Overlay {
            let lock = self.repo_lock(&sb.repo_dir);
            let _guard = lock.lock().await;
            let mut args = vec![
                "fetch",
                "-q",
                "--no-write-fetch-head",
                "--no-auto-maintenance",
                path_str(dir)?,
            ];
            let specs: Vec<String> = deliver
                .iter()
                .map(|b| format!("+refs/heads/{b}:refs/heads/{b}"))
                .collect();
            args.extend(specs.iter().map(String::as_str));
            git::git(&sb.repo_dir, "fetch (deliver task branch)", &args).await?;
        }
        Ok(Some(head))
    }

    /// Removes the sandbox: unmounts the overlay (lazy detach if busy) or removes the worktree
    /// (`git worktree remove --force` + prune), then deletes `DROVER_HOME/sandboxes/<id>/`.
    ///
    /// Only call this after [`Sandboxes::commit_all`] succeeded (or use [`Sandboxes::finish`]).
    /// As a safety net it refuses with [`SandboxError::UncommittedChanges`] when `git status` shows
    /// changes, and (overlay) with [`SandboxError::NotDelivered`] when the user's repository does
    /// not have the sandbox's branch head. [`Sandboxes::discard`] skips these checks.
    pub async fn remove(&self, sb: &Sandbox) -> Result<()> {
        if !sb.members.is_empty() {
            return self.remove_workspace(sb, true).await;
        }
        if sb.path.exists() || sb.kind == SandboxKind::Overlay {
            self.ensure_mounted(sb)?;
            check_git_dir(sb).await?;
            let status_args = ["status", "--porcelain", "--ignore-submodules=dirty"];
            let status = git_inside(&sb.path, "status", &status_args).await?;
            if !status.is_empty() {
                return Err(SandboxError::UncommittedChanges {
                    task_id: sb.task_id.clone(),
                });
            }
            if sb.kind == SandboxKind::Overlay {
                let branch_ref = format!("refs/heads/{}", sb.branch);
                let ours =
                    git::run(&sb.path, &["rev-parse", "--verify", "-q", &branch_ref]).await?;
                let theirs =
                    git::run(&sb.repo_dir, &["rev-parse", "--verify", "-q", &branch_ref]).await?;
                if ours.stdout.trim() != theirs.stdout.trim() || !theirs.ok() {
                    return Err(SandboxError::NotDelivered {
                        task_id: sb.task_id.clone(),
                        branch: sb.branch.clone(),
                        repo_dir: sb.repo_dir.display().to_string(),
                    });
                }
            }
        }
        self.discard(sb).await
    }

    /// Removes the sandbox WITHOUT the checks of [`Sandboxes::remove`]: uncommitted work is lost.
    /// For callers that decided so explicitly (e.g. a sandbox whose base checkout is gone).
    pub async fn discard(&self, sb: &Sandbox) -> Result<()> {
        if !sb.members.is_empty() {
            return self.remove_workspace(sb, false).await;
        }
        crate::gate_view::drop_view_dir(&sb.root.join("gate")).await?;
        match sb.kind {
            SandboxKind::Overlay => overlay::unmount(&sb.path)?,
            SandboxKind::Worktree => {
                let lock = self.repo_lock(&sb.repo_dir);
                let _guard = lock.lock().await;
                worktree::remove(&sb.repo_dir, &sb.path).await?;
            }
        }
        match tokio::fs::remove_dir_all(&sb.root).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(SandboxError::io("remove", &sb.root, e)),
        }
    }

    /// [`Sandboxes::commit_all`], then [`Sandboxes::remove`]. Returns the branch head.
    /// If the commit fails, nothing is removed.
    pub async fn finish(&self, sb: &Sandbox, message: &str) -> Result<Option<String>> {
        let head = self.commit_all(sb, message).await?;
        // commit_all just committed and delivered everything: remove()'s checks would only
        // repeat it.
        self.discard(sb).await?;
        Ok(head)
    }

    /// The sandbox of `task_id` from its `sandbox.json`, or `None` when there is none. An overlay
    /// whose mount is gone (e.g. after a reboot) is mounted again over its kept upper layer.
    pub async fn load(&self, task_id: &str) -> Result<Option<Sandbox>> {
        validate_task_id(task_id)?;
        let path = self.sandboxes_dir().join(task_id).join(META);
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(SandboxError::io("read", &path, e)),
        };
        let sb: Sandbox = serde_json::from_str(&text).map_err(|e| SandboxError::BadMetadata {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        self.ensure_mounted(&sb)?;
        Ok(Some(sb))
    }

    /// Task ids that have a directory under `DROVER_HOME/sandboxes/`, sorted.
    pub fn list(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.sandboxes_dir()) else {
            return Vec::new();
        };
        let mut ids: Vec<String> = entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|id| validate_task_id(id).is_ok())
            .collect();
        ids.sort();
        ids
    }

    /// Task ids whose overlay is currently mounted (`DROVER_HOME/sandboxes/<id>/merged` in
    /// `/proc/self/mountinfo`), sorted.
    pub fn mounted_task_ids(&self) -> Vec<String> {
        let dir = self.sandboxes_dir();
        let mut ids: Vec<String> = overlay::mounts()
            .into_iter()
            .filter(|m| m.fstype == "overlay")
            .filter_map(|m| {
                // `<id>/merged`, or a workspace member's `<id>/ws/<dir>`.
                let rel = m.point.strip_prefix(&dir).ok()?;
                let parts: Vec<&str> = rel.iter().filter_map(|c| c.to_str()).collect();
                match parts.as_slice() {
                    [id, "merged"] | [id, "ws", _] => Some(id.to_string()),
                    _ => None,
                }
            })
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Mounts an overlay sandbox whose mount is missing. Worktrees need nothing.
    pub(crate) fn ensure_mounted(&self, sb: &Sandbox) -> Result<()> {
        if !sb.members.is_empty() {
            for m in &sb.members {
                self.ensure_mounted(m)?;
            }
            return Ok(());
        }
        if sb.kind != SandboxKind::Overlay || is_mounted(&sb.path) {
            return Ok(());
        }
        tracing::info!(task_id = %sb.task_id, "overlay not mounted; mounting it again");
        for d in [sb.root.join("work"), sb.path.clone()] {
            std::fs::create_dir_all(&d).map_err(|e| SandboxError::io("create", &d, e))?;
        }
        self.mount(sb)
    }

    fn mount(&self, sb: &Sandbox) -> Result<()> {
        let base = sb.base_dir.clone().unwrap_or_default();
        let upper = sb.upper_dir();
        if !base.join(".git").exists() || !upper.is_dir() {
            return Err(SandboxError::BaseMissing {
                task_id: sb.task_id.clone(),
                base: base.display().to_string(),
                upper: upper.display().to_string(),
            });
        }
        overlay::mount_overlay(&base, &upper, &sb.root.join("work"), &sb.path)
    }

    pub(crate) fn repo_lock(&self, repo_dir: &Path) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        self.lock_for(&format!("repo:{}", repo_dir.display()))
    }
}

fn new_sandbox(
    task_id: &str,
    kind: SandboxKind,
    root: &Path,
    resolved: &Resolved,
    base: Option<(String, PathBuf)>,
) -> Sandbox {
    let path = root.join(match kind {
        SandboxKind::Overlay => "merged",
        SandboxKind::Worktree => "wt",
    });
    let (base_key, base_dir) = base.unzip();
    Sandbox {
        task_id: task_id.to_string(),
        kind,
        path,
        root: root.to_path_buf(),
        branch: format!("drover/{task_id}"),
        base_commit: resolved.commit.clone(),
        repo_dir: resolved.repo_dir.clone(),
        base_key,
        base_dir,
        members: vec![],
    }
}

/// Unmounts every overlay mounted at or below `root` (deepest first), ignoring errors: the
/// clean-up of a prepare that failed or died before any work.
pub(crate) fn unmount_under(root: &Path) {
    let mut points: Vec<PathBuf> = overlay::mounts()
        .into_iter()
        .map(|m| m.point)
        .filter(|p| p.starts_with(root))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in points {
        let _ = overlay::unmount(&p);
    }
}

/// Where a new checkout's metadata goes: its own `sandbox.json`, or the member list of the
/// workspace being made (whose `sandbox.json` is rewritten).
pub(crate) enum Meta<'a> {
    Own,
    Workspace(&'a mut Sandbox),
}

impl Meta<'_> {
    async fn record(&mut self, sb: &Sandbox) -> Result<()> {
        match self {
            Meta::Own => write_meta(sb).await,
            Meta::Workspace(ws) => {
                ws.members.push(sb.clone());
                write_meta(ws).await
            }
        }
    }
}

/// Writes `root/sandbox.json` atomically.
pub(crate) async fn write_meta(sb: &Sandbox) -> Result<()> {
    let path = sb.root.join(META);
    let tmp = sb.root.join(".sandbox.json.tmp");
    let text = serde_json::to_string_pretty(sb).map_err(|e| SandboxError::BadMetadata {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    tokio::fs::write(&tmp, text)
        .await
        .map_err(|e| SandboxError::io("write", &tmp, e))?;
    tokio::fs::rename(&tmp, &path)
        .await
        .map_err(|e| SandboxError::io("rename", &path, e))
}

pub(crate) fn read_meta(root: &Path) -> Option<Sandbox> {
    let text = std::fs::read_to_string(root.join(META)).ok()?;
    serde_json::from_str(&text).ok()
}

/// The ref HEAD points at in a checkout, read from its `.git/HEAD` (no git process); `None` if
/// HEAD is detached or unreadable.
async fn head_ref(checkout: &Path) -> Option<String> {
    let head = tokio::fs::read_to_string(checkout.join(".git").join("HEAD"))
        .await
        .ok()?;
    head.trim().strip_prefix("ref: ").map(str::to_string)
}

/// A loose ref's sha from the checkout's own `.git` (no git process); `None` if it is packed,
/// missing, or the checkout's `.git` is not a directory (worktrees).
async fn loose_ref(checkout: &Path, full_ref: &str) -> Option<String> {
    let text = tokio::fs::read_to_string(checkout.join(".git").join(full_ref))
        .await
        .ok()?;
    let sha = text.trim();
    (sha.len() >= 40 && sha.chars().all(|c| c.is_ascii_hexdigit())).then(|| sha.to_string())
}
