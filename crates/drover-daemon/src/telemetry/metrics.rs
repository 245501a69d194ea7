//! Prometheus metrics (docs/design.md §10). Filled in by issue 14's metrics work.

use drover_gateway::Exchange;

/// This daemon's Prometheus registry.
#[derive(Default)]
pub struct Metrics {}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// One gateway exchange: request latency, retries and status by upstream.
    pub fn exchange(&self, _task_id: &str, _ex: &Exchange) {}
}
