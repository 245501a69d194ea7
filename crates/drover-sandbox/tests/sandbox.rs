//! End-to-end tests with real git (hermetic config) and real overlay mounts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

use drover_sandbox::{probe_overlay, SandboxError, SandboxKind, SandboxMode, Sandboxes};

/// A temp dir that unmounts every overlay below it before it is deleted (also when a test panics).
struct TestDir(tempfile::TempDir);

impl TestDir {
    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for point in table.lines().filter_map(|l| l.split(' ').nth(4)) {
            if Path::new(point).starts_with(self.0.path()) {
                let _ = nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH);
            }
        }
    }
}

fn tempdir() -> TestDir {
    TestDir(tempfile::tempdir().unwrap())
}

fn hermetic() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::env::set_var("GIT_CONFIG_GLOBAL", "/dev/null");
        std::env::set_var("GIT_CONFIG_NOSYSTEM", "1");
    });
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn git_ok(dir: &Path, args: &[&str]) -> bool {
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
        .status
        .success()
}

/// A repo with `tracked.txt`, `sub/a.txt` and a `.gitignore` ignoring `*.log`; one commit.
fn make_repo(dir: &Path) -> PathBuf {
    hermetic();
    let repo = dir.join("repo");
    std::fs::create_dir_all(repo.join("sub")).unwrap();
    std::fs::write(repo.join("tracked.txt"), "base\n").unwrap();
    std::fs::write(repo.join("sub/a.txt"), "a\n").unwrap();
    std::fs::write(repo.join(".gitignore"), "*.log\n").unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(
        &repo,
        &[
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "-m",
            "base",
        ],
    );
    repo
}

/// `None` (and the test is skipped) when overlayfs is unavailable here.
fn sandboxes(home: &Path, mode: SandboxMode) -> Option<Sandboxes> {
    if mode == SandboxMode::Overlay {
        if let Err(e) = probe_overlay(home) {
            eprintln!("skipping overlay test: {e}");
            return None;
        }
    }
    let s = Sandboxes::new(home, mode);
    assert_eq!(
        s.kind() == SandboxKind::Overlay,
        mode == SandboxMode::Overlay,
        "{}",
        s.mode_reason()
    );
    Some(s)
}

async fn finish_delivers_branch(mode: SandboxMode) {
    let tmp = tempdir();
    let repo = make_repo(tmp.path());
    let Some(s) = sandboxes(&tmp.path().join("home"), mode) else {
        return;
    };
    let r = s.resolve(repo.to_str().unwrap(), "main").await.unwrap();
    assert_eq!(r.commit, git(&repo, &["rev-parse", "HEAD"]));
    let sb = s.prepare("t1", &r).await.unwrap();
    assert_eq!(sb.branch, "drover/t1");
    assert_eq!(
        git(&sb.path, &["symbolic-ref", "HEAD"]),
        "refs/heads/drover/t1"
    );
    assert_eq!(git(&sb.path, &["status", "--porcelain"]), "");
    assert!(sb.root.join("sandbox.json").exists());
    assert_eq!(s.list(), vec!["t1".to_string()]);

    std::fs::write(sb.path.join("tracked.txt"), "changed\n").unwrap();
    std::fs::write(sb.path.join("sub/new.txt"), "new\n").unwrap();
    std::fs::write(sb.path.join("build.log"), "ignored\n").unwrap();
    let head = s.finish(&sb, "task t1").await.unwrap().unwrap();

    assert_eq!(git(&repo, &["rev-parse", "drover/t1"]), head);
    assert_eq!(git(&repo, &["show", "drover/t1:tracked.txt"]), "changed");
    assert_eq!(git(&repo, &["show", "drover/t1:sub/new.txt"]), "new");
    assert!(!git_ok(&repo, &["cat-file", "-e", "drover/t1:build.log"]));
    assert_eq!(git(&repo, &["rev-parse", "drover/t1^"]), r.commit);
    assert_eq!(
        git(&repo, &["log", "-1", "--format=%an <%ae>", "drover/t1"]),
        "drover <drover@localhost>"
    );
    assert!(!sb.root.exists());
    assert!(s.list().is_empty());
    assert!(s.mounted_task_ids().is_empty());
    // The user's checkout is untouched.
    assert_eq!(git(&repo, &["symbolic-ref", "HEAD"]), "refs/heads/main");
    assert_eq!(
        std::fs::read_to_string(repo.join("tracked.txt")).unwrap(),
        "base\n"
    );
}

