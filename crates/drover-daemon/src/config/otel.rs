//! The OpenTelemetry exporter's settings (docs/design.md §10), from the standard `OTEL_*`
//! variables of the daemon's environment, read once here. Off unless an OTLP endpoint is set
//! (`OTEL_EXPORTER_OTLP_ENDPOINT`, or a signal's own `…_TRACES_ENDPOINT` / `…_METRICS_ENDPOINT`);
//! `OTEL_SDK_DISABLED=true` turns it off whatever else is set. Headers
//! (`OTEL_EXPORTER_OTLP_HEADERS`, a signal's own `…_HEADERS`) usually carry a collector's
//! credential: they are [`Secret`]s, never printed, and no child gets them (`child_env`
//! passes no `OTEL_*` variable, and `pass_env` refuses the headers).

use std::time::Duration;

use super::error::{ConfigError, Origin};
use super::load::Environment;
use super::Secret;

/// The variables that may hold a collector's credential.
pub const HEADER_VARS: &[&str] = &[
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
];

/// Where and how the daemon exports OTLP over HTTP/protobuf.
#[derive(Debug, Clone)]
pub struct OtelSettings {
    /// Spans (`invoke_agent`, `sandbox`, `gate`, `commit`, `chat`), when exported.
    pub traces: Option<OtlpTarget>,
    /// `gen_ai.client.token.usage` and `gen_ai.client.operation.duration`, when exported.
    pub metrics: Option<OtlpTarget>,
    /// `OTEL_SERVICE_NAME`, default `drover`.
    pub service_name: String,
    /// `OTEL_RESOURCE_ATTRIBUTES` (`k=v,k=v`, values percent-decoded).
    pub resource: Vec<(String, String)>,
    /// `OTEL_METRIC_EXPORT_INTERVAL` (milliseconds, default 60 s).
    pub metric_interval: Duration,
    /// `OTEL_EXPORTER_OTLP_TIMEOUT` (milliseconds, default 10 s): one export's limit.
    pub timeout: Duration,
}

/// One signal's full URL (`…/v1/traces`, `…/v1/metrics`) and headers.
#[derive(Debug, Clone)]
pub struct OtlpTarget {
    pub endpoint: String,
    pub headers: Vec<(String, Secret)>,
}

impl OtelSettings {
    /// `drover doctor`'s line: where it exports (never the headers).
    pub fn describe(this: Option<&OtelSettings>) -> String {
        let Some(s) = this else {
            return "off (set OTEL_EXPORTER_OTLP_ENDPOINT to export traces and metrics)".into();
        };
        let one = |t: &Option<OtlpTarget>| match t {
            Some(t) if t.headers.is_empty() => shown_endpoint(&t.endpoint),
            Some(t) => format!(
                "{} (+{} header(s))",
                shown_endpoint(&t.endpoint),
                t.headers.len()
            ),
            None => "off".into(),
        };
        format!(
            "OTLP/HTTP as service {}: traces {}, metrics {} every {}s",
            s.service_name,
            one(&s.traces),
            one(&s.metrics),
            s.metric_interval.as_secs_f64()
        )
    }
}

/// An endpoint as printed: a user and password in it (`https://user:token@collector`) and its
/// query (where some collectors take a token) are masked, like the headers.
pub fn shown_endpoint(endpoint: &str) -> String {
    let Ok(mut u) = url::Url::parse(endpoint) else {
        return "(not a URL)".into();
    };
    let userinfo = !u.username().is_empty() || u.password().is_some();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    if u.query().is_some() {
        u.set_query(Some("***"));
    }
    let s = u.to_string();
    if userinfo {
        s.replacen("://", "://***@", 1)
    } else {
        s
    }
}

/// The settings, or `None` (off).
pub(super) fn resolve(env: &Environment) -> Result<Option<OtelSettings>, ConfigError> {
    let bad = |var: &str, msg: String| ConfigError::invalid(Origin::Env(var.into()), msg);
    let get = |v: &str| env.get(v).map(str::trim).filter(|s| !s.is_empty());
    if get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    for var in [
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    ] {
        if let Some(p) = get(var).filter(|p| *p != "http/protobuf") {
            return Err(bad(
                var,
                format!(
                    "{var}={p}: drover exports OTLP over HTTP/protobuf only; set it to \
                     http/protobuf (or unset it) and point the endpoint at the collector's HTTP \
                     port (usually 4318)"
                ),
            ));
        }
    }
    let base = get("OTEL_EXPORTER_OTLP_ENDPOINT");
    let shared_headers = headers(env, "OTEL_EXPORTER_OTLP_HEADERS")?;
    let target = |own: &str, own_headers: &str, path: &str, exporter: &str| {
        if get(exporter).is_some_and(|e| e == "none") {
            return Ok(None);
        }
        let endpoint = match (get(own), base) {
            (Some(url), _) => url.to_string(),
            (None, Some(b)) => format!("{}/{path}", b.trim_end_matches('/')),
            (None, None) => return Ok(None),
        };
        let var = if get(own).is_some() {
            own
        } else {
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        };
        match url::Url::parse(&endpoint) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => {
                return Err(bad(
                    var,
                    format!(
                        "{var}={endpoint:?} is not an http(s) URL; write e.g. \
                         http://localhost:4318"
                    ),
                ))
            }
        }
        let mut h = shared_headers.clone();
        for (k, v) in headers(env, own_headers)? {
            h.retain(|(n, _)| !n.eq_ignore_ascii_case(&k));
            h.push((k, v));
        }
        Ok(Some(OtlpTarget {
            endpoint,
            headers: h,
        }))
    };
    let traces = target(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        "v1/traces",
        "OTEL_TRACES_EXPORTER",
    )?;
    let metrics = target(
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
        "v1/metrics",
        "OTEL_METRICS_EXPORTER",
    )?;
    if traces.is_none() && metrics.is_none() {
        return Ok(None);
    }
    let millis = |var: &str, default: u64| match get(var) {
        None => Ok(Duration::from_millis(default)),
        Some(v) => match v.parse::<u64>() {
            Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
            _ => Err(bad(
                var,
                format!("{var}={v:?}: give a number of milliseconds > 0"),
            )),
        },
    };
    let resource = match get("OTEL_RESOURCE_ATTRIBUTES") {
        None => vec![],
        Some(v) => pairs(v).ok_or_else(|| {
            bad(
                "OTEL_RESOURCE_ATTRIBUTES",
                "OTEL_RESOURCE_ATTRIBUTES: write key=value pairs separated by commas".into(),
            )
        })?,
    };
    Ok(Some(OtelSettings {
        traces,
        metrics,
        service_name: get("OTEL_SERVICE_NAME").unwrap_or("drover").to_string(),
        resource,
        metric_interval: millis("OTEL_METRIC_EXPORT_INTERVAL", 60_000)?,
        timeout: millis("OTEL_EXPORTER_OTLP_TIMEOUT", 10_000)?,
    }))
}

