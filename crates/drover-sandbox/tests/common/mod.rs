//! Helpers shared by the integration tests.

#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use drover_test_support::git::commit_all;

use drover_sandbox::{probe_overlay, SandboxKind, SandboxMode, Sandboxes};

pub use drover_test_support::git::{git, git_ok, hermetic};
pub use drover_test_support::mounts::TestDir;

pub fn tempdir() -> TestDir {
    TestDir::new()
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
    commit_all(&repo, "base");
    repo
}

/// Set to skip the overlay tests where overlayfs cannot work even as root (e.g. a container
/// without mount rights). Each skip is still printed.
pub const SKIP_OVERLAY_ENV: &str = "DROVER_SKIP_OVERLAY";

/// The sandboxes of `mode`. Overlay tests need overlayfs: as root it must work, so a failing probe
/// fails the test (unless `DROVER_SKIP_OVERLAY=1`); as another user the test is skipped — loudly,
/// with a `SKIPPED:` line naming the test and why, like the other tests that skip — and `None`
/// is returned.
pub fn sandboxes(home: &Path, mode: SandboxMode) -> Option<Sandboxes> {
    if mode == SandboxMode::Overlay {
        if let Err(e) = probe_overlay(home) {
            let test = std::thread::current()
                .name()
                .unwrap_or("an overlay test")
                .to_string();
            let opted_out = std::env::var(SKIP_OVERLAY_ENV).is_ok_and(|v| v == "1");
            // SAFETY: geteuid has no preconditions.
            let root = unsafe { libc::geteuid() } == 0;
            assert!(
                !root || opted_out,
                "{test}: overlayfs does not work here although we are root: {e} \
                 (set {SKIP_OVERLAY_ENV}=1 to skip the overlay tests on this machine)"
            );
            eprintln!("SKIPPED: {test}: overlay unavailable: {e}");
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
