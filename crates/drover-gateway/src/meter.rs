//! Reading usage off the wire: SSE event framing and the three providers' usage shapes.
//!
//! Anthropic streams: `message_start` (model, input and cache usage), `message_delta`
//! (cumulative usage, `stop_reason`), `message_stop` (end). Chat Completions streams: the final
//! chunk with `choices: []` and `usage` (asked for with `stream_options.include_usage`),
//! `finish_reason`, `data: [DONE]` (end). Responses streams: `response.created`, then
//! `response.completed` / `response.incomplete` / `response.failed` carrying the response with
//! its `usage`. Only the events that carry these are parsed as JSON.

use serde_json::Value;

use crate::ledger::Api;
use crate::prices::Tokens;

/// Stop reasons that mean the answer was cut by a token limit.
pub const TRUNCATED: &[&str] = &[
    "max_tokens",
    "model_context_window_exceeded",
    "length",
    "max_output_tokens",
];

/// Usage and state gathered from one response.
#[derive(Debug, Clone, Default)]
pub struct Meter {
    pub model: Option<String>,
    pub tokens: Tokens,
    pub stop_reason: Option<String>,
    /// The provider's end-of-response marker was seen.
    pub complete: bool,
    /// Any usage was seen (a record is worth writing).
    pub saw_usage: bool,
    /// The response's final usage was seen (Anthropic `message_delta`, Chat's usage chunk,
    /// a finished Responses object, a whole JSON body): the metered figure is the cost.
    pub final_usage: bool,
    /// An error event from upstream, inside a 200 stream.
    pub upstream_error: Option<String>,
    /// The Responses API response id (for an injected `response.failed`).
    pub response_id: Option<String>,
}

fn u(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

fn s(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

impl Meter {
    /// Reads one SSE event; returns false when the event should not be relayed (the usage
    /// chunk the gateway asked for on the agent's behalf, when `strip_usage`).
    pub fn on_event(
        &mut self,
        api: Api,
        event: Option<&str>,
        data: &str,
        strip_usage: bool,
    ) -> bool {
        match api {
            Api::Messages | Api::CountTokens => self.anthropic_event(event, data),
            Api::ChatCompletions => return self.chat_chunk(data, strip_usage),
            Api::Responses => self.responses_event(event, data),
        }
        true
    }

    fn anthropic_event(&mut self, event: Option<&str>, data: &str) {
        match event {
            Some("message_start") => {
                if let Ok(v) = serde_json::from_str::<Value>(data) {
                    let msg = &v["message"];
                    self.model = s(msg, "model").or(self.model.take());
                    self.anthropic_usage(&msg["usage"]);
                }
            }
            Some("message_delta") => {
                if let Ok(v) = serde_json::from_str::<Value>(data) {
                    if let Some(r) = v["delta"].get("stop_reason").and_then(Value::as_str) {
                        self.stop_reason = Some(r.to_string());
                    }
                    self.anthropic_usage(&v["usage"]);
                    self.final_usage |= v["usage"].is_object();
                }
            }
            Some("message_stop") => self.complete = true,
            Some("error") => self.upstream_error = Some(error_text(data)),
            _ => {}
        }
    }

    /// Anthropic usage objects are cumulative: fields present replace earlier values.
    fn anthropic_usage(&mut self, usage: &Value) {
        if !usage.is_object() {
            return;
        }
        self.saw_usage = true;
        let t = &mut self.tokens;
        t.input = u(usage, "input_tokens").unwrap_or(t.input);
        t.output = u(usage, "output_tokens").unwrap_or(t.output);
        t.cache_read = u(usage, "cache_read_input_tokens").unwrap_or(t.cache_read);
        t.cache_write = u(usage, "cache_creation_input_tokens").unwrap_or(t.cache_write);
    }

    fn chat_chunk(&mut self, data: &str, strip_usage: bool) -> bool {
        let data = data.trim();
        if data == "[DONE]" {
            self.complete = true;
            return true;
        }
        // Only chunks that can carry what we need are parsed.
        let wanted = self.model.is_none()
            || data.contains("\"usage\":{")
            || data.contains("\"finish_reason\":\"")
            || data.contains("\"error\"");
        if !wanted {
            return true;
        }
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return true;
        };
        if v.get("error").is_some_and(|e| !e.is_null()) {
            self.upstream_error = Some(error_text(data));
            return true;
        }
        if self.model.is_none() {
            self.model = s(&v, "model");
        }
        if let Some(r) = v
            .pointer("/choices/0/finish_reason")
            .and_then(Value::as_str)
        {
            self.stop_reason = Some(r.to_string());
        }
        let usage = &v["usage"];
        if usage.is_object() {
            self.openai_usage(
                usage,
                "prompt_tokens",
                "completion_tokens",
                "prompt_tokens_details",
            );
            self.final_usage = true;
            let empty_choices = v["choices"].as_array().is_some_and(Vec::is_empty);
            return !(strip_usage && empty_choices);
        }
        true
    }

    /// OpenAI usage: cached tokens are part of the prompt count; `input` keeps the rest.
    fn openai_usage(&mut self, usage: &Value, input: &str, output: &str, details: &str) {
        self.saw_usage = true;
        let prompt = u(usage, input).unwrap_or(0);
        let cached = usage
            .get(details)
            .and_then(|d| u(d, "cached_tokens"))
            .unwrap_or(0);
        self.tokens = Tokens {
            input: prompt.saturating_sub(cached),
            output: u(usage, output).unwrap_or(0),
            cache_read: cached,
            cache_write: 0,
        };
    }

    fn responses_event(&mut self, event: Option<&str>, data: &str) {
        let kind = match event {
            Some(e) => e,
            None => return,
        };
        match kind {
            "response.created"
            | "response.completed"
            | "response.incomplete"
            | "response.failed" => {
                let Ok(v) = serde_json::from_str::<Value>(data) else {
                    return;
                };
                self.responses_object(&v["response"]);
                if kind != "response.created" {
                    self.complete = true;
                    self.final_usage |= v["response"]["usage"].is_object();
                }
                if kind == "response.failed" {
                    self.upstream_error = Some(error_text(data));
                }
            }
            "error" => self.upstream_error = Some(error_text(data)),
            _ => {}
        }
    }

    fn responses_object(&mut self, r: &Value) {
        if self.model.is_none() {
            self.model = s(r, "model");
        }
        if self.response_id.is_none() {
            self.response_id = s(r, "id");
        }
        if let Some(status) = s(r, "status").filter(|st| st != "in_progress") {
            let reason = r
                .pointer("/incomplete_details/reason")
                .and_then(Value::as_str);
            self.stop_reason = Some(reason.map_or(status, str::to_string));
        }
        if r["usage"].is_object() {
            self.openai_usage(
                &r["usage"],
                "input_tokens",
                "output_tokens",
                "input_tokens_details",
            );
        }
    }

    /// Reads a complete non-streaming JSON body.
    pub fn on_body(&mut self, api: Api, body: &[u8]) {
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return;
        };
        match api {
            Api::Messages | Api::CountTokens => {
                self.model = s(&v, "model").or(self.model.take());
                self.stop_reason = s(&v, "stop_reason");
                self.anthropic_usage(&v["usage"]);
            }
            Api::ChatCompletions => {
                self.model = s(&v, "model").or(self.model.take());
                self.stop_reason = v
                    .pointer("/choices/0/finish_reason")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                if v["usage"].is_object() {
                    self.openai_usage(
                        &v["usage"],
                        "prompt_tokens",
                        "completion_tokens",
                        "prompt_tokens_details",
                    );
                }
            }
            Api::Responses => self.responses_object(&v),
        }
        // A whole body: whatever usage it carries is the final figure.
        self.final_usage = self.saw_usage;
        self.complete = true;
    }

    /// Whether the stop reason means truncation.
    pub fn truncated(&self) -> Option<&str> {
        self.stop_reason
            .as_deref()
            .filter(|r| TRUNCATED.contains(r))
    }
}

