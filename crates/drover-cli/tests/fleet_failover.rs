//! A host that dies or is cut off (issue 12, docs/design.md §8): SIGKILL of a worker's whole PID
//! namespace, and a worker whose network the test cuts and restores — its tasks are taken over
//! once the lease lapses, and the cut-off worker can write nothing about them afterwards
//! (fencing). Real worker processes on one PostgreSQL database (`drover_test_support::fleet`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use drover_test_support::fleet::{record_cmd, records, Fleet, WorkerOpts};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const LEASE_SECS: u32 = 3;

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_drover"))
}

fn resume(name: &str, slots: usize) -> WorkerOpts {
    WorkerOpts::new(name, slots).with_env("DROVER_ON_INTERRUPT", "resume")
}

/// Whether an event says the task was interrupted because its host was lost.
fn lost_host(e: &Value) -> bool {
    e["kind"] == "state"
        && e["data"]["state"] == "interrupted"
        && e.to_string().contains("lost_host")
}

#[test]
fn sigkill_of_a_worker_requeues_its_tasks_onto_the_others() {
    let mut fleet = Fleet::new(exe(), LEASE_SECS);
    let victim = fleet.start(resume("victim", 3));
    // Only the victim is up: it claims all three.
    let cmd = record_cmd(&fleet.records, "4");
    let ids: Vec<String> = (0..3)
        .map(|n| fleet.submit(victim, &cmd, &format!("long {n}"), &[]))
        .collect();
    for id in &ids {
        fleet.until(
            victim,
            id,
            "running on the victim",
            Duration::from_secs(60),
            |t| t["state"] == "running" && t["worker"] == "victim" && t["attempt"] == 1,
        );
    }
    let a = fleet.start(resume("a", 2));
    let b = fleet.start(resume("b", 2));
    let victim_home = fleet.worker(victim).home.clone();
    fleet.kill(victim);
    let killed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    for id in &ids {
        let t = fleet.until(
            a,
            id,
            "the task to end on another worker",
            Duration::from_secs(120),
            |t| {
                ["succeeded", "failed", "cancelled"]
                    .contains(&t["state"].as_str().unwrap_or_default())
            },
        );
        assert_eq!(t["state"], "succeeded", "{t:#}");
        assert_ne!(t["worker"], "victim", "{t:#}");
        assert!(t["worker"] == "a" || t["worker"] == "b", "{t:#}");
        assert_eq!(t["attempt"], 2, "requeued once: {t:#}");
        let events = fleet.events(b, id);
        let lost: Vec<&Value> = events.iter().filter(|e| lost_host(e)).collect();
        assert_eq!(
            lost.len(),
            1,
            "{id}: one interrupted/lost_host event: {events:#?}"
        );
        let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
        assert_eq!(seqs, (1..=events.len() as i64).collect::<Vec<_>>());
        // The second attempt started only after the first was declared lost.
        let starts: Vec<&Value> = events
            .iter()
            .filter(|e| e["kind"] == "state" && e["data"]["state"] == "preparing")
            .collect();
        assert_eq!(starts.len(), 2, "{id}: two attempts: {events:#?}");
        assert!(
            starts[1]["seq"].as_i64() > lost[0]["seq"].as_i64(),
            "{events:#?}"
        );
        assert!(
            starts[1]["ts"].as_str() >= lost[0]["ts"].as_str(),
            "{events:#?}"
        );
    }
    // The commands' records: each task completed exactly once, never in the victim's home (its
    // first runs were killed mid-sleep and wrote no end).
    let recs = records(&fleet.records);
    assert_eq!(recs.len(), 3, "{recs:?}");
    for r in &recs {
        assert!(!r.cwd.starts_with(&*victim_home.to_string_lossy()), "{r:?}");
        assert!(
            r.start > killed_at,
            "the re-run began after the kill: {r:?}"
        );
    }
    let workers = drover_test_support::poll::until(
        "the victim listed lapsed",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || fleet.json(a, &["workers", "--json"]),
        |w| {
            w.as_array().is_some_and(|w| {
                w.iter()
                    .any(|w| w["name"] == "victim" && w["state"] == "lapsed")
            })
        },
    );
    for w in workers.as_array().unwrap() {
        if w["name"] != "victim" {
            assert_eq!(w["state"], "live", "{workers:#}");
        }
    }
}

