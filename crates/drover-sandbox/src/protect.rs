//! Protected paths (`--protect GLOB`): which paths a set of globs covers, and what a task changed
//! under them compared with its base commit. The gates' view of a sandbox with those paths put
//! back is in `gate_view`.
//!
//! Matching: globs are relative to the repository root and use `/`; `*`, `?` and `[…]` stay
//! within one path component, `**` crosses directories, and a glob that matches a directory covers
//! everything below it (`tests` = `tests/**`). `.git` is never protected (it is drover's).
//! A protected path is protected whether or not git tracks it: a file the agent adds under a
//! protected glob counts, ignored or not.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Serialize;
use sha1::{Digest, Sha1};

use crate::error::{Result, SandboxError};
use crate::git;
use crate::{Sandbox, SandboxKind, Sandboxes};

/// A glob that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--protect {glob:?} is not a valid glob: {reason}")]
pub struct InvalidGlob {
    pub glob: String,
    pub reason: String,
}

impl InvalidGlob {
    /// What to do about it (for the API's `hint`).
    pub const HINT: &'static str = "use a path relative to the repository root, e.g. `check.sh`, \
         `tests/**` or `**/*_test.go`, and quote it so the shell does not expand it";
}

/// A compiled list of protect globs.
#[derive(Debug, Clone)]
pub struct Protect {
    globs: Vec<String>,
    set: GlobSet,
}

impl Protect {
    /// Compiles `globs`; the first unusable one is the error.
    pub fn new(globs: &[String]) -> std::result::Result<Protect, InvalidGlob> {
        let mut builder = GlobSetBuilder::new();
        for g in globs {
            builder.add(compile(g)?);
        }
        let set = builder.build().map_err(|e| InvalidGlob {
            glob: globs.join(" "),
            reason: e.to_string(),
        })?;
        Ok(Protect {
            globs: globs.to_vec(),
            set,
        })
    }

    pub fn globs(&self) -> &[String] {
        &self.globs
    }

    pub fn is_empty(&self) -> bool {
        self.globs.is_empty()
    }

    /// Whether `path` (relative, `/`-separated) or one of its parent directories matches.
    pub fn matches(&self, path: &str) -> bool {
        !is_git_path(path) && ancestors(path).any(|p| self.set.is_match(p))
    }

    /// The globs that cover none of `paths`.
    pub fn unmatched<'a>(&self, paths: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let mut hit = vec![false; self.globs.len()];
        for path in paths.into_iter().filter(|p| !is_git_path(p)) {
            for a in ancestors(path) {
                for i in self.set.matches(a) {
                    hit[i] = true;
                }
            }
            if hit.iter().all(|h| *h) {
                break;
            }
        }
        self.globs
            .iter()
            .zip(hit)
            .filter(|(_, h)| !h)
            .map(|(g, _)| g.clone())
            .collect()
    }
}

fn compile(g: &str) -> std::result::Result<globset::Glob, InvalidGlob> {
    let err = |reason: &str| InvalidGlob {
        glob: g.to_string(),
        reason: reason.to_string(),
    };
    let pattern = g.trim_end_matches('/');
    if pattern.trim().is_empty() {
        return Err(err("it is empty"));
    }
    if pattern.starts_with('/') {
        return Err(err("it must be relative to the repository root"));
    }
    if pattern.split('/').any(|c| c == ".." || c == ".") {
        return Err(err("it may not contain `.` or `..` components"));
    }
    if is_git_path(pattern) {
        return Err(err(".git belongs to drover and cannot be protected"));
    }
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| err(&e.kind().to_string()))
}

fn is_git_path(path: &str) -> bool {
    path == ".git" || path.starts_with(".git/")
}

/// `a/b/c`, `a/b`, `a`.
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(path), |p| p.rfind('/').map(|i| &p[..i]))
}

