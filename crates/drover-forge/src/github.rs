//! GitHub's REST API (`https://api.github.com`, or GitHub Enterprise's `/api/v3`): pulls and
//! issue comments, with `Accept: application/vnd.github+json` and `X-GitHub-Api-Version:
//! 2022-11-28`. An existing PR for the head answers 422 "A pull request already exists".

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::credential::Credential;
use crate::error::ForgeError;
use crate::forge::{Forge, PrRequest, PrState, PullRequest};
use crate::http::{query, seg, Api};
use crate::kind::ForgeKind;
use crate::repo::RepoRef;
use crate::settings::ForgeSettings;

pub struct Github {
    api: Api,
}

#[derive(Deserialize)]
struct Pull {
    number: u64,
    html_url: String,
    state: String,
    #[serde(default)]
    draft: bool,
    #[serde(default)]
    merged_at: Option<String>,
}

impl Pull {
    fn into_pr(self) -> PullRequest {
        let state = match self.state.as_str() {
            "open" if self.draft => PrState::Draft,
            "open" => PrState::Open,
            _ if self.merged_at.is_some() => PrState::Merged,
            _ => PrState::Closed,
        };
        PullRequest {
            number: self.number,
            url: self.html_url,
            state,
        }
    }
}

impl Github {
    pub fn new(settings: &ForgeSettings, credential: Arc<Credential>) -> Self {
        Github {
            api: Api::new(settings, credential),
        }
    }

    fn repo_path(repo: &RepoRef) -> String {
        format!("/repos/{}/{}", seg(repo.owner()), seg(repo.name()))
    }
}

pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    api: &Api,
    v: serde_json::Value,
    what: &str,
) -> Result<T, ForgeError> {
    serde_json::from_value(v).map_err(|e| ForgeError::Api {
        forge: api.forge.clone(),
        method: "-".into(),
        path: what.to_string(),
        status: 200,
        message: format!("unreadable answer: {e}"),
    })
}

#[async_trait]
impl Forge for Github {
    fn kind(&self) -> ForgeKind {
        ForgeKind::Github
    }

    async fn find_pr(&self, repo: &RepoRef, head: &str) -> Result<Option<PullRequest>, ForgeError> {
        let path = format!(
            "{}/pulls?{}",
            Self::repo_path(repo),
            query(&[
                ("head", &format!("{}:{head}", repo.owner())),
                ("state", "open"),
            ])
        );
        let a = self.api.call(Method::GET, &path, None, repo).await?;
        let pulls: Vec<Pull> = parse(&self.api, a, "pulls")?;
        Ok(pulls.into_iter().next().map(Pull::into_pr))
    }

    async fn create_pr(&self, repo: &RepoRef, req: &PrRequest) -> Result<PullRequest, ForgeError> {
        let body = json!({
            "title": req.title, "head": req.head, "base": req.base, "body": req.body,
            "draft": req.draft,
        });
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
