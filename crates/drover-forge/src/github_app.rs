//! GitHub App credentials: a JWT (RS256, `iss` = app id, `iat` = now − 60 s, `exp` = now +
//! 540 s) signed with the app's key (read from `app_key` at each use, so a rotated key file is
//! picked up) buys an installation token (`POST /app/installations/{id}/access_tokens`, 1 h);
//! without `installation_id` the repository's installation is looked up (`GET
//! /repos/{o}/{r}/installation`).

use std::time::{Duration, Instant};

use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::error::ForgeError;
use crate::kind::ForgeKind;
use crate::settings::CredentialSpec;
use crate::wire::{host_key, limit_host, rate_limit_wait, seg, wait_host, MAX_RETRIES, MAX_WAIT};
use drover_types::Secret;

#[derive(Serialize)]
struct Claims {
    iat: i64,
    exp: i64,
    iss: serde_json::Value,
}

#[derive(Deserialize)]
struct AccessToken {
    token: String,
    expires_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Deserialize)]
struct Installation {
    id: u64,
}

/// What the app's calls need of its credential (the forge's name, REST base, settings and
/// HTTP client), so this module does not depend on [`crate::credential`].
pub(crate) struct App<'a> {
    pub forge: &'a str,
    pub api: &'a str,
    pub spec: &'a CredentialSpec,
    pub client: reqwest::Client,
}

impl App<'_> {
    fn forge(&self) -> &str {
        self.forge
    }
    fn api_base(&self) -> &str {
        self.api
    }
    fn spec(&self) -> &CredentialSpec {
        self.spec
    }
    fn http_client(&self) -> reqwest::Client {
        self.client.clone()
    }
}

fn fail(cred: &App<'_>, reason: String) -> ForgeError {
    ForgeError::Credential {
        forge: cred.forge().to_string(),
        reason,
    }
}

/// The app's JWT (valid 10 minutes, 60 s of clock skew allowed for).
fn jwt(cred: &App<'_>) -> Result<String, ForgeError> {
    let CredentialSpec::GithubApp {
        app_id, key_path, ..
    } = cred.spec()
    else {
        return Err(fail(cred, "not a GitHub App credential".into()));
    };
    let pem = std::fs::read(key_path).map_err(|e| {
        fail(
            cred,
            format!("cannot read app_key {}: {e}", key_path.display()),
        )
    })?;
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).map_err(|e| {
        fail(
            cred,
            format!(
                "app_key {} is not an RSA private key in PEM ({e}); use the .pem GitHub \
                 generated for the app",
                key_path.display()
            ),
        )
    })?;
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        iat: now - 60,
        exp: now + 540,
        iss: app_id
            .parse::<u64>()
            .map(serde_json::Value::from)
            .unwrap_or_else(|_| serde_json::Value::from(app_id.clone())),
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .map_err(|e| fail(cred, format!("cannot sign the app's JWT: {e}")))
}

/// Sends an app-authenticated request; the JSON body of a 2xx.
async fn app_call(
    cred: &App<'_>,
    method: Method,
    path: &str,
) -> Result<serde_json::Value, ForgeError> {
    let url = format!("{}{path}", cred.api_base());
    let host = host_key(&url);
    let mut limited = 0;
    loop {
        wait_host(&host, cred.forge()).await?;
        let resp = cred
            .http_client()
            .request(method.clone(), &url)
            .header("authorization", format!("Bearer {}", jwt(cred)?))
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
            .send()
            .await
            .map_err(|e| ForgeError::Unreachable {
                forge: cred.forge().to_string(),
                url: url.clone(),
                reason: e.without_url().to_string(),
            })?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        if (200..300).contains(&status) {
            return serde_json::from_str(&text)
                .map_err(|e| fail(cred, format!("{method} {path}: unreadable answer: {e}")));
        }
        if let Some(wait) = rate_limit_wait(ForgeKind::Github, status, &headers) {
            limit_host(&host, Instant::now() + wait);
            limited += 1;
            if limited > MAX_RETRIES || wait > MAX_WAIT {
                return Err(ForgeError::RateLimited {
                    forge: cred.forge().to_string(),
                    retry_after_secs: wait.as_secs().max(1),
                });
            }
            continue;
        }
        let message = crate::hints::error_message(&text);
        let hint = match status {
            401 => "check app_id and that app_key is the app's private key",
            404 => "is the app installed on this repository (or is installation_id right)?",
            403 => "the app's installation lacks a permission (Contents and Pull requests: write)",
            _ => "",
        };
        return Err(fail(
            cred,
            format!("GitHub App: {status} from {method} {path}: {message}; {hint}")
                .trim_end_matches("; ")
                .to_string(),
        ));
    }
}

/// The installation of the app on `repo_path` (`owner/name`).
pub(crate) async fn installation_of(cred: &App<'_>, repo_path: &str) -> Result<u64, ForgeError> {
    let (owner, name) = repo_path.split_once('/').unwrap_or((repo_path, ""));
    let v = app_call(
        cred,
        Method::GET,
        &format!("/repos/{}/{}/installation", seg(owner), seg(name)),
    )
    .await?;
    let inst: Installation = serde_json::from_value(v)
        .map_err(|e| fail(cred, format!("unreadable installation answer: {e}")))?;
    Ok(inst.id)
}

/// A new installation token and how long until it expires.
pub(crate) async fn installation_token(
    cred: &App<'_>,
    installation: u64,
) -> Result<(Secret, Duration), ForgeError> {
    let v = app_call(
        cred,
        Method::POST,
        &format!("/app/installations/{installation}/access_tokens"),
    )
    .await?;
    let t: AccessToken = serde_json::from_value(v)
        .map_err(|e| fail(cred, format!("unreadable access token answer: {e}")))?;
    let left = (t.expires_at - chrono::Utc::now())
        .to_std()
        .unwrap_or(Duration::ZERO);
    Ok((Secret::new(t.token), left))
}