/// How a protected path differs from the base commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
    /// The executable bit or the file type (file, symlink, directory) changed.
    ModeChanged,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Modified => "modified",
            ChangeKind::Deleted => "deleted",
            ChangeKind::ModeChanged => "mode changed",
        }
    }
}

/// One protected path the task changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProtectedChange {
    pub path: String,
    pub change: ChangeKind,
}

impl std::fmt::Display for ProtectedChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.path, self.change.as_str())
    }
}

/// One file of the base commit (`git ls-tree -r`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BaseEntry {
    /// `0o100644`, `0o100755` or `0o120000`.
    pub mode: u32,
    pub sha: String,
    /// Bytes in the blob.
    pub size: Option<u64>,
}

pub(crate) type BaseTree = BTreeMap<String, BaseEntry>;

/// Every blob of `commit` (submodules are left out), read in `dir`.
pub(crate) async fn tree_of(dir: &Path, commit: &str) -> Result<BaseTree> {
    // No replace refs: an agent that can write the repository (worktree mode) must not be able
    // to swap what the base commit holds.
    let args = [
        "--no-replace-objects",
        "ls-tree",
        "-r",
        "-l",
        "-z",
        "--full-tree",
        commit,
    ];
    let (code, out, stderr) = git::run_raw(dir, &args).await?;
    if code != Some(0) {
        let out = git::Output {
            code,
            stdout: String::new(),
            stderr,
        };
        return Err(git::git_error(dir, "ls-tree", &out));
    }
    let mut tree = BaseTree::new();
    for rec in out.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        // <mode> SP <type> SP <sha> SP+ <size> TAB <path>
        let Some(tab) = rec.iter().position(|b| *b == b'\t') else {
            continue;
        };
        let head = String::from_utf8_lossy(&rec[..tab]);
        let path = String::from_utf8_lossy(&rec[tab + 1..]).into_owned();
        let mut parts = head.split_whitespace();
        let (Some(mode), Some(kind), Some(sha), size) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if kind != "blob" {
            continue;
        }
        let Ok(mode) = u32::from_str_radix(mode, 8) else {
            continue;
        };
        tree.insert(
            path,
            BaseEntry {
                mode,
                sha: sha.to_string(),
                size: size.and_then(|s| s.parse().ok()),
            },
        );
    }
    Ok(tree)
}

/// What is at a path on disk (never following a symlink).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Missing,
    File { exec: bool },
    Symlink,
    Other,
}

/// [`node`] of `root/rel`, where a parent directory that is not a real directory (a symlink, a
/// file) makes the path `Other`: nothing is read through a symlink the agent planted.
fn node_in(root: &Path, rel: &str) -> Node {
    let mut at = root.to_path_buf();
    let parts: Vec<&str> = rel.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        at.push(part);
        let n = node(&at);
        if i + 1 == parts.len() {
            return n;
        }
        match std::fs::symlink_metadata(&at) {
            Err(_) => return Node::Missing,
            Ok(m) if m.file_type().is_dir() => {}
            Ok(_) => return Node::Other,
        }
    }
    Node::Missing
}

fn node(p: &Path) -> Node {
    match std::fs::symlink_metadata(p) {
        Err(_) => Node::Missing,
        Ok(m) if m.file_type().is_file() => Node::File {
            exec: m.mode() & 0o100 != 0,
        },
        Ok(m) if m.file_type().is_symlink() => Node::Symlink,
        Ok(_) => Node::Other,
    }
}

fn base_node(e: &BaseEntry) -> Node {
    match e.mode {
        0o120000 => Node::Symlink,
        m => Node::File {
            exec: m & 0o100 != 0,
        },
    }
}

/// Where the base versions of files come from.
pub(crate) enum BaseFiles<'a> {
    /// A checkout of the base commit (overlay: the shared base checkout): compared byte by byte.
    Dir(&'a Path),
    /// Only the commit's blobs (worktree): compared by git blob id.
    Blobs,
}

