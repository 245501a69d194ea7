//! Typed errors. Every message says what went wrong and what to do about it.

use std::path::Path;

/// Everything that can go wrong while preparing, committing or removing a sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// `repo` is neither an absolute path to a git repository nor a clone URL.
    #[error("{path} is not a git repository ({reason}); pass the absolute path of a git checkout or a clone URL")]
    NotAGitRepo { path: String, reason: String },
    /// `git_ref` does not name a commit in the repository.
    #[error("unknown ref {git_ref:?} in {repo}; pass a branch, tag or commit that exists there (check with `git -C {repo} rev-parse {git_ref}`)")]
    UnknownRef { repo: String, git_ref: String },
    /// A git command exited non-zero; `stderr` is git's own explanation.
    #[error("git {op} failed in {dir}: {stderr}; the sandbox is left as it was so the work can be inspected")]
    Git {
        op: String,
        dir: String,
        stderr: String,
    },
    /// The `git` binary could not be started.
    #[error("could not run git ({0}); install git and make sure it is on the daemon's PATH")]
    GitMissing(#[source] std::io::Error),
    /// An overlay mount or unmount failed.
    #[error("overlay {op} of {path} failed: {reason}; run `drover doctor`, or use sandbox mode `worktree`")]
    Mount {
        op: String,
        path: String,
        reason: String,
    },
    /// A filesystem operation failed.
    #[error("{op} {path}: {source}; check free space and permissions under DROVER_HOME")]
    Io {
        op: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A path drover would pass to git or to the kernel is not usable (not UTF-8, or holds `,`/`:`).
    #[error("path {path} cannot be used ({reason}); choose a DROVER_HOME / repository path without such characters")]
    BadPath { path: String, reason: String },
    /// The task id cannot become a directory and branch name.
    #[error("invalid task id {0:?}: use 1-100 letters, digits, '.', '_' or '-', not starting with '.' or '-'")]
    InvalidTaskId(String),
    /// `prepare` was called for a task that already has a sandbox.
    #[error("a sandbox for task {0} already exists; load it, or finish/remove it before preparing a new one")]
    SandboxExists(String),
    /// `remove` found changes that `commit_all` has not committed.
    #[error("sandbox of task {task_id} has uncommitted changes; call commit_all (or finish) before removing it")]
    UncommittedChanges { task_id: String },
    /// `remove` found that the task branch has not reached the user's repository.
    #[error("branch {branch} of task {task_id} has not reached {repo_dir}; call commit_all (or finish) before removing it")]
    NotDelivered {
        task_id: String,
        branch: String,
        repo_dir: String,
    },
    /// The base checkout under an overlay sandbox is gone, so it cannot be remounted.
    #[error("base checkout {base} of task {task_id} is missing, so its overlay cannot be remounted; the task's changes are still in {upper}")]
    BaseMissing {
        task_id: String,
        base: String,
        upper: String,
    },
    /// `sandbox.json` could not be read or parsed.
    #[error("sandbox metadata {path} is unreadable ({reason}); inspect or delete that directory by hand")]
    BadMetadata { path: String, reason: String },
}

impl SandboxError {
    pub(crate) fn io(op: &str, path: &Path, source: std::io::Error) -> Self {
        SandboxError::Io {
            op: op.to_string(),
            path: path.display().to_string(),
            source,
        }
    }
}

/// Shorthand used across the crate.
pub type Result<T, E = SandboxError> = std::result::Result<T, E>;
