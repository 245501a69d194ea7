//! What a team imposes on its tasks (docs/design.md §7), read from the store: at creation a
//! task must name a team that exists and a model on its list, and its dollar budget is capped
//! by the team's `max_usd_per_task`; the gateway grant carries the daily budget and the list.

use drover_sandbox::is_url;
use drover_store::{Store, StoreError};
use drover_types::TeamInfo;
use std::collections::HashMap;

/// Why a task may not be created for its team.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("no team named {0}")]
    NoTeam(String),
    #[error("team {team} may not use model {model}; its models: {allowed}")]
    Model {
        team: String,
        model: String,
        allowed: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What creating a task of a team comes to.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Admission {
    /// The task's dollar budget: its own, capped by the team's per-task cap (or the cap alone).
    pub max_usd: Option<f64>,
    /// The team has a daily dollar budget (which only the gateway can enforce).
    pub team_daily_budget: bool,
}

/// A team's settings, or `None` when the store has no such team.
pub async fn team(store: &dyn Store, name: &str) -> Result<Option<TeamInfo>, StoreError> {
    store.team(name).await
}

/// Checks a new task of `team` (none: no team rule applies) asking for `model` (resolved
/// through `aliases` as the gateway does) with its own `max_usd`.
pub async fn admit(
    store: &dyn Store,
    aliases: &HashMap<String, String>,
    team: Option<&str>,
    model: Option<&str>,
    max_usd: Option<f64>,
) -> Result<Admission, Refusal> {
    let Some(name) = team else {
        return Ok(Admission {
            max_usd,
            team_daily_budget: false,
        });
    };
    let t = store
        .team(name)
        .await?
        .ok_or_else(|| Refusal::NoTeam(name.to_string()))?;
    if let (Some(list), Some(model)) = (&t.allowed_models, model) {
        let resolved = aliases.get(model).map_or(model, String::as_str);
        if !list.iter().any(|m| m == model || m == resolved) {
            return Err(Refusal::Model {
                team: name.to_string(),
                model: model.to_string(),
                allowed: if list.is_empty() {
                    "none".into()
                } else {
                    list.join(", ")
                },
            });
        }
    }
    Ok(Admission {
        max_usd: cap(max_usd, t.max_usd_per_task),
        team_daily_budget: t.max_usd_per_day.is_some(),
    })
}

/// Whether `team` may start from `commit` of `repo_dir`: some branch or tag holds it other than
/// another team's task branches (`drover/<id>`; its own tasks' count). Otherwise a `ref` naming
/// another team's branch, an abbreviated sha of one of its commits or `:/text` would check out
/// that team's work.
pub async fn base_visible(
    store: &dyn Store,
    team: &str,
    repo_dir: &std::path::Path,
    commit: &str,
) -> Result<bool, drover_sandbox::SandboxError> {
    for r in drover_sandbox::refs_containing(repo_dir, commit).await? {
        let task_id = r
            .strip_prefix("refs/heads/drover/")
            .or_else(|| r.strip_prefix("refs/remotes/origin/drover/"))
            .map(|rest| rest.split('/').next().unwrap_or(rest));
        let Some(id) = task_id else {
            return Ok(true);
        };
        if let Ok(t) = store.get_task(id).await {
            if t.team.as_deref() == Some(team) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// An entry of a team's `allowed_repos`: an absolute directory or a URL (prefix).
pub fn check_repo_entry(entry: &str) -> Result<(), String> {
    let ok = !entry.trim().is_empty()
        && !entry.chars().any(char::is_control)
        && (is_url(entry) || std::path::Path::new(entry).is_absolute());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "--allow-repo {entry:?}: give an absolute directory (/srv/repos/acme) or a URL prefix \
             (https://git.example.com/acme/)"
        ))
    }
}

/// `path` made absolute without `.` and `..` (the real path when it exists, so a symlink
/// cannot lead out of an allowed directory).
fn real_path(path: &std::path::Path) -> std::path::PathBuf {
    if let Ok(p) = std::fs::canonicalize(path) {
        return p;
    }
    let mut out = std::path::PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// Whether a task may use `repo` (as the request names it) under a team's `allowed_repos`: a
/// path at or under one of the directories (compared as real paths), or a URL equal to an entry or
/// under one (`entry/…`, or any continuation of an entry ending in `/`) with no `.`/`..`
/// segment (percent-encoded ones included).
pub fn repo_allowed(allowed: &[String], repo: &str) -> bool {
    if is_url(repo) {
        let lower = repo.to_ascii_lowercase();
        let dotted = lower
            .split(['/', ':'])
            .any(|seg| matches!(seg, "." | ".." | "%2e" | "%2e%2e" | ".%2e" | "%2e."));
        if dotted || lower.contains("%2f") || lower.contains("%5c") || repo.contains('\\') {
            return false;
        }
        return allowed.iter().filter(|e| is_url(e)).any(|e| {
            repo == e
                || (e.ends_with('/') && repo.starts_with(e.as_str()))
                || repo.starts_with(&format!("{e}/"))
        });
    }
    let path = std::path::Path::new(repo);
    if !path.is_absolute() {
        return false;
    }
    let real = real_path(path);
    allowed
        .iter()
        .filter(|e| !is_url(e))
        .any(|e| real.starts_with(real_path(std::path::Path::new(e))))
}

/// A task's own budget under a team's per-task cap: the smaller, or whichever is set.
pub fn cap(own: Option<f64>, team_cap: Option<f64>) -> Option<f64> {
    match (own, team_cap) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::{cap, repo_allowed};

    #[test]
    fn allowed_repos_hold_paths_under_their_directories_and_urls_under_their_prefixes() {
        let dir = tempfile::tempdir().unwrap();
        let acme = dir.path().join("acme");
        let other = dir.path().join("other");
        std::fs::create_dir_all(acme.join("api")).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        std::os::unix::fs::symlink(&other, acme.join("link")).unwrap();
        let allowed = vec![
            acme.display().to_string(),
            "https://git.example.com/acme/".to_string(),
            "git@git.example.com:acme".to_string(),
        ];
        let p = |rel: &str| format!("{}/{rel}", dir.path().display());
        assert!(repo_allowed(&allowed, &p("acme")));
        assert!(repo_allowed(&allowed, &p("acme/api")));
        assert!(!repo_allowed(&allowed, &p("other")));
        assert!(!repo_allowed(&allowed, &p("acme/../other")));
        assert!(!repo_allowed(&allowed, &p("acme/link")), "a symlink out");
        assert!(!repo_allowed(&allowed, &p("acme-evil")));
        assert!(!repo_allowed(&allowed, "acme/api"), "relative");
        assert!(repo_allowed(
            &allowed,
            "https://git.example.com/acme/api.git"
        ));
        assert!(!repo_allowed(
            &allowed,
            "https://git.example.com/acme/../globex/api.git"
        ));
        assert!(!repo_allowed(
            &allowed,
            "https://git.example.com/acme/%2e%2e/globex/x"
        ));
        assert!(!repo_allowed(
            &allowed,
            "https://git.example.com/acme%2f..%2fglobex"
        ));
        assert!(!repo_allowed(
            &allowed,
            "https://git.example.com/globex/api.git"
        ));
        assert!(!repo_allowed(
            &allowed,
            "https://git.example.com/acmecorp/x"
        ));
        assert!(repo_allowed(&allowed, "git@git.example.com:acme/api.git"));
        assert!(!repo_allowed(
            &allowed,
            "git@git.example.com:acmecorp/api.git"
        ));
        assert!(!repo_allowed(&[], &p("acme")));
    }

    #[test]
    fn the_team_cap_lowers_a_budget_and_fills_a_missing_one() {
        assert_eq!(cap(Some(5.0), Some(2.0)), Some(2.0));
        assert_eq!(cap(Some(1.0), Some(2.0)), Some(1.0));
        assert_eq!(cap(None, Some(2.0)), Some(2.0));
        assert_eq!(cap(Some(3.0), None), Some(3.0));
        assert_eq!(cap(None, None), None);
    }
}
