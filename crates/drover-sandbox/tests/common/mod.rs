//! Helpers shared by the integration tests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;

use drover_sandbox::{probe_overlay, SandboxKind, SandboxMode, Sandboxes};

/// A temp dir that unmounts every overlay below it before it is deleted (also when a test panics).
pub struct TestDir(tempfile::TempDir);

impl TestDir {
    pub fn path(&self) -> &Path {
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

pub fn tempdir() -> TestDir {
    TestDir(tempfile::tempdir().unwrap())
}

pub fn hermetic() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::env::set_var("GIT_CONFIG_GLOBAL", "/dev/null");
        std::env::set_var("GIT_CONFIG_NOSYSTEM", "1");
    });
}

pub fn git(dir: &Path, args: &[&str]) -> String {
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

pub fn git_ok(dir: &Path, args: &[&str]) -> bool {
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
pub fn make_repo(dir: &Path) -> PathBuf {
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
pub fn sandboxes(home: &Path, mode: SandboxMode) -> Option<Sandboxes> {
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
