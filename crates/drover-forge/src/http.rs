//! What every kind's REST client shares: one `reqwest::Client` per forge (30 s a request,
//! rustls), the token per request (a 401 refreshes it once), rate limits per host, and the
//! mapping of answers to [`ForgeError`]s.
//!
//! Rate limits are per host (`host:port`), shared by every client of that host in the process:
//! a 429 — or GitHub's 403/429 with `retry-after`, or `x-ratelimit-remaining: 0` with
//! `x-ratelimit-reset` — records "not before T" for the host; every request to it waits until
//! T (when that is more than [`MAX_WAIT`] away: [`ForgeError::RateLimited`]), and a limited
//! request is retried at most [`MAX_RETRIES`] times. A 429 that says nothing waits 60 s on
//! GitHub (its documented minimum), 10 s elsewhere.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::Value;

use crate::credential::Credential;
use crate::error::ForgeError;
use crate::hints;
use crate::kind::ForgeKind;
use crate::repo::RepoRef;
use crate::settings::ForgeSettings;

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

/// A forge's REST API: the base URL, the credential and the client.
pub(crate) struct Api {
    pub kind: ForgeKind,
    pub forge: String,
    pub base: String,
    host: String,
    pub credential: Arc<Credential>,
    client: reqwest::Client,
}

impl Api {
    pub fn new(settings: &ForgeSettings, credential: Arc<Credential>) -> Self {
        let base = settings.api.trim_end_matches('/').to_string();
        Api {
            kind: settings.kind,
            forge: settings.name.clone(),
            host: host_key(&base),
            client: credential.http_client(),
            base,
            credential,
        }
    }

    /// Sends `method path` (below the API base; with its query) with the repository's token.
    /// 2xx → its JSON body (`Null` when empty); 401 refreshes the token once; rate limits wait and retry; 403 → `Forbidden` naming the
    /// permission; 404 → `NotFound`; anything else → `Api`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        repo: &RepoRef,
    ) -> Result<Value, ForgeError> {
        let url = format!("{}{}", self.base, path);
        let mut token = self.credential.token_for(repo).await?;
        let mut refreshed = false;
        let mut limited = 0u32;
        loop {
            wait_host(&self.host, &self.forge).await?;
            let (name, value) = self.credential.api_authorization(&token);
            let mut req = self
                .client
                .request(method.clone(), &url)
                .header(name, value)
                .header("accept", self.accept());
            if self.kind == ForgeKind::Github {
                req = req.header("x-github-api-version", "2022-11-28");
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = req.send().await.map_err(|e| ForgeError::Unreachable {
                forge: self.forge.clone(),
                url: url.split('?').next().unwrap_or(&url).to_string(),
                reason: without_url(e),
            })?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let text = resp.text().await.unwrap_or_default();
            if (200..300).contains(&status) {
                return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
            }
            if let Some(wait) = rate_limit_wait(self.kind, status, &headers) {
                limit_host(&self.host, Instant::now() + wait);
                limited += 1;
                if limited > MAX_RETRIES || wait > MAX_WAIT {
                    return Err(ForgeError::RateLimited {
                        forge: self.forge.clone(),
                        retry_after_secs: wait.as_secs().max(1),
                    });
                }
                continue;
            }
            let message = hints::error_message(&text);
            match status {
                401 if !refreshed && self.credential.refreshable() => {
                    token = self.credential.refresh_for(repo, &token).await?;
                    refreshed = true;
                }
                401 => {
                    return Err(ForgeError::Unauthorized {
                        forge: self.forge.clone(),
                        hint: format!("{message}; {}", self.credential.unauthorized_hint()),
                    })
                }
                403 => {
                    let wants = headers
                        .get("x-accepted-github-permissions")
                        .and_then(|v| v.to_str().ok())
                        .map(|p| format!(" (GitHub asks for {p})"))
                        .unwrap_or_default();
                    return Err(ForgeError::Forbidden {
                        forge: self.forge.clone(),
                        hint: format!("{message}; {}{wants}", hints::pr_permission_hint(self.kind)),
                    });
                }
                404 => {
                    return Err(ForgeError::NotFound {
                        forge: self.forge.clone(),
                        what: format!(
                            "{} {} (does the repository exist, and may the token see it?)",
                            self.kind.pr_noun(),
                            repo.path
                        ),
                    })
                }
                _ => {
                    return Err(ForgeError::Api {
                        forge: self.forge.clone(),
                        method: method.to_string(),
                        path: path.split('?').next().unwrap_or(path).to_string(),
                        status,
                        message,
                    })
                }
            }
        }
    }

    fn accept(&self) -> &'static str {
        match self.kind {
            ForgeKind::Github => "application/vnd.github+json",
            _ => "application/json",
        }
    }
}

/// A transport error's text without the URL (whose query may name a branch, never a token,
/// but keep messages short).
fn without_url(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut s = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
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
