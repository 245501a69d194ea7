//! Rate limits are per host: a 429 with `Retry-After: 2` makes the retried request, and a
//! concurrent one to the same host, wait at least 2 s; another host does not wait; a limit
//! longer than drover waits is `RateLimited` at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use drover_forge::{ForgeError, ForgeKind};
use drover_test_support::forge_tokens::Scopes;
use drover_test_support::poll::eventually;

#[tokio::test]
async fn retry_after_holds_every_request_to_the_host_and_no_other_host() {
    for kind in ForgeKind::ALL {
        let (fake, forges, repo) = forge_with_token(kind, "tok-1", Scopes::ALL);
        let (other, other_forges, other_repo) = forge_with_token(kind, "tok-1", Scopes::ALL);
        let forges = Arc::new(forges);
        fake.fail_next("GET", "", 429, Some(2));
        let first = {
            let (forges, repo) = (forges.clone(), repo.clone());
            tokio::spawn(async move {
                let api = forges.get(&repo.forge).unwrap().api.clone();
                api.find_pr(&repo, "drover/a").await
            })
        };
        eventually("the 429", Duration::from_secs(10), || {
            fake.requests().iter().any(|r| r.2 == 429)
        })
        .await;
        // A request to the same host, from another client, while the limit holds.
        let same_host = {
            let f2 = forges_for(&fake, kind);
            let repo = repo.clone();
            tokio::spawn(async move {
                let api = f2.get(&repo.forge).unwrap().api.clone();
                api.find_pr(&repo, "drover/b").await
            })
        };
        // Another host answers at once.
        let t = Instant::now();
        let api = &other_forges.get(&other_repo.forge).unwrap().api;
        api.find_pr(&other_repo, "drover/c").await.unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{kind}: another host waited"
        );
        assert!(other.requests().iter().all(|r| r.2 == 200));

        first.await.unwrap().unwrap();
        same_host.await.unwrap().unwrap();
        let log = fake.request_log();
        let limited = log.iter().find(|r| r.status == 429).unwrap().at;
        let later: Vec<Duration> = log
            .iter()
            .filter(|r| r.status == 200)
            .map(|r| r.at.duration_since(limited))
            .collect();
        assert_eq!(
            later.len(),
            2,
            "{kind}: the retry and the concurrent request"
        );
        for d in later {
            assert!(
                d >= Duration::from_secs(2),
                "{kind}: sent {d:?} after the 429"
            );
        }
    }
}

fn forges_for(
    fake: &drover_test_support::fake_forge::FakeForge,
    _kind: ForgeKind,
) -> Arc<drover_forge::Forges> {
    Arc::new(drover_forge::Forges::new(
        vec![settings(fake, env_token("tok-1"))],
        cmd_env(),
    ))
}

#[tokio::test]
async fn github_secondary_limits_and_a_wait_too_long_are_rate_limited() {
    let (fake, forges, repo) = forge_with_token(ForgeKind::Github, "tok-1", Scopes::ALL);
    let api = &forges.get(&repo.forge).unwrap().api;
    // GitHub's secondary limit: 403 with retry-after is a rate limit, not a permission.
    fake.fail_next("GET", "/pulls", 403, Some(1));
    let t = Instant::now();
    api.find_pr(&repo, "drover/a").await.unwrap();
    assert!(t.elapsed() >= Duration::from_secs(1));
    // A limit beyond the 120 s drover waits: RateLimited at once, saying how long.
    fake.fail_next("GET", "/pulls", 429, Some(3600));
    let t = Instant::now();
    let e = api.find_pr(&repo, "drover/a").await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(e, ForgeError::RateLimited { retry_after_secs, .. } if retry_after_secs >= 3500),
        "{e:?}"
    );
    // And the host stays limited for the next request too, without asking the forge.
    let before = fake.requests().len();
    let e = api.find_pr(&repo, "drover/a").await.unwrap_err();
    assert!(matches!(e, ForgeError::RateLimited { .. }), "{e:?}");
    assert_eq!(fake.requests().len(), before);
}

#[tokio::test]
async fn at_most_three_retries() {
    let (fake, forges, repo) = forge_with_token(ForgeKind::Gitea, "tok-1", Scopes::ALL);
    let api = &forges.get(&repo.forge).unwrap().api;
    for _ in 0..4 {
        fake.fail_next("GET", "/pulls", 429, Some(0));
    }
    let e = api.find_pr(&repo, "drover/a").await.unwrap_err();
    assert!(matches!(e, ForgeError::RateLimited { .. }), "{e:?}");
    assert_eq!(fake.requests().len(), 4, "the request and three retries");
}

#[tokio::test]
async fn github_primary_limit_waits_for_the_reset() {
    let (fake, forges, repo) = forge_with_token(ForgeKind::Github, "tok-1", Scopes::ALL);
    let api = &forges.get(&repo.forge).unwrap().api;
    fake.exhaust_next("GET", "/pulls", 1);
    let t = Instant::now();
    api.find_pr(&repo, "drover/a").await.unwrap();
    // The reset is whole epoch seconds: at least until the next second has begun.
    assert!(t.elapsed() >= Duration::from_secs(1), "{:?}", t.elapsed());
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.2).collect();
    assert_eq!(statuses, vec![403, 200]);
}
