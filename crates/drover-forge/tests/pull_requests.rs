//! Each kind's REST client against the fake forge: a PR is opened once however often it is
//! asked for (also when the create's answer is lost), the "exists" answer of each kind is the
//! race answer `ensure_pr` handles, comments land, drafts are drafts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use drover_forge::{ForgeError, ForgeKind, PrState};
use drover_test_support::fake_forge::FakePrState;
use drover_test_support::forge_tokens::Scopes;

#[tokio::test]
async fn a_pr_asked_for_twice_is_opened_once_on_every_kind() {
    for kind in ForgeKind::ALL {
        let (fake, forges, repo) = forge_with_token(kind, "tok-1", Scopes::ALL);
        let api = &forges.get(&repo.forge).unwrap().api;
        let req = pr_request("drover/t-1", false);
        let (first, opened) = api.ensure_pr(&repo, &req).await.unwrap();
        assert!(opened, "{kind}: the first ask opens the PR");
        assert_eq!(first.state, PrState::Open, "{kind}");
        let (second, opened) = api.ensure_pr(&repo, &req).await.unwrap();
        assert!(!opened, "{kind}: the second ask finds it");
        assert_eq!(first, second, "{kind}");
        let prs = fake.prs(repo_path(kind));
        assert_eq!(prs.len(), 1, "{kind}: one PR, not two: {prs:?}");
        assert_eq!(prs[0].head, "drover/t-1", "{kind}");
        assert_eq!(prs[0].base, "main", "{kind}");
        assert_eq!(prs[0].title, "Upgrade the parser", "{kind}");
        assert_eq!(prs[0].body, "Opened by drover.", "{kind}");
        assert_eq!(first.number, prs[0].number, "{kind}");
        assert!(
            first.url.contains(&prs[0].number.to_string()),
            "{kind}: {}",
            first.url
        );
        // A closed PR of the same head is not "the open one": a new one is opened.
        fake.set_state(repo_path(kind), first.number, FakePrState::Closed);
        let (third, opened) = api.ensure_pr(&repo, &req).await.unwrap();
        assert!(opened && third.number != first.number, "{kind}");
    }
}

#[tokio::test]
async fn a_lost_create_answer_finds_the_pr_instead_of_opening_another() {
    for kind in ForgeKind::ALL {
        let (fake, forges, repo) = forge_with_token(kind, "tok-1", Scopes::ALL);
        let api = &forges.get(&repo.forge).unwrap().api;
        fake.lose_next_create_answer();
        let (pr, _) = api
            .ensure_pr(&repo, &pr_request("drover/t-2", false))
            .await
            .unwrap();
        let prs = fake.prs(repo_path(kind));
        assert_eq!(prs.len(), 1, "{kind}: {prs:?}");
        assert_eq!(pr.number, prs[0].number, "{kind}");
        let statuses: Vec<u16> = fake
            .requests()
            .into_iter()
            .filter(|(m, _, _)| m == "POST")
            .map(|(_, _, s)| s)
            .collect();
        assert_eq!(statuses, vec![502], "{kind}: one create, its answer lost");
    }
}

#[tokio::test]
async fn each_kinds_exists_answer_is_the_race_answer() {
    for kind in ForgeKind::ALL {
        let (fake, forges, repo) = forge_with_token(kind, "tok-1", Scopes::ALL);
        let api = &forges.get(&repo.forge).unwrap().api;
        let n = fake.add_pr(repo_path(kind), "drover/t-3", "main", "someone else's");
        match api.create_pr(&repo, &pr_request("drover/t-3", false)).await {
            Err(ForgeError::Api { status, .. }) => {
                let expected = if kind == ForgeKind::Github { 422 } else { 409 };
                assert_eq!(status, expected, "{kind}");
            }
            // Bitbucket Cloud answers with the open PR itself.
            Ok(pr) if kind == ForgeKind::BitbucketCloud => assert_eq!(pr.number, n),
            other => panic!("{kind}: {other:?}"),
        }
        assert_eq!(fake.prs(repo_path(kind)).len(), 1, "{kind}");
    }
}

