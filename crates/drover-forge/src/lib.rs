//! drover-forge: the code forges drover clones from, pushes to and opens pull requests on
//! (docs/design.md §9).
//!
//! - [`ForgeKind`]: GitHub, GitLab, Bitbucket Cloud, Bitbucket Data Center, Gitea (= Forgejo).
//! - [`ForgeSettings`]: one `[forges.NAME]` table, validated by the daemon's config loader.
//! - [`Credential`]: where a forge's token comes from (`token_env`, `token_cmd` re-run on a 401
//!   or after `token_ttl`, a GitHub App's installation tokens refreshed before they expire) and
//!   the headers it becomes on git's wire and on the REST API. Tokens are [`Secret`]s: they never
//!   print.
//! - [`RepoRef`] / [`Forges::resolve`]: `owner/name` through the default forge, a URL through the
//!   forge whose `git` base it starts with.
//!   A GitHub App's token belongs to an installation: [`Credential::token_for`] names the
//!   repository (its installation is looked up once when `installation_id` is not configured).
//! - [`Forge`]: the REST subset drover uses — find the open PR of a head branch, open one
//!   (idempotently: [`Forge::ensure_pr`], also across a race or a lost answer), comment — one
//!   implementation per kind (`github`, `gitlab`, `bitbucket_cloud`, `bitbucket_dc`, `gitea`)
//!   over a shared `http` layer: a 401 refreshes the token once, rate limits are honoured per
//!   host (`Retry-After`, GitHub's `x-ratelimit-*`; at most [`MAX_WAIT`], [`MAX_RETRIES`]).
//! - [`hints`]: what a token must be allowed, per kind ([`pr_permission_hint`],
//!   [`push_permission_hint`]), and the message of any kind's error body.

mod credential;
mod error;
mod forge;
mod forges;
mod github_app;
pub mod hints;
mod http;
mod kind;
mod repo;
mod settings;
mod wire;

mod bitbucket_cloud;
mod bitbucket_dc;
mod gitea;
mod github;
mod gitlab;

pub use credential::{Credential, APP_TOKEN_MARGIN};
pub use drover_types::Secret;
pub use error::ForgeError;
pub use forge::{Forge, PrRequest, PrState, PullRequest};
pub use forges::{client, ForgeEntry, Forges};
pub use hints::{pr_permission_hint, push_permission_hint};
pub use kind::ForgeKind;
pub use repo::RepoRef;
pub use settings::{CredentialSpec, ForgeSettings};
pub use wire::{MAX_RETRIES, MAX_WAIT};

/// Paths whose change in a task's branch opens its PR as a draft with a `needs-approval` note
/// (unless `--allow-ci-changes`): CI configuration runs with the repository's secrets — the
/// forges' own and the CI services commonly wired to a forge repository (they run the
/// branch's configuration with the project's secrets too), and GitHub's local actions
/// (`uses: ./.github/actions/…` in a workflow runs them).
pub const CI_CONFIG_PATHS: &[&str] = &[
    ".github/workflows/",
    ".github/actions/",
    ".gitlab-ci.yml",
    "bitbucket-pipelines.yml",
    ".gitea/workflows/",
    ".forgejo/workflows/",
    ".circleci/",
    ".travis.yml",
    "Jenkinsfile",
    "azure-pipelines.yml",
    ".buildkite/",
    ".drone.yml",
    ".woodpecker.yml",
    ".woodpecker/",
];

/// Whether `path` (relative to the repository's top) is CI configuration ([`CI_CONFIG_PATHS`]).
pub fn is_ci_config(path: &str) -> bool {
    CI_CONFIG_PATHS.iter().any(|p| {
        if p.ends_with('/') {
            path.starts_with(p)
        } else {
            path == *p
        }
    })
}

#[cfg(test)]
mod ci_config_tests {
    use super::is_ci_config;

    /// CI services wired to a forge repository run the branch's configuration with the
    /// project's secrets as the forge's own CI does: a change to theirs is CI configuration.
    #[test]
    fn third_party_ci_and_local_actions_are_ci_configuration() {
        for p in [
            ".github/workflows/x.yml",
            ".github/actions/setup/action.yml",
            ".circleci/config.yml",
            ".travis.yml",
            "Jenkinsfile",
            "azure-pipelines.yml",
            ".buildkite/pipeline.yml",
            ".drone.yml",
            ".woodpecker.yml",
            ".woodpecker/build.yml",
        ] {
            assert!(is_ci_config(p), "{p}");
        }
        for p in [
            "src/Jenkinsfile.md",
            ".github/CODEOWNERS",
            "docs/.travis.yml",
        ] {
            assert!(!is_ci_config(p), "{p}");
        }
    }
}
