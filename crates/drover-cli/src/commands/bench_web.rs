//! `drover bench web` (issue 14, "Benchmark"; docs/design.md §10): what open dashboards cost the
//! daemon. A daemon of its own (a temporary `DROVER_HOME`, `--listen 127.0.0.1:0`) runs a busy
//! fleet — `--busy` (default 8) `command` tasks each printing a line every 50 ms — and is
//! measured over a window twice: with no dashboard, then with `--dashboards` (default 50), each
//! following `GET /v1/fleet/events` and one task's `GET /v1/tasks/{id}/events` over TCP with a
//! team's key, as an open dashboard page does. Printed: the daemon's CPU (user + system time
//! from `/proc/<pid>/stat` over the window, % of one core), fleet snapshots per second and bytes
//! per second per dashboard. `--quick` is a short run (the smoke test's).

use crate::client::Client;
use crate::error::{CliError, Context, Result};
use drover_types::Scope;
use futures::StreamExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to measure.
#[derive(Debug, Clone)]
pub struct WebBench {
    pub tasks: usize,
    pub dashboards: usize,
    pub window: Duration,
}

impl WebBench {
    pub fn new(tasks: usize, dashboards: usize, quick: bool) -> WebBench {
        if quick {
            return WebBench {
                tasks: tasks.min(2),
                dashboards: dashboards.min(5),
                window: Duration::from_secs(2),
            };
        }
        WebBench {
            tasks,
            dashboards,
            window: Duration::from_secs(10),
        }
    }
}

/// The daemon's user + system CPU time so far, in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces) in parentheses: utime is the 14th field
    // of the line, the 12th after ") ".
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz.max(1.0)
}

fn net(e: reqwest::Error) -> CliError {
    CliError::unreachable(format!("bench: {e}"))
}

pub async fn web(opts: &WebBench, work: &Path) -> Result<()> {
    println!("## web: what open dashboards cost the daemon");
    println!(
        "reproduce: drover bench web --busy {} --dashboards {}",
        opts.tasks, opts.dashboards
    );
    let repo = work.join("web-repo");
    drover_sandbox::generate_repo(&repo, 10)
        .await
        .context("generate the repository")?;
    let home = work.join("web-home");
    let owner = Client::new(home.clone());
    let envs = vec![
        ("DROVER_LISTEN".to_string(), "127.0.0.1:0".to_string()),
        ("DROVER_SLOTS".to_string(), opts.tasks.max(1).to_string()),
    ];
    let pid = owner
        .start_daemon(&drover_daemon::Flags::default(), &envs)
        .await?;
    let res = measure(opts, &owner, &home, &repo, pid).await;
    let _: Result<serde_json::Value> = owner
        .post(
            "/v1/daemon/stop",
            &serde_json::json!({ "stop_tasks": true }),
        )
        .await;
    println!();
    res
}