async fn isolation(mode: SandboxMode) {
    let tmp = tempdir();
    let repo = make_repo(tmp.path());
    let Some(s) = sandboxes(&tmp.path().join("home"), mode) else {
        return;
    };
    let r = s.resolve(repo.to_str().unwrap(), "HEAD").await.unwrap();
    let (a, b) = tokio::join!(s.prepare("a", &r), s.prepare("b", &r));
    let (a, b) = (a.unwrap(), b.unwrap());
    std::fs::write(a.path.join("only-a.txt"), "a\n").unwrap();
    std::fs::write(a.path.join("tracked.txt"), "a was here\n").unwrap();
    assert!(!b.path.join("only-a.txt").exists());
    assert_eq!(
        std::fs::read_to_string(b.path.join("tracked.txt")).unwrap(),
        "base\n"
    );
    assert_eq!(git(&b.path, &["status", "--porcelain"]), "");
    assert_eq!(
        git(&a.path, &["symbolic-ref", "HEAD"]),
        "refs/heads/drover/a"
    );
    assert_eq!(
        git(&b.path, &["symbolic-ref", "HEAD"]),
        "refs/heads/drover/b"
    );
    let ha = s.commit_all(&a, "a").await.unwrap().unwrap();
    // Nothing changed in b: its head is the base commit.
    let hb = s.commit_all(&b, "b").await.unwrap().unwrap();
    assert_ne!(ha, hb);
    assert_eq!(hb, r.commit);
    assert_eq!(git(&b.path, &["rev-parse", "HEAD"]), r.commit);
    if mode == SandboxMode::Overlay {
        // Refs live in each task's upper layer: b does not see a's branch.
        assert!(!git_ok(
            &b.path,
            &["rev-parse", "--verify", "-q", "refs/heads/drover/a"]
        ));
    }
    s.finish(&a, "a").await.unwrap();
    s.finish(&b, "b").await.unwrap();
    assert_eq!(git(&repo, &["rev-parse", "drover/b"]), r.commit);
    assert_eq!(git(&repo, &["rev-parse", "drover/a"]), ha);
}

#[tokio::test]
async fn overlay_finish_delivers_branch() {
    finish_delivers_branch(SandboxMode::Overlay).await;
}

#[tokio::test]
async fn worktree_finish_delivers_branch() {
    finish_delivers_branch(SandboxMode::Worktree).await;
}

#[tokio::test]
async fn overlay_sandboxes_are_isolated() {
    isolation(SandboxMode::Overlay).await;
}

#[tokio::test]
async fn worktree_sandboxes_are_isolated() {
    isolation(SandboxMode::Worktree).await;
}

#[tokio::test]
async fn resolve_errors() {
    let tmp = tempdir();
    let repo = make_repo(tmp.path());
    let s = Sandboxes::new(&tmp.path().join("home"), SandboxMode::Worktree);
    let plain = tmp.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    for bad in [
        plain.to_str().unwrap(),
        "relative/dir",
        "/nonexistent/drover",
    ] {
        match s.resolve(bad, "HEAD").await {
            Err(SandboxError::NotAGitRepo { path, .. }) => assert_eq!(path, bad),
            other => panic!("{bad}: expected NotAGitRepo, got {other:?}"),
        }
    }
    for bad_ref in ["no-such-branch", "-h", "deadbeefdeadbeef", ""] {
        match s.resolve(repo.to_str().unwrap(), bad_ref).await {
            Err(SandboxError::UnknownRef { git_ref, .. }) => assert_eq!(git_ref, bad_ref),
            other => panic!("{bad_ref}: expected UnknownRef, got {other:?}"),
        }
    }
    let r = s
        .resolve(repo.join("sub").to_str().unwrap(), "main")
        .await
        .unwrap();
    assert_eq!(r.repo_dir, repo.canonicalize().unwrap());
    let sb_err = s.prepare("../evil", &r).await.unwrap_err();
    assert!(matches!(sb_err, SandboxError::InvalidTaskId(_)));
}

#[tokio::test]
async fn remove_refuses_uncommitted_work_and_commit_errors_are_typed() {
    for mode in [SandboxMode::Overlay, SandboxMode::Worktree] {
        let tmp = tempdir();
        let repo = make_repo(tmp.path());
        let Some(s) = sandboxes(&tmp.path().join("home"), mode) else {
            continue;
        };
        let r = s.resolve(repo.to_str().unwrap(), "main").await.unwrap();
        let sb = s.prepare("w", &r).await.unwrap();
        assert!(matches!(
            s.prepare("w", &r).await,
            Err(SandboxError::SandboxExists(_))
        ));
        std::fs::write(sb.path.join("work.txt"), "precious\n").unwrap();
        assert!(matches!(
            s.remove(&sb).await,
            Err(SandboxError::UncommittedChanges { .. })
        ));
        // A failing git step is a typed error and leaves the sandbox alone.
        let lock = PathBuf::from(git(&sb.path, &["rev-parse", "--git-path", "index.lock"]));
        let lock = if lock.is_absolute() {
            lock
        } else {
            sb.path.join(lock)
        };
        std::fs::write(&lock, "").unwrap();
        match s.commit_all(&sb, "x").await {
            Err(SandboxError::Git { op, stderr, .. }) => assert!(
                op.contains("add") && stderr.contains("index.lock"),
                "{op}: {stderr}"
            ),
            other => panic!("expected Git error, got {other:?}"),
        }
        assert!(sb.path.join("work.txt").exists());
        std::fs::remove_file(&lock).unwrap();
        s.finish(&sb, "x").await.unwrap();
        assert_eq!(git(&repo, &["show", "drover/w:work.txt"]), "precious");
    }
}

