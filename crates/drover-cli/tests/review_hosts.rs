//! Review of the many-hosts layer (docs/design.md §8). Needs the test cluster
//! (`source scripts/lib.sh && start_postgres`).
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use drover_daemon::config::Secret;
use drover_store::conformance::pg;
use drover_test_support::daemon::InProcessDaemon;
use std::path::Path;
use std::time::Duration;

/// A second daemon started under the name of a worker that is still alive (another host with
/// the same host name, a copy-pasted config) must not become that worker: both would heartbeat
/// one row, each would "take back" the other's claims and run the same attempt twice at once.
/// It refuses to start, saying why, and the live worker keeps its row.
#[test]
fn a_second_daemon_under_a_live_workers_name_refuses_to_start() {
    let a = Env::new();
    let rt = runtime();
    let url = rt.block_on(pg::fresh_database());
    let exe = Path::new(env!("CARGO_BIN_EXE_drover"));
    let u = url.clone();
    let _da = rt.block_on(InProcessDaemon::start_with(&a.home, exe, move |c| {
        c.database_url = Some(Secret::new(u));
        c.worker_name = "A".into();
        c.lease_secs = 3;
    }));
    let b = Env::new()
        .with_env("DROVER_DATABASE_URL", &url)
        .with_env("DROVER_WORKER_NAME", "A")
        .with_env("DROVER_LEASE_SECS", "3");
    let out = b.run_within(&["daemon", "--foreground"], Duration::from_secs(30));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "second worker A started: {err}");
    assert!(err.contains("worker A"), "{err}");
}
