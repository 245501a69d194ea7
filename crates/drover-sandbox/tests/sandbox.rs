//! End-to-end tests with real git (hermetic config) and real overlay mounts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{git, git_ok, make_repo, sandboxes, tempdir};
use drover_sandbox::{probe_overlay, SandboxError, SandboxMode, Sandboxes};
use std::path::PathBuf;

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

#[tokio::test]
async fn agent_commits_and_branch_switches_are_delivered() {
    for mode in [SandboxMode::Overlay, SandboxMode::Worktree] {
        let tmp = tempdir();
        let repo = make_repo(tmp.path());
        let Some(s) = sandboxes(&tmp.path().join("home"), mode) else {
            continue;
        };
        let r = s.resolve(repo.to_str().unwrap(), "main").await.unwrap();
        let sb = s.prepare("sw", &r).await.unwrap();
        // The agent commits by itself on a branch of its own, then leaves more work uncommitted.
        git(&sb.path, &["checkout", "-q", "-b", "feature"]);
        std::fs::write(sb.path.join("one.txt"), "1\n").unwrap();
        git(&sb.path, &["add", "one.txt"]);
        git(
            &sb.path,
            &[
                "-c",
                "user.name=agent",
                "-c",
                "user.email=a@a",
                "commit",
                "-qm",
                "one",
            ],
        );
        std::fs::write(sb.path.join("two.txt"), "2\n").unwrap();
        let head = s.finish(&sb, "rest").await.unwrap().unwrap();
        assert_eq!(git(&repo, &["rev-parse", "drover/sw"]), head, "{mode:?}");
        assert_eq!(git(&repo, &["show", "drover/sw:one.txt"]), "1");
        assert_eq!(git(&repo, &["show", "drover/sw:two.txt"]), "2");
    }
}

/// An agent owns its checkout's `.git/config` and `.gitattributes`; saving its work (the daemon's
/// git, outside any jail) must run none of the commands they name and read nothing outside the
/// checkout (issue "Isolation": a clean filter was a way out of the jail, as the daemon's user).
async fn saving_runs_nothing_the_agent_configured(mode: SandboxMode) {
    let tmp = tempdir();
    let repo = make_repo(tmp.path());
    let Some(s) = sandboxes(&tmp.path().join("home"), mode) else {
        return;
    };
    let r = s.resolve(repo.to_str().unwrap(), "main").await.unwrap();
    let sb = s.prepare("t1", &r).await.unwrap();
    let marker = tmp.path().join("ran");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "host secret\n").unwrap();
    let run = format!("sh -c 'echo $0 >> {}; cat'", marker.display());
    for (key, value) in [
        ("filter.pwn.clean", run.clone()),
        ("filter.pwn.smudge", run.clone()),
        ("filter.pwn.process", run.clone()),
        ("filter.pwn.required", "true".to_string()),
        ("filter.a.b.clean", run.clone()),
        ("diff.pwn.textconv", run.clone()),
        ("diff.external", run.clone()),
    ] {
        git(&sb.path, &["config", key, &value]);
    }
    std::fs::write(
        sb.path.join(".gitattributes"),
        "* filter=pwn diff=pwn\n*.x filter=a.b\n",
    )
    .unwrap();
    std::fs::write(sb.path.join("tracked.txt"), "changed\n").unwrap();
    std::fs::write(sb.path.join("new.x"), "x\n").unwrap();
    let head = s.commit_all(&sb, "task t1").await.unwrap().unwrap();
    assert!(
        !marker.exists(),
        "a configured command ran: {:?}",
        std::fs::read_to_string(&marker)
    );
    assert_eq!(
        git(&repo, &["show", &format!("{head}:tracked.txt")]),
        "changed"
    );
    // core.worktree pointing outside: the daemon still saves the checkout, nothing else.
    git(
        &sb.path,
        &["config", "core.worktree", outside.to_str().unwrap()],
    );
    std::fs::write(sb.path.join("tracked.txt"), "again\n").unwrap();
    let head = s.commit_all(&sb, "task t1").await.unwrap().unwrap();
    assert!(!git_ok(
        &repo,
        &["cat-file", "-e", &format!("{head}:secret.txt")]
    ));
    assert_eq!(
        git(&repo, &["show", &format!("{head}:tracked.txt")]),
        "again"
    );
    assert!(!marker.exists());
}

#[tokio::test]
async fn overlay_saving_runs_nothing_the_agent_configured() {
    saving_runs_nothing_the_agent_configured(SandboxMode::Overlay).await;
}

#[tokio::test]
async fn worktree_saving_runs_nothing_the_agent_configured() {
    saving_runs_nothing_the_agent_configured(SandboxMode::Worktree).await;
}

/// An agent that points its checkout's `.git` at another repository on the host (one it cannot
/// see from its jail) must not make the daemon's git commit there: saving refuses.
async fn saving_refuses_a_redirected_git_dir(mode: SandboxMode, how: &str) {
    let tmp = tempdir();
    let repo = make_repo(tmp.path());
    let other = make_repo(&tmp.path().join("other"));
    let before = git(&other, &["rev-parse", "HEAD"]);
    let Some(s) = sandboxes(&tmp.path().join("home"), mode) else {
        return;
    };
    let r = s.resolve(repo.to_str().unwrap(), "main").await.unwrap();
    let sb = s.prepare("t1", &r).await.unwrap();
    let dot_git = sb.path.join(".git");
    let other_git = other.join(".git");
    match how {
        "gitfile" => {
            if dot_git.is_dir() {
                std::fs::remove_dir_all(&dot_git).unwrap();
            } else {
                std::fs::remove_file(&dot_git).unwrap();
            }
            std::fs::write(&dot_git, format!("gitdir: {}\n", other_git.display())).unwrap();
        }
        "symlink" => {
            if dot_git.is_dir() {
                std::fs::remove_dir_all(&dot_git).unwrap();
            } else {
                std::fs::remove_file(&dot_git).unwrap();
            }
            std::os::unix::fs::symlink(&other_git, &dot_git).unwrap();
        }
        _ => {
            // The worktree's own git dir (writable in the jail) or the overlay's `.git`.
            let gitdir = match std::fs::read_to_string(&dot_git) {
                Ok(body) => PathBuf::from(body.trim().strip_prefix("gitdir:").unwrap().trim()),
                Err(_) => dot_git.clone(),
            };
            std::fs::write(
                gitdir.join("commondir"),
                format!("{}\n", other_git.display()),
            )
            .unwrap();
        }
    }
    std::fs::write(sb.path.join("pwn.txt"), "pwn\n").unwrap();
    let got = s.commit_all(&sb, "task t1").await;
    assert!(
        got.is_err(),
        "{how}: saved through a redirected .git: {got:?}"
    );
    assert_eq!(git(&other, &["rev-parse", "HEAD"]), before, "{how}");
    assert_eq!(
        git(&other, &["for-each-ref", "--format=%(refname)"]),
        "refs/heads/main"
    );
}

#[tokio::test]
async fn overlay_saving_refuses_a_redirected_git_dir() {
    for how in ["gitfile", "symlink", "commondir"] {
        saving_refuses_a_redirected_git_dir(SandboxMode::Overlay, how).await;
    }
}

#[tokio::test]
async fn worktree_saving_refuses_a_redirected_git_dir() {
    for how in ["gitfile", "symlink", "commondir"] {
        saving_refuses_a_redirected_git_dir(SandboxMode::Worktree, how).await;
    }
}
