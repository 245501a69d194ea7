//! Configuration: upstream endpoints and keys, retry policy, prices, model aliases. The gateway
//! reads no environment: its embedder (the daemon's config loader) fills [`GatewayConfig`].

use std::collections::HashMap;
use std::time::Duration;

use crate::prices::PriceTable;

pub use drover_types::Secret;

/// Anthropic's public endpoint (the SDK convention: no `/v1`).
pub const DEFAULT_ANTHROPIC_BASE: &str = "https://api.anthropic.com";
/// OpenAI's public endpoint (the SDK convention: with `/v1`).
pub const DEFAULT_OPENAI_BASE: &str = "https://api.openai.com/v1";

/// How the gateway reaches providers and treats their answers.
///
/// `Debug` is safe to log: keys print as `***`.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Anthropic upstream, without `/v1`: the gateway's `/v1/messages` goes to
    /// `{anthropic_base}/v1/messages`.
    pub anthropic_base: String,
    /// OpenAI upstream, with `/v1`: the gateway's `/v1/responses` goes to
    /// `{openai_base}/responses`.
    pub openai_base: String,
    /// Default Anthropic key (a task's [`crate::TaskGrant::key_override`] wins).
    pub anthropic_key: Option<Secret>,
    /// Default OpenAI key.
    pub openai_key: Option<Secret>,
    /// Longest wait for the upstream's response headers and first body bytes, per attempt.
    pub ttfb_timeout: Duration,
    /// Longest silence between two body chunks of a response being relayed; past it the
    /// stream counts as interrupted.
    pub idle_timeout: Duration,
    /// Retries after the first attempt (so at most `max_retries + 1` upstream requests).
    pub max_retries: u32,
    /// First backoff delay; doubles per retry, with jitter.
    pub backoff_base: Duration,
    /// Cap on any retry delay, `retry-after` included.
    pub backoff_max: Duration,
    /// USD per million tokens by model.
    pub prices: PriceTable,
    /// Model aliases applied to every request (e.g. `worker` → `claude-sonnet-5`); a grant's
    /// own aliases take precedence.
    pub aliases: HashMap<String, String>,
    /// Largest request body accepted from an agent (Anthropic's own limit is 32 MB).
    pub max_request_bytes: usize,
    /// How long a request refused only because of other requests in flight waits for them to
    /// settle before it is answered a retryable 429. (Claude Code under drover retries a 429
    /// twice, about a second apart, then fails its turn.)
    pub busy_wait: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            anthropic_base: DEFAULT_ANTHROPIC_BASE.into(),
            openai_base: DEFAULT_OPENAI_BASE.into(),
            anthropic_key: None,
            openai_key: None,
            ttfb_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(300),
            max_retries: 4,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            prices: PriceTable::builtin(),
            aliases: HashMap::new(),
            max_request_bytes: 32 * 1024 * 1024,
            busy_wait: Duration::from_secs(15),
        }
    }
}
