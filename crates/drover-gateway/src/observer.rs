//! What the gateway tells an observer about every upstream exchange (the daemon's Prometheus
//! metrics and OpenTelemetry `chat` spans, docs/design.md §10). Called once per request the
//! gateway forwarded (or refused), after its last byte; never on the request's path to the
//! provider, never with a secret.

use crate::ledger::Api;
use crate::prices::Tokens;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// One request through the gateway, as it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    pub api: Api,
    /// `anthropic` or `openai` (the OpenTelemetry `gen_ai.provider.name`).
    pub provider: &'static str,
    /// The upstream's host (`api.anthropic.com`, `127.0.0.1:PORT`).
    pub upstream: String,
    /// The model asked for (after aliasing).
    pub request_model: String,
    /// The model the provider reported, when it did.
    pub response_model: Option<String>,
    /// The final upstream HTTP status; `None`: no answer (connection error, timeout) or the
    /// gateway refused the request itself (see `refused`).
    pub status: Option<u16>,
    /// Why the gateway refused it without asking the provider (`budget`, `no_price`, `model`,
    /// `unmeterable`, `bad_request`, `no_key`), if it did.
    pub refused: Option<&'static str>,
    /// Retries made (0: the first attempt was the last), whatever the final status.
    pub retries: u32,
    pub started_at: DateTime<Utc>,
    /// From the request's arrival to its last byte relayed.
    pub duration: Duration,
    /// Metered usage, when the response carried it.
    pub tokens: Option<Tokens>,
    pub cost_usd: Option<f64>,
    /// `stop_reason` / `finish_reason`, when known.
    pub finish_reason: Option<String>,
    /// The stream broke after bytes reached the agent.
    pub interrupted: bool,
}

/// Receives every [`Exchange`] (sync and quick: it must not block the gateway).
pub trait Observer: Send + Sync {
    fn exchange(&self, task_id: &str, ex: &Exchange);
}