#[tokio::test]
async fn overlay_load_remounts_and_gc_removes_unused_base() {
    let tmp = tempdir();
    let repo = make_repo(tmp.path());
    let Some(s) = sandboxes(&tmp.path().join("home"), SandboxMode::Overlay) else {
        return;
    };
    let r = s.resolve(repo.to_str().unwrap(), "main").await.unwrap();
    let sbs = futures_join_all(&s, &["g1", "g2", "g3"], &r).await;
    let bases: Vec<_> = std::fs::read_dir(s.home().join("bases"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(bases.len(), 1, "one base for three sandboxes of one commit");
    assert_eq!(s.mounted_task_ids(), vec!["g1", "g2", "g3"]);

    // Simulate a reboot: the mount is gone, the upper layer stays.
    std::fs::write(sbs[0].path.join("kept.txt"), "kept\n").unwrap();
    nix::mount::umount(&sbs[0].path).unwrap();
    assert_eq!(s.mounted_task_ids(), vec!["g2", "g3"]);
    let loaded = s.load("g1").await.unwrap().unwrap();
    assert_eq!(loaded, sbs[0]);
    assert_eq!(
        std::fs::read_to_string(loaded.path.join("kept.txt")).unwrap(),
        "kept\n"
    );
    assert!(s.load("nope").await.unwrap().is_none());

    // Leftovers of a dead prepare and a dead base build are collected; a used base is kept.
    std::fs::create_dir_all(s.home().join("sandboxes/dead")).unwrap();
    std::fs::create_dir_all(s.home().join("bases/.tmp-k-0000")).unwrap();
    let live: HashSet<String> = ["g2".to_string()].into();
    let report = s.collect_garbage(&live).await;
    assert!(report.removed_bases.is_empty(), "{report:?}");
    assert_eq!(report.removed_leftovers.len(), 2, "{report:?}");
    assert_eq!(report.stale_mounts, vec!["g1", "g3"]);
    assert_eq!(report.orphaned, vec!["g1", "g3"]);

    for sb in &sbs {
        s.finish(sb, "done").await.unwrap();
    }
    let report = s.collect_garbage(&HashSet::new()).await;
    assert_eq!(report.removed_bases.len(), 1, "{report:?}");
    assert_eq!(
        std::fs::read_dir(s.home().join("bases")).unwrap().count(),
        0
    );
    assert_eq!(git(&repo, &["show", "drover/g1:kept.txt"]), "kept");
}

async fn futures_join_all(
    s: &Sandboxes,
    ids: &[&str],
    r: &drover_sandbox::Resolved,
) -> Vec<drover_sandbox::Sandbox> {
    let handles: Vec<_> = ids
        .iter()
        .map(|id| {
            let (s, r, id) = (s.clone(), r.clone(), id.to_string());
            tokio::spawn(async move { s.prepare(&id, &r).await })
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap().unwrap());
    }
    out.sort_by(|a, b| a.task_id.cmp(&b.task_id));
    out
}

#[tokio::test]
async fn url_repo_is_cloned_and_receives_the_branch() {
    let tmp = tempdir();
    let repo = make_repo(tmp.path());
    let mode = if probe_overlay(&tmp.path().join("home")).is_ok() {
        SandboxMode::Overlay
    } else {
        SandboxMode::Worktree
    };
    let s = Sandboxes::new(&tmp.path().join("home"), mode);
    let url = format!("file://{}", repo.display());
    let r = s.resolve(&url, "main").await.unwrap();
    assert!(r.repo_dir.starts_with(s.home().join("repos")));
    assert_eq!(r.commit, git(&repo, &["rev-parse", "HEAD"]));
    // A new upstream commit is seen by the next resolve.
    std::fs::write(repo.join("tracked.txt"), "v2\n").unwrap();
    git(
        &repo,
        &[
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@t",
            "commit",
            "-qam",
            "v2",
        ],
    );
    let r2 = s.resolve(&url, "main").await.unwrap();
    assert_eq!(r2.commit, git(&repo, &["rev-parse", "HEAD"]));
    let sb = s.prepare("u1", &r2).await.unwrap();
    std::fs::write(sb.path.join("x.txt"), "x\n").unwrap();
    let head = s.finish(&sb, "u1").await.unwrap().unwrap();
    assert_eq!(git(&r2.repo_dir, &["rev-parse", "drover/u1"]), head);
}

#[test]
fn modes_parse() {
    assert_eq!("auto".parse::<SandboxMode>().unwrap(), SandboxMode::Auto);
    assert!("zfs".parse::<SandboxMode>().is_err());
}
