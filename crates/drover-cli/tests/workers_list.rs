//! `drover workers [--json]` and `GET /v1/workers` (docs/design.md §8) on the embedded store: the
//! table's header and one line per worker the JSON names; the JSON is `[WorkerInfo]`. (Over TCP
//! a key gets 403: `team_access`.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Env;
use drover_types::{WorkerInfo, WorkerState};

#[test]
fn workers_prints_the_table_and_the_json_of_the_same_workers() {
    let env = Env::new().with_env("DROVER_WORKER_NAME", "bench-7");
    let json = env.ok(&["workers", "--json"]);
    let workers: Vec<WorkerInfo> = serde_json::from_str(&json).unwrap();
    // The one worker of SQLite is this daemon, registered under its configured name.
    for w in &workers {
        assert_eq!(w.name, "bench-7", "{json}");
        assert_eq!(w.state, WorkerState::Live, "{json}");
    }
    let table = env.ok(&["workers"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap()
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "ADDR",
            "STARTED",
            "LAST HEARTBEAT",
            "SLOTS",
            "RUNNING",
            "STATE"
        ]
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), workers.len(), "{table}");
    for (row, w) in rows.iter().zip(&workers) {
        assert!(row.starts_with(&w.name), "{table}");
        assert!(row.trim_end().ends_with(w.state.as_str()), "{table}");
    }
    let _ = env.ok(&["daemon", "stop"]);
}
