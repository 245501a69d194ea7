//! Ending a task from anywhere in the engine: failing it, committing its work (see
//! docs/design.md §3). A leaf: it uses nothing else of the engine but [`Engine`].

use super::Engine;
use drover_store::{now, StoreError, TaskPatch, TaskRecord};
use drover_types::{ErrorKind, EventKind, NewEvent, Outcome, TaskState};
use serde_json::json;

/// The states in which an agent may be alive ([`TaskState::is_active`]): the `from` set of the
/// writes that end a task.
pub(crate) fn active() -> Vec<TaskState> {
    TaskState::ALL
        .into_iter()
        .filter(|s| s.is_active())
        .collect()
}

pub(crate) async fn fail(
    engine: &Engine,
    task: &TaskRecord,
    kind: ErrorKind,
    reason: &str,
) -> Result<(), StoreError> {
    let outcome = Outcome::fail(kind, reason);
    let patch = TaskPatch::new()
        .state(TaskState::Failed, json!({ "reason": reason }))
        .outcome(Some(&outcome))
        .finished_at(Some(now()));
    let ev = NewEvent::new(
        EventKind::Error,
        json!({ "message": reason, "error_kind": kind.as_str() }),
    );
    let (patch, mut kept) = if task.sandbox.is_some() {
        apply_commit(
            patch,
            commit_work(engine, &task.id, "work kept after a failure").await,
        )
    } else {
        (patch, vec![])
    };
    let mut from = active();
    from.push(TaskState::Queued);
    kept.insert(0, ev);
    engine.update(&task.id, Some(&from), patch, kept).await?;
    Ok(())
}

/// Commits the sandbox's work to the task branch and removes the sandbox. On failure the
/// sandbox stays for inspection and the error says where.
pub(crate) async fn commit_work(
    engine: &Engine,
    id: &str,
    summary: &str,
) -> Result<Option<(String, String)>, String> {
    let sb = match engine.sandboxes.load(id).await {
        Ok(Some(sb)) => sb,
        // Already committed and removed (e.g. a crash between removing the sandbox and writing
        // the terminal state): the branch in the user's repository is the commit.
        Ok(None) => return Ok(delivered_head(engine, id).await),
        Err(e) => return Err(e.to_string()),
    };
    let message = format!("drover: {summary}\n\nTask: {id}\n");
    if !sb.members.is_empty() {
        return super::workspace::commit(engine, id, &sb, &message).await;
    }
    match engine.sandboxes.finish(&sb, &message).await {
        Ok(Some(sha)) => Ok(Some((sha, sb.branch.clone()))),
        Ok(None) => Ok(None),
        Err(e) => Err(format!("{e} (sandbox kept at {})", sb.path.display())),
    }
}

/// `drover/<id>` in the task's repository, if it is there.
pub(crate) async fn delivered_head(engine: &Engine, id: &str) -> Option<(String, String)> {
    let task = engine.store.get_task(id).await.ok()?;
    let dir = task.repo_dir?;
    let out = drover_sandbox::git_command()
        .args([
            "-C",
            &dir,
            "rev-parse",
            "--verify",
            "-q",
            &format!("refs/heads/{}", task.branch),
        ])
        .output()
        .await
        .ok()?;
    let sha = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !sha.is_empty()).then_some((sha, task.branch))
}

pub(crate) fn apply_commit(
    patch: TaskPatch,
    commit: Result<Option<(String, String)>, String>,
) -> (TaskPatch, Vec<NewEvent>) {
    match commit {
        Ok(Some((sha, branch))) => (
            patch.commit(Some(sha.clone())).sandbox(None),
            vec![NewEvent::new(
                EventKind::Commit,
                json!({ "commit": sha, "branch": branch }),
            )],
        ),
        Ok(None) => (patch.sandbox(None), vec![]),
        Err(e) => (
            patch,
            vec![NewEvent::new(
                EventKind::Error,
                json!({ "message": e, "error_kind": "git_error" }),
            )],
        ),
    }
}
