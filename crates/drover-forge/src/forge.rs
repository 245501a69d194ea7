//! The REST subset drover uses on every forge.

use async_trait::async_trait;

use crate::error::ForgeError;
use crate::kind::ForgeKind;
use crate::repo::RepoRef;
pub use drover_types::PrState;

/// A pull (merge) request to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrRequest {
    /// The task's branch (`drover/<id>`).
    pub head: String,
    /// The branch to merge into.
    pub base: String,
    pub title: String,
    pub body: String,
    pub draft: bool,
}

/// A pull (merge) request as the forge reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// GitHub/Gitea/Bitbucket number, GitLab `iid`.
    pub number: u64,
    /// The web page of the PR.
    pub url: String,
    pub state: PrState,
}

/// One forge's REST API.
#[async_trait]
pub trait Forge: Send + Sync {
    fn kind(&self) -> ForgeKind;

    /// The open PR whose head is `head` in `repo`, if any.
    async fn find_pr(&self, repo: &RepoRef, head: &str) -> Result<Option<PullRequest>, ForgeError>;

    /// Opens a PR (no check for an existing one: see [`Forge::ensure_pr`]).
    async fn create_pr(&self, repo: &RepoRef, req: &PrRequest) -> Result<PullRequest, ForgeError>;

    /// Adds a comment to PR `number`.
    async fn comment(&self, repo: &RepoRef, number: u64, body: &str) -> Result<(), ForgeError>;

    /// The PR of `req.head`: the existing one, else a new one; `true` when this call opened it.
    /// A create refused because one exists (409/422 from a race) finds it again (`false`). A
    /// create whose answer was lost (5xx, or the forge unreachable: it may have opened the PR)
    /// looks again before it creates once more — never a second PR for one head.
    async fn ensure_pr(
        &self,
        repo: &RepoRef,
        req: &PrRequest,
    ) -> Result<(PullRequest, bool), ForgeError> {
        if let Some(pr) = self.find_pr(repo, &req.head).await? {
            return Ok((pr, false));
        }
        let mut lost_once = false;
        loop {
            match self.create_pr(repo, req).await {
                Ok(pr) => return Ok((pr, true)),
                Err(ForgeError::Api { status, .. }) if status == 409 || status == 422 => {
                    return match self.find_pr(repo, &req.head).await? {
                        Some(pr) => Ok((pr, false)),
                        None => Err(ForgeError::Api {
                            forge: repo.forge.clone(),
                            method: "POST".into(),
                            path: repo.path.clone(),
                            status,
                            message: format!(
                                "the forge refused the {} and none is open for {}",
                                self.kind().pr_noun(),
                                req.head
                            ),
                        }),
                    };
                }
                Err(e) if is_lost_answer(&e) => {
                    if let Some(pr) = self.find_pr(repo, &req.head).await? {
                        return Ok((pr, true));
                    }
                    if lost_once {
                        return Err(e);
                    }
                    lost_once = true;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// An answer that may hide a PR the forge did open: a 5xx, or no answer at all.
fn is_lost_answer(e: &ForgeError) -> bool {
    match e {
        ForgeError::Api { status, .. } => *status >= 500,
        ForgeError::Unreachable { .. } => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A forge where someone else opens the PR between drover's find and create.
    struct Racy {
        finds: AtomicU32,
        creates: AtomicU32,
        create_status: u16,
        appears: bool,
    }

    fn pr() -> PullRequest {
        PullRequest {
            number: 7,
            url: "https://forge/acme/widgets/pull/7".into(),
            state: PrState::Open,
        }
    }

    #[async_trait]
    impl Forge for Racy {
        fn kind(&self) -> ForgeKind {
            ForgeKind::Github
        }
        async fn find_pr(&self, _: &RepoRef, _: &str) -> Result<Option<PullRequest>, ForgeError> {
            let n = self.finds.fetch_add(1, Ordering::SeqCst);
            Ok((n > 0 && self.appears).then(pr))
        }
        async fn create_pr(
            &self,
            repo: &RepoRef,
            _: &PrRequest,
        ) -> Result<PullRequest, ForgeError> {
            self.creates.fetch_add(1, Ordering::SeqCst);
            Err(ForgeError::Api {
                forge: repo.forge.clone(),
                method: "POST".into(),
                path: "/pulls".into(),
                status: self.create_status,
                message: "exists".into(),
            })
        }
        async fn comment(&self, _: &RepoRef, _: u64, _: &str) -> Result<(), ForgeError> {
            Ok(())
        }
    }

    fn repo() -> RepoRef {
        RepoRef {
            forge: "gh".into(),
            kind: ForgeKind::Github,
            path: "acme/widgets".into(),
            clone_url: "https://github.com/acme/widgets.git".into(),
        }
    }

    fn req() -> PrRequest {
        PrRequest {
            head: "drover/t".into(),
            base: "main".into(),
            title: "t".into(),
            body: String::new(),
            draft: false,
        }
    }

    fn racy(status: u16, appears: bool) -> Racy {
        Racy {
            finds: AtomicU32::new(0),
            creates: AtomicU32::new(0),
            create_status: status,
            appears,
        }
    }

    #[tokio::test]
    async fn a_create_refused_as_a_duplicate_finds_the_pr_someone_else_opened() {
        for status in [409, 422] {
            let f = racy(status, true);
            let (found, opened) = f.ensure_pr(&repo(), &req()).await.unwrap();
            assert_eq!((found, opened), (pr(), false));
            assert_eq!(f.creates.load(Ordering::SeqCst), 1);
        }
    }

    #[tokio::test]
    async fn a_duplicate_answer_without_a_pr_is_an_error_not_a_loop() {
        let f = racy(409, false);
        let e = f.ensure_pr(&repo(), &req()).await.unwrap_err();
        assert!(matches!(e, ForgeError::Api { status: 409, .. }), "{e:?}");
        assert_eq!(f.creates.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_lost_answer_creates_at_most_twice() {
        let f = racy(502, false);
        let e = f.ensure_pr(&repo(), &req()).await.unwrap_err();
        assert!(matches!(e, ForgeError::Api { status: 502, .. }), "{e:?}");
        assert_eq!(f.creates.load(Ordering::SeqCst), 2);
        assert_eq!(f.finds.load(Ordering::SeqCst), 3);
    }
}
