//! BitbucketDc's REST API: not yet built.

use std::sync::Arc;

use async_trait::async_trait;

use crate::credential::Credential;
use crate::error::ForgeError;
use crate::forge::{Forge, PrRequest, PullRequest};
use crate::kind::ForgeKind;
use crate::repo::RepoRef;
use crate::settings::ForgeSettings;

pub struct BitbucketDc {
    #[allow(dead_code)]
    api: String,
    #[allow(dead_code)]
    credential: Arc<Credential>,
}

impl BitbucketDc {
    pub fn new(settings: &ForgeSettings, credential: Arc<Credential>) -> Self {
        BitbucketDc {
            api: settings.api.clone(),
            credential,
        }
    }

    fn unsupported(&self, what: &str) -> ForgeError {
        ForgeError::Unsupported {
            kind: self.kind(),
            what: what.to_string(),
        }
    }
}

#[async_trait]
impl Forge for BitbucketDc {
    fn kind(&self) -> ForgeKind {
        ForgeKind::BitbucketDc
    }

    async fn find_pr(
        &self,
        _repo: &RepoRef,
        _head: &str,
    ) -> Result<Option<PullRequest>, ForgeError> {
        Err(self.unsupported("finding a pull request"))
    }

    async fn create_pr(
        &self,
        _repo: &RepoRef,
        _req: &PrRequest,
    ) -> Result<PullRequest, ForgeError> {
        Err(self.unsupported("opening a pull request"))
    }

    async fn comment(&self, _repo: &RepoRef, _number: u64, _body: &str) -> Result<(), ForgeError> {
        Err(self.unsupported("commenting"))
    }
}
