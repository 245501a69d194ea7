//! What a task's agent (and its gates) get from the daemon: the `DROVER_*` environment, the task's
//! own provider key, and the budgets and models its gateway grant allows. A leaf of the engine.
//! The rest of a child's environment comes from an allow-list ([`crate::child_env`]).

use super::Engine;
use drover_store::TaskRecord;

/// What an agent (or gate) needs to reach this daemon from its sandbox (e.g. `drover lock`).
pub(crate) fn task_key(engine: &Engine, id: &str) -> Option<String> {
    engine
        .task_keys
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(id)
        .cloned()
}

/// The budgets and model list a task's pool and team impose (see `[teams.NAME]` in config).
pub(crate) async fn grant_policy(
    engine: &Engine,
    task: &TaskRecord,
) -> crate::gateway::GrantPolicy {
    let pool = match task.pool.as_deref() {
        Some(name) => engine.store.get_pool(name).await.ok(),
        None => None,
    };
    let team = task
        .team
        .as_deref()
        .and_then(|t| engine.config.teams.get(t));
    let lists: Vec<&Vec<String>> = [
        pool.as_ref().and_then(|p| p.allowed_models.as_ref()),
        team.and_then(|t| t.allowed_models.as_ref()),
    ]
    .into_iter()
    .flatten()
    .collect();
    let allowed_models = match lists.as_slice() {
        [] => None,
        [one] => Some((*one).clone()),
        [a, b, ..] => Some(a.iter().filter(|m| b.contains(m)).cloned().collect()),
    };
    crate::gateway::GrantPolicy {
        pool_usd: pool.and_then(|p| p.max_usd),
        team_usd_per_day: team.and_then(|t| t.max_usd_per_day),
        allowed_models,
    }
}

pub fn drover_env(engine: &Engine, id: &str) -> Vec<(String, String)> {
    let mut env = vec![
        ("DROVER_TASK_ID".to_string(), id.to_string()),
        (
            "DROVER_HOME".to_string(),
            engine.home.root.display().to_string(),
        ),
        (
            "DROVER_BIN".to_string(),
            engine.config.exe.display().to_string(),
        ),
    ];
    // The daemon's PATH (captured with the rest of its environment at start, see
    // crate::child_env) with drover's own directory in front.
    let path = engine.inherited.path().unwrap_or_default();
    match engine.config.exe.parent() {
        Some(dir) => env.push(("PATH".to_string(), format!("{}:{path}", dir.display()))),
        None => env.push(("PATH".to_string(), path.to_string())),
    }
    env
}
