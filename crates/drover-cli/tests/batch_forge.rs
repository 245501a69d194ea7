//! The "3-repo batch with 3 PRs": a batch of three `owner/name` repositories on a
//! configured GitHub forge (a real `git http-backend` behind a token check + the fake GitHub
//! REST API) with `--pr`: each task pushes its own `drover/<id>` and opens one PR, and
//! `batch show` lists each repository with its PR.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use drover_forge::ForgeKind;
use drover_test_support::fake_forge::FakeForge;
use drover_test_support::forge_tokens::{Scopes, Tokens};
use drover_test_support::git_server::GitServer;

const TOKEN: &str = "ghp_batch_test_token_0123456789";

#[test]
#[ignore = "needs gitproxy (clones through the daemon's proxy) and prflow (--pr) on main"]
fn a_three_repo_batch_opens_three_prs() {
    // The Env (its repo, its user's git config) before the servers: their repos are made with
    // `git::hermetic`, which points this process's git at no global config; drover's own
    // processes get the test user's back.
    let env = Env::new();
    let gitconfig = env.user_home.join(".gitconfig").display().to_string();
    let env = env
        .with_env("GH_TOKEN", TOKEN)
        .with_env("GIT_CONFIG_GLOBAL", &gitconfig);
    let tokens = Tokens::new();
    tokens.grant(TOKEN, Scopes::ALL, None);
    let git = GitServer::start(tokens.clone());
    let api = FakeForge::start(ForgeKind::Github, tokens);
    let names = ["acme/api", "acme/web", "acme/cli"];
    for n in names {
        git.create_repo(n);
    }
    std::fs::create_dir_all(&env.home).unwrap();
    std::fs::write(
        env.home.join("config.toml"),
        format!(
            "[forges.gh]\nkind = \"github\"\napi = \"{}\"\ngit = \"{}\"\ntoken_env = \"GH_TOKEN\"\ndefault = true\n",
            api.api_url(),
            git.url()
        ),
    )
    .unwrap();
    env.ok(&["daemon", "--slots", "3"]);
    let mut args = vec!["batch", "start", "bump", "--agent", "command"];
    args.extend(["--cmd", "echo bumped > DEPS; echo done"]);
    for n in names {
        args.extend(["--repo", n]);
    }
    args.extend([
        "--pr",
        "--pr-title",
        "Bump deps",
        "--prompt",
        "bump the deps",
    ]);
    let ids: Vec<String> = env.ok(&args).lines().map(str::to_string).collect();
    assert_eq!(ids.len(), 3);
    for (id, n) in ids.iter().zip(names) {
        let t = env.wait(id);
        assert_eq!(t["state"], "succeeded", "{t:#}");
        assert_eq!(t["repo"], git.repo_url(n), "stored as the clone URL");
        // Pushed: the task's branch on the forge holds the work.
        let branch = format!("drover/{id}");
        assert!(git.branch(n, &branch).is_some(), "{n}: {branch} not pushed");
        let prs = api.prs(n);
        assert_eq!(prs.len(), 1, "{n}: {prs:?}");
        assert_eq!(prs[0].head, branch);
        assert_eq!(prs[0].title, "Bump deps");
    }
    let v = env.json(&["batch", "show", "bump", "--json"]);
    assert_eq!(v["succeeded"], 3, "{v:#}");
    for (i, n) in names.iter().enumerate() {
        let row = &v["repos"][i];
        assert_eq!(row["repo"], git.repo_url(n));
        assert_eq!(row["task"], ids[i].as_str());
        assert_eq!(row["pr"]["number"], api.prs(n)[0].number, "{row:#}");
        assert!(row["pr"]["url"].as_str().unwrap().contains(n), "{row:#}");
    }
    let text = env.ok(&["batch", "show", "bump"]);
    for n in names {
        let line = text.lines().find(|l| l.contains(n)).unwrap();
        assert!(line.contains("open") || line.contains("draft"), "{line}");
    }
    // The token is nowhere a user or an agent sees.
    assert!(!text.contains(TOKEN) && !v.to_string().contains(TOKEN));
}
