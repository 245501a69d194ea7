//! Gateway overhead, side by side in one run, on the same fake upstream:
//!
//! - `direct`: the fake provider itself;
//! - `gateway`: the gateway with an in-memory ledger and no budget (the proxy alone);
//! - `real`: the daemon's real path — `StoreLedger` over a real SQLite store (a `usage` row and
//!   event per response and the task's totals updated, group-committed by the ledger's writer)
//!   and a `--max-usd` budget on every task, so every request checks what was spent (the
//!   ledger's in-memory totals) and reserves its worst case; one task per client;
//! - `store`: the same store ledger without a budget (what the usage writes cost on their own);
//! - `litellm`: LiteLLM's proxy as its docs recommend for one host (one worker per core,
//!   `LITELLM_MODE=PRODUCTION`, no database), when its `litellm` executable is found.
//!
//! `cargo run --release -p drover-daemon --example gateway_bench -- [N_SEQ] [SECS] [CONCURRENCY]`
//! (defaults 300, 5, 32). LiteLLM: `LITELLM_BIN=/path/to/litellm` (else `litellm` on PATH or
//! `/tmp/litellm-venv/bin/litellm`); `pip install 'litellm[proxy]'` into that venv.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use drover_fake_provider::{FakeProvider, ScenarioSet};
use drover_gateway::bench::{self, Target};
use drover_gateway::{Gateway, GatewayConfig, Limits, MemoryLedger, Secret, TaskGrant};
use drover_store::{NewTask, SqliteStore, Store};

/// The proxy's own key (it refuses to start without one).
const LITELLM_KEY: &str = "sk-drover-bench-0123456789abcdef0123456789abcdef";

const SET: &str = r#"{"scenarios": [{"name": "default", "turns": [
  {"content": [{"type": "text", "text": "Hello from the fake provider, a short streamed answer."}]}]}]}"#;

fn body() -> bytes::Bytes {
    let v = serde_json::json!({"model": "claude-sonnet-4-5", "max_tokens": 256, "stream": true,
        "messages": [{"role": "user", "content": "bench"}],
        "tools": [{"name": "Bash", "description": "run", "input_schema": {"type": "object"}}]});
    bytes::Bytes::from(v.to_string())
}

fn target(name: &str, base: &str, key: &str) -> Target {
    Target {
        name: name.into(),
        url: format!("{base}/v1/messages"),
        headers: vec![
            ("x-api-key".into(), key.into()),
            ("anthropic-version".into(), "2023-06-01".into()),
            ("content-type".into(), "application/json".into()),
        ],
        body: body(),
    }
}

fn litellm_target(base: &str) -> Target {
    let mut t = target("litellm", base, LITELLM_KEY);
    t.headers
        .push(("authorization".into(), format!("Bearer {LITELLM_KEY}")));
    t
}

fn litellm_bin() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("LITELLM_BIN") {
        return Some(p.into());
    }
    let venv = std::path::PathBuf::from("/tmp/litellm-venv/bin/litellm");
    if venv.exists() {
        return Some(venv);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("litellm"))
            .find(|p| p.exists())
    })
}

