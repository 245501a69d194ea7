//! The tables of `drover batch ls` and `drover batch show`.

use super::clean;
use super::tables::plain;
use drover_types::{BatchRepo, BatchView};

fn dollars(v: f64) -> String {
    format!("${v:.4}")
}

/// `drover batch ls`: NAME STATE TASKS RUNNING SUCCEEDED FAILED COST CREATED (counters over
/// each repository's latest task; COST: every task of the batch, retries included).
pub fn batches_table(batches: &[BatchView]) -> String {
    let rows = batches
        .iter()
        .map(|b| {
            [
                clean(&b.name),
                b.state.to_string(),
                b.tasks.to_string(),
                b.running.to_string(),
                b.succeeded.to_string(),
                b.failed.to_string(),
                dollars(b.cost_usd),
                clean(&b.created_at),
            ]
        })
        .collect();
    let header = [
        "NAME",
        "STATE",
        "TASKS",
        "RUNNING",
        "SUCCEEDED",
        "FAILED",
        "COST",
        "CREATED",
    ];
    plain(header, rows, 2)
}

/// `drover batch show NAME`: REPO TASK STATE PR COST, one line per repository (its latest task;
/// PR: the URL, else `-`; COST: all its tasks).
pub fn batch_repos_table(repos: &[BatchRepo]) -> String {
    let rows = repos
        .iter()
        .map(|r| {
            let pr =
                r.pr.as_ref()
                    .map(|p| format!("{} ({})", p.url, p.state.as_str()))
                    .unwrap_or_else(|| "-".into());
            [
                clean(&r.repo),
                clean(&r.task),
                r.state.to_string(),
                clean(&pr),
                dollars(r.cost_usd),
            ]
        })
        .collect();
    plain(["REPO", "TASK", "STATE", "PR", "COST"], rows, 4)
}
