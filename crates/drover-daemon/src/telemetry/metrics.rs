//! Prometheus metrics (docs/design.md §10), served at `GET /metrics` (`api::metrics`) and
//! printed by `drover metrics`.
//!
//! Two kinds of families:
//! - **live**, counted by this daemon as things happen (they start at zero with the daemon):
//!   `drover_task_duration_seconds{outcome}` (a task ended here), the gateway's
//!   `drover_gateway_request_duration_seconds{upstream,model,status}`,
//!   `drover_gateway_requests_total{upstream,status}` and `drover_gateway_retries_total{upstream,
//!   status}` (from the gateway's [`drover_gateway::Observer`] reports: `status` is the final
//!   HTTP status, `error` when there was none, `refused` when the gateway refused the request
//!   itself; a request's retries count under its final status), and
//!   `drover_sse_followers{stream}`;
//! - **read from the store at scrape time** ([`Snapshot`]): `drover_tasks{state}` (every state,
//!   0 included), `drover_queue_length`, `drover_slots` / `drover_slots_used` (this daemon),
//!   `drover_tokens_total{model,team,pool,type}` and `drover_cost_usd_total{model,team,pool}`
//!   — the very usage rows `drover usage` sums, so they match it and survive restarts. Workers
//!   sharing one PostgreSQL database each report the whole store's tasks and usage (sum them
//!   over one worker only), and their own slots and live families.
//!
//! Every family holds at most [`labels::MAX_SERIES`] label sets: the rest are summed under
//! `other`. The text is OpenMetrics 1.0 (what `prometheus-client` writes; Prometheus asks for it
//! first), served as `application/openmetrics-text; version=1.0.0`.

use super::labels::{
    Cap, CostLabels, Other, OutcomeLabels, RequestLabels, SseStream, StateLabels, StreamLabels,
    TokenLabels, UpstreamLabels, VersionLabels, MAX_SERIES,
};
use drover_gateway::Exchange;
use drover_store::UsageTotal;
use drover_types::TaskState;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Hist<L> = Family<L, Histogram, fn() -> Histogram>;

/// Task durations: a second to a day.
fn task_buckets() -> Histogram {
    Histogram::new([
        1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0,
        28800.0, 86400.0,
    ])
}

/// Gateway requests: 50 ms to 10 minutes (a long streamed answer).
fn request_buckets() -> Histogram {
    Histogram::new([
        0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    ])
}

/// This daemon's live metrics (see the module's doc).
pub struct Metrics {
    live: Registry,
    task_duration: Hist<OutcomeLabels>,
    request_duration: Hist<RequestLabels>,
    requests: Family<UpstreamLabels, Counter>,
    retries: Family<UpstreamLabels, Counter>,
    followers: Family<StreamLabels, Gauge>,
    request_cap: Cap<RequestLabels>,
    upstream_cap: Cap<UpstreamLabels>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// What a scrape reads from the store (and the engine) for the families it does not count.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Tasks per state (states not listed count 0).
    pub tasks: Vec<(TaskState, i64)>,
    pub usage: Vec<UsageTotal>,
    /// The whole fleet's figures (queue, slots, gateway, followers): the host owner's and the
    /// scrape token's, never a team key's (see `api::metrics`).
    pub fleet: Option<Fleet>,
}

/// Fleet-wide figures of a scrape.
#[derive(Debug, Default)]
pub struct Fleet {
    pub queue_length: i64,
    pub slots: i64,
    pub slots_used: i64,
}

/// Keeps `drover_sse_followers{stream}` one higher while it lives.
pub struct Follower(Gauge);