/// A short description of an upstream error event's data.
fn error_text(data: &str) -> String {
    let v: Value = serde_json::from_str(data).unwrap_or(Value::Null);
    let e = v
        .get("error")
        .or_else(|| v.pointer("/response/error"))
        .unwrap_or(&v);
    let kind = e
        .get("type")
        .or_else(|| e.get("code"))
        .and_then(Value::as_str)
        .unwrap_or("error");
    let msg = e.get("message").and_then(Value::as_str).unwrap_or("");
    format!("upstream error event: {kind}: {msg}")
}

/// Splits complete SSE events off the front of `buf`: returns the byte length of the complete
/// part (up to and including the last blank line), or 0 when no event is complete yet.
pub fn complete_prefix(buf: &[u8]) -> usize {
    let mut end = 0;
    let mut i = 0;
    while let Some(pos) = memchr_nl(&buf[i..]) {
        let at = i + pos;
        // A blank line: "\n\n" or "\n\r\n".
        let next = at + 1;
        if buf.get(next) == Some(&b'\n') {
            end = next + 1;
        } else if buf.get(next) == Some(&b'\r') && buf.get(next + 1) == Some(&b'\n') {
            end = next + 2;
        }
        i = next;
    }
    end
}

fn memchr_nl(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

/// Iterates the events of a block of complete SSE text: `(event name, data, raw bytes range)`.
pub fn events(text: &str) -> Vec<(Option<&str>, String, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut event: Option<&str> = None;
    let mut data = String::new();
    let mut has_field = false;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let line_start = pos;
        pos += line.len();
        let l = line.trim_end_matches(['\n', '\r']);
        if l.is_empty() {
            if has_field {
                out.push((event, std::mem::take(&mut data), start..pos));
            }
            event = None;
            has_field = false;
            start = pos;
            continue;
        }
        if !has_field {
            start = line_start;
        }
        has_field = true;
        let (field, value) = l.split_once(':').unwrap_or((l, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = Some(value),
            "data" => {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(value);
            }
            _ => {}
        }
    }
    out
}
