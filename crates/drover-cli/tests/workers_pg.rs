//! Two workers on one PostgreSQL database (docs/design.md §8): in-process daemons with their
//! own `DROVER_HOME`s, driven by the real CLI over each one's socket. Needs the test cluster
//! (`scripts/test.sh`, or `source scripts/lib.sh && start_postgres`): without it the fixture
//! panics — these tests never pass silently.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use drover_daemon::config::Secret;
use drover_store::conformance::pg;
use drover_test_support::daemon::InProcessDaemon;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

fn worker(
    rt: &tokio::runtime::Runtime,
    env: &Env,
    url: &str,
    name: &str,
    slots: usize,
) -> InProcessDaemon {
    let exe = Path::new(env!("CARGO_BIN_EXE_drover"));
    let (url, name) = (url.to_string(), name.to_string());
    rt.block_on(InProcessDaemon::start_with(&env.home, exe, move |c| {
        c.database_url = Some(Secret::new(url));
        c.worker_name = name;
        c.slots = slots;
        c.lease_secs = 3;
    }))
}

fn url_of(env: &Env) -> String {
    format!("file://{}", env.repo.display())
}

fn running_events(env: &Env, id: &str) -> usize {
    env.events(id)
        .iter()
        .filter(|e| e["kind"] == "state" && e["data"]["state"] == "running")
        .count()
}

/// Two workers, 12 URL-repo command tasks created through A: every task succeeds once (one
/// `running`, attempt 1), both workers ran some, each within its own slots, and B ran its
/// tasks from its own mirror of the URL.
#[test]
fn two_workers_on_one_database_each_run_tasks_and_every_task_succeeds_once() {
    let a = Env::new();
    let b = Env::new();
    let rt = runtime();
    let url = rt.block_on(pg::fresh_database());
    let da = worker(&rt, &a, &url, "A", 2);
    let db = worker(&rt, &b, &url, "B", 2);
    let repo = url_of(&a);
    let ids: Vec<String> = (0..12)
        .map(|n| {
            a.ok(&[
                "run",
                "--agent",
                "command",
                "--repo",
                &repo,
                "--cmd",
                &format!("sleep 0.3; echo task {n}"),
                &format!("t{n}"),
            ])
        })
        .collect();
    let store = rt.block_on(drover_store::PgStore::open(&url)).unwrap();
    let mut by_worker: HashMap<String, usize> = HashMap::new();
    for (n, id) in ids.iter().enumerate() {
        // Either host answers for any task.
        let t = b.wait(id);
        assert_eq!(t["state"], "succeeded", "{t:#}");
        assert_eq!(t["result"], format!("task {n}"));
        assert_eq!(t["attempt"], 1, "{t:#}");
        assert_eq!(running_events(&a, id), 1, "{id} ran once");
        let w = t["worker"].as_str().unwrap().to_string();
        if w == "B" {
            use drover_store::TaskStore;
            let row = rt.block_on(store.get_task(id)).unwrap();
            let dir = row.repo_dir.unwrap_or_default();
            assert!(
                dir.starts_with(b.home.to_str().unwrap()),
                "B's own mirror: {dir}"
            );
        }
        *by_worker.entry(w).or_default() += 1;
    }
    assert_eq!(by_worker.values().sum::<usize>(), 12);
    assert!(
        by_worker.len() == 2,
        "both workers ran tasks: {by_worker:?}"
    );
    // Per-worker slots: never more than 2 of one worker's tasks past queued at once.
    let tasks: Vec<Value> = ids.iter().map(|id| a.show(id)).collect();
    for w in ["A", "B"] {
        let mine: Vec<String> = ids
            .iter()
            .zip(&tasks)
            .filter(|(_, t)| t["worker"] == w)
            .map(|(id, _)| id.clone())
            .collect();
        let spans = busy_intervals(&a, &mine);
        assert!(max_overlap(&spans) <= 2, "{w}: {spans:?}");
    }
    rt.block_on(db.shutdown());
    rt.block_on(da.shutdown());
}