/// How `now` differs from the base entry `base` (`None`: not at all).
fn compare(
    base: &BaseEntry,
    base_files: &BaseFiles<'_>,
    tree_dir: &Path,
    rel: &str,
) -> Option<ChangeKind> {
    let now = &tree_dir.join(rel);
    let (b, n) = (base_node(base), node_in(tree_dir, rel));
    match (b, n) {
        (_, Node::Missing) => Some(ChangeKind::Deleted),
        (Node::File { exec: be }, Node::File { exec: ne }) => {
            let same = match base_files {
                BaseFiles::Dir(dir) => same_bytes(&dir.join(rel), now),
                BaseFiles::Blobs => {
                    let len = std::fs::metadata(now).map(|m| m.len()).ok();
                    len.is_some()
                        && (base.size.is_none() || len == base.size)
                        && blob_id_of_file(now).as_deref() == Some(base.sha.as_str())
                }
            };
            if !same {
                Some(ChangeKind::Modified)
            } else if be != ne {
                Some(ChangeKind::ModeChanged)
            } else {
                None
            }
        }
        (Node::Symlink, Node::Symlink) => {
            let target = std::fs::read_link(now).ok();
            let same = match base_files {
                BaseFiles::Dir(dir) => std::fs::read_link(dir.join(rel)).ok() == target,
                BaseFiles::Blobs => {
                    target.map(|t| blob_id(t.as_os_str().as_encoded_bytes()))
                        == Some(base.sha.clone())
                }
            };
            (!same).then_some(ChangeKind::Modified)
        }
        _ => Some(ChangeKind::ModeChanged),
    }
}

