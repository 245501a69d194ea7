//! Pull requests (docs/design.md §9): `--pr` on each of the five forge kinds opens exactly one
//! PR for the task's branch (even when asked twice), CI-configuration changes open a draft
//! marked needs-approval (not with `--allow-ci-changes`), a token without the PR permission
//! fails the task with `git_error` naming it, and `--pr` off a forge is refused.
//!
//! Real git (`GitServer`: `git http-backend` behind a token check), real daemon and agent
//! processes; the forge's REST API is the fake (`FakeForge`), sharing the git server's tokens.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;

use drover_forge::ForgeKind;
use drover_test_support::fake_forge::FakeForge;
use drover_test_support::forge_tokens::{Scopes, Tokens};
use drover_test_support::git_server::GitServer;
use serde_json::Value;

const TOKEN: &str = "forge-token-7f3a9c";

/// One forge of `kind` (git server + fake REST API on one token table) configured as the
/// daemon's default forge `k`, with one repository.
struct Forge {
    env: Env,
    server: GitServer,
    fake: FakeForge,
    tokens: Tokens,
    /// The repository's path on the forge (`owner/name`; Bitbucket DC `PROJ/repo`).
    path: &'static str,
    /// Its directory on the git server (Bitbucket DC clones from `scm/PROJ/repo`).
    disk: &'static str,
}

fn forge(kind: ForgeKind, scopes: Scopes) -> Forge {
    let tokens = Tokens::new();
    tokens.grant(TOKEN, scopes, None);
    let server = GitServer::start(tokens.clone());
    let (path, disk) = match kind {
        ForgeKind::BitbucketDc => ("PROJ/app", "scm/PROJ/app"),
        _ => ("acme/app", "acme/app"),
    };
    server.create_repo(disk);
    let fake = FakeForge::start(kind, tokens.clone());
    let env = Env::new().with_env("DROVER_TEST_FORGE_TOKEN", TOKEN);
    std::fs::create_dir_all(&env.home).unwrap();
    std::fs::write(
        env.home.join("config.toml"),
        format!(
            "[forges.k]\nkind = \"{}\"\napi = \"{}\"\ngit = \"{}\"\ntoken_env = \"DROVER_TEST_FORGE_TOKEN\"\ndefault = true\n",
            kind.as_str(),
            fake.api_url(),
            server.url()
        ),
    )
    .unwrap();
    Forge {
        env,
        server,
        fake,
        tokens,
        path,
        disk,
    }
}

impl Forge {
    /// `drover run --repo PATH --agent command --cmd CMD <extra…> PROMPT`, waited for.
    fn run(&self, cmd: &str, extra: &[&str]) -> Value {
        let mut args = vec![
            "run", "--repo", self.path, "--agent", "command", "--cmd", cmd,
        ];
        args.extend_from_slice(extra);
        args.push("Add a greeting\n\nand more words");
        let id = self.env.ok(&args);
        self.env.wait(&id)
    }
}

/// The whole flow on one kind: one PR for `drover/<id>`, recorded and shown, although the
/// forge's answer to the create was lost (drover asks again and finds it).
fn one_pr_even_asked_twice(kind: ForgeKind) {
    let f = forge(kind, Scopes::ALL);
    f.fake.lose_next_create_answer();
    let t = f.run("echo hello > hello.txt", &["--pr", "--name", "Greeting"]);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    let id = t["id"].as_str().unwrap();
    let branch = format!("drover/{id}");
    let prs = f.fake.prs(f.path);
    assert_eq!(prs.len(), 1, "{kind:?}: {prs:#?}");
    let pr = &prs[0];
    assert_eq!(pr.head, branch);
    assert_eq!(pr.base, "main");
    assert_eq!(pr.title, "Greeting");
    assert!(!pr.draft);
    assert!(
        pr.body.contains(id) && pr.body.contains("opened by drover"),
        "{}",
        pr.body
    );
    let creates = f
        .fake
        .requests()
        .into_iter()
        .filter(|(m, _, _)| m == "POST")
        .filter(|(_, p, _)| !p.contains("comment") && !p.contains("access_tokens"))
        .count();
    assert_eq!(creates, 1, "{kind:?}: {:#?}", f.fake.requests());
    // Recorded on the task: `prs`, a `pr` event, and `show`'s line.
    let recorded = t["prs"].as_array().unwrap();
    assert_eq!(recorded.len(), 1, "{t:#}");
    assert_eq!(recorded[0]["number"], pr.number);
    assert_eq!(recorded[0]["state"], "open");
    assert_eq!(recorded[0]["repo"], t["repo"]);
    let url = recorded[0]["url"].as_str().unwrap();
    assert!(url.starts_with("http"), "{url}");
    let evs = f.env.events(id);
    let pr_events: Vec<&Value> = evs.iter().filter(|e| e["kind"] == "pr").collect();
    assert_eq!(pr_events.len(), 1, "{evs:#?}");
    assert_eq!(pr_events[0]["data"]["url"], url);
    let shown = f.env.ok(&["show", id]);
    assert!(
        shown.contains(&format!("{url} (#{}, open)", pr.number)),
        "{shown}"
    );
    // The branch is on the forge (pushed by drover) and no token reached the task's record.
    assert_eq!(
        f.server.branch(f.disk, &branch).as_deref(),
        t["commit"].as_str()
    );
    assert!(!f.env.ok(&["show", id, "--json"]).contains(TOKEN));
    assert!(!f.env.ok(&["logs", id, "--json"]).contains(TOKEN));
}

