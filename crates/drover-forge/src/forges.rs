//! Which forge a `--repo` names, and the forges of a daemon.

use std::sync::Arc;

use crate::credential::Credential;
use crate::error::ForgeError;
use crate::forge::Forge;
use crate::kind::ForgeKind;
use crate::repo::RepoRef;
use crate::settings::ForgeSettings;

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

    /// What `--repo SPEC` names on a forge: `owner/name` (no scheme, not absolute; segments of
    /// `[A-Za-z0-9._-]`; GitLab allows subgroups, the other kinds exactly two segments) through
    /// the default forge; a URL through the forge whose `git` base it starts with (scheme, host,
    /// port, then the base's path up to a `/`; the longest such base wins), `.git` stripped
    /// (Bitbucket DC: the path after the base is `scm/PROJECT/repo`).
    /// `Ok(None)`: a local path, or a URL of no configured forge (cloned as is, without a
    /// credential). `owner/name` without a default forge is an error saying to add one.
    pub fn resolve(&self, spec: &str) -> Result<Option<RepoRef>, ForgeError> {
        let spec = spec.trim();
        // Never echo a token someone put in the URL.
        let shown = match url::Url::parse(spec) {
            Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
                let _ = u.set_username("");
                let _ = u.set_password(None);
                u.to_string()
            }
            _ => spec.to_string(),
        };
        let bad = |reason: String| ForgeError::BadRepo {
            repo: shown.clone(),
            reason,
        };
        if spec.contains("://") {
            let Ok(url) = url::Url::parse(spec) else {
                return Err(bad("not a valid URL".into()));
            };
            let mut best: Option<(&ForgeEntry, String)> = None;
            for e in &self.entries {
                let Some(rest) = under_base(&url, &e.settings.git) else {
                    continue;
                };
                if best
                    .as_ref()
                    .is_none_or(|(b, _)| b.settings.git.len() < e.settings.git.len())
                {
                    best = Some((e, rest));
                }
            }
            let Some((entry, rest)) = best else {
                return Ok(None);
            };
            if !url.username().is_empty() || url.password().is_some() {
                return Err(bad(format!(
                    "a {} URL must not carry a user or token: drover adds the credential of \
                     [forges.{}] itself",
                    entry.settings.kind, entry.settings.name
                )));
            }
            let mut path = rest.trim_matches('/').to_string();
            if let Some(p) = path.strip_suffix(".git") {
                path = p.to_string();
            }
            if entry.settings.kind == ForgeKind::BitbucketDc {
                match path.strip_prefix("scm/") {
                    Some(p) => path = p.to_string(),
                    None => {
                        return Err(bad(format!(
                            "Bitbucket Data Center clone URLs are {}/scm/PROJECT/repo.git",
                            entry.settings.git.trim_end_matches('/')
                        )))
                    }
                }
            }
            check_path(entry.settings.kind, &path).map_err(bad)?;
            return Ok(Some(repo_ref(entry, path)));
        }
        if spec.starts_with('/') || spec.starts_with('.') || spec.starts_with('~') {
            return Ok(None);
        }
        let segments: Vec<&str> = spec.split('/').collect();
        if segments.len() < 2 || !segments.iter().all(|s| valid_segment(s)) {
            // Not `owner/name`: a relative local path (as before forges).
            return Ok(None);
        }
        let Some(entry) = self.entries.iter().find(|e| e.settings.default) else {
            return Err(bad(
                "owner/name needs a default forge: add `default = true` to one [forges.NAME] \
                 or pass the repository's URL"
                    .into(),
            ));
        };
        let path = spec.strip_suffix(".git").unwrap_or(spec).to_string();
        check_path(entry.settings.kind, &path).map_err(bad)?;
        Ok(Some(repo_ref(entry, path)))
    }
}

/// The path of `url` below the git base `base` (same scheme, host and port; the base's path
/// ends at a `/` of the URL's path), or `None`.
fn under_base(url: &url::Url, base: &str) -> Option<String> {
    let base = url::Url::parse(base.trim_end_matches('/')).ok()?;
    if url.scheme() != base.scheme()
        || !url.host_str()?.eq_ignore_ascii_case(base.host_str()?)
        || url.port_or_known_default() != base.port_or_known_default()
    {
        return None;
    }
    let base_path = base.path().trim_end_matches('/');
    let rest = url.path().strip_prefix(base_path)?;
    rest.starts_with('/').then(|| rest.to_string())
}

fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// `path`'s shape for `kind`: GitLab `group[/sub…]/name`, every other kind `owner/name`.
fn check_path(kind: ForgeKind, path: &str) -> Result<(), String> {
    let segments: Vec<&str> = path.split('/').collect();
    if !segments.iter().all(|s| valid_segment(s)) {
        return Err(format!(
            "{path:?} is not a repository path (segments of letters, digits, `.`, `_`, `-`)"
        ));
    }
    match kind {
        ForgeKind::Gitlab if segments.len() >= 2 => Ok(()),
        ForgeKind::Gitlab => Err("GitLab repositories are group[/subgroup…]/name".into()),
        _ if segments.len() == 2 => Ok(()),
        ForgeKind::BitbucketDc => Err("Bitbucket Data Center repositories are PROJECT/repo".into()),
        _ => Err(format!("{kind} repositories are owner/name")),
    }
}

