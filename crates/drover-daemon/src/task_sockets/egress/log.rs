//! Each attempt through the egress proxy, as an `egress` event on the task (rate-limited).

use crate::engine::Engine;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// `egress` events written at once before the rate limit (one a second) applies.
pub const EVENT_BURST: u32 = 20;

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Allowed,
    Refused,
    /// Allowed, but the host could not be reached.
    Unreachable,
}

/// One attempt, as its `egress` event says it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Attempt {
    pub verdict: Verdict,
    /// The CONNECT target, only when it parsed as an authority.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Where attempts go (the task's events; a test's list).
pub trait Recorder: Send + Sync + 'static {
    fn record(&self, attempt: Attempt);
}

/// Attempts as the task's `egress` events, rate-limited (see the module's docs).
pub struct EventLog {
    engine: Arc<Engine>,
    task: String,
    bucket: Mutex<Bucket>,
}

/// One event a second, [`EVENT_BURST`] at once.
struct Bucket {
    tokens: f64,
    at: Instant,
    left_out: u64,
}

impl Bucket {
    fn new(now: Instant) -> Bucket {
        Bucket {
            tokens: EVENT_BURST as f64,
            at: now,
            left_out: 0,
        }
    }

    /// Whether an attempt at `now` is written, and how many were left out before it.
    fn take(&mut self, now: Instant) -> Option<u64> {
        let refill = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + refill).min(EVENT_BURST as f64);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Some(std::mem::take(&mut self.left_out))
        } else {
            self.left_out += 1;
            None
        }
    }
}

impl EventLog {
    pub fn new(engine: Arc<Engine>, task: String) -> Arc<EventLog> {
        Arc::new(EventLog {
            engine,
            task,
            bucket: Mutex::new(Bucket::new(Instant::now())),
        })
    }

    fn take(&self) -> Option<u64> {
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        b.take(Instant::now())
    }
}

impl Recorder for EventLog {
    fn record(&self, attempt: Attempt) {
        let Some(left_out) = self.take() else { return };
        let mut data = serde_json::to_value(&attempt).unwrap_or_default();
        if left_out > 0 {
            data["left_out"] = left_out.into();
        }
        let event = drover_types::NewEvent::new(drover_types::EventKind::Egress, data);
        let engine = self.engine.clone();
        let task = self.task.clone();
        self.engine.tasks.spawn(async move {
            let patch = drover_store::TaskPatch::new();
            if let Err(e) = engine.update(&task, None, patch, vec![event]).await {
                tracing::warn!(task = task.as_str(), "egress event: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_one_a_second_and_the_left_out_are_counted() {
        let t0 = Instant::now();
        let mut b = Bucket::new(t0);
        for _ in 0..EVENT_BURST {
            assert_eq!(b.take(t0), Some(0));
        }
        assert_eq!(b.take(t0), None);
        assert_eq!(b.take(t0), None);
        // A second later one more is written, saying two were left out.
        assert_eq!(b.take(t0 + Duration::from_secs(1)), Some(2));
        assert_eq!(b.take(t0 + Duration::from_secs(1)), None);
    }
}