#[test]
fn github_one_pr_even_asked_twice() {
    one_pr_even_asked_twice(ForgeKind::Github);
}

#[test]
fn gitlab_one_pr_even_asked_twice() {
    one_pr_even_asked_twice(ForgeKind::Gitlab);
}

#[test]
fn bitbucket_cloud_one_pr_even_asked_twice() {
    one_pr_even_asked_twice(ForgeKind::BitbucketCloud);
}

#[test]
fn bitbucket_dc_one_pr_even_asked_twice() {
    one_pr_even_asked_twice(ForgeKind::BitbucketDc);
}

#[test]
fn gitea_one_pr_even_asked_twice() {
    one_pr_even_asked_twice(ForgeKind::Gitea);
}

/// A workflow change: a draft whose body starts with the needs-approval note naming the file;
/// with `--allow-ci-changes` a normal PR; `--draft`, `--base` and `--pr-title` are honoured.
#[test]
fn ci_changes_open_a_draft_needing_approval_unless_allowed() {
    let f = forge(ForgeKind::Github, Scopes::ALL);
    let ci = "mkdir -p .github/workflows && echo 'on: push' > .github/workflows/x.yml";
    let t = f.run(ci, &["--pr"]);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    let prs = f.fake.prs(f.path);
    assert_eq!(prs.len(), 1);
    assert!(prs[0].draft, "{:#?}", prs[0]);
    assert!(
        prs[0].body.starts_with("> **needs-approval**"),
        "{}",
        prs[0].body
    );
    assert!(prs[0].body.contains("`.github/workflows/x.yml`"));
    assert_eq!(prs[0].title, "Add a greeting");
    assert_eq!(t["prs"][0]["state"], "draft", "{t:#}");

    let t = f.run(ci, &["--pr", "--allow-ci-changes"]);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    let prs = f.fake.prs(f.path);
    assert_eq!(prs.len(), 2);
    assert!(!prs[1].draft, "{:#?}", prs[1]);
    assert!(!prs[1].body.contains("needs-approval"));

    // An agent hiding workflows behind a symlink: still CI configuration.
    let t = f.run(
        "mkdir -p ci/workflows && echo 'on: push' > ci/workflows/x.yml && ln -s ci .github",
        &["--pr"],
    );
    assert_eq!(t["state"], "succeeded", "{t:#}");
    let prs = f.fake.prs(f.path);
    assert_eq!(prs.len(), 3);
    assert!(prs[2].draft, "{:#?}", prs[2]);
    assert!(prs[2].body.contains("`.github`"), "{}", prs[2].body);

    // A branch of its own as base, a title and a draft asked for.
    let work = f.env.tmp.path().join("w");
    git(
        f.env.tmp.path(),
        &[
            "clone",
            "-q",
            f.server.repo_dir(f.path).to_str().unwrap(),
            work.to_str().unwrap(),
        ],
    );
    git(
        &work,
        &[
            "push",
            "-q",
            f.server.repo_dir(f.path).to_str().unwrap(),
            "HEAD:refs/heads/release",
        ],
    );
    // `run --wait` prints the final message, then the PR.
    let out = f.env.ok(&[
        "run",
        "--repo",
        f.path,
        "--agent",
        "command",
        "--cmd",
        "echo x > x.txt; echo done",
        "--pr",
        "--draft",
        "--ref",
        "release",
        "--pr-title",
        "T",
        "--wait",
        "p",
    ]);
    let prs = f.fake.prs(f.path);
    assert_eq!(prs.len(), 4);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0], "done");
    assert!(
        lines[1].starts_with("pr: http")
            && lines[1].ends_with(&format!(" (#{}, draft)", prs[3].number)),
        "{out}"
    );
    assert_eq!(
        (prs[3].base.as_str(), prs[3].title.as_str()),
        ("release", "T")
    );
    assert!(prs[3].draft);
    assert!(!prs[3].body.contains("needs-approval"));
}

