//! `drover batch` (docs/design.md §9): one prompt, one task per repository, grouped — start,
//! ls, show, slots, stop, retry, and bad input refused before anything exists. Real daemon,
//! real `command` agents, confined as by default.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use serde_json::Value;
use std::path::PathBuf;

/// `n` git repositories beside the test's own, each with a README; `broken` gets a file named
/// `broken` in repo `i` for each `i` listed.
fn repos(env: &Env, n: usize, broken: &[usize]) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let dir = env.tmp.path().join(format!("r{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            let g = |args: &[&str]| {
                drover_test_support::git::git_env(
                    &dir,
                    args,
                    &[("HOME", env.user_home.as_os_str())],
                )
            };
            g(&["init", "-q"]);
            std::fs::write(dir.join("README.md"), format!("repo {i}\n")).unwrap();
            if broken.contains(&i) {
                std::fs::write(dir.join("broken"), "x\n").unwrap();
            }
            g(&["add", "-A"]);
            g(&["commit", "-qm", "init"]);
            dir
        })
        .collect()
}

fn repo_args(repos: &[PathBuf]) -> Vec<String> {
    repos
        .iter()
        .flat_map(|r| ["--repo".to_string(), r.display().to_string()])
        .collect()
}

fn start(env: &Env, name: &str, repos: &[PathBuf], cmd: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = ["batch", "start", name, "--agent", "command", "--cmd", cmd]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(repo_args(repos));
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(["--prompt".to_string(), "upgrade the dependency".to_string()]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    env.ok(&refs).lines().map(str::to_string).collect()
}

fn wait_all(env: &Env, ids: &[String]) -> Vec<Value> {
    let mut args = vec!["wait", "--json"];
    args.extend(ids.iter().map(String::as_str));
    // Exit 1 when one failed: the JSON is printed either way.
    let out = env.run(&args);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn canonical(p: &std::path::Path) -> String {
    std::fs::canonicalize(p).unwrap().display().to_string()
}

/// Three local repos, one task each: the ids printed one per line, the tasks carry `batch`,
/// `show` lists each repo with its task, state and cost; one repo fails (its `broken` file);
/// once it is fixed upstream, `retry` makes one new task, for that repo only, and it succeeds.
#[test]
fn three_repos_show_and_retry_only_the_failed() {
    let env = Env::new();
    env.ok(&["daemon", "--slots", "4"]);
    let rs = repos(&env, 3, &[1]);
    let cmd = "if [ -f broken ]; then echo broken >&2; exit 1; fi; echo upgraded > DEPS; echo done";
    let ids = start(&env, "deps", &rs, cmd, &[]);
    assert_eq!(ids.len(), 3, "{ids:?}");
    let done = wait_all(&env, &ids);
    let states: Vec<&str> = done.iter().map(|t| t["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["succeeded", "failed", "succeeded"], "{done:#?}");
    for (t, r) in done.iter().zip(&rs) {
        assert_eq!(t["batch"], "deps");
        assert_eq!(t["repo"], canonical(r));
    }

    let v = env.json(&["batch", "show", "deps", "--json"]);
    assert_eq!(v["name"], "deps");
    assert_eq!(v["state"], "running");
    assert_eq!(
        (
            v["tasks"].as_u64(),
            v["succeeded"].as_u64(),
            v["failed"].as_u64()
        ),
        (Some(3), Some(2), Some(1))
    );
    let rows = v["repos"].as_array().unwrap();
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["repo"], canonical(&rs[i]));
        assert_eq!(row["task"], ids[i].as_str());
        assert_eq!(row["attempts"], 1);
        assert!(row["cost_usd"].is_number(), "{row}");
    }
    let text = env.ok(&["batch", "show", "deps"]);
    let header = text.lines().nth(1).unwrap();
    for col in ["REPO", "TASK", "STATE", "PR", "COST"] {
        assert!(header.contains(col), "{text}");
    }
    for (i, id) in ids.iter().enumerate() {
        let line = text.lines().find(|l| l.contains(id.as_str())).unwrap();
        assert!(line.contains(&canonical(&rs[i])), "{line}");
        assert!(
            line.contains(states[i]) && line.contains("$0.0000"),
            "{line}"
        );
    }
    let shown = env.ok(&["show", &ids[0]]);
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("batch") && l.ends_with("deps")),
        "{shown}"
    );
    let ls = env.ok(&["batch", "ls"]);
    assert!(ls.lines().next().unwrap().contains("SUCCEEDED"), "{ls}");
    let row = ls.lines().find(|l| l.starts_with("deps")).unwrap();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[1..6], ["running", "3", "0", "2", "1"], "{ls}");

    // Fixed upstream; the retry re-admits the repo (a fresh base) for the failed one only.
    let g = |args: &[&str]| {
        drover_test_support::git::git_env(&rs[1], args, &[("HOME", env.user_home.as_os_str())])
    };
    g(&["rm", "-q", "broken"]);
    g(&["commit", "-qm", "fix"]);
    let new: Vec<String> = env
        .ok(&["batch", "retry", "deps"])
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(new.len(), 1, "{new:?}");
    assert!(!ids.contains(&new[0]));
    let t = env.wait(&new[0]);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    assert_eq!(
        (t["batch"].as_str(), t["repo"].as_str()),
        (Some("deps"), Some(canonical(&rs[1]).as_str()))
    );
    let v = env.json(&["batch", "show", "deps", "--json"]);
    assert_eq!(
        (v["succeeded"].as_u64(), v["failed"].as_u64()),
        (Some(3), Some(0))
    );
    assert_eq!(v["repos"][1]["task"], new[0].as_str());
    assert_eq!(v["repos"][1]["attempts"], 2);
    assert_eq!(
        v["repos"][0]["task"],
        ids[0].as_str(),
        "a succeeded repo is untouched"
    );
    // Nothing left to retry: no new task.
    assert_eq!(env.ok(&["batch", "retry", "deps"]), "");
    let all = env.json(&["ls", "--all", "--json"]);
    assert_eq!(all.as_array().unwrap().len(), 4, "{all:#}");
}

