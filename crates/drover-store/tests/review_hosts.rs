//! Review of the many-hosts layer: what a new user sees when the database cannot be reached.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use drover_store::PgStore;
use std::time::{Duration, Instant};

/// A database nobody listens on: `open` fails at once (not after the pool's 10 s acquire
/// timeout) with one line naming where it tried and why, never the password.
#[tokio::test]
async fn an_unreachable_database_fails_fast_naming_host_and_reason_not_password() {
    // Port 1 on loopback: refused at once.
    let url = "postgres://drover:sekrit123@127.0.0.1:1/drover";
    let t = Instant::now();
    let err = match PgStore::open(url).await {
        Ok(_) => panic!("opened a database on port 1"),
        Err(e) => e.to_string(),
    };
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}: {err}",
        t.elapsed()
    );
    assert!(!err.contains("sekrit123"), "{err}");
    assert!(!err.contains("timed out"), "{err}");
    assert!(err.contains("127.0.0.1:1"), "{err}");
    assert!(err.to_lowercase().contains("refused"), "{err}");
    assert!(!err.contains('\n'), "{err}");
}
