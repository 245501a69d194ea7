//! Running git in test repositories (asserting success) and making small ones.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;
use std::sync::Once;

/// Runs `git -C dir args…` (system config ignored); fails the test unless it succeeds.
/// Returns stdout, trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    git_env(dir, args, &[])
}

/// [`git`] with extra environment (e.g. `HOME` for a test's own `.gitconfig`).
pub fn git_env(dir: &Path, args: &[&str], env: &[(&str, &OsStr)]) -> String {
    let out = command(dir, args, env).output().unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Whether `git -C dir args…` succeeds (for checks that expect a failure).
pub fn git_ok(dir: &Path, args: &[&str]) -> bool {
    command(dir, args, &[]).output().unwrap().status.success()
}

fn command(dir: &Path, args: &[&str], env: &[(&str, &OsStr)]) -> Command {
    let mut c = Command::new("git");
    c.arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// Makes every git this test process runs (and its children) ignore the user's and the
/// system's configuration. Once per process.
pub fn hermetic() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::env::set_var("GIT_CONFIG_GLOBAL", "/dev/null");
        std::env::set_var("GIT_CONFIG_NOSYSTEM", "1");
    });
}

/// `git add -A` and a commit with a fixed test identity (no configuration needed).
pub fn commit_all(dir: &Path, message: &str) {
    git(dir, &["add", "-A"]);
    git(
        dir,
        &[
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "-m",
            message,
        ],
    );
}

/// A `.gitconfig` in `home` with a user and `main` as the default branch, for tests that run
/// programs (drover, git) with `HOME=home`.
pub fn write_user_config(home: &Path) {
    std::fs::create_dir_all(home).unwrap();
    std::fs::write(
        home.join(".gitconfig"),
        "[user]\n\tname = Test\n\temail = test@example.com\n[init]\n\tdefaultBranch = main\n",
    )
    .unwrap();
}
