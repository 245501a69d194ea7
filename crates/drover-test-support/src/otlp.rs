//! An OTLP/HTTP receiver (a collector's HTTP port, in a test): `POST /v1/traces` and
//! `POST /v1/metrics` with protobuf bodies (`application/x-protobuf`), decoded with
//! `opentelemetry-proto`; spans and metric points are kept for the test to look at, with the
//! request headers each came with. A gzip body is refused (415): drover's exporter does not
//! compress, and this receiver has no inflater.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use prost::Message;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One span as received.
#[derive(Debug, Clone)]
pub struct Span {
    /// Lower-case hex.
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// OTLP `SpanKind` (1 internal, 2 server, 3 client, …).
    pub kind: i32,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    pub attributes: BTreeMap<String, Value>,
    /// OTLP status code (0 unset, 1 ok, 2 error) and message.
    pub status_code: i32,
    pub status_message: String,
    /// The resource's attributes (`service.name`, …).
    pub resource: BTreeMap<String, Value>,
}

impl Span {
    /// An attribute as a string (`""` when missing).
    pub fn str(&self, key: &str) -> &str {
        self.attributes
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// An integer attribute.
    pub fn int(&self, key: &str) -> Option<i64> {
        self.attributes.get(key).and_then(Value::as_i64)
    }
}

/// One data point of a metric as received (histograms: count and sum; sums and gauges: value).
#[derive(Debug, Clone)]
pub struct Point {
    pub metric: String,
    pub unit: String,
    /// `histogram`, `sum` or `gauge`.
    pub kind: &'static str,
    pub attributes: BTreeMap<String, Value>,
    pub count: u64,
    pub sum: f64,
    pub value: f64,
    pub time_unix_nano: u64,
}

/// What came in.
#[derive(Debug, Clone, Default)]
pub struct Received {
    pub spans: Vec<Span>,
    pub points: Vec<Point>,
    /// (path, headers with lower-case names) of every request.
    pub requests: Vec<(String, Vec<(String, String)>)>,
}

impl Received {
    /// The spans named `name`.
    pub fn named(&self, name: &str) -> Vec<&Span> {
        self.spans.iter().filter(|s| s.name == name).collect()
    }

