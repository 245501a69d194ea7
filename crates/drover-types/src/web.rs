//! What the web dashboard reads (docs/design.md §10): the fleet's cards, a task's diff.
//! Served under `/v1/` like every other body, so the CLI and scripts may use them too.

use serde::{Deserialize, Serialize};

/// The dashboard's columns. Every [`crate::TaskState`] falls in exactly one
/// ([`FleetGroup::of`]).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FleetGroup {
    /// `needs_input`: a person must answer.
    NeedsInput,
    /// `queued`, `preparing`, `running`.
    Working,
    /// `verifying`: gates (or the judge) at work.
    Verifying,
    /// `succeeded`.
    Completed,
    /// `failed`, `cancelled`, `interrupted`.
    Failed,
}

impl FleetGroup {
    pub const ALL: [FleetGroup; 5] = [
        FleetGroup::NeedsInput,
        FleetGroup::Working,
        FleetGroup::Verifying,
        FleetGroup::Completed,
        FleetGroup::Failed,
    ];

    pub fn of(state: crate::TaskState) -> FleetGroup {
        use crate::TaskState::*;
        match state {
            NeedsInput => FleetGroup::NeedsInput,
            Queued | Preparing | Running => FleetGroup::Working,
            Verifying => FleetGroup::Verifying,
            Succeeded => FleetGroup::Completed,
            Failed | Cancelled | Interrupted => FleetGroup::Failed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FleetGroup::NeedsInput => "needs_input",
            FleetGroup::Working => "working",
            FleetGroup::Verifying => "verifying",
            FleetGroup::Completed => "completed",
            FleetGroup::Failed => "failed",
        }
    }
}

/// One task on the fleet view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FleetCard {
    pub id: String,
    pub name: Option<String>,
    pub state: crate::TaskState,
    pub group: FleetGroup,
    pub repo: String,
    pub agent: String,
    pub model: Option<String>,
    pub team: Option<String>,
    pub pool: Option<String>,
    pub batch: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub cost_usd: Option<f64>,
    /// The last line of activity (an event's text, control sequences removed, ≤ 200 chars).
    pub last_line: Option<String>,
    pub error_kind: Option<crate::ErrorKind>,
}

/// `GET /v1/fleet` and each message of `GET /v1/fleet/events` (SSE): every active task and the
/// most recent finished ones, as the caller may see them (a key: its team's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FleetSnapshot {
    /// Grows with every store change the snapshot reflects.
    pub version: u64,
    pub generated_at: String,
    pub cards: Vec<FleetCard>,
    /// Finished tasks left out (only the most recent are listed).
    pub finished_omitted: u64,
}

/// How a file changed on the task's branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DiffStatus {
    Added,
    Modified,
    Deleted,
    Renamed,
}

/// One file of `GET /v1/tasks/{id}/diff`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DiffFileStat {
    pub path: String,
    pub old_path: Option<String>,
    pub status: DiffStatus,
    pub added: u64,
    pub removed: u64,
    pub binary: bool,
    /// The repository's checkout dir of a multi-repo task (`None`: the only one).
    pub repo_dir: Option<String>,
}

/// `GET /v1/tasks/{id}/diff`: the files the task's branch changed against its base commit (the
/// live sandbox while active, the commit once delivered).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskDiff {
    pub base_commit: Option<String>,
    pub commit: Option<String>,
    pub files: Vec<DiffFileStat>,
}

/// `GET /v1/tasks/{id}/diff/file?path=&repo_dir=`: one file's unified diff, cut past a size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DiffPatch {
    pub path: String,
    pub patch: String,
    /// The patch was cut (`bytes` is its whole size).
    pub truncated: bool,
    pub bytes: u64,
}

/// `POST /v1/web/login`: a one-time login URL for the dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebLogin {
    pub url: String,
    pub expires_at: String,
}

/// `GET /v1/web/session`: who the dashboard's session (or the caller) is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebSession {
    /// The host owner (every team, every route).
    pub owner: bool,
    /// An API key's session: the key's id, team and scopes.
    pub key_id: Option<String>,
    pub team: Option<String>,
    pub scopes: Vec<crate::Scope>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_has_one_group() {
        for s in crate::TaskState::ALL {
            assert!(FleetGroup::ALL.contains(&FleetGroup::of(s)));
        }
        assert_eq!(
            FleetGroup::of(crate::TaskState::NeedsInput).as_str(),
            "needs_input"
        );
    }
}
