//! What every forge request shares that needs no credential: the HTTP client (30 s a request,
//! rustls), URL encoding, and rate limits per host.
//!
//! Rate limits are per host (`host:port`), shared by every client of that host in the process:
//! a 429 — or GitHub's 403/429 with `retry-after`, or `x-ratelimit-remaining: 0` with
//! `x-ratelimit-reset` — records "not before T" for the host; every request to it waits until
//! T (when that is more than [`MAX_WAIT`] away: [`ForgeError::RateLimited`]), and a limited
//! request is retried at most [`MAX_RETRIES`] times. A 429 that says nothing waits 60 s on
//! GitHub (its documented minimum), 10 s elsewhere.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;

use crate::error::ForgeError;
use crate::kind::ForgeKind;

/// The longest drover waits for a host's rate limit before giving up with `RateLimited`.
pub const MAX_WAIT: Duration = Duration::from_secs(120);
/// How many times a rate-limited request is sent again.
pub const MAX_RETRIES: u32 = 3;
/// Per request.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// "Not before" per host, for the whole process.
static NOT_BEFORE: LazyLock<Mutex<HashMap<String, Instant>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// `host:port` of `url` (the rate limit's key).
pub(crate) fn host_key(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}:{}",
            u.host_str().unwrap_or(""),
            u.port_or_known_default().unwrap_or(0)
        ),
        Err(_) => url.to_string(),
    }
}

/// Records that `host` takes no request before `until` (a later limit wins).
pub(crate) fn limit_host(host: &str, until: Instant) {
    if let Ok(mut map) = NOT_BEFORE.lock() {
        let e = map.entry(host.to_string()).or_insert(until);
        if *e < until {
            *e = until;
        }
    }
}

/// Waits for `host`'s rate limit, if any; `RateLimited` when it is more than [`MAX_WAIT`] away.
pub(crate) async fn wait_host(host: &str, forge: &str) -> Result<(), ForgeError> {
    loop {
        let until = NOT_BEFORE
            .lock()
            .ok()
            .and_then(|m| m.get(host).copied())
            .filter(|t| *t > Instant::now());
        let Some(until) = until else { return Ok(()) };
        let wait = until.saturating_duration_since(Instant::now());
        if wait > MAX_WAIT {
            return Err(ForgeError::RateLimited {
                forge: forge.to_string(),
                retry_after_secs: wait.as_secs().max(1),
            });
        }
        tracing::info!(
            forge,
            host,
            wait_ms = wait.as_millis() as u64,
            "rate limited: waiting"
        );
        tokio::time::sleep(wait).await;
    }
}

/// How long the answer says to wait, when it is a rate limit.
pub(crate) fn rate_limit_wait(
    kind: ForgeKind,
    status: u16,
    headers: &HeaderMap,
) -> Option<Duration> {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
    let retry_after = header("retry-after").and_then(parse_retry_after);
    let github = kind == ForgeKind::Github;
    let exhausted = github && header("x-ratelimit-remaining") == Some("0");
    let reset = header("x-ratelimit-reset")
        .and_then(|r| r.parse::<i64>().ok())
        .map(|epoch| {
            let secs = epoch - chrono::Utc::now().timestamp();
            Duration::from_secs(secs.max(0) as u64 + 1)
        });
    match status {
        429 => Some(
            retry_after
                .or(if exhausted { reset } else { None })
                .unwrap_or(if github {
                    Duration::from_secs(60)
                } else {
                    Duration::from_secs(10)
                }),
        ),
        403 if github && retry_after.is_some() => retry_after,
        403 if exhausted => Some(reset.unwrap_or(Duration::from_secs(60))),
        _ => None,
    }
}

/// `Retry-After`: delay seconds or an HTTP date.
fn parse_retry_after(v: &str) -> Option<Duration> {
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let secs = at.timestamp() - chrono::Utc::now().timestamp();
    Some(Duration::from_secs(secs.max(0) as u64))
}

/// `s` as one URL path segment (`/` becomes `%2F`: GitLab's project ids).
pub(crate) fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `k=v&…`, form-encoded.
pub(crate) fn query(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// A client's `reqwest::Client` (30 s a request, rustls, drover's User-Agent).
pub(crate) fn new_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .user_agent(concat!("drover/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn encodes_segments_and_queries() {
        assert_eq!(seg("group/sub/name"), "group%2Fsub%2Fname");
        assert_eq!(seg("a.b-c_d"), "a.b-c_d");
        assert_eq!(
            query(&[("q", "source.branch.name=\"drover/x\" AND state=\"OPEN\"")]),
            "q=source.branch.name%3D%22drover%2Fx%22+AND+state%3D%22OPEN%22"
        );
    }

    #[test]
    fn reads_rate_limit_answers() {
        let mut h = HeaderMap::new();
        assert_eq!(
            rate_limit_wait(ForgeKind::Gitlab, 429, &h),
            Some(Duration::from_secs(10))
        );
        assert_eq!(rate_limit_wait(ForgeKind::Github, 403, &h), None);
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(
            rate_limit_wait(ForgeKind::Github, 403, &h),
            Some(Duration::from_secs(7))
        );
        assert_eq!(rate_limit_wait(ForgeKind::Gitea, 403, &h), None);
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", "0".parse().unwrap());
        let reset = chrono::Utc::now().timestamp() + 30;
        h.insert("x-ratelimit-reset", reset.to_string().parse().unwrap());
        let w = rate_limit_wait(ForgeKind::Github, 403, &h).unwrap();
        assert!(
            w >= Duration::from_secs(29) && w <= Duration::from_secs(32),
            "{w:?}"
        );
    }
}