fn repo_ref(entry: &ForgeEntry, path: String) -> RepoRef {
    let git = entry.settings.git.trim_end_matches('/');
    let clone_url = if entry.settings.kind == ForgeKind::BitbucketDc {
        format!("{git}/scm/{path}.git")
    } else {
        format!("{git}/{path}.git")
    };
    RepoRef {
        forge: entry.settings.name.clone(),
        kind: entry.settings.kind,
        path,
        clone_url,
    }
}

/// The REST client of `settings.kind`.
pub fn client(settings: &ForgeSettings, credential: Arc<Credential>) -> Arc<dyn Forge> {
    match settings.kind {
        ForgeKind::Github => Arc::new(crate::github::Github::new(settings, credential)),
        ForgeKind::Gitlab => Arc::new(crate::gitlab::Gitlab::new(settings, credential)),
        ForgeKind::BitbucketCloud => Arc::new(crate::bitbucket_cloud::BitbucketCloud::new(
            settings, credential,
        )),
        ForgeKind::BitbucketDc => {
            Arc::new(crate::bitbucket_dc::BitbucketDc::new(settings, credential))
        }
        ForgeKind::Gitea => Arc::new(crate::gitea::Gitea::new(settings, credential)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::settings::CredentialSpec;
    use drover_types::Secret;

    fn settings(name: &str, kind: ForgeKind, git: &str, default: bool) -> ForgeSettings {
        ForgeSettings {
            name: name.into(),
            kind,
            api: "http://127.0.0.1:1".into(),
            git: git.into(),
            credential: CredentialSpec::Env {
                var: "T".into(),
                token: Secret::new("x"),
            },
            default,
        }
    }

    fn forges() -> Forges {
        Forges::new(
            vec![
                settings("gh", ForgeKind::Github, "https://github.com", true),
                settings(
                    "gl",
                    ForgeKind::Gitlab,
                    "https://gitlab.example.com/git",
                    false,
                ),
                settings(
                    "bb",
                    ForgeKind::BitbucketDc,
                    "https://bb.example.com:7990",
                    false,
                ),
            ],
            vec![],
        )
    }

    #[test]
    fn owner_name_goes_through_the_default_forge() {
        let r = forges().resolve("acme/widgets").unwrap().unwrap();
        assert_eq!(r.forge, "gh");
        assert_eq!(r.path, "acme/widgets");
        assert_eq!(r.clone_url, "https://github.com/acme/widgets.git");
        assert_eq!((r.owner(), r.name()), ("acme", "widgets"));
        let e = forges().resolve("acme/widgets/extra").unwrap_err();
        assert!(e.to_string().contains("owner/name"), "{e}");
    }

    #[test]
    fn owner_name_without_a_default_forge_says_what_to_do() {
        let f = Forges::new(
            vec![settings(
                "gh",
                ForgeKind::Github,
                "https://github.com",
                false,
            )],
            vec![],
        );
        let e = f.resolve("acme/widgets").unwrap_err();
        assert!(e.to_string().contains("add `default = true`"), "{e}");
    }

    #[test]
    fn urls_go_through_the_forge_whose_git_base_they_start_with() {
        let f = forges();
        let r = f
            .resolve("https://gitlab.example.com/git/grp/sub/proj.git")
            .unwrap()
            .unwrap();
        assert_eq!((r.forge.as_str(), r.path.as_str()), ("gl", "grp/sub/proj"));
        assert_eq!(
            r.clone_url,
            "https://gitlab.example.com/git/grp/sub/proj.git"
        );
        assert_eq!(r.owner(), "grp/sub");
        let r = f
            .resolve("https://bb.example.com:7990/scm/PROJ/repo.git")
            .unwrap()
            .unwrap();
        assert_eq!((r.forge.as_str(), r.path.as_str()), ("bb", "PROJ/repo"));
        assert_eq!(r.clone_url, "https://bb.example.com:7990/scm/PROJ/repo.git");
        assert!(f
            .resolve("https://bb.example.com:7990/PROJ/repo.git")
            .is_err());
        let r = f
            .resolve("https://github.com/acme/widgets")
            .unwrap()
            .unwrap();
        assert_eq!(r.path, "acme/widgets");
    }

    #[test]
    fn other_urls_and_local_paths_are_not_forge_repos() {
        let f = forges();
        // Another host, another port, a prefix that is not at a `/`, another scheme.
        assert_eq!(
            f.resolve("https://example.org/acme/widgets.git").unwrap(),
            None
        );
        assert_eq!(
            f.resolve("https://bb.example.com/scm/PROJ/repo.git")
                .unwrap(),
            None
        );
        assert_eq!(
            f.resolve("https://gitlab.example.com/gitx/a/b.git")
                .unwrap(),
            None
        );
        assert_eq!(
            f.resolve("http://github.com/acme/widgets.git").unwrap(),
            None
        );
        assert_eq!(f.resolve("/srv/repos/widgets").unwrap(), None);
        assert_eq!(f.resolve("./widgets").unwrap(), None);
        assert_eq!(f.resolve("widgets").unwrap(), None);
        assert_eq!(f.resolve("git@github.com:acme/widgets.git").unwrap(), None);
    }

    #[test]
    fn urls_with_credentials_or_odd_paths_are_refused() {
        let f = forges();
        let e = f
            .resolve("https://x-access-token:ghp_secret@github.com/acme/widgets.git")
            .unwrap_err()
            .to_string();
        assert!(e.contains("must not carry"), "{e}");
        assert!(!e.contains("ghp_secret"), "{e}");
        assert!(f.resolve("https://github.com/acme/../etc.git").is_err());
        assert!(f.resolve("https://github.com/acme").is_err());
        assert!(f.resolve("https://github.com/a/b/c").is_err());
    }
}
