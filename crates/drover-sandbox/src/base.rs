//! Base checkouts: one read-only checkout per (repository, commit), shared by overlay sandboxes.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Result, SandboxError};
use crate::git::{self, path_str};
use crate::{stable_hash, Resolved, Sandboxes};

/// Settings every base checkout gets. Overlay changes `st_dev` (and may change inode numbers),
/// so without these git would re-hash every file of the base on the first `git status`.
const BASE_CONFIG: &[(&str, &str)] = &[
    ("core.checkStat", "minimal"),
    ("core.trustctime", "false"),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
];

/// Identity for commits made inside sandboxes when neither the repo nor the user has one.
pub(crate) const DEFAULT_NAME: &str = "drover";
pub(crate) const DEFAULT_EMAIL: &str = "drover@localhost";

/// `<hash of repo_dir>-<commit>`.
pub(crate) fn base_key(resolved: &Resolved) -> String {
    format!(
        "{}-{}",
        stable_hash(&resolved.repo_dir.to_string_lossy()),
        resolved.commit
    )
}

pub(crate) fn base_lock_name(key: &str) -> String {
    format!("base:{key}")
}

impl Sandboxes {
    /// Builds the base checkout for `resolved` once; returns `(key, dir)`. The caller must hold
    /// the base lock (see [`base_lock_name`]) so a concurrent `collect_garbage` cannot remove it.
    pub(crate) async fn ensure_base(&self, resolved: &Resolved) -> Result<(String, PathBuf)> {
        let key = base_key(resolved);
        let bases = self.bases_dir();
        let dir = bases.join(&key);
        if dir.join(".git").exists() {
            return Ok((key, dir));
        }
        tokio::fs::create_dir_all(&bases)
            .await
            .map_err(|e| SandboxError::io("create", &bases, e))?;
        let tmp = bases.join(format!(".tmp-{key}-{:08x}", rand::random::<u32>()));
        let built = build(&resolved.repo_dir, &resolved.commit, &tmp).await;
        if let Err(e) = built {
            let _ = tokio::fs::remove_dir_all(&tmp).await;
            return Err(e);
        }
        if let Err(e) = tokio::fs::rename(&tmp, &dir).await {
            let _ = tokio::fs::remove_dir_all(&tmp).await;
            // Another process won the race: its base is as good as ours.
            if !dir.join(".git").exists() {
                return Err(SandboxError::io("rename into place", &dir, e));
            }
        }
        Ok((key, dir))
    }
}

/// Clones `repo_dir` into `tmp` sharing its objects, checks out `commit` detached, configures it.
async fn build(repo_dir: &Path, commit: &str, tmp: &Path) -> Result<()> {
    let parent = tmp.parent().unwrap_or(tmp);
    git::git(
        parent,
        "clone --shared",
        &[
            "clone",
            "-q",
            "--shared",
            "--no-checkout",
            "--",
            path_str(repo_dir)?,
            path_str(tmp)?,
        ],
    )
    .await?;
    for (key, value) in BASE_CONFIG {
        git::git(tmp, "config", &["config", key, value]).await?;
    }
    for (key, value) in [("user.name", DEFAULT_NAME), ("user.email", DEFAULT_EMAIL)] {
        if !git::config_is_set(tmp, key).await? {
            git::git(tmp, "config", &["config", key, value]).await?;
        }
    }
    git::git(
        tmp,
        "checkout",
        &[
            "-c",
            "advice.detachedHead=false",
            "checkout",
            "-q",
            "--detach",
            commit,
        ],
    )
    .await?;
    // Files written in the same second as the index are "racily clean": git would re-read them
    // on every status in every sandbox. Rewrite the index once the clock has moved on.
    wait_for_next_second().await;
    git::git(
        tmp,
        "update-index",
        &["update-index", "-q", "--refresh", "--force-write-index"],
    )
    .await?;
    Ok(())
}

async fn wait_for_next_second() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let left =
        Duration::from_secs(1).saturating_sub(Duration::from_nanos(u64::from(now.subsec_nanos())));
    tokio::time::sleep(left + Duration::from_millis(20)).await;
}
