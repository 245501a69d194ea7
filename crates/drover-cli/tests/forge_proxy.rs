//! drover's git proxy against a real git server (`git http-backend` checking tokens): the mirror
//! and the sandbox reach the forge only through the proxy, which adds (and refreshes) the token;
//! the agent may push only `drover/<id>`; the end-of-task push; no token anywhere else.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;
use common::*;

use base64::Engine as _;
use drover_test_support::forge_tokens::{Scopes, Tokens};
use drover_test_support::git_server::GitServer;
use std::path::{Path, PathBuf};

const REPO: &str = "acme/app";

struct Forge {
    env: Env,
    server: GitServer,
    tokens: Tokens,
    token_file: PathBuf,
}

/// A daemon with `[forges.t]` (github, git = the test server), token_cmd = `cat FILE` holding
/// `token` (granted `scopes`), and `acme/app` on the server.
fn forge(token: &str, scopes: Scopes) -> Forge {
    forge_with(token, scopes, "")
}

/// [`forge`] with more config (e.g. a `[sandbox]` table).
fn forge_with(token: &str, scopes: Scopes, extra: &str) -> Forge {
    let env = Env::new();
    let tokens = Tokens::new();
    tokens.grant(token, scopes, None);
    let server = GitServer::start(tokens.clone());
    server.create_repo(REPO);
    server.create_repo("acme/other");
    let token_file = env.tmp.path().join("forge-token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    std::fs::create_dir_all(&env.home).unwrap();
    std::fs::write(
        env.home.join("config.toml"),
        format!(
            "[forges.t]\nkind = \"github\"\napi = \"http://127.0.0.1:9/api\"\ngit = \"{}\"\ntoken_cmd = \"cat {}\"\ndefault = true\n{extra}",
            server.url(),
            token_file.display()
        ),
    )
    .unwrap();
    env.ok(&["daemon", "--slots", "4"]);
    Forge {
        env,
        server,
        tokens,
        token_file,
    }
}

impl Forge {
    fn url(&self) -> String {
        self.server.repo_url(REPO)
    }
    fn run(&self, cmd: &str) -> String {
        self.env.ok(&[
            "run",
            "--repo",
            &self.url(),
            "--agent",
            "command",
            "--cmd",
            cmd,
            "forge task",
        ])
    }
    /// A file of the task's branch as the server has it.
    fn pushed_file(&self, id: &str, file: &str) -> String {
        git(
            &self.server.repo_dir(REPO),
            &["show", &format!("drover/{id}:{file}")],
        )
    }
}

fn push_with(server: &GitServer, token: &str, file: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let url = server
        .repo_url(REPO)
        .replacen("http://", &format!("http://x:{token}@"), 1);
    let w = tmp.path().join("w");
    git(tmp.path(), &["clone", "-q", &url, w.to_str().unwrap()]);
    std::fs::write(w.join(file), "new\n").unwrap();
    drover_test_support::git::commit_all(&w, "upstream change");
    git(&w, &["push", "-q", "origin", "HEAD:main"]);
    git(&w, &["rev-parse", "HEAD"])
}

#[test]
fn a_token_expired_mid_task_is_refreshed_and_the_agent_fetches_through_the_proxy() {
    let f = forge("tok-one", Scopes::ALL);
    let id = f.run(
        "until [ -f go ]; do sleep 0.05; done; rm go; \
         git fetch origin > fetch.txt 2>&1; echo \"exit $?\" >> fetch.txt; \
         git rev-parse origin/main > fetched.txt; git remote get-url origin > origin.txt",
    );
    let t = f.env.until(&id, "running with a sandbox", |t| {
        t["state"] == "running" && t["sandbox"].is_string()
    });
    // The forge rotates: the first token ends, token_cmd now prints another.
    f.tokens.grant("tok-two", Scopes::ALL, None);
    let upstream = push_with(&f.server, "tok-two", "upstream.txt");
    f.tokens.expire("tok-one");
    std::fs::write(&f.token_file, "tok-two\n").unwrap();
    std::fs::write(Path::new(t["sandbox"].as_str().unwrap()).join("go"), "").unwrap();
    let t = f.env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    let fetch = f.pushed_file(&id, "fetch.txt");
    assert!(fetch.ends_with("exit 0"), "{fetch}");
    assert_eq!(f.pushed_file(&id, "fetched.txt"), upstream);
    let origin = f.pushed_file(&id, "origin.txt");
    assert!(
        origin.starts_with("http://127.0.0.1:") && origin.ends_with("/acme/app.git"),
        "{origin}"
    );
    // The server refused the old token after it expired, then saw the new one.
    let reqs = f.server.requests();
    let refused = reqs
        .iter()
        .position(|r| r.status == 401 && r.token.as_deref() == Some("tok-one"))
        .unwrap_or_else(|| panic!("no 401 for the expired token: {reqs:#?}"));
    assert!(
        reqs[refused..]
            .iter()
            .any(|r| r.status == 200 && r.token.as_deref() == Some("tok-two")),
        "{reqs:#?}"
    );
    // End of task: drover/<id> is on the server with the task's commit.
    assert_eq!(
        f.server.branch(REPO, &format!("drover/{id}")).as_deref(),
        t["commit"].as_str()
    );
}

#[test]
fn the_agent_may_push_only_its_own_branch() {
    let f = forge("tok-push", Scopes::ALL);
    let main_before = f.server.branch(REPO, "main").unwrap();
    let id = f.run(
        "echo work > work.txt; git add work.txt; \
         git -c user.name=a -c user.email=a@a commit -qm work; \
         git push origin HEAD:drover/$DROVER_TASK_ID > ok.txt 2>&1; echo \"exit $?\" >> ok.txt; \
         git push origin HEAD:main > main.txt 2>&1; echo \"exit $?\" >> main.txt; \
         git push --force origin HEAD:refs/heads/main > force.txt 2>&1; echo \"exit $?\" >> force.txt; \
         git push origin :drover/$DROVER_TASK_ID > delete.txt 2>&1; echo \"exit $?\" >> delete.txt; \
         git push origin HEAD:drover/someone-else > other.txt 2>&1; echo \"exit $?\" >> other.txt; \
         git push \"$(git remote get-url origin | sed s,acme/app,acme/other,)\" HEAD:drover/$DROVER_TASK_ID > repo.txt 2>&1; echo \"exit $?\" >> repo.txt; \
         git fetch \"$(git remote get-url origin | sed s,acme/app,acme/other,)\" > fetchother.txt 2>&1; echo \"exit $?\" >> fetchother.txt",
    );
    let t = f.env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    let file = |n: &str| f.pushed_file(&id, n);
    assert!(file("ok.txt").ends_with("exit 0"), "{}", file("ok.txt"));
    let refused = format!("(drover: this task may push only drover/{id})");
    for (name, refname) in [
        ("main.txt", "HEAD -> main"),
        ("force.txt", "HEAD -> main"),
        ("delete.txt", "[deleted]"),
        ("other.txt", "HEAD -> drover/someone-else"),
    ] {
        let out = file(name);
        assert!(
            out.contains(&format!("! [remote rejected] {refname}"))
                || (name == "delete.txt" && out.contains("! [remote rejected]")),
            "{name}: {out}"
        );
        assert!(out.contains(&refused), "{name}: {out}");
        assert!(
            out.contains(&format!(
                "remote: drover: this task may push only drover/{id}"
            )),
            "{name}: {out}"
        );
        assert!(out.ends_with("exit 1"), "{name}: {out}");
    }
    for name in ["repo.txt", "fetchother.txt"] {
        let out = file(name);
        assert!(
            out.contains("fatal: remote error: drover: this task may use only acme/app"),
            "{name}: {out}"
        );
        assert!(!out.ends_with("exit 0"), "{name}: {out}");
    }
    // The server's refs: main untouched, no other branch, nothing on the other repo; the
    // task's branch is its final commit.
    assert_eq!(f.server.branch(REPO, "main").unwrap(), main_before);
    assert_eq!(f.server.branch(REPO, "drover/someone-else"), None);
    assert_eq!(
        f.server.branches("acme/other").len(),
        1,
        "{:?}",
        f.server.branches("acme/other")
    );
    assert_eq!(
        f.server.branch(REPO, &format!("drover/{id}")).as_deref(),
        t["commit"].as_str()
    );
}

#[test]
fn a_read_only_token_fails_the_task_with_the_permission_to_add() {
    let f = forge("tok-ro", Scopes::READ_ONLY);
    let id = f.run("echo x > x.txt");
    let t = f.env.wait(&id);
    assert_eq!(t["state"], "failed", "{t:#}");
    assert_eq!(t["outcome"]["error_kind"], "git_error", "{t:#}");
    let text = t["outcome"]["reason"].as_str().unwrap();
    assert!(
        text.contains(&format!(
            "pushing drover/{id} to acme/app failed: the forge refused the push (403): {}",
            drover_forge::push_permission_hint(drover_forge::ForgeKind::Github)
        )),
        "{t:#}"
    );
    assert!(text.contains("Contents: write"), "{text}");
    assert!(!text.contains('\n'), "one line: {text}");
    assert!(
        text.contains(&format!("the work stays on drover/{id}")),
        "{t:#}"
    );
    assert_eq!(f.server.branch(REPO, &format!("drover/{id}")), None);
    // The work is in drover's mirror.
    let commit = t["commit"].as_str().unwrap();
    let mirror = std::fs::read_dir(f.env.home.join("repos"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "git"))
        .unwrap();
    assert_eq!(
        git(&mirror, &["rev-parse", &format!("drover/{id}")]),
        commit
    );
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            files_under(&p, out);
        } else if ft.is_file() {
            out.push(p);
        }
    }
}

