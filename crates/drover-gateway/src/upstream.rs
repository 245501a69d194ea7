//! Calling the provider: one attempt, and the retry loop around it.
//!
//! Retried (exponential backoff from `backoff_base`, full jitter in [½, 1], capped at
//! `backoff_max`; `retry-after` / `retry-after-ms` honoured): 408, 429, 500, 502, 503, 504,
//! 529, connection errors, no response headers or first body bytes within `ttfb_timeout`, and
//! bodies that end or break before their first byte. `x-should-retry: false` from upstream
//! wins. Nothing is retried once a byte was relayed to the agent — which never happens here:
//! the response is handed on only with its first body chunk in hand.

use std::pin::Pin;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use rand::Rng;

use crate::config::GatewayConfig;
use crate::ledger::GatewayEvent;

/// Upstream body chunks.
pub type Upstream = Pin<Box<dyn Stream<Item = Result<Bytes, reqwest::Error>> + Send>>;

/// A response worth relaying: headers, and the first body chunk already read.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub first: Bytes,
    pub body: Upstream,
    /// Upstream requests made for it (1: no retry).
    pub attempts: u32,
}

/// A failed attempt.
#[derive(Debug)]
pub struct Failure {
    pub status: Option<u16>,
    pub error: String,
    pub retry_after: Option<Duration>,
    pub retryable: bool,
    /// An upstream error answer (status, headers, full body) to hand the agent if we stop.
    pub answer: Option<(StatusCode, HeaderMap, Bytes)>,
    pub timed_out: bool,
}

/// What the retry loop ended with.
pub enum RetryOutcome {
    Answer(Answer),
    /// Retries exhausted or not retryable.
    Failed {
        failure: Failure,
        attempts: u32,
    },
}

fn retryable_status(s: u16) -> bool {
    matches!(s, 408 | 429 | 500 | 502 | 503 | 504 | 529)
}

fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok());
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok()) {
        return Some(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
    }
    get("retry-after")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|s| Duration::from_secs_f64(s.max(0.0)))
}

/// The delay before retry number `retry` (1-based).
pub fn backoff(cfg: &GatewayConfig, retry: u32, hint: Option<Duration>) -> Duration {
    if let Some(h) = hint {
        return h.min(cfg.backoff_max);
    }
    let exp = cfg
        .backoff_base
        .saturating_mul(1u32 << retry.saturating_sub(1).min(16));
    let capped = exp.min(cfg.backoff_max);
    let factor: f64 = rand::thread_rng().gen_range(0.5..=1.0);
    capped.mul_f64(factor)
}

/// One attempt: send, wait for headers and the first body chunk (within the TTFB timeout).
async fn attempt(req: reqwest::RequestBuilder, ttfb: Duration) -> Result<Answer, Failure> {
    let fail = |status: Option<u16>, error: String, timed_out: bool| Failure {
        status,
        error,
        retry_after: None,
        retryable: true,
        answer: None,
        timed_out,
    };
    let deadline = Instant::now() + ttfb;
    let resp = match tokio::time::timeout(ttfb, req.send()).await {
        Err(_) => {
            return Err(fail(
                None,
                "no response headers within the TTFB timeout".into(),
                true,
            ))
        }
        Ok(Err(e)) => return Err(fail(None, format!("connection error: {e}"), false)),
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    let headers = resp.headers().clone();
    if !status.is_success() {
        let code = status.as_u16();
        let body = tokio::time::timeout_at(deadline.into(), resp.bytes())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let should_retry = headers
            .get("x-should-retry")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.eq_ignore_ascii_case("true"));
        let retryable = should_retry.unwrap_or_else(|| retryable_status(code));
        let error = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        return Err(Failure {
            status: Some(code),
            error,
            retry_after: retry_after(&headers),
            retryable,
            answer: Some((status, headers, body)),
            timed_out: false,
        });
    }
    let mut body: Upstream = Box::pin(resp.bytes_stream());
    loop {
        match tokio::time::timeout_at(deadline.into(), body.next()).await {
            Err(_) => {
                return Err(fail(
                    Some(status.as_u16()),
                    "no body bytes within the TTFB timeout".into(),
                    true,
                ))
            }
            Ok(None) => {
                return Err(fail(
                    Some(status.as_u16()),
                    "body ended before its first byte".into(),
                    false,
                ))
            }
            Ok(Some(Err(e))) => {
                return Err(fail(
                    Some(status.as_u16()),
                    format!("dropped before the first byte: {e}"),
                    false,
                ))
            }
            Ok(Some(Ok(b))) if b.is_empty() => continue,
            Ok(Some(Ok(first))) => {
                return Ok(Answer {
                    status,
                    headers,
                    first,
                    body,
                    attempts: 1,
                })
            }
        }
    }
}

/// Sends with retries; each retry is reported through `on_retry` before its delay.
pub async fn send_with_retries<F, Fut>(
    cfg: &GatewayConfig,
    make: impl Fn() -> reqwest::RequestBuilder,
    mut on_retry: F,
) -> RetryOutcome
where
    F: FnMut(GatewayEvent) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match attempt(make(), cfg.ttfb_timeout).await {
            Ok(answer) => return RetryOutcome::Answer(Answer { attempts, ..answer }),
            Err(failure) => {
                if !failure.retryable || attempts > cfg.max_retries {
                    return RetryOutcome::Failed { failure, attempts };
                }
                let delay = backoff(cfg, attempts, failure.retry_after);
                tracing::debug!(
                    "gateway: attempt {attempts} failed ({:?} {}); retrying in {delay:?}",
                    failure.status,
                    failure.error
                );
                on_retry(GatewayEvent::Retry {
                    attempt: attempts,
                    status: failure.status,
                    error: failure.error.clone(),
                    delay_ms: delay.as_millis() as u64,
                })
                .await;
                tokio::time::sleep(delay).await;
            }
        }
    }
}