    /// The latest point of each attribute set of `metric` (OTLP metrics are cumulative: each
    /// export repeats the running totals).
    pub fn latest(&self, metric: &str) -> Vec<&Point> {
        let mut by: BTreeMap<String, &Point> = BTreeMap::new();
        for p in self.points.iter().filter(|p| p.metric == metric) {
            let key = serde_json::to_string(&p.attributes).unwrap();
            match by.get(&key) {
                Some(q) if q.time_unix_nano > p.time_unix_nano => {}
                _ => {
                    by.insert(key, p);
                }
            }
        }
        by.into_values().collect()
    }
}

/// A running receiver on `127.0.0.1`; it stops when dropped.
pub struct OtlpReceiver {
    got: Arc<Mutex<Received>>,
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl OtlpReceiver {
    /// Starts it on its own thread and runtime (usable from sync and async tests).
    pub fn start() -> OtlpReceiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Received::default()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = got.clone();
        std::thread::Builder::new()
            .name("otlp-receiver".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    let app = axum::Router::new()
                        .route("/v1/traces", axum::routing::post(traces))
                        .route("/v1/metrics", axum::routing::post(metrics))
                        .with_state(state);
                    tokio::select! {
                        _ = axum::serve(listener, app) => {}
                        _ = stopped => {}
                    }
                });
            })
            .unwrap();
        OtlpReceiver {
            got,
            port,
            stop: Some(stop),
        }
    }

    /// `http://127.0.0.1:PORT` (what `OTEL_EXPORTER_OTLP_ENDPOINT` takes).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Everything received so far.
    pub fn received(&self) -> Received {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `pred` holds for what was received, and returns it; fails the test after
    /// `limit`, saying what it waited for and what it had.
    pub fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        pred: impl Fn(&Received) -> bool,
    ) -> Received {
        let deadline = Instant::now() + limit;
        loop {
            let got = self.received();
            if pred(&got) {
                return got;
            }
            if Instant::now() >= deadline {
                let names: Vec<_> = got.spans.iter().map(|s| s.name.as_str()).collect();
                let metrics: Vec<_> = got.points.iter().map(|p| p.metric.as_str()).collect();
                panic!(
                    "timed out after {limit:?} waiting for {what}: spans {names:?}, points \
                     {metrics:?}"
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

type Got = axum::extract::State<Arc<Mutex<Received>>>;

fn refuse(headers: &axum::http::HeaderMap) -> Option<(axum::http::StatusCode, &'static str)> {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    if header("content-encoding").contains("gzip") {
        return Some((
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "gzip bodies are not supported by this receiver",
        ));
    }
    if header("content-type") != "application/x-protobuf" {
        return Some((
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send application/x-protobuf",
        ));
    }
    None
}

fn seen(path: &str, headers: &axum::http::HeaderMap) -> (String, Vec<(String, String)>) {
    let h = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    (path.to_string(), h)
}

fn ok() -> axum::response::Response {
    axum::response::Response::builder()
        .status(200)
        .header("content-type", "application/x-protobuf")
        .body(axum::body::Body::empty())
        .unwrap()
}

async fn traces(
    axum::extract::State(got): Got,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if let Some(r) = refuse(&headers) {
        return r.into_response();
    }
    let req = match ExportTraceServiceRequest::decode(body) {
        Ok(r) => r,
        Err(e) => return (axum::http::StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let mut spans = vec![];
    for rs in req.resource_spans {
        let resource = attrs(rs.resource.map(|r| r.attributes).unwrap_or_default());
        for ss in rs.scope_spans {
            for s in ss.spans {
                let status = s.status.unwrap_or_default();
                spans.push(Span {
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_span_id: hex(&s.parent_span_id),
                    name: s.name,
                    kind: s.kind,
                    start_unix_nano: s.start_time_unix_nano,
                    end_unix_nano: s.end_time_unix_nano,
                    attributes: attrs(s.attributes),
                    status_code: status.code,
                    status_message: status.message,
                    resource: resource.clone(),
                });
            }
        }
    }
    let mut g = got.lock().unwrap();
    g.requests.push(seen("/v1/traces", &headers));
    g.spans.extend(spans);
    ok()
}

async fn metrics(
    axum::extract::State(got): Got,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if let Some(r) = refuse(&headers) {
        return r.into_response();
    }
    let req = match ExportMetricsServiceRequest::decode(body) {
        Ok(r) => r,
        Err(e) => return (axum::http::StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let mut points = vec![];
    for rm in req.resource_metrics {
        for sm in rm.scope_metrics {
            for m in sm.metrics {
                let base = |kind, attributes, time_unix_nano| Point {
                    metric: m.name.clone(),
                    unit: m.unit.clone(),
                    kind,
                    attributes,
                    count: 0,
                    sum: 0.0,
                    value: 0.0,
                    time_unix_nano,
                };
                match &m.data {
                    Some(Data::Histogram(h)) => {
                        for p in &h.data_points {
                            let mut pt =
                                base("histogram", attrs(p.attributes.clone()), p.time_unix_nano);
                            pt.count = p.count;
                            pt.sum = p.sum.unwrap_or(0.0);
                            points.push(pt);
                        }
                    }
                    Some(Data::Sum(s)) => {
                        for p in &s.data_points {
                            let mut pt = base("sum", attrs(p.attributes.clone()), p.time_unix_nano);
                            pt.value = number(p.value.as_ref());
                            points.push(pt);
                        }
                    }
                    Some(Data::Gauge(s)) => {
                        for p in &s.data_points {
                            let mut pt =
                                base("gauge", attrs(p.attributes.clone()), p.time_unix_nano);
                            pt.value = number(p.value.as_ref());
                            points.push(pt);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    let mut g = got.lock().unwrap();
    g.requests.push(seen("/v1/metrics", &headers));
    g.points.extend(points);
    ok()
}

fn number(v: Option<&opentelemetry_proto::tonic::metrics::v1::number_data_point::Value>) -> f64 {
    use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as V;
    match v {
        Some(V::AsDouble(d)) => *d,
        Some(V::AsInt(i)) => *i as f64,
        None => 0.0,
    }
}

fn attrs(kvs: Vec<KeyValue>) -> BTreeMap<String, Value> {
    kvs.into_iter().map(|kv| (kv.key, any(kv.value))).collect()
}

fn any(v: Option<AnyValue>) -> Value {
    match v.and_then(|v| v.value) {
        Some(any_value::Value::StringValue(s)) => json!(s),
        Some(any_value::Value::BoolValue(b)) => json!(b),
        Some(any_value::Value::IntValue(i)) => json!(i),
        Some(any_value::Value::DoubleValue(d)) => json!(d),
        Some(any_value::Value::ArrayValue(a)) => {
            Value::Array(a.values.into_iter().map(|v| any(Some(v))).collect())
        }
        Some(any_value::Value::KvlistValue(l)) => json!(attrs(l.values)),
        Some(any_value::Value::BytesValue(b)) => json!(hex(&b)),
        None => Value::Null,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
