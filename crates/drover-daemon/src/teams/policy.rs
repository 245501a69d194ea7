//! What a team imposes on its tasks (docs/design.md §7), read from the store: at creation a
//! task must name a team that exists and a model on its list, and its dollar budget is capped
//! by the team's `max_usd_per_task`; the gateway grant carries the daily budget and the list.

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

/// A task's own budget under a team's per-task cap: the smaller, or whichever is set.
pub fn cap(own: Option<f64>, team_cap: Option<f64>) -> Option<f64> {
    match (own, team_cap) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::cap;

    #[test]
    fn the_team_cap_lowers_a_budget_and_fills_a_missing_one() {
        assert_eq!(cap(Some(5.0), Some(2.0)), Some(2.0));
        assert_eq!(cap(Some(1.0), Some(2.0)), Some(1.0));
        assert_eq!(cap(None, Some(2.0)), Some(2.0));
        assert_eq!(cap(Some(3.0), None), Some(3.0));
        assert_eq!(cap(None, None), None);
    }
}
