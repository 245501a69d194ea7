//! A throwaway git repository for the benchmarks (`bench`, `bench_dispatch`): a leaf both use.

use crate::error::{CliError, Context, Result};
use std::path::{Path, PathBuf};

pub(super) fn git(dir: &Path, args: &[&str]) -> Result<()> {
    let st = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@drover.invalid",
        ])
        .args(args)
        .output()
        .context("git")?;
    if st.status.success() {
        Ok(())
    } else {
        Err(CliError::internal(format!(
            "git {args:?}: {}",
            String::from_utf8_lossy(&st.stderr)
        )))
    }
}

pub(super) fn small_repo(work: &Path) -> Result<PathBuf> {
    let repo = work.join("repo");
    std::fs::create_dir_all(&repo)?;
    std::fs::write(repo.join("README.md"), "bench\n")?;
    git(&repo, &["init", "-q"])?;
    git(&repo, &["add", "-A"])?;
    git(&repo, &["commit", "-qm", "bench"])?;
    Ok(repo)
}