#[test]
fn the_token_is_nowhere_but_on_the_wire_to_the_forge() {
    let token = "tok-SECRET-c0ffee-4242";
    let f = forge(token, Scopes::ALL);
    let id = f.run(
        "env > env.txt; git config -l > config.txt 2>&1; cat .git/config > dotgit.txt; \
         git fetch origin > fetch.txt 2>&1; echo \"exit $?\" >> fetch.txt",
    );
    let t = f.env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    assert!(f.pushed_file(&id, "fetch.txt").ends_with("exit 0"));
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
    let needles = [token.to_string(), b64];
    // The sandbox's env, git config and .git/config, as the agent saw them.
    for name in ["env.txt", "config.txt", "dotgit.txt"] {
        let text = f.pushed_file(&id, name);
        assert!(!text.is_empty(), "{name}");
        for n in &needles {
            assert!(!text.contains(n.as_str()), "{name} holds the token: {text}");
        }
    }
    assert!(f
        .pushed_file(&id, "dotgit.txt")
        .contains("url = http://127.0.0.1:"));
    // Events JSON.
    let events = f.env.ok(&["logs", &id, "--json"]);
    // Every file of DROVER_HOME: the store (SQLite and its WAL), logs, mirrors' config.
    let mut files = vec![];
    files_under(&f.env.home, &mut files);
    assert!(
        files
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "db")),
        "{files:?}"
    );
    for n in &needles {
        assert!(!events.contains(n.as_str()), "events hold the token");
        for p in &files {
            let bytes = std::fs::read(p).unwrap_or_default();
            assert!(
                !bytes.windows(n.len()).any(|w| w == n.as_bytes()),
                "{} holds the token",
                p.display()
            );
        }
    }
    // The forge did see it (so the needle is the real thing).
    assert!(f.tokens.seen().iter().any(|s| s == token));
}

