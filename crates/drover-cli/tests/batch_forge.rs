//! The "3-repo batch with 3 PRs": a batch of three `owner/name` repositories on a
//! configured GitHub forge (a real `git http-backend` behind a token check + the fake GitHub
//! REST API) with `--pr`: each task pushes its own `drover/<id>` and opens one PR, and
//! `batch show` lists each repository with its PR (without `--pr`: the branches only).
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use drover_forge::ForgeKind;
use drover_test_support::fake_forge::FakeForge;
use drover_test_support::forge_tokens::{Scopes, Tokens};
use drover_test_support::git_server::GitServer;

const TOKEN: &str = "ghp_batch_test_token_0123456789";

/// A GitHub forge (git server + fake API) holding `acme/api`, `acme/web`, `acme/cli`, and a
/// drover whose default forge it is; the daemon started.
struct Forge {
    env: Env,
    git: GitServer,
    api: FakeForge,
}

const NAMES: [&str; 3] = ["acme/api", "acme/web", "acme/cli"];

fn forge() -> Forge {
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
    for n in NAMES {
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
    Forge { env, git, api }
}

/// `batch start NAME --repo acme/… ×3 [extra…]`: the task ids, each waited for and succeeded,
/// stored as its clone URL, its `drover/<id>` pushed to the forge.
fn run_batch(f: &Forge, name: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["batch", "start", name, "--agent", "command"];
    args.extend(["--cmd", "echo bumped > DEPS; echo done"]);
    for n in NAMES {
        args.extend(["--repo", n]);
    }
    args.extend(extra);
    args.extend(["--prompt", "bump the deps"]);
    let ids: Vec<String> = f.env.ok(&args).lines().map(str::to_string).collect();
    assert_eq!(ids.len(), 3);
    for (id, n) in ids.iter().zip(NAMES) {
        let t = f.env.wait(id);
        assert_eq!(t["state"], "succeeded", "{t:#}");
        assert_eq!(t["repo"], f.git.repo_url(n), "stored as the clone URL");
        let branch = format!("drover/{id}");
        assert_eq!(
            f.git.branch(n, &branch).as_deref(),
            t["commit"].as_str(),
            "{n}: {branch} pushed with the task's commit"
        );
    }
    ids
}

/// Without `--pr`: each of the three tasks pushes its own branch; no PR is opened.
#[test]
fn a_three_repo_batch_on_a_forge_pushes_three_branches() {
    let f = forge();
    let ids = run_batch(&f, "push", &[]);
    for n in NAMES {
        assert!(f.api.prs(n).is_empty(), "{n}: a PR without --pr");
    }
    let v = f.env.json(&["batch", "show", "push", "--json"]);
    assert_eq!(v["succeeded"], 3, "{v:#}");
    for (i, n) in NAMES.iter().enumerate() {
        assert_eq!(v["repos"][i]["repo"], f.git.repo_url(n));
        assert_eq!(v["repos"][i]["task"], ids[i].as_str());
        assert!(v["repos"][i]["pr"].is_null());
    }
    assert!(!v.to_string().contains(TOKEN));
}

/// The "3-repo batch with 3 PRs".
#[test]
fn a_three_repo_batch_opens_three_prs() {
    let f = forge();
    let ids = run_batch(&f, "bump", &["--pr", "--pr-title", "Bump deps"]);
    for (id, n) in ids.iter().zip(NAMES) {
        let prs = f.api.prs(n);
        assert_eq!(prs.len(), 1, "{n}: {prs:?}");
        assert_eq!(prs[0].head, format!("drover/{id}"));
        assert_eq!(prs[0].title, "Bump deps");
    }
    let v = f.env.json(&["batch", "show", "bump", "--json"]);
    assert_eq!(v["succeeded"], 3, "{v:#}");
    for (i, n) in NAMES.iter().enumerate() {
        let row = &v["repos"][i];
        assert_eq!(row["repo"], f.git.repo_url(n));
        assert_eq!(row["task"], ids[i].as_str());
        assert_eq!(row["pr"]["number"], f.api.prs(n)[0].number, "{row:#}");
        assert!(row["pr"]["url"].as_str().unwrap().contains(n), "{row:#}");
    }
    let text = f.env.ok(&["batch", "show", "bump"]);
    for n in NAMES {
        let line = text.lines().find(|l| l.contains(n)).unwrap();
        assert!(
            line.contains("(open)") || line.contains("(draft)"),
            "{line}"
        );
    }
    // The token is nowhere a user sees.
    assert!(!text.contains(TOKEN) && !v.to_string().contains(TOKEN));
}
