//! A forge's token: where it comes from, when it is fetched again, and the headers it becomes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::error::ForgeError;
use crate::kind::ForgeKind;
use crate::repo::RepoRef;
use crate::settings::{CredentialSpec, ForgeSettings};
use drover_types::Secret;

/// One forge's credential. Shared (`Arc`) by the git proxy and the REST client, so a token a
/// 401 refreshed is the one both use next.
///
/// A GitHub App's tokens belong to an installation: with `installation_id` configured, every
/// repository uses it; without, [`Credential::token_for`] looks the installation of the
/// repository up (`GET /repos/{o}/{r}/installation`, once per repository) and keeps one token
/// per installation; [`Credential::token`] (no repository) uses the first installation looked
/// up. Installation tokens are fetched again 5 minutes before their `expires_at`.
#[derive(Debug)]
pub struct Credential {
    forge: String,
    kind: ForgeKind,
    /// The REST base (a GitHub App's token endpoint is below it).
    api: String,
    spec: CredentialSpec,
    /// `token_cmd`'s environment (the daemon's allow-listed one; never a secret of drover's).
    cmd_env: Vec<(String, String)>,
    /// Per installation (GitHub App) — key 0 for every other credential.
    cached: tokio::sync::Mutex<HashMap<u64, Cached>>,
    /// GitHub App without `installation_id`: repository path → installation.
    installations: tokio::sync::Mutex<Vec<(String, u64)>>,
    client: reqwest::Client,
}

#[derive(Debug, Clone)]
struct Cached {
    token: Secret,
    /// Fetch again at or after this instant (`None`: never by time).
    stale_at: Option<Instant>,
}

/// A GitHub App installation token is fetched again this long before it expires.
pub const APP_TOKEN_MARGIN: Duration = Duration::from_secs(300);

impl Credential {
    pub fn new(settings: &ForgeSettings, cmd_env: Vec<(String, String)>) -> Self {
        Credential {
            forge: settings.name.clone(),
            kind: settings.kind,
            api: settings.api.trim_end_matches('/').to_string(),
            spec: settings.credential.clone(),
            cmd_env,
            cached: tokio::sync::Mutex::new(HashMap::new()),
            installations: tokio::sync::Mutex::new(Vec::new()),
            client: crate::wire::new_client(),
        }
    }

    /// The forge's HTTP client (one per forge: the REST client uses it too).
    pub(crate) fn http_client(&self) -> reqwest::Client {
        self.client.clone()
    }

    /// The forge's name (`[forges.NAME]`).
    pub fn forge(&self) -> &str {
        &self.forge
    }

    pub fn kind(&self) -> ForgeKind {
        self.kind
    }

    /// The current token: the cached one unless it is older than its lifetime. A GitHub App
    /// without `installation_id` needs a repository first ([`Credential::token_for`]).
    pub async fn token(&self) -> Result<Secret, ForgeError> {
        let key = self.installation(None).await?;
        self.current(key).await
    }

    /// The token for `repo` (a GitHub App: its installation's; else [`Credential::token`]).
    pub async fn token_for(&self, repo: &RepoRef) -> Result<Secret, ForgeError> {
        let key = self.installation(Some(repo)).await?;
        self.current(key).await
    }

    /// After the forge answered 401 to `refused`: a new token, unless another caller already
    /// replaced `refused` (then that one). `token_env` cannot refresh: the same token again.
    pub async fn refresh(&self, refused: &Secret) -> Result<Secret, ForgeError> {
        let key = self.installation(None).await?;
        self.replace(key, refused).await
    }

    /// [`Credential::refresh`] for `repo`'s token ([`Credential::token_for`]).
    pub async fn refresh_for(
        &self,
        repo: &RepoRef,
        refused: &Secret,
    ) -> Result<Secret, ForgeError> {
        let key = self.installation(Some(repo)).await?;
        self.replace(key, refused).await
    }

    /// What to do about a token the forge refused even after a refresh (no secret in it).
    pub fn unauthorized_hint(&self) -> String {
        match &self.spec {
            CredentialSpec::Env { var, .. } => format!(
                "the token in ${var} is invalid or expired; put a valid one there and restart \
                 the daemon (or use token_cmd, which drover runs again on a 401)"
            ),
            CredentialSpec::Cmd { .. } => "token_cmd was run again and its new token was \
                 refused too; check that the command prints a valid token for this forge"
                .to_string(),
            CredentialSpec::GithubApp { app_id, .. } => format!(
                "a fresh installation token of GitHub App {app_id} was refused; check that the \
                 app is installed on the repository and that app_key is the app's key"
            ),
        }
    }

    async fn current(&self, key: u64) -> Result<Secret, ForgeError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.get(&key) {
            if c.stale_at.is_none_or(|t| Instant::now() < t) {
                return Ok(c.token.clone());
            }
        }
        let fresh = self.fetch(key).await?;
        let token = fresh.token.clone();
        cached.insert(key, fresh);
        Ok(token)
    }

    async fn replace(&self, key: u64, refused: &Secret) -> Result<Secret, ForgeError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.get(&key) {
            if &c.token != refused {
                return Ok(c.token.clone());
            }
        }
        let fresh = self.fetch(key).await?;
        let token = fresh.token.clone();
        cached.insert(key, fresh);
        Ok(token)
    }

    /// The cache key: the installation of a GitHub App (configured, or looked up for `repo`),
    /// else 0.
    async fn installation(&self, repo: Option<&RepoRef>) -> Result<u64, ForgeError> {
        let CredentialSpec::GithubApp {
            installation_id, ..
        } = &self.spec
        else {
            return Ok(0);
        };
        if let Some(id) = installation_id {
            return Ok(*id);
        }
        let mut known = self.installations.lock().await;
        let Some(repo) = repo else {
            return known
                .first()
                .map(|(_, id)| *id)
                .ok_or_else(|| ForgeError::Credential {
                    forge: self.forge.clone(),
                    reason:
                        "the GitHub App has no installation_id and no repository was named yet; \
                         add installation_id to the forge's table"
                            .into(),
                });
        };
        if let Some((_, id)) = known.iter().find(|(p, _)| *p == repo.path) {
            return Ok(*id);
        }
        let id = crate::github_app::installation_of(&self.app(), &repo.path).await?;
        known.push((repo.path.clone(), id));
        Ok(id)
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

    async fn fetch(&self, installation: u64) -> Result<Cached, ForgeError> {
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
            CredentialSpec::GithubApp { .. } => {
                let (token, expires_in) =
                    crate::github_app::installation_token(&self.app(), installation).await?;
                Ok(Cached {
                    token,
                    stale_at: Some(Instant::now() + expires_in.saturating_sub(APP_TOKEN_MARGIN)),
                })
            }
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

/// What the GitHub App code reads of a credential.
impl Credential {
    fn app(&self) -> crate::github_app::App<'_> {
        crate::github_app::App {
            forge: &self.forge,
            api: &self.api,
            spec: &self.spec,
            client: self.http_client(),
        }
    }
}
