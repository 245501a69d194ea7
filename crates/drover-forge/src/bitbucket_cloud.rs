//! Bitbucket Cloud's REST API (`https://api.bitbucket.org/2.0`): pull requests found with a
//! `q` filter, comments with `content.raw`. Creating a PR whose source branch already has an
//! open one returns that one (Bitbucket Cloud updates it), so no race answer exists here.

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

pub struct BitbucketCloud {
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
    html: Href,
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
            url: self.links.html.href,
            state,
        }
    }
}

impl BitbucketCloud {
    pub fn new(settings: &ForgeSettings, credential: Arc<Credential>) -> Self {
        BitbucketCloud {
            api: Api::new(settings, credential),
        }
    }

    fn repo_path(repo: &RepoRef) -> String {
        format!("/repositories/{}/{}", seg(repo.owner()), seg(repo.name()))
    }
}

#[async_trait]
impl Forge for BitbucketCloud {
    fn kind(&self) -> ForgeKind {
        ForgeKind::BitbucketCloud
    }

    async fn find_pr(&self, repo: &RepoRef, head: &str) -> Result<Option<PullRequest>, ForgeError> {
        let filter = format!("source.branch.name=\"{head}\" AND state=\"OPEN\"");
        let path = format!(
            "{}/pullrequests?{}",
            Self::repo_path(repo),
            query(&[("q", &filter)])
        );
        let a = self.api.call(Method::GET, &path, None, repo).await?;
        let page: Page = parse(&self.api, a, "pullrequests")?;
        Ok(page.values.into_iter().next().map(Pull::into_pr))
    }

    async fn create_pr(&self, repo: &RepoRef, req: &PrRequest) -> Result<PullRequest, ForgeError> {
        let body = json!({
            "title": req.title, "description": req.body, "draft": req.draft,
            "source": {"branch": {"name": req.head}},
            "destination": {"branch": {"name": req.base}},
        });
        let path = format!("{}/pullrequests", Self::repo_path(repo));
        let a = self
            .api
            .call(Method::POST, &path, Some(&body), repo)
            .await?;
        Ok(parse::<Pull>(&self.api, a, "pullrequest")?.into_pr())
    }

    async fn comment(&self, repo: &RepoRef, number: u64, body: &str) -> Result<(), ForgeError> {
        let path = format!("{}/pullrequests/{number}/comments", Self::repo_path(repo));
        self.api
            .call(
                Method::POST,
                &path,
                Some(&json!({ "content": { "raw": body } })),
                repo,
            )
            .await?;
        Ok(())
    }
}
