//! Gitea's (and Forgejo's) REST API (`…/api/v1`): the open pulls are listed page by page and
//! the head branch matched here (the API has no head filter); a draft is a title starting
//! `WIP: `. An existing PR for the same head and base answers 409.

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

/// Pulls a page (Gitea's maximum).
const PAGE: usize = 50;
/// Pages read at most when looking for a head (2,500 open pulls).
const MAX_PAGES: usize = 50;

pub struct Gitea {
    api: Api,
}

#[derive(Deserialize)]
struct Pull {
    number: u64,
    html_url: String,
    state: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    draft: Option<bool>,
    #[serde(default)]
    merged: bool,
    head: Ref,
}

#[derive(Deserialize)]
struct Ref {
    #[serde(rename = "ref")]
    name: String,
}

impl Pull {
    fn into_pr(self) -> PullRequest {
        let draft = self.draft.unwrap_or_else(|| is_wip(&self.title));
        let state = match self.state.as_str() {
            "open" if draft => PrState::Draft,
            "open" => PrState::Open,
            _ if self.merged => PrState::Merged,
            _ => PrState::Closed,
        };
        PullRequest {
            number: self.number,
            url: self.html_url,
            state,
        }
    }
}

fn is_wip(title: &str) -> bool {
    let t = title.to_ascii_lowercase();
    t.starts_with("wip:") || t.starts_with("[wip]")
}

impl Gitea {
    pub fn new(settings: &ForgeSettings, credential: Arc<Credential>) -> Self {
        Gitea {
            api: Api::new(settings, credential),
        }
    }

    fn repo_path(repo: &RepoRef) -> String {
        format!("/repos/{}/{}", seg(repo.owner()), seg(repo.name()))
    }
}

#[async_trait]
impl Forge for Gitea {
    fn kind(&self) -> ForgeKind {
        ForgeKind::Gitea
    }

    async fn find_pr(&self, repo: &RepoRef, head: &str) -> Result<Option<PullRequest>, ForgeError> {
        for page in 1..=MAX_PAGES {
            let path = format!(
                "{}/pulls?{}",
                Self::repo_path(repo),
                query(&[
                    ("state", "open"),
                    ("page", &page.to_string()),
                    ("limit", &PAGE.to_string()),
                ])
            );
            let a = self.api.call(Method::GET, &path, None, repo).await?;
            let pulls: Vec<Pull> = parse(&self.api, a, "pulls")?;
            let n = pulls.len();
            if let Some(p) = pulls.into_iter().find(|p| p.head.name == head) {
                return Ok(Some(p.into_pr()));
            }
            if n < PAGE {
                break;
            }
        }
        Ok(None)
    }

    async fn create_pr(&self, repo: &RepoRef, req: &PrRequest) -> Result<PullRequest, ForgeError> {
        let title = if req.draft && !is_wip(&req.title) {
            format!("WIP: {}", req.title)
        } else {
            req.title.clone()
        };
        let body = json!({"title": title, "head": req.head, "base": req.base, "body": req.body});
        let path = format!("{}/pulls", Self::repo_path(repo));
        let a = self
            .api
            .call(Method::POST, &path, Some(&body), repo)
            .await?;
        Ok(parse::<Pull>(&self.api, a, "pull")?.into_pr())
    }

    async fn comment(&self, repo: &RepoRef, number: u64, body: &str) -> Result<(), ForgeError> {
        let path = format!("{}/issues/{number}/comments", Self::repo_path(repo));
        self.api
            .call(Method::POST, &path, Some(&json!({ "body": body })), repo)
            .await?;
        Ok(())
    }
}
