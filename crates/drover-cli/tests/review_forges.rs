//! Review of the forges layer as an attacker who controls the agent: what drover's git proxy
//! lets a task's shell do beyond pushing `drover/<id>`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;
use common::*;

use drover_test_support::forge_tokens::{Scopes, Tokens};
use drover_test_support::git_server::GitServer;

const REPO: &str = "acme/app";

/// A daemon with `[forges.t]` (git = a real `git http-backend` server), `acme/app` on it.
fn forge(token: &str) -> (Env, GitServer) {
    let env = Env::new();
    let tokens = Tokens::new();
    tokens.grant(token, Scopes::ALL, None);
    let server = GitServer::start(tokens);
    server.create_repo(REPO);
    let token_file = env.tmp.path().join("forge-token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    std::fs::create_dir_all(&env.home).unwrap();
    std::fs::write(
        env.home.join("config.toml"),
        format!(
            "[forges.t]\nkind = \"gitlab\"\napi = \"http://127.0.0.1:9/api\"\ngit = \"{}\"\ntoken_cmd = \"cat {}\"\ndefault = true\n",
            server.url(),
            token_file.display()
        ),
    )
    .unwrap();
    env.ok(&["daemon", "--slots", "2"]);
    (env, server)
}

/// Push options are acted on by the forge (GitLab: `merge_request.create`,
/// `merge_request.target=main`, `merge_request.merge_when_pipeline_succeeds`, `ci.skip`): a
/// task pushing its own branch with `-o` would open (and auto-merge) a merge request drover
/// never reviewed. The proxy refuses the push; the forge never sees an option.
#[test]
fn a_push_with_push_options_is_refused() {
    let (env, server) = forge("tok-opts");
    let bare = server.repo_dir(REPO);
    git(&bare, &["config", "receive.advertisePushOptions", "true"]);
    let seen = env.tmp.path().join("push-options-seen");
    let hook = bare.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\necho \"${{GIT_PUSH_OPTION_COUNT:-none}} ${{GIT_PUSH_OPTION_0:-}}\" >> {}\n",
            seen.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let id = env.ok(&[
        "run",
        "--repo",
        &server.repo_url(REPO),
        "--agent",
        "command",
        "--cmd",
        "echo work > work.txt; git add work.txt; \
         git -c user.name=a -c user.email=a@a commit -qm work; \
         git push -o merge_request.create -o merge_request.target=main \
           -o merge_request.merge_when_pipeline_succeeds \
           origin HEAD:drover/$DROVER_TASK_ID > opts.txt 2>&1; echo \"exit $?\" >> opts.txt",
        "push options",
    ]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    let out = git(&bare, &["show", &format!("drover/{id}:opts.txt")]);
    assert!(
        out.contains("! [remote rejected] HEAD -> drover/")
            && out.contains("(drover: push options (git push -o) are not relayed)"),
        "{out}"
    );
    assert!(
        out.contains("remote: drover: push options (git push -o) are not relayed"),
        "{out}"
    );
    assert!(out.ends_with("exit 1"), "{out}");
    // The forge saw only the end-of-task push, without options.
    let seen = std::fs::read_to_string(&seen).unwrap_or_default();
    assert!(!seen.contains("merge_request"), "{seen}");
}
