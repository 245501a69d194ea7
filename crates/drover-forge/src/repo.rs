//! A repository on a forge.

use crate::kind::ForgeKind;

/// A repository on a forge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoRef {
    /// The forge's name (`[forges.NAME]`).
    pub forge: String,
    pub kind: ForgeKind,
    /// The repository's path on the forge, without `.git`: `owner/name` (GitLab: `group/sub/name`;
    /// Bitbucket Data Center: `PROJECT/repo`).
    pub path: String,
    /// `<git base>/<path>.git` (Bitbucket Data Center: `<git base>/scm/<path>.git`): what the
    /// task records as its `repo` and what the mirror fetches (through drover's git proxy).
    pub clone_url: String,
}

impl RepoRef {
    /// Everything before the last `/` of [`RepoRef::path`] (owner, group, project).
    pub fn owner(&self) -> &str {
        self.path.rsplit_once('/').map_or("", |(o, _)| o)
    }
    /// The last segment of [`RepoRef::path`].
    pub fn name(&self) -> &str {
        self.path.rsplit_once('/').map_or(&self.path, |(_, n)| n)
    }
}
