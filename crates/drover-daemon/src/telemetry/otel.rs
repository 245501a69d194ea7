//! OpenTelemetry over OTLP (docs/design.md §10). Filled in by issue 14's OpenTelemetry work.

use drover_gateway::Exchange;

/// The OTLP exporters, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (else every call is a no-op).
#[derive(Default)]
pub struct Otel {}

impl Otel {
    pub fn new(_config: &crate::Config) -> Otel {
        Otel::default()
    }

    /// One gateway request: a `chat` span under the task's span, and the token histogram.
    pub fn exchange(&self, _task_id: &str, _ex: &Exchange) {}
}
