//! OpenTelemetry over OTLP/HTTP (docs/design.md §10): spans and GenAI metrics, on when the
//! config has [`crate::config::OtelSettings`] (an `OTEL_EXPORTER_OTLP_*ENDPOINT`); else every
//! call is a no-op.
//!
//! Spans are built with explicit ids and times ([`super::trace_ids`]): a task's `invoke_agent`
//! span when it ends in this daemon (from `started_at` to `finished_at`), its `sandbox`, `gate`
//! and `commit` children as each ends, one `chat` span per gateway request (from the gateway's
//! [`Exchange`]), and a pool's root span when the pool stops. Batched, exported off the task's
//! path (see [`super::otel_http`]): a slow or unreachable collector never slows a task.

use super::otel_http::RuntimeClient;
use super::trace_ids::TaskTrace;
use crate::config::{OtelSettings, OtlpTarget};
use drover_gateway::Exchange;
use drover_store::TaskRecord;
use opentelemetry::metrics::{Histogram, MeterProvider as _};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
    Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// How long shutdown waits for the last spans and metric points to reach the collector.
pub const FLUSH_DEADLINE: Duration = Duration::from_secs(3);

/// The OTLP exporters and the trace context of the tasks this daemon runs.
#[derive(Default)]
pub struct Otel {
    live: Option<Live>,
    /// Task id → its span's place, filled when the task starts here (the gateway's `chat`
    /// spans need it, and the observer cannot ask the store).
    traces: Mutex<HashMap<String, TaskTrace>>,
}

struct Live {
    traces: Option<(SdkTracerProvider, SdkTracer)>,
    metrics: Option<Meters>,
}

struct Meters {
    provider: SdkMeterProvider,
    tokens: Histogram<u64>,
    duration: Histogram<f64>,
}

/// The GenAI semantic conventions' advised buckets.
const TOKEN_BUCKETS: &[f64] = &[
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];
const DURATION_BUCKETS: &[f64] = &[
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];

impl Otel {
    /// The exporters of `config.otel` (on the current tokio runtime); off when it is `None`, or
    /// when an exporter cannot be built (logged once, the daemon runs on).
    pub fn new(config: &crate::Config) -> Otel {
        let Some(settings) = &config.otel else {
            return Otel::default();
        };
        match Live::start(settings) {
            Ok(live) => Otel {
                live: Some(live),
                traces: Mutex::default(),
            },
            Err(e) => {
                tracing::warn!("OpenTelemetry export is off: {e}");
                Otel::default()
            }
        }
    }

    /// Whether spans are exported.
    pub fn tracing(&self) -> bool {
        self.live.as_ref().is_some_and(|l| l.traces.is_some())
    }

    /// Remembers where `task_id`'s span sits (for its `chat` spans).
    pub fn remember(&self, task_id: &str, trace: TaskTrace) {
        self.map().insert(task_id.to_string(), trace);
    }

    /// Where `task_id`'s span sits, if this daemon knows.
    pub fn trace_of(&self, task_id: &str) -> Option<TaskTrace> {
        self.map().get(task_id).copied()
    }

