//! Metered usage: one row per model response that went through the gateway. Spent amounts
//! (budgets) and `drover usage` are computed from these rows, so they survive restarts.

use crate::error::Result;
use async_trait::async_trait;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageRow {
    pub task_id: String,
    pub pool: Option<String>,
    pub team: Option<String>,
    pub api: String,
    pub model: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub cost_usd: Option<f64>,
    pub stop_reason: Option<String>,
    pub outcome: String,
    pub at: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Spent {
    pub task_usd: f64,
    pub task_tokens: i64,
    pub pool_usd: f64,
    pub team_usd_today: f64,
}

/// One line of `drover usage`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct UsageLine {
    pub key: String,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    /// `None` if any response in the group had no price.
    pub cost_usd: Option<f64>,
}

/// How `drover usage` groups the usage rows: a closed set ([`UsageGroup`]) or a tag
/// ([`UsageBy::Tag`]).
pub use drover_types::{UsageBy, UsageGroup};

#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Stores metered responses, adds each to its task's usage and cost and appends a `usage`
    /// event per row, all in one transaction (all or none).
    async fn record_usage(&self, rows: &[UsageRow]) -> Result<()>;
    /// The id of the last stored usage row (0: none); rows stored later have larger ids.
    async fn usage_last_id(&self) -> Result<i64>;
    /// What a task, its pool and its team (since `day_start`, RFC 3339) have spent, over the
    /// usage rows with `id <= up_to`.
    async fn spent(
        &self,
        task_id: &str,
        pool: Option<&str>,
        team: Option<&str>,
        day_start: &str,
        up_to: i64,
    ) -> Result<Spent>;
    /// Usage grouped by `by`, in the order of the group's key; with `team`, only that team's
    /// usage rows. `tag:NAME` groups by the value of the row's task's tag (read at report time;
    /// `-` when the task has no such tag or is gone).
    async fn usage_report(&self, by: &UsageBy, team: Option<&str>) -> Result<Vec<UsageLine>>;
}

#[cfg(test)]
mod tests {
    use super::UsageGroup;

    #[test]
    fn groups_parse_from_their_names_only() {
        for g in UsageGroup::ALL {
            assert_eq!(g.as_str().parse::<UsageGroup>(), Ok(g));
            assert_eq!(g.to_string(), g.as_str());
        }
        for bad in ["", "Task", "teams", "task_id", "tag:x"] {
            assert!(bad.parse::<UsageGroup>().is_err(), "{bad:?}");
        }
    }
}
