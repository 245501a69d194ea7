//! Shared test set-up: a fake provider, a gateway in front of it, and a memory ledger.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use drover_fake_provider::RunningProvider;
use drover_gateway::{Gateway, GatewayConfig, MemoryLedger, Price, PriceTable, Secret};
use serde_json::Value;

/// Parses SSE text into `(event name or "", data)` pairs.
pub use drover_test_support::sse::frames as sse;

pub const REAL_KEY: &str = "sk-ant-REAL-provider-key-0123456789";

pub struct Env {
    pub provider: RunningProvider,
    pub gateway: Gateway,
    pub ledger: Arc<MemoryLedger>,
    pub base: String,
    _server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Test prices: round numbers so costs are easy to check.
pub fn prices() -> PriceTable {
    let mut p = PriceTable::builtin();
    p.set("test-model", Price::new(3.0, 15.0, 0.3, 3.75));
    p.set("gpt-test", Price::new(2.0, 8.0, 0.5, 0.0));
    p
}

pub fn config(provider: &RunningProvider) -> GatewayConfig {
    GatewayConfig {
        anthropic_base: provider.base_url(),
        openai_base: format!("{}/v1", provider.base_url()),
        anthropic_key: Some(Secret::new(REAL_KEY)),
        openai_key: Some(Secret::new(REAL_KEY)),
        backoff_base: Duration::from_millis(10),
        ttfb_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
        prices: prices(),
        ..GatewayConfig::default()
    }
}

pub async fn start(scenarios: &str) -> Env {
    start_with(scenarios, |_| {}).await
}

pub async fn start_with(scenarios: &str, tweak: impl FnOnce(&mut GatewayConfig)) -> Env {
    start_observed(scenarios, tweak, None).await
}

/// A gateway that also reports every exchange to `observer`.
pub async fn start_observed(
    scenarios: &str,
    tweak: impl FnOnce(&mut GatewayConfig),
    observer: Option<Arc<dyn drover_gateway::Observer>>,
) -> Env {
    let provider = drover_test_support::provider::start(scenarios).await;
    let mut cfg = config(&provider);
    tweak(&mut cfg);
    let ledger = Arc::new(MemoryLedger::new());
    let gateway = Gateway::observed(cfg, ledger.clone(), observer).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let gw = gateway.clone();
    let server = tokio::spawn(async move { gw.serve(listener, std::future::pending()).await });
    Env {
        provider,
        gateway,
        ledger,
        base,
        _server: server,
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// An Anthropic request body with one tool (so the fake plays the script).
pub fn anthropic_body(model: &str, prompt: &str, assistants: usize, stream: bool) -> Value {
    drover_test_support::provider::anthropic_body(model, prompt, assistants, stream, "Bash")
}

pub async fn post_anthropic(env: &Env, token: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1/messages?beta=true", env.base))
        .header("x-api-key", token)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

pub async fn post_openai(env: &Env, path: &str, token: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1/{path}", env.base))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Waits until `f` holds (records are written just before the last event is relayed; after a
/// client disconnect they are written in the background).
pub async fn eventually(f: impl FnMut() -> bool) {
    drover_test_support::poll::eventually("the condition", Duration::from_secs(30), f).await;
}
