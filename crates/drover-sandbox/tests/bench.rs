//! The sandbox benchmark, run by hand: `cargo test --release -p drover-sandbox --test bench -- --ignored --nocapture`.
//! Sizes via `DROVER_BENCH_FILES=5000,50000`, repetitions via `DROVER_BENCH_REPS=5`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[tokio::test]
#[ignore = "benchmark; run explicitly"]
async fn bench_sandbox_start() {
    std::env::set_var("GIT_CONFIG_GLOBAL", "/dev/null");
    std::env::set_var("GIT_CONFIG_NOSYSTEM", "1");
    let files: Vec<usize> = std::env::var("DROVER_BENCH_FILES")
        .unwrap_or_else(|_| "5000,50000".to_string())
        .split(',')
        .map(|n| n.trim().parse().unwrap())
        .collect();
    let reps = std::env::var("DROVER_BENCH_REPS").map_or(5, |r| r.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let rows = drover_sandbox::bench_sandbox(dir.path(), &files, reps)
        .await
        .unwrap();
    println!(
        "{:>8} {:>14} {:>17} {:>16} {:>8}",
        "files", "base_build_ms", "overlay_ready_ms", "worktree_add_ms", "ratio"
    );
    for r in &rows {
        println!(
            "{:>8} {:>14.1} {:>17.2} {:>16.1} {:>7.1}x",
            r.files,
            r.base_build_ms.unwrap_or(f64::NAN),
            r.overlay_ready_ms.unwrap_or(f64::NAN),
            r.worktree_add_ms,
            r.ratio.unwrap_or(f64::NAN)
        );
    }
    assert_eq!(rows.len(), files.len());
}