/// A local-path task runs only on the worker that created it (`runs_on`); a `file://` task
/// created through A runs on B while A's one slot is busy.
#[test]
fn a_url_task_runs_on_the_free_worker_and_a_local_path_task_stays_home() {
    let a = Env::new();
    let b = Env::new();
    let rt = runtime();
    let url = rt.block_on(pg::fresh_database());
    let da = worker(&rt, &a, &url, "A", 1);
    let db = worker(&rt, &b, &url, "B", 2);
    let blocker = a.run_command_task("while [ ! -e go ]; do sleep 0.05; done", "blocker");
    let running = a.until(&blocker, "the blocker to run on A", |t| {
        t["state"] == "running"
    });
    assert_eq!(running["worker"], "A");
    assert_eq!(running["runs_on"], "A");
    let local = a.run_command_task("echo local", "local");
    let remote = a.ok(&[
        "run",
        "--agent",
        "command",
        "--repo",
        &url_of(&a),
        "--cmd",
        "echo remote",
        "remote",
    ]);
    let t = a.wait(&remote);
    assert_eq!(
        (t["state"].as_str(), t["worker"].as_str()),
        (Some("succeeded"), Some("B")),
        "{t:#}"
    );
    assert!(t["runs_on"].is_null(), "{t:#}");
    // B never takes A's local-path task: still queued, nobody's.
    let l = a.show(&local);
    assert_eq!(
        (l["state"].as_str(), l["runs_on"].as_str()),
        (Some("queued"), Some("A")),
        "{l:#}"
    );
    assert!(l["worker"].is_null(), "{l:#}");
    std::fs::write(
        Path::new(running["sandbox"].as_str().unwrap()).join("go"),
        "",
    )
    .unwrap();
    let l = b.wait(&local);
    assert_eq!(
        (l["state"].as_str(), l["worker"].as_str()),
        (Some("succeeded"), Some("A")),
        "{l:#}"
    );
    rt.block_on(db.shutdown());
    rt.block_on(da.shutdown());
}

/// On PostgreSQL: a URL task claimed by a worker that never heartbeats again (a claim with a
/// 1-second lease under a made-up name, moved to `running`) is taken over by the live worker
/// (`interrupted`, `lost_host`, naming the ghost), requeued, and succeeds there as attempt 2.
#[test]
fn a_task_of_a_lapsed_worker_is_taken_over_on_postgres() {
    use drover_store::prelude::*;
    let a = Env::new();
    let rt = runtime();
    let url = rt.block_on(pg::fresh_database());
    let da = worker(&rt, &a, &url, "live", 1);
    let blocker = a.run_command_task("while [ ! -e go ]; do sleep 0.05; done", "blocker");
    let running = a.until(&blocker, "the blocker to run", |t| t["state"] == "running");
    let id = a.ok(&[
        "run",
        "--agent",
        "command",
        "--repo",
        &url_of(&a),
        "--cmd",
        "echo done here",
        "orphan",
    ]);
    let store = rt.block_on(drover_store::PgStore::open(&url)).unwrap();
    let claims = rt.block_on(store.claim("ghost", 1, 1)).unwrap();
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].id, id);
    rt.block_on(
        store.update(
            &id,
            Some(&[drover_types::TaskState::Queued]),
            drover_store::TaskPatch::new()
                .state(drover_types::TaskState::Running, serde_json::json!({}))
                .fence(claims[0].fence.clone()),
            vec![],
        ),
    )
    .unwrap();
    a.until(&id, "the take-over", |t| {
        t["state"] == "queued" && t["worker"].is_null()
    });
    std::fs::write(
        Path::new(running["sandbox"].as_str().unwrap()).join("go"),
        "",
    )
    .unwrap();
    let t = a.wait(&id);
    assert_eq!(t["state"], "succeeded", "{t:#}");
    assert_eq!(
        (t["attempt"].as_i64(), t["worker"].as_str()),
        (Some(2), Some("live"))
    );
    let lost: Vec<Value> = a
        .events(&id)
        .into_iter()
        .filter(|e| e["kind"] == "state" && e["data"]["state"] == "interrupted")
        .collect();
    assert_eq!(lost.len(), 1, "{lost:#?}");
    assert_eq!(lost[0]["data"]["outcome"], "lost_host");
    assert_eq!(lost[0]["data"]["worker"], "ghost");
    // The live worker is listed, the ghost never registered.
    let workers = rt.block_on(store.workers()).unwrap();
    assert_eq!(workers.len(), 1);
    assert_eq!(
        (workers[0].name.as_str(), workers[0].lapsed),
        ("live", false)
    );
    rt.block_on(da.shutdown());
}

