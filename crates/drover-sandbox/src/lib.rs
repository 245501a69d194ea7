//! drover-sandbox: a fresh checkout per task, at a base commit, on branch `drover/<task-id>`.
//!
//! Two kinds of sandbox:
//!
//! * **overlay** (preferred): one read-only *base checkout* per (repository, commit) under
//!   `DROVER_HOME/bases/<key>/`, made with `git clone --shared` so it carries its own `.git`
//!   (objects borrowed through alternates). Each task mounts an overlayfs over it at
//!   `DROVER_HOME/sandboxes/<task-id>/merged`; the task's index, HEAD, refs, new objects and file
//!   changes land in its own upper layer. Ready time does not depend on the repository's size.
//! * **worktree** (fallback): `git worktree add -b drover/<id> DROVER_HOME/sandboxes/<id>/wt <commit>`.
//!
//! Lifecycle: [`Sandboxes::resolve`] → [`Sandboxes::prepare`] → agent works in [`Sandbox::path`] →
//! [`Sandboxes::finish`] (= [`Sandboxes::commit_all`], which delivers branch `drover/<id>` to the
//! user's repository, then [`Sandboxes::remove`]). Work is never deleted: `remove` refuses while the
//! sandbox holds uncommitted changes or the branch has not reached the repository.
//!
//! A multi-repo task gets a *workspace* ([`Sandboxes::prepare_workspace`]):
//! `DROVER_HOME/sandboxes/<task-id>/ws/` holding one checkout per repository at `ws/<dir>`, each
//! a sandbox as above (its overlay layers under `sandboxes/<task-id>/m/<dir>/`), all on branch
//! `drover/<task-id>`; `sandbox.json` lists them as `members`, and `commit_all`, `remove`,
//! `discard`, `finish` and `load` act on every member.
//!
//! All methods are async (git runs through `tokio::process`) and safe to call concurrently on one
//! `Sandboxes` (it is `Clone`; clones share their locks). One daemon per `DROVER_HOME` is assumed.

mod base;
mod bench;
mod diff;
mod error;
mod gate_view;
mod gc;
mod git;
mod overlay;
mod protect;
mod remote;
mod resolve;
mod sandbox;
mod workspace;
mod worktree;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

pub use bench::{bench_sandbox, make_repo as generate_repo, BenchRow};
pub use diff::{DiffOf, Patch, DIFF_TIMEOUT, PATCH_MAX_BYTES};
pub use error::SandboxError;
pub use gate_view::GateView;
pub use gc::GcReport;
pub use git::command as git_command;
pub use overlay::probe_overlay;
pub use protect::{ChangeKind, InvalidGlob, Protect, ProtectedChange};
pub use remote::{RemoteAccess, RemoteUrl};
pub use resolve::{is_url, refs_containing};
pub use workspace::{checkout_name, MAX_REPOS};

/// The mode asked for (configuration): `auto` picks overlay when [`probe_overlay`] passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxMode {
    #[default]
    Auto,
    Overlay,
    Worktree,
}

impl std::str::FromStr for SandboxMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(SandboxMode::Auto),
            "overlay" => Ok(SandboxMode::Overlay),
            "worktree" => Ok(SandboxMode::Worktree),
            other => Err(format!(
                "unknown sandbox mode {other:?}; use auto, overlay or worktree"
            )),
        }
    }
}

/// The kind of a sandbox (the mode once resolved): one of drover's closed sets.
pub use drover_types::SandboxKind;

/// A repository and commit, as found by [`Sandboxes::resolve`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolved {
    /// What the user passed (path or URL).
    pub source: String,
    /// The repository the task branch is delivered to: the work tree's top level of a local
    /// checkout, the git dir of a local bare repository, or `DROVER_HOME/repos/<hash>.git` for a URL.
    pub repo_dir: PathBuf,
    /// Full commit sha of the base ref.
    pub commit: String,
}

/// One task's checkout. Serialized as `DROVER_HOME/sandboxes/<task-id>/sandbox.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sandbox {
    pub task_id: String,
    pub kind: SandboxKind,
    /// The checkout the agent runs in (`…/merged` or `…/wt`).
    pub path: PathBuf,
    /// `DROVER_HOME/sandboxes/<task-id>`: everything of this sandbox lives below it.
    pub root: PathBuf,
    /// `drover/<task-id>`.
    pub branch: String,
    pub base_commit: String,
    /// Where the branch is delivered (see [`Resolved::repo_dir`]).
    pub repo_dir: PathBuf,
    /// Overlay only: the base checkout's key and directory.
    pub base_key: Option<String>,
    pub base_dir: Option<PathBuf>,
    /// A workspace (multi-repo task, [`Sandboxes::prepare_workspace`]): one checkout per
    /// repository at `path/<dir>`, each a sandbox of its own (root `root/m/<dir>`). Empty for a
    /// one-repository sandbox; then `path` is the checkout itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<Sandbox>,
}

