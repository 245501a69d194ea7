//! Task grants: what a task token allows, and the registry of live tokens.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::config::Secret;

/// Prefix of every task token.
pub const TOKEN_PREFIX: &str = "drv-";

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetKind {
    TaskUsd,
    TaskTokens,
    PoolUsd,
    TeamUsdPerDay,
}

/// Spending limits of one grant. Pool and team limits come from the daemon's configuration;
/// the gateway compares them with [`crate::Spent`] before every metered request.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// `--max-usd`.
    pub task_usd: Option<f64>,
    /// `--max-tokens` (input + output + cache read + cache write).
    pub task_tokens: Option<u64>,
    /// The pool's budget over the window the daemon's [`crate::Ledger`] reports.
    pub pool_usd: Option<f64>,
    /// The team's budget per UTC day.
    pub team_usd_per_day: Option<f64>,
}

impl Limits {
    /// Whether any limit is set (if none, the ledger is not asked what was spent).
    pub fn any(&self) -> bool {
        self.task_usd.is_some()
            || self.task_tokens.is_some()
            || self.pool_usd.is_some()
            || self.team_usd_per_day.is_some()
    }

    /// The first dollar budget that applies (task, pool, team), if any.
    pub fn dollar_budget(&self) -> Option<BudgetKind> {
        use BudgetKind::*;
        [
            (TaskUsd, self.task_usd),
            (PoolUsd, self.pool_usd),
            (TeamUsdPerDay, self.team_usd_per_day),
        ]
        .into_iter()
        .find_map(|(k, v)| v.map(|_| k))
    }
}

/// What one task may do through the gateway.
#[derive(Debug, Clone, Default)]
pub struct TaskGrant {
    pub task_id: String,
    pub pool: Option<String>,
    pub team: Option<String>,
    pub limits: Limits,
    /// Models the task may use (after aliasing); `None` = any. The daemon passes the
    /// intersection of the pool's and the team's lists.
    pub allowed_models: Option<Vec<String>>,
    /// Aliases for this task (e.g. the pool's tier `worker` → a model); they win over the
    /// gateway-wide aliases.
    pub aliases: HashMap<String, String>,
    /// The task's own provider key (`run --api-key-env VAR`), used instead of the configured
    /// key for whichever provider the agent calls.
    pub key_override: Option<Secret>,
}

impl TaskGrant {
    /// A grant without limits or model restrictions.
    pub fn new(task_id: impl Into<String>) -> Self {
        TaskGrant {
            task_id: task_id.into(),
            ..TaskGrant::default()
        }
    }

    /// The model actually sent upstream for `requested`.
    pub fn resolve_model<'a>(
        &'a self,
        requested: &'a str,
        global: &'a HashMap<String, String>,
    ) -> &'a str {
        self.aliases
            .get(requested)
            .or_else(|| global.get(requested))
            .map_or(requested, String::as_str)
    }

    /// Whether `model` (resolved) or the alias it came from is allowed.
    pub fn allows(&self, requested: &str, resolved: &str) -> bool {
        self.allowed_models
            .as_ref()
            .is_none_or(|list| list.iter().any(|m| m == resolved || m == requested))
    }
}

/// A fresh random token: `drv-` + 32 hex digits (128 bits).
pub fn new_token() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    let mut s = String::with_capacity(TOKEN_PREFIX.len() + 32);
    s.push_str(TOKEN_PREFIX);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Live tokens and their grants.
#[derive(Debug, Default)]
pub struct Grants {
    map: RwLock<HashMap<String, Arc<TaskGrant>>>,
}

impl Grants {
    pub fn insert(&self, token: String, grant: TaskGrant) {
        self.map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(token, Arc::new(grant));
    }

    pub fn get(&self, token: &str) -> Option<Arc<TaskGrant>> {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            .cloned()
    }

    /// Removes one token; true if it was live.
    pub fn remove(&self, token: &str) -> bool {
        self.map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(token)
            .is_some()
    }

    /// Removes every token of a task; returns how many.
    pub fn remove_task(&self, task_id: &str) -> usize {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        let before = map.len();
        map.retain(|_, g| g.task_id != task_id);
        before - map.len()
    }
}
