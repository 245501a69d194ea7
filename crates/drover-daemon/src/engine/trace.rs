//! A task's place in its run's trace (docs/design.md §10): derived from its pool's or batch's
//! name and creation time (`crate::telemetry::trace_ids`), remembered while the task runs
//! here, and the `TRACEPARENT` its agent and gates get — always, exporter or not: it names no
//! secret and lets an agent's own telemetry join the run's trace. A leaf of the engine.

use super::Engine;
use crate::telemetry::trace_ids::{self, Run, TaskTrace};
use drover_store::TaskRecord;
use opentelemetry::KeyValue;
use std::time::SystemTime;

/// The task's trace context (from memory, else derived from the store and remembered).
pub(crate) async fn task_trace(engine: &Engine, task: &TaskRecord) -> TaskTrace {
    if let Some(t) = engine.telemetry.otel.trace_of(&task.id) {
        return t;
    }
    let t = derive(engine, task).await;
    engine.telemetry.otel.remember(&task.id, t);
    t
}

async fn derive(engine: &Engine, task: &TaskRecord) -> TaskTrace {
    if let Some(name) = task.pool.as_deref() {
        match engine.store.get_pool(name).await {
            Ok(p) => {
                let run = Run::Pool {
                    name,
                    created_at: &p.created_at,
                };
                return trace_ids::task_trace(&task.id, run);
            }
            Err(e) => tracing::debug!(task = task.id, "trace of pool {name}: {e}"),
        }
    }
    if let Some(name) = task.batch.as_deref() {
        match engine.store.batch(name).await {
            Ok(b) => {
                let run = Run::Batch {
                    name,
                    created_at: &b.created_at,
                };
                return trace_ids::task_trace(&task.id, run);
            }
            Err(e) => tracing::debug!(task = task.id, "trace of batch {name}: {e}"),
        }
    }
    trace_ids::task_trace(&task.id, Run::Alone)
}

/// `TRACEPARENT` for the task's agent and gates.
pub(crate) async fn traceparent_env(engine: &Engine, task: &TaskRecord) -> (String, String) {
    let t = task_trace(engine, task).await;
    ("TRACEPARENT".to_string(), t.traceparent())
}

/// A child span of the task's (`sandbox`, `gate`, `commit`) that began at `start`, ended now.
pub(crate) async fn child_span(
    engine: &Engine,
    task: &TaskRecord,
    name: &'static str,
    start: SystemTime,
    attributes: Vec<KeyValue>,
    error: Option<String>,
) {
    if !engine.telemetry.otel.tracing() {
        return;
    }
    let t = task_trace(engine, task).await;
    engine
        .telemetry
        .otel
        .child_span(&t, name, start, attributes, error);
}

/// The task's `invoke_agent` span, when this daemon wrote its terminal state.
pub(crate) async fn task_ended(engine: &Engine, task: &TaskRecord) {
    if !engine.telemetry.otel.tracing() {
        engine.telemetry.otel.forget(&task.id);
        return;
    }
    let t = task_trace(engine, task).await;
    engine.telemetry.otel.task_ended(task, &t);
    if let Some(name) = task.batch.as_deref() {
        batch_maybe_ended(engine, name).await;
    }
}

/// A batch's root span, when the task that just ended was its last active one (a batch has no
/// end state of its own; a `retry` later makes another root span with the same ids).
async fn batch_maybe_ended(engine: &Engine, name: &str) {
    let (batch, tasks) = match (
        engine.store.batch(name).await,
        engine.store.batch_tasks(name).await,
    ) {
        (Ok(b), Ok(t)) => (b, t),
        (Err(e), _) | (_, Err(e)) => {
            tracing::debug!("trace of batch {name}: {e}");
            return;
        }
    };
    if tasks.iter().any(|t| !t.state.is_terminal()) {
        return;
    }
    let run = Run::Batch {
        name,
        created_at: &batch.created_at,
    };
    if let Some(ids) = trace_ids::run_ids(run) {
        let succeeded = tasks
            .iter()
            .filter(|t| t.state == drover_types::TaskState::Succeeded)
            .count();
        let mut attrs = vec![
            KeyValue::new("drover.batch.state", batch.state.to_string()),
            KeyValue::new("drover.batch.tasks", tasks.len() as i64),
            KeyValue::new("drover.batch.succeeded", succeeded as i64),
        ];
        if let Some(t) = &batch.team {
            attrs.push(KeyValue::new("drover.team", t.clone()));
        }
        engine
            .telemetry
            .otel
            .run_ended("batch", name, ids, &batch.created_at, attrs);
    }
}

/// A pool's root span, when it stops (from its creation to now).
pub(crate) fn pool_ended(engine: &Engine, pool: &drover_store::PoolRecord) {
    let run = Run::Pool {
        name: &pool.name,
        created_at: &pool.created_at,
    };
    if let Some(ids) = trace_ids::run_ids(run) {
        let mut attrs = vec![
            KeyValue::new("drover.pool.state", pool.state.to_string()),
            KeyValue::new("drover.pool.launched", pool.launched),
            KeyValue::new("drover.repo", pool.repo.clone()),
        ];
        if let Some(t) = &pool.team {
            attrs.push(KeyValue::new("drover.team", t.clone()));
        }
        engine
            .telemetry
            .otel
            .run_ended("pool", &pool.name, ids, &pool.created_at, attrs);
    }
}
