//! Waiting for a condition with a deadline (for states a test cannot be told about).

use std::time::{Duration, Instant};

/// Polls `cond` every 20 ms until it holds; fails the test after `limit`.
pub fn poll(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The async form of [`poll`]: checks `cond` every 10 ms; fails the test after `limit`.
pub async fn eventually(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: not reached in {limit:?}");
}
