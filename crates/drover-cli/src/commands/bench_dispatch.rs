//! `drover bench dispatch [--tasks 500] [--slots 16] [--database-url URL]`: dispatch throughput
//! of `true` command tasks, side by side in one run (issue 12): SQLite (1 worker), PostgreSQL
//! with 1 worker (all the slots) and with 2 workers (half the slots each: the same 16 in all).
//!
//! Each worker is a real `drover daemon` process with its own `DROVER_HOME`; the tasks are
//! submitted by 16 concurrent clients spread over the workers, on a `file://` repo URL (so any
//! worker may run any task — a local path would pin each task to the worker that made it).
//! Figures per row: tasks/s from the first submit to the last task's `finished_at`, p50/p99 of
//! queued→running (a task's `created_at` to its `running` state event), and store statements
//! per task: every statement sqlx sends (one `sqlx::query` tracing event each — queries,
//! `BEGIN`/`COMMIT`, LISTEN/NOTIFY, heartbeats and claims included) from the first submit to the
//! end, summed over the row's workers and divided by the tasks. The daemons run with
//! `DROVER_LOG=info,sqlx::query=debug` to emit them; the count is of those lines in their logs.
//! The PostgreSQL rows add their tasks to the database given: use a scratch one.

use super::bench_repo::{git, small_repo};
use crate::client::Client;
use crate::error::{CliError, Result};
use drover_types::{Event, RunRequest, Task, TaskState};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The benchmark's inputs.
pub struct DispatchBench {
    pub tasks: usize,
    pub slots: usize,
    /// `--database-url`, else `DROVER_DATABASE_URL`; `None`: no PostgreSQL rows.
    pub database_url: Option<String>,
}

/// The figures of one row.
struct Row {
    label: String,
    workers: usize,
    slots_each: usize,
    succeeded: usize,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
    statements: u64,
    /// Tasks per worker, in worker order.
    per_worker: Vec<usize>,
}

/// How long one row may take.
const ROW_DEADLINE: Duration = Duration::from_secs(900);

pub async fn dispatch(opts: &DispatchBench, work: &Path) -> Result<()> {
    let n = opts.tasks.max(1);
    let half = (opts.slots / 2).max(1);
    println!(
        "## dispatch: {n} command tasks running `true`, {} slots, sandbox and commit included; \
         SQLite vs PostgreSQL (1 worker, {} slots) vs PostgreSQL (2 workers, {half} slots each)",
        opts.slots, opts.slots
    );
    let repo = small_repo(&work.join("dispatch"))?;
    // A bare copy reached by URL: any worker can fetch it.
    let bare = work.join("dispatch.git");
    git(
        work,
        &[
            "clone",
            "-q",
            "--bare",
            &repo.display().to_string(),
            &bare.display().to_string(),
        ],
    )?;
    let url = format!("file://{}", bare.display());
    let mut rows = vec![row("SQLite", &[opts.slots], None, n, &url, &work.join("sqlite")).await?];
    match &opts.database_url {
        Some(db) => {
            rows.push(
                row(
                    "PostgreSQL",
                    &[opts.slots],
                    Some(db),
                    n,
                    &url,
                    &work.join("pg1"),
                )
                .await?,
            );
            rows.push(
                row(
                    "PostgreSQL",
                    &[half, half],
                    Some(db),
                    n,
                    &url,
                    &work.join("pg2"),
                )
                .await?,
            );
        }
        None => println!(
            "PostgreSQL rows skipped: give a scratch database with --database-url postgres://… \
             or DROVER_DATABASE_URL"
        ),
    }
    println!(
        "{:<12} {:>7} {:>6} {:>10} {:>9} {:>12} {:>12} {:>12}  per worker",
        "store", "workers", "slots", "ok", "tasks/s", "p50 q→run ms", "p99 q→run ms", "stmts/task"
    );
    for r in &rows {
        println!(
            "{:<12} {:>7} {:>6} {:>10} {:>9.1} {:>12.0} {:>12.0} {:>12.1}  {:?}",
            r.label,
            r.workers,
            format!("{}x{}", r.workers, r.slots_each),
            format!("{}/{n}", r.succeeded),
            n as f64 / r.secs,
            r.p50_ms,
            r.p99_ms,
            r.statements as f64 / n as f64,
            r.per_worker,
        );
    }
    println!(
        "(tasks/s: first submit to the last finished_at; q→run: created_at to the `running` \
         event; stmts/task: sqlx statements of all the row's workers during the run / tasks)\n"
    );
    Ok(())
}

/// Runs one row: workers with `slots` each (one entry per worker), on `db` or SQLite.
async fn row(
    label: &str,
    slots: &[usize],
    db: Option<&String>,
    n: usize,
    repo_url: &str,
    dir: &Path,
) -> Result<Row> {
    let mut clients = vec![];
    for (i, s) in slots.iter().enumerate() {
        let home = dir.join(format!("w{i}"));
        let client = Client::new(home.clone());
        let envs = vec![
            // Empty: unset (SQLite in DROVER_HOME), whatever the caller's environment says.
            (
                "DROVER_DATABASE_URL".to_string(),
                db.cloned().unwrap_or_default(),
            ),
            (
                "DROVER_WORKER_NAME".to_string(),
                format!("bench-{}-{}-{i}", std::process::id(), dir_name(dir)),
            ),
            (
                "DROVER_LOG".to_string(),
                "info,sqlx::query=debug".to_string(),
            ),
        ];
        client
            .start_daemon(
                &drover_daemon::Flags {
                    slots: Some(*s),
                    ..Default::default()
                },
                &envs,
            )
            .await?;
        clients.push((client, home));
    }
    let res = measure(label, slots, n, repo_url, &clients).await;
    for (client, _) in &clients {
        // Best effort: the row's figures are already taken.
        let _ = client
            .post::<_, serde_json::Value>("/v1/daemon/stop", &serde_json::json!({}))
            .await;
    }
    res
}

