//! Fixed tasks for the rendering tests and snapshots: fixed ids, fixed times (the clock is
//! [`NOW`]), one task of each kind a person sees.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Utc};
use drover_types::Task;
use serde_json::{json, Value};

/// The tests' clock: one minute and five seconds after the fixtures' tasks were created.
pub const NOW: &str = "2025-01-01T00:01:05.000Z";

pub fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(NOW)
        .unwrap()
        .with_timezone(&Utc)
}

/// A task as the API returns it (built from JSON, as the CLI receives it), with `extra`
/// fields set over a running Claude task.
pub fn task(id: &str, state: &str, extra: Value) -> Task {
    let mut v = json!({
        "id": id, "name": null, "state": state, "agent": "claude", "model": null,
        "repo": "/r", "base_ref": "HEAD", "branch": format!("drover/{id}"),
        "prompt": format!("prompt of {id}"), "created_at": "2025-01-01T00:00:00.000Z",
        "started_at": "2025-01-01T00:00:05.000Z", "finished_at": null, "result": null,
        "outcome": null, "usage": {"input_tokens": 10, "output_tokens": 20,
        "cache_read_tokens": 0, "cache_write_tokens": 0}, "cost_usd": 0.0123,
        "budget": {"max_usd": null, "max_tokens": null}, "session_id": null,
        "commit": null, "pool": null, "team": null, "created_by": null,
        "base_commit": null, "cmd": null, "verify": [], "queue_position": null,
        "sandbox": null, "sandbox_kind": null, "pending_input": null, "pid": null,
        "pgid": null, "attempt": 1, "locks": null, "metered_by": "agent"
    });
    for (k, val) in extra.as_object().unwrap() {
        v[k] = val.clone();
    }
    serde_json::from_value(v).unwrap()
}

/// Queued, running with a pending permission request, succeeded with a cost, failed with a
/// reason, and running under a long name of wide characters and an emoji.
pub fn fleet() -> Vec<Task> {
    vec![
        task(
            "q1a2b3c4",
            "queued",
            json!({"name": "fix the flaky test", "queue_position": 1, "started_at": null,
                   "created_at": "2025-01-01T00:00:50.000Z", "cost_usd": null,
                   "usage": {"input_tokens": 0, "output_tokens": 0,
                             "cache_read_tokens": 0, "cache_write_tokens": 0}}),
        ),
        task(
            "r5d6e7f8",
            "needs_input",
            json!({"model": "claude-sonnet-4-5", "session_id": "5f0c2a7e-sess",
                   "sandbox": "/h/sandboxes/r5d6e7f8", "sandbox_kind": "overlay",
                   "pending_input": {"request_id": "r1", "tool": "Bash",
                                     "input": {"command": "rm -rf build"}},
                   "timeout_secs": 1800, "stall_timeout_secs": 600,
                   "timeout_at": "2025-01-01T00:30:05.000Z"}),
        ),
        task(
            "s9a8b7c6",
            "succeeded",
            json!({"name": "add a --json flag", "finished_at": "2025-01-01T00:00:35.000Z",
                   "commit": "0123456789abcdef0123456789abcdef01234567", "cost_usd": 1.2345,
                   "usage": {"input_tokens": 12000, "output_tokens": 3400,
                             "cache_read_tokens": 50000, "cache_write_tokens": 2100},
                   "result": "Added --json; all 42 tests pass.", "pool": "nightly",
                   "outcome": {"verdict": "success", "reason": "the agent finished its turn",
                               "error_kind": null}}),
        ),
        task(
            "f1e2d3c4",
            "failed",
            json!({"agent": "command", "cmd": "cargo test", "cost_usd": null,
                   "limits": {"memory_bytes": 268435456, "cpus": 0.5, "pids": 64},
                   "isolation": "full", "peak_memory_bytes": 67000000, "cpu_seconds": 1.234,
                   "finished_at": "2025-01-01T00:00:45.000Z", "verify": ["cargo test"],
                   "outcome": {"verdict": "fail",
                               "reason": "gate `cargo test` exited 101 after 2 rounds",
                               "error_kind": "gate_failed"}}),
        ),
        task(
            "w0c1d2e3",
            "running",
            json!({"agent": "codex",
                   "name": "修复登录页面的错误处理 🦀 then tidy the whole module up",
                   "prompt": "修复登录页面的错误处理\nand more",
                   "locks": {"holding": ["db"], "waiting": []}}),
        ),
    ]
}
