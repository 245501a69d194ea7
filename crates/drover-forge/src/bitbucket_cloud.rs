//! BitbucketCloud's REST API: not yet built.

use std::sync::Arc;

use async_trait::async_trait;

use crate::credential::Credential;
use crate::error::ForgeError;
use crate::forge::{Forge, PrRequest, PullRequest};
use crate::kind::ForgeKind;
use crate::repo::RepoRef;
use crate::settings::ForgeSettings;

pub struct BitbucketCloud {
    #[allow(dead_code)]
    api: String,
    #[allow(dead_code)]
    credential: Arc<Credential>,
}

impl BitbucketCloud {
    pub fn new(settings: &ForgeSettings, credential: Arc<Credential>) -> Self {
        BitbucketCloud {
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
impl Forge for BitbucketCloud {
    fn kind(&self) -> ForgeKind {
        ForgeKind::BitbucketCloud
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
