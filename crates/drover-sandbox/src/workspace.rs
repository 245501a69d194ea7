//! A multi-repo task's workspace: `sandboxes/<id>/ws/<dir>` per repository, each a sandbox of
//! its own (overlay layers under `sandboxes/<id>/m/<dir>/`, or a worktree of that repository),
//! all on branch `drover/<id>`. `sandbox.json` (the workspace's) lists them as `members`.

use std::collections::HashSet;
use std::path::Path;

use crate::error::{Result, SandboxError};
use crate::sandbox::{unmount_under, write_meta, Meta};
use crate::{validate_task_id, Resolved, Sandbox, SandboxKind, Sandboxes};

/// The most repositories one task may hold.
pub const MAX_REPOS: usize = 16;

/// The directory name of a repository's checkout in a workspace: the repository's own name
/// (the last path segment of `source`, or of `repo_dir` for a local path, without `.git`),
/// cut to letters, digits, `.`, `_` and `-` (anything else becomes `-`); `repo` when nothing is
/// left. `taken` holds the names already given: a collision gets `-2`, `-3`, …
pub fn checkout_name(source: &str, repo_dir: &Path, taken: &HashSet<String>) -> String {
    let last = |s: &str| {
        s.trim_end_matches('/')
            .rsplit(['/', ':'])
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let raw = if crate::is_url(source) {
        last(source)
    } else {
        let top = last(&repo_dir.display().to_string());
        // A work tree's `.git` directory names nothing: use its parent.
        if top == ".git" {
            repo_dir
                .parent()
                .map(|p| last(&p.display().to_string()))
                .unwrap_or_default()
        } else {
            top
        }
    };
    let raw = raw.strip_suffix(".git").unwrap_or(&raw);
    let clean: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let clean = clean.trim_start_matches(['.', '-']);
    let base = if clean.is_empty() { "repo" } else { clean };
    let base: String = base.chars().take(64).collect();
    if !taken.contains(&base) {
        return base;
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|name| !taken.contains(name))
        .unwrap_or(base)
}

fn valid_dir(dir: &str) -> bool {
    !dir.is_empty()
        && dir.len() <= 100
        && !dir.starts_with(['.', '-'])
        && dir
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl Sandboxes {
    /// Makes the workspace of a multi-repo task: `root/ws` holding each repository's checkout at
    /// `root/ws/<dir>` (`members`: `(dir, resolved)`, in order; at most [`MAX_REPOS`], distinct
    /// valid names), each on branch `drover/<task_id>` at its own base commit. The returned
    /// sandbox's `path` is the workspace, its `repo_dir`/`base_commit` the first member's.
    /// `sandbox.json` is written first and again as each member is made, so a restarted daemon
    /// finds every checkout that exists; on failure nothing is left behind (there is no work yet).
    pub async fn prepare_workspace(
        &self,
        task_id: &str,
        members: &[(String, Resolved)],
    ) -> Result<Sandbox> {
        validate_task_id(task_id)?;
        let bad = |reason: String| SandboxError::BadPath {
            path: task_id.to_string(),
            reason,
        };
        let Some((_, first)) = members.first() else {
            return Err(bad("a workspace needs at least one repository".into()));
        };
        if members.len() > MAX_REPOS {
            return Err(bad(format!(
                "a task holds at most {MAX_REPOS} repositories"
            )));
        }
        let mut seen = HashSet::new();
        for (dir, _) in members {
            if !valid_dir(dir) || !seen.insert(dir.as_str()) {
                return Err(bad(format!(
                    "checkout name {dir:?} is not a distinct plain name"
                )));
            }
        }
        let task_lock = self.lock_for(&format!("task:{task_id}"));
        let _task_guard = task_lock.lock().await;
        let root = self.fresh_root(task_id).await?;
        let ws_dir = root.join("ws");
        let mut ws = Sandbox {
            task_id: task_id.to_string(),
            kind: self.kind(),
            path: ws_dir.clone(),
            root: root.clone(),
            branch: format!("drover/{task_id}"),
            base_commit: first.commit.clone(),
            repo_dir: first.repo_dir.clone(),
            base_key: None,
            base_dir: None,
            members: vec![],
        };
        let made = async {
            tokio::fs::create_dir_all(&ws_dir)
                .await
                .map_err(|e| SandboxError::io("create", &ws_dir, e))?;
            write_meta(&ws).await?;
            for (dir, resolved) in members {
                let member_root = root.join("m").join(dir);
                let path = Some(ws_dir.join(dir));
                let mut meta = Meta::Workspace(&mut ws);
                match self.kind() {
                    SandboxKind::Overlay => {
                        self.overlay_at(task_id, resolved, &member_root, path, &mut meta)
                            .await?
                    }
                    SandboxKind::Worktree => {
                        self.worktree_at(task_id, resolved, &member_root, path, &mut meta)
                            .await?
                    }
                };
            }
            Ok::<(), SandboxError>(())
        }
        .await;
        match made {
            Ok(()) => Ok(ws),
            Err(e) => {
                tracing::warn!(task_id, error = %e, "workspace prepare failed; cleaning up");
                for m in &ws.members {
                    if m.kind == SandboxKind::Worktree {
                        let _ = crate::worktree::remove(&m.repo_dir, &m.path).await;
                    }
                }
                unmount_under(&root);
                let _ = tokio::fs::remove_dir_all(&root).await;
                Err(e)
            }
        }
    }

    /// Commits and delivers every member of a workspace ([`Sandboxes::commit_all`] each, in
    /// order): `(dir, head)` per member. The first failure stops it; members before it are
    /// committed and delivered, the rest stay as they are.
    pub async fn commit_members(
        &self,
        ws: &Sandbox,
        message: &str,
    ) -> Result<Vec<(String, String)>> {
        let mut heads = Vec::with_capacity(ws.members.len());
        for m in &ws.members {
            if let Some(head) = Box::pin(self.commit_all(m, message)).await? {
                heads.push((m.dir_name(), head));
            }
        }
        Ok(heads)
    }

    /// `remove` (`checked`) or `discard` of a workspace: each member, the metadata rewritten
    /// without it as it goes (a failure leaves the rest listed), then the workspace's root.
    pub(crate) async fn remove_workspace(&self, ws: &Sandbox, checked: bool) -> Result<()> {
        let mut left = ws.clone();
        while let Some(m) = left.members.first().cloned() {
            if checked {
                Box::pin(self.remove(&m)).await?;
            } else {
                Box::pin(self.discard(&m)).await?;
            }
            left.members.remove(0);
            if left.members.is_empty() {
                break;
            }
            write_meta(&left).await?;
        }
        match tokio::fs::remove_dir_all(&ws.root).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(SandboxError::io("remove", &ws.root, e)),
        }
    }

    /// The checkouts of `task_id`'s workspace as its `sandbox.json` lists them (empty: no
    /// workspace). Read from drover's own metadata, never from the work tree the agent writes.
    pub fn member_paths(&self, task_id: &str) -> Vec<std::path::PathBuf> {
        if validate_task_id(task_id).is_err() {
            return vec![];
        }
        crate::sandbox::read_meta(&self.sandboxes_dir().join(task_id))
            .map(|sb| sb.members.into_iter().map(|m| m.path).collect())
            .unwrap_or_default()
    }

    /// The object directories `task_id`'s overlay checkouts borrow through alternates (the
    /// repository the base checkout was cloned from, `clone --shared`): git inside a jail needs
    /// them readable. Read from drover's base checkouts (the overlays' read-only lower layers),
    /// never from the checkout the agent writes.
    pub fn borrowed_objects(&self, task_id: &str) -> Vec<std::path::PathBuf> {
        if validate_task_id(task_id).is_err() {
            return vec![];
        }
        let Some(sb) = crate::sandbox::read_meta(&self.sandboxes_dir().join(task_id)) else {
            return vec![];
        };
        std::iter::once(&sb)
            .chain(&sb.members)
            .filter_map(|s| s.base_dir.as_ref())
            .filter_map(|b| std::fs::read_to_string(b.join(".git/objects/info/alternates")).ok())
            .flat_map(|text| {
                text.lines()
                    .map(str::trim)
                    .filter(|l| l.starts_with('/'))
                    .map(std::path::PathBuf::from)
                    .collect::<Vec<_>>()
            })
            .filter(|p| p.is_dir())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkout_names_come_from_the_repository_and_never_collide() {
        let mut taken = HashSet::new();
        let a = checkout_name("https://git.example/acme/api.git", Path::new("/x"), &taken);
        assert_eq!(a, "api");
        taken.insert(a);
        let b = checkout_name("/home/u/api", Path::new("/home/u/api"), &taken);
        assert_eq!(b, "api-2");
        taken.insert(b);
        assert_eq!(
            checkout_name("/srv/api.git", Path::new("/srv/api.git"), &taken),
            "api-3"
        );
        assert_eq!(
            checkout_name("git@h:o/we ird.git", Path::new("/x"), &HashSet::new()),
            "we-ird"
        );
        assert_eq!(
            checkout_name("/r/..", Path::new("/"), &HashSet::new()),
            "repo"
        );
        assert!(valid_dir("api-2"));
        assert!(!valid_dir(".."));
        assert!(!valid_dir("a/b"));
    }
}
