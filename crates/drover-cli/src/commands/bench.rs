//! `drover bench [sandbox|memory|dispatch]`: the figures of issue 2, measured side by side
//! (dispatch: SQLite vs PostgreSQL, 1 vs 2 workers, in [`super::bench_dispatch`]).

use super::bench_repo::small_repo;
use crate::cli::{BenchArgs, Benchmark};
use crate::client::Client;
use crate::error::{CliError, Context, Result};
use drover_types::{RunRequest, Task, TaskState};
use std::path::Path;
use std::time::{Duration, Instant};

pub async fn bench(args: BenchArgs) -> Result<i32> {
    let work = std::env::temp_dir().join(format!("drover-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).context(work.display())?;
    let res = run(args.which, &args, &work).await;
    cleanup(&work);
    res
}

/// Runs `which` benchmark, or all of them (`None`).
async fn run(which: Option<Benchmark>, args: &BenchArgs, work: &Path) -> Result<i32> {
    let wanted = |b: Benchmark| which.is_none_or(|w| w == b);
    if wanted(Benchmark::Sandbox) {
        sandbox(args, work).await?;
    }
    if wanted(Benchmark::Memory) {
        memory(work).await?;
    }
    if wanted(Benchmark::Dispatch) {
        let database_url = args
            .database_url
            .clone()
            .or_else(|| std::env::var("DROVER_DATABASE_URL").ok())
            .filter(|u| !u.trim().is_empty());
        let opts = super::bench_dispatch::DispatchBench {
            tasks: args.tasks,
            slots: args.slots,
            database_url,
        };
        super::bench_dispatch::dispatch(&opts, work).await?;
    }
    if wanted(Benchmark::Isolation) {
        super::bench_isolation::isolation(&args.files, work).await?;
    }
    if wanted(Benchmark::Api) {
        let opts = super::bench_api::ApiBench::new(
            args.tasks,
            args.clients,
            args.requests,
            args.followers,
            args.quick,
            args.unix,
        );
        super::bench_api::api(&opts, work).await?;
    }
    if wanted(Benchmark::Web) {
        let opts = super::bench_web::WebBench::new(args.busy, args.dashboards, args.quick);
        super::bench_web::web(&opts, work).await?;
    }
    Ok(0)
}

async fn sandbox(args: &BenchArgs, work: &Path) -> Result<()> {
    println!("## sandbox ready time: overlay (shared base) vs git worktree add, same repos, medians of 5");
    let rows = drover_sandbox::bench_sandbox(&work.join("sandbox"), &args.files, 5)
        .await
        .context("sandbox bench")?;
    println!(
        "{:>8} {:>14} {:>16} {:>16} {:>8}",
        "files", "base once ms", "overlay ms", "worktree ms", "ratio"
    );
    for r in rows {
        let f = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into());
        println!(
            "{:>8} {:>14} {:>16} {:>16.1} {:>8}",
            r.files,
            f(r.base_build_ms),
            f(r.overlay_ready_ms),
            r.worktree_add_ms,
            r.ratio
                .map(|v| format!("{v:.0}x"))
                .unwrap_or_else(|| "-".into())
        );
    }
    println!();
    Ok(())
}

async fn daemon(work: &Path, name: &str, slots: usize) -> Result<(Client, i32)> {
    let client = Client::new(work.join(name));
    let pid = client
        .start_daemon(
            &drover_daemon::Flags {
                slots: Some(slots),
                ..Default::default()
            },
            &[],
        )
        .await?;
    Ok((client, pid as i32))
}

fn process(pid: i64) -> Option<procfs::process::Process> {
    procfs::process::Process::new(i32::try_from(pid).ok()?).ok()
}

fn rss_kb(pid: i64) -> Option<u64> {
    process(pid)?.status().ok()?.vmrss
}

fn shim_pids(home: &Path) -> Vec<i64> {
    let Ok(dir) = std::fs::read_dir(home.join("tasks")) else {
        return vec![];
    };
    dir.flatten()
        .filter_map(|t| {
            drover_shim::TaskFiles::new(t.path())
                .read_ready()
                .ok()
                .flatten()
        })
        .map(|r| r.shim_pid)
        .collect()
}

/// Resident, proportional and private memory of a process, in KB (from smaps_rollup).
fn mem_kb(pid: i64) -> Option<(u64, u64, u64)> {
    let rollup = process(pid)?.smaps_rollup().ok()?;
    let map = &rollup.memory_map_rollup.0.first()?.extension.map;
    // procfs gives bytes.
    let get = |k: &str| map.get(k).copied().unwrap_or(0) / 1024;
    Some((
        get("Rss"),
        get("Pss"),
        get("Private_Clean") + get("Private_Dirty"),
    ))
}

fn command_task(repo: &Path, cmd: &str) -> RunRequest {
    RunRequest {
        repo: repo.display().to_string(),
        agent: Some("command".into()),
        cmd: Some(cmd.into()),
        prompt: "bench".into(),
        ..Default::default()
    }
}

async fn wait_all(client: &Client, pred: impl Fn(&[Task]) -> bool) -> Result<Vec<Task>> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let tasks = client.list_tasks(true).await?;
        if pred(&tasks) {
            return Ok(tasks);
        }
        if Instant::now() > deadline {
            return Err(CliError::internal("benchmark timed out"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn memory(work: &Path) -> Result<()> {
    const N: usize = 30;
    println!(
        "## memory: daemon idle and per running task, shim RSS ({N} command tasks running `sleep`)"
    );
    let repo = small_repo(&work.join("mem"))?;
    let (client, pid) = daemon(work, "mem-home", N).await?;
    // Warm the daemon up (store, API) before the idle reading.
    let _ = client.list_tasks(false).await?;
    let idle = rss_kb(pid as i64).unwrap_or(0);
    for _ in 0..N {
        let _: Task = client
            .post("/v1/tasks", &command_task(&repo, "sleep 30"))
            .await?;
    }
    wait_all(&client, |ts| {
        ts.iter().filter(|t| t.state == TaskState::Running).count() == N
    })
    .await?;
    let busy = rss_kb(pid as i64).unwrap_or(0);
    let shims: Vec<(u64, u64, u64)> = shim_pids(&client.home)
        .into_iter()
        .filter_map(mem_kb)
        .collect();
    let n = shims.len().max(1) as f64;
    let avg = |f: fn(&(u64, u64, u64)) -> u64| shims.iter().map(f).sum::<u64>() as f64 / n / 1024.0;
    println!("daemon idle RSS      {:>8.1} MB", idle as f64 / 1024.0);
    println!("daemon with {N} tasks {:>8.1} MB", busy as f64 / 1024.0);
    println!(
        "per running task     {:>8.1} KB",
        (busy.saturating_sub(idle)) as f64 / N as f64
    );
    println!(
        "shim RSS (avg of {})  {:>8.2} MB",
        shims.len(),
        avg(|m| m.0)
    );
    println!(
        "shim PSS              {:>8.2} MB (shared pages divided among the processes using them)",
        avg(|m| m.1)
    );
    println!(
        "shim private          {:>8.2} MB (what one more shim costs)\n",
        avg(|m| m.2)
    );
    let _: serde_json::Value = client
        .post(
            "/v1/daemon/stop",
            &serde_json::json!({ "stop_tasks": true }),
        )
        .await?;
    Ok(())
}

fn cleanup(work: &Path) {
    // Overlay mounts must go before the directory does.
    if let Ok(mounts) = procfs::process::Process::myself().and_then(|me| me.mountinfo()) {
        for m in mounts {
            if m.mount_point.starts_with(work) {
                let _ = std::process::Command::new("umount")
                    .arg("-l")
                    .arg(&m.mount_point)
                    .status();
            }
        }
    }
    let _ = std::fs::remove_dir_all(work);
}
