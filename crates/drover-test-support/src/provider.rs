//! The fake model provider (`drover-fake-provider`) started for a test, and request bodies
//! that make it play a scenario.

use std::net::SocketAddr;
use std::time::Duration;

use drover_fake_provider::{FakeProvider, RequestRecord, RunningProvider, ScenarioSet};
use serde_json::{json, Value};

/// Starts the fake provider on a free local port with the scenarios in `scenarios` (JSON).
pub async fn start(scenarios: &str) -> RunningProvider {
    let set = ScenarioSet::from_json(scenarios).unwrap();
    FakeProvider::start(set, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap()
}

/// A fake provider for synchronous tests: it runs on a runtime of its own in this process.
pub struct Provider {
    pub rt: tokio::runtime::Runtime,
    pub running: Option<RunningProvider>,
    pub url: String,
}

impl Provider {
    pub fn start(scenarios: Value) -> Provider {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let running = rt.block_on(start(&scenarios.to_string()));
        let url = running.base_url();
        Provider {
            rt,
            running: Some(running),
            url,
        }
    }

    pub fn log(&self) -> Vec<RequestRecord> {
        self.running.as_ref().unwrap().log()
    }

    /// Lets the turns held under `name` answer (see the fake provider's `hold`).
    pub fn release(&self, name: &str) {
        self.running.as_ref().unwrap().release(name);
    }

    /// Waits (at most 120 s) until `n` requests have reached the held turn `name`: the agent is
    /// then inside that turn, waiting for the test.
    pub fn wait_held(&self, name: &str, n: usize) {
        let holds = self.running.as_ref().unwrap().holds().clone();
        let reached = self
            .rt
            .block_on(holds.reached(name, n, Duration::from_secs(120)));
        assert!(reached, "no request reached the held turn {name:?}");
    }
}

/// An Anthropic Messages request body: the user's `prompt`, then `assistants` earlier
/// assistant turns (the fake plays the turn of that number), and one tool named `tool` (so the
/// fake plays the script rather than a side request).
pub fn anthropic_body(
    model: &str,
    prompt: &str,
    assistants: usize,
    stream: bool,
    tool: &str,
) -> Value {
    let mut messages = vec![json!({"role": "user", "content": [{"type": "text", "text": prompt}]})];
    for i in 0..assistants {
        messages.push(
            json!({"role": "assistant", "content": [{"type": "text", "text": format!("a{i}")}]}),
        );
        messages.push(json!({"role": "user", "content": "next"}));
    }
    json!({"model": model, "max_tokens": 1024, "stream": stream, "messages": messages,
           "tools": [{"name": tool, "input_schema": {"type": "object"}}]})
}