/// A worker stopped for longer than its lease while its agent kept running under its shim: the
/// other worker takes the task over and finishes it as attempt 2; when the first worker starts
/// again, the agent of its lost attempt is ended (not left working in a sandbox nobody follows)
/// and it writes nothing to the task.
#[test]
fn a_worker_back_after_its_lease_ends_the_agent_of_its_lost_attempt() {
    let a = Env::new();
    let b = Env::new();
    let rt = runtime();
    let url = rt.block_on(pg::fresh_database());
    let da = worker(&rt, &a, &url, "A", 1);
    // Only A runs until the agent is up: B starts after.
    let id = a.ok(&[
        "run",
        "--agent",
        "command",
        "--repo",
        &url_of(&a),
        "--cmd",
        &format!(
            "case \"$PWD\" in {}/*) echo on B; exit 0;; esac; sleep 600",
            b.home.display()
        ),
        "long",
    ]);
    let t = a.until(&id, "A's agent to run", |t| {
        t["state"] == "running" && t["worker"] == "A"
    });
    let pid = t["pid"].as_i64().unwrap();
    rt.block_on(da.shutdown());
    assert!(
        drover_test_support::process::alive(pid),
        "the agent outlives its daemon"
    );
    let db = worker(&rt, &b, &url, "B", 1);
    let t = b.until(&id, "B to finish it", |t| t["state"] == "succeeded");
    assert_eq!(t["state"], "succeeded", "{t:#}");
    assert_eq!(
        (t["attempt"].as_i64(), t["worker"].as_str()),
        (Some(2), Some("B"))
    );
    let seq = b.events(&id).last().unwrap()["seq"].clone();
    let da = worker(&rt, &a, &url, "A", 1);
    drover_test_support::poll::until(
        "the lost attempt's agent to end",
        std::time::Duration::from_secs(30),
        std::time::Duration::from_millis(20),
        || drover_test_support::process::alive(pid),
        |alive| !alive,
    );
    let t = a.show(&id);
    assert_eq!(
        (t["state"].as_str(), t["worker"].as_str()),
        (Some("succeeded"), Some("B"))
    );
    assert_eq!(a.events(&id).last().unwrap()["seq"], seq, "A wrote nothing");
    rt.block_on(da.shutdown());
    rt.block_on(db.shutdown());
}

/// `drover doctor` names the store: reachable PostgreSQL with host, port and version, or a FAIL
/// line saying why (exit 1) — never the URL's password.
#[test]
fn doctor_says_whether_the_database_answers_and_never_shows_its_password() {
    let rt = runtime();
    let url = rt.block_on(pg::fresh_database());
    let with_password = url.replacen("postgres://postgres@", "postgres://postgres:s3cr3t-pw@", 1);
    let good = Env::new().with_env("DROVER_DATABASE_URL", &with_password);
    let out = good.run(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let line = text
        .lines()
        .find(|l| l.contains(" store "))
        .unwrap()
        .to_string();
    assert!(
        line.starts_with("ok") && line.contains("postgresql at 127.0.0.1:"),
        "{text}"
    );
    assert!(line.contains("PostgreSQL 1"), "{line}");
    let bad = Env::new().with_env(
        "DROVER_DATABASE_URL",
        "postgres://drover:s3cr3t-pw@127.0.0.1:1/drover",
    );
    let out = bad.run(&["doctor"]);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let line = text.lines().find(|l| l.contains(" store ")).unwrap();
    assert!(
        line.starts_with("FAIL") && line.contains("127.0.0.1:1"),
        "{text}"
    );
    for t in [
        &text,
        &String::from_utf8_lossy(&good.run(&["doctor", "--json"]).stdout).to_string(),
    ] {
        assert!(!t.contains("s3cr3t-pw"), "the password is shown: {t}");
    }
}
