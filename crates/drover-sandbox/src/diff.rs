//! What a task changed, for people (the dashboard's diff tab, `GET /v1/tasks/{id}/diff`): the
//! files against the base commit, and one file's unified diff, cut.
//!
//! - **Live** (a sandbox still there): the checkout as it is now, untracked files included
//!   (ignored ones not). Its own index is never touched: a copy of it becomes a temporary index
//!   outside the checkout (`sandboxes/<id>/diff-index-*`), `git add -A` fills it (only changed
//!   files are hashed), and `git diff --cached BASE` reads it. The checkout's `.git` must still be
//!   its own (`check_git_dir`) and an overlay must be mounted.
//! - **Delivered**: `git diff BASE COMMIT` in the repository the branch went to.
//!
//! Every git is [`crate::git_command`]'s (allow-listed environment) with hooks, fsmonitor and
//! every command-naming config key the checkout holds neutralized, `--no-ext-diff
//! --no-textconv`, literal pathspecs, and killed past [`DIFF_TIMEOUT`]. git never follows a
//! symbolic link of the work tree: a link is a change of its own, shown as its target's name.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use drover_types::web::{DiffFileStat, DiffStatus};
use tokio::io::AsyncReadExt;

use crate::error::{Result, SandboxError};
use crate::git::path_str;
use crate::{Sandbox, SandboxKind, Sandboxes};

/// The longest a diff's git may run.
pub const DIFF_TIMEOUT: Duration = Duration::from_secs(30);
/// A patch is cut past this many bytes.
pub const PATCH_MAX_BYTES: usize = 256 << 10;

/// What to compare.
#[derive(Debug, Clone, Copy)]
pub enum DiffOf<'a> {
    /// A sandbox's checkout (one, not a workspace: pass each member).
    Live(&'a Sandbox),
    /// Two commits of a repository.
    Commits {
        repo_dir: &'a Path,
        base: &'a str,
        commit: &'a str,
    },
}

/// One file's unified diff: at most [`PATCH_MAX_BYTES`] of it, and its whole size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    pub patch: String,
    pub truncated: bool,
    pub bytes: u64,
}

/// Options every diff runs with: no external diff, no textconv, renames found, no colour.
const DIFF_OPTS: [&str; 5] = [
    "--no-ext-diff",
    "--no-textconv",
    "--no-color",
    "-M",
    "--ignore-submodules=all",
];

impl Sandboxes {
    /// The files changed (see the module's doc); `repo_dir` is left `None`.
    pub async fn diff_files(&self, of: DiffOf<'_>) -> Result<Vec<DiffFileStat>> {
        let run = Prepared::new(of).await?;
        let out = run.files().await;
        run.cleanup().await;
        out
    }

    /// One changed file's patch (`path` as [`Sandboxes::diff_files`] names it, new name of a
    /// rename); `None` when the file is not among the changed ones.
    pub async fn diff_patch(&self, of: DiffOf<'_>, path: &str) -> Result<Option<Patch>> {
        let run = Prepared::new(of).await?;
        let out = async {
            let files = run.files().await?;
            let Some(f) = files.iter().find(|f| f.path == path) else {
                return Ok(None);
            };
            let mut paths = vec![f.path.as_str()];
            if let Some(old) = &f.old_path {
                paths.push(old.as_str());
            }
            run.patch(&paths).await.map(Some)
        }
        .await;
        run.cleanup().await;
        out
    }
}

/// A diff ready to run: where, against what, with which index.
struct Prepared {
    dir: PathBuf,
    /// The `-c` overrides and `--work-tree` of a live checkout.
    prefix: Vec<String>,
    /// `BASE` (live, with `--cached`) or `BASE COMMIT`.
    revs: Vec<String>,
    index: Option<PathBuf>,
}

impl Prepared {
    async fn new(of: DiffOf<'_>) -> Result<Prepared> {
        match of {
            DiffOf::Commits {
                repo_dir,
                base,
                commit,
            } => Ok(Prepared {
                dir: repo_dir.to_path_buf(),
                prefix: crate::sandbox::INSIDE.map(String::from).to_vec(),
                revs: vec![rev(base)?, rev(commit)?],
                index: None,
            }),
            DiffOf::Live(sb) => {
                if sb.kind == SandboxKind::Overlay && !crate::overlay::is_mounted(&sb.path) {
                    return Err(failed(
                        &sb.path,
                        "the sandbox's overlay is not mounted; nothing to read",
                    ));
                }
                crate::sandbox::check_git_dir(sb).await?;
                let prefix = crate::sandbox::inside(&sb.path, &[]).await?;
                let index = sb
                    .root
                    .join(format!("diff-index-{:016x}", rand::random::<u64>()));
                let mut prep = Prepared {
                    dir: sb.path.clone(),
                    prefix,
                    revs: vec!["--cached".into(), rev(&sb.base_commit)?],
                    index: None,
                };
                // Seed the temporary index with the checkout's (stat data: only changed files
                // get hashed); a missing one (or not a plain file) starts empty.
                let own = prep.run_text(&["rev-parse", "--git-path", "index"]).await?;
                let own = sb.path.join(own.trim());
                let dest = index.clone();
                let _ = tokio::task::spawn_blocking(move || seed_index(&own, &dest)).await;
                prep.index = Some(index);
                if let Err(e) = prep.run_text(&["add", "-A", "--ignore-errors"]).await {
                    prep.cleanup().await;
                    return Err(e);
                }
                Ok(prep)
            }
        }
    }

