//! A multi-repo task's workspace (docs/design.md §9): prepared from the task's `repos` (one
//! checkout per repository at `<workspace>/<dir>`, `drover-sandbox`'s `prepare_workspace`),
//! committed and delivered member by member, each member's commit recorded in `repos`; each
//! checkout's `origin` is its own repository through the git proxy. A leaf: it uses nothing else
//! of the engine but [`Engine`].

use super::Engine;
use drover_sandbox::{Sandbox, SandboxError};
use drover_store::{TaskPatch, TaskRecord};

/// The task's workspace: the one a restarted daemon finds (when every member was made), else a
/// new one. A workspace left half-made by a prepare that died (no agent ever ran in it) is
/// discarded and made again.
pub(crate) async fn prepare(engine: &Engine, task: &TaskRecord) -> Result<Sandbox, SandboxError> {
    if let Some(sb) = engine.sandboxes.load(&task.id).await? {
        if sb.members.len() == task.repos.len() {
            return Ok(sb);
        }
        tracing::warn!(
            task = task.id.as_str(),
            "a half-made workspace (no agent ran in it) is made again"
        );
        engine.sandboxes.discard(&sb).await?;
    }
    let mut members = Vec::with_capacity(task.repos.len());
    let mut taken = std::collections::HashSet::new();
    for r in &task.repos {
        // At the commit resolved at creation, so every worker builds the same base.
        let at = r.base_commit.as_deref().unwrap_or(&r.base_ref);
        let resolved = engine.sandboxes.resolve(&r.repo, at).await?;
        let dir = match &r.dir {
            Some(d) => d.clone(),
            None => drover_sandbox::checkout_name(&r.repo, &resolved.repo_dir, &taken),
        };
        taken.insert(dir.clone());
        members.push((dir, resolved));
    }
    engine.sandboxes.prepare_workspace(&task.id, &members).await
}

/// Commits and delivers every member of `ws`, records each one's commit in the task's `repos`,
/// removes the workspace; `(first repository's head, branch)` as `commit_work` answers. On
/// failure the workspace stays for inspection and the error says where.
pub(crate) async fn commit(
    engine: &Engine,
    id: &str,
    ws: &Sandbox,
    message: &str,
) -> Result<Option<(String, String)>, String> {
    let kept = |e: SandboxError| format!("{e} (workspace kept at {})", ws.path.display());
    let heads = engine
        .sandboxes
        .commit_members(ws, message)
        .await
        .map_err(kept)?;
    let task = engine.store.get_task(id).await.map_err(|e| e.to_string())?;
    let mut repos = task.repos.clone();
    for r in &mut repos {
        if let Some((_, head)) = heads.iter().find(|(d, _)| r.dir.as_deref() == Some(d)) {
            r.commit = Some(head.clone());
        }
    }
    engine
        .update(id, None, TaskPatch::new().repos(repos), vec![])
        .await
        .map_err(|e| e.to_string())?;
    engine.sandboxes.discard(ws).await.map_err(kept)?;
    Ok(heads
        .into_iter()
        .next()
        .map(|(_, head)| (head, ws.branch.clone())))
}

/// Points each checkout's `origin` at its own repository through the git proxy (a one-repository
/// sandbox: the task's `repo`; a workspace: each member's entry of `repos`, matched by `dir`).
pub(crate) async fn set_origins(engine: &Engine, task: &TaskRecord, sb: &Sandbox) {
    use super::git_origin::set_origin;
    if sb.members.is_empty() {
        return set_origin(engine, task, &sb.path, sb.kind, &task.repo).await;
    }
    for m in &sb.members {
        let dir = m.dir_name();
        if let Some(r) = task
            .repos
            .iter()
            .find(|r| r.dir.as_deref() == Some(dir.as_str()))
        {
            set_origin(engine, task, &m.path, m.kind, &r.repo).await;
        }
    }
}

/// `task` with `repos` as stored now (each member's commit, recorded by [`commit`]); a
/// one-repository task as it is.
pub(crate) async fn with_recorded_commits(
    engine: &Engine,
    task: TaskRecord,
) -> Result<TaskRecord, drover_store::StoreError> {
    if task.repos.is_empty() {
        return Ok(task);
    }
    let repos = engine.store.get_task(&task.id).await?.repos;
    Ok(TaskRecord { repos, ..task })
}