/// Byte-for-byte equality of two regular files (lengths first, then 64 KiB at a time).
fn same_bytes(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) else {
        return false;
    };
    if ma.len() != mb.len() {
        return false;
    }
    let (Ok(mut fa), Ok(mut fb)) = (std::fs::File::open(a), std::fs::File::open(b)) else {
        return false;
    };
    let (mut ba, mut bb) = (vec![0u8; 65536], vec![0u8; 65536]);
    loop {
        let Ok(n) = read_full(&mut fa, &mut ba) else {
            return false;
        };
        let Ok(m) = read_full(&mut fb, &mut bb) else {
            return false;
        };
        if n != m || ba[..n] != bb[..m] {
            return false;
        }
        if n == 0 {
            return true;
        }
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Git's blob id of `bytes` (`sha1("blob <len>\0" + bytes)`).
fn blob_id(bytes: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(format!("blob {}\0", bytes.len()).as_bytes());
    h.update(bytes);
    format!("{:x}", h.finalize())
}

/// Git's blob id of a file's raw bytes (no filters), streamed.
fn blob_id_of_file(p: &Path) -> Option<String> {
    let len = std::fs::metadata(p).ok()?.len();
    let mut f = std::fs::File::open(p).ok()?;
    let mut h = Sha1::new();
    h.update(format!("blob {len}\0").as_bytes());
    let mut buf = vec![0u8; 65536];
    let mut seen = 0u64;
    loop {
        let n = f.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        seen += n as u64;
        h.update(&buf[..n]);
    }
    (seen == len).then(|| format!("{:x}", h.finalize()))
}

/// Files (and symlinks, and anything else that is not a directory) below `root`, as relative
/// paths, skipping the top-level `.git`. `upper`: `root` is an overlay upper layer, whose
/// whiteouts (character devices 0/0, i.e. deletions) are left out. Iterative, so no depth the
/// agent creates can overflow a stack; symlinks are never followed.
pub(crate) fn walk(root: &Path, upper: bool) -> Vec<String> {
    let mut out = vec![];
    let mut stack: Vec<(PathBuf, String)> = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        if cancelled() {
            break;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for (i, e) in entries.flatten().enumerate() {
            if i % 4096 == 4095 && cancelled() {
                return out;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            if rel.is_empty() && name == ".git" {
                continue;
            }
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push((e.path(), child));
            } else if upper && ft.is_char_device() {
                let whiteout = e.metadata().map(|m| m.rdev() == 0).unwrap_or(false);
                if !whiteout {
                    out.push(child);
                }
            } else {
                out.push(child);
            }
        }
    }
    out
}

/// The changes of `tree_dir` (a checkout of the task's work) to the protected paths of `base`.
/// `present`: the protected candidates found on disk that may be new.
pub(crate) fn diff(
    protect: &Protect,
    base: &BaseTree,
    base_files: &BaseFiles<'_>,
    tree_dir: &Path,
    present: &[String],
) -> Vec<ProtectedChange> {
    let mut changes: BTreeMap<String, ChangeKind> = BTreeMap::new();
    for (rel, entry) in base.iter().filter(|(p, _)| protect.matches(p)) {
        if let Some(kind) = compare(entry, base_files, tree_dir, rel) {
            changes.insert(rel.clone(), kind);
        }
    }
    let mut added: BTreeSet<&String> = BTreeSet::new();
    for rel in present {
        // A name that is not UTF-8 was read lossily (U+FFFD) and cannot be looked up again:
        // under a protected glob it counts as added (fails closed).
        if !base.contains_key(rel)
            && protect.matches(rel)
            && (node_in(tree_dir, rel) != Node::Missing || rel.contains('\u{FFFD}'))
        {
            added.insert(rel);
        }
    }
    for rel in added {
        changes.entry(rel.clone()).or_insert(ChangeKind::Added);
    }
    changes
        .into_iter()
        .map(|(path, change)| ProtectedChange { path, change })
        .collect()
}

impl Sandboxes {
    /// The globs of `protect` that match no file of `commit` in `repo_dir` (for a warning).
    pub async fn unmatched_globs(
        &self,
        repo_dir: &Path,
        commit: &str,
        protect: &Protect,
    ) -> Result<Vec<String>> {
        if protect.is_empty() {
            return Ok(vec![]);
        }
        let tree = tree_of(repo_dir, commit).await?;
        Ok(protect.unmatched(tree.keys().map(String::as_str)))
    }

    /// What the task changed under the protected globs, compared with its base commit: files
    /// added (tracked, untracked or ignored), modified, deleted, or whose mode or type changed.
    /// Overlay: the base paths are compared byte by byte with the base checkout and new files
    /// are looked for in the upper layer only (cost grows with the changes, not the repository).
    /// Worktree: the whole work tree is walked and compared by blob id.
    pub async fn protected_changes(
        &self,
        sb: &Sandbox,
        protect: &Protect,
    ) -> Result<Vec<ProtectedChange>> {
        if protect.is_empty() {
            return Ok(vec![]);
        }
        self.ensure_mounted(sb)?;
        let (base, _) = self.protected_base(sb, protect).await?;
        let (sb, protect) = (sb.clone(), protect.clone());
        blocking(move || {
            let (files, present) = match (&sb.kind, &sb.base_dir) {
                (SandboxKind::Overlay, Some(dir)) => {
                    (BaseFiles::Dir(dir), walk(&sb.upper_dir(), true))
                }
                _ => (BaseFiles::Blobs, walk(&sb.path, false)),
            };
            diff(&protect, &base, &files, &sb.path, &present)
        })
        .await
    }

    /// The base commit's files of `sb` (only the protected ones) and the directory holding a
    /// checkout of them, if there is one (overlay).
    pub(crate) async fn protected_base(
        &self,
        sb: &Sandbox,
        protect: &Protect,
    ) -> Result<(BaseTree, Option<PathBuf>)> {
        let (dir, checkout) = match (&sb.kind, &sb.base_dir) {
            (SandboxKind::Overlay, Some(dir)) => (dir.clone(), Some(dir.clone())),
            _ => (sb.repo_dir.clone(), None),
        };
        let mut tree = tree_of(&dir, &sb.base_commit).await?;
        tree.retain(|p, _| protect.matches(p));
        Ok((tree, checkout))
    }

    /// What `head` changed under the protected globs compared with `base`, both commits of
    /// `repo_dir` (for a task whose sandbox is already committed and gone).
    pub async fn protected_changes_between(
        &self,
        repo_dir: &Path,
        base: &str,
        head: &str,
        protect: &Protect,
    ) -> Result<Vec<ProtectedChange>> {
        let before = tree_of(repo_dir, base).await?;
        let after = tree_of(repo_dir, head).await?;
        let mut out = vec![];
        for (path, b) in before.iter().filter(|(p, _)| protect.matches(p)) {
            let change = match after.get(path) {
                None => Some(ChangeKind::Deleted),
                Some(a) if a.sha != b.sha => Some(ChangeKind::Modified),
                Some(a) if a.mode != b.mode => Some(ChangeKind::ModeChanged),
                Some(_) => None,
            };
            if let Some(change) = change {
                out.push(ProtectedChange {
                    path: path.clone(),
                    change,
                });
            }
        }
        for path in after
            .keys()
            .filter(|p| !before.contains_key(*p) && protect.matches(p))
        {
            out.push(ProtectedChange {
                path: path.clone(),
                change: ChangeKind::Added,
            });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }
}

thread_local! {
    /// Set on the blocking thread running [`blocking`]'s work: true once its caller is gone.
    static CANCELLED: std::cell::RefCell<Option<Arc<AtomicBool>>> = const { std::cell::RefCell::new(None) };
}

/// Whether the caller of the [`blocking`] work running on this thread has given up on it (its
/// future was dropped, e.g. by a timeout): long walks stop early; their result is never used.
pub(crate) fn cancelled() -> bool {
    CANCELLED.with(|c| {
        c.borrow()
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
    })
}

/// Sets the flag when dropped: the awaiting future is gone.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Runs blocking work (walks, compares) off the async workers. Dropping the returned future
/// cancels it: the walks check [`cancelled`] and stop, so abandoned work does not run on.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    let flag = Arc::new(AtomicBool::new(false));
    let guard = CancelOnDrop(flag.clone());
    let res = tokio::task::spawn_blocking(move || {
        CANCELLED.with(|c| *c.borrow_mut() = Some(flag));
        let out = f();
        CANCELLED.with(|c| *c.borrow_mut() = None);
        out
    })
    .await;
    drop(guard);
    res.map_err(|e| SandboxError::Io {
        op: "walk".to_string(),
        path: "sandbox".to_string(),
        source: std::io::Error::other(e.to_string()),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn p(globs: &[&str]) -> Protect {
        Protect::new(&globs.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn globs_match_paths_and_everything_below_a_matched_directory() {
        let pr = p(&["check.sh", "tests", "**/*_test.go", "ci/*.yml"]);
        assert!(pr.matches("check.sh"));
        assert!(
            !pr.matches("sub/check.sh"),
            "a plain name is anchored at the root"
        );
        assert!(pr.matches("tests/unit/a.py"));
        assert!(pr.matches("pkg/x/y_test.go"));
        assert!(pr.matches("y_test.go"));
        assert!(pr.matches("ci/build.yml"));
        assert!(
            !pr.matches("ci/sub/build.yml"),
            "`*` stays within a component"
        );
        assert!(!pr.matches("src/lib.rs"));
        assert!(!p(&["**"]).matches(".git/config"));
        assert_eq!(
            pr.unmatched(["tests/a.py", "check.sh"]),
            vec!["**/*_test.go".to_string(), "ci/*.yml".to_string()]
        );
    }

    #[test]
    fn bad_globs_are_refused_with_the_reason() {
        for bad in [
            "tests/[oops",
            "",
            "/abs/path",
            "../up",
            ".git/hooks",
            "a/{b",
        ] {
            let e = Protect::new(&[bad.to_string()]).unwrap_err();
            assert_eq!(e.glob, bad);
            assert!(!e.reason.is_empty());
        }
    }

    #[test]
    fn blob_ids_are_gits() {
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            blob_id(b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
    }
}
