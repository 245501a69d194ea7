//! `drover bench api --quick` runs end to end (so the benchmark's code cannot rot): its own
//! daemon with `--listen`, a team and a key, creates, GETs and SSE followers over TCP.
#![allow(clippy::unwrap_used, clippy::expect_used)]
mod common;
use common::*;
use std::time::Duration;

#[test]
fn bench_api_quick_prints_its_figures() {
    let env = Env::new();
    let out = env.run_within(&["bench", "api", "--quick"], Duration::from_secs(240));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench api --quick exited {:?}\n{stdout}\n{stderr}",
        out.status.code()
    );
    for want in [
        "over TCP with a team's API key",
        "tasks/s",
        "GET /v1/tasks/{id}",
        "p99",
        "10 followers",
        "every follower got 50 of 50 lines",
        "daemon RSS",
    ] {
        assert!(stdout.contains(want), "no {want:?} in\n{stdout}\n{stderr}");
    }
}
