//! drover's persistent state.
//!
//! Layout (modules depend downwards only: `sqlite` → area traits → `record`/`changes`/`error`):
//! - One trait per area, each with its records:
//!   - [`TaskStore`] ([`tasks`]): tasks, their events and ingest offsets; [`record`] holds
//!     [`TaskRecord`] (a task row with the daemon's bookkeeping), [`NewTask`] and the typed
//!     partial update [`TaskPatch`].
//!   - [`PoolStore`] ([`pools`]): pools, their events and the atomic launch of a pool's task.
//!   - [`UsageStore`] ([`usage`]): the gateway's metered responses, spent sums, `drover usage`.
//!   - [`TeamStore`] ([`teams`]): teams (budgets, model lists, webhook) and their API keys
//!     (hashes only; scopes, expiry, rotation, revocation).
//!   - [`AuditStore`] ([`audit`]): the append-only audit log and finished tasks' accounting rows.
//!   - [`WebhookStore`] ([`webhooks`]): the webhook outbox (rows added by the store with the
//!     state change; the daemon's worker sends and retries them).
//!   - [`HostStore`] ([`hosts`]): workers, claims, leases and fencing (docs/design.md §8).
//!   - [`LockStore`] ([`locks`]): build locks held across workers.
//!   - [`BatchStore`] ([`batches`]): batches (one task per repository, grouped) and their
//!     atomic creation; a batch's `slots` bound the claim.
//!   - Later areas go here the same way (each a trait in its own module, added to [`Store`]'s
//!     supertraits, implemented under `sqlite/` and `postgres/`, covered by `conformance`).
//! - [`Store`]: all areas plus [`ChangeFeed`]; what the daemon holds (`Arc<dyn Store>`).
//! - [`changes`]: the one notify path — every implementation bumps [`Changes`] after each
//!   committed write.
//! - [`sqlite`]: the embedded implementation (WAL, one writer connection); [`postgres`]: the
//!   shared one (a pool; several daemons, the workers, on one database; LISTEN/NOTIFY feeds
//!   [`Changes`]). The only places SQL and column names appear (with `rows`, the row structs both
//!   decode). Both run the same `conformance` tests (feature `conformance`); nothing above this
//!   crate knows which one it talks to.
//!
//! Invariants every implementation keeps (checked by `conformance`):
//! - A task's events have `seq` 1, 2, 3… with no gaps and no duplicates: seq is allocated from the
//!   task row inside the same transaction that inserts the event.
//! - A state change and its `state` event are written in one transaction.
//! - Ingest offsets move in the same transaction as the events read before them, so a crash at any
//!   point neither loses nor duplicates an agent's output.
//! - A pool never has more live tasks than slots, nor more tasks than its count.
//! - A batch and its tasks are stored all or none; a batch never has more tasks claimed or
//!   active than its slots.
//! - A usage batch is stored all or none.
//! - Every committed write bumps [`Changes`] before the call returns (except an audit record:
//!   nothing follows the audit log live).
//! - The audit log is append-only: no update or delete path exists for it.

pub(crate) mod area_rows;
pub mod audit;
mod batch_rows;
pub mod batches;
pub mod changes;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod error;
pub mod fleet;
pub mod hosts;
pub mod locks;
pub mod metrics;
mod patch_sql;
pub mod pools;
pub mod postgres;
pub mod record;
pub(crate) mod rows;
pub mod sqlite;
pub mod tasks;
pub mod teams;
pub mod usage;
pub mod webhooks;

pub use audit::{AuditFilter, AuditStore, NewAuditRecord};
pub use batches::{BatchRecord, BatchStore, NewBatch};
pub use changes::{ChangeFeed, Changes};
pub use error::{now, Result, StoreError};
pub use fleet::{FleetRows, FleetStore};
pub use hosts::{Claim, HostStore, WorkerRecord, WorkerSpec};
pub use locks::{LockEntry, LockGrant, LockRecord, LockStore};
pub use metrics::{MetricsStore, UsageTotal};
pub use pools::{NewPool, PoolEvent, PoolRecord, PoolStats, PoolStore};
pub use postgres::PgStore;
pub use record::{Fence, NewTask, TaskPatch, TaskRecord};
pub use sqlite::SqliteStore;
pub use tasks::{Idempotency, Idempotent, ListFilter, TaskFilter, TaskStore, SUMMARY_CHARS};
pub use teams::{NewKeyRecord, TeamStore};
pub use usage::{Spent, UsageBy, UsageGroup, UsageLine, UsageRow, UsageStore};
pub use webhooks::{AttemptOutcome, WebhookDelivery, WebhookStore};

/// Everything the daemon needs of its store: every area and the change feed.
pub trait Store:
    TaskStore
    + PoolStore
    + UsageStore
    + TeamStore
    + AuditStore
    + WebhookStore
    + HostStore
    + LockStore
    + BatchStore
    + FleetStore
    + MetricsStore
    + ChangeFeed
{
}

impl<
        T: TaskStore
            + PoolStore
            + UsageStore
            + TeamStore
            + AuditStore
            + WebhookStore
            + HostStore
            + LockStore
            + BatchStore
            + FleetStore
            + MetricsStore
            + ChangeFeed
            + ?Sized,
    > Store for T
{
}

/// The traits, for callers that hold a `dyn Store` and call its methods.
pub mod prelude {
    pub use crate::{
        AuditStore, BatchStore, ChangeFeed, FleetStore, HostStore, LockStore, MetricsStore,
        PoolStore, Store, TaskStore, TeamStore, UsageStore, WebhookStore,
    };
}
