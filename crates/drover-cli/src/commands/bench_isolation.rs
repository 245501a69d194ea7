//! `drover bench isolation` (issue 10, "Speed stays"; docs/design.md §11): a trivial `command`
//! task's sandbox ready time and whole-task time, isolation full vs none, on generated
//! repositories of each `--files` size, side by side in one run.
//!
//! Two daemons, one per setting (`DROVER_SANDBOX_ISOLATION`), take turns on the same repository.
//! *Ready* is from the start of sandbox preparation (the task's `started_at`, when it leaves
//! `queued`) to the agent's first instruction inside (`date +%s%N`, its result); *task* is from
//! `POST /v1/tasks` to the terminal state (queue, sandbox, jail, agent, commit, delivery,
//! cleanup). Both are medians of [`REPS`], after one unmeasured task that builds the base checkout.

use crate::client::Client;
use crate::error::{CliError, Context, Result};
use drover_types::{RunRequest, Task, TaskState};
use std::path::Path;
use std::time::Instant;

/// Measured tasks per setting and size.
pub const REPS: usize = 7;

const SETTINGS: [&str; 2] = ["full", "none"];

pub async fn isolation(files: &[usize], work: &Path) -> Result<()> {
    println!(
        "## isolation: a trivial command task, sandbox ready and whole-task time, isolation full vs \
         none, medians of {REPS} (ms)"
    );
    println!("reproduce: drover bench isolation --files {}", {
        let v: Vec<String> = files.iter().map(|n| n.to_string()).collect();
        v.join(",")
    });
    let mut daemons = vec![];
    for setting in SETTINGS {
        let client = Client::new(work.join(format!("iso-{setting}")));
        client
            .start_daemon(
                &drover_daemon::Flags {
                    slots: Some(1),
                    ..Default::default()
                },
                &[("DROVER_SANDBOX_ISOLATION".into(), setting.into())],
            )
            .await?;
        daemons.push((setting, client));
    }
    println!(
        "{:>8} {:>12} {:>12} {:>12} {:>12}",
        "files", "ready full", "ready none", "task full", "task none"
    );
    let mut failure = None;
    for &n in files {
        let repo = work.join(format!("iso-repo-{n}"));
        drover_sandbox::generate_repo(&repo, n)
            .await
            .context("generate the repository")?;
        let mut cols: Vec<(Vec<f64>, Vec<f64>)> = vec![(vec![], vec![]); SETTINGS.len()];
        let mut refused: Vec<Option<String>> = vec![None; SETTINGS.len()];
        for rep in 0..=REPS {
            for (i, (_, client)) in daemons.iter().enumerate() {
                if refused[i].is_some() {
                    continue;
                }
                match one(client, &repo).await {
                    Ok(_) if rep == 0 => {}
                    Ok((ready, task)) => {
                        cols[i].0.push(ready);
                        cols[i].1.push(task);
                    }
                    Err(e) => refused[i] = Some(e.to_string()),
                }
            }
        }
        let cell = |v: &mut Vec<f64>| {
            median(v)
                .map(|m| format!("{m:.1}"))
                .unwrap_or_else(|| "-".into())
        };
        let (full, none) = cols.split_at_mut(1);
        println!(
            "{:>8} {:>12} {:>12} {:>12} {:>12}",
            n,
            cell(&mut full[0].0),
            cell(&mut none[0].0),
            cell(&mut full[0].1),
            cell(&mut none[0].1),
        );
        for (i, why) in refused.iter().enumerate() {
            if let Some(why) = why {
                println!("   isolation {}: {why}", SETTINGS[i]);
                failure.get_or_insert_with(|| why.clone());
            }
        }
        let _ = std::fs::remove_dir_all(&repo);
    }
    for (_, client) in &daemons {
        let _: Result<serde_json::Value> =
            client.post("/v1/daemon/stop", &serde_json::json!({})).await;
    }
    println!();
    match failure {
        Some(why) => Err(CliError::internal(format!("isolation bench: {why}"))),
        None => Ok(()),
    }
}

/// One task: (ready ms, whole-task ms).
async fn one(client: &Client, repo: &Path) -> Result<(f64, f64)> {
    let req = RunRequest {
        repo: repo.display().to_string(),
        agent: Some("command".into()),
        cmd: Some("date +%s%N".into()),
        prompt: "bench".into(),
        ..Default::default()
    };
    let t0 = Instant::now();
    let task: Task = client.post("/v1/tasks", &req).await?;
    let done: Task = client
        .get(&format!("/v1/tasks/{}/wait?timeout=120", task.id))
        .await?;
    let total = t0.elapsed().as_secs_f64() * 1000.0;
    if done.state != TaskState::Succeeded {
        return Err(CliError::internal(format!(
            "task {} ended {}: {}",
            done.id,
            done.state,
            done.outcome
                .as_ref()
                .map(|o| o.reason.clone())
                .unwrap_or_default()
        )));
    }
    let inside_ns: i128 = done
        .result
        .as_deref()
        .unwrap_or_default()
        .trim()
        .parse()
        .map_err(|_| CliError::internal(format!("task {}: no timestamp in its result", done.id)))?;
    let started = done
        .started_at
        .as_deref()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .and_then(|t| t.timestamp_nanos_opt())
        .ok_or_else(|| CliError::internal(format!("task {}: no started_at", done.id)))?;
    let ready = (inside_ns - i128::from(started)) as f64 / 1e6;
    Ok((ready, total))
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}
