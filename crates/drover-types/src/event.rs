use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Normalized event kinds, the same across agents (docs/design.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    State,
    Text,
    ToolCall,
    ToolResult,
    NeedsInput,
    Input,
    Usage,
    Gate,
    Commit,
    Error,
    Stderr,
    Result,
}

impl EventKind {
    pub const ALL: [EventKind; 12] = [
        EventKind::State,
        EventKind::Text,
        EventKind::ToolCall,
        EventKind::ToolResult,
        EventKind::NeedsInput,
        EventKind::Input,
        EventKind::Usage,
        EventKind::Gate,
        EventKind::Commit,
        EventKind::Error,
        EventKind::Stderr,
        EventKind::Result,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::State => "state",
            EventKind::Text => "text",
            EventKind::ToolCall => "tool_call",
            EventKind::ToolResult => "tool_result",
            EventKind::NeedsInput => "needs_input",
            EventKind::Input => "input",
            EventKind::Usage => "usage",
            EventKind::Gate => "gate",
            EventKind::Commit => "commit",
            EventKind::Error => "error",
            EventKind::Stderr => "stderr",
            EventKind::Result => "result",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown event kind {s:?}"))
    }
}

/// One persisted event. `seq` is per task, starts at 1, contiguous; it is also the SSE event id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub task_id: String,
    pub seq: i64,
    pub ts: String,
    pub kind: EventKind,
    pub data: serde_json::Value,
}

/// An event before it is stored (no seq yet).
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub kind: EventKind,
    pub data: serde_json::Value,
}

impl NewEvent {
    pub fn new(kind: EventKind, data: serde_json::Value) -> Self {
        NewEvent { kind, data }
    }
}
