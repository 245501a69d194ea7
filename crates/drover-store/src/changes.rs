//! One notify path for writes: a counter bumped after every committed write.
//!
//! Followers (SSE streams, `wait`, a pending `rm`) hold a [`tokio::sync::watch::Receiver`] and
//! re-read the store when it moves. The store bumps it itself after each write commits, so no
//! caller has to remember to. A PostgreSQL store bumps the same handle from LISTEN/NOTIFY so
//! writes of other processes wake this one's followers too.

use std::sync::Arc;
use tokio::sync::watch;

/// A cheap handle on the change counter; clones share it.
#[derive(Debug, Clone)]
pub struct Changes(Arc<watch::Sender<u64>>);

impl Default for Changes {
    fn default() -> Self {
        Changes(Arc::new(watch::channel(0).0))
    }
}

impl Changes {
    pub fn new() -> Self {
        Self::default()
    }

    /// A receiver that sees every later bump (`changed()` resolves).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }

    /// Tells followers something changed. Stores call it after each committed write; the daemon
    /// calls it for changes that live only in its memory (a lock granted, a supervisor ended).
    pub fn bump(&self) {
        self.0.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// How many bumps so far (wrapping).
    pub fn version(&self) -> u64 {
        *self.0.borrow()
    }
}

/// Where followers learn that something was written.
pub trait ChangeFeed: Send + Sync {
    /// The counter this store bumps after every committed write. Subscribe to it, or bump it for
    /// a change that lives outside the store.
    fn changes(&self) -> &Changes;

    /// Shorthand for `changes().subscribe()`.
    fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes().subscribe()
    }
}