#[test]
fn a_worker_cut_off_from_the_database_cannot_write_to_a_task_it_lost() {
    let mut fleet = Fleet::new(exe(), LEASE_SECS);
    let old = fleet.start(resume("cutoff", 2).with_net());
    // Chatty (its supervisor writes events all the time, so a write is in flight when the
    // cable is cut) and long enough to outlast the lease.
    let id = fleet.submit(
        old,
        "for i in $(seq 1 100); do echo line$i; sleep 0.05; done; echo done > out.txt",
        "long",
        &[],
    );
    fleet.until(
        old,
        &id,
        "running on the cut-off worker",
        Duration::from_secs(60),
        |t| t["state"] == "running" && t["worker"] == "cutoff" && t["attempt"] == 1,
    );
    let new = fleet.start(resume("taker", 2));
    fleet.cut(old);
    let done = |t: &Value| {
        t["attempt"] == 2
            && ["succeeded", "failed", "cancelled", "interrupted"]
                .contains(&t["state"].as_str().unwrap_or_default())
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let taken = loop {
        let t = fleet.show(new, &id);
        if done(&t) {
            break t;
        }
        // On failure, say what both workers were doing (e.g. a sweep blocked on a row lock the
        // cut-off worker's in-flight transaction still holds).
        let warnings = |i: usize| {
            let log = fleet.log(i);
            let lines: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                .collect();
            lines[lines.len().saturating_sub(15)..].join("\n")
        };
        assert!(
            std::time::Instant::now() < deadline,
            "the take-over did not finish within 120 s: {t:#}\ncut-off worker:\n{}\ntaker:\n{}",
            warnings(old),
            warnings(new)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(taken["state"], "succeeded", "{taken:#}");
    assert_eq!(taken["worker"], "taker", "{taken:#}");
    let before = fleet.events(new, &id);
    assert_eq!(
        before.iter().filter(|e| lost_host(e)).count(),
        1,
        "{before:#?}"
    );
    fleet.restore(old);
    // The cut-off worker comes back, finds its claim gone and says so.
    drover_test_support::poll::poll(
        "the cut-off worker to log that it lost the task",
        Duration::from_secs(120),
        || {
            let log = fleet.log(old);
            log.lines()
                .any(|l| (l.contains("fenced") || l.contains("lease lost")) && l.contains(&id))
        },
    );
    // It must have written nothing since: same events, same state, owner and attempt. Its own
    // API reads from the shared store, so ask it too: it is alive and serving.
    assert!(fleet.alive(old), "{}", fleet.log(old));
    // Let the old worker's supervisor run to its end: it answers for the task no more.
    drover_test_support::poll::poll(
        "the cut-off worker to hold no task",
        Duration::from_secs(60),
        || {
            let w = fleet.json(new, &["workers", "--json"]);
            w.as_array().is_some_and(|w| {
                w.iter()
                    .any(|w| w["name"] == "cutoff" && w["running"] == 0 && w["state"] == "live")
            })
        },
    );
    // Nothing may happen, so watch for a while: the old worker's retried writes (its pool
    // reconnects after the restore) must all be refused. Two leases and a second, read through
    // both workers.
    let window = std::time::Instant::now() + Duration::from_secs(2 * LEASE_SECS as u64 + 1);
    while std::time::Instant::now() < window {
        for reader in [old, new] {
            let after_show = fleet.show(reader, &id);
            let after = fleet.events(reader, &id);
            assert_eq!(after, before, "no event written after the take-over");
            for k in [
                "state",
                "worker",
                "attempt",
                "outcome",
                "finished_at",
                "commit",
            ] {
                assert_eq!(after_show[k], taken[k], "{k} changed after the take-over");
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = fleet.log(old);
    let said: Vec<&str> = log
        .lines()
        .filter(|l| (l.contains("fenced") || l.contains("lease lost")) && l.contains(&id))
        .collect();
    eprintln!("the cut-off worker's log about {id}:\n{}", said.join("\n"));
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect();
    eprintln!("its warnings:\n{}", warnings.join("\n"));
}
