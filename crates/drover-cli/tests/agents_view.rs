//! `drover agents` without a terminal: the plain table once, exit 0 (scripts and CI).
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;

#[test]
fn agents_without_a_tty_prints_the_table_once() {
    let env = Env::new();
    let ok = env.run_command_task("echo fine", "a task that succeeds");
    let bad = env.run_command_task("exit 3", "a task that fails");
    assert_eq!(env.wait(&ok)["state"], "succeeded");
    assert_eq!(env.wait(&bad)["state"], "failed");
    // Output goes to a pipe here, so this must not enter the full-screen view (or hang).
    let out = env.run(&["agents"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !stdout.contains('\x1b'),
        "escape codes in piped output: {stdout:?}"
    );
    let header = stdout.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("ID") && header.contains("STATE"),
        "{stdout}"
    );
    let row = |id: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("no row for {id}:\n{stdout}"))
            .to_string()
    };
    assert!(row(&ok).contains("succeeded"), "{stdout}");
    assert!(row(&bad).contains("failed"), "{stdout}");
    assert!(row(&ok).contains("a task that succeeds"), "{stdout}");
}
