//! Many hosts (issue 12, docs/design.md §8): real worker processes — each in its own PID
//! namespace, with its own `DROVER_HOME` — on one PostgreSQL database
//! (`drover_test_support::fleet`). Needs the test cluster (`scripts/test.sh` starts it; the
//! fixture panics without it), root, `unshare`, `nsenter` and `ip`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use drover_test_support::fleet::{
    attempt_intervals, max_overlap, record_cmd, records, Fleet, WorkerOpts,
};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

const LEASE_SECS: u32 = 3;
const TERMINAL: &[&str] = &["succeeded", "failed", "cancelled", "interrupted"];

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_drover"))
}

fn is_terminal(t: &Value) -> bool {
    TERMINAL.contains(&t["state"].as_str().unwrap_or_default())
}

fn state_events<'a>(events: &'a [Value], state: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["kind"] == "state" && e["data"]["state"] == state)
        .collect()
}

#[test]
fn sixty_tasks_on_three_workers_each_run_once_within_each_workers_slots() {
    let mut fleet = Fleet::new(exe(), LEASE_SECS);
    let names = ["w1", "w2", "w3"];
    for n in names {
        fleet.spawn(WorkerOpts::new(n, 4));
    }
    for i in 0..names.len() {
        fleet.wait_ready(i);
    }
    let mut ids = vec![];
    for n in 0..60 {
        // 0.2 to 1.0 s each; submitted through every worker in turn.
        let cmd = record_cmd(&fleet.records, &format!("0.{}", 2 + (n % 5) * 2));
        ids.push(fleet.submit(n % 3, &cmd, &format!("task {n}"), &[]));
    }
    let tasks = fleet.until_tasks(1, "all 60 tasks to end", Duration::from_secs(300), |ts| {
        ts.len() == 60 && ts.iter().all(is_terminal)
    });
    let by_id: HashMap<&str, &Value> = tasks
        .iter()
        .map(|t| (t["id"].as_str().unwrap(), t))
        .collect();
    let mut per_worker: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for id in &ids {
        let t = by_id[id.as_str()];
        assert_eq!(t["state"], "succeeded", "{t:#}");
        assert_eq!(t["attempt"], 1, "a first run is attempt 1: {t:#}");
        let worker = t["worker"]
            .as_str()
            .unwrap_or_else(|| panic!("no worker: {t:#}"));
        assert!(names.contains(&worker), "{t:#}");
        // Read through a worker other than the one that ran it.
        let reader = names.iter().position(|n| *n != worker).unwrap();
        let events = fleet.events(reader, id);
        let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
        assert_eq!(
            seqs,
            (1..=events.len() as i64).collect::<Vec<_>>(),
            "{id}: seq 1.. contiguous"
        );
        let ends: Vec<_> = events
            .iter()
            .filter(|e| {
                e["kind"] == "state"
                    && TERMINAL.contains(&e["data"]["state"].as_str().unwrap_or_default())
            })
            .collect();
        assert_eq!(
            ends.len(),
            1,
            "{id}: exactly one terminal state event: {ends:?}"
        );
        assert_eq!(
            state_events(&events, "preparing").len(),
            1,
            "{id}: one start"
        );
        assert_eq!(state_events(&events, "running").len(), 1, "{id}: one run");
        per_worker
            .entry(worker.to_string())
            .or_default()
            .extend(attempt_intervals(&events));
    }
    for n in names {
        let runs = per_worker.get(n).map(Vec::len).unwrap_or(0);
        assert!(runs > 0, "worker {n} ran no task: {per_worker:?}");
        let most = max_overlap(&per_worker[n]);
        assert!(most <= 4, "worker {n} ran {most} tasks at once (slots 4)");
        eprintln!("{n}: {runs} tasks, at most {most} at once (events)");
    }
    // The commands' own records agree: one run per task, in a checkout under the DROVER_HOME
    // of the worker the task names, never more than 4 at once on one worker.
    let recs = records(&fleet.records);
    assert_eq!(recs.len(), 60, "one recorded run per task: {recs:?}");
    let mut by_worker: BTreeMap<&str, Vec<(String, String)>> = BTreeMap::new();
    for r in &recs {
        let t = by_id[r.task.as_str()];
        let w = fleet
            .workers
            .iter()
            .find(|w| r.cwd.starts_with(&*w.home.to_string_lossy()))
            .unwrap_or_else(|| panic!("{r:?} ran outside every worker's home"));
        assert_eq!(t["worker"], w.name.as_str(), "{r:?}");
        // Fixed width so the strings sort like the times.
        by_worker
            .entry(w.name.as_str())
            .or_default()
            .push((format!("{:020.6}", r.start), format!("{:020.6}", r.end)));
    }
    let once: std::collections::HashSet<&str> = recs.iter().map(|r| r.task.as_str()).collect();
    assert_eq!(once.len(), 60, "every task ran once");
    for (w, iv) in &by_worker {
        assert!(
            max_overlap(iv) <= 4,
            "worker {w}: {} at once",
            max_overlap(iv)
        );
    }
}

