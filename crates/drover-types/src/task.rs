use serde::{Deserialize, Serialize};
use std::str::FromStr;

vocab! {
    /// The persisted task states (docs/design.md §3). Every transition is also an event.
    pub enum TaskState ("task state") {
        Queued = "queued",
        Preparing = "preparing",
        Running = "running",
        NeedsInput = "needs_input",
        Verifying = "verifying",
        Succeeded = "succeeded",
        Failed = "failed",
        Cancelled = "cancelled",
        Interrupted = "interrupted",
    }
}

impl TaskState {
    /// Terminal states never change again (an `interrupted` task may be requeued as a new attempt
    /// by policy, which is a transition back to `queued`, recorded as an event).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Succeeded
                | TaskState::Failed
                | TaskState::Cancelled
                | TaskState::Interrupted
        )
    }

    /// States in which an agent process may be alive.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            TaskState::Preparing
                | TaskState::Running
                | TaskState::NeedsInput
                | TaskState::Verifying
        )
    }
}

vocab! {
    /// The closed set of reasons a task did not succeed (docs/design.md §3).
    pub enum ErrorKind ("error kind") {
        AgentExit = "agent_exit",
        GateFailed = "gate_failed",
        BudgetExceeded = "budget_exceeded",
        ProviderError = "provider_error",
        Truncated = "truncated",
        Timeout = "timeout",
        SandboxError = "sandbox_error",
        GitError = "git_error",
        Cancelled = "cancelled",
        LostHost = "lost_host",
        /// The agent's group hit its `--memory` limit and the kernel's OOM killer ended a
        /// process in it.
        OutOfMemory = "out_of_memory",
    }
}

// `JsonSchema`: the judge's `record_verdict` tool schema is generated from it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Success,
    SoftFail,
    Fail,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Success => "success",
            Verdict::SoftFail => "soft_fail",
            Verdict::Fail => "fail",
        }
    }
}

impl FromStr for Verdict {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        serde_json::from_value(serde_json::Value::String(s.to_string()))
            .map_err(|_| format!("unknown verdict {s:?}"))
    }
}

/// What a terminal state means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Outcome {
    pub verdict: Verdict,
    pub reason: String,
    pub error_kind: Option<ErrorKind>,
}

