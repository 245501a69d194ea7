//! The locks area: build locks (`drover lock NAME [--slots N]`) held across every worker of
//! one database — a lock held on one host is held for all (docs/design.md §8).
//!
//! One row per ticket (one `drover lock` call): a waiter until it is granted, then a holder,
//! deleted when its connection closes ([`LockStore::unlock`]). The daemon that serves the
//! connection is the row's `worker`; a worker's rows are freed at its start (its connections
//! died with it) and when its lease lapses ([`LockStore::release_worker`]).
//!
//! Grants are first come, first served: a ticket is granted while the holders plus the waiters
//! that came before it are fewer than the slots. A name's slot count is the one of its existing
//! rows (the first caller sets it); a caller asking another count is refused
//! ([`LockGrant::SlotsDiffer`]) while any row of that name exists.

use crate::error::Result;
use async_trait::async_trait;

/// What [`LockStore::try_lock`] answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockGrant {
    /// The ticket holds a slot.
    Granted,
    /// Every slot is taken (or promised to earlier waiters): the ticket is (still) a waiter.
    /// Retry when the store's change feed moves.
    Busy,
    /// The lock exists with this many slots; nothing was written.
    SlotsDiffer(u32),
}

/// One ticket of a lock: who holds or waits, through which worker, since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockEntry {
    pub ticket: String,
    /// The task (or `outside a task`) that asked.
    pub holder: String,
    /// The worker serving its connection.
    pub worker: String,
    pub since: String,
}

/// A lock with its holders and waiters (in arrival order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRecord {
    pub name: String,
    pub slots: u32,
    pub holders: Vec<LockEntry>,
    pub waiters: Vec<LockEntry>,
}

/// A stored row, as both stores decode it.
#[derive(sqlx::FromRow)]
pub(crate) struct LockRow {
    pub ticket: String,
    pub name: String,
    pub slots: i64,
    pub holder: String,
    pub worker: String,
    pub held: i64,
    pub since: String,
}

/// Groups rows (ordered by name, then arrival) into locks.
pub(crate) fn group(rows: Vec<LockRow>) -> Vec<LockRecord> {
    let mut out: Vec<LockRecord> = vec![];
    for r in rows {
        if out.last().map(|l| l.name != r.name).unwrap_or(true) {
            out.push(LockRecord {
                name: r.name.clone(),
                slots: u32::try_from(r.slots).unwrap_or(u32::MAX),
                holders: vec![],
                waiters: vec![],
            });
        }
        let entry = LockEntry {
            ticket: r.ticket,
            holder: r.holder,
            worker: r.worker,
            since: r.since,
        };
        if let Some(l) = out.last_mut() {
            if r.held != 0 {
                l.holders.push(entry);
            } else {
                l.waiters.push(entry);
            }
        }
    }
    out
}

#[async_trait]
pub trait LockStore: Send + Sync {
    /// Tries to take a slot of `name` for `ticket` (new or already waiting), atomically across
    /// every store on the database: a new ticket is recorded as a waiter, then granted if the
    /// holders plus the earlier waiters leave a slot. Writes (and notifies) only when something
    /// changed: a waiter retrying in vain writes nothing.
    async fn try_lock(
        &self,
        name: &str,
        slots: u32,
        holder: &str,
        worker: &str,
        ticket: &str,
    ) -> Result<LockGrant>;
    /// Frees the ticket's slot or gives up its wait (nothing if it is gone already).
    async fn unlock(&self, ticket: &str) -> Result<()>;
    /// Every lock with a holder or a waiter, by name.
    async fn locks(&self) -> Result<Vec<LockRecord>>;
    /// Frees every ticket served by `worker` (its connections are gone: it restarted or its
    /// lease lapsed); returns how many.
    async fn release_worker(&self, worker: &str) -> Result<u64>;
}