impl Drop for Follower {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut live = Registry::default();
        let task_duration: Hist<OutcomeLabels> = Family::new_with_constructor(task_buckets);
        let request_duration: Hist<RequestLabels> = Family::new_with_constructor(request_buckets);
        let requests = Family::<UpstreamLabels, Counter>::default();
        let retries = Family::<UpstreamLabels, Counter>::default();
        let followers = Family::<StreamLabels, Gauge>::default();
        live.register(
            "drover_task_duration_seconds",
            "Tasks ended in this daemon, by outcome (the terminal state), from start to end",
            task_duration.clone(),
        );
        live.register(
            "drover_gateway_request_duration_seconds",
            "Gateway requests from arrival to the last byte relayed, by upstream, model and status",
            request_duration.clone(),
        );
        live.register(
            "drover_gateway_requests",
            "Gateway requests by upstream and status (HTTP code, error or refused)",
            requests.clone(),
        );
        live.register(
            "drover_gateway_retries",
            "Upstream retries the gateway made, by upstream and the request's final status",
            retries.clone(),
        );
        live.register(
            "drover_sse_followers",
            "Open server-sent event streams, by stream (task or fleet)",
            followers.clone(),
        );
        // Both streams are there from the start, at 0.
        for stream in [SseStream::Task, SseStream::Fleet] {
            followers.get_or_create(&StreamLabels { stream }).set(0);
        }
        Metrics {
            live,
            task_duration,
            request_duration,
            requests,
            retries,
            followers,
            request_cap: Cap::default(),
            upstream_cap: Cap::default(),
        }
    }

    /// One gateway exchange: request latency, retries and status by upstream.
    pub fn exchange(&self, _task_id: &str, ex: &Exchange) {
        let status = match (ex.refused, ex.status) {
            (Some(_), _) => "refused".to_string(),
            (None, Some(code)) => code.to_string(),
            (None, None) => "error".to_string(),
        };
        let model = ex
            .response_model
            .clone()
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| ex.request_model.clone());
        let req = self.request_cap.admit(RequestLabels {
            upstream: ex.upstream.clone(),
            model,
            status: status.clone(),
        });
        self.request_duration
            .get_or_create(&req)
            .observe(ex.duration.as_secs_f64());
        let up = self.upstream_cap.admit(UpstreamLabels {
            upstream: ex.upstream.clone(),
            status,
        });
        self.requests.get_or_create(&up).inc();
        if ex.retries > 0 {
            self.retries
                .get_or_create(&up)
                .inc_by(u64::from(ex.retries));
        }
    }

    /// A task ended in this daemon after `seconds`, in terminal state `outcome`.
    pub fn task_ended(&self, outcome: TaskState, seconds: f64) {
        self.task_duration
            .get_or_create(&OutcomeLabels {
                outcome: outcome.as_str().to_string(),
            })
            .observe(seconds.max(0.0));
    }

    /// A follower of `stream`: `drover_sse_followers{stream}` is one higher until it is dropped.
    pub fn sse_follower(&self, stream: SseStream) -> Follower {
        let g = self
            .followers
            .get_or_create(&StreamLabels { stream })
            .clone();
        g.inc();
        Follower(g)
    }

    /// The OpenMetrics text: the store's figures in `snap`, and (with `snap.fleet`) the live
    /// families.
    pub fn render(&self, snap: &Snapshot) -> String {
        let scraped = scraped(snap);
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode_registry(&mut out, &scraped);
        if snap.fleet.is_some() {
            let _ = encode_registry(&mut out, &self.live);
        }
        let _ = encode_eof(&mut out);
        out
    }
}