/// A batch of 6 with `--slots 2` on a daemon of 6 slots: never more than 2 of its tasks past
/// `queued` at once (from their state events' times); without `--slots`, the same batch uses
/// more, so the bound is the batch's.
#[test]
fn slots_bound_a_batch() {
    let env = Env::new();
    env.ok(&["daemon", "--slots", "6"]);
    let rs = repos(&env, 6, &[]);
    let ids = start(&env, "two", &rs, "sleep 0.6; echo ok", &["--slots", "2"]);
    assert_eq!(ids.len(), 6);
    let done = wait_all(&env, &ids);
    assert!(done.iter().all(|t| t["state"] == "succeeded"), "{done:#?}");
    let overlap = max_overlap(&busy_intervals(&env, &ids));
    assert!(
        overlap <= 2,
        "{overlap} tasks of a 2-slot batch ran at once"
    );
    assert_eq!(env.json(&["batch", "show", "two", "--json"])["slots"], 2);

    let ids = start(&env, "all", &rs, "sleep 1.5; echo ok", &[]);
    wait_all(&env, &ids);
    let overlap = max_overlap(&busy_intervals(&env, &ids));
    assert!(overlap > 2, "without --slots only {overlap} ran at once");
}

/// `stop` cancels the queued tasks and stops the running one; the batch is `stopped`; a retry
/// then makes a new task for each (cancelled counts as not done).
#[test]
fn stop_cancels_queued_tasks_and_retry_runs_them_again() {
    let env = Env::new();
    env.ok(&["daemon", "--slots", "4"]);
    let rs = repos(&env, 3, &[]);
    let ids = start(
        &env,
        "slow",
        &rs,
        "echo started; sleep 60",
        &["--slots", "1"],
    );
    // The first is running (the others wait for the batch's one slot).
    env.until(&ids[0], "the first task running", |t| {
        t["state"] == "running"
    });
    for id in &ids[1..] {
        assert_eq!(env.show(id)["state"], "queued");
    }
    assert_eq!(env.ok(&["batch", "stop", "slow"]), "slow stopped");
    let v = env.json(&["batch", "show", "slow", "--json"]);
    assert_eq!(v["state"], "stopped");
    assert!(v["stopped_at"].is_string());
    for id in &ids {
        let t = env.show(id);
        assert_eq!(t["state"], "cancelled", "{t:#}");
    }
    for id in &ids[1..] {
        let t = env.show(id);
        assert!(
            t["started_at"].is_null(),
            "a queued task never started: {t:#}"
        );
    }
    let retried = env.ok(&["batch", "retry", "slow"]);
    assert_eq!(retried.lines().count(), 3, "{retried}");
    assert_eq!(
        env.json(&["batch", "show", "slow", "--json"])["state"],
        "running"
    );
    env.ok(&["batch", "stop", "slow"]);
}

