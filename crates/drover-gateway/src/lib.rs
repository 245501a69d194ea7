//! # drover-gateway
//!
//! drover's LLM gateway: an Anthropic- and OpenAI-compatible proxy that sits between every
//! agent and the model provider. The agent gets the gateway as its base URL and a random
//! task-scoped token as its key; the real key stays in the daemon's memory. Every response is
//! metered from the wire, budgets are checked before every request, transient upstream
//! failures are retried before the first byte reaches the agent, and streams pass through as
//! they arrive.
//!
//! ## Embedding (what the daemon does)
//!
//! ```no_run
//! # async fn demo(ledger: std::sync::Arc<dyn drover_gateway::Ledger>) -> Result<(), Box<dyn std::error::Error>> {
//! use drover_gateway::{Gateway, GatewayConfig, Limits, Secret, TaskGrant};
//! // The embedder reads keys and upstreams (the daemon: its config loader); the gateway
//! // reads no environment.
//! let config = GatewayConfig {
//!     anthropic_key: Some(Secret::new("sk-ant-…")),
//!     ..GatewayConfig::default()
//! };
//! let gw = Gateway::new(config, ledger)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let base = format!("http://{}", listener.local_addr()?);
//! let server = gw.clone();
//! tokio::spawn(async move { server.serve(listener, std::future::pending()).await });
//!
//! // At task start:
//! let token = gw.grant(TaskGrant {
//!     limits: Limits { task_usd: Some(2.0), ..Limits::default() },
//!     ..TaskGrant::new("t-123")
//! });
//! let env = Gateway::agent_env(&base, &token); // ANTHROPIC_BASE_URL/API_KEY, OPENAI_*
//! // ... spawn the agent with `env` (and without any real provider key variables) ...
//! // At task end:
//! gw.revoke(&token);
//! # Ok(()) }
//! ```
//!
//! The daemon implements [`Ledger`] over its store: [`Ledger::record`] gets one
//! [`UsageRecord`] per metered response (handed over, and counted in what was spent, before the
//! response's last event is relayed; the daemon stores it a few milliseconds later, batched),
//! [`Ledger::event`] gets [`GatewayEvent`]s (`Retry`, `BudgetRefused` → end the task
//! `failed`/`budget_exceeded`, `OutputCapped`, `StreamInterrupted`, `Truncated`,
//! `UnknownModelPrice`, …), and [`Ledger::spent`] answers from persistent records plus what was
//! handed over since, so budgets survive restarts.
//!
//! ## Endpoints
//!
//! `POST /v1/messages` (stream or not), `POST /v1/messages/count_tokens` → Anthropic upstream
//! `{anthropic_base}/v1/…`; `POST /v1/chat/completions`, `POST /v1/responses` (stream or not) →
//! OpenAI upstream `{openai_base}/…` (`openai_base` ends in `/v1`, as `OPENAI_BASE_URL` does).
//! The task token arrives as `x-api-key` or `Authorization: Bearer`; an unknown or revoked
//! token gets 401 in the provider's error format. Other request headers (`anthropic-version`,
//! `anthropic-beta`, …) pass through; the real key replaces the token.
//!
//! ## Behaviour
//!
//! - **Metering**: Anthropic `message_start`/`message_delta` usage, the Chat Completions final
//!   usage chunk (the gateway adds `stream_options.include_usage` when the agent did not, and
//!   then strips that chunk from the agent's stream), Responses `response.completed`. Cost =
//!   tokens × [`PriceTable`]; an unknown model gives `cost_usd: None` and one
//!   `UnknownModelPrice` event.
//! - **Budgets** ([`Limits`]): every request reserves its worst-case cost (prompt estimate from
//!   the body size × the dearest input rate + `max_tokens` × the output rate) before it is
//!   forwarded, and the reservation is released once its usage is recorded. A request that does
//!   not fit (spent + reserved + its worst case) gets Anthropic 402 `billing_error` (Claude Code
//!   stops on it; a 400 makes it re-send 5 times) / OpenAI 429 `insufficient_quota`, both with
//!   `x-should-retry: false`, and a `BudgetRefused` event: overshoot 0 where `max_tokens` is
//!   known, at most one request otherwise. A request whose worst case does not fit but whose
//!   prompt and at least [`MIN_OUTPUT`] (1,024) output tokens do is forwarded with its output
//!   cap (`max_tokens` / `max_completion_tokens` / `max_output_tokens`) lowered to what the
//!   tightest budget still affords — an Anthropic `thinking.budget_tokens` at or above the new
//!   cap is halved, or `thinking` dropped when half would be under 1,024 — and an
//!   `OutputCapped` event. Under any dollar budget a model without a price is
//!   refused the same way (`NoPrice`), never forwarded unmetered. If the ledger cannot say what
//!   was spent, the request gets a retryable 503. A refusal caused only by other requests in
//!   flight (what was spent leaves room for this one's prompt and up to 1,024 output tokens)
//!   waits up to [`GatewayConfig::busy_wait`] for them to settle, then is a retryable 429 (`rate_limit_error`, `retry-after: 1`, `x-should-retry: true`) and a
//!   `BudgetBusy` event, which does not stop the task.
//! - **Settlement**: a request that reached the provider is never free. Its reservation is a
//!   guard: dropped without a metered record (the agent went away before the headers, a TTFB
//!   timeout or broken connection upstream) it records the worst case (outcome `unsettled`,
//!   `Unsettled` event) before releasing; a response that ends without its final usage is
//!   charged max(metered, worst case). Only an upstream error status is free. Chat `n`
//!   multiplies the reserved output; `background: true` (any budget), `previous_response_id`,
//!   `conversation` and Anthropic URL sources (dollar budget) are refused with a 400 naming the
//!   field (`Unmeterable`): their cost cannot be bounded.
//! - **Retries**: see [`upstream`] — before the first byte reaches the agent
//!   only. After that, a break gives the agent a well-formed error event (Anthropic
//!   `event: error`, Chat `data: {"error":…}`, Responses `response.failed`) and a
//!   `StreamInterrupted` event; a stall longer than `idle_timeout` counts as a break.
//! - **Model policy**: [`TaskGrant::aliases`], then [`GatewayConfig::aliases`]; then
//!   [`TaskGrant::allowed_models`] (403 `permission_error` and `ModelRefused` otherwise).
//! - **Streaming**: bytes are relayed as they arrive (SSE in whole events); no response is
//!   buffered whole.
//!
//! [`bench`](mod@bench) measures added latency and throughput against a direct upstream.

pub mod bench;
mod budget;
mod clamp;
mod config;
mod errors;
mod gateway;
mod grant;
mod inner;
mod ledger;
mod meter;
mod observer;
mod prices;
mod proxy;
mod relay;
pub mod upstream;
mod watch;

pub use budget::{Ask, Refusal, WorstCase, MIN_OUTPUT};
pub use config::{GatewayConfig, Secret, DEFAULT_ANTHROPIC_BASE, DEFAULT_OPENAI_BASE};
pub use errors::{interrupted_event, Flavor, GatewayError};
pub use gateway::Gateway;
pub use grant::{BudgetKind, Limits, TaskGrant, TOKEN_PREFIX};
pub use ledger::{Api, GatewayEvent, Ledger, MemoryLedger, ResponseOutcome, Spent, UsageRecord};
pub use meter::TRUNCATED;
pub use observer::{Exchange, Observer};
pub use prices::{BadPrice, LongPrompt, Price, PriceTable, Tokens};
