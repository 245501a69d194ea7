//! Batches (docs/design.md §9): one prompt run as one task per repository, grouped under a name
//! (`drover batch start NAME (--repo R… | --repos-file F) (--prompt P | --prompt-file F)
//! [--slots N] [--pr]`). The request, the views `batch ls` / `batch show` print, and the name
//! rule.

use crate::{Outcome, PrInfo, PrOptions, RequestBudget, TaskState};
use serde::{Deserialize, Serialize};

vocab! {
    /// A batch's state: `running` from start (and again after a retry), `stopped` by request.
    pub enum BatchState ("batch state") {
        Running = "running",
        Stopped = "stopped",
    }
}

/// The longest batch name (the rule: `[a-z0-9][a-z0-9_.-]{0,62}`).
pub const BATCH_NAME_MAX: usize = 63;

/// A batch name is 1 to 63 characters: lower-case letters, digits, `_`, `.` and `-`, starting
/// with a letter or digit. `Err`: one line saying so.
pub fn check_batch_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c));
    if first_ok && rest_ok && name.len() <= BATCH_NAME_MAX {
        return Ok(());
    }
    Err(format!(
        "batch name {:?}: use 1 to {BATCH_NAME_MAX} lower-case letters, digits, '_', '.' and '-', starting with a letter or digit",
        crate::text::excerpt(name, crate::text::Limit::Chars(70))
    ))
}

/// `POST /v1/batches`: one task per repository, each with the same prompt and options (the
/// fields of `POST /v1/tasks`, spelled the same way). An unknown field is refused (400).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// `[a-z0-9][a-z0-9_.-]{0,62}`, unique on the daemon (409 when taken).
    pub name: String,
    /// One task per entry, in this order: `owner/name` (the default forge), a URL, or a path on
    /// the daemon's host. At least one; no repeats.
    pub repos: Vec<String>,
    /// What each agent is asked to do.
    #[serde(rename = "task", alias = "prompt")]
    pub prompt: String,
    /// At most this many of the batch's tasks past `queued` at once, across every worker
    /// (default: no limit of its own; the workers' slots bound it).
    #[serde(default)]
    pub slots: Option<u32>,
    /// Open a PR for each task that succeeds (`--pr …`); absent: no PR.
    #[serde(default)]
    pub pr: Option<PrOptions>,
    #[serde(
        rename = "ref",
        alias = "base_ref",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub base_ref: Option<String>,
    pub agent: Option<String>,
    pub cmd: Option<String>,
    pub model: Option<String>,
    #[serde(default)]
    pub verify: Vec<String>,
    pub verify_rounds: Option<u32>,
    pub judge_model: Option<String>,
    /// Each task's budget (`{maxUsd, maxTokens}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<RequestBudget>,
    pub permissions: Option<crate::PermissionPolicy>,
    /// Each task's wall clock, as `POST /v1/tasks`' `timeout`.
    #[serde(
        rename = "timeout",
        alias = "timeout_secs",
        default,
        deserialize_with = "crate::clock::de_secs",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout_secs: Option<u64>,
    #[serde(
        alias = "stall_timeout",
        default,
        deserialize_with = "crate::clock::de_secs",
        skip_serializing_if = "Option::is_none"
    )]
    pub stall_timeout_secs: Option<u64>,
    #[serde(default)]
    pub protect: Vec<String>,
    /// Who asked (the owner's CLI sends `$USER`); over TCP the key's id, whatever this says.
    pub created_by: Option<String>,
    /// The team of the batch and its tasks (a key: its own, whatever this says).
    pub team: Option<String>,
}

/// One repository of a batch: its latest task and what came of it (`batch show`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchRepo {
    pub repo: String,
    /// The repository's latest task (a retry's, once retried).
    pub task: String,
    pub state: TaskState,
    pub outcome: Option<Outcome>,
    /// The latest task's pull request, if it opened (or found) one.
    pub pr: Option<PrInfo>,
    /// Dollars of every task the batch ran on this repository (retries included).
    pub cost_usd: f64,
    /// How many tasks the batch ran on this repository (1 + retries).
    pub attempts: u32,
}

/// A batch as `GET /v1/batches[/{name}]` answers: its options, counters over each
/// repository's latest task, and (in `show`, and in `ls` too) one line per repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchView {
    pub name: String,
    pub state: BatchState,
    pub team: Option<String>,
    pub created_by: Option<String>,
    pub created_at: String,
    pub stopped_at: Option<String>,
    pub prompt: String,
    pub agent: String,
    pub cmd: Option<String>,
    pub model: Option<String>,
    pub slots: Option<u32>,
    pub pr: Option<PrOptions>,
    /// Repositories (one latest task each).
    pub tasks: u32,
    /// Latest tasks not yet ended (queued or active).
    pub running: u32,
    pub succeeded: u32,
    /// Latest tasks that failed, were cancelled or interrupted (what `retry` re-runs).
    pub failed: u32,
    /// Dollars of all the batch's tasks, retries included.
    pub cost_usd: f64,
    pub repos: Vec<BatchRepo>,
    /// Warnings about the request, in the answer that created the batch only (each naming its
    /// repository, e.g. a `--protect` glob that matches no file there).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// `POST /v1/batches/{name}/retry`: the tasks made (one per repository whose latest task did
/// not succeed), and the batch afterwards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchRetried {
    pub tasks: Vec<String>,
    pub batch: BatchView,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn batch_names() {
        for ok in ["a", "deps-2026.12", "0_x", &"a".repeat(63)] {
            assert!(check_batch_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            ".a",
            "_a",
            "A",
            "a b",
            "a/b",
            "é",
            &"a".repeat(64),
        ] {
            let e = check_batch_name(bad).unwrap_err();
            assert!(e.starts_with("batch name"), "{e}");
        }
    }

    #[test]
    fn the_request_takes_the_task_spellings_and_refuses_unknown_fields() {
        let r: BatchRequest = serde_json::from_value(serde_json::json!({
            "name": "b", "repos": ["a/b"], "task": "go", "ref": "main", "timeout": "10m",
            "pr": {"draft": true}, "slots": 2
        }))
        .unwrap();
        assert_eq!(r.prompt, "go");
        assert_eq!(r.base_ref.as_deref(), Some("main"));
        assert_eq!(r.timeout_secs, Some(600));
        assert!(r.pr.unwrap().draft);
        assert!(serde_json::from_value::<BatchRequest>(
            serde_json::json!({"name": "b", "repos": [], "task": "t", "colour": 1})
        )
        .is_err());
        assert_eq!(
            "stopped".parse::<BatchState>().unwrap(),
            BatchState::Stopped
        );
    }
}
