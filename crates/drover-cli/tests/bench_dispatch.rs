//! `drover bench dispatch` runs end to end (so the benchmark's code cannot rot): small, against
//! a fresh database on the test cluster (the fixture panics without one), all three rows.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use std::time::Duration;

#[test]
fn bench_dispatch_prints_sqlite_and_postgres_rows_side_by_side() {
    let url = drover_test_support::fleet::fresh_database();
    // Unconfined agents: the test is about the rows and their figures; with isolation = full
    // about 1 task in 70 fails at 16 slots with "drover jail: statvfs …/merged: ENOENT" (on
    // SQLite too: the jail's, not the store's), and every task must succeed here.
    let env = Env::new().with_env("DROVER_SANDBOX_ISOLATION", "none");
    let out = env.run_within(
        &[
            "bench",
            "dispatch",
            "--tasks",
            "40",
            "--slots",
            "4",
            "--database-url",
            &url,
        ],
        Duration::from_secs(600),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench dispatch exited {:?}\n{stdout}\n{stderr}",
        out.status.code()
    );
    assert!(
        !stdout.contains(&url) && !stderr.contains(&url),
        "the URL is never printed"
    );
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("SQLite ") || l.starts_with("PostgreSQL "))
        .collect();
    assert_eq!(rows.len(), 3, "three rows in\n{stdout}\n{stderr}");
    for (row, workers) in rows.iter().zip(["1", "1", "2"]) {
        let f: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(f[1], workers, "{row}");
        assert_eq!(f[3], "40/40", "every task succeeded: {row}");
        for (i, what) in [(4, "tasks/s"), (5, "p50"), (6, "p99"), (7, "stmts/task")] {
            let v: f64 = f[i].parse().unwrap_or_else(|_| panic!("{what} in {row}"));
            assert!(v > 0.0, "{what} > 0 in {row}");
        }
    }
    assert_eq!(
        rows[2].split_whitespace().nth(2),
        Some("2x2"),
        "{}",
        rows[2]
    );
}

#[test]
fn bench_dispatch_without_a_database_says_how_to_give_one() {
    let env = Env::new().with_env("DROVER_DATABASE_URL", "");
    let out = env.run_within(
        &["bench", "dispatch", "--tasks", "3", "--slots", "2"],
        Duration::from_secs(300),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("PostgreSQL rows skipped: give a scratch database with --database-url"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("SQLite ") && l.contains("3/3")),
        "{stdout}"
    );
}