/// A token that may push but not open PRs: the task fails with `git_error`, one line naming
/// the forge, the repository and the permission; the pushed branch stays.
#[test]
fn a_token_without_the_pr_permission_is_a_git_error_naming_it() {
    let f = forge(
        ForgeKind::Github,
        Scopes {
            read: true,
            write: true,
            pull_requests: false,
        },
    );
    let t = f.run("echo hello > hello.txt", &["--pr"]);
    assert_eq!(t["state"], "failed", "{t:#}");
    assert_eq!(t["outcome"]["error_kind"], "git_error", "{t:#}");
    let reason = t["outcome"]["reason"].as_str().unwrap();
    assert!(!reason.contains('\n') && !reason.contains('{'), "{reason}");
    assert!(reason.contains("cannot open the pull request"), "{reason}");
    assert!(reason.contains("k:") && reason.contains(f.path), "{reason}");
    assert!(reason.contains("Pull requests: write"), "{reason}");
    assert!(f.fake.prs(f.path).is_empty());
    assert!(t["prs"].as_array().unwrap().is_empty());
    let id = t["id"].as_str().unwrap();
    assert!(f.server.branch(f.disk, &format!("drover/{id}")).is_some());
    assert!(f.tokens.seen().iter().all(|s| s == TOKEN));
}

/// `--pr` on a local repository (no forge): exit 2 and the one line, nothing created; the API
/// says 422 `invalid_field`; `--draft` without `--pr` is a usage error.
#[test]
fn pr_off_a_forge_is_refused() {
    let env = Env::new();
    let out = env.run(&["run", "--pr", "--agent", "command", "--cmd", "true", "x"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "--pr needs a repository on a configured forge ([forges.NAME] in config.toml)"
        ) && err.contains("is not on one"),
        "{err}"
    );
    assert!(env
        .json(&["ls", "--all", "--json"])
        .as_array()
        .unwrap()
        .is_empty());
    let out = env.run(&[
        "pool", "start", "p", "--slots", "1", "--prompt", "x", "--agent", "command", "--cmd",
        "true", "--pr",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let body = serde_json::json!({
        "repo": env.repo.to_str().unwrap(),
        "task": "x",
        "agent": "command",
        "cmd": "true",
        "pr": true,
    });
    let (status, answer) = api_json(&env, "POST", "/v1/tasks", &body.to_string());
    assert_eq!(status, 422, "{answer}");
    let v: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(v["kind"], "invalid_field", "{v}");
    let out = env.run(&["run", "--draft", "--agent", "command", "--cmd", "true", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--pr"));
}

/// A pool started with `--pr --draft` gives the options to every task it launches: each opens
/// its own draft PR.
#[test]
fn a_pools_tasks_open_their_prs() {
    let f = forge(ForgeKind::Gitlab, Scopes::ALL);
    f.env.ok(&[
        "pool",
        "start",
        "p",
        "--slots",
        "1",
        "--count",
        "2",
        "--repo",
        f.path,
        "--agent",
        "command",
        "--cmd",
        "echo hi > hi.txt",
        "--prompt",
        "Pool change {n}",
        "--pr",
        "--draft",
    ]);
    let tasks = drover_test_support::poll::until(
        "the pool's two tasks to end",
        std::time::Duration::from_secs(120),
        std::time::Duration::from_millis(100),
        || f.env.json(&["ls", "--all", "--json"]),
        |v| {
            let ts = v.as_array().unwrap();
            ts.len() == 2 && ts.iter().all(|t| t["finished_at"].is_string())
        },
    );
    let prs = f.fake.prs(f.path);
    assert_eq!(prs.len(), 2, "{prs:#?}");
    for t in tasks.as_array().unwrap() {
        let id = t["id"].as_str().unwrap();
        let t = f.env.show(id);
        assert_eq!(t["state"], "succeeded", "{t:#}");
        assert_eq!(t["pr"]["draft"], true, "{t:#}");
        let pr = prs
            .iter()
            .find(|p| p.head == format!("drover/{id}"))
            .unwrap_or_else(|| panic!("no PR for {id}: {prs:#?}"));
        assert!(pr.draft);
        // A pool's task is named `POOL-N`: the title; the prompt is in the body.
        assert_eq!(Some(pr.title.as_str()), t["name"].as_str());
        assert!(pr.body.contains("> Pool change "), "{}", pr.body);
        assert_eq!(t["prs"][0]["number"], pr.number);
    }
}
