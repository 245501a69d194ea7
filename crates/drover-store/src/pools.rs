//! Pools: a prompt run by N sessions at a time. Their counters are derived from their tasks
//! (never kept in a separate counter that could drift from the tasks after a crash).

use crate::error::Result;
use crate::record::{NewTask, TaskRecord};
use async_trait::async_trait;
use drover_types::{FailurePolicy, PermissionPolicy, PoolState};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PoolRecord {
    pub name: String,
    pub state: PoolState,
    pub slots: i64,
    pub prompt: String,
    pub repo: String,
    pub base_ref: String,
    pub agent: String,
    pub cmd: Option<String>,
    pub model: Option<String>,
    pub judge_model: Option<String>,
    pub permissions: PermissionPolicy,
    pub count_total: Option<i64>,
    pub max_failures: i64,
    pub notify: Option<String>,
    pub verify: Vec<String>,
    pub verify_rounds: i64,
    pub max_usd: Option<f64>,
    pub created_at: String,
    pub launched: i64,
    pub streak_since: String,
    pub notified: bool,
    /// Why it stopped, in words (`count reached`, `stopped by request`, `3 consecutive
    /// failures`): shown to people, not a closed set.
    pub stop_reason: Option<String>,
    /// Models the pool's tasks may use (the gateway refuses others); `None` = any.
    pub allowed_models: Option<Vec<String>>,
    /// What the failure streak does to running tasks.
    pub failure_policy: FailurePolicy,
    /// Clocks its tasks inherit (seconds; `None`: no limit).
    pub timeout_secs: Option<i64>,
    pub stall_timeout_secs: Option<i64>,
    /// Protected globs every task of the pool gets.
    pub protect: Vec<String>,
    /// Limits its tasks inherit.
    pub limits: drover_types::Limits,
    /// The team the pool (and every task it launches) belongs to; `None`: the host owner's.
    pub team: Option<String>,
    /// `--pr …`: every task of the pool opens a pull request once it succeeds (`None`: none).
    pub pr: Option<drover_types::PrOptions>,
}

#[derive(Debug, Clone, Default)]
pub struct NewPool {
    pub name: String,
    pub slots: i64,
    pub prompt: String,
    pub repo: String,
    pub base_ref: String,
    pub agent: String,
    pub cmd: Option<String>,
    pub model: Option<String>,
    pub judge_model: Option<String>,
    pub permissions: PermissionPolicy,
    pub count_total: Option<i64>,
    pub max_failures: i64,
    pub notify: Option<String>,
    pub verify: Vec<String>,
    pub verify_rounds: i64,
    pub max_usd: Option<f64>,
    pub allowed_models: Option<Vec<String>>,
    pub failure_policy: FailurePolicy,
    pub timeout_secs: Option<i64>,
    pub stall_timeout_secs: Option<i64>,
    pub protect: Vec<String>,
    pub limits: drover_types::Limits,
    /// The team the pool (and every task it launches) belongs to; `None`: the host owner's.
    pub team: Option<String>,
    pub pr: Option<drover_types::PrOptions>,
}

/// Counters of a pool, computed from its tasks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PoolStats {
    /// Tasks not yet terminal (queued or active).
    pub running: i64,
    pub finished: i64,
    pub successes: i64,
    pub failures: i64,
    pub soft_fails: i64,
    /// Stopped before they ended on their own; they do not count toward the streak.
    pub cancelled: i64,
    pub streak: i64,
    pub total_cost_usd: f64,
    /// Reasons of the current streak's failures, newest first (at most 5).
    pub last_reasons: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PoolEvent {
    pub seq: i64,
    pub ts: String,
    pub kind: String,
    pub data: serde_json::Value,
}

#[async_trait]
pub trait PoolStore: Send + Sync {
    /// Creates a running pool; [`StoreError::Exists`](crate::StoreError::Exists) if the name is
    /// taken.
    async fn create_pool(&self, pool: NewPool) -> Result<PoolRecord>;
    async fn get_pool(&self, name: &str) -> Result<PoolRecord>;
    /// Every pool, oldest first.
    async fn list_pools(&self) -> Result<Vec<PoolRecord>>;
    /// Sets the state; `reset_streak` starts a new failure streak (and allows a new notification).
    async fn set_pool_state(
        &self,
        name: &str,
        state: PoolState,
        stop_reason: Option<&str>,
        reset_streak: bool,
    ) -> Result<PoolRecord>;
    /// Marks the pool notified; `false` if it already was (notify runs at most once per streak).
    async fn mark_pool_notified(&self, name: &str) -> Result<bool>;
    /// Creates the pool's next task if the pool runs, has a free slot and has not reached its
    /// count — checked and written atomically, so a slot is never filled twice. `None`: no room.
    async fn launch_pool_task(&self, name: &str, task: NewTask) -> Result<Option<TaskRecord>>;
    /// The pool's counters, derived from its tasks; `soft_fail_counts`: a `soft_fail` verdict is
    /// a failure for the streak.
    async fn pool_stats(&self, name: &str, soft_fail_counts: bool) -> Result<PoolStats>;
    /// Appends an event to the pool's log (seq 1, 2, 3… per pool).
    async fn pool_event(&self, name: &str, kind: &str, data: serde_json::Value) -> Result<()>;
    /// The pool's latest `limit` events, oldest first.
    async fn pool_events(&self, name: &str, limit: i64) -> Result<Vec<PoolEvent>>;
}