impl Outcome {
    pub fn success(reason: impl Into<String>) -> Self {
        Outcome {
            verdict: Verdict::Success,
            reason: reason.into(),
            error_kind: None,
        }
    }
    pub fn fail(kind: ErrorKind, reason: impl Into<String>) -> Self {
        Outcome {
            verdict: Verdict::Fail,
            reason: reason.into(),
            error_kind: Some(kind),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Budget {
    pub max_usd: Option<f64>,
    pub max_tokens: Option<u64>,
}

/// A task's resource limits (`--memory`, `--cpus`, `--pids`; config `sandbox.memory`,
/// `sandbox.cpus`, `sandbox.pids`), enforced by the task's cgroup. `None`: no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Limits {
    /// Memory the agent and everything it starts may use, in bytes (`memory.max`).
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    /// CPU time per wall-clock second, in CPUs (`cpu.max`): 1.5 = one and a half cores.
    #[serde(default)]
    pub cpus: Option<f64>,
    /// How many processes and threads at once (`pids.max`).
    #[serde(default)]
    pub pids: Option<u64>,
}

/// The task as `drover show --json` and the API return it. Field names are the public contract
/// (docs/design.md §3); the fields after `created_by` are drover's additions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Task {
    pub id: String,
    pub name: Option<String>,
    pub state: TaskState,
    pub agent: String,
    pub model: Option<String>,
    pub repo: String,
    pub base_ref: String,
    pub branch: String,
    pub prompt: String,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub result: Option<String>,
    pub outcome: Option<Outcome>,
    pub usage: Usage,
    pub cost_usd: Option<f64>,
    pub budget: Budget,
    pub session_id: Option<String>,
    pub commit: Option<String>,
    pub pool: Option<String>,
    pub team: Option<String>,
    /// The API key id that created it (`None`: the host owner or a pool).
    pub created_by: Option<String>,
    /// Free-form labels from the request (`{"customer": "acme"}`), carried into usage and
    /// accounting rows.
    #[serde(default)]
    pub tags: crate::Tags,
    /// The commit `base_ref` resolved to when the task was created.
    pub base_commit: Option<String>,
    /// `--cmd` of a `command` task.
    pub cmd: Option<String>,
    /// Gate commands (`--verify`), run in the sandbox after the agent's turn.
    pub verify: Vec<String>,
    /// 1-based place in the FIFO queue while `queued`.
    pub queue_position: Option<u64>,
    /// Where the task's checkout lives while it exists (kept after a failed commit).
    pub sandbox: Option<String>,
    pub sandbox_kind: Option<crate::SandboxKind>,
    /// The pending permission request while `needs_input`.
    pub pending_input: Option<serde_json::Value>,
    /// Agent process ids, while running.
    pub pid: Option<i64>,
    pub pgid: Option<i64>,
    /// How many times the task was (re)started after an interruption.
    pub attempt: u32,
    /// Build locks (`drover lock`) this task holds or waits for.
    pub locks: Option<crate::TaskLocks>,
    /// Where `usage` and `cost_usd` come from: drover's gateway (metered from the wire) or the
    /// agent's own figures (e.g. when no provider key is configured for the gateway).
    pub metered_by: crate::MeteredBy,
    /// The agent's own figures, kept beside the gateway's as a cross-check.
    pub agent_cost_usd: Option<f64>,
    pub agent_usage: Option<Usage>,
    /// Wall clock (`--timeout`): the task is stopped this long after it started running.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Stall clock (`--stall-timeout`): stopped after this long without agent output or event
    /// while `running` (time in `needs_input` waits for a person and does not count).
    #[serde(default)]
    pub stall_timeout_secs: Option<u64>,
    /// When the wall clock runs out (set once the task started).
    #[serde(default)]
    pub timeout_at: Option<String>,
    /// When a stop was asked for (by a user, a budget or a clock).
    #[serde(default)]
    pub stop_requested_at: Option<String>,
    /// How far a stop's escalation got: `polite`, `INT`, `TERM`, `KILL`.
    #[serde(default)]
    pub stop_step: Option<crate::clock::StopStep>,
    /// Protected globs (`--protect`, plus the config's `protect` list): gates see these paths as
    /// at the base commit, and a task that changed one fails with `gate_failed`.
    #[serde(default)]
    pub protect: Vec<String>,
    /// Warnings about the request, in the response that created the task only (e.g. a
    /// `--protect` glob that matches no file at the base commit).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Resource limits of the task's cgroup (`--memory`, `--cpus`, `--pids`, else the config's
    /// `[sandbox]` defaults), fixed when the task is created.
    #[serde(default)]
    pub limits: Limits,
    /// How the agent was confined, from the config when the task started (`None` before).
    #[serde(default)]
    pub isolation: Option<crate::Isolation>,
    /// The most memory the agent's group held at once, in bytes (read from its cgroup when the
    /// agent is gone; `None` before, or where the host keeps no such figure).
    #[serde(default)]
    pub peak_memory_bytes: Option<u64>,
    /// CPU time the agent's group used, user + system, in seconds (read with the peak).
    #[serde(default)]
    pub cpu_seconds: Option<f64>,
    /// The worker (daemon, `worker_name`) that holds or last held the task (docs/design.md §8);
    /// `None` while it waits in the queue for its first claim.
    #[serde(default)]
    pub worker: Option<String>,
    /// The only worker that may run the task: the one that can see its local-path repo
    /// (`None`: a URL repo, any worker).
    #[serde(default)]
    pub runs_on: Option<String>,
    /// A multi-repo task's repositories (`--repo A --repo B`), the first being `repo`; empty for
    /// a task on one repository (docs/design.md §9).
    #[serde(default)]
    pub repos: Vec<crate::TaskRepo>,
    /// The pull (merge) requests the task opened or found, one per repository.
    #[serde(default)]
    pub prs: Vec<crate::PrInfo>,
    /// The PR the task was asked to open once it succeeds (`--pr …`); `None`: push nothing.
    #[serde(default)]
    pub pr: Option<crate::PrOptions>,
    /// The batch (`drover batch start NAME`) the task belongs to.
    #[serde(default)]
    pub batch: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::testing::round_trips;

    #[test]
    fn states_and_error_kinds_round_trip_through_serde_and_from_str() {
        round_trips(
            &TaskState::ALL,
            &[
                "queued",
                "preparing",
                "running",
                "needs_input",
                "verifying",
                "succeeded",
                "failed",
                "cancelled",
                "interrupted",
            ],
            |v| v.as_str(),
        );
        round_trips(
            &ErrorKind::ALL,
            &[
                "agent_exit",
                "gate_failed",
                "budget_exceeded",
                "provider_error",
                "truncated",
                "timeout",
                "sandbox_error",
                "git_error",
                "cancelled",
                "lost_host",
                "out_of_memory",
            ],
            |v| v.as_str(),
        );
    }
}
