//! The fallback: `git worktree add` in the user's repository.

use std::path::Path;

use crate::error::Result;
use crate::git::{self, path_str};

/// `git -C repo_dir worktree add -b <branch> <path> <commit>`.
pub(crate) async fn add(repo_dir: &Path, branch: &str, path: &Path, commit: &str) -> Result<()> {
    git::git(
        repo_dir,
        "worktree add",
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            branch,
            path_str(path)?,
            commit,
        ],
    )
    .await?;
    Ok(())
}

/// `git worktree remove --force` (twice forced: also when locked), then `git worktree prune`.
/// A worktree already gone from disk is pruned without error.
pub(crate) async fn remove(repo_dir: &Path, path: &Path) -> Result<()> {
    if path.exists() {
        let out = git::run(
            repo_dir,
            &["worktree", "remove", "--force", "--force", path_str(path)?],
        )
        .await?;
        if !out.ok() {
            tracing::warn!(path = %path.display(), stderr = %out.stderr.trim(), "git worktree remove failed; pruning");
        }
    }
    git::git(repo_dir, "worktree prune", &["worktree", "prune"]).await?;
    Ok(())
}
