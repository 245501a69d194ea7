//! Load measurement: latency percentiles and streamed-request throughput of HTTP targets.
//!
//! A [`Target`] is an endpoint plus the request to send (typically a small streamed
//! `/v1/messages` request). [`latency`] sends requests to all targets in turn (interleaved, so
//! drift hits all alike) and reports percentiles of the time to the end of the response;
//! [`throughput`] keeps `concurrency` clients busy for a while. The `bench` example runs the
//! fake provider directly, through the gateway, and through LiteLLM when installed.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;

/// An endpoint and the request to send it.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// Latency of sequential requests (microseconds).
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub name: String,
    pub n: usize,
    pub errors: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub mean_us: f64,
}

/// Requests completed by `concurrency` clients in `duration`.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub name: String,
    pub concurrency: usize,
    pub seconds: f64,
    pub ok: u64,
    pub errors: u64,
    pub rps: f64,
}

/// Errors of a benchmark run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot build the HTTP client: {0}")]
    Client(reqwest::Error),
    #[error("target {0} failed its warm-up request: {1}")]
    WarmUp(String, String),
}

/// A client for benchmarks: no proxy, `TCP_NODELAY`, a large connection pool.
pub fn client() -> Result<reqwest::Client, BenchError> {
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1024)
        .build()
        .map_err(BenchError::Client)
}

/// Sends one request and reads the whole body; Ok only for a 2xx with a complete body.
pub async fn once(client: &reqwest::Client, t: &Target) -> Result<usize, String> {
    let mut req = client.post(&t.url).body(t.body.clone());
    for (k, v) in &t.headers {
        req = req.header(k, v);
    }
    let resp = req.send().await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let mut body = resp.bytes_stream();
    let mut n = 0;
    while let Some(chunk) = body.next().await {
        n += chunk.map_err(|e| e.to_string())?.len();
    }
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    Ok(n)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// `n` sequential requests per target, interleaved across targets, after `warmup` each.
pub async fn latency(
    client: &reqwest::Client,
    targets: &[Target],
    n: usize,
    warmup: usize,
) -> Result<Vec<Latency>, BenchError> {
    for t in targets {
        for _ in 0..warmup.max(1) {
            once(client, t)
                .await
                .map_err(|e| BenchError::WarmUp(t.name.clone(), e))?;
        }
    }
    let mut samples = vec![Vec::with_capacity(n); targets.len()];
    let mut errors = vec![0usize; targets.len()];
    for _ in 0..n {
        for (i, t) in targets.iter().enumerate() {
            let start = Instant::now();
            match once(client, t).await {
                Ok(_) => samples[i].push(start.elapsed().as_secs_f64() * 1e6),
                Err(_) => errors[i] += 1,
            }
        }
    }
    Ok(targets
        .iter()
        .zip(samples)
        .zip(errors)
        .map(|((t, mut s), errors)| {
            s.sort_by(f64::total_cmp);
            let mean = s.iter().sum::<f64>() / s.len().max(1) as f64;
            Latency {
                name: t.name.clone(),
                n: s.len(),
                errors,
                p50_us: percentile(&s, 0.5),
                p99_us: percentile(&s, 0.99),
                mean_us: mean,
            }
        })
        .collect())
}

/// One client per target (e.g. one task token each), back-to-back requests for `duration`;
/// reported under `name`.
pub async fn throughput_each(
    client: &reqwest::Client,
    name: &str,
    targets: &[Target],
    duration: Duration,
) -> Throughput {
    let start = Instant::now();
    let deadline = start + duration;
    let workers = targets.iter().map(|t| {
        let (client, t) = (client.clone(), t.clone());
        tokio::spawn(async move {
            let (mut ok, mut err) = (0u64, 0u64);
            while Instant::now() < deadline {
                match once(&client, &t).await {
                    Ok(_) => ok += 1,
                    Err(_) => err += 1,
                }
            }
            (ok, err)
        })
    });
    let results = futures::future::join_all(workers).await;
    let seconds = start.elapsed().as_secs_f64();
    let (ok, errors) = results
        .into_iter()
        .flatten()
        .fold((0, 0), |(a, b), (o, e)| (a + o, b + e));
    Throughput {
        name: name.to_string(),
        concurrency: targets.len(),
        seconds,
        ok,
        errors,
        rps: ok as f64 / seconds,
    }
}

/// `concurrency` clients sending back-to-back requests to `t` for `duration`.
pub async fn throughput(
    client: &reqwest::Client,
    t: &Target,
    concurrency: usize,
    duration: Duration,
) -> Throughput {
    let targets = vec![t.clone(); concurrency];
    throughput_each(client, &t.name, &targets, duration).await
}
