//! `drover bench api` (issue 11, "Benchmark"; docs/design.md §7): the team server's API under
//! load, from this process, against a daemon of its own (a temporary `DROVER_HOME`, `--listen
//! 127.0.0.1:0`, isolation as configured), over TCP with a team's API key (made by the host
//! owner over the Unix socket):
//!
//! - tasks created per second: `--tasks` `POST /v1/tasks` of `command` tasks running `true`, from
//!   `--clients` concurrent clients (then how long the daemon took to run them all);
//! - `GET /v1/tasks/{id}` p50/p99 over `--requests` requests from `--clients` clients;
//! - SSE: `--followers` concurrent followers of one busy task (a line every 10 ms for about
//!   10 s): delivery latency p50/p99 from the line's print time inside the task (`date +%s%N`)
//!   and from the event's `ts` (when the daemon stored it) to its arrival at each follower, how
//!   many lines every follower got, and the daemon's RSS (VmRSS, VmHWM of `/proc/<pid>/status`)
//!   before the followers and at their peak.
//!
//! `--unix` measures the same over the owner's Unix socket (no key). `--quick` is a small run
//! (the smoke test's, so this code cannot rot).

use crate::client::Client;
use crate::error::{CliError, Context, Result};
use drover_types::{DaemonStatus, Scope, Task};
use futures::StreamExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to measure.
#[derive(Debug, Clone)]
pub struct ApiBench {
    pub tasks: usize,
    pub clients: usize,
    pub requests: usize,
    pub followers: usize,
    /// Lines the busy task prints, 10 ms apart.
    pub lines: usize,
    pub unix: bool,
}

impl ApiBench {
    pub fn new(
        tasks: usize,
        clients: usize,
        requests: usize,
        followers: usize,
        quick: bool,
        unix: bool,
    ) -> Self {
        if quick {
            return ApiBench {
                tasks: tasks.min(10),
                clients: clients.min(4),
                requests: requests.min(100),
                followers: followers.min(10),
                lines: 50,
                unix,
            };
        }
        ApiBench {
            tasks,
            clients,
            requests,
            followers,
            lines: 1000,
            unix,
        }
    }
}

/// Where requests go: the TCP listener with a key, or the owner's Unix socket.
#[derive(Clone)]
enum Target {
    Tcp {
        http: reqwest::Client,
        base: String,
        key: String,
    },
    Unix(Client),
}

impl Target {
    async fn create(&self, body: &serde_json::Value) -> Result<Task> {
        match self {
            Target::Unix(c) => c.post("/v1/tasks", body).await,
            Target::Tcp { http, base, key } => {
                let r = http
                    .post(format!("{base}/v1/tasks"))
                    .bearer_auth(key)
                    .json(body)
                    .send()
                    .await
                    .map_err(net)?;
                answer(r).await
            }
        }
    }

    async fn task(&self, id: &str) -> Result<Task> {
        let path = format!("/v1/tasks/{id}");
        match self {
            Target::Unix(c) => c.get(&path).await,
            Target::Tcp { http, base, key } => {
                let r = http
                    .get(format!("{base}{path}"))
                    .bearer_auth(key)
                    .send()
                    .await
                    .map_err(net)?;
                answer(r).await
            }
        }
    }

    /// Follows the task's events as SSE; `connected` is told once the answer's head arrived
    /// (over the Unix socket: its first event).
    async fn follow(
        &self,
        id: &str,
        connected: impl FnOnce(),
        mut on_event: impl FnMut(&str, &str) -> bool,
    ) -> Result<()> {
        let path = format!("/v1/tasks/{id}/events?follow=true");
        match self {
            Target::Unix(c) => {
                // The owner's client hands on events only: connected = the first one arrived
                // (the task's earlier events are replayed at once).
                let mut connected = Some(connected);
                c.sse(&path, |id, data| {
                    if let Some(f) = connected.take() {
                        f();
                    }
                    on_event(id, data)
                })
                .await
            }
            Target::Tcp { http, base, key } => {
                use eventsource_stream::Eventsource;
                let r = http
                    .get(format!("{base}{path}"))
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
                connected();
                let stream = r.bytes_stream().eventsource();
                futures::pin_mut!(stream);
                while let Some(ev) = stream.next().await {
                    let ev =
                        ev.map_err(|e| CliError::internal(format!("event stream broke: {e}")))?;
                    if ev.event == "end" || !on_event(&ev.id, &ev.data) {
                        break;
                    }
                }
                Ok(())
            }
        }
    }
}

fn net(e: reqwest::Error) -> CliError {
    CliError::unreachable(format!("bench: {e}"))
}

async fn answer<T: serde::de::DeserializeOwned>(r: reqwest::Response) -> Result<T> {
    let status = r.status().as_u16();
    let bytes = r.bytes().await.map_err(net)?;
    if !(200..300).contains(&status) {
        return Err(CliError::from_api(status, &bytes));
    }
    serde_json::from_slice(&bytes).context("unreadable answer from the daemon")
}

