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

/// Calls `f` every `every` until it gives a value, and returns it; fails the test after
/// `limit`.
pub fn some<T>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(every);
    }
}

/// Fetches a value every `every` until `pred` holds for it, and returns it; fails the test
/// after `limit`, showing the last value (`{:#}`: pretty JSON for a `serde_json::Value`).
pub fn until<T: std::fmt::Display>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut fetch: impl FnMut() -> T,
    pred: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        let v = fetch();
        if pred(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {v:#}"
        );
        std::thread::sleep(every);
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