#[tokio::test]
async fn comments_land_on_the_pr() {
    for kind in ForgeKind::ALL {
        let (fake, forges, repo) = forge_with_token(kind, "tok-1", Scopes::ALL);
        let api = &forges.get(&repo.forge).unwrap().api;
        let (pr, _) = api
            .ensure_pr(&repo, &pr_request("drover/t-4", false))
            .await
            .unwrap();
        api.comment(&repo, pr.number, "needs-approval: CI configuration changed")
            .await
            .unwrap();
        assert_eq!(
            fake.comments(repo_path(kind), pr.number),
            vec!["needs-approval: CI configuration changed".to_string()],
            "{kind}"
        );
        let e = api.comment(&repo, pr.number + 100, "x").await.unwrap_err();
        assert!(matches!(e, ForgeError::NotFound { .. }), "{kind}: {e}");
    }
}

#[tokio::test]
async fn drafts_are_drafts_on_every_kind() {
    for kind in ForgeKind::ALL {
        let (fake, forges, repo) = forge_with_token(kind, "tok-1", Scopes::ALL);
        let api = &forges.get(&repo.forge).unwrap().api;
        let (pr, _) = api
            .ensure_pr(&repo, &pr_request("drover/t-5", true))
            .await
            .unwrap();
        assert_eq!(pr.state, PrState::Draft, "{kind}");
        let stored = &fake.prs(repo_path(kind))[0];
        assert!(stored.draft, "{kind}");
        if kind == ForgeKind::Gitea {
            assert_eq!(stored.title, "WIP: Upgrade the parser");
        } else {
            assert_eq!(stored.title, "Upgrade the parser", "{kind}");
        }
        let found = api.find_pr(&repo, "drover/t-5").await.unwrap().unwrap();
        assert_eq!(found.state, PrState::Draft, "{kind}");
    }
}

#[tokio::test]
async fn github_requests_carry_the_api_headers() {
    let (fake, forges, repo) = forge_with_token(ForgeKind::Github, "tok-1", Scopes::ALL);
    let api = &forges.get(&repo.forge).unwrap().api;
    api.find_pr(&repo, "drover/t-6").await.unwrap();
    let log = fake.request_log();
    let r = &log[0];
    assert_eq!(r.path, "/repos/acme/widgets/pulls");
    assert!(r.query.contains("head=acme%3Adrover%2Ft-6"), "{}", r.query);
    assert_eq!(r.headers["accept"], "application/vnd.github+json");
    assert_eq!(r.headers["x-github-api-version"], "2022-11-28");
    assert!(r.headers["user-agent"].starts_with("drover/"));
}

#[tokio::test]
async fn gitlab_uses_the_url_encoded_project_path() {
    let (fake, forges, repo) = forge_with_token(ForgeKind::Gitlab, "tok-1", Scopes::ALL);
    let api = &forges.get(&repo.forge).unwrap().api;
    api.ensure_pr(&repo, &pr_request("drover/t-7", false))
        .await
        .unwrap();
    let paths: Vec<String> = fake.requests().into_iter().map(|(_, p, _)| p).collect();
    assert!(
        paths
            .iter()
            .all(|p| p == "/api/v4/projects/acme%2Fplatform%2Fwidgets/merge_requests"),
        "{paths:?}"
    );
}

#[tokio::test]
async fn gitea_pages_through_open_pulls_to_find_the_head() {
    let (fake, forges, repo) = forge_with_token(ForgeKind::Gitea, "tok-1", Scopes::ALL);
    let api = &forges.get(&repo.forge).unwrap().api;
    for i in 0..60 {
        fake.add_pr("acme/widgets", &format!("feature/{i}"), "main", "other");
    }
    let n = fake.add_pr("acme/widgets", "drover/t-8", "main", "ours");
    let found = api.find_pr(&repo, "drover/t-8").await.unwrap().unwrap();
    assert_eq!(found.number, n);
    let pages = fake
        .request_log()
        .iter()
        .filter(|r| r.method == "GET")
        .count();
    assert_eq!(pages, 2, "61 open pulls are two pages of 50");
}
