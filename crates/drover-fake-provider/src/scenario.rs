//! The scenario file: named scripts of assistant turns, and how a request picks its turn.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::request::RequestInfo;
use crate::Error;

/// Default `input_tokens` reported when a turn does not script its usage.
pub const DEFAULT_INPUT_TOKENS: u64 = 100;
/// Default `output_tokens` reported when a turn does not script its usage.
pub const DEFAULT_OUTPUT_TOKENS: u64 = 20;
/// The name of the scenario used when no `match` fits.
pub const DEFAULT_SCENARIO: &str = "default";

/// A whole scenario file. See the crate docs for the format.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSet {
    /// Scenarios in match order.
    pub scenarios: Vec<Scenario>,
    /// Text answered to side requests (requests without `tools`). Default `"ok"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side_text: Option<String>,
}

/// One named script.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    /// Substring of the first user message that selects this scenario.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_text: Option<String>,
    #[serde(default)]
    pub turns: Vec<Turn>,
    /// What to play past the last turn (unless the last turn repeats). Default: text "done", end_turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_last: Option<Turn>,
}

/// One assistant response.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Turn {
    #[serde(default)]
    pub content: Vec<Block>,
    /// Default: `tool_use` when a tool_use block is present, else `end_turn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub usage: UsageSpec,
    /// Wait this long before sending the response headers.
    #[serde(default)]
    pub delay_ms: u64,
    /// Wait this long between SSE events.
    #[serde(default)]
    pub chunk_delay_ms: u64,
    /// The N-th attempt at this turn (per conversation) fails with the N-th entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fail_first: Vec<FailSpec>,
    /// Only meaningful on the last turn: play it forever.
    #[serde(default)]
    pub repeat: bool,
    /// Do not answer until the test releases this name (see [`crate::hold`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<String>,
    /// How long a held request waits for its release (default 120 s); then it is answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_timeout_ms: Option<u64>,
}

/// A content block of a scripted turn.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Block {
    Text {
        text: String,
    },
    ToolUse {
        name: String,
        #[serde(default = "empty_object")]
        input: Value,
        /// Generated (`toolu_fake_…`) when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// Scripted token counts; absent fields take defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageSpec {
    #[serde(default, alias = "input_tokens")]
    pub input: Option<u64>,
    #[serde(default, alias = "output_tokens")]
    pub output: Option<u64>,
    #[serde(default, alias = "cache_read_input_tokens")]
    pub cache_read: Option<u64>,
    #[serde(default, alias = "cache_creation_input_tokens")]
    pub cache_creation: Option<u64>,
}

/// Token counts as sent on the wire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub cache_creation_input_tokens: u64,
}

impl UsageSpec {
    pub fn resolve(&self) -> Usage {
        Usage {
            input_tokens: self.input.unwrap_or(DEFAULT_INPUT_TOKENS),
            output_tokens: self.output.unwrap_or(DEFAULT_OUTPUT_TOKENS),
            cache_read_input_tokens: self.cache_read.unwrap_or(0),
            cache_creation_input_tokens: self.cache_creation.unwrap_or(0),
        }
    }
}

/// One scripted failure, as written in the file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailSpec {
    /// HTTP status of an error answer (429, 529, 500, 400, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `retry-after` header value in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// Overrides the error `type` (default derived from the status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// Overrides the error message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Close the connection instead of answering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop: Option<DropKind>,
    /// Answer 200, start streaming, then send `event: error` with this error type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_error: Option<String>,
}

/// Where a scripted connection drop happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropKind {
    BeforeHeaders,
    MidStream,
}

/// A validated failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Status {
        status: u16,
        retry_after: Option<u64>,
        error_type: String,
        message: String,
    },
    Drop(DropKind),
    StreamError {
        error_type: String,
    },
}