fn exit_of(env: &Env, args: &[&str]) -> (i32, String) {
    let out = env.run(args);
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// A repository that is not one (a plain directory; a path that does not exist) → exit 2 with
/// one line naming it, and neither a batch nor any task exists; a taken name, a bad name and an
/// unknown batch are exit 2 with one line each.
#[test]
fn bad_input_is_refused_and_leaves_nothing() {
    let env = Env::new();
    env.ok(&["daemon", "--slots", "2"]);
    let rs = repos(&env, 2, &[]);
    let plain = env.tmp.path().join("not-a-repo");
    std::fs::create_dir_all(&plain).unwrap();
    let (a, b, p) = (
        rs[0].display().to_string(),
        rs[1].display().to_string(),
        plain.display().to_string(),
    );
    let base = [
        "batch", "start", "bad", "--agent", "command", "--cmd", "true", "--prompt", "x",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let args = with(&["--repo", &a, "--repo", &p, "--repo", &b]);
    let (code, err) = exit_of(&env, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&p), "the error names the repo: {err}");
    assert_eq!(
        err.trim()
            .lines()
            .filter(|l| l.starts_with("drover:"))
            .count(),
        1,
        "{err}"
    );
    let missing = env.tmp.path().join("missing").display().to_string();
    let args = with(&["--repo", &a, "--repo", &missing]);
    let (code, err) = exit_of(&env, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("missing"), "{err}");
    // The same repo twice.
    let args = with(&["--repo", &a, "--repo", &a]);
    let (code, err) = exit_of(&env, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("twice"), "{err}");
    assert_eq!(env.json(&["batch", "ls", "--json"]), serde_json::json!([]));
    assert_eq!(env.json(&["ls", "--all", "--json"]), serde_json::json!([]));

    // A repos file: comments and blank lines skipped.
    let list = env.tmp.path().join("repos.txt");
    std::fs::write(&list, format!("# the fleet\n{a}\n\n{b}\n")).unwrap();
    let args = with(&["--repos-file", list.to_str().unwrap()]);
    let ids = env.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(ids.lines().count(), 2, "{ids}");
    // The name is taken now.
    let args = with(&["--repo", &a]);
    let (code, err) = exit_of(&env, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(
        env.json(&["ls", "--all", "--json"])
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let (code, err) = exit_of(&env, &["batch", "show", "nope"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no batch named \"nope\""), "{err}");
    let (code, err) = exit_of(&env, &["batch", "stop", "Bad Name"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("batch name"), "{err}");
    let (code, err) = exit_of(&env, &["batch", "start", "x", "--prompt", "p"]);
    assert_eq!(code, 2, "no repository: {err}");
    let (code, err) = exit_of(
        &env,
        &[
            "batch", "start", "x", "--repo", &a, "--prompt", "p", "--slots", "0",
        ],
    );
    assert_eq!(code, 2, "{err}");
}

/// An agent (untrusted) inside a batch's task can neither start a batch nor stop or retry its
/// own: the task's endpoint refuses every batch route (403, exit 2) and nothing changes.
#[test]
fn an_agent_cannot_start_or_stop_batches() {
    let env = Env::new();
    env.ok(&["daemon", "--slots", "2"]);
    let rs = repos(&env, 1, &[]);
    let cmd = "drover batch start evil --repo . --agent command --cmd true --prompt x >/dev/null 2>&1; a=$?; \
               drover batch stop inside >/dev/null 2>&1; b=$?; \
               drover batch retry inside >/dev/null 2>&1; c=$?; \
               drover batch ls >/dev/null 2>&1; d=$?; echo \"codes $a $b $c $d\"";
    let ids = start(&env, "inside", &rs, cmd, &[]);
    let t = env.wait(&ids[0]);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    assert_eq!(t["result"], "codes 2 2 2 2", "{t:#}");
    let v = env.json(&["batch", "ls", "--json"]);
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["inside"]);
    assert_eq!(
        env.json(&["batch", "show", "inside", "--json"])["state"],
        "running"
    );
}

/// `--pr` on a repository of no configured forge refuses the whole batch (exit 2, the repo
/// named), as `drover run --pr` does: nothing stored.
#[test]
fn pr_on_a_repo_of_no_forge_refuses_the_batch() {
    let env = Env::new();
    env.ok(&["daemon", "--slots", "2"]);
    let rs = repos(&env, 2, &[]);
    let (a, b) = (rs[0].display().to_string(), rs[1].display().to_string());
    let out = env.run(&[
        "batch", "start", "prs", "--agent", "command", "--cmd", "true", "--repo", &a, "--repo", &b,
        "--pr", "--prompt", "x",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("repo {}", canonical(&rs[0]))),
        "{err}"
    );
    assert_eq!(env.json(&["batch", "ls", "--json"]), serde_json::json!([]));
    assert_eq!(env.json(&["ls", "--all", "--json"]), serde_json::json!([]));
}
