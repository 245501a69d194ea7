//! Turning a user's `repo` (path or URL) and `ref` into a repository directory and a commit.

use std::path::{Path, PathBuf};

use crate::error::{Result, SandboxError};
use crate::git::{self, path_str};
use crate::{stable_hash, Resolved, Sandboxes};

/// `true` for `scheme://…` and scp-like `user@host:path` sources (a path otherwise).
pub fn is_url(repo: &str) -> bool {
    if repo.contains("://") {
        return true;
    }
    match (repo.find('@'), repo.find(':'), repo.find('/')) {
        (Some(at), Some(colon), slash) => at < colon && slash.is_none_or(|s| colon < s),
        _ => false,
    }
}

impl Sandboxes {
    /// Validates `repo` and resolves `git_ref` to a full commit sha.
    ///
    /// `repo` is an absolute path to a git repository (any directory inside a work tree works;
    /// the top level is used) or a clone URL. A URL is cloned once, bare, into
    /// `DROVER_HOME/repos/<hash>.git` and fetched on each call (branches and tags; a failed fetch
    /// falls back to what is already there). Errors: [`SandboxError::NotAGitRepo`],
    /// [`SandboxError::UnknownRef`].
    pub async fn resolve(&self, repo: &str, git_ref: &str) -> Result<Resolved> {
        let repo_dir = if is_url(repo) {
            self.mirror(repo).await?
        } else {
            self.local_repo_dir_cached(repo).await?
        };
        let commit = match rev_parse_commit(&repo_dir, git_ref).await? {
            Some(c) => c,
            None if is_url(repo) && looks_like_sha(git_ref) => {
                // A commit no branch points at: ask the server for it directly.
                let (source, _guard) = self.remote.source(repo);
                let _ = git::run(&repo_dir, &["fetch", "-q", &source, git_ref]).await;
                rev_parse_commit(&repo_dir, git_ref)
                    .await?
                    .ok_or_else(|| unknown(repo, git_ref))?
            }
            None => return Err(unknown(repo, git_ref)),
        };
        Ok(Resolved {
            source: repo.to_string(),
            repo_dir,
            commit,
        })
    }

    /// [`local_repo_dir`], remembered per path while the repository is still there (every `run`
    /// and every pool refill resolves; two git processes saved each time).
    async fn local_repo_dir_cached(&self, repo: &str) -> Result<PathBuf> {
        let cached = self
            .local_dirs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(repo)
            .cloned();
        if let Some(dir) = cached {
            if dir.join("HEAD").exists() || dir.join(".git").exists() {
                return Ok(dir);
            }
        }
        let dir = local_repo_dir(repo).await?;
        self.local_dirs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(repo.to_string(), dir.clone());
        Ok(dir)
    }

    /// Clones (first time) or fetches (later) a URL into `DROVER_HOME/repos/<hash>.git`.
    async fn mirror(&self, url: &str) -> Result<PathBuf> {
        let dir = self.mirror_dir(url);
        let arrived = self.fetches.arrived(&dir);
        let lock = self.lock_for(&format!("repo:{}", dir.display()));
        let _guard = lock.lock().await;
        if self.fetches.fresh_since(&dir, arrived) && dir.join("HEAD").exists() {
            // A fetch that began after this request arrived has completed: it is this one's.
            return Ok(dir);
        }
        let n = self.fetches.begin(&dir);
        let done = self.clone_or_fetch(url, &dir).await;
        self.fetches.end(&dir, n);
        done
    }

