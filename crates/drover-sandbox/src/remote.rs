//! How the mirrors reach a remote: a hook the daemon installs ([`RemoteAccess`]) gives git a URL
//! to fetch a forge repository through (drover's git proxy) so no credential is ever in a git
//! process's args, env or config; the mirror's `origin` stays the clean clone URL. And
//! coalescing: concurrent resolves of one URL fetch once ([`FetchCounts`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// A URL to reach a remote through, valid while `guard` lives.
pub struct RemoteUrl {
    pub url: String,
    pub guard: Box<dyn Send + Sync>,
}

/// Installed by the daemon ([`crate::Sandboxes::set_remote_access`]).
pub trait RemoteAccess: Send + Sync {
    /// The URL git fetches `url` through, or `None`: fetch `url` as it is.
    fn fetch_url(&self, url: &str) -> Option<RemoteUrl>;
}

/// The hook, set at most once, shared by clones of [`crate::Sandboxes`].
#[derive(Clone, Default)]
pub(crate) struct Remote(Arc<OnceLock<Arc<dyn RemoteAccess>>>);

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "Remote(hook)"
        } else {
            "Remote(none)"
        })
    }
}

impl Remote {
    pub fn set(&self, hook: Arc<dyn RemoteAccess>) {
        let _ = self.0.set(hook);
    }
    /// The URL to fetch `url` through (and its guard), or `url` itself.
    pub fn source(&self, url: &str) -> (String, Option<RemoteUrl>) {
        match self.0.get().and_then(|h| h.fetch_url(url)) {
            Some(r) => (r.url.clone(), Some(r)),
            None => (url.to_string(), None),
        }
    }
}

/// Per mirror: how many fetches began, and the number of the last one that completed. A resolve
/// that arrived when `began` was N may reuse any fetch numbered above N once it completed: it
/// began after the request arrived, so it saw everything the request could want.
#[derive(Debug, Clone, Default)]
pub(crate) struct FetchCounts(Arc<Mutex<HashMap<PathBuf, (u64, u64)>>>);

impl FetchCounts {
    fn with<T>(&self, dir: &Path, f: impl FnOnce(&mut (u64, u64)) -> T) -> T {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(m.entry(dir.to_path_buf()).or_default())
    }
    /// On arrival: the number of fetches begun so far.
    pub fn arrived(&self, dir: &Path) -> u64 {
        self.with(dir, |c| c.0)
    }
    /// Under the mirror's lock: whether a fetch begun after `arrived` has completed.
    pub fn fresh_since(&self, dir: &Path, arrived: u64) -> bool {
        self.with(dir, |c| c.1 > arrived)
    }
    /// Under the mirror's lock: a fetch begins; returns its number.
    pub fn begin(&self, dir: &Path) -> u64 {
        self.with(dir, |c| {
            c.0 += 1;
            c.0
        })
    }
    pub fn end(&self, dir: &Path, n: u64) {
        self.with(dir, |c| c.1 = c.1.max(n))
    }
}