/// The `p`-quantile (0..=1) of `v` in ms, sorted in place.
fn quantile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// (VmRSS, VmHWM) of `pid` in MiB.
fn rss_mib(pid: u32) -> (f64, f64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(f64::NAN)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Raises this process's open-file limit to its hard limit (a thousand followers are a
/// thousand sockets here too).
fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read or write the struct we pass; they only change this
    // process's limit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

pub async fn api(opts: &ApiBench, work: &Path) -> Result<()> {
    raise_nofile();
    let over = if opts.unix {
        "the owner's Unix socket"
    } else {
        "TCP with a team's API key"
    };
    println!("## api: the team server under load, over {over}");
    println!(
        "reproduce: drover bench api --tasks {} --clients {} --requests {} --followers {}{}",
        opts.tasks,
        opts.clients,
        opts.requests,
        opts.followers,
        if opts.unix { " --unix" } else { "" }
    );
    let repo = work.join("api-repo");
    drover_sandbox::generate_repo(&repo, 10)
        .await
        .context("generate the repository")?;
    let home = work.join("api-home");
    let owner = Client::new(home.clone());
    let mut envs = vec![];
    if !opts.unix {
        envs.push(("DROVER_LISTEN".to_string(), "127.0.0.1:0".to_string()));
    }
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

/// Team `bench` and a `tasks:read` + `tasks:write` key of it, made by the host owner (`POST
/// /v1/teams`, `POST /v1/keys` on the Unix socket); the secret stays in this process's memory.
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

async fn measure(
    opts: &ApiBench,
    owner: &Client,
    home: &Path,
    repo: &Path,
    pid: u32,
) -> Result<()> {
    let target = if opts.unix {
        Target::Unix(owner.clone())
    } else {
        let addr_file = home.join("listen.addr");
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = loop {
            match std::fs::read_to_string(&addr_file) {
                Ok(s) if !s.trim().is_empty() => break s.trim().to_string(),
                _ if Instant::now() > deadline => {
                    return Err(CliError::internal(format!(
                        "the bench's daemon wrote no {} (does this drover have `daemon --listen`?)",
                        addr_file.display()
                    ))
                    .hint("measure over the Unix socket: drover bench api --unix"))
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(opts.clients.max(opts.followers))
            .build()
            .map_err(net)?;
        Target::Tcp {
            http,
            base: format!("http://{addr}"),
            key: team_key(owner).await?,
        }
    };
    let status: DaemonStatus = owner.get("/v1/status").await?;
    let repo = repo.display().to_string();
    let task_body = |cmd: &str| serde_json::json!({ "repo": repo, "prompt": "bench", "agent": "command", "cmd": cmd });

    // 1. Creates.
    let body = Arc::new(task_body("true"));
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut workers = vec![];
    for _ in 0..opts.clients.max(1) {
        let (target, body, next, n) = (target.clone(), body.clone(), next.clone(), opts.tasks);
        workers.push(tokio::spawn(async move {
            let mut ids = vec![];
            while next.fetch_add(1, Ordering::Relaxed) < n {
                ids.push(target.create(&body).await?.id);
            }
            Ok::<_, CliError>(ids)
        }));
    }
    let mut ids = vec![];
    for w in workers {
        ids.extend(w.await.map_err(|e| CliError::internal(e.to_string()))??);
    }
    let created = t0.elapsed().as_secs_f64();
    println!(
        "create: {} tasks from {} clients in {:.2} s = {:.0} tasks/s (slots {}, sandbox {})",
        ids.len(),
        opts.clients,
        created,
        ids.len() as f64 / created,
        status.slots,
        status.sandbox_mode
    );
    // They run; the next figures are taken on a quiet daemon.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let s: DaemonStatus = owner.get("/v1/status").await?;
        if s.running == 0 && s.queued == 0 {
            break;
        }
        if Instant::now() > deadline {
            return Err(CliError::internal(
                "the created tasks did not finish within 10 minutes",
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "        all ran to their end {:.2} s after the first create",
        t0.elapsed().as_secs_f64()
    );

    // 2. GET /v1/tasks/{id}.
    let id = Arc::new(
        ids.first()
            .cloned()
            .ok_or_else(|| CliError::internal("no task was created"))?,
    );
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut workers = vec![];
    for _ in 0..opts.clients.max(1) {
        let (target, id, next, n) = (target.clone(), id.clone(), next.clone(), opts.requests);
        workers.push(tokio::spawn(async move {
            let mut lat = vec![];
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let t = Instant::now();
                target.task(&id).await?;
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            Ok::<_, CliError>(lat)
        }));
    }
    let mut lat = vec![];
    for w in workers {
        lat.extend(w.await.map_err(|e| CliError::internal(e.to_string()))??);
    }
    let took = t0.elapsed().as_secs_f64();
    println!(
        "get:    {} × GET /v1/tasks/{{id}} from {} clients: p50 {:.2} ms, p99 {:.2} ms ({:.0} req/s)",
        lat.len(),
        opts.clients,
        quantile(&mut lat, 0.5),
        quantile(&mut lat, 0.99),
        lat.len() as f64 / took
    );

    // 3. SSE: followers of one busy task.
    let (rss0, hwm0) = rss_mib(pid);
    let busy = target
        .create(&task_body(&format!(
            "sleep 3; i=0; while [ $i -lt {} ]; do i=$((i+1)); echo \"t=$(date +%s%N) line-$i\"; sleep 0.01; done",
            opts.lines
        )))
        .await?;
    let connected = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut followers = vec![];
    for _ in 0..opts.followers {
        let (target, id, connected) = (target.clone(), busy.id.clone(), connected.clone());
        followers.push(tokio::spawn(async move {
            let mut from_print = vec![];
            let mut from_ts = vec![];
            let mut lines = 0usize;
            target
                .follow(
                    &id,
                    || {
                        connected.fetch_add(1, Ordering::Relaxed);
                    },
                    |_, data| {
                        let now = chrono::Utc::now();
                        let Ok(ev) = serde_json::from_str::<drover_types::Event>(data) else {
                            return true;
                        };
                        let text = ev
                            .data
                            .get("text")
                            .and_then(|t| t.as_str())
                            .unwrap_or_default();
                        let Some(printed) = text
                            .strip_prefix("t=")
                            .and_then(|r| r.split_whitespace().next())
                            .and_then(|n| n.parse::<i64>().ok())
                        else {
                            return true;
                        };
                        lines += 1;
                        let now_ns = now.timestamp_nanos_opt().unwrap_or_default();
                        from_print.push((now_ns - printed) as f64 / 1e6);
                        if let Ok(ts) = chrono::DateTime::parse_from_rfc3339(&ev.ts) {
                            from_ts.push(
                                (now - ts.with_timezone(&chrono::Utc))
                                    .num_microseconds()
                                    .unwrap_or_default() as f64
                                    / 1000.0,
                            );
                        }
                        true
                    },
                )
                .await?;
            Ok::<_, CliError>((from_print, from_ts, lines))
        }));
    }
    // Sample the daemon's RSS while they follow.
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        tokio::spawn(async move {
            let mut peak: f64 = 0.0;
            while sampling.load(Ordering::Relaxed) {
                peak = peak.max(rss_mib(pid).0);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            peak
        })
    };
    let all_connected = loop {
        let n = connected.load(Ordering::Relaxed);
        if n >= opts.followers || t0.elapsed() > Duration::from_secs(30) {
            break t0.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let (mut from_print, mut from_ts) = (vec![], vec![]);
    let (mut fewest, mut failed) = (usize::MAX, 0usize);
    let mut first_error = None;
    for f in followers {
        match f.await.map_err(|e| CliError::internal(e.to_string()))? {
            Ok((p, t, n)) => {
                from_print.extend(p);
                from_ts.extend(t);
                fewest = fewest.min(n);
            }
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    sampling.store(false, Ordering::Relaxed);
    let peak = sampler.await.unwrap_or(f64::NAN);
    let (_, hwm1) = rss_mib(pid);
    println!(
        "sse:    {} followers of one task printing {} lines 10 ms apart ({} connected in {} ms)",
        opts.followers,
        opts.lines,
        connected.load(Ordering::Relaxed),
        all_connected.as_millis()
    );
    println!(
        "        delivery, line printed → follower: p50 {:.1} ms, p99 {:.1} ms; event stored (ts) → follower: p50 {:.1} ms, p99 {:.1} ms",
        quantile(&mut from_print, 0.5),
        quantile(&mut from_print, 0.99),
        quantile(&mut from_ts, 0.5),
        quantile(&mut from_ts, 0.99)
    );
    println!(
        "        every follower got {} of {} lines{}",
        if fewest == usize::MAX { 0 } else { fewest },
        opts.lines,
        if failed > 0 {
            format!(
                "; {failed} followers failed: {}",
                first_error.unwrap_or_default()
            )
        } else {
            String::new()
        }
    );
    println!(
        "        daemon RSS: {rss0:.1} MiB before (VmHWM {hwm0:.1}), peak {peak:.1} MiB with the followers (VmHWM {hwm1:.1})"
    );
    if failed > 0 || fewest < opts.lines {
        return Err(CliError::internal(format!(
            "api bench: {failed} followers failed, the fewest lines a follower got was {fewest} of {}",
            opts.lines
        )));
    }
    Ok(())
}
