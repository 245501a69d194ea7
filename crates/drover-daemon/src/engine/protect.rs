//! Protected paths (`--protect`) in the engine: the view gates run in, and the check at finish
//! that fails a task whose work changed a protected path.

use super::Engine;
use drover_sandbox::{GateView, Protect, ProtectedChange};
use drover_store::TaskRecord;
use serde_json::{json, Value};

/// How the reason of a gate run that never started (no protected view) begins.
pub const NOT_RUN: &str = "the gates did not run";

/// The check at finish gets at least this long, even when the wall clock has run out.
const CHECK_MIN: std::time::Duration = std::time::Duration::from_secs(5);

/// At most this many paths are named in a reason.
const NAMED: usize = 20;

/// The view the task's gates run in: `Ok(None)` when the task protects nothing (gates run in the
/// sandbox itself). `Err` says why the protected view could not be made; the gates must then not
/// run at all (never unprotected).
pub async fn gate_view(engine: &Engine, task: &TaskRecord) -> Result<Option<GateView>, String> {
    if task.protect.is_empty() {
        return Ok(None);
    }
    let why = |e: String| format!("{NOT_RUN}: their protected view could not be prepared ({e})");
    let protect = Protect::new(&task.protect).map_err(|e| why(e.to_string()))?;
    let sb = match engine.sandboxes.load(&task.id).await {
        Ok(Some(sb)) => sb,
        Ok(None) => return Err(why("the task has no sandbox".into())),
        Err(e) => return Err(why(e.to_string())),
    };
    // Bounded by the gates' own budget: a work tree of a million files must not outlast the
    // task's clocks. On expiry the preparation is dropped (its `cp` killed, its walk stopped)
    // and the gates do not run; a partial copy goes with the next view or the sandbox.
    let budget = super::clocks::gate_budget(engine, task);
    let view = match tokio::time::timeout(budget, engine.sandboxes.gate_view(&sb, &protect)).await {
        Ok(made) => made.map_err(|e| why(e.to_string()))?,
        Err(_) => {
            return Err(format!(
                "{NOT_RUN}: the protected check timed out (preparing their view took over {:.1}s)",
                budget.as_secs_f64()
            ))
        }
    };
    tracing::info!(task_id = %task.id, ms = view.prepare_ms, restored = view.restored.len(), "gate view ready");
    Ok(Some(view))
}

/// What a gate event records about the view: its kind, what it restored, what it cost.
pub fn describe(view: &GateView) -> Value {
    json!({
        "view": view.kind.as_str(),
        "restored": view.restored,
        "prepare_ms": view.prepare_ms,
    })
}

pub async fn drop_view(engine: &Engine, task_id: &str, view: &GateView) {
    if let Err(e) = engine.sandboxes.drop_gate_view(view).await {
        tracing::warn!(task_id, error = %e, "could not remove the gate view");
    }
}

/// Why the task fails because of its protected paths, if it does: the paths its work changed
/// (compared with the base commit), or that they could not be checked (fails closed).
pub async fn tampered(engine: &Engine, task: &TaskRecord) -> Option<String> {
    let protect = match compiled(task)? {
        Ok(p) => p,
        Err(e) => return unchecked(e),
    };
    let changes = match engine.sandboxes.load(&task.id).await {
        Ok(Some(sb)) => {
            // Bounded like the gates (at least a few seconds: the wall clock may be spent by
            // now); on expiry the walk is stopped and the task fails closed.
            let budget = super::clocks::gate_budget(engine, task).max(CHECK_MIN);
            match tokio::time::timeout(budget, engine.sandboxes.protected_changes(&sb, &protect))
                .await
            {
                Ok(c) => c,
                Err(_) => {
                    return Some(format!(
                    "the protected check timed out: comparing the work with the base took over {:.1}s",
                    budget.as_secs_f64()
                ))
                }
            }
        }
        // Already committed and removed: compare the delivered branch with the base.
        Ok(None) => {
            let Some((head, _)) = super::terminal::delivered_head(engine, &task.id).await else {
                return unchecked("the task has neither a sandbox nor a delivered branch");
            };
            return committed(engine, task, &head).await;
        }
        Err(e) => return unchecked(e),
    };
    verdict(changes)
}

/// [`tampered`] on a commit of the task's work against the base commit, from git objects alone.
/// Run on what was delivered too: a process that outlived the agent cannot put a protected file
/// back between the check of the sandbox and its commit.
pub async fn committed(engine: &Engine, task: &TaskRecord, head: &str) -> Option<String> {
    let protect = match compiled(task)? {
        Ok(p) => p,
        Err(e) => return unchecked(e),
    };
    let (Some(dir), Some(base)) = (task.repo_dir.as_deref(), task.base_commit.as_deref()) else {
        return unchecked("the task has no base commit to compare with");
    };
    verdict(
        engine
            .sandboxes
            .protected_changes_between(std::path::Path::new(dir), base, head, &protect)
            .await,
    )
}

/// The task's protected globs, compiled; `None` when it protects nothing.
fn compiled(task: &TaskRecord) -> Option<Result<Protect, String>> {
    (!task.protect.is_empty()).then(|| Protect::new(&task.protect).map_err(|e| e.to_string()))
}

/// Fails closed: a check that could not be made fails the task too.
fn unchecked(e: impl std::fmt::Display) -> Option<String> {
    Some(format!("the protected paths could not be checked: {e}"))
}

fn verdict<E: std::fmt::Display>(changes: Result<Vec<ProtectedChange>, E>) -> Option<String> {
    match changes {
        Ok(c) if c.is_empty() => None,
        Ok(c) => Some(reason(&c)),
        Err(e) => unchecked(e),
    }
}

fn reason(changes: &[ProtectedChange]) -> String {
    let mut named: Vec<String> = changes.iter().take(NAMED).map(|c| c.to_string()).collect();
    if changes.len() > NAMED {
        named.push(format!("and {} more", changes.len() - NAMED));
    }
    format!("the task changed protected paths: {}", named.join(", "))
}