async fn measure(
    opts: &WebBench,
    owner: &Client,
    home: &Path,
    repo: &Path,
    pid: u32,
) -> Result<()> {
    let addr_file = home.join("listen.addr");
    let deadline = Instant::now() + Duration::from_secs(20);
    let addr = loop {
        match std::fs::read_to_string(&addr_file) {
            Ok(s) if !s.trim().is_empty() => break s.trim().to_string(),
            _ if Instant::now() > deadline => {
                return Err(CliError::internal(format!(
                    "the bench's daemon wrote no {}",
                    addr_file.display()
                )))
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let base = format!("http://{addr}");
    let key = team_key(owner).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.dashboards * 2 + 4)
        .build()
        .map_err(net)?;
    // The busy fleet: a line every 50 ms for the whole run.
    let lines = ((opts.window.as_secs_f64() * 2.0 + 30.0) / 0.05) as usize;
    let cmd =
        format!("for i in $(seq 1 {lines}); do echo \"line $i of a busy task\"; sleep 0.05; done");
    let body = serde_json::json!({ "repo": repo.display().to_string(), "prompt": "bench",
                                   "agent": "command", "cmd": cmd });
    let mut ids = vec![];
    for _ in 0..opts.tasks {
        let r = http
            .post(format!("{base}/v1/tasks"))
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await
            .map_err(net)?;
        let t: drover_types::Task = r.json().await.map_err(net)?;
        ids.push(t.id);
    }
    // Every task running.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut running = 0;
        for id in &ids {
            let t: drover_types::Task = owner.get(&format!("/v1/tasks/{id}")).await?;
            if t.state == drover_types::TaskState::Running {
                running += 1;
            }
        }
        if running == ids.len() {
            break;
        }
        if Instant::now() > deadline {
            return Err(CliError::internal(format!(
                "only {running} of {} tasks started within 60 s",
                ids.len()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // 1. No dashboard.
    let c0 = cpu_secs(pid);
    tokio::time::sleep(opts.window).await;
    let idle = (cpu_secs(pid) - c0) / opts.window.as_secs_f64() * 100.0;

    // 2. Dashboards: the fleet stream and one task's events each.
    let snapshots = Arc::new(AtomicU64::new(0));
    let fleet_bytes = Arc::new(AtomicU64::new(0));
    let event_bytes = Arc::new(AtomicU64::new(0));
    let mut followers = vec![];
    for i in 0..opts.dashboards {
        let (h, b, k) = (http.clone(), base.clone(), key.clone());
        let (snapshots, fleet_bytes) = (snapshots.clone(), fleet_bytes.clone());
        followers.push(tokio::spawn(async move {
            follow(&h, &format!("{b}/v1/fleet/events"), &k, |ev, n| {
                if ev == "snapshot" {
                    snapshots.fetch_add(1, Ordering::Relaxed);
                    fleet_bytes.fetch_add(n as u64, Ordering::Relaxed);
                }
            })
            .await
        }));
        let (h, k, event_bytes) = (http.clone(), key.clone(), event_bytes.clone());
        let url = format!("{base}/v1/tasks/{}/events?follow=true", ids[i % ids.len()]);
        followers.push(tokio::spawn(async move {
            follow(&h, &url, &k, |_, n| {
                event_bytes.fetch_add(n as u64, Ordering::Relaxed);
            })
            .await
        }));
    }
    // Connected, replays done: then the window.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (s0, f0, e0) = (
        snapshots.load(Ordering::Relaxed),
        fleet_bytes.load(Ordering::Relaxed),
        event_bytes.load(Ordering::Relaxed),
    );
    let c0 = cpu_secs(pid);
    let t0 = Instant::now();
    tokio::time::sleep(opts.window).await;
    let secs = t0.elapsed().as_secs_f64();
    let busy = (cpu_secs(pid) - c0) / secs * 100.0;
    let snaps = (snapshots.load(Ordering::Relaxed) - s0) as f64;
    let fleet = (fleet_bytes.load(Ordering::Relaxed) - f0) as f64;
    let events = (event_bytes.load(Ordering::Relaxed) - e0) as f64;
    for f in followers {
        f.abort();
    }
    let d = opts.dashboards.max(1) as f64;
    println!(
        "{} tasks printing a line every 50 ms; window {:.0} s",
        opts.tasks,
        opts.window.as_secs_f64()
    );
    println!("daemon CPU, no dashboard:        {idle:6.1} % of one core");
    println!(
        "daemon CPU, {:>3} dashboards:     {busy:6.1} % of one core",
        opts.dashboards
    );
    println!(
        "fleet snapshots per dashboard:   {:6.2} /s",
        snaps / d / secs
    );
    println!(
        "bytes per dashboard:             {:6.0} B/s fleet + {:.0} B/s task events",
        fleet / d / secs,
        events / d / secs
    );
    Ok(())
}

/// Follows an SSE URL until the task is aborted, calling `on(event, data bytes)` per event.
async fn follow(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    mut on: impl FnMut(&str, usize),
) -> Result<()> {
    use eventsource_stream::Eventsource;
    let r = http
        .get(url)
        .bearer_auth(key)
        .header("accept", "text/event-stream")
        .send()
        .await
        .map_err(net)?;
    if !r.status().is_success() {
        let status = r.status().as_u16();
        let bytes = r.bytes().await.unwrap_or_default();
        return Err(CliError::from_api(status, &bytes));
    }
    let stream = r.bytes_stream().eventsource();
    futures::pin_mut!(stream);
    while let Some(ev) = stream.next().await {
        let Ok(ev) = ev else { break };
        on(&ev.event, ev.data.len());
    }
    Ok(())
}

/// Team `bench` and a `tasks:read` + `tasks:write` key of it, made by the host owner.
async fn team_key(owner: &Client) -> Result<String> {
    let _: drover_types::TeamInfo = owner
        .post(
            "/v1/teams",
            &drover_types::CreateTeamRequest {
                name: "bench".into(),
                ..Default::default()
            },
        )
        .await?;
    let key: drover_types::NewKey = owner
        .post(
            "/v1/keys",
            &drover_types::CreateKeyRequest {
                team: "bench".into(),
                scopes: vec![Scope::TasksRead, Scope::TasksWrite],
                name: Some("bench".into()),
                expires_secs: None,
            },
        )
        .await?;
    Ok(key.key)
}
