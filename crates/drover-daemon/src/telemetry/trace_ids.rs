//! Trace and span ids derived from what the store already holds, so every worker and a
//! restarted daemon agree on them without storing any (docs/design.md §10):
//!
//! - a pool run is one trace: `d = SHA-256("pool:" name ":" created_at)`, trace id = `d[0..16]`,
//!   the pool's root span id = `d[16..24]` (a batch likewise with `"batch:"`);
//! - a task's span id = the first 8 bytes of `SHA-256("task:" id)`; its parent is its pool's
//!   (or batch's) root span; a task outside any pool or batch is a trace of its own, trace id =
//!   the first 16 bytes of `SHA-256("task:" id)`.
//!
//! The agent gets the task's span as `TRACEPARENT` (W3C trace context) so its own telemetry
//! joins the trace.

use sha2::{Digest, Sha256};

/// Where a task's span sits in its trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskTrace {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    /// The pool's or batch's root span; `None`: the task is the trace's root.
    pub parent: Option<[u8; 8]>,
}

/// What run a task belongs to (its trace).
#[derive(Debug, Clone, Copy)]
pub enum Run<'a> {
    Pool { name: &'a str, created_at: &'a str },
    Batch { name: &'a str, created_at: &'a str },
    Alone,
}

/// The ids of a pool's or batch's run: (trace id, root span id).
pub fn run_ids(run: Run<'_>) -> Option<([u8; 16], [u8; 8])> {
    let d = match run {
        Run::Pool { name, created_at } => digest(&format!("pool:{name}:{created_at}")),
        Run::Batch { name, created_at } => digest(&format!("batch:{name}:{created_at}")),
        Run::Alone => return None,
    };
    Some((take(&d, 0), take(&d, 16)))
}

/// A task's place in its run's trace.
pub fn task_trace(task_id: &str, run: Run<'_>) -> TaskTrace {
    let own = digest(&format!("task:{task_id}"));
    let span_id = take(&own, 0);
    match run_ids(run) {
        Some((trace_id, root)) => TaskTrace {
            trace_id,
            span_id,
            parent: Some(root),
        },
        None => TaskTrace {
            trace_id: take(&own, 0),
            span_id,
            parent: None,
        },
    }
}

impl TaskTrace {
    /// `00-<trace id>-<task span id>-01` (sampled).
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-01",
            hex::encode(self.trace_id),
            hex::encode(self.span_id)
        )
    }
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

fn take<const N: usize>(d: &[u8; 32], from: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&d[from..from + N]);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_pools_tasks_share_its_trace_and_hang_under_its_root() {
        let run = Run::Pool {
            name: "p",
            created_at: "2026-01-01T00:00:00.000Z",
        };
        let a = task_trace("t1", run);
        let b = task_trace("t2", run);
        assert_eq!(a.trace_id, b.trace_id);
        assert_ne!(a.span_id, b.span_id);
        let (trace, root) = run_ids(run).unwrap();
        assert_eq!(a.trace_id, trace);
        assert_eq!(a.parent, Some(root));
        // Deterministic: another daemon derives the same.
        assert_eq!(task_trace("t1", run), a);
        // Another run of the same name is another trace.
        let again = Run::Pool {
            name: "p",
            created_at: "2026-01-02T00:00:00.000Z",
        };
        assert_ne!(task_trace("t1", again).trace_id, a.trace_id);
        let alone = task_trace("t1", Run::Alone);
        assert_eq!(alone.parent, None);
        assert_eq!(alone.span_id, a.span_id);
        let tp = a.traceparent();
        assert_eq!(tp.len(), 55);
        assert!(tp.starts_with("00-") && tp.ends_with("-01"), "{tp}");
    }
}
