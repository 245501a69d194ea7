//! A forge's token: where it comes from, when it is fetched again, and the headers it becomes.

use std::time::{Duration, Instant};

use crate::error::ForgeError;
use crate::kind::ForgeKind;
use crate::settings::{CredentialSpec, ForgeSettings};
use drover_types::Secret;

/// One forge's credential. Shared (`Arc`) by the git proxy and the REST client, so a token a
/// 401 refreshed is the one both use next.
#[derive(Debug)]
pub struct Credential {
    forge: String,
    kind: ForgeKind,
    /// The REST base (a GitHub App's token endpoint is below it).
    #[allow(dead_code)]
    api: String,
    spec: CredentialSpec,
    /// `token_cmd`'s environment (the daemon's allow-listed one; never a secret of drover's).
    cmd_env: Vec<(String, String)>,
    cached: tokio::sync::Mutex<Option<Cached>>,
}

#[derive(Debug, Clone)]
struct Cached {
    token: Secret,
    /// Fetch again at or after this instant (`None`: never by time).
    stale_at: Option<Instant>,
}

impl Credential {
    pub fn new(settings: &ForgeSettings, cmd_env: Vec<(String, String)>) -> Self {
        Credential {
            forge: settings.name.clone(),
            kind: settings.kind,
            api: settings.api.clone(),
            spec: settings.credential.clone(),
            cmd_env,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// The forge's name (`[forges.NAME]`).
    pub fn forge(&self) -> &str {
        &self.forge
    }

    pub fn kind(&self) -> ForgeKind {
        self.kind
    }

    /// The current token: the cached one unless it is older than its lifetime.
    pub async fn token(&self) -> Result<Secret, ForgeError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            if c.stale_at.is_none_or(|t| Instant::now() < t) {
                return Ok(c.token.clone());
            }
        }
        let fresh = self.fetch().await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// After the forge answered 401 to `refused`: a new token, unless another caller already
    /// replaced `refused` (then that one). `token_env` cannot refresh: the same token again.
    pub async fn refresh(&self, refused: &Secret) -> Result<Secret, ForgeError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            if &c.token != refused {
                return Ok(c.token.clone());
            }
        }
        let fresh = self.fetch().await?;
        let token = fresh.token.clone();
        *cached = Some(fresh);
        Ok(token)
    }

    /// Whether a 401 can be cured by [`Credential::refresh`].
    pub fn refreshable(&self) -> bool {
        !matches!(self.spec, CredentialSpec::Env { .. })
    }

    /// `Authorization` header value for git's smart HTTP (Basic with the user name each forge
    /// expects for a token; Bitbucket Data Center: Bearer).
    pub fn git_authorization(&self, token: &Secret) -> String {
        use base64::Engine as _;
        let basic = |user: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{user}:{}", token.expose()))
            )
        };
        match self.kind {
            ForgeKind::Github => basic("x-access-token"),
            ForgeKind::Gitlab => basic("oauth2"),
            ForgeKind::BitbucketCloud => basic("x-token-auth"),
            ForgeKind::BitbucketDc => format!("Bearer {}", token.expose()),
            ForgeKind::Gitea => basic("drover"),
        }
    }

    /// The REST API's auth header (name, value) for `token`.
    pub fn api_authorization(&self, token: &Secret) -> (&'static str, String) {
        match self.kind {
            ForgeKind::Gitlab => ("PRIVATE-TOKEN", token.expose().to_string()),
            ForgeKind::Gitea => ("Authorization", format!("token {}", token.expose())),
            _ => ("Authorization", format!("Bearer {}", token.expose())),
        }
    }

    async fn fetch(&self) -> Result<Cached, ForgeError> {
        match &self.spec {
            CredentialSpec::Env { token, .. } => Ok(Cached {
                token: token.clone(),
                stale_at: None,
            }),
            CredentialSpec::Cmd { cmd, ttl } => {
                let token = self.run_cmd(cmd).await?;
                Ok(Cached {
                    token,
                    stale_at: ttl.map(|t| Instant::now() + t),
                })
            }
            CredentialSpec::GithubApp { .. } => Err(ForgeError::Unsupported {
                kind: self.kind,
                what: "GitHub App credentials (not yet built)".into(),
            }),
        }
    }

    /// `sh -c CMD` with the allow-listed environment, 30 s at most; stdout's first line.
    async fn run_cmd(&self, cmd: &str) -> Result<Secret, ForgeError> {
        let fail = |reason: String| ForgeError::Credential {
            forge: self.forge.clone(),
            reason,
        };
        let mut c = tokio::process::Command::new("sh");
        c.arg("-c")
            .arg(cmd)
            .env_clear()
            .envs(self.cmd_env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(30), c.output())
            .await
            .map_err(|_| fail("token_cmd did not finish within 30 s".into()))?
            .map_err(|e| fail(format!("token_cmd could not run: {e}")))?;
        if !out.status.success() {
            // Its stderr may say why; never its stdout (it may hold a token).
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(fail(format!(
                "token_cmd failed ({}): {}",
                out.status,
                drover_types::text::excerpt(err.trim(), drover_types::text::Limit::Chars(300))
            )));
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let token = stdout.lines().next().unwrap_or_default().trim().to_string();
        if token.is_empty() {
            return Err(fail("token_cmd printed no token".into()));
        }
        Ok(Secret::new(token))
    }
}
