//! GitLab's REST API (`…/api/v4`): merge requests and their notes; the project id is the
//! URL-encoded path (`group%2Fsub%2Fname`). An existing MR for the source branch answers 409.

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

pub struct Gitlab {
    api: Api,
}

#[derive(Deserialize)]
struct MergeRequest {
    iid: u64,
    web_url: String,
    state: String,
    #[serde(default)]
    draft: bool,
    /// Before GitLab 14 drafts were "work in progress".
    #[serde(default)]
    work_in_progress: bool,
}

impl MergeRequest {
    fn into_pr(self) -> PullRequest {
        let state = match self.state.as_str() {
            "opened" if self.draft || self.work_in_progress => PrState::Draft,
            "opened" => PrState::Open,
            "merged" => PrState::Merged,
            _ => PrState::Closed,
        };
        PullRequest {
            number: self.iid,
            url: self.web_url,
            state,
        }
    }
}

impl Gitlab {
    pub fn new(settings: &ForgeSettings, credential: Arc<Credential>) -> Self {
        Gitlab {
            api: Api::new(settings, credential),
        }
    }
}

#[async_trait]
impl Forge for Gitlab {
    fn kind(&self) -> ForgeKind {
        ForgeKind::Gitlab
    }

    async fn find_pr(&self, repo: &RepoRef, head: &str) -> Result<Option<PullRequest>, ForgeError> {
        let path = format!(
            "/projects/{}/merge_requests?{}",
            seg(&repo.path),
            query(&[("source_branch", head), ("state", "opened")])
        );
        let a = self.api.call(Method::GET, &path, None, repo).await?;
        let mrs: Vec<MergeRequest> = parse(&self.api, a, "merge_requests")?;
        Ok(mrs.into_iter().next().map(MergeRequest::into_pr))
    }

    async fn create_pr(&self, repo: &RepoRef, req: &PrRequest) -> Result<PullRequest, ForgeError> {
        let body = json!({
            "source_branch": req.head, "target_branch": req.base, "title": req.title,
            "description": req.body, "draft": req.draft,
        });
        let path = format!("/projects/{}/merge_requests", seg(&repo.path));
        let a = self
            .api
            .call(Method::POST, &path, Some(&body), repo)
            .await?;
        Ok(parse::<MergeRequest>(&self.api, a, "merge_request")?.into_pr())
    }

    async fn comment(&self, repo: &RepoRef, number: u64, body: &str) -> Result<(), ForgeError> {
        let path = format!(
            "/projects/{}/merge_requests/{number}/notes",
            seg(&repo.path)
        );
        self.api
            .call(Method::POST, &path, Some(&json!({ "body": body })), repo)
            .await?;
        Ok(())
    }
}
