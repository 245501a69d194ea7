//! `drover bench sandbox`: overlay sandbox start vs `git worktree add`, side by side in one run.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::error::{Result, SandboxError};
use crate::git;
use crate::{probe_overlay, SandboxMode, Sandboxes};

/// One repository size's figures (milliseconds, medians over `reps`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchRow {
    /// Files in the generated repository.
    pub files: usize,
    pub reps: usize,
    /// One-off: building the shared base checkout (clone --shared + checkout). `None` without overlay.
    pub base_build_ms: Option<f64>,
    /// Median time of `prepare` in overlay mode with the base built. `None` without overlay.
    pub overlay_ready_ms: Option<f64>,
    /// Median time of `prepare` in worktree mode (`git worktree add` of the same commit).
    pub worktree_add_ms: f64,
    /// `worktree_add_ms / overlay_ready_ms`: how many times faster the overlay start is.
    pub ratio: Option<f64>,
}

/// For each size in `files`, generates a repository of that many small files in nested dirs (one
/// commit) under `work_dir`, then times `reps` overlay prepares and `reps` worktree prepares,
/// interleaved. Everything it creates under `work_dir` is deleted again. Overlay figures are
/// `None` when overlayfs is not available under `work_dir`.
pub async fn bench_sandbox(work_dir: &Path, files: &[usize], reps: usize) -> Result<Vec<BenchRow>> {
    let reps = reps.max(1);
    let mut rows = Vec::new();
    for &n in files {
        let dir = work_dir.join(format!("bench-{n}-{:08x}", rand::random::<u32>()));
        let row = bench_one(&dir, n, reps).await;
        if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
            tracing::warn!(dir = %dir.display(), error = %e, "could not clean up bench dir");
        }
        rows.push(row?);
    }
    Ok(rows)
}

async fn bench_one(dir: &Path, n: usize, reps: usize) -> Result<BenchRow> {
    let repo = dir.join("repo");
    make_repo(&repo, n).await?;
    let overlay_home = dir.join("home-overlay");
    let overlay = match probe_overlay(&overlay_home) {
        Ok(()) => Some(Sandboxes::new(&overlay_home, SandboxMode::Overlay)),
        Err(e) => {
            tracing::warn!(reason = %e, "overlay unavailable; benchmarking worktree only");
            None
        }
    };
    let worktree = Sandboxes::new(&dir.join("home-worktree"), SandboxMode::Worktree);
    let resolved = worktree
        .resolve(crate::git::path_str(&repo)?, "HEAD")
        .await?;

    let mut base_build_ms = None;
    if let Some(ov) = &overlay {
        let t = Instant::now();
        ov.ensure_base(&resolved).await?;
        base_build_ms = Some(ms(t));
    }
    let (mut ov_times, mut wt_times, mut made) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..reps {
        if let Some(ov) = &overlay {
            let t = Instant::now();
            let sb = ov.prepare(&format!("bench-o{i}"), &resolved).await?;
            ov_times.push(ms(t));
            made.push((ov, sb));
        }
        let t = Instant::now();
        let sb = worktree.prepare(&format!("bench-w{i}"), &resolved).await?;
        wt_times.push(ms(t));
        made.push((&worktree, sb));
    }
    for (sbs, sb) in made {
        sbs.discard(&sb).await?;
    }
    let overlay_ready_ms = median(&mut ov_times);
    let worktree_add_ms = median(&mut wt_times).unwrap_or_default();
    Ok(BenchRow {
        files: n,
        reps,
        base_build_ms,
        overlay_ready_ms,
        worktree_add_ms,
        ratio: overlay_ready_ms
            .filter(|o| *o > 0.0)
            .map(|o| worktree_add_ms / o),
    })
}

/// `n` small files as `dNN/eN/fNNNN.txt`, committed once.
pub async fn make_repo(repo: &Path, n: usize) -> Result<()> {
    let root = repo.to_path_buf();
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        for i in 0..n {
            let d = root
                .join(format!("d{:03}", i / 1000))
                .join(format!("e{}", (i / 100) % 10));
            if i % 100 == 0 {
                std::fs::create_dir_all(&d)?;
            }
            std::fs::write(d.join(format!("f{i}.txt")), format!("file {i}\n"))?;
        }
        std::fs::create_dir_all(&root)
    })
    .await
    .map_err(|e| SandboxError::io("generate", repo, std::io::Error::other(e)))?
    .map_err(|e| SandboxError::io("generate", repo, e))?;
    let id = [
        "-c",
        "user.name=drover bench",
        "-c",
        "user.email=bench@localhost",
    ];
    git::git(repo, "init", &["init", "-q"]).await?;
    git::git(repo, "add", &["add", "-A"]).await?;
    git::git(
        repo,
        "commit",
        &[&id[..], &["commit", "-q", "--allow-empty", "-m", "bench"]].concat(),
    )
    .await?;
    Ok(())
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len().is_multiple_of(2) {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}