impl Sandbox {
    /// Overlay upper layer (the task's changes), `root/upper`.
    pub fn upper_dir(&self) -> PathBuf {
        self.root.join("upper")
    }

    /// A workspace's checkout directory name (`path`'s last component) of a member.
    pub fn dir_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

type LockMap = Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>;

/// The sandboxes of one `DROVER_HOME`.
#[derive(Debug, Clone)]
pub struct Sandboxes {
    home: PathBuf,
    kind: SandboxKind,
    reason: String,
    locks: LockMap,
    /// Local repository paths already resolved to their repository directory.
    local_dirs: Arc<Mutex<HashMap<String, PathBuf>>>,
    /// How mirrors reach a forge (the daemon's git proxy), see [`remote`].
    remote: remote::Remote,
    fetches: remote::FetchCounts,
}

impl Sandboxes {
    /// Resolves `mode` (running [`probe_overlay`] for `Auto`). A forced `Overlay` is kept even if
    /// the probe fails; `prepare` will then fail with the mount error.
    pub fn new(home: &Path, mode: SandboxMode) -> Self {
        let _ = std::fs::create_dir_all(home);
        let home = std::fs::canonicalize(home).unwrap_or_else(|_| home.to_path_buf());
        let (kind, reason) = match mode {
            SandboxMode::Worktree => (
                SandboxKind::Worktree,
                "sandbox mode worktree was configured".to_string(),
            ),
            SandboxMode::Overlay => match probe_overlay(&home) {
                Ok(()) => (
                    SandboxKind::Overlay,
                    "sandbox mode overlay was configured; overlay probe passed".to_string(),
                ),
                Err(e) => (
                    SandboxKind::Overlay,
                    format!("sandbox mode overlay was configured but the probe failed: {e}"),
                ),
            },
            SandboxMode::Auto => match probe_overlay(&home) {
                Ok(()) => (
                    SandboxKind::Overlay,
                    "auto: overlayfs mount probe passed".to_string(),
                ),
                Err(e) => (
                    SandboxKind::Worktree,
                    format!("auto: falling back to git worktree because {e}"),
                ),
            },
        };
        Sandboxes {
            home,
            kind,
            reason,
            locks: Arc::default(),
            local_dirs: Arc::default(),
            remote: remote::Remote::default(),
            fetches: remote::FetchCounts::default(),
        }
    }

    /// Where the mirror of clone URL `url` is on this host (`DROVER_HOME/repos/<hash>.git`).
    pub fn mirror_dir(&self, url: &str) -> PathBuf {
        self.repos_dir().join(format!("{}.git", stable_hash(url)))
    }

    /// Installs how mirrors reach remotes (once; later calls are ignored).
    pub fn set_remote_access(&self, hook: Arc<dyn RemoteAccess>) {
        self.remote.set(hook);
    }

    /// `DROVER_HOME` as used (canonicalized when it existed).
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The kind new sandboxes get.
    pub fn kind(&self) -> SandboxKind {
        self.kind
    }

    /// Why that kind was chosen, for `drover doctor` and `GET /v1/status`.
    pub fn mode_reason(&self) -> &str {
        &self.reason
    }

    pub(crate) fn bases_dir(&self) -> PathBuf {
        self.home.join("bases")
    }

    pub(crate) fn sandboxes_dir(&self) -> PathBuf {
        self.home.join("sandboxes")
    }

    pub(crate) fn repos_dir(&self) -> PathBuf {
        self.home.join("repos")
    }

    /// An in-process async lock per key (base key, repository, task).
    pub(crate) fn lock_for(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(key.to_string()).or_default().clone()
    }
}

/// Task ids become directory names and branch names; keep them boring.
pub(crate) fn validate_task_id(id: &str) -> Result<(), SandboxError> {
    let ok = !id.is_empty()
        && id.len() <= 100
        && !id.starts_with(['.', '-'])
        && !id.ends_with(".lock")
        && !id.contains("..")
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(SandboxError::InvalidTaskId(id.to_string()))
    }
}

/// FNV-1a, 64 bits: a stable short name for paths and URLs.
pub(crate) fn stable_hash(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}