    /// Forgets `task_id` (it ended, or went back to the queue: another worker may run it).
    pub fn forget(&self, task_id: &str) {
        self.map().remove(task_id);
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, TaskTrace>> {
        self.traces.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn tracer(&self) -> Option<&SdkTracer> {
        self.live.as_ref()?.traces.as_ref().map(|(_, t)| t)
    }

    /// A child of the task's span (`sandbox`, `gate`, `commit`), ended now.
    pub fn child_span(
        &self,
        trace: &TaskTrace,
        name: &'static str,
        start: SystemTime,
        attributes: Vec<KeyValue>,
        error: Option<String>,
    ) {
        let Some(tracer) = self.tracer() else { return };
        let parent = remote_parent(trace.trace_id, trace.span_id);
        let mut span = tracer
            .span_builder(name)
            .with_kind(SpanKind::Internal)
            .with_start_time(start)
            .with_attributes(attributes)
            .start_with_context(tracer, &parent);
        if let Some(e) = error {
            opentelemetry::trace::Span::set_status(&mut span, Status::error(e));
        }
        opentelemetry::trace::Span::end_with_timestamp(&mut span, SystemTime::now());
    }

    /// The task's `invoke_agent` span, from `started_at` to `finished_at` (a task that never
    /// started has none).
    pub fn task_ended(&self, task: &TaskRecord, trace: &TaskTrace) {
        self.map().remove(&task.id);
        let Some(tracer) = self.tracer() else { return };
        let Some(start) = task.started_at.as_deref().and_then(time) else {
            return;
        };
        let end = task
            .finished_at
            .as_deref()
            .and_then(time)
            .unwrap_or_else(SystemTime::now)
            .max(start);
        let mut attrs = vec![
            KeyValue::new("gen_ai.operation.name", "invoke_agent"),
            KeyValue::new("gen_ai.agent.id", task.id.clone()),
            KeyValue::new("drover.task.id", task.id.clone()),
            KeyValue::new("drover.agent", task.agent.clone()),
            KeyValue::new("drover.repo", task.repo.clone()),
            KeyValue::new("drover.state", task.state.to_string()),
            KeyValue::new("drover.attempt", task.attempt),
            KeyValue::new("gen_ai.usage.input_tokens", task.usage.input_tokens as i64),
            KeyValue::new(
                "gen_ai.usage.output_tokens",
                task.usage.output_tokens as i64,
            ),
            KeyValue::new(
                "gen_ai.usage.cache_read.input_tokens",
                task.usage.cache_read_tokens as i64,
            ),
            KeyValue::new(
                "gen_ai.usage.cache_creation.input_tokens",
                task.usage.cache_write_tokens as i64,
            ),
        ];
        let mut opt = |k: &'static str, v: Option<&str>| {
            if let Some(v) = v {
                attrs.push(KeyValue::new(k, v.to_string()));
            }
        };
        opt("gen_ai.agent.name", task.name.as_deref());
        opt("gen_ai.provider.name", provider_of(&task.agent));
        opt("gen_ai.request.model", task.model.as_deref());
        opt("drover.team", task.team.as_deref());
        opt("drover.pool", task.pool.as_deref());
        opt("drover.batch", task.batch.as_deref());
        opt("drover.commit", task.commit.as_deref());
        let error = task.outcome.as_ref().and_then(|o| o.error_kind);
        let outcome = match error {
            Some(kind) => kind.to_string(),
            None => task.state.to_string(),
        };
        attrs.push(KeyValue::new("drover.outcome", outcome.clone()));
        if let Some(c) = task.cost_usd {
            attrs.push(KeyValue::new("drover.cost_usd", c));
        }
        if error.is_some() {
            attrs.push(KeyValue::new("error.type", outcome));
        }
        let mut builder = tracer
            .span_builder("invoke_agent")
            .with_kind(SpanKind::Internal)
            .with_trace_id(TraceId::from_bytes(trace.trace_id))
            .with_span_id(SpanId::from_bytes(trace.span_id))
            .with_start_time(start)
            .with_attributes(attrs);
        if let Some(o) = task.outcome.as_ref().filter(|_| error.is_some()) {
            builder = builder.with_status(Status::error(o.reason.clone()));
        }
        let parent = match trace.parent {
            Some(root) => remote_parent(trace.trace_id, root),
            None => Context::new(),
        };
        let mut span = builder.start_with_context(tracer, &parent);
        opentelemetry::trace::Span::end_with_timestamp(&mut span, end);
    }

    /// A pool's (or batch's) root span, when it stops: `kind` is `pool` or `batch`.
    pub fn run_ended(
        &self,
        kind: &'static str,
        name: &str,
        ids: ([u8; 16], [u8; 8]),
        start: &str,
        attributes: Vec<KeyValue>,
    ) {
        let Some(tracer) = self.tracer() else { return };
        let Some(start) = time(start) else { return };
        let mut attrs = vec![KeyValue::new(format!("drover.{kind}"), name.to_string())];
        attrs.extend(attributes);
        let mut span = tracer
            .span_builder(format!("{kind} {name}"))
            .with_kind(SpanKind::Internal)
            .with_trace_id(TraceId::from_bytes(ids.0))
            .with_span_id(SpanId::from_bytes(ids.1))
            .with_start_time(start)
            .with_attributes(attrs)
            .start_with_context(tracer, &Context::new());
        opentelemetry::trace::Span::end_with_timestamp(&mut span, SystemTime::now());
    }

    /// One gateway request: a `chat` span under the task's span, and the GenAI histograms.
    pub fn exchange(&self, task_id: &str, ex: &Exchange) {
        let Some(live) = &self.live else { return };
        let error_type = error_type(ex);
        if let Some(m) = &live.metrics {
            let mut attrs = vec![
                KeyValue::new("gen_ai.operation.name", "chat"),
                KeyValue::new("gen_ai.provider.name", ex.provider),
                KeyValue::new("gen_ai.request.model", ex.request_model.clone()),
                KeyValue::new("server.address", ex.upstream.clone()),
            ];
            if let Some(r) = &ex.response_model {
                attrs.push(KeyValue::new("gen_ai.response.model", r.clone()));
            }
            if let Some(t) = &ex.tokens {
                for (kind, n) in [("input", t.input), ("output", t.output)] {
                    let mut a = attrs.clone();
                    a.push(KeyValue::new("gen_ai.token.type", kind));
                    m.tokens.record(n, &a);
                }
            }
            if let Some(e) = &error_type {
                attrs.push(KeyValue::new("error.type", e.clone()));
            }
            m.duration.record(ex.duration.as_secs_f64(), &attrs);
        }
        let Some((_, tracer)) = &live.traces else {
            return;
        };
        let Some(trace) = self.trace_of(task_id) else {
            return;
        };
        let start: SystemTime = ex.started_at.into();
        let mut attrs = vec![
            KeyValue::new("gen_ai.operation.name", "chat"),
            KeyValue::new("gen_ai.provider.name", ex.provider),
            KeyValue::new("gen_ai.request.model", ex.request_model.clone()),
            KeyValue::new("server.address", ex.upstream.clone()),
            KeyValue::new("drover.task.id", task_id.to_string()),
            KeyValue::new("drover.retries", i64::from(ex.retries)),
        ];
        if let Some(port) = ex
            .upstream
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<i64>().ok())
        {
            attrs.push(KeyValue::new("server.port", port));
        }
        if let Some(r) = &ex.response_model {
            attrs.push(KeyValue::new("gen_ai.response.model", r.clone()));
        }
        if let Some(s) = ex.status {
            attrs.push(KeyValue::new("http.response.status_code", i64::from(s)));
        }
        if let Some(t) = &ex.tokens {
            attrs.push(KeyValue::new("gen_ai.usage.input_tokens", t.input as i64));
            attrs.push(KeyValue::new("gen_ai.usage.output_tokens", t.output as i64));
            attrs.push(KeyValue::new(
                "gen_ai.usage.cache_read.input_tokens",
                t.cache_read as i64,
            ));
            attrs.push(KeyValue::new(
                "gen_ai.usage.cache_creation.input_tokens",
                t.cache_write as i64,
            ));
        }
        if let Some(c) = ex.cost_usd {
            attrs.push(KeyValue::new("drover.cost_usd", c));
        }
        if let Some(f) = &ex.finish_reason {
            attrs.push(KeyValue::new(
                "gen_ai.response.finish_reasons",
                opentelemetry::Value::Array(
                    vec![opentelemetry::StringValue::from(f.clone())].into(),
                ),
            ));
        }
        if let Some(e) = &error_type {
            attrs.push(KeyValue::new("error.type", e.clone()));
        }
        let mut builder = tracer
            .span_builder(format!("chat {}", ex.request_model))
            .with_kind(SpanKind::Client)
            .with_start_time(start)
            .with_attributes(attrs);
        if let Some(e) = &error_type {
            builder = builder.with_status(Status::error(e.clone()));
        }
        let parent = remote_parent(trace.trace_id, trace.span_id);
        let mut span = builder.start_with_context(tracer, &parent);
        opentelemetry::trace::Span::end_with_timestamp(&mut span, start + ex.duration);
    }

