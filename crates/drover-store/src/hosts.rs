//! The hosts area: the workers sharing one database and their claims on tasks
//! (docs/design.md §8). On SQLite there is one worker, the daemon itself; on PostgreSQL every
//! daemon on the database is one.
//!
//! A claim sets a task's `worker`, adds one to its `attempt` (the claim's fencing token, see
//! [`Fence`]) and gives it a lease (`lease_until`) that the worker's heartbeat renews. A task whose
//! lease lapsed is taken over by any live worker with a write fenced on the lapsed claim
//! ([`Fence::lapsed`]): `interrupted` (`lost_host`), then requeued by the on-interrupt policy.
//! Lease times are the database's clock (RFC 3339, milliseconds, UTC — the format of
//! [`now`](crate::now)), never a worker's.

use crate::error::Result;
use crate::record::{Fence, TaskRecord};
use async_trait::async_trait;
use drover_types::{WorkerInfo, WorkerState};

/// What a worker says of itself when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSpec {
    pub name: String,
    /// The address it serves the API on (`listen`), if any.
    pub addr: Option<String>,
    pub slots: u32,
    pub lease_secs: u32,
}

/// A worker as stored, with what the store derives (tasks held, lease state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerRecord {
    pub name: String,
    pub addr: Option<String>,
    pub started_at: String,
    pub last_heartbeat: String,
    pub slots: u32,
    pub lease_secs: u32,
    /// Tasks it holds that are not terminal.
    pub running: u32,
    /// Its last heartbeat is older than its lease (by the database's clock).
    pub lapsed: bool,
}

impl WorkerRecord {
    pub fn to_info(&self) -> WorkerInfo {
        WorkerInfo {
            name: self.name.clone(),
            addr: self.addr.clone(),
            started_at: self.started_at.clone(),
            last_heartbeat: self.last_heartbeat.clone(),
            slots: self.slots,
            running: self.running,
            state: if self.lapsed {
                WorkerState::Lapsed
            } else {
                WorkerState::Live
            },
        }
    }
}

/// A task this worker holds: its id and the claim's fence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub id: String,
    pub fence: Fence,
}

#[async_trait]
pub trait HostStore: Send + Sync {
    /// Registers this worker, or re-registers it after a restart (`started_at` reset, slots and
    /// address updated); its heartbeat is now.
    async fn register_worker(&self, spec: &WorkerSpec) -> Result<()>;
    /// Renews the worker's heartbeat and the lease of every non-terminal task it holds
    /// (`lease_until` = the database's now + `lease_secs`), in one transaction; returns those
    /// tasks' claims (a task taken over by another worker is no longer among them).
    async fn heartbeat(&self, worker: &str, lease_secs: u32) -> Result<Vec<Claim>>;
    /// Claims up to `n` queued tasks this worker may run (`runs_on` unset or this worker; not
    /// held by anyone), oldest in queue order first: `worker` = it, `attempt` + 1, a lease.
    /// Concurrent claims on one database never take the same task (PostgreSQL:
    /// `FOR UPDATE SKIP LOCKED`). The task stays `queued`; its supervisor moves it on, fenced.
    /// A batch's task is skipped while its batch has `slots` tasks claimed or active
    /// ([`crate::batches`]; PostgreSQL locks those batch rows first).
    async fn claim(&self, worker: &str, n: usize, lease_secs: u32) -> Result<Vec<Claim>>;
    /// Held tasks (queued or active) whose lease lapsed by the database's clock.
    async fn lapsed_tasks(&self) -> Result<Vec<TaskRecord>>;
    /// Every registered worker, by name.
    async fn workers(&self) -> Result<Vec<WorkerRecord>>;
    /// The database's now, in [`now`](crate::now)'s format: the one clock every worker's times
    /// about shared rows are taken from (SQLite: this host's).
    async fn db_now(&self) -> Result<String>;
}

/// The states a held task keeps its lease in (everything but the terminal ones), as SQL.
pub(crate) const LIVE_STATES: &str =
    "('queued', 'preparing', 'running', 'needs_input', 'verifying')";

/// A `workers` row with its count of held tasks (both stores: same column types).
#[derive(sqlx::FromRow)]
pub(crate) struct WorkerRow {
    pub name: String,
    pub addr: Option<String>,
    pub started_at: String,
    pub last_heartbeat: String,
    pub slots: i64,
    pub lease_secs: i64,
    pub running: i64,
}

impl WorkerRow {
    /// Lapsed: its last heartbeat is older than its lease at `now` (RFC 3339 ms UTC).
    pub(crate) fn into_record(self, now: &str) -> WorkerRecord {
        let lapsed = chrono::DateTime::parse_from_rfc3339(&self.last_heartbeat)
            .map(|t| {
                let until = t + chrono::Duration::seconds(self.lease_secs);
                until
                    .to_utc()
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                    .as_str()
                    < now
            })
            .unwrap_or(true);
        WorkerRecord {
            name: self.name,
            addr: self.addr,
            started_at: self.started_at,
            last_heartbeat: self.last_heartbeat,
            slots: u32::try_from(self.slots).unwrap_or(0),
            lease_secs: u32::try_from(self.lease_secs).unwrap_or(0),
            running: u32::try_from(self.running).unwrap_or(0),
            lapsed,
        }
    }
}
