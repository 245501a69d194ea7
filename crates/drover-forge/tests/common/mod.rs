//! Shared by the forge client tests: a fake forge of each kind, a `Forges` pointed at it and
//! the repository each kind's tests use.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use drover_forge::{CredentialSpec, ForgeKind, ForgeSettings, Forges, RepoRef, Secret};
use drover_test_support::fake_forge::FakeForge;
use drover_test_support::forge_tokens::{Scopes, Tokens};

/// The repository path each kind's tests use (GitLab: a subgroup; Bitbucket DC: a project).
pub fn repo_path(kind: ForgeKind) -> &'static str {
    match kind {
        ForgeKind::Gitlab => "acme/platform/widgets",
        ForgeKind::BitbucketDc => "ACME/widgets",
        _ => "acme/widgets",
    }
}

pub fn settings(fake: &FakeForge, credential: CredentialSpec) -> ForgeSettings {
    ForgeSettings {
        name: format!("test-{}", fake.kind()),
        kind: fake.kind(),
        api: fake.api_url(),
        git: fake.base_url(),
        credential,
        default: true,
    }
}

pub fn env_token(token: &str) -> CredentialSpec {
    CredentialSpec::Env {
        var: "FORGE_TOKEN".into(),
        token: Secret::new(token),
    }
}

/// `token_cmd`'s environment: enough for `sh -c 'cat FILE'`.
pub fn cmd_env() -> Vec<(String, String)> {
    vec![("PATH".into(), std::env::var("PATH").unwrap_or_default())]
}

/// A fake of `kind` accepting `token` with every scope, and the `Forges` using it.
pub fn forge_with_token(
    kind: ForgeKind,
    token: &str,
    scopes: Scopes,
) -> (FakeForge, Forges, RepoRef) {
    let tokens = Tokens::new();
    tokens.grant(token, scopes, None);
    let fake = FakeForge::start(kind, tokens);
    let forges = Forges::new(vec![settings(&fake, env_token(token))], cmd_env());
    let repo = forges.resolve(repo_path(kind)).unwrap().unwrap();
    (fake, forges, repo)
}

pub fn pr_request(head: &str, draft: bool) -> drover_forge::PrRequest {
    drover_forge::PrRequest {
        head: head.into(),
        base: "main".into(),
        title: "Upgrade the parser".into(),
        body: "Opened by drover.".into(),
        draft,
    }
}
