//! Multi-repo tasks (docs/design.md §9): `drover run --repo A --repo B …` runs one agent in a
//! workspace holding a checkout per repository; each repository gets its own `drover/<id>`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A second (third, …) repository beside the test's own, at `tmp/<rel>`, with one commit.
fn other_repo(env: &Env, rel: &str) -> PathBuf {
    let dir = env.tmp.path().join(rel);
    std::fs::create_dir_all(&dir).unwrap();
    let g = |args: &[&str]| {
        drover_test_support::git::git_env(&dir, args, &[("HOME", env.user_home.as_os_str())])
    };
    g(&["init", "-q"]);
    std::fs::write(dir.join("README.md"), format!("{rel}\n")).unwrap();
    g(&["add", "-A"]);
    g(&["commit", "-qm", "init"]);
    dir
}

fn git_in(env: &Env, dir: &Path, args: &[&str]) -> String {
    drover_test_support::git::git_env(dir, args, &[("HOME", env.user_home.as_os_str())])
}

fn files_of(env: &Env, dir: &Path, branch: &str) -> Vec<String> {
    git_in(env, dir, &["ls-tree", "-r", "--name-only", branch])
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn one_session_two_repositories_a_branch_and_a_commit_each() {
    let env = Env::new();
    let a = other_repo(&env, "a");
    let b = other_repo(&env, "b");
    let (a_s, b_s) = (a.to_str().unwrap(), b.to_str().unwrap());
    // From the workspace: a file in each checkout; in b the agent commits itself (its .git
    // works inside the jail); a file at the workspace's top belongs to no repository.
    let cmd = "echo x > a/f; echo y > b/f; echo top > top.txt; \
               cd b && git add f && git -c user.name=agent -c user.email=agent@x commit -qm 'agent commit' && cd .. && \
               git -C a status --porcelain && echo done";
    let id = env.ok(&[
        "run",
        "--repo",
        a_s,
        "--repo",
        b_s,
        "--agent",
        "command",
        "--cmd",
        cmd,
        "two repos",
    ]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    assert_eq!(t["isolation"], "full", "the task ran unconfined: {t:#}");
    assert_eq!(t["repo"], a_s);
    let branch = format!("drover/{id}");
    let repos = t["repos"].as_array().unwrap();
    assert_eq!(repos.len(), 2, "{t:#}");
    for (r, dir, name, content) in [(&repos[0], &a, "a", "x"), (&repos[1], &b, "b", "y")] {
        assert_eq!(r["repo"], dir.to_str().unwrap());
        assert_eq!(r["dir"], name);
        assert_eq!(r["branch"], branch);
        let head = git_in(&env, dir, &["rev-parse", &branch]);
        assert_eq!(r["commit"], head, "{t:#}");
        assert_eq!(
            git_in(&env, dir, &["show", &format!("{branch}:f")]),
            content
        );
        let files = files_of(&env, dir, &branch);
        assert_eq!(files, ["README.md", "f"], "{name}: {files:?}");
        // The user's checkout is untouched.
        assert!(!dir.join("f").exists());
    }
    assert_eq!(t["commit"], repos[0]["commit"]);
    // b holds the agent's own commit (drover had nothing left to commit there).
    assert_eq!(
        git_in(&env, &b, &["log", "-1", "--format=%s", &branch]),
        "agent commit"
    );
    assert!(git_in(&env, &a, &["log", "-1", "--format=%s", &branch]).starts_with("drover:"));
    // The workspace is gone; the file at its top was in no repository.
    assert!(t["sandbox"].is_null(), "{t:#}");
    assert!(!env.home.join("sandboxes").join(&id).exists());
    // show: one line per repository.
    let text = env.ok(&["show", &id]);
    let short_a = &repos[0]["commit"].as_str().unwrap()[..12];
    let short_b = &repos[1]["commit"].as_str().unwrap()[..12];
    assert!(
        text.contains(&format!("a/ {a_s} @ HEAD  {branch}  {short_a}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("b/ {b_s} @ HEAD  {branch}  {short_b}")),
        "{text}"
    );
}

#[test]
fn a_restarted_daemon_re_adopts_a_workspace_task_and_same_named_repos_get_distinct_checkouts() {
    let env = Env::new();
    let one = other_repo(&env, "x/api");
    let two = other_repo(&env, "y/api");
    let cmd = "while [ ! -e go ]; do sleep 0.02; done; ls > seen.txt; \
               echo one > api/f; echo two > api-2/f; echo done";
    let id = env.ok(&[
        "run",
        "--repo",
        one.to_str().unwrap(),
        "--repo",
        two.to_str().unwrap(),
        "--agent",
        "command",
        "--cmd",
        cmd,
        "restart",
    ]);
    let t = env.until(&id, "running", |t| t["state"] == "running");
    let ws = PathBuf::from(t["sandbox"].as_str().unwrap());
    assert!(ws.join("api/.git").exists() && ws.join("api-2/.git").exists());
    let pid = t["pid"].as_i64().unwrap();
    env.kill_daemon();
    assert!(alive(pid), "killing the daemon killed the agent");
    std::fs::write(ws.join("go"), "").unwrap();
    // The next command starts a daemon, which re-adopts the agent and finishes the task.
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    let branch = format!("drover/{id}");
    for (dir, content) in [(&one, "one"), (&two, "two")] {
        assert_eq!(
            git_in(&env, dir, &["show", &format!("{branch}:f")]),
            content
        );
    }
    let dirs: Vec<&str> = t["repos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["dir"].as_str().unwrap())
        .collect();
    assert_eq!(dirs, ["api", "api-2"]);
    assert!(!env.home.join("sandboxes").join(&id).exists());
}

fn no_task_and_no_sandbox(env: &Env) {
    let tasks: Value = env.json(&["ls", "--all", "--json"]);
    assert_eq!(tasks.as_array().map(Vec::len), Some(0), "{tasks:#}");
    let left: Vec<_> = std::fs::read_dir(env.home.join("sandboxes"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_bad_second_repository_is_refused_naming_it_and_nothing_is_created() {
    let env = Env::new();
    env.ok(&["daemon"]);
    let good = env.repo.to_str().unwrap().to_string();
    let not_git = env.tmp.path().join("plain");
    std::fs::create_dir_all(&not_git).unwrap();
    let not_git = not_git.to_str().unwrap().to_string();

    // The CLI: the daemon's 422 as one line naming the repository, exit 2.
    let out = env.run(&[
        "run", "--repo", &good, "--repo", &not_git, "--agent", "command", "--cmd", "true", "p",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&not_git) && err.contains("repos[1]"), "{err}");

    // The API: the same refusal; a repo that is not repos[0] (400); one repository twice;
    // more than 16.
    let body = |v: Value| v.to_string();
    let (status, text) = api_json(
        &env,
        "POST",
        "/v1/tasks",
        &body(
            serde_json::json!({"repos": [good, not_git], "task": "p", "agent": "command", "cmd": "true"}),
        ),
    );
    assert_eq!(status, 422, "{text}");
    assert!(
        text.contains("repos[1]") && text.contains(&not_git),
        "{text}"
    );
    let (status, text) = api_json(
        &env,
        "POST",
        "/v1/tasks",
        &body(
            serde_json::json!({"repo": not_git, "repos": [good, good], "task": "p", "agent": "command", "cmd": "true"}),
        ),
    );
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("repos[0]"), "{text}");
    let sub = env.repo.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    let (status, text) = api_json(
        &env,
        "POST",
        "/v1/tasks",
        &body(
            serde_json::json!({"repos": [good, sub.to_str().unwrap()], "task": "p", "agent": "command", "cmd": "true"}),
        ),
    );
    assert_eq!(status, 422, "{text}");
    assert!(text.contains("already one of the task's"), "{text}");
    let many: Vec<String> = (0..17).map(|_| good.clone()).collect();
    let (status, text) = api_json(
        &env,
        "POST",
        "/v1/tasks",
        &body(serde_json::json!({"repos": many, "task": "p", "agent": "command", "cmd": "true"})),
    );
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("at most 16"), "{text}");

    // --protect with several repositories: refused before anything is sent (and by the API).
    let b = other_repo(&env, "b");
    let out = env.run(&[
        "run",
        "--repo",
        &good,
        "--repo",
        b.to_str().unwrap(),
        "--protect",
        "*.lock",
        "--agent",
        "command",
        "--cmd",
        "true",
        "p",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--protect"), "{err}");
    let (status, text) = api_json(
        &env,
        "POST",
        "/v1/tasks",
        &body(
            serde_json::json!({"repos": [good, b.to_str().unwrap()], "protect": ["*.lock"], "task": "p", "agent": "command", "cmd": "true"}),
        ),
    );
    assert_eq!(status, 422, "{text}");
    assert!(text.contains("protected paths"), "{text}");

    no_task_and_no_sandbox(&env);
}

#[test]
fn worktree_mode_gives_each_repository_a_worktree_the_confined_agent_can_commit_in() {
    let env = Env::new();
    std::fs::create_dir_all(&env.home).unwrap();
    std::fs::write(env.home.join("config.toml"), "sandbox = \"worktree\"\n").unwrap();
    env.ok(&["daemon"]);
    let a = other_repo(&env, "a");
    let b = other_repo(&env, "b");
    let a_main = git_in(&env, &a, &["rev-parse", "HEAD"]);
    // Commits in both checkouts from inside the jail; moving a user's branch is refused.
    let cmd = "for d in a b; do (cd $d && echo $d > f && git add f && \
               git -c user.name=agent -c user.email=agent@x commit -qm \"agent $d\") || exit 9; done; \
               git -C a update-ref refs/heads/master HEAD 2>/dev/null; git -C a update-ref refs/heads/main HEAD 2>/dev/null; echo done";
    let id = env.ok(&[
        "run",
        "--repo",
        a.to_str().unwrap(),
        "--repo",
        b.to_str().unwrap(),
        "--agent",
        "command",
        "--cmd",
        cmd,
        "worktrees",
    ]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    assert_eq!(t["sandbox_kind"], "worktree", "{t:#}");
    assert_eq!(t["isolation"], "full", "{t:#}");
    let branch = format!("drover/{id}");
    for (dir, name) in [(&a, "a"), (&b, "b")] {
        assert_eq!(
            git_in(&env, dir, &["log", "-1", "--format=%s", &branch]),
            format!("agent {name}")
        );
        assert_eq!(git_in(&env, dir, &["show", &format!("{branch}:f")]), name);
    }
    // The user's own branch did not move.
    assert_eq!(git_in(&env, &a, &["rev-parse", "HEAD"]), a_main);
    assert!(!env.home.join("sandboxes").join(&id).exists());
    // No worktree is left registered in either repository.
    for dir in [&a, &b] {
        let list = git_in(&env, dir, &["worktree", "list"]);
        assert_eq!(list.lines().count(), 1, "{list}");
    }
}

#[test]
fn a_confined_workspace_agent_reaches_neither_the_users_work_trees_nor_drover() {
    let env = Env::new();
    let a = other_repo(&env, "a");
    let b = other_repo(&env, "b");
    std::fs::write(a.join("secret.txt"), "user's uncommitted file\n").unwrap();
    let (a_s, b_s) = (a.to_str().unwrap(), b.to_str().unwrap());
    let home = env.home.to_str().unwrap();
    // Each probe prints "<name>: open" if it got through.
    let cmd = format!(
        "cat {a_s}/secret.txt >/dev/null 2>&1 && echo 'work tree: open'; \
         touch {a_s}/.git/objects/planted 2>/dev/null && echo 'objects: open'; \
         touch {a_s}/.git/refs/heads/planted 2>/dev/null && echo 'refs: open'; \
         ls -A {home}/sandboxes | grep -vx \"$DROVER_TASK_ID\" | grep -q . && echo 'other sandboxes: open'; \
         ls -A {home}/sandboxes/$DROVER_TASK_ID | grep -vx ws | grep -q . && echo 'layers or sandbox.json: open'; \
         ls {home}/bases >/dev/null 2>&1 && echo 'bases: open'; \
         echo \"id=$DROVER_TASK_ID\"; echo x > a/f; echo probes done"
    );
    let id = env.ok(&[
        "run", "--repo", a_s, "--repo", b_s, "--agent", "command", "--cmd", &cmd, "probe",
    ]);
    let t = env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    assert_eq!(t["isolation"], "full", "{t:#}");
    let logs = env.ok(&["logs", &id]);
    assert!(logs.contains("probes done"), "{logs}");
    assert!(logs.contains(&format!("id={id}")), "{logs}");
    assert!(!logs.contains(": open"), "{logs}");
    assert!(!a.join(".git/objects/planted").exists());
    assert!(!a.join(".git/refs/heads/planted").exists());
    assert_eq!(git_in(&env, &a, &["show", &format!("drover/{id}:f")]), "x");
}

const FORGE_TOKEN: &str = "forge-token-multi-5e1d";

/// Two repositories (`acme/api`, `acme/web`) on one forge: real git behind `GitServer` and the
/// REST API faked by `FakeForge` (GitHub), one token table; the daemon's default forge `k`.
struct TwoOnAForge {
    env: Env,
    server: drover_test_support::git_server::GitServer,
    fake: drover_test_support::fake_forge::FakeForge,
}

fn two_on_a_forge() -> TwoOnAForge {
    use drover_forge::ForgeKind;
    use drover_test_support::fake_forge::FakeForge;
    use drover_test_support::forge_tokens::{Scopes, Tokens};
    use drover_test_support::git_server::GitServer;
    let tokens = Tokens::new();
    tokens.grant(FORGE_TOKEN, Scopes::ALL, None);
    let server = GitServer::start(tokens.clone());
    server.create_repo("acme/api");
    server.create_repo("acme/web");
    let fake = FakeForge::start(ForgeKind::Github, tokens);
    let env = Env::new().with_env("DROVER_TEST_FORGE_TOKEN", FORGE_TOKEN);
    std::fs::create_dir_all(&env.home).unwrap();
    std::fs::write(
        env.home.join("config.toml"),
        format!(
            "[forges.k]\nkind = \"github\"\napi = \"{}\"\ngit = \"{}\"\ntoken_env = \"DROVER_TEST_FORGE_TOKEN\"\ndefault = true\n",
            fake.api_url(),
            server.url()
        ),
    )
    .unwrap();
    TwoOnAForge { env, server, fake }
}

#[test]
fn two_repositories_on_a_forge_each_get_their_branch_pushed_and_their_own_origin() {
    let f = two_on_a_forge();
    let main_before = f.server.branch("acme/api", "main");
    // Each checkout's origin is its own repository through drover's proxy; a push to another
    // branch is refused with drover's line; no token anywhere the agent can read.
    let cmd = "echo one > api/f; echo two > web/f; \
               echo \"api-origin=$(git -C api remote get-url origin)\"; \
               echo \"web-origin=$(git -C web remote get-url origin)\"; \
               git -C api add f && git -C api -c user.name=a -c user.email=a@x commit -qm 'agent api'; \
               git -C api push origin HEAD:refs/heads/main 2>&1; \
               cat api/.git/config web/.git/config; env; echo done";
    let id = f.env.ok(&[
        "run",
        "--repo",
        "acme/api",
        "--repo",
        "acme/web",
        "--agent",
        "command",
        "--cmd",
        cmd,
        "Change both",
    ]);
    let t = f.env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    let logs = f.env.ok(&["logs", &id]);
    assert!(
        logs.contains(&format!("this task may push only drover/{id}")),
        "{logs}"
    );
    assert!(
        logs.contains("api-origin=http://127.0.0.1:") && logs.contains("acme/api"),
        "{logs}"
    );
    let web_origin = logs
        .lines()
        .find(|l| l.contains("web-origin="))
        .unwrap_or_default();
    assert!(web_origin.contains("acme/web"), "{logs}");
    assert!(
        !logs.contains(FORGE_TOKEN),
        "a token reached the sandbox: {logs}"
    );
    let branch = format!("drover/{id}");
    let repos = t["repos"].as_array().unwrap();
    for (i, path) in ["acme/api", "acme/web"].iter().enumerate() {
        assert_eq!(repos[i]["repo"], f.server.repo_url(path), "{t:#}");
        assert_eq!(
            f.server.branch(path, &branch).as_deref(),
            repos[i]["commit"].as_str(),
            "{path}: {t:#}"
        );
    }
    assert_eq!(f.server.branch("acme/api", "main"), main_before);
    assert!(!f.env.ok(&["show", &id, "--json"]).contains(FORGE_TOKEN));
    assert!(f.fake.prs("acme/api").is_empty(), "no --pr, no PR");
}

/// The issue's "2-repo task with 2 cross-linked PRs": `--pr` on two repositories of a forge —
/// each gets its branch pushed and exactly one PR, and each PR's comments link the other's.
#[test]
fn two_repositories_on_a_forge_get_two_cross_linked_prs() {
    let f = two_on_a_forge();
    let id = f.env.ok(&[
        "run",
        "--repo",
        "acme/api",
        "--repo",
        "acme/web",
        "--pr",
        "--agent",
        "command",
        "--cmd",
        "echo one > api/f; echo two > web/f",
        "Change both",
    ]);
    let t = f.env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    let branch = format!("drover/{id}");
    let repos = t["repos"].as_array().unwrap();
    let recorded = t["prs"].as_array().unwrap();
    assert_eq!(recorded.len(), 2, "{t:#}");
    let mut urls = vec![];
    for (i, path) in ["acme/api", "acme/web"].iter().enumerate() {
        assert_eq!(
            f.server.branch(path, &branch).as_deref(),
            repos[i]["commit"].as_str(),
            "{path}: {t:#}"
        );
        let prs = f.fake.prs(path);
        assert_eq!(prs.len(), 1, "{path}: {prs:#?}");
        assert_eq!(prs[0].head, branch);
        let rec = recorded
            .iter()
            .find(|p| p["repo"] == repos[i]["repo"])
            .unwrap_or_else(|| panic!("no PR recorded for {path}: {t:#}"));
        assert_eq!(rec["number"], prs[0].number);
        urls.push((
            path,
            prs[0].number,
            rec["url"].as_str().unwrap().to_string(),
        ));
    }
    for (me, other) in [(0, 1), (1, 0)] {
        let (path, number, own) = &urls[me];
        let comments = f.fake.comments(path, *number).join("\n");
        assert!(
            comments.contains(&urls[other].2),
            "{path}#{number}: {comments}"
        );
        assert!(
            !comments.contains(own.as_str()),
            "{path}#{number} links itself: {comments}"
        );
    }
    assert!(!f.env.ok(&["show", &id, "--json"]).contains(FORGE_TOKEN));
}
