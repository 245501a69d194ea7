//! GitHub App credentials against the fake: the JWT (made with the app's key, checked by the
//! fake with the public key) buys an installation token; without `installation_id` the
//! repository's installation is looked up; tokens are fetched again 5 minutes before they
//! expire; a wrong key is a clear credential error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use drover_forge::{CredentialSpec, ForgeError, ForgeKind, Forges};
use drover_test_support::fake_forge::{FakeApp, FakeForge};
use drover_test_support::forge_tokens::Tokens;

/// An RSA key pair made by the `openssl` CLI: (private key path, public key PEM).
fn key_pair(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub.pem"));
    let ok = Command::new("openssl")
        .args(["genrsa", "-out"])
        .arg(&key)
        .arg("2048")
        .output()
        .unwrap()
        .status
        .success();
    assert!(ok, "openssl genrsa");
    let ok = Command::new("openssl")
        .args(["rsa", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&public)
        .output()
        .unwrap()
        .status
        .success();
    assert!(ok, "openssl rsa -pubout");
    (key, std::fs::read_to_string(public).unwrap())
}

fn app_forge(
    ttl: Duration,
    installation_id: Option<u64>,
) -> (tempfile::TempDir, FakeForge, Forges) {
    let dir = tempfile::tempdir().unwrap();
    let (key, public) = key_pair(dir.path(), "app");
    let fake = FakeForge::start(ForgeKind::Github, Tokens::new());
    fake.enable_github_app(FakeApp {
        app_id: "4242".into(),
        public_key_pem: public,
        installation_id: 77,
        token_ttl: ttl,
        repos: vec!["acme/widgets".into()],
    });
    let spec = CredentialSpec::GithubApp {
        app_id: "4242".into(),
        key_path: key,
        installation_id,
    };
    let forges = Forges::new(vec![settings(&fake, spec)], cmd_env());
    (dir, fake, forges)
}

#[tokio::test]
async fn an_app_installation_token_is_minted_and_refreshed_before_it_expires() {
    // 5 min + 2 s: drover fetches a new one after about 2 s, while the old is still valid.
    let (_dir, fake, forges) = app_forge(Duration::from_secs(302), None);
    let repo = forges.resolve("acme/widgets").unwrap().unwrap();
    let entry = forges.get(&repo.forge).unwrap();
    let (pr, _) = entry
        .api
        .ensure_pr(&repo, &pr_request("drover/t-1", false))
        .await
        .unwrap();
    let minted = fake.minted_tokens();
    assert_eq!(minted.len(), 1);
    assert!(fake.tokens().seen().contains(&minted[0]));
    let paths: Vec<String> = fake.requests().into_iter().map(|r| r.1).collect();
    assert!(paths.contains(&"/repos/acme/widgets/installation".to_string()));
    assert!(paths.contains(&"/app/installations/77/access_tokens".to_string()));
    // The git proxy's view: the same token, now without naming the repository.
    assert_eq!(entry.credential.token().await.unwrap().expose(), minted[0]);

    let mut n = 0u32;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while fake.minted_tokens().len() < 2 {
        assert!(std::time::Instant::now() < deadline, "no second token");
        n += 1;
        entry
            .api
            .comment(&repo, pr.number, &format!("ping {n}"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let minted = fake.minted_tokens();
    // Refreshed early: the first token had minutes left (the fake still accepts it).
    assert_eq!(
        fake.tokens().check(&minted[0]),
        drover_test_support::forge_tokens::TokenCheck::Valid(
            drover_test_support::forge_tokens::Scopes::ALL
        )
    );
    assert_eq!(
        fake.requests()
            .iter()
            .filter(|r| r.1.ends_with("/installation"))
            .count(),
        1,
        "the installation is looked up once"
    );
    assert!(fake.tokens().seen().contains(&minted[1]));
}

#[tokio::test]
async fn a_configured_installation_is_not_looked_up() {
    let (_dir, fake, forges) = app_forge(Duration::from_secs(3600), Some(77));
    let entry = forges.get("test-github").unwrap();
    let token = entry.credential.token().await.unwrap();
    assert_eq!(fake.minted_tokens(), vec![token.expose().to_string()]);
    assert!(fake
        .requests()
        .iter()
        .all(|r| !r.1.ends_with("/installation")));
}

#[tokio::test]
async fn a_wrong_app_key_or_a_repository_without_the_app_is_a_clear_credential_error() {
    let (dir, fake, _forges) = app_forge(Duration::from_secs(3600), None);
    let (other_key, _) = key_pair(dir.path(), "other");
    let spec = CredentialSpec::GithubApp {
        app_id: "4242".into(),
        key_path: other_key,
        installation_id: Some(77),
    };
    let forges = Forges::new(vec![settings(&fake, spec)], cmd_env());
    let e = forges
        .get("test-github")
        .unwrap()
        .credential
        .token()
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ForgeError::Credential { reason, .. } if reason.contains("app_key")),
        "{e:?}"
    );
    assert!(fake.minted_tokens().is_empty());

    let (_dir2, fake, forges) = app_forge(Duration::from_secs(3600), None);
    let stranger = forges.resolve("acme/elsewhere").unwrap().unwrap();
    let e = forges
        .get("test-github")
        .unwrap()
        .api
        .find_pr(&stranger, "drover/x")
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ForgeError::Credential { reason, .. } if reason.contains("installed")),
        "{e:?}"
    );
    assert!(fake.minted_tokens().is_empty());

    let missing = CredentialSpec::GithubApp {
        app_id: "4242".into(),
        key_path: dir.path().join("absent.pem"),
        installation_id: Some(77),
    };
    let forges = Forges::new(vec![settings(&fake, missing)], cmd_env());
    let e = forges
        .get("test-github")
        .unwrap()
        .credential
        .token()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cannot read app_key"), "{e}");
}