    async fn cleanup(&self) {
        if let Some(i) = &self.index {
            let _ = tokio::fs::remove_file(i).await;
            let _ = tokio::fs::remove_file(i.with_extension("lock")).await;
        }
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = crate::git_command();
        cmd.arg("-C")
            .arg(&self.dir)
            .arg("--literal-pathspecs")
            .args(&self.prefix)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(i) = &self.index {
            cmd.env("GIT_INDEX_FILE", i);
        }
        cmd
    }

    /// Runs git to the end (within [`DIFF_TIMEOUT`]); its stdout.
    async fn run_text(&self, args: &[&str]) -> Result<String> {
        let child = self.command(args).output();
        let out = tokio::time::timeout(DIFF_TIMEOUT, child)
            .await
            .map_err(|_| failed(&self.dir, "git took too long (30 s); try again later"))?
            .map_err(SandboxError::GitMissing)?;
        if !out.status.success() {
            return Err(failed(
                &self.dir,
                String::from_utf8_lossy(&out.stderr).trim(),
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn diff_args<'a>(&'a self, what: &[&'a str]) -> Vec<&'a str> {
        let mut a = vec!["diff"];
        a.extend(DIFF_OPTS);
        a.extend(what);
        a.extend(self.revs.iter().map(String::as_str));
        a
    }

    async fn files(&self) -> Result<Vec<DiffFileStat>> {
        let status = self
            .run_text(&self.diff_args(&["--name-status", "-z"]))
            .await?;
        let numstat = self.run_text(&self.diff_args(&["--numstat", "-z"])).await?;
        Ok(parse_files(&status, &numstat))
    }

    async fn patch(&self, paths: &[&str]) -> Result<Patch> {
        let mut args = self.diff_args(&["--patch"]);
        args.push("--");
        args.extend(paths);
        let mut child = self
            .command(&args)
            .stderr(Stdio::null())
            .spawn()
            .map_err(SandboxError::GitMissing)?;
        let Some(mut stdout) = child.stdout.take() else {
            return Err(failed(&self.dir, "git gave no output"));
        };
        let read = async {
            let mut kept = Vec::with_capacity(8192);
            let mut total: u64 = 0;
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let n = stdout.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                total += n as u64;
                let room = PATCH_MAX_BYTES.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
            child.wait().await?;
            Ok::<_, std::io::Error>((kept, total))
        };
        let (kept, total) = tokio::time::timeout(DIFF_TIMEOUT, read)
            .await
            .map_err(|_| failed(&self.dir, "git took too long (30 s); try again later"))?
            .map_err(|e| SandboxError::io("read git diff of", &self.dir, e))?;
        let truncated = total > kept.len() as u64;
        let patch = if truncated {
            let s = String::from_utf8_lossy(&kept);
            // Never end inside a character the cut split.
            s.trim_end_matches('\u{fffd}').to_string()
        } else {
            String::from_utf8_lossy(&kept).into_owned()
        };
        Ok(Patch {
            patch,
            truncated,
            bytes: total,
        })
    }
}

/// The largest checkout index copied to seed a diff's (a bigger one: the diff starts empty).
pub const MAX_SEED_INDEX_BYTES: u64 = 256 << 20;

/// Copies the checkout's index `own` to `dest` when it is a plain file: opened without following
/// a symbolic link and without waiting on a FIFO (the agent may swap the file between any check
/// and the copy), and never more than the size it had when opened (a device's endless stream
/// never fills the disk). `false`: nothing copied (the diff's index starts empty).
pub(crate) fn seed_index(own: &Path, dest: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(own)
    else {
        return Ok(false);
    };
    let meta = file.metadata()?;
    if !meta.is_file() || meta.len() > MAX_SEED_INDEX_BYTES {
        return Ok(false);
    }
    let mut out = std::fs::File::create(dest)?;
    std::io::copy(&mut file.take(meta.len()), &mut out)?;
    Ok(true)
}

/// A commit id as git gets it (never an option).
fn rev(r: &str) -> Result<String> {
    if r.is_empty() || r.starts_with('-') || !r.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SandboxError::BadPath {
            path: r.to_string(),
            reason: "not a commit id".into(),
        });
    }
    Ok(r.to_string())
}

fn failed(dir: &Path, why: impl Into<String>) -> SandboxError {
    SandboxError::Git {
        op: "diff".into(),
        dir: path_str(dir).unwrap_or("?").to_string(),
        stderr: why.into(),
    }
}

/// `--name-status -z` (`M\0path\0`, `R100\0old\0new\0`) and `--numstat -z` (`a\tr\tpath\0`, a
/// rename `a\tr\t\0old\0new\0`; binary `-\t-`) into one list, in git's order.
fn parse_files(status: &str, numstat: &str) -> Vec<DiffFileStat> {
    let mut files = Vec::new();
    let mut it = status.split('\0').filter(|s| !s.is_empty());
    while let Some(code) = it.next() {
        let (kind, two) = match code.chars().next() {
            Some('A') => (DiffStatus::Added, false),
            Some('D') => (DiffStatus::Deleted, false),
            Some('R') => (DiffStatus::Renamed, true),
            // A copy is an added file (its source stays).
            Some('C') => (DiffStatus::Added, true),
            _ => (DiffStatus::Modified, false),
        };
        let first = it.next().unwrap_or_default().to_string();
        let (old_path, path) = if two {
            let new = it.next().unwrap_or_default().to_string();
            ((kind == DiffStatus::Renamed).then_some(first), new)
        } else {
            (None, first)
        };
        files.push(DiffFileStat {
            path,
            old_path,
            status: kind,
            added: 0,
            removed: 0,
            binary: false,
            repo_dir: None,
        });
    }
    let mut rest = numstat.split('\0');
    while let Some(head) = rest.next() {
        if head.is_empty() {
            continue;
        }
        let mut parts = head.splitn(3, '\t');
        let (a, r, p) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        let path = if p.is_empty() {
            // A rename: the old name, then the new one.
            let _old = rest.next();
            rest.next().unwrap_or_default()
        } else {
            p
        };
        if let Some(f) = files.iter_mut().find(|f| f.path == path) {
            f.binary = a == "-" && r == "-";
            f.added = a.parse().unwrap_or(0);
            f.removed = r.parse().unwrap_or(0);
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_status_and_numstat_make_one_list() {
        let status = "M\0src/a.rs\0A\0new file\0R087\0old.txt\0moved.txt\0D\0gone\0A\0img.png\0";
        let numstat = [
            "3\t1\tsrc/a.rs",
            "10\t0\tnew file",
            "2\t2\t",
            "old.txt",
            "moved.txt",
            "0\t4\tgone",
            "-\t-\timg.png",
            "",
        ]
        .join("\0");
        let files = parse_files(status, &numstat);
        assert_eq!(files.len(), 5);
        assert_eq!(files[0].path, "src/a.rs");
        assert_eq!((files[0].added, files[0].removed), (3, 1));
        assert_eq!(files[1].status, DiffStatus::Added);
        assert_eq!(files[2].status, DiffStatus::Renamed);
        assert_eq!(files[2].old_path.as_deref(), Some("old.txt"));
        assert_eq!(files[2].path, "moved.txt");
        assert_eq!((files[2].added, files[2].removed), (2, 2));
        assert_eq!(files[3].status, DiffStatus::Deleted);
        assert!(files[4].binary);
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn the_seed_index_is_a_plain_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("seed");
        let real = dir.path().join("index");
        std::fs::write(&real, b"DIRC index bytes").unwrap();
        assert!(seed_index(&real, &dest).unwrap());
        assert_eq!(std::fs::read(&dest).unwrap(), b"DIRC index bytes");
        std::fs::remove_file(&dest).unwrap();

        // The agent swapped it for a link to a secret, a device or a FIFO: nothing is read,
        // nothing waits.
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"secret").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&secret, &link).unwrap();
        assert!(!seed_index(&link, &dest).unwrap());
        let zero = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        assert!(!seed_index(&zero, &dest).unwrap());
        assert!(!seed_index(Path::new("/dev/zero"), &dest).unwrap());
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(!seed_index(&fifo, &dest).unwrap());
        assert!(!dest.exists());
    }

    #[test]
    fn revs_are_commit_ids_only() {
        assert!(rev("0123abcd").is_ok());
        assert!(rev("--output=/tmp/x").is_err());
        assert!(rev("HEAD").is_err());
        assert!(rev("").is_err());
    }
}
