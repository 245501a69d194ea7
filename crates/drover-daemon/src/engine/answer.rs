//! Writing a permission answer to an agent's stdin, as the user, a policy or a clock decides it.
//! A leaf of the engine: [`super::control`] and [`super::clocks`] both answer.

use super::Engine;
use drover_agents::Adapter;
use drover_shim::ShimClient;
use drover_store::{StoreError, TaskPatch, TaskRecord};
use drover_types::{AnsweredBy, EventKind, NewEvent, TaskState};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Agent(String),
}

pub(crate) fn shim(engine: &Engine, id: &str) -> ShimClient {
    ShimClient::new(engine.home.task(id))
}

pub(crate) async fn answer(
    engine: &Engine,
    task: &TaskRecord,
    adapter: &dyn Adapter,
    req: &serde_json::Value,
    allow: bool,
    message: Option<&str>,
    by: AnsweredBy,
) -> Result<(), ControlError> {
    let request_id = req
        .get("request_id")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    // A request stored cut down (see `ingest::pending_form`) does not hold the agent's input:
    // the answer then carries none, and the agent runs the tool with the input it asked for.
    let input = if req.get("truncated").and_then(|v| v.as_bool()) == Some(true) {
        serde_json::Value::Null
    } else {
        req.get("input").cloned().unwrap_or(json!({}))
    };
    let line = adapter
        .permission_answer(request_id, allow, &input, message)
        .ok_or_else(|| {
            ControlError::Invalid(format!(
                "the {} agent takes no permission answers",
                adapter.name()
            ))
        })?;
    let behavior = if allow { "allow" } else { "deny" };
    let ev = NewEvent::new(
        EventKind::Input,
        json!({ "request_id": request_id, "behavior": behavior, "message": message, "by": by }),
    );
    // Recorded before the answer is written: once the agent has it, it may ask again at once,
    // and that newer request (ingested after this write) must not be cleared by this one.
    let mut patch = TaskPatch::new().pending_input(None);
    if task.state == TaskState::NeedsInput {
        patch = patch.state(TaskState::Running, json!({}));
    }
    let live = [TaskState::NeedsInput, TaskState::Running];
    engine
        .update(&task.id, Some(&live), patch, vec![ev])
        .await?;
    if let Err(e) = shim(engine, &task.id).write_line(line).await {
        // Not delivered: the request is pending again.
        let mut back = TaskPatch::new().pending_input(Some(req));
        if task.state == TaskState::NeedsInput {
            back = back.state(TaskState::NeedsInput, json!({}));
        }
        if let Err(undo) = engine.update(&task.id, Some(&live), back, vec![]).await {
            tracing::warn!(
                task = task.id.as_str(),
                "answer not delivered; the request could not be put back: {undo}"
            );
        }
        return Err(ControlError::Agent(e.to_string()));
    }
    engine.poke(&task.id).notify_one();
    Ok(())
}
