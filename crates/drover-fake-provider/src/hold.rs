//! Held turns: a turn with `"hold": "NAME"` is not answered until the test releases `NAME`
//! (`RunningProvider::release`, or `POST /_fake/release/NAME`). Tests use it instead of timing
//! windows: "the agent is in the middle of a turn" is a state the test controls, not a guess.
//!
//! A release is sticky (later requests for a held turn of that name pass at once: retries and
//! resumed sessions do not block again). A held request gives up after the turn's
//! `hold_timeout_ms` (default [`DEFAULT_HOLD_TIMEOUT_MS`]) and is answered as scripted, so a
//! test that forgets to release fails on its own assertions instead of hanging.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

/// How long a held request waits for its release by default.
pub const DEFAULT_HOLD_TIMEOUT_MS: u64 = 120_000;

/// What is released and who waits (`GET /_fake/holds`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HoldState {
    pub released: BTreeSet<String>,
    /// Requests waiting now, by hold name.
    pub waiting: BTreeMap<String, usize>,
    /// Requests that reached each hold in all (waiting now or not).
    pub reached: BTreeMap<String, usize>,
}

/// The holds of one fake provider (cheap to clone; all clones share the state).
#[derive(Debug, Clone)]
pub struct Holds(watch::Sender<HoldState>);

impl Default for Holds {
    fn default() -> Self {
        Holds(watch::Sender::new(HoldState::default()))
    }
}

/// Whether a held request was released or gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldEnd {
    Released,
    TimedOut,
}

impl Holds {
    /// Releases `name` (now and for every later request).
    pub fn release(&self, name: &str) {
        self.0.send_modify(|s| {
            s.released.insert(name.to_string());
        });
    }

    pub fn state(&self) -> HoldState {
        self.0.borrow().clone()
    }

    /// Waits until `name` is released (or `timeout` passes).
    pub async fn wait(&self, name: &str, timeout: Duration) -> HoldEnd {
        let mut rx = self.0.subscribe();
        self.0.send_modify(|s| {
            *s.waiting.entry(name.to_string()).or_default() += 1;
            *s.reached.entry(name.to_string()).or_default() += 1;
        });
        // Counted down however this future ends (answered, timed out, or dropped with its
        // connection).
        let _waiting = Waiting(self, name);
        let released = async move { rx.wait_for(|s| s.released.contains(name)).await.is_ok() };
        match tokio::time::timeout(timeout, released).await {
            Ok(true) => HoldEnd::Released,
            _ => {
                tracing::warn!("fake provider: hold {name:?} was not released in {timeout:?}");
                HoldEnd::TimedOut
            }
        }
    }

    /// Waits until at least `n` requests have reached hold `name` (released or not), up to
    /// `timeout`; returns whether they did.
    pub async fn reached(&self, name: &str, n: usize, timeout: Duration) -> bool {
        let mut rx = self.0.subscribe();
        let got = async move {
            rx.wait_for(|s| s.reached.get(name).copied().unwrap_or(0) >= n)
                .await
                .is_ok()
        };
        tokio::time::timeout(timeout, got).await == Ok(true)
    }
}

struct Waiting<'a>(&'a Holds, &'a str);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0 .0.send_modify(|s| {
            if let Some(n) = s.waiting.get_mut(self.1) {
                *n -= 1;
                if *n == 0 {
                    s.waiting.remove(self.1);
                }
            }
        });
    }
}