    /// Flushes and stops both exporters, at most [`FLUSH_DEADLINE`] (from a blocking thread:
    /// the SDK waits on its export threads, which use this runtime).
    pub async fn shutdown(&self) {
        let Some(live) = &self.live else { return };
        let traces = live.traces.as_ref().map(|(p, _)| p.clone());
        let metrics = live.metrics.as_ref().map(|m| m.provider.clone());
        let done = tokio::task::spawn_blocking(move || {
            if let Some(p) = traces {
                if let Err(e) = p.shutdown_with_timeout(FLUSH_DEADLINE) {
                    tracing::warn!("OpenTelemetry: flushing spans: {e}");
                }
            }
            if let Some(p) = metrics {
                if let Err(e) = p.shutdown_with_timeout(FLUSH_DEADLINE) {
                    tracing::warn!("OpenTelemetry: flushing metrics: {e}");
                }
            }
        });
        if tokio::time::timeout(FLUSH_DEADLINE * 2, done)
            .await
            .is_err()
        {
            tracing::warn!("OpenTelemetry: the collector did not take the last data in time");
        }
    }
}

impl Live {
    fn start(s: &OtelSettings) -> Result<Live, String> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| e.to_string())?;
        let client = RuntimeClient::new(runtime, s.timeout)?;
        let mut resource = Resource::builder_empty().with_service_name(s.service_name.clone());
        resource = resource.with_attributes(
            s.resource
                .iter()
                .filter(|(k, _)| k != "service.name")
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
        );
        resource =
            resource.with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
        let resource = resource.build();
        let headers = |t: &OtlpTarget| -> HashMap<String, String> {
            t.headers
                .iter()
                .map(|(k, v)| (k.clone(), v.expose().to_string()))
                .collect()
        };
        let traces = match &s.traces {
            None => None,
            Some(t) => {
                let exporter = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_http_client(client.clone())
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_endpoint(t.endpoint.clone())
                    .with_headers(headers(t))
                    .with_timeout(s.timeout)
                    .build()
                    .map_err(|e| format!("the span exporter: {e}"))?;
                let provider = SdkTracerProvider::builder()
                    .with_span_processor(BatchSpanProcessor::builder(exporter).build())
                    .with_resource(resource.clone())
                    .build();
                let tracer = provider.tracer("drover");
                Some((provider, tracer))
            }
        };
        let metrics = match &s.metrics {
            None => None,
            Some(t) => {
                let exporter = opentelemetry_otlp::MetricExporter::builder()
                    .with_http()
                    .with_http_client(client)
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_endpoint(t.endpoint.clone())
                    .with_headers(headers(t))
                    .with_timeout(s.timeout)
                    .build()
                    .map_err(|e| format!("the metric exporter: {e}"))?;
                let reader = PeriodicReader::builder(exporter)
                    .with_interval(s.metric_interval)
                    .build();
                let provider = SdkMeterProvider::builder()
                    .with_reader(reader)
                    .with_resource(resource)
                    .build();
                let meter = provider.meter("drover");
                let tokens = meter
                    .u64_histogram("gen_ai.client.token.usage")
                    .with_unit("{token}")
                    .with_description("Number of input and output tokens used")
                    .with_boundaries(TOKEN_BUCKETS.to_vec())
                    .build();
                let duration = meter
                    .f64_histogram("gen_ai.client.operation.duration")
                    .with_unit("s")
                    .with_description("GenAI operation duration")
                    .with_boundaries(DURATION_BUCKETS.to_vec())
                    .build();
                Some(Meters {
                    provider,
                    tokens,
                    duration,
                })
            }
        };
        Ok(Live { traces, metrics })
    }
}

/// A sampled remote parent (a span this daemon may not have made: the pool's root, or the
/// task's span exported later).
fn remote_parent(trace_id: [u8; 16], span_id: [u8; 8]) -> Context {
    Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from_bytes(trace_id),
        SpanId::from_bytes(span_id),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    ))
}

/// `gen_ai.provider.name` of an agent's requests.
pub fn provider_of(agent: &str) -> Option<&'static str> {
    match agent {
        "claude" | "claude-bg" => Some("anthropic"),
        "codex" => Some("openai"),
        _ => None,
    }
}

/// The `error.type` of a failed exchange: the gateway's refusal, the HTTP status, a broken
/// stream, or no answer.
fn error_type(ex: &Exchange) -> Option<String> {
    if let Some(r) = ex.refused {
        return Some(r.to_string());
    }
    if ex.interrupted {
        return Some("interrupted".into());
    }
    match ex.status {
        Some(s) if s < 400 => None,
        Some(s) => Some(s.to_string()),
        None => Some("_OTHER".into()),
    }
}

/// A stored RFC 3339 time.
fn time(s: &str) -> Option<SystemTime> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc).into())
}