#[test]
fn concurrent_tasks_on_one_repo_fetch_once() {
    let f = forge("tok-many", Scopes::ALL);
    let ids: Vec<String> = std::thread::scope(|s| {
        // Collected first: all four start before any is joined.
        #[allow(clippy::needless_collect)]
        let hs: Vec<_> = (0..4).map(|_| s.spawn(|| f.run("true"))).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for id in &ids {
        let t = f.env.wait(id);
        assert_eq!(t["state"], "succeeded", "{t:#}");
    }
    let reqs = f.server.requests();
    assert_eq!(f.server.upload_packs(REPO), 1, "{reqs:#?}");
    let adverts = reqs
        .iter()
        .filter(|r| r.path.ends_with("info/refs?service=git-upload-pack") && r.status == 200)
        .count();
    eprintln!("upload-pack advertisements for 4 tasks: {adverts}");
    assert!(adverts <= 2, "{adverts} fetches for 4 tasks: {reqs:#?}");
}

#[test]
fn unconfined_tasks_get_a_loopback_port_of_their_own_with_the_same_rules() {
    let f = forge_with("tok-none", Scopes::ALL, "[sandbox]\nisolation = \"none\"\n");
    let id = f.run(
        "git fetch origin > fetch.txt 2>&1; echo \"exit $?\" >> fetch.txt; \
         git remote get-url origin > origin.txt; \
         echo w > w.txt; git add w.txt; git -c user.name=a -c user.email=a@a commit -qm w; \
         git push origin HEAD:main > main.txt 2>&1; echo \"exit $?\" >> main.txt",
    );
    let t = f.env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    assert!(f.pushed_file(&id, "fetch.txt").ends_with("exit 0"));
    let origin = f.pushed_file(&id, "origin.txt");
    assert!(
        origin.starts_with("http://127.0.0.1:") && !origin.contains(":3129/"),
        "{origin}"
    );
    let main = f.pushed_file(&id, "main.txt");
    assert!(
        main.contains(&format!("(drover: this task may push only drover/{id})")),
        "{main}"
    );
    // The port is closed once the task ended.
    let port: u16 = origin["http://127.0.0.1:".len()..]
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    drover_test_support::poll::until(
        "the task's git port closed",
        std::time::Duration::from_secs(30),
        std::time::Duration::from_millis(50),
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        |closed| *closed,
    );
}

#[test]
fn owner_slash_name_resolves_through_the_default_forge_and_the_task_stores_the_clone_url() {
    let f = forge("tok-name", Scopes::ALL);
    let id = f.env.ok(&[
        "run",
        "--repo",
        REPO,
        "--agent",
        "command",
        "--cmd",
        "echo hi > hi.txt",
        "named",
    ]);
    let t = f.env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    assert_eq!(t["repo"], f.url(), "{t:#}");
    assert_eq!(f.pushed_file(&id, "hi.txt"), "hi");
    // A forge URL carrying a token is refused, without echoing it.
    let with_token = f.url().replacen("http://", "http://x:tok-LEAK@", 1);
    let out = f.env.run(&[
        "run",
        "--repo",
        &with_token,
        "--agent",
        "command",
        "--cmd",
        "true",
        "leak",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("must not carry a user or token"), "{err}");
    assert!(!err.contains("tok-LEAK"), "{err}");
}

#[test]
fn a_push_larger_than_the_retry_buffer_streams_through() {
    let f = forge("tok-big", Scopes::ALL);
    let id = f.run(
        "head -c 12582912 /dev/urandom > big.bin; git add big.bin; \
         git -c user.name=a -c user.email=a@a commit -qm big; \
         git push origin HEAD:drover/$DROVER_TASK_ID > push.txt 2>&1; echo \"exit $?\" >> push.txt; \
         git rev-parse HEAD > head.txt",
    );
    let t = f.env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    let push = f.pushed_file(&id, "push.txt");
    assert!(push.ends_with("exit 0"), "{push}");
    let size = git(
        &f.server.repo_dir(REPO),
        &["cat-file", "-s", &format!("drover/{id}:big.bin")],
    );
    assert_eq!(size, "12582912");
    // The mirror's origin is the clean clone URL (no proxy address, no credential).
    let mirror = std::fs::read_dir(f.env.home.join("repos"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "git"))
        .unwrap();
    assert_eq!(git(&mirror, &["remote", "get-url", "origin"]), f.url());
}

#[test]
fn a_token_refused_even_after_a_refresh_is_one_clear_line_for_git_and_the_task() {
    let f = forge("tok-revoked", Scopes::ALL);
    let id = f.run(
        "until [ -f go ]; do sleep 0.05; done; rm go; \
         git fetch origin > fetch.txt 2>&1; echo \"exit $?\" >> fetch.txt",
    );
    let t = f.env.until(&id, "running with a sandbox", |t| {
        t["state"] == "running" && t["sandbox"].is_string()
    });
    let sandbox = PathBuf::from(t["sandbox"].as_str().unwrap());
    f.tokens.revoke("tok-revoked");
    std::fs::write(sandbox.join("go"), "").unwrap();
    let t = f.env.wait(&id);
    assert_eq!(t["state"], "failed", "{t:#}");
    assert_eq!(t["outcome"]["error_kind"], "git_error", "{t:#}");
    let reason = t["outcome"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("the forge refused drover's token even after a refresh"),
        "{reason}"
    );
    assert!(
        reason.contains(&format!("the work stays on drover/{id}")),
        "{reason}"
    );
    // What the agent's git printed is in the work kept in the mirror.
    let mirror = std::fs::read_dir(f.env.home.join("repos"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "git"))
        .unwrap();
    let fetch = git(&mirror, &["show", &format!("drover/{id}:fetch.txt")]);
    assert!(
        fetch.contains("fatal: remote error: drover: the forge refused drover's token for acme/app ([forges.t])"),
        "{fetch}"
    );
    assert!(!fetch.contains("Username"), "git must not prompt: {fetch}");
    assert!(fetch.ends_with("exit 128"), "{fetch}");
}

#[test]
fn an_unconfined_task_readopted_after_a_daemon_restart_gets_its_new_port() {
    let f = forge_with(
        "tok-restart",
        Scopes::ALL,
        "[sandbox]\nisolation = \"none\"\n",
    );
    let id = f.run(
        "until [ -f go ]; do sleep 0.05; done; rm go; \
         git fetch origin > fetch.txt 2>&1; echo \"exit $?\" >> fetch.txt",
    );
    let t = f.env.until(&id, "running with a sandbox", |t| {
        t["state"] == "running" && t["sandbox"].is_string()
    });
    let sandbox = PathBuf::from(t["sandbox"].as_str().unwrap());
    let origin = |dir: &Path| git(dir, &["config", "remote.origin.url"]);
    let before = origin(&sandbox);
    f.env.kill_daemon();
    f.env.ok(&["daemon", "--slots", "4"]);
    drover_test_support::poll::until(
        "the sandbox's origin on the new port",
        std::time::Duration::from_secs(60),
        std::time::Duration::from_millis(50),
        || origin(&sandbox),
        |now| *now != before,
    );
    std::fs::write(sandbox.join("go"), "").unwrap();
    let t = f.env.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    let fetch = f.pushed_file(&id, "fetch.txt");
    assert!(fetch.ends_with("exit 0"), "{fetch}");
}
