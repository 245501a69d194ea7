use serde::{Deserialize, Serialize};

vocab! {
    /// Normalized event kinds, the same across agents (docs/design.md §3).
    pub enum EventKind ("event kind") {
        State = "state",
        Text = "text",
        ToolCall = "tool_call",
        ToolResult = "tool_result",
        NeedsInput = "needs_input",
        Input = "input",
        Usage = "usage",
        Gate = "gate",
        Commit = "commit",
        Error = "error",
        Stderr = "stderr",
        Result = "result",
        /// A connection through the `sandbox.egress` allow-list proxy: allowed or refused.
        Egress = "egress",
        /// A pull (merge) request opened or found for the task's branch (`{repo, url, number,
        /// state, opened}`).
        Pr = "pr",
    }
}

/// One persisted event. `seq` is per task, starts at 1, contiguous; it is also the SSE event id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::testing::round_trips;

    #[test]
    fn event_kinds_round_trip_through_serde_and_from_str() {
        round_trips(
            &EventKind::ALL,
            &[
                "state",
                "text",
                "tool_call",
                "tool_result",
                "needs_input",
                "input",
                "usage",
                "gate",
                "commit",
                "error",
                "stderr",
                "result",
                "egress",
                "pr",
            ],
            |v| v.as_str(),
        );
    }
}