fn dir_name(dir: &Path) -> String {
    dir.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

async fn measure(
    label: &str,
    slots: &[usize],
    n: usize,
    repo_url: &str,
    clients: &[(Client, PathBuf)],
) -> Result<Row> {
    use futures::StreamExt;
    let before: u64 = clients.iter().map(|(_, h)| statements(h)).sum();
    let t0 = chrono::Utc::now();
    let started = Instant::now();
    let req = RunRequest {
        repo: repo_url.to_string(),
        agent: Some("command".into()),
        cmd: Some("true".into()),
        prompt: "bench".into(),
        ..Default::default()
    };
    let created: Vec<Result<Task>> = futures::stream::iter(0..n)
        .map(|i| {
            let client = clients[i % clients.len()].0.clone();
            let req = req.clone();
            async move { client.post::<_, Task>("/v1/tasks", &req).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut ids = std::collections::HashSet::new();
    for t in created {
        ids.insert(t?.id);
    }
    // Watch the cheap counters first, then confirm with the list (once, or again if needed).
    let tasks = loop {
        if started.elapsed() > ROW_DEADLINE {
            return Err(CliError::internal(format!(
                "benchmark row {label} did not finish in {ROW_DEADLINE:?}"
            )));
        }
        let mut idle = true;
        for (c, _) in clients {
            let s: drover_types::DaemonStatus = c.get("/v1/status").await?;
            idle &= s.queued == 0 && s.running == 0;
        }
        if idle {
            let all = clients[0].0.list_tasks(true).await?;
            let ours: Vec<Task> = all.into_iter().filter(|t| ids.contains(&t.id)).collect();
            if ours.len() == n && ours.iter().all(|t| t.state.is_terminal()) {
                break ours;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let after: u64 = clients.iter().map(|(_, h)| statements(h)).sum();
    let last = tasks
        .iter()
        .filter_map(|t| t.finished_at.as_deref())
        .filter_map(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .max()
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(chrono::Utc::now);
    let secs = ((last - t0).num_microseconds().unwrap_or(0) as f64 / 1e6).max(1e-3);
    let mut lat = vec![];
    for t in &tasks {
        let evs: Vec<Event> = clients[0]
            .0
            .get(&format!("/v1/tasks/{}/events", t.id))
            .await?;
        let running = evs
            .iter()
            .find(|e| e.kind.as_str() == "state" && e.data["state"] == "running");
        if let (Some(r), Ok(c)) = (
            running.and_then(|e| chrono::DateTime::parse_from_rfc3339(&e.ts).ok()),
            chrono::DateTime::parse_from_rfc3339(&t.created_at),
        ) {
            lat.push((r - c).num_microseconds().unwrap_or(0) as f64 / 1e3);
        }
    }
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1]
    };
    // Say why any did not succeed (the figures are only worth what the runs were).
    let mut why: std::collections::BTreeMap<String, usize> = Default::default();
    for t in tasks.iter().filter(|t| t.state != TaskState::Succeeded) {
        let reason = t.outcome.as_ref().map(|o| o.reason.as_str()).unwrap_or("-");
        let line = format!(
            "{}: {}",
            t.state.as_str(),
            drover_types::text::excerpt(
                reason.lines().next().unwrap_or(""),
                drover_types::text::Limit::Chars(200)
            )
        );
        *why.entry(line).or_default() += 1;
    }
    for (line, count) in &why {
        println!("{label} ({} workers): {count} task(s) {line}", slots.len());
    }
    let names: Vec<Option<String>> = tasks.iter().map(|t| t.worker.clone()).collect();
    let per_worker = worker_counts(&names, clients.len());
    Ok(Row {
        label: label.to_string(),
        workers: slots.len(),
        slots_each: slots.first().copied().unwrap_or(0),
        succeeded: tasks
            .iter()
            .filter(|t| t.state == TaskState::Succeeded)
            .count(),
        secs,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        statements: after.saturating_sub(before),
        per_worker,
    })
}

/// Tasks per worker (worker names sorted; they end in their index).
fn worker_counts(names: &[Option<String>], workers: usize) -> Vec<usize> {
    let mut counts = vec![0; workers];
    for name in names.iter().flatten() {
        if let Some(i) = name
            .rsplit('-')
            .next()
            .and_then(|i| i.parse::<usize>().ok())
        {
            if let Some(c) = counts.get_mut(i) {
                *c += 1;
            }
        }
    }
    counts
}

/// The statements a daemon's log has recorded so far (one `sqlx::query` line each).
fn statements(home: &Path) -> u64 {
    use std::io::BufRead;
    let Ok(f) = std::fs::File::open(home.join("daemon.log")) else {
        return 0;
    };
    std::io::BufReader::new(f)
        .split(b'\n')
        .map_while(std::result::Result::ok)
        .filter(|l| l.windows(13).any(|w| w == b" sqlx::query:"))
        .count() as u64
}