/// `k=v,k=v` (W3C baggage-like, values percent-decoded) into secrets. The message names the
/// variable, never its value.
fn headers(env: &Environment, var: &str) -> Result<Vec<(String, Secret)>, ConfigError> {
    let Some(v) = env.get(var).map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(vec![]);
    };
    let parsed = pairs(v).filter(|p| {
        p.iter().all(|(k, v)| {
            reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_ok()
                && reqwest::header::HeaderValue::from_str(v).is_ok()
        })
    });
    match parsed {
        Some(p) => Ok(p.into_iter().map(|(k, v)| (k, Secret::new(v))).collect()),
        None => Err(ConfigError::invalid(
            Origin::Env(var.into()),
            format!("{var}: write header=value pairs separated by commas (values percent-encoded)"),
        )),
    }
}

fn pairs(v: &str) -> Option<Vec<(String, String)>> {
    v.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=')?;
            let k = k.trim();
            if k.is_empty() {
                return None;
            }
            let v = percent_encoding::percent_decode_str(v.trim())
                .decode_utf8()
                .ok()?;
            Some((k.to_string(), v.into_owned()))
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn doctor_masks_credentials_in_the_endpoint() {
        assert_eq!(
            shown_endpoint("https://collector:4318/v1/traces"),
            "https://collector:4318/v1/traces"
        );
        let s = shown_endpoint("https://user:s3cret@collector:4318/v1/traces?api_key=k3y");
        assert!(
            !s.contains("s3cret") && !s.contains("k3y") && !s.contains("user"),
            "{s}"
        );
        assert_eq!(s, "https://***@collector:4318/v1/traces?***");
    }

    fn env(pairs: &[(&str, &str)]) -> Environment {
        Environment::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn off_without_an_endpoint_or_when_disabled() {
        assert!(resolve(&env(&[])).unwrap().is_none());
        let e = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_SDK_DISABLED", "true"),
        ]);
        assert!(resolve(&e).unwrap().is_none());
    }

    #[test]
    fn the_base_endpoint_gets_each_signals_path_and_own_ones_win() {
        let e = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:9/x"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "Authorization=Bearer%20s3cret,x-a=1",
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-a=2"),
            ("OTEL_SERVICE_NAME", "fleet"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=ci,team=x",
            ),
            ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
        ]);
        let s = resolve(&e).unwrap().unwrap();
        let t = s.traces.as_ref().unwrap();
        assert_eq!(t.endpoint, "http://c:4318/v1/traces");
        let h: Vec<_> = t
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.expose()))
            .collect();
        assert_eq!(h, [("Authorization", "Bearer s3cret"), ("x-a", "2")]);
        assert_eq!(s.metrics.as_ref().unwrap().endpoint, "http://m:9/x");
        assert_eq!(s.service_name, "fleet");
        assert_eq!(s.resource.len(), 2);
        assert_eq!(s.metric_interval, Duration::from_millis(500));
        let line = OtelSettings::describe(Some(&s));
        assert!(line.contains("http://c:4318/v1/traces"), "{line}");
        assert!(!line.contains("s3cret"), "{line}");
        assert!(!format!("{s:?}").contains("s3cret"));
    }

    #[test]
    fn bad_values_are_one_line_without_the_secret() {
        let e = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "s3cret-without-equals"),
        ]);
        let err = resolve(&e).unwrap_err().to_string();
        assert!(err.contains("OTEL_EXPORTER_OTLP_HEADERS"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
        let e = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ]);
        assert!(resolve(&e)
            .unwrap_err()
            .to_string()
            .contains("http/protobuf"));
        let e = env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318")]);
        assert!(resolve(&e).is_err());
        let e = env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ]);
        let s = resolve(&e).unwrap().unwrap();
        assert!(s.traces.is_none() && s.metrics.is_some());
    }
}
