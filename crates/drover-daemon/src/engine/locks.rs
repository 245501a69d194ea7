//! Build locks (`drover lock NAME [--slots N] -- CMD`): at most N holders host-wide.
//!
//! A lock is held for exactly as long as the client's HTTP connection stays open: the grant is a
//! semaphore permit owned by the response stream, so a holder that dies (connection closed by the
//! kernel) releases its lock without anyone having to notice. Locks live in memory; a daemon
//! restart closes every connection and so releases them all.

use drover_types::TaskLocks;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Default)]
pub struct Locks {
    inner: Mutex<HashMap<String, LockState>>,
}

struct LockState {
    slots: usize,
    sem: Arc<Semaphore>,
    holders: Vec<(u64, String)>,
    waiters: Vec<(u64, String)>,
}

/// A held lock; dropping it releases the slot and the bookkeeping.
pub struct Held {
    locks: Arc<Locks>,
    name: String,
    ticket: u64,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut map = self.locks.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = map.get_mut(&self.name) {
            l.holders.retain(|(t, _)| *t != self.ticket);
        }
    }
}

/// Removes a waiter that gave up (its connection closed while waiting).
struct Waiting {
    locks: Arc<Locks>,
    name: String,
    ticket: u64,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut map = self.locks.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = map.get_mut(&self.name) {
            l.waiters.retain(|(t, _)| *t != self.ticket);
        }
    }
}

impl Locks {
    /// Waits for a slot of `name`. The first user of a name sets its slot count; a later,
    /// different count is refused.
    pub async fn acquire(
        self: &Arc<Self>,
        name: &str,
        slots: usize,
        holder: &str,
    ) -> Result<Held, String> {
        let ticket = rand::random::<u64>();
        let sem = {
            let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let l = map.entry(name.to_string()).or_insert_with(|| LockState {
                slots,
                sem: Arc::new(Semaphore::new(slots)),
                holders: vec![],
                waiters: vec![],
            });
            if l.slots != slots {
                return Err(format!("lock {name} has {} slots, not {slots}", l.slots));
            }
            l.waiters.push((ticket, holder.to_string()));
            l.sem.clone()
        };
        let waiting = Waiting {
            locks: self.clone(),
            name: name.to_string(),
            ticket,
        };
        let permit = sem.acquire_owned().await.map_err(|e| e.to_string())?;
        drop(waiting);
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = map.get_mut(name) {
            l.holders.push((ticket, holder.to_string()));
        }
        Ok(Held {
            locks: self.clone(),
            name: name.to_string(),
            ticket,
            _permit: permit,
        })
    }

    /// The locks one task holds and waits for, or `None` if it has nothing to do with locks.
    pub fn of_task(&self, task_id: &str) -> Option<TaskLocks> {
        let map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let mut holding = vec![];
        let mut waiting = vec![];
        for (name, l) in map.iter() {
            if l.holders.iter().any(|(_, h)| h == task_id) {
                holding.push(name.clone());
            }
            if l.waiters.iter().any(|(_, h)| h == task_id) {
                waiting.push(name.clone());
            }
        }
        (!holding.is_empty() || !waiting.is_empty()).then_some(TaskLocks { holding, waiting })
    }

    pub fn list(&self) -> Value {
        let map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let v: Vec<Value> = map
            .iter()
            .map(|(name, l)| {
                json!({
                    "name": name, "slots": l.slots,
                    "holders": l.holders.iter().map(|(_, h)| h).collect::<Vec<_>>(),
                    "waiters": l.waiters.iter().map(|(_, h)| h).collect::<Vec<_>>(),
                })
            })
            .collect();
        Value::Array(v)
    }
}
