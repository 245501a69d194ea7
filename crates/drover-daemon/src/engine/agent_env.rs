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

/// The budgets and model list a task's pool and team impose (the team's from the store:
/// `crate::teams`).
pub(crate) async fn grant_policy(
    engine: &Engine,
    task: &TaskRecord,
) -> crate::gateway::GrantPolicy {
    let pool = match task.pool.as_deref() {
        Some(name) => engine.store.get_pool(name).await.ok(),
        None => None,
    };
    let team = match task.team.as_deref() {
        Some(name) => match crate::teams::policy::team(engine.store.as_ref(), name).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("task {}: reading team {name}: {e}", task.id);
                None
            }
        },
        None => None,
    };
    let team = team.as_ref();
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

/// A task's agent and gates: `DROVER_TASK_ID`, `DROVER_HOME` = the task's run dir (its
/// task-scoped control endpoint, never the admin socket; see [`crate::task_sockets`]),
/// `DROVER_BIN`, `PATH` with drover's directory in front; with `sandbox.egress` on a confined
/// task, the proxy variables pointing at the egress forwarder (`drover_shim::EGRESS_PORT`).
pub fn drover_env(engine: &Engine, id: &str) -> Vec<(String, String)> {
    let mut env = vec![("DROVER_TASK_ID".to_string(), id.to_string())];
    env.extend(drover_paths(engine, &engine.home.run_dir(id)));
    env.extend(egress_env(&engine.config.confinement));
    env
}

/// What runs on the host for the operator (a pool's `--notify`): the real `DROVER_HOME`.
pub fn host_env(engine: &Engine) -> Vec<(String, String)> {
    drover_paths(engine, &engine.home.root)
}

/// `HTTPS_PROXY`/`HTTP_PROXY` (both cases) = the egress forwarder, `NO_PROXY` = loopback, when
/// the task is confined and `sandbox.egress` lists something. Unconfined (`isolation = "none"`)
/// the agent has the host's network and no forwarder: nothing is set.
pub fn egress_env(c: &crate::config::Confinement) -> Vec<(String, String)> {
    if c.egress.is_empty() || c.isolation != drover_types::Isolation::Full {
        return vec![];
    }
    let proxy = format!("http://127.0.0.1:{}", drover_shim::EGRESS_PORT);
    let mut env: Vec<(String, String)> = ["HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"]
        .into_iter()
        .map(|k| (k.to_string(), proxy.clone()))
        .collect();
    for k in ["NO_PROXY", "no_proxy"] {
        env.push((k.to_string(), "127.0.0.1,localhost".to_string()));
    }
    env
}

fn drover_paths(engine: &Engine, home: &std::path::Path) -> Vec<(String, String)> {
    let mut env = vec![
        ("DROVER_HOME".to_string(), home.display().to_string()),
        (
            "DROVER_BIN".to_string(),
            engine.config.exe.display().to_string(),
        ),
    ];
    // The daemon's PATH (captured with the rest of its environment at start, see
    // crate::child_env) with drover's own directory in front.
    let path = engine.config.inherited.path().unwrap_or_default();
    match engine.config.exe.parent() {
        Some(dir) => env.push(("PATH".to_string(), format!("{}:{path}", dir.display()))),
        None => env.push(("PATH".to_string(), path.to_string())),
    }
    env
}

#[cfg(test)]
mod tests {
    use super::egress_env;
    use crate::config::Confinement;
    use drover_types::Isolation;

    #[test]
    fn proxies_are_set_only_for_a_confined_task_with_an_egress_list() {
        let none = egress_env(&Confinement::default());
        assert!(none.is_empty());
        let c = Confinement {
            egress: vec!["registry.npmjs.org:443".into()],
            ..Confinement::default()
        };
        let env = egress_env(&c);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("HTTPS_PROXY"), Some("http://127.0.0.1:3128"));
        assert_eq!(get("http_proxy"), Some("http://127.0.0.1:3128"));
        assert_eq!(get("NO_PROXY"), Some("127.0.0.1,localhost"));
        let open = Confinement {
            isolation: Isolation::None,
            ..c
        };
        assert!(egress_env(&open).is_empty());
    }
}
