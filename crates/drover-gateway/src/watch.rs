//! One request's [`Exchange`], reported to the gateway's [`Observer`] exactly once: a guard
//! created when a task's request arrives, filled in along its path (model, retries, status,
//! usage) and reported when it is dropped — after the relayed body's last byte (the guard lives
//! in the relay), when the gateway refuses the request, when the upstream fails, or when the
//! agent goes away mid-request.

use std::sync::Arc;
use std::time::Instant;

use crate::errors::{Flavor, GatewayError};
use crate::inner::Inner;
use crate::ledger::{Api, UsageRecord};
use crate::observer::{Exchange, Observer};

/// The pending report of one request (a no-op without an observer).
pub struct Watch {
    sink: Option<(Arc<dyn Observer>, String)>,
    start: Instant,
    pub ex: Exchange,
}

impl Watch {
    /// Starts watching a request of `task_id` on `api`.
    pub fn start(inner: &Inner, task_id: &str, api: Api) -> Watch {
        let flavor = api.flavor();
        let base = match flavor {
            Flavor::Anthropic => inner.cfg.anthropic_base.as_str(),
            Flavor::OpenAi => inner.cfg.openai_base.as_str(),
        };
        Watch {
            sink: inner
                .observer
                .as_ref()
                .map(|o| (o.clone(), task_id.to_string())),
            start: Instant::now(),
            ex: Exchange {
                api,
                provider: match flavor {
                    Flavor::Anthropic => "anthropic",
                    Flavor::OpenAi => "openai",
                },
                upstream: upstream_host(base),
                request_model: String::new(),
                response_model: None,
                status: None,
                refused: None,
                retries: 0,
                started_at: chrono::Utc::now(),
                duration: std::time::Duration::ZERO,
                tokens: None,
                cost_usd: None,
                finish_reason: None,
                interrupted: false,
            },
        }
    }

    /// A request the gateway answered itself: `refused` when it was a refusal of policy
    /// (see [`refusal`]), else an error (`status` stays `None`).
    pub fn failed_with(&mut self, e: &GatewayError) {
        self.ex.refused = refusal(e);
        if let GatewayError::ModelNotAllowed(m) | GatewayError::NoPrice(m) = e {
            if self.ex.request_model.is_empty() {
                self.ex.request_model.clone_from(m);
            }
        }
    }

    /// The usage record the relay wrote for the response (if it wrote one).
    pub fn metered(&mut self, rec: Option<&UsageRecord>) {
        if let Some(rec) = rec {
            self.ex.response_model = Some(rec.model.clone());
            self.ex.tokens = Some(rec.tokens);
            self.ex.cost_usd = rec.cost_usd;
            self.ex.finish_reason = rec.stop_reason.clone();
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some((observer, task)) = self.sink.take() {
            self.ex.duration = self.start.elapsed();
            observer.exchange(&task, &self.ex);
        }
    }
}

/// The `refused` value of an error the gateway answered itself without asking the provider:
/// `budget` (a budget refused it, or other requests in flight hold it), `no_price`, `model`
/// (not allowed for the task), `unmeterable`, `bad_request` (not JSON), `no_key` (no provider
/// key configured). `None`: not a refusal (the upstream failed, or the ledger could not answer).
pub fn refusal(e: &GatewayError) -> Option<&'static str> {
    Some(match e {
        GatewayError::Budget(_) | GatewayError::Busy(_) => "budget",
        GatewayError::NoPrice(_) => "no_price",
        GatewayError::ModelNotAllowed(_) => "model",
        GatewayError::Unmeterable(_) => "unmeterable",
        GatewayError::BadJson(_) => "bad_request",
        GatewayError::NoKey(_) => "no_key",
        GatewayError::Unauthorized
        | GatewayError::NotFound
        | GatewayError::Ledger(_)
        | GatewayError::Timeout(_)
        | GatewayError::Upstream(_) => return None,
    })
}

/// `host[:port]` of a base URL (`https://api.anthropic.com` → `api.anthropic.com`).
fn upstream_host(base: &str) -> String {
    let rest = base.split_once("://").map_or(base, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    // Never a user or password in a label.
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    host.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_host_is_host_and_port_only() {
        assert_eq!(
            upstream_host("https://api.anthropic.com"),
            "api.anthropic.com"
        );
        assert_eq!(upstream_host("https://api.openai.com/v1"), "api.openai.com");
        assert_eq!(upstream_host("http://127.0.0.1:8080/v1"), "127.0.0.1:8080");
        assert_eq!(
            upstream_host("http://u:pw@Example.COM:1/x?y"),
            "example.com:1"
        );
    }
}