    /// [`Sandboxes::mirror`]'s git work, under the mirror's lock. Through the remote hook when
    /// one is installed: `origin` stays `url` (no credential, no proxy address in the config).
    async fn clone_or_fetch(&self, url: &str, dir: &Path) -> Result<PathBuf> {
        let dir = dir.to_path_buf();
        let repos = self.repos_dir();
        let (source, _remote) = self.remote.source(url);
        if dir.join("HEAD").exists() {
            let out = if source == url {
                git::run(&dir, &["fetch", "-q", "--no-auto-maintenance", "origin"]).await?
            } else {
                git::run(
                    &dir,
                    &[
                        "fetch",
                        "-q",
                        "--no-auto-maintenance",
                        &source,
                        "+refs/heads/*:refs/heads/*",
                        "+refs/tags/*:refs/tags/*",
                        "^refs/heads/drover/*",
                    ],
                )
                .await?
            };
            if !out.ok() {
                tracing::warn!(url, stderr = %out.stderr.trim(), "fetch failed; using the refs already cloned");
            }
            return Ok(dir);
        }
        tokio::fs::create_dir_all(&repos)
            .await
            .map_err(|e| SandboxError::io("create", &repos, e))?;
        let tmp = repos.join(format!(
            ".tmp-{}-{:08x}",
            stable_hash(url),
            rand::random::<u32>()
        ));
        let out = git::run(
            &repos,
            &["clone", "-q", "--bare", "--", &source, path_str(&tmp)?],
        )
        .await?;
        if !out.ok() {
            let _ = tokio::fs::remove_dir_all(&tmp).await;
            return Err(SandboxError::NotAGitRepo {
                path: url.to_string(),
                reason: format!("git clone failed: {}", out.stderr.trim()),
            });
        }
        // Keep branches and tags current on later fetches; never touch drover's own branches.
        for (op, args) in [
            ("remote", vec!["remote", "set-url", "origin", url]),
            (
                "config",
                vec![
                    "config",
                    "--replace-all",
                    "remote.origin.fetch",
                    "+refs/heads/*:refs/heads/*",
                ],
            ),
            (
                "config",
                vec![
                    "config",
                    "--add",
                    "remote.origin.fetch",
                    "+refs/tags/*:refs/tags/*",
                ],
            ),
            (
                "config",
                vec![
                    "config",
                    "--add",
                    "remote.origin.fetch",
                    "^refs/heads/drover/*",
                ],
            ),
        ] {
            git::git(&tmp, op, &args).await?;
        }
        tokio::fs::rename(&tmp, &dir)
            .await
            .map_err(|e| SandboxError::io("rename into place", &dir, e))?;
        Ok(dir)
    }
}

/// The top level of a work tree, or the git dir of a bare repository.
async fn local_repo_dir(repo: &str) -> Result<PathBuf> {
    let not_repo = |reason: &str| SandboxError::NotAGitRepo {
        path: repo.to_string(),
        reason: reason.to_string(),
    };
    let path = Path::new(repo);
    if !path.is_absolute() {
        return Err(not_repo("not an absolute path"));
    }
    if !path.is_dir() {
        return Err(not_repo("no such directory"));
    }
    let out = git::run(
        path,
        &["rev-parse", "--is-bare-repository", "--absolute-git-dir"],
    )
    .await?;
    if !out.ok() {
        return Err(not_repo(out.stderr.trim()));
    }
    let mut lines = out.stdout.lines();
    let bare = lines.next() == Some("true");
    let git_dir = lines.next().unwrap_or_default().to_string();
    if bare {
        return Ok(PathBuf::from(git_dir));
    }
    let top = git::git(path, "rev-parse", &["rev-parse", "--show-toplevel"]).await?;
    if top.is_empty() {
        return Err(not_repo("inside a git directory, not a work tree"));
    }
    Ok(PathBuf::from(top))
}

/// `Some(sha)` when `git_ref` names a commit in `repo_dir`.
async fn rev_parse_commit(repo_dir: &Path, git_ref: &str) -> Result<Option<String>> {
    if git_ref.is_empty() || git_ref.starts_with('-') || git_ref.contains(char::is_whitespace) {
        return Ok(None);
    }
    let spec = format!("{git_ref}^{{commit}}");
    let out = git::run(repo_dir, &["rev-parse", "--verify", "--quiet", &spec]).await?;
    let sha = out.stdout.trim();
    Ok((out.ok() && !sha.is_empty()).then(|| sha.to_string()))
}

fn looks_like_sha(s: &str) -> bool {
    (7..=64).contains(&s.len()) && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// The refs (`refs/heads/…`, `refs/tags/…`, …) of `repo_dir` from which `commit` is reachable:
/// who may start from a commit can be told by the branches that hold it.
pub async fn refs_containing(repo_dir: &Path, commit: &str) -> Result<Vec<String>> {
    let out = git::run(
        repo_dir,
        &["for-each-ref", "--format=%(refname)", "--contains", commit],
    )
    .await?;
    if !out.ok() {
        return Err(SandboxError::Git {
            op: "for-each-ref --contains".into(),
            dir: repo_dir.display().to_string(),
            stderr: out.stderr,
        });
    }
    Ok(out.stdout.lines().map(str::to_string).collect())
}

fn unknown(repo: &str, git_ref: &str) -> SandboxError {
    SandboxError::UnknownRef {
        repo: repo.to_string(),
        git_ref: git_ref.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::is_url;

    #[test]
    fn urls() {
        assert!(is_url("https://github.com/a/b.git"));
        assert!(is_url("file:///tmp/x"));
        assert!(is_url("git@github.com:a/b.git"));
        assert!(!is_url("/tmp/repo"));
        assert!(!is_url("/tmp/a@b:c"));
    }
}
