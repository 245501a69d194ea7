//! Tokens: a 401 re-runs `token_cmd` and retries once; a token that cannot refresh says what to
//! do; a token without the PR permission gets a `Forbidden` naming it, per kind.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use drover_forge::{pr_permission_hint, CredentialSpec, ForgeError, ForgeKind, Forges};
use drover_test_support::fake_forge::FakeForge;
use drover_test_support::forge_tokens::{Scopes, Tokens};

#[tokio::test]
async fn a_refused_token_runs_token_cmd_again_and_the_request_succeeds() {
    for kind in ForgeKind::ALL {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "rot-1\n").unwrap();
        let tokens = Tokens::new();
        tokens.grant("rot-1", Scopes::ALL, None);
        let fake = FakeForge::start(kind, tokens.clone());
        let spec = CredentialSpec::Cmd {
            cmd: format!("cat {}", file.display()),
            ttl: None,
        };
        let forges = Forges::new(vec![settings(&fake, spec)], cmd_env());
        let repo = forges.resolve(repo_path(kind)).unwrap().unwrap();
        let api = &forges.get(&repo.forge).unwrap().api;
        let (pr, _) = api
            .ensure_pr(&repo, &pr_request("drover/t-1", false))
            .await
            .unwrap();
        // The token rotates: the old one expires, the command prints the new one.
        std::fs::write(&file, "rot-2\n").unwrap();
        tokens.grant("rot-2", Scopes::ALL, None);
        tokens.expire("rot-1");
        api.comment(&repo, pr.number, "after rotation")
            .await
            .unwrap();
        assert_eq!(
            fake.comments(repo_path(kind), pr.number),
            vec!["after rotation"]
        );
        let seen = tokens.seen();
        assert_eq!(
            &seen[seen.len() - 2..],
            &["rot-1".to_string(), "rot-2".to_string()],
            "{kind}: the refused token, then the new one"
        );
        let statuses: Vec<u16> = fake.requests().iter().map(|r| r.2).collect();
        assert_eq!(statuses.last(), Some(&201), "{kind}");
        assert_eq!(statuses[statuses.len() - 2], 401, "{kind}");
        // The git proxy shares the credential: it now hands out the new token.
        let entry = forges.get(&repo.forge).unwrap();
        assert_eq!(entry.credential.token().await.unwrap().expose(), "rot-2");
        // Nothing prints a token: not the credential, not its cache.
        let shown = format!("{:?}", entry.credential);
        assert!(!shown.contains("rot-"), "{kind}: {shown}");
    }
}

#[tokio::test]
async fn a_token_env_that_is_refused_says_which_variable_to_fix() {
    for kind in ForgeKind::ALL {
        let tokens = Tokens::new();
        let fake = FakeForge::start(kind, tokens);
        let forges = Forges::new(vec![settings(&fake, env_token("stale"))], cmd_env());
        let repo = forges.resolve(repo_path(kind)).unwrap().unwrap();
        let api = &forges.get(&repo.forge).unwrap().api;
        let e = api.find_pr(&repo, "drover/x").await.unwrap_err();
        let ForgeError::Unauthorized { hint, .. } = &e else {
            panic!("{kind}: {e:?}")
        };
        assert!(hint.contains("$FORGE_TOKEN"), "{kind}: {hint}");
        assert!(
            !e.to_string().contains("stale"),
            "{kind}: the token never prints: {e}"
        );
        // No refresh for token_env: one request, not two.
        assert_eq!(fake.requests().len(), 1, "{kind}");
    }
}

#[tokio::test]
async fn a_token_cmd_whose_new_token_is_refused_too_gives_up_after_one_retry() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "never-valid\n").unwrap();
    let fake = FakeForge::start(ForgeKind::Github, Tokens::new());
    let spec = CredentialSpec::Cmd {
        cmd: format!("cat {}", file.display()),
        ttl: Some(Duration::from_secs(3600)),
    };
    let forges = Forges::new(vec![settings(&fake, spec)], cmd_env());
    let repo = forges.resolve("acme/widgets").unwrap().unwrap();
    let api = &forges.get(&repo.forge).unwrap().api;
    let e = api.find_pr(&repo, "drover/x").await.unwrap_err();
    assert!(
        matches!(&e, ForgeError::Unauthorized { hint, .. } if hint.contains("token_cmd")),
        "{e:?}"
    );
    assert_eq!(fake.requests().len(), 2, "one retry after the refresh");
}

#[tokio::test]
async fn a_token_without_the_pr_permission_is_forbidden_with_the_permission_named() {
    let no_prs = Scopes {
        read: true,
        write: true,
        pull_requests: false,
    };
    for kind in ForgeKind::ALL {
        let (fake, forges, repo) = forge_with_token(kind, "tok-ro", no_prs);
        let api = &forges.get(&repo.forge).unwrap().api;
        let e = api
            .ensure_pr(&repo, &pr_request("drover/t-9", false))
            .await
            .unwrap_err();
        let ForgeError::Forbidden { hint, .. } = &e else {
            panic!("{kind}: {e:?}")
        };
        assert!(hint.contains(pr_permission_hint(kind)), "{kind}: {hint}");
        assert!(fake.prs(repo_path(kind)).is_empty(), "{kind}");
    }
}