/// The families read from the store at scrape time, in a registry of their own.
fn scraped(snap: &Snapshot) -> Registry {
    let mut reg = Registry::default();
    let info = Family::<VersionLabels, Gauge>::default();
    info.get_or_create(&VersionLabels {
        version: env!("CARGO_PKG_VERSION").to_string(),
    })
    .set(1);
    // A gauge, not an OpenMetrics `info`: the Prometheus text parsers read it too.
    reg.register("drover_build_info", "drover's version (always 1)", info);

    let tasks = Family::<StateLabels, Gauge>::default();
    for state in TaskState::ALL {
        let n = snap
            .tasks
            .iter()
            .filter(|(s, _)| *s == state)
            .map(|(_, n)| *n)
            .sum();
        tasks
            .get_or_create(&StateLabels {
                state: state.as_str().to_string(),
            })
            .set(n);
    }
    reg.register("drover_tasks", "Tasks in the store by state", tasks);

    if let Some(f) = &snap.fleet {
        let gauge = |v: i64| {
            let g = Gauge::<i64>::default();
            g.set(v);
            g
        };
        reg.register(
            "drover_queue_length",
            "Tasks queued, waiting for a slot",
            gauge(f.queue_length),
        );
        reg.register("drover_slots", "This daemon's task slots", gauge(f.slots));
        reg.register(
            "drover_slots_used",
            "This daemon's task slots in use",
            gauge(f.slots_used),
        );
    }

    let (tokens, cost) = usage_families(&snap.usage);
    reg.register(
        "drover_tokens",
        "Tokens metered by the gateway, by model, team, pool and type (the store's usage rows)",
        tokens,
    );
    reg.register(
        "drover_cost_usd",
        "US dollars metered by the gateway, by model, team and pool (priced responses)",
        cost,
    );
    reg
}

