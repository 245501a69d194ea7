//! A task's repositories on forges, its pull requests and the PR options it was asked for
//! (docs/design.md §9).

use serde::{Deserialize, Serialize};

/// Where a pull (merge) request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PrState {
    Open,
    Draft,
    Merged,
    Closed,
}

impl PrState {
    pub fn as_str(self) -> &'static str {
        match self {
            PrState::Open => "open",
            PrState::Draft => "draft",
            PrState::Merged => "merged",
            PrState::Closed => "closed",
        }
    }
}

/// One pull (merge) request a task opened or found (task JSON `prs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PrInfo {
    /// The repository as the task names it (`repo`, or the `repos[].repo` of a multi-repo task).
    pub repo: String,
    pub url: String,
    pub number: u64,
    pub state: PrState,
}

/// One repository of a multi-repo task (task JSON `repos`; the first is also the task's `repo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskRepo {
    /// As given (`owner/name`, URL or path) — after resolution through a forge, its clone URL.
    pub repo: String,
    pub base_ref: String,
    /// `drover/<task-id>`.
    pub branch: String,
    /// The commit the work was recorded as (`None` until the task committed it).
    #[serde(default)]
    pub commit: Option<String>,
    /// The commit `base_ref` resolved to at creation.
    #[serde(default)]
    pub base_commit: Option<String>,
    /// The checkout's directory name inside the task's workspace (the checkout is `<workspace>/<dir>`).
    #[serde(default)]
    pub dir: Option<String>,
}

/// `--pr [--draft] [--base BRANCH] [--pr-title T] [--allow-ci-changes]`: open a PR for the task's
/// branch once it succeeded (docs/design.md §9). Absent: push nothing, open nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PrOptions {
    #[serde(default)]
    pub draft: bool,
    /// The branch to merge into (default: the task's `base_ref` when it is a branch, else the
    /// repository's default branch).
    #[serde(default)]
    pub base: Option<String>,
    /// Default: the task's name, else the prompt's first line (cut).
    #[serde(default)]
    pub title: Option<String>,
    /// A change to CI configuration opens a normal PR instead of a draft marked
    /// `needs-approval`.
    #[serde(default)]
    pub allow_ci_changes: bool,
}

/// `pr` in a request: an options object (unknown fields refused), `true` (the defaults), or
/// `false`/`null` (no PR).
pub(crate) fn de_pr<'de, D>(d: D) -> Result<Option<PrOptions>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Wire {
        #[serde(default)]
        draft: bool,
        #[serde(default)]
        base: Option<String>,
        #[serde(default)]
        title: Option<String>,
        #[serde(default)]
        allow_ci_changes: bool,
    }
    #[derive(Deserialize)]
    #[serde(
        untagged,
        expecting = "`pr`: an object {draft, base, title, allow_ci_changes} or a boolean"
    )]
    enum Pr {
        Flag(bool),
        Options(Wire),
    }
    Ok(match Option::<Pr>::deserialize(d)? {
        None | Some(Pr::Flag(false)) => None,
        Some(Pr::Flag(true)) => Some(PrOptions::default()),
        Some(Pr::Options(w)) => Some(PrOptions {
            draft: w.draft,
            base: w.base,
            title: w.title,
            allow_ci_changes: w.allow_ci_changes,
        }),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    /// A body with a `pr` field read as `RunRequest` and `PoolRequest` read theirs.
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(default, deserialize_with = "super::de_pr")]
        pr: Option<super::PrOptions>,
    }

    fn pr(body: &str) -> Result<Option<super::PrOptions>, String> {
        let v = format!(r#"{{"repo": "a/b"{body}}}"#);
        serde_json::from_str::<Body>(&v)
            .map(|r| r.pr)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn pr_is_an_object_or_a_flag() {
        assert_eq!(pr("").unwrap(), None);
        assert_eq!(pr(r#", "pr": null"#).unwrap(), None);
        assert_eq!(pr(r#", "pr": false"#).unwrap(), None);
        assert_eq!(pr(r#", "pr": true"#).unwrap(), Some(Default::default()));
        let o = pr(r#", "pr": {"draft": true, "base": "dev", "title": "T"}"#)
            .unwrap()
            .unwrap();
        assert!(o.draft && !o.allow_ci_changes);
        assert_eq!(
            (o.base.as_deref(), o.title.as_deref()),
            (Some("dev"), Some("T"))
        );
        assert!(pr(r#", "pr": {"draf": true}"#).is_err());
        assert!(pr(r#", "pr": "yes""#).unwrap_err().contains("`pr`"));
    }
}
