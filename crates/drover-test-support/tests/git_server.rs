//! The test git server: a plain `git clone` / `push` with a token works through the real
//! `git http-backend`; a bad, expired or read-only token is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use drover_test_support::forge_tokens::{Scopes, Tokens};
use drover_test_support::git::{commit_all, git, hermetic};
use drover_test_support::git_server::GitServer;

fn authed(url: &str, token: &str) -> String {
    url.replacen("http://", &format!("http://x-access-token:{token}@"), 1)
}

fn git_fails(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .unwrap();
    assert!(!out.status.success(), "git {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn clone_and_push_with_a_token_bad_tokens_refused() {
    hermetic();
    std::env::set_var("GIT_TERMINAL_PROMPT", "0");
    let tokens = Tokens::new();
    tokens.grant("good", Scopes::ALL, None);
    tokens.grant("ro", Scopes::READ_ONLY, None);
    tokens.grant("old", Scopes::ALL, None);
    tokens.expire("old");
    let server = GitServer::start(tokens.clone());
    server.create_repo("acme/app");
    let url = server.repo_url("acme/app");
    let tmp = tempfile::tempdir().unwrap();

    // Clone and push with the good token.
    let work = tmp.path().join("w");
    git(
        tmp.path(),
        &["clone", "-q", &authed(&url, "good"), work.to_str().unwrap()],
    );
    assert_eq!(
        std::fs::read_to_string(work.join("README")).unwrap(),
        "acme/app\n"
    );
    std::fs::write(work.join("f"), "x").unwrap();
    commit_all(&work, "f");
    git(&work, &["push", "-q", "origin", "HEAD:refs/heads/feature"]);
    let head = git(&work, &["rev-parse", "HEAD"]);
    assert_eq!(server.branch("acme/app", "feature"), Some(head));
    assert!(server.upload_packs("acme/app") >= 1);
    assert!(server
        .requests()
        .iter()
        .any(|r| r.path.ends_with("/git-receive-pack") && r.status == 200));

    // No token, an unknown one and an expired one: 401, git fails (no prompt).
    for t in [None, Some("nope"), Some("old")] {
        let u = t.map(|t| authed(&url, t)).unwrap_or(url.clone());
        let err = git_fails(tmp.path(), &["ls-remote", &u]);
        assert!(
            err.contains("Authentication failed")
                || err.contains("terminal prompts disabled")
                || err.contains("could not read Username"),
            "{err}"
        );
    }
    assert!(server
        .requests()
        .iter()
        .any(|r| r.status == 401 && r.token.as_deref() == Some("old")));

    // Read-only: clone works, push is 403.
    let ro = tmp.path().join("ro");
    git(
        tmp.path(),
        &["clone", "-q", &authed(&url, "ro"), ro.to_str().unwrap()],
    );
    let err = git_fails(&ro, &["push", "origin", "HEAD:refs/heads/other"]);
    assert!(err.contains("403"), "{err}");
    assert_eq!(server.branch("acme/app", "other"), None);
    assert!(tokens.seen().contains(&"ro".to_string()));
}
