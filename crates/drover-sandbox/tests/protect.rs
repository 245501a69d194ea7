//! Protected paths: the changes found against the base commit and the gates' view, in both
//! sandbox kinds, on a repository of 5,000 files (the view's preparation time is printed).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use drover_test_support::git::{commit_all, git, hermetic};
use drover_test_support::mounts::TestDir;

use drover_sandbox::{probe_overlay, ChangeKind, Protect, SandboxKind, SandboxMode, Sandboxes};

/// 5,000 files: `src/d<i>/f<j>.txt` (4,900), `tests/t<k>.sh` (98), `check.sh`, `run.sh` (+x).
fn make_repo(dir: &Path) -> PathBuf {
    hermetic();
    let repo = dir.join("repo");
    for i in 0..49 {
        let d = repo.join(format!("src/d{i}"));
        std::fs::create_dir_all(&d).unwrap();
        for j in 0..100 {
            std::fs::write(d.join(format!("f{j}.txt")), format!("{i}-{j}\n")).unwrap();
        }
    }
    std::fs::create_dir_all(repo.join("tests")).unwrap();
    for k in 0..98 {
        std::fs::write(
            repo.join(format!("tests/t{k}.sh")),
            format!("echo base-{k}\n"),
        )
        .unwrap();
    }
    std::fs::write(repo.join("check.sh"), "echo BASE-CHECK; exit 1\n").unwrap();
    std::fs::write(repo.join("run.sh"), "echo run\n").unwrap();
    std::fs::set_permissions(repo.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(repo.join(".gitignore"), "*.log\n").unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    commit_all(&repo, "base");
    assert_eq!(git(&repo, &["ls-files"]).lines().count(), 4900 + 98 + 3);
    repo
}

fn protect(globs: &[&str]) -> Protect {
    Protect::new(&globs.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
}

/// The agent's work: rewrites the gate script, weakens a test, deletes one, adds an ignored one,
/// makes one executable, and changes an unprotected file.
fn tamper(path: &Path) {
    std::fs::write(path.join("check.sh"), "echo AGENT; exit 0\n").unwrap();
    std::fs::write(path.join("tests/t1.sh"), "exit 0\n").unwrap();
    std::fs::remove_file(path.join("tests/t2.sh")).unwrap();
    std::fs::write(path.join("tests/extra.log"), "added, ignored\n").unwrap();
    std::fs::set_permissions(
        path.join("tests/t3.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(path.join("src/d0/f0.txt"), "fixed\n").unwrap();
}

fn expected() -> Vec<(String, ChangeKind)> {
    vec![
        ("check.sh".into(), ChangeKind::Modified),
        ("tests/extra.log".into(), ChangeKind::Added),
        ("tests/t1.sh".into(), ChangeKind::Modified),
        ("tests/t2.sh".into(), ChangeKind::Deleted),
        ("tests/t3.sh".into(), ChangeKind::ModeChanged),
    ]
}

async fn check_kind(mode: SandboxMode) {
    let dir = TestDir::new();
    let repo = make_repo(dir.path());
    let home = dir.path().join("home");
    if mode == SandboxMode::Overlay {
        probe_overlay(&home).unwrap_or_else(|e| {
            panic!("overlay is needed for this test (run as root on a kernel with overlayfs): {e}")
        });
    }
    let sandboxes = Sandboxes::new(&home, mode);
    let resolved = sandboxes
        .resolve(repo.to_str().unwrap(), "HEAD")
        .await
        .unwrap();
    let sb = sandboxes.prepare("t1", &resolved).await.unwrap();
    tamper(&sb.path);
    let p = protect(&["check.sh", "tests"]);

    let changes = sandboxes.protected_changes(&sb, &p).await.unwrap();
    let got: Vec<(String, ChangeKind)> =
        changes.iter().map(|c| (c.path.clone(), c.change)).collect();
    assert_eq!(got, expected());

    let started = Instant::now();
    let view = sandboxes.gate_view(&sb, &p).await.unwrap();
    let wall = started.elapsed();
    println!(
        "gate view ({}) on a 5,000-file repo, 100 protected files, 5 changed: prepared in {} ms ({:?} wall)",
        view.kind,
        view.prepare_ms,
        wall
    );
    let got: Vec<(String, ChangeKind)> = view
        .restored
        .iter()
        .map(|c| (c.path.clone(), c.change))
        .collect();
    assert_eq!(got, expected());
    let v = &view.path;
    assert_eq!(
        std::fs::read_to_string(v.join("check.sh")).unwrap(),
        "echo BASE-CHECK; exit 1\n"
    );
    assert_eq!(
        std::fs::read_to_string(v.join("tests/t1.sh")).unwrap(),
        "echo base-1\n"
    );
    assert_eq!(
        std::fs::read_to_string(v.join("tests/t2.sh")).unwrap(),
        "echo base-2\n"
    );
    assert!(
        !v.join("tests/extra.log").exists(),
        "an added protected file must not exist for the gate"
    );
    let mode = std::fs::metadata(v.join("tests/t3.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0, "mode restored");
    assert_eq!(
        std::fs::metadata(v.join("run.sh"))
            .unwrap()
            .permissions()
            .mode()
            & 0o100,
        0o100
    );
    // The agent's unprotected work is there.
    assert_eq!(
        std::fs::read_to_string(v.join("src/d0/f0.txt")).unwrap(),
        "fixed\n"
    );
    // A protected file changed after the view was made still reads as at the base (overlay:
    // every protected file sits in the top layer; worktree: the view is a frozen copy).
    std::fs::write(sb.path.join("tests/t9.sh"), "exit 0\n").unwrap();
    assert_eq!(
        std::fs::read_to_string(v.join("tests/t9.sh")).unwrap(),
        "echo base-9\n"
    );
    // What the gates write stays in the view; the sandbox keeps the agent's versions.
    std::fs::write(v.join("gate-output.txt"), "x").unwrap();
    std::fs::write(v.join("check.sh"), "gate wrote this").unwrap();
    sandboxes.drop_gate_view(&view).await.unwrap();
    assert!(!v.exists());
    if sb.kind == SandboxKind::Overlay {
        // The worst case: every file protected (5,000 links in the top layer).
        let all = sandboxes.gate_view(&sb, &protect(&["**"])).await;
        let all = all.unwrap();
        println!(
            "gate view (overlay) on a 5,000-file repo, every file protected: prepared in {} ms",
            all.prepare_ms
        );
        assert_eq!(all.restored.len(), 7, "{:?}", all.restored);
        sandboxes.drop_gate_view(&all).await.unwrap();
    }
    assert!(!sb.path.join("gate-output.txt").exists());
    assert_eq!(
        std::fs::read_to_string(sb.path.join("check.sh")).unwrap(),
        "echo AGENT; exit 0\n"
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("check.sh")).unwrap(),
        "echo BASE-CHECK; exit 1\n",
        "the base checkout / user's repo is untouched"
    );
    if sb.kind == SandboxKind::Overlay {
        let base = sb.base_dir.clone().unwrap();
        assert_eq!(
            std::fs::read_to_string(base.join("check.sh")).unwrap(),
            "echo BASE-CHECK; exit 1\n"
        );
    }

    // Committed, the same changes are found between the commits (ignored files are not committed).
    let head = sandboxes.finish(&sb, "work").await.unwrap().unwrap();
    let between = sandboxes
        .protected_changes_between(&resolved.repo_dir, &resolved.commit, &head, &p)
        .await
        .unwrap();
    let got: Vec<(String, ChangeKind)> =
        between.iter().map(|c| (c.path.clone(), c.change)).collect();
    let mut want = expected();
    want.retain(|(p, _)| p != "tests/extra.log");
    want.push(("tests/t9.sh".into(), ChangeKind::Modified));
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test]
async fn overlay_gate_view_restores_protected_paths() {
    check_kind(SandboxMode::Overlay).await;
}

#[tokio::test]
async fn worktree_gate_view_restores_protected_paths() {
    check_kind(SandboxMode::Worktree).await;
}

#[tokio::test]
async fn unmatched_globs_are_reported() {
    let dir = TestDir::new();
    let repo = make_repo(dir.path());
    let sandboxes = Sandboxes::new(&dir.path().join("home"), SandboxMode::Worktree);
    let resolved = sandboxes
        .resolve(repo.to_str().unwrap(), "HEAD")
        .await
        .unwrap();
    let p = protect(&["check.sh", "tests/*.sh", "nothing/**", "*.py"]);
    let unmatched = sandboxes
        .unmatched_globs(&resolved.repo_dir, &resolved.commit, &p)
        .await
        .unwrap();
    assert_eq!(
        unmatched,
        vec!["nothing/**".to_string(), "*.py".to_string()]
    );
}

/// Tricks that would hide a change from a naive check: a protected directory swapped for a
/// symlink to a copy of its base content, and (worktree: the agent can write the repository) a
/// git replace ref that makes the base commit's tree look like the agent's.
#[tokio::test]
async fn symlinked_directories_and_replace_refs_do_not_hide_changes() {
    let dir = TestDir::new();
    let repo = make_repo(dir.path());
    let sandboxes = Sandboxes::new(&dir.path().join("home"), SandboxMode::Worktree);
    let resolved = sandboxes
        .resolve(repo.to_str().unwrap(), "HEAD")
        .await
        .unwrap();
    let sb = sandboxes.prepare("t2", &resolved).await.unwrap();
    let p = protect(&["tests/**", "check.sh"]);

    let copy = dir.path().join("lookalike");
    std::fs::create_dir_all(&copy).unwrap();
    for k in 0..98 {
        std::fs::write(copy.join(format!("t{k}.sh")), format!("echo base-{k}\n")).unwrap();
    }
    std::fs::remove_dir_all(sb.path.join("tests")).unwrap();
    std::os::unix::fs::symlink(&copy, sb.path.join("tests")).unwrap();

    std::fs::write(sb.path.join("check.sh"), "exit 0\n").unwrap();
    let base_tree = git(&sb.path, &["rev-parse", "HEAD^{tree}"]);
    git(&sb.path, &["add", "check.sh"]);
    let forged = git(&sb.path, &["write-tree"]);
    git(&sb.path, &["replace", &base_tree, &forged]);
    assert_eq!(
        git(&repo, &["show", &format!("{}:check.sh", resolved.commit)]),
        "exit 0",
        "the replace ref is in effect for plain git"
    );

    let changes = sandboxes.protected_changes(&sb, &p).await.unwrap();
    let by_kind = |k: ChangeKind| changes.iter().filter(|c| c.change == k).count();
    assert!(
        changes.contains(&drover_sandbox::ProtectedChange {
            path: "check.sh".into(),
            change: ChangeKind::Modified
        }),
        "{changes:?}"
    );
    assert_eq!(by_kind(ChangeKind::ModeChanged), 98, "{changes:?}");
    // The gate view has the real base versions.
    let view = sandboxes.gate_view(&sb, &p).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(view.path.join("check.sh")).unwrap(),
        "echo BASE-CHECK; exit 1\n"
    );
    assert!(std::fs::symlink_metadata(view.path.join("tests"))
        .unwrap()
        .is_dir());
    assert_eq!(
        std::fs::read_to_string(view.path.join("tests/t5.sh")).unwrap(),
        "echo base-5\n"
    );
    sandboxes.drop_gate_view(&view).await.unwrap();
    assert!(
        copy.join("t5.sh").exists(),
        "nothing was written through the symlink"
    );
}

#[tokio::test]
async fn a_name_that_is_not_utf8_under_a_protected_glob_counts_as_a_change() {
    use std::os::unix::ffi::OsStrExt;
    let dir = TestDir::new();
    let repo = make_repo(dir.path());
    let sandboxes = Sandboxes::new(&dir.path().join("home"), SandboxMode::Worktree);
    let resolved = sandboxes
        .resolve(repo.to_str().unwrap(), "HEAD")
        .await
        .unwrap();
    let sb = sandboxes.prepare("t3", &resolved).await.unwrap();
    let odd = sb
        .path
        .join("tests")
        .join(std::ffi::OsStr::from_bytes(b"\xff"));
    std::fs::create_dir_all(&odd).unwrap();
    std::fs::write(odd.join("test_x.sh"), "exit 0\n").unwrap();
    let changes = sandboxes
        .protected_changes(&sb, &protect(&["tests"]))
        .await
        .unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c.change == ChangeKind::Added && c.path.starts_with("tests/")),
        "a file under a non-UTF-8 directory name escaped the check: {changes:?}"
    );
}

/// The agent replaces a directory above a protected file with a symlink to a directory on the
/// host: building the gate view (worktree: a copy of the work tree, then restores) must restore
/// the file inside the view and never delete or rewrite the host's copy behind the link.
#[tokio::test]
async fn a_planted_symlink_above_a_protected_file_never_leads_the_view_outside() {
    let dir = TestDir::new();
    let repo = make_repo(dir.path());
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(outside.join("d0")).unwrap();
    std::fs::write(outside.join("d0/f1.txt"), "HOST\n").unwrap();
    let sandboxes = Sandboxes::new(&dir.path().join("home"), SandboxMode::Worktree);
    let resolved = sandboxes
        .resolve(repo.to_str().unwrap(), "HEAD")
        .await
        .unwrap();
    let sb = sandboxes.prepare("t1", &resolved).await.unwrap();
    std::fs::remove_dir_all(sb.path.join("src")).unwrap();
    std::os::unix::fs::symlink(&outside, sb.path.join("src")).unwrap();
    let view = sandboxes
        .gate_view(&sb, &protect(&["src/d0/**"]))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(outside.join("d0/f1.txt")).unwrap(),
        "HOST\n",
        "the host file behind the agent's link was touched"
    );
    let src = std::fs::symlink_metadata(view.path.join("src")).unwrap();
    assert!(src.is_dir(), "the view's src is a real directory again");
    assert_eq!(
        std::fs::read_to_string(view.path.join("src/d0/f1.txt")).unwrap(),
        "0-1\n"
    );
    sandboxes.drop_gate_view(&view).await.unwrap();
}
