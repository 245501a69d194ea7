//! Build locks (`drover lock NAME [--slots N] -- CMD`): at most N holders across every worker
//! of the store (docs/design.md §8).
//!
//! A lock is held for exactly as long as the client's HTTP connection stays open: the grant is a
//! [`Held`] guard owned by the response stream, so a holder that dies (connection closed by the
//! kernel) releases its lock without anyone having to notice. The holding itself lives in the
//! store ([`LockStore`]): a row per ticket, seen by every worker, so a lock held through one
//! daemon makes `drover lock` through another wait. A waiter retries whenever the store's change
//! feed moves (PostgreSQL: LISTEN/NOTIFY wakes waiters on other hosts) and every few seconds,
//! with no deadline: it ends when its client goes away. Dropping a guard spawns the row's
//! delete; if that fails (or the daemon died), the worker's rows are freed at its next start
//! ([`Locks::release_own`]) or, on a shared store, by whoever sweeps its lapsed lease.

use drover_store::{LockEntry, LockGrant, LockRecord, Store, StoreError};

use drover_types::TaskLocks;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// A waiter re-asks at least this often, whatever the change feed says.
const RETRY: Duration = Duration::from_secs(2);

pub struct Locks {
    store: Arc<dyn Store>,
    /// This daemon's worker name: its tickets' `worker`.
    worker: String,
}

/// Why a lock was not granted.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("lock {name} has {has} slots, not {asked}")]
    SlotsDiffer { name: String, has: u32, asked: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A ticket in the store: deleted (in the background) when dropped — a held slot freed, or a
/// wait given up.
pub struct Held {
    store: Arc<dyn Store>,
    ticket: String,
}

impl Drop for Held {
    fn drop(&mut self) {
        let (store, ticket) = (self.store.clone(), std::mem::take(&mut self.ticket));
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return; // no runtime left: the next start frees this worker's rows
        };
        rt.spawn(async move {
            if let Err(e) = store.unlock(&ticket).await {
                tracing::warn!("lock: cannot free ticket {ticket}: {e}");
            }
        });
    }
}

impl Locks {
    pub fn new(store: Arc<dyn Store>, worker: String) -> Self {
        Locks { store, worker }
    }

    /// Frees this worker's tickets of an earlier run (their connections died with it).
    pub async fn release_own(&self) -> Result<u64, StoreError> {
        self.store.release_worker(&self.worker).await
    }

    /// Frees the tickets of every other worker whose lease lapsed (its connections are gone, or
    /// it is cut off and lost its rights); returns how many.
    pub async fn release_lapsed(&self) -> Result<u64, StoreError> {
        let mut freed = 0;
        for w in self.store.workers().await? {
            if w.lapsed && w.name != self.worker {
                let n = self.store.release_worker(&w.name).await?;
                if n > 0 {
                    tracing::info!("lock: freed {n} ticket(s) of lapsed worker {}", w.name);
                }
                freed += n;
            }
        }
        Ok(freed)
    }

    /// Waits for a slot of `name`. The first ticket of a name sets its slot count; a different
    /// count is refused while the lock has holders or waiters.
    pub async fn acquire(&self, name: &str, slots: u32, holder: &str) -> Result<Held, LockError> {
        let ticket = format!(
            "{:016x}{:016x}",
            rand::random::<u64>(),
            rand::random::<u64>()
        );
        let mut rx = self.store.subscribe();
        // From here on, dropping this future (the client went away) gives the wait up.
        let guard = Held {
            store: self.store.clone(),
            ticket: ticket.clone(),
        };
        loop {
            rx.borrow_and_update();
            match self
                .store
                .try_lock(name, slots, holder, &self.worker, &ticket)
                .await?
            {
                LockGrant::Granted => return Ok(guard),
                LockGrant::Busy => {}
                LockGrant::SlotsDiffer(has) => {
                    return Err(LockError::SlotsDiffer {
                        name: name.to_string(),
                        has,
                        asked: slots,
                    })
                }
            }
            let _ = tokio::time::timeout(RETRY, rx.changed()).await;
        }
    }

    /// Every lock with holders or waiters (empty, logged, if the store cannot say).
    pub async fn all(&self) -> Vec<LockRecord> {
        self.store.locks().await.unwrap_or_else(|e| {
            tracing::warn!("lock: cannot list locks: {e}");
            vec![]
        })
    }

    /// The locks one task holds and waits for (on any worker), or `None` if it has nothing to do
    /// with locks.
    pub fn of_task(all: &[LockRecord], task_id: &str) -> Option<TaskLocks> {
        let has = |v: &[LockEntry]| v.iter().any(|e| e.holder == task_id);
        let names = |held: bool| -> Vec<String> {
            all.iter()
                .filter(|l| has(if held { &l.holders } else { &l.waiters }))
                .map(|l| l.name.clone())
                .collect()
        };
        let (holding, waiting) = (names(true), names(false));
        (!holding.is_empty() || !waiting.is_empty()).then_some(TaskLocks { holding, waiting })
    }

    /// `GET /v1/locks`: every lock with holders or waiters; `holders`/`waiters` name who (a task
    /// id or `outside a task`), `held_on`/`waiting_on` the worker serving each, in the same order.
    pub async fn list(&self) -> Result<Value, StoreError> {
        let all: Vec<LockRecord> = self.store.locks().await?;
        let names = |v: &[LockEntry]| v.iter().map(|e| e.holder.clone()).collect::<Vec<_>>();
        let workers = |v: &[LockEntry]| v.iter().map(|e| e.worker.clone()).collect::<Vec<_>>();
        Ok(Value::Array(
            all.iter()
                .map(|l| {
                    json!({
                        "name": l.name, "slots": l.slots,
                        "holders": names(&l.holders), "waiters": names(&l.waiters),
                        "held_on": workers(&l.holders), "waiting_on": workers(&l.waiters),
                    })
                })
                .collect(),
        ))
    }
}

/// Frees lapsed workers' lock tickets every `lease_secs / 2` until the daemon stops (any live
/// worker does it; on SQLite there is no other worker and this finds nothing).
pub async fn sweep(engine: Arc<super::Engine>) {
    let every = Duration::from_millis(u64::from(engine.config.lease_secs.max(2)) * 500);
    let stopping = engine.stopping();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopping.cancelled() => return,
        }
        if let Err(e) = engine.locks.release_lapsed().await {
            tracing::warn!("lock sweep: {e}");
        }
    }
}