impl FailSpec {
    pub fn to_failure(&self) -> Result<Failure, String> {
        match (self.status, self.drop, &self.stream_error) {
            (Some(status), None, None) => {
                let default_type = error_type_for(status);
                Ok(Failure::Status {
                    status,
                    retry_after: self.retry_after,
                    error_type: self.error_type.clone().unwrap_or(default_type.to_string()),
                    message: self
                        .message
                        .clone()
                        .unwrap_or_else(|| error_message_for(status).into()),
                })
            }
            (None, Some(kind), None) => Ok(Failure::Drop(kind)),
            (None, None, Some(t)) => Ok(Failure::StreamError {
                error_type: t.clone(),
            }),
            _ => Err("a fail_first entry needs exactly one of status, drop, stream_error".into()),
        }
    }
}

impl ScenarioSet {
    /// Reads and validates a scenario file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&text)
    }

    /// Parses and validates a scenario set from JSON text.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        let set: ScenarioSet = serde_json::from_str(text)?;
        set.validate()?;
        Ok(set)
    }

    /// Checks failures are well formed and names are unique.
    pub fn validate(&self) -> Result<(), Error> {
        let mut names = std::collections::HashSet::new();
        for s in &self.scenarios {
            if !names.insert(s.name.as_str()) {
                return Err(Error::Invalid(format!(
                    "duplicate scenario name {:?}",
                    s.name
                )));
            }
            for (i, t) in s.turns.iter().chain(s.after_last.iter()).enumerate() {
                for f in &t.fail_first {
                    f.to_failure().map_err(|e| {
                        Error::Invalid(format!("scenario {:?} turn {i}: {e}", s.name))
                    })?;
                }
            }
        }
        Ok(())
    }

    /// The scenario a request belongs to: the first whose `match` occurs in the first user
    /// message, else the one named `default`.
    pub fn select(&self, first_user_text: &str) -> Option<&Scenario> {
        self.scenarios
            .iter()
            .find(|s| {
                s.match_text
                    .as_deref()
                    .is_some_and(|m| first_user_text.contains(m))
            })
            .or_else(|| self.scenarios.iter().find(|s| s.name == DEFAULT_SCENARIO))
    }

    /// Picks scenario and turn for a parsed request.
    pub fn plan<'a>(&'a self, req: &RequestInfo) -> Plan<'a> {
        let scenario = self.select(&req.first_user_text);
        let turn_index = req.assistant_messages;
        let turn = scenario.map(|s| s.turn_at(turn_index));
        Plan {
            scenario,
            turn_index,
            turn,
        }
    }

    /// The side-request reply text.
    pub fn side_text(&self) -> &str {
        self.side_text.as_deref().unwrap_or("ok")
    }
}

/// What a request will be answered with.
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    pub scenario: Option<&'a Scenario>,
    pub turn_index: usize,
    pub turn: Option<std::borrow::Cow<'a, Turn>>,
}

impl Scenario {
    /// The turn to play at `index` (stateless): scripted turn, repeated last turn, or after_last.
    pub fn turn_at(&self, index: usize) -> std::borrow::Cow<'_, Turn> {
        use std::borrow::Cow;
        if let Some(t) = self.turns.get(index) {
            return Cow::Borrowed(t);
        }
        match (self.turns.last(), &self.after_last) {
            (Some(last), _) if last.repeat => Cow::Borrowed(last),
            (_, Some(after)) => Cow::Borrowed(after),
            _ => Cow::Owned(Turn::text("done")),
        }
    }
}

impl Turn {
    /// A plain text turn.
    pub fn text(text: &str) -> Self {
        Turn {
            content: vec![Block::Text { text: text.into() }],
            ..Turn::default()
        }
    }

    /// The stop reason sent for this turn.
    pub fn effective_stop_reason(&self) -> String {
        if let Some(r) = &self.stop_reason {
            return r.clone();
        }
        if self
            .content
            .iter()
            .any(|b| matches!(b, Block::ToolUse { .. }))
        {
            "tool_use".into()
        } else {
            "end_turn".into()
        }
    }
}

/// Anthropic's error `type` for an HTTP status.
pub fn error_type_for(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        409 => "conflict_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

/// A default message for an HTTP status.
pub fn error_message_for(status: u16) -> &'static str {
    match status {
        401 => "x-api-key header is required",
        404 => "Not found",
        429 => "Number of requests has exceeded your rate limit (fake provider)",
        529 => "Overloaded",
        500 => "Internal server error",
        _ => "Error (fake provider)",
    }
}