/// `drover_tokens_total` and `drover_cost_usd_total` from the usage totals, each capped at
/// [`MAX_SERIES`] label sets (the rest summed under `other`).
fn usage_families(
    usage: &[UsageTotal],
) -> (
    Family<TokenLabels, Counter>,
    Family<CostLabels, Counter<f64, AtomicU64>>,
) {
    let mut tokens: BTreeMap<(String, String, String, &'static str), u64> = BTreeMap::new();
    let mut cost: BTreeMap<(String, String, String), f64> = BTreeMap::new();
    for u in usage {
        let key = (
            u.model.clone(),
            u.team.clone().unwrap_or_default(),
            u.pool.clone().unwrap_or_default(),
        );
        for (kind, n) in [
            ("input", u.input_tokens),
            ("output", u.output_tokens),
            ("cache_read", u.cache_read_tokens),
            ("cache_write", u.cache_write_tokens),
        ] {
            let k = (key.0.clone(), key.1.clone(), key.2.clone(), kind);
            *tokens.entry(k).or_default() += u64::try_from(n).unwrap_or(0);
        }
        *cost.entry(key).or_default() += u.cost_usd;
    }
    let token_family = Family::<TokenLabels, Counter>::default();
    let mut other_tokens = 0u64;
    for (i, ((model, team, pool, kind), n)) in tokens.into_iter().enumerate() {
        if i + 1 >= MAX_SERIES {
            other_tokens += n;
            continue;
        }
        let l = TokenLabels {
            model,
            team,
            pool,
            r#type: kind.to_string(),
        };
        token_family.get_or_create(&l).inc_by(n);
    }
    if other_tokens > 0 {
        token_family
            .get_or_create(&TokenLabels::other())
            .inc_by(other_tokens);
    }
    let cost_family = Family::<CostLabels, Counter<f64, AtomicU64>>::default();
    let mut other_cost = 0.0;
    let mut any_other = false;
    for (i, ((model, team, pool), usd)) in cost.into_iter().enumerate() {
        if i + 1 >= MAX_SERIES {
            other_cost += usd;
            any_other = true;
            continue;
        }
        cost_family
            .get_or_create(&CostLabels { model, team, pool })
            .inc_by(usd);
    }
    if any_other {
        cost_family
            .get_or_create(&CostLabels::other())
            .inc_by(other_cost);
    }
    (token_family, cost_family)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    fn total(model: &str, team: Option<&str>, pool: Option<&str>, n: i64, usd: f64) -> UsageTotal {
        UsageTotal {
            model: model.into(),
            team: team.map(str::to_string),
            pool: pool.map(str::to_string),
            requests: 1,
            input_tokens: n,
            output_tokens: 2 * n,
            cache_read_tokens: 3 * n,
            cache_write_tokens: 4 * n,
            cost_usd: usd,
        }
    }

    #[test]
    fn the_text_holds_every_family_in_base_units() {
        let m = Metrics::new();
        let ex = Exchange {
            api: drover_gateway::Api::Messages,
            provider: "anthropic",
            upstream: "api.anthropic.com".into(),
            request_model: "claude-x".into(),
            response_model: None,
            status: Some(200),
            refused: None,
            retries: 2,
            started_at: chrono::Utc::now(),
            duration: Duration::from_millis(1500),
            tokens: None,
            cost_usd: None,
            finish_reason: None,
            interrupted: false,
        };
        m.exchange("t", &ex);
        m.exchange(
            "t",
            &Exchange {
                refused: Some("budget"),
                status: None,
                retries: 0,
                ..ex
            },
        );
        m.task_ended(TaskState::Succeeded, 42.0);
        let f = m.sse_follower(SseStream::Task);
        let snap = Snapshot {
            tasks: vec![(TaskState::Queued, 3)],
            usage: vec![total("m", Some("a"), None, 10, 0.5)],
            fleet: Some(Fleet {
                queue_length: 3,
                slots: 4,
                slots_used: 1,
            }),
        };
        let text = m.render(&snap);
        for line in [
            "drover_tasks{state=\"queued\"} 3",
            "drover_tasks{state=\"running\"} 0",
            "drover_queue_length 3",
            "drover_slots 4",
            "drover_slots_used 1",
            "drover_tokens_total{model=\"m\",team=\"a\",pool=\"\",type=\"input\"} 10",
            "drover_tokens_total{model=\"m\",team=\"a\",pool=\"\",type=\"cache_write\"} 40",
            "drover_cost_usd_total{model=\"m\",team=\"a\",pool=\"\"} 0.5",
            "drover_gateway_requests_total{upstream=\"api.anthropic.com\",status=\"200\"} 1",
            "drover_gateway_requests_total{upstream=\"api.anthropic.com\",status=\"refused\"} 1",
            "drover_gateway_retries_total{upstream=\"api.anthropic.com\",status=\"200\"} 2",
            "drover_gateway_request_duration_seconds_count{upstream=\"api.anthropic.com\",model=\"claude-x\",status=\"200\"} 1",
            "drover_task_duration_seconds_count{outcome=\"succeeded\"} 1",
            "drover_sse_followers{stream=\"task\"} 1",
            "drover_sse_followers{stream=\"fleet\"} 0",
        ] {
            assert!(text.contains(line), "{line} missing in:\n{text}");
        }
        assert!(text.contains("drover_build_info{version=\""));
        assert!(text.ends_with("# EOF\n"));
        drop(f);
        assert!(m
            .render(&snap)
            .contains("drover_sse_followers{stream=\"task\"} 0"));
        // Without the fleet's figures: the team's own families only.
        let team = m.render(&Snapshot {
            fleet: None,
            ..snap
        });
        assert!(!team.contains("drover_gateway") && !team.contains("drover_slots"));
        assert!(team.contains("drover_tokens_total"));
    }

    #[test]
    fn usage_past_the_cap_is_summed_under_other() {
        let usage: Vec<UsageTotal> = (0..MAX_SERIES + 10)
            .map(|i| total(&format!("m{i:05}"), None, None, 1, 0.25))
            .collect();
        let (tokens, cost) = usage_families(&usage);
        let snap_text = {
            let mut reg = Registry::default();
            reg.register("t", "t", tokens);
            reg.register("c", "c", cost);
            let mut s = String::new();
            encode_registry(&mut s, &reg).unwrap();
            s
        };
        let series = |p: &str| snap_text.lines().filter(|l| l.starts_with(p)).count();
        assert_eq!(series("t_total{"), MAX_SERIES);
        assert_eq!(series("c_total{"), MAX_SERIES);
        let other = snap_text
            .lines()
            .find(|l| l.starts_with("c_total{model=\"other\""))
            .unwrap();
        // 1010 models, 999 kept: 11 summed.
        assert!(other.ends_with(" 2.75"), "{other}");
    }
}
