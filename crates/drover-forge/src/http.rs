//! What every kind's REST client shares: the token per request (a 401 refreshes it once),
//! the rate limits of [`crate::wire`], and the mapping of answers to [`ForgeError`]s.

use std::sync::Arc;
use std::time::Instant;

use reqwest::Method;
use serde_json::Value;

use crate::credential::Credential;
use crate::error::ForgeError;
use crate::hints;
use crate::kind::ForgeKind;
use crate::repo::RepoRef;
use crate::settings::ForgeSettings;

pub(crate) use crate::wire::{
    host_key, limit_host, query, rate_limit_wait, seg, wait_host, MAX_RETRIES, MAX_WAIT,
};

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
