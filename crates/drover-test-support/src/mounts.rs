//! Temporary directories that leave no mount behind (overlay sandboxes mount below them).

use std::path::Path;

/// A temp dir that unmounts every mount below it before it is deleted, also when a test
/// panics.
pub struct TestDir(tempfile::TempDir);

impl TestDir {
    pub fn new() -> TestDir {
        TestDir(tempfile::tempdir().unwrap())
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Default for TestDir {
    fn default() -> Self {
        TestDir::new()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        unmount_below(self.0.path());
    }
}

/// Detaches every mount at or below `dir`, the latest first (a gate view over a sandbox goes
/// before the sandbox). Errors are ignored: this is clean-up after a test.
pub fn unmount_below(dir: &Path) {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for point in table.lines().rev().filter_map(|l| l.split(' ').nth(4)) {
        if Path::new(point).starts_with(dir) {
            // Clean-up: a mount that will not go is reported by the next test's checks.
            let _ = nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}
