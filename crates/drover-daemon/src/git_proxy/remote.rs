//! The mirrors' hook ([`drover_sandbox::RemoteAccess`]): a forge repository's clone and fetch
//! go through the proxy with a fetch-only capability for that one repository.

use std::sync::Arc;

use drover_sandbox::{RemoteAccess, RemoteUrl};

use super::{GitProxy, Scope};

/// Installed on `Engine::sandboxes` when forges are configured.
pub struct MirrorAccess(pub Arc<GitProxy>);

impl RemoteAccess for MirrorAccess {
    fn fetch_url(&self, url: &str) -> Option<RemoteUrl> {
        let repo = self.0.repo(url)?;
        let cap = self.0.capability(Scope {
            repos: vec![repo],
            push_task: None,
        })?;
        Some(RemoteUrl {
            url: cap.url.clone(),
            guard: Box::new(cap),
        })
    }
}
