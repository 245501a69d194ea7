//! One `[forges.NAME]` table (docs/design.md §9), as the daemon's config loader validated it.

use std::path::PathBuf;
use std::time::Duration;

use crate::kind::ForgeKind;
use drover_types::Secret;

/// A forge drover can reach.
#[derive(Debug, Clone)]
pub struct ForgeSettings {
    /// The table's name (`gh` of `[forges.gh]`).
    pub name: String,
    pub kind: ForgeKind,
    /// REST API base (`https://api.github.com`, `https://gitlab.example.com/api/v4`,
    /// `https://api.bitbucket.org/2.0`, `https://bitbucket.example.com/rest/api/1.0`,
    /// `https://gitea.example.com/api/v1`), no trailing slash.
    pub api: String,
    /// Git base URL: `<git>/<owner>/<name>.git` clones a repository (Bitbucket DC:
    /// `<git>/scm/<project>/<repo>.git`), no trailing slash.
    pub git: String,
    pub credential: CredentialSpec,
    /// `--repo owner/name` resolves through this forge.
    pub default: bool,
}

/// Where a forge's token comes from.
#[derive(Debug, Clone)]
pub enum CredentialSpec {
    /// `token_env = "VAR"`: the daemon's environment at start (read by the config loader).
    Env { var: String, token: Secret },
    /// `token_cmd = "…"` (`sh -c`, stdout's first line; its environment is the daemon's
    /// allow-listed one): run at first use, again after `ttl`, and again whenever the forge
    /// answers 401 to the token it printed.
    Cmd { cmd: String, ttl: Option<Duration> },
    /// `app_id` + `app_key` (a PEM file, RS256) [+ `installation_id`, else looked up per
    /// repository]: GitHub App installation tokens (1 h), refreshed 5 minutes before they end.
    GithubApp {
        app_id: String,
        key_path: PathBuf,
        installation_id: Option<u64>,
    },
}