#[test]
fn a_pool_of_four_slots_across_two_workers_never_runs_more_than_four() {
    let mut fleet = Fleet::new(exe(), LEASE_SECS);
    fleet.spawn(WorkerOpts::new("p1", 3));
    fleet.spawn(WorkerOpts::new("p2", 3));
    fleet.wait_ready(0);
    fleet.wait_ready(1);
    let cmd = record_cmd(&fleet.records, "0.6");
    fleet.ok(
        0,
        &[
            "pool",
            "start",
            "wide",
            "--slots",
            "4",
            "--count",
            "12",
            "--repo",
            &fleet.repo_url.clone(),
            "--agent",
            "command",
            "--cmd",
            &cmd,
            "--prompt",
            "p {n}",
        ],
    );
    let pool = drover_test_support::poll::until(
        "the pool to finish",
        Duration::from_secs(240),
        Duration::from_millis(200),
        || fleet.json(1, &["pool", "show", "wide", "--json"]),
        |p| p["state"] == "done",
    );
    assert_eq!(pool["launched"], 12, "{pool:#}");
    assert_eq!(pool["successes"], 12, "{pool:#}");
    let tasks: Vec<Value> = fleet
        .tasks(1)
        .into_iter()
        .filter(|t| t["pool"] == "wide")
        .collect();
    assert_eq!(tasks.len(), 12);
    assert!(tasks.iter().all(|t| t["state"] == "succeeded"));
    let mut intervals = vec![];
    let mut per_worker: BTreeMap<String, usize> = BTreeMap::new();
    for t in &tasks {
        *per_worker
            .entry(t["worker"].as_str().unwrap_or("-").to_string())
            .or_default() += 1;
        intervals.extend(attempt_intervals(
            &fleet.events(0, t["id"].as_str().unwrap()),
        ));
    }
    let most = max_overlap(&intervals);
    assert!(most <= 4, "the pool ran {most} tasks at once (slots 4)");
    // 3 slots a worker: the pool's 4th slot can only be filled on the other worker.
    assert_eq!(
        per_worker.len(),
        2,
        "both workers ran pool tasks: {per_worker:?}"
    );
    let recs = records(&fleet.records);
    assert_eq!(recs.len(), 12, "{recs:?}");
    let iv: Vec<(String, String)> = recs
        .iter()
        .map(|r| (format!("{:020.6}", r.start), format!("{:020.6}", r.end)))
        .collect();
    let most_recorded = max_overlap(&iv);
    assert!(
        most_recorded <= 4,
        "the commands saw {most_recorded} at once"
    );
    eprintln!("pool: at most {most} at once (events), {most_recorded} (records); per worker {per_worker:?}");
}

#[test]
fn logs_follow_and_wait_on_one_worker_see_a_task_running_on_another() {
    let mut fleet = Fleet::new(exe(), LEASE_SECS);
    fleet.spawn(WorkerOpts::new("a", 2));
    fleet.spawn(WorkerOpts::new("b", 2));
    fleet.wait_ready(0);
    fleet.wait_ready(1);
    let id = fleet.submit(
        0,
        "sleep 1.5; for i in $(seq 1 30); do echo line$i; sleep 0.05; done",
        "stream",
        &[],
    );
    let t = fleet.until(
        0,
        &id,
        "the task to be claimed",
        Duration::from_secs(60),
        |t| t["worker"].is_string(),
    );
    let runner = t["worker"].as_str().unwrap().to_string();
    let reader = if runner == "a" { 1 } else { 0 };
    let follow = fleet
        .cmd(reader, &["logs", "--follow", &id, "--json"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let wait = fleet
        .cmd(reader, &["wait", &id, "--json"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let followed = drover_test_support::process::finish_within(
        follow,
        Duration::from_secs(120),
        "logs --follow on the other worker",
    );
    let waited = drover_test_support::process::finish_within(
        wait,
        Duration::from_secs(120),
        "wait on the other worker",
    );
    assert!(
        followed.status.success(),
        "{}",
        String::from_utf8_lossy(&followed.stderr)
    );
    let got: Vec<Value> = String::from_utf8_lossy(&followed.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let w: Value = serde_json::from_slice(&waited.stdout).unwrap_or_else(|e| {
        panic!(
            "wait printed no JSON ({e}): {}",
            String::from_utf8_lossy(&waited.stderr)
        )
    });
    assert_eq!(w[0]["state"], "succeeded", "{w:#}");
    assert_eq!(w[0]["worker"], runner.as_str());
    let all = fleet.events(1 - reader, &id);
    let seqs = |v: &[Value]| {
        v.iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        seqs(&got),
        (1..=all.len() as i64).collect::<Vec<_>>(),
        "the follower on {} saw every event in seq order",
        fleet.worker(reader).name
    );
    assert_eq!(got, all, "the same events as the runner's own reading");
    let last = got.last().unwrap();
    assert_eq!(last["kind"], "state");
    assert_eq!(last["data"]["state"], "succeeded", "it ends with the task");
    let lines = got
        .iter()
        .filter(|e| e.to_string().contains("line30"))
        .count();
    assert!(lines >= 1, "the last output line came through: {got:?}");
}

#[test]
fn two_daemons_started_at_once_on_a_fresh_database_both_come_up() {
    let mut fleet = Fleet::new(exe(), LEASE_SECS);
    fleet.spawn(WorkerOpts::new("s1", 2));
    fleet.spawn(WorkerOpts::new("s2", 2));
    fleet.wait_ready(0);
    fleet.wait_ready(1);
    let workers = drover_test_support::poll::until(
        "both workers listed live",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || fleet.json(0, &["workers", "--json"]),
        |w| {
            w.as_array()
                .is_some_and(|w| w.len() == 2 && w.iter().all(|w| w["state"] == "live"))
        },
    );
    let mut names: Vec<&str> = workers
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["s1", "s2"]);
    // Both serve the API and share the store: a task made on one is seen done on the other.
    let id = fleet.submit(0, "echo hi", "hi", &[]);
    let t = fleet.until(
        1,
        &id,
        "the task to end",
        Duration::from_secs(60),
        is_terminal,
    );
    assert_eq!(t["state"], "succeeded", "{t:#}");
    for i in 0..2 {
        assert!(fleet.alive(i), "{}", fleet.log(i));
        assert!(
            !fleet.log(i).contains("ERROR"),
            "worker {}: {}",
            fleet.worker(i).name,
            fleet.log(i)
        );
    }
}
