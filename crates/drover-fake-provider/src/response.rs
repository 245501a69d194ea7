//! Rendering scripted turns as Anthropic Messages API answers: JSON messages, SSE events, errors.

use serde_json::{json, Value};

use crate::scenario::{Block, Turn, Usage};

/// Largest text piece sent in one `text_delta`.
const TEXT_CHUNK: usize = 24;
/// Largest JSON piece sent in one `input_json_delta`.
const JSON_CHUNK: usize = 32;

/// A turn made concrete: ids generated, stop reason and usage resolved.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub id: String,
    pub model: String,
    /// Final content blocks, as in a non-streaming Message.
    pub content: Vec<Value>,
    pub stop_reason: String,
    pub usage: Usage,
}

/// A fresh id with a prefix, e.g. `msg_fake_1b2c…`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_fake_{}", uuid::Uuid::new_v4().simple())
}

impl Rendered {
    pub fn new(turn: &Turn, model: &str) -> Self {
        let content = turn
            .content
            .iter()
            .map(|b| match b {
                Block::Text { text } => json!({"type": "text", "text": text}),
                Block::ToolUse { name, input, id } => json!({
                    "type": "tool_use",
                    "id": id.clone().unwrap_or_else(|| new_id("toolu")),
                    "name": name,
                    "input": input,
                }),
            })
            .collect();
        Rendered {
            id: new_id("msg"),
            model: model.to_string(),
            content,
            stop_reason: turn.effective_stop_reason(),
            usage: turn.usage.resolve(),
        }
    }

    /// Names of the tool_use blocks.
    pub fn tool_names(&self) -> Vec<String> {
        self.content
            .iter()
            .filter(|b| b["type"] == "tool_use")
            .filter_map(|b| b["name"].as_str().map(str::to_string))
            .collect()
    }

    fn usage_json(&self, output_tokens: u64) -> Value {
        json!({
            "input_tokens": self.usage.input_tokens,
            "cache_creation_input_tokens": self.usage.cache_creation_input_tokens,
            "cache_read_input_tokens": self.usage.cache_read_input_tokens,
            "output_tokens": output_tokens,
        })
    }

    /// The non-streaming `Message` body.
    pub fn message_json(&self) -> Value {
        json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": self.content,
            "stop_reason": self.stop_reason,
            "stop_sequence": null,
            "usage": self.usage_json(self.usage.output_tokens),
        })
    }

    /// The full SSE event sequence, and the index just past the first content delta
    /// (where a scripted mid-stream failure cuts in).
    pub fn sse_events(&self) -> (Vec<SseEvent>, usize) {
        let mut events = vec![
            SseEvent::new(
                "message_start",
                json!({"type": "message_start", "message": {
                    "id": self.id, "type": "message", "role": "assistant", "model": self.model,
                    "content": [], "stop_reason": null, "stop_sequence": null,
                    "usage": self.usage_json(1.min(self.usage.output_tokens)),
                }}),
            ),
            SseEvent::new("ping", json!({"type": "ping"})),
        ];
        let mut cut = events.len();
        for (index, block) in self.content.iter().enumerate() {
            let (start, deltas) = block_events(block);
            events.push(SseEvent::new(
                "content_block_start",
                json!({"type": "content_block_start", "index": index, "content_block": start}),
            ));
            for delta in deltas {
                events.push(SseEvent::new(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": index, "delta": delta}),
                ));
                if cut == 2 {
                    cut = events.len();
                }
            }
            events.push(SseEvent::new(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index}),
            ));
        }
        events.push(SseEvent::new(
            "message_delta",
            json!({"type": "message_delta",
                "delta": {"stop_reason": self.stop_reason, "stop_sequence": null},
                "usage": self.usage_json(self.usage.output_tokens)}),
        ));
        events.push(SseEvent::new(
            "message_stop",
            json!({"type": "message_stop"}),
        ));
        (events, cut)
    }
}

/// `content_block_start` payload and the deltas of one final block.
fn block_events(block: &Value) -> (Value, Vec<Value>) {
    if block["type"] == "tool_use" {
        let start =
            json!({"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}});
        let input = block["input"].to_string();
        let deltas = chunks(&input, JSON_CHUNK)
            .into_iter()
            .map(|p| json!({"type": "input_json_delta", "partial_json": p}))
            .collect();
        (start, deltas)
    } else {
        let text = block["text"].as_str().unwrap_or_default();
        let deltas = chunks(text, TEXT_CHUNK)
            .into_iter()
            .map(|p| json!({"type": "text_delta", "text": p}))
            .collect();
        (json!({"type": "text", "text": ""}), deltas)
    }
}

/// Splits on char boundaries into pieces of at most `max` bytes (one char may exceed).
fn chunks(s: &str, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in s.chars() {
        if !cur.is_empty() && cur.len() + c.len_utf8() > max {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub event: &'static str,
    pub data: Value,
}

impl SseEvent {
    pub fn new(event: &'static str, data: Value) -> Self {
        SseEvent { event, data }
    }

    /// Wire form: `event: NAME\ndata: JSON\n\n`.
    pub fn to_bytes(&self) -> bytes::Bytes {
        bytes::Bytes::from(format!("event: {}\ndata: {}\n\n", self.event, self.data))
    }
}

/// The error body shape: `{"type":"error","error":{"type","message"},"request_id"}`.
pub fn error_json(error_type: &str, message: &str, request_id: &str) -> Value {
    json!({"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id})
}

/// A side-request turn: short generic text.
pub fn side_turn(text: &str) -> Turn {
    let mut t = Turn::text(text);
    t.usage.input = Some(10);
    t.usage.output = Some(2);
    t
}
