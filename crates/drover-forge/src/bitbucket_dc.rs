//! Bitbucket Data Center's REST API (`…/rest/api/1.0`): pull requests of a project's
//! repository, found by their `fromRef` (`at=refs/heads/B&direction=OUTGOING`). An existing PR
//! for the same refs answers 409 `DuplicatePullRequestException`.

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::credential::Credential;
use crate::error::ForgeError;
use crate::forge::{Forge, PrRequest, PrState, PullRequest};
use crate::github::parse;
use crate::http::{query, seg, Api};
use crate::kind::ForgeKind;
use crate::repo::RepoRef;
use crate::settings::ForgeSettings;

pub struct BitbucketDc {
    api: Api,
}

#[derive(Deserialize)]
struct Page {
    values: Vec<Pull>,
}

#[derive(Deserialize)]
struct Pull {
    id: u64,
    state: String,
    #[serde(default)]
    draft: bool,
    links: Links,
}

#[derive(Deserialize)]
struct Links {
    #[serde(rename = "self", default)]
    this: Vec<Href>,
}

#[derive(Deserialize)]
struct Href {
    href: String,
}

impl Pull {
    fn into_pr(self) -> PullRequest {
        let state = match self.state.as_str() {
            "OPEN" if self.draft => PrState::Draft,
            "OPEN" => PrState::Open,
            "MERGED" => PrState::Merged,
            _ => PrState::Closed,
        };
        PullRequest {
            number: self.id,
            url: self
                .links
                .this
                .into_iter()
                .next()
                .map(|h| h.href)
                .unwrap_or_default(),
            state,
        }
    }
}

impl BitbucketDc {
    pub fn new(settings: &ForgeSettings, credential: Arc<Credential>) -> Self {
        BitbucketDc {
            api: Api::new(settings, credential),
        }
    }

    fn repo_path(repo: &RepoRef) -> String {
        format!("/projects/{}/repos/{}", seg(repo.owner()), seg(repo.name()))
    }
}

#[async_trait]
impl Forge for BitbucketDc {
    fn kind(&self) -> ForgeKind {
        ForgeKind::BitbucketDc
    }

    async fn find_pr(&self, repo: &RepoRef, head: &str) -> Result<Option<PullRequest>, ForgeError> {
        let at = format!("refs/heads/{head}");
        let path = format!(
            "{}/pull-requests?{}",
            Self::repo_path(repo),
            query(&[("at", &at), ("direction", "OUTGOING"), ("state", "OPEN")])
        );
        let a = self.api.call(Method::GET, &path, None, repo).await?;
        let page: Page = parse(&self.api, a, "pull-requests")?;
        Ok(page.values.into_iter().next().map(Pull::into_pr))
    }

    async fn create_pr(&self, repo: &RepoRef, req: &PrRequest) -> Result<PullRequest, ForgeError> {
        let repository = json!({"slug": repo.name(), "project": {"key": repo.owner()}});
        let body = json!({
            "title": req.title, "description": req.body, "draft": req.draft,
            "fromRef": {"id": format!("refs/heads/{}", req.head), "repository": repository},
            "toRef": {"id": format!("refs/heads/{}", req.base), "repository": repository},
        });
        let path = format!("{}/pull-requests", Self::repo_path(repo));
        let a = self
            .api
            .call(Method::POST, &path, Some(&body), repo)
            .await?;
        Ok(parse::<Pull>(&self.api, a, "pull-request")?.into_pr())
    }

    async fn comment(&self, repo: &RepoRef, number: u64, body: &str) -> Result<(), ForgeError> {
        let path = format!("{}/pull-requests/{number}/comments", Self::repo_path(repo));
        self.api
            .call(Method::POST, &path, Some(&json!({ "text": body })), repo)
            .await?;
        Ok(())
    }
}
