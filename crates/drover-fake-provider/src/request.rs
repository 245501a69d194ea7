//! What the fake provider reads from a Messages API request body.

use std::hash::{Hash, Hasher};

use serde_json::Value;

/// The parts of a `POST /v1/messages` body that decide the answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    pub model: Option<String>,
    pub stream: bool,
    /// Text of the first `user` message (string content, or its text blocks joined by `\n`).
    pub first_user_text: String,
    /// Number of `assistant` messages in `messages`, not counting the placeholder Claude Code
    /// inserts when it resumes an interrupted turn: the index of the turn to play.
    pub assistant_messages: usize,
    /// Length of the `tools` array (0 when absent).
    pub tools: usize,
    /// Whether the request has a non-empty `tools` array; requests without are side requests.
    pub has_tools: bool,
    pub max_tokens: Option<u64>,
    /// Anthropic `thinking.budget_tokens`; `None` without `thinking`.
    pub thinking_budget: Option<u64>,
}

impl RequestInfo {
    /// Extracts the request info from a JSON body. Unknown shapes give defaults.
    pub fn parse(body: &Value) -> Self {
        let messages = body
            .get("messages")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let first_user_text = messages
            .iter()
            .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
            .map(|m| content_text(m.get("content")))
            .unwrap_or_default();
        let assistant_messages = messages
            .iter()
            .filter(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))
            .filter(|m| !is_resume_placeholder(m))
            .count();
        let tools = body
            .get("tools")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        RequestInfo {
            model: body
                .get("model")
                .and_then(Value::as_str)
                .map(str::to_string),
            stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
            first_user_text,
            assistant_messages,
            tools,
            has_tools: tools > 0,
            max_tokens: body.get("max_tokens").and_then(Value::as_u64),
            thinking_budget: body
                .get("thinking")
                .and_then(|t| t.get("budget_tokens"))
                .and_then(Value::as_u64),
        }
    }

    /// Stable hash of the first user message: identifies one conversation across its retries.
    pub fn conversation_hash(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.first_user_text.hash(&mut h);
        h.finish()
    }
}

/// The text of the assistant message Claude Code synthesizes, on `--resume`, after a turn that
/// was cut off (it keeps user/assistant alternation). It is not a model answer, so it does not
/// count as a played turn.
pub const RESUME_PLACEHOLDER: &str = "No response requested.";

fn is_resume_placeholder(message: &Value) -> bool {
    content_text(message.get("content")) == RESUME_PLACEHOLDER
}

/// Text of a message `content`: a string, or the `text` of its text blocks joined by newlines.
pub fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// A rough token estimate for `count_tokens`: one token per four bytes of JSON, at least one.
pub fn estimate_tokens(body: &Value) -> u64 {
    let len = body.to_string().len() as u64;
    (len / 4).max(1)
}