/// Starts LiteLLM's proxy with the fake provider as its Anthropic upstream.
async fn start_litellm(upstream: &str) -> Option<(tokio::process::Child, String)> {
    let bin = litellm_bin()?;
    let dir = std::env::temp_dir().join(format!("drover-bench-litellm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let cfg = format!(
        "model_list:\n  - model_name: claude-sonnet-4-5\n    litellm_params:\n      model: anthropic/claude-sonnet-4-5\n      api_base: {upstream}\n      api_key: fake-key\nlitellm_settings:\n  drop_params: true\n  set_verbose: false\n"
    );
    let cfg_path = dir.join("config.yaml");
    std::fs::write(&cfg_path, cfg).ok()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let log = std::fs::File::create(dir.join("litellm.log")).ok()?;
    let child = tokio::process::Command::new(&bin)
        .args(["--config", cfg_path.to_str()?, "--host", "127.0.0.1"])
        .args([
            "--port",
            &port.to_string(),
            "--num_workers",
            &cores().to_string(),
        ])
        .env("LITELLM_MASTER_KEY", LITELLM_KEY)
        .env("LITELLM_MODE", "PRODUCTION")
        .env("LITELLM_LOG", "ERROR")
        .env("NO_DOCS", "True")
        .stdout(log.try_clone().ok()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .ok()?;
    let base = format!("http://127.0.0.1:{port}");
    let client = bench::client().ok()?;
    for _ in 0..240 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let probe = litellm_target(&base);
        if bench::once(&client, &probe).await.is_ok() {
            return Some((child, base));
        }
    }
    eprintln!(
        "litellm did not come up; see {}",
        dir.join("litellm.log").display()
    );
    None
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

async fn serve(gw: &Gateway) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = gw.clone();
    tokio::spawn(async move { server.serve(listener, std::future::pending()).await });
    base
}

/// The daemon's real path: a store ledger over SQLite, `n` tasks with a dollar budget each
/// (without one when `budget` is false: the store's share of the cost, on its own).
async fn real_path(
    cfg: GatewayConfig,
    dir: &std::path::Path,
    n: usize,
    budget: bool,
) -> (
    String,
    Vec<String>,
    Arc<dyn Store>,
    Arc<drover_daemon::ledger::StoreLedger>,
) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("drover.db")).await.unwrap());
    let (ledger, mut notes) = drover_daemon::ledger::store_ledger(store.clone())
        .await
        .unwrap();
    tokio::spawn(async move { while notes.recv().await.is_some() {} });
    let gw = Gateway::new(cfg, ledger.clone()).unwrap();
    let mut tokens = Vec::new();
    for i in 0..n {
        let id = format!("bench{i:04}");
        store
            .create_task(NewTask {
                id: id.clone(),
                agent: "claude".into(),
                repo: "/bench".into(),
                base_ref: "HEAD".into(),
                prompt: "bench".into(),
                permissions: drover_types::PermissionPolicy::Allow,
                budget: drover_types::Budget {
                    max_usd: Some(1e6),
                    max_tokens: None,
                },
                ..NewTask::default()
            })
            .await
            .unwrap();
        tokens.push(gw.grant(TaskGrant {
            limits: Limits {
                task_usd: budget.then_some(1e6),
                ..Limits::default()
            },
            ..TaskGrant::new(id)
        }));
    }
    (serve(&gw).await, tokens, store, ledger)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (n, secs, conc) = (arg(0, 300) as usize, arg(1, 5), arg(2, 32) as usize);

    let set = ScenarioSet::from_json(SET).unwrap();
    let fake = FakeProvider::start(set, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let cfg = GatewayConfig {
        anthropic_base: fake.base_url(),
        anthropic_key: Some(Secret::new("fake-key")),
        ..GatewayConfig::default()
    };
    let gw = Gateway::new(cfg.clone(), Arc::new(MemoryLedger::new())).unwrap();
    let token = gw.grant(TaskGrant::new("bench"));
    let gw_base = serve(&gw).await;
    let dir = tempfile::tempdir().unwrap();
    let (real_base, real_tokens, store, ledger) =
        real_path(cfg.clone(), dir.path(), conc, true).await;
    let dir2 = tempfile::tempdir().unwrap();
    let (store_base, store_tokens, _, _) = real_path(cfg, dir2.path(), conc, false).await;

    let targets = vec![
        target("direct", &fake.base_url(), "fake-key"),
        target("gateway", &gw_base, &token),
        target("real", &real_base, &real_tokens[0]),
        target("store", &store_base, &store_tokens[0]),
    ];
    let client = bench::client().unwrap();
    let window = Duration::from_secs(secs);
    // Phase 1: direct, gateway, real path, with nothing else running.
    let mut lat = bench::latency(&client, &targets, n, 20).await.unwrap();
    let mut tput = Vec::new();
    for t in &targets[..2] {
        tput.push(bench::throughput(&client, t, conc, window).await);
    }
    let per_task: Vec<Target> = real_tokens
        .iter()
        .map(|tok| target("real", &real_base, tok))
        .collect();
    tput.push(bench::throughput_each(&client, "real", &per_task, window).await);
    let per_task: Vec<Target> = store_tokens
        .iter()
        .map(|tok| target("store", &store_base, tok))
        .collect();
    tput.push(bench::throughput_each(&client, "store", &per_task, window).await);
    // Every record the real path accepted is in SQLite once its writer has caught up.
    ledger.flush().await;
    let usage_rows: usize = store
        .usage_report(&drover_store::UsageGroup::Task.into(), None)
        .await
        .unwrap()
        .iter()
        .map(|l| l.requests as usize)
        .sum();
    // Phase 2: LiteLLM on the same upstream (started only now: its idle process costs CPU).
    let litellm = start_litellm(&fake.base_url()).await;
    if let Some((_, base)) = &litellm {
        let pair = [targets[0].clone(), litellm_target(base)];
        let l2 = bench::latency(&client, &pair, n, 20).await.unwrap();
        let mut d2 = l2[0].clone();
        d2.name = "direct*".into();
        lat.push(d2);
        lat.push(l2[1].clone());
        tput.push(bench::throughput(&client, &pair[0], conc, window).await);
        tput.push(bench::throughput(&client, &pair[1], conc, window).await);
        if let Some(t) = tput.get_mut(4) {
            t.name = "direct*".into();
        }
    } else {
        eprintln!("litellm not available: LiteLLM rows skipped");
    }
    println!("streamed /v1/messages, {n} sequential requests per target (interleaved with direct); {conc} concurrent clients for {secs} s (real: one task per client)");
    println!("(direct* = direct again, measured beside LiteLLM while its process runs)");
    println!(
        "{:<8} {:>9} {:>9} {:>12} {:>12} {:>9} {:>7}",
        "target", "p50 ms", "p99 ms", "p50 added", "p99 added", "req/s", "errors"
    );
    for (i, (l, t)) in lat.iter().zip(&tput).enumerate() {
        let direct = if i < 4 { &lat[0] } else { &lat[4] };
        println!(
            "{:<8} {:>9.3} {:>9.3} {:>12.3} {:>12.3} {:>9.0} {:>7}",
            l.name,
            l.p50_us / 1000.0,
            l.p99_us / 1000.0,
            (l.p50_us - direct.p50_us) / 1000.0,
            (l.p99_us - direct.p99_us) / 1000.0,
            t.rps,
            l.errors as u64 + t.errors,
        );
    }
    if tput.len() == 6 && tput[5].rps > 0.0 {
        println!(
            "real path throughput = {:.1}x LiteLLM's",
            tput[2].rps / tput[5].rps
        );
    }
    println!(
        "real path: {usage_rows} usage rows written to SQLite, one per response; {} cores",
        cores()
    );
    println!(
        "{}",
        serde_json::json!({"latency": lat, "throughput": tput, "usage_rows": usage_rows,
                           "fake_requests": fake.log().len()})
    );
    drop(litellm);
}
