//! Seeing the fleet from outside (docs/design.md §10): Prometheus metrics ([`metrics`], served
//! at `GET /metrics` and printed by `drover metrics`) and OpenTelemetry traces and metrics over
//! OTLP ([`otel`], on when `OTEL_EXPORTER_OTLP_ENDPOINT` is set).
//!
//! [`Telemetry`] is the one handle the engine, the API and the gateway (as its
//! [`drover_gateway::Observer`]) report to; it fans every report out to both.

pub mod labels;
pub mod metrics;
pub mod otel;
mod otel_http;
pub mod trace_ids;

use drover_gateway::{Exchange, Observer};

/// Metrics and traces of this daemon.
pub struct Telemetry {
    pub metrics: metrics::Metrics,
    pub otel: otel::Otel,
}

impl Telemetry {
    /// From the config (the OTLP exporter from the standard `OTEL_*` variables it read).
    pub fn new(config: &crate::Config) -> Telemetry {
        Telemetry {
            metrics: metrics::Metrics::new(),
            otel: otel::Otel::new(config),
        }
    }
}

impl Telemetry {
    /// A task this daemon supervised ended: `drover_task_duration_seconds{outcome}` (from its
    /// start, or its creation if it never started, to its end).
    pub fn task_ended(&self, t: &drover_store::TaskRecord) {
        use drover_store::record::parse_ts;
        let from = t.started_at.as_deref().unwrap_or(&t.created_at);
        if let (Some(from), Some(to)) =
            (parse_ts(from), t.finished_at.as_deref().and_then(parse_ts))
        {
            let secs = (to - from).num_milliseconds() as f64 / 1000.0;
            self.metrics.task_ended(t.state, secs);
        }
    }
}

impl Observer for Telemetry {
    fn exchange(&self, task_id: &str, ex: &Exchange) {
        self.metrics.exchange(task_id, ex);
        self.otel.exchange(task_id, ex);
    }
}
