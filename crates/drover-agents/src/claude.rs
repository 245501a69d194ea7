//! Claude Code headless (`claude -p`, stream-json in and out, stdio control protocol).
//!
//! Reference: agent-cli-interfaces.md §1. Unknown line types and subtypes are ignored; only lines
//! that are not JSON objects come back as [`AgentEvent::Unparsed`].

use crate::{
    Adapter, AgentError, AgentEvent, BinarySetting, Capabilities, LaunchContext, LaunchSpec,
};
use drover_types::text::{excerpt, Limit};
use drover_types::Usage;
use serde_json::{json, Value};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[cfg(test)]
mod tests;

/// Longest excerpt of an unreadable line kept in an event.
const EXCERPT_BYTES: usize = 2048;

/// What Claude Code reads from its environment besides the base list (see
/// `Adapter::env_passthrough`): where its configuration and sessions live, and the switches
/// that keep it quiet (no self-update, no telemetry or other traffic beyond the model's).
pub const CLAUDE_ENV: &[&str] = &[
    "CLAUDE_CONFIG_DIR",
    "DISABLE_AUTOUPDATER",
    "DISABLE_TELEMETRY",
    "DISABLE_ERROR_REPORTING",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
];
/// How many `message.id`s are remembered for usage de-duplication (lines of one response are
/// adjacent, so a small window is plenty and memory stays bounded on long sessions).
const SEEN_IDS: usize = 1024;

const RESUME_MESSAGE: &str = "Your previous run was interrupted before it finished (the host \
stopped). Continue the task where you left off and finish it.";

/// The Claude Code adapter. Holds a little state: which `message.id`s already had their usage
/// counted, and a counter for interrupt request ids. Use one instance per agent process.
#[derive(Debug, Default)]
pub struct Claude {
    seen: Mutex<Seen>,
    interrupts: AtomicU64,
}

#[derive(Debug, Default)]
struct Seen {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl Seen {
    /// Records `id`; true if it was new.
    fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() >= SEEN_IDS {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.set.insert(id.to_string());
        self.order.push_back(id.to_string());
        true
    }
}

impl Claude {
    pub fn new() -> Self {
        Self::default()
    }

    fn first_time(&self, message_id: &str) -> bool {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        seen.insert(message_id)
    }

    fn assistant(&self, v: &Value, out: &mut Vec<AgentEvent>) {
        let msg = v.get("message");
        if let Some(error) = v.get("error").filter(|e| !e.is_null()) {
            let kind = error
                .as_str()
                .map_or_else(|| error.to_string(), str::to_string);
            let data = json!({
                "error": error,
                "api_error_status": v.get("api_error_status"),
                "is_api_error_message": v.get("is_api_error_message"),
            });
            out.push(AgentEvent::Error {
                message: format!("assistant error: {kind}"),
                data,
            });
        }
        for block in blocks(msg.and_then(|m| m.get("content"))) {
            match str_field(block, "type") {
                Some("text") => {
                    if let Some(text) = str_field(block, "text") {
                        out.push(AgentEvent::Text {
                            text: text.to_string(),
                        });
                    }
                }
                Some("tool_use") => out.push(AgentEvent::ToolCall {
                    id: str_field(block, "id").unwrap_or_default().to_string(),
                    name: str_field(block, "name").unwrap_or_default().to_string(),
                    input: block.get("input").cloned().unwrap_or(Value::Null),
                }),
                _ => {}
            }
        }
        let Some(usage) = msg.and_then(|m| m.get("usage")).filter(|u| u.is_object()) else {
            return;
        };
        let fresh = match msg.and_then(|m| str_field(m, "id")) {
            Some(id) => self.first_time(id),
            None => true,
        };
        if fresh {
            // output_tokens here is a placeholder (known at message_start): take it from `result`.
            let usage = Usage {
                output_tokens: 0,
                ..map_usage(usage)
            };
            let model = msg.and_then(|m| str_field(m, "model")).map(str::to_string);
            out.push(AgentEvent::Usage { usage, model });
        }
    }
}

impl Adapter for Claude {
    fn name(&self) -> &'static str {
        "claude"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            resumable: true,
            session_id_up_front: true,
            needs_cmd: false,
            missing_binary_hint: Some(
                " (install Claude Code or set DROVER_CLAUDE_BIN; `drover doctor` checks)",
            ),
            binary: Some(BinarySetting::Claude),
            prompt_arg_max: None,
        }
    }

    fn can_resume(&self, config_dir: Option<&std::path::Path>, session_id: &str) -> bool {
        transcript_exists(config_dir, session_id)
    }

    fn launch(&self, ctx: &LaunchContext) -> Result<LaunchSpec, AgentError> {
        let mut args: Vec<String> = [
            "-p",
            "--input-format",
            "stream-json",
            "--output-format",
            "stream-json",
            "--verbose",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let session_flag = if ctx.resume {
            "--resume"
        } else {
            "--session-id"
        };
        args.extend([session_flag.to_string(), ctx.session_id.clone()]);
        if let Some(model) = &ctx.model {
            args.extend(["--model".to_string(), model.clone()]);
        }
        args.extend(["--permission-mode".to_string(), "acceptEdits".to_string()]);
        if ctx.permission_prompts {
            args.extend(["--permission-prompt-tool".to_string(), "stdio".to_string()]);
        }
        let first = if ctx.resume {
            RESUME_MESSAGE
        } else {
            ctx.prompt.as_str()
        };
        Ok(LaunchSpec {
            program: ctx.binary.clone().unwrap_or_else(|| "claude".to_string()),
            args,
            env: vec![
                ("CLAUDE_CODE_ENTRYPOINT".to_string(), "drover".to_string()),
                ("DISABLE_AUTOUPDATER".to_string(), "1".to_string()),
            ],
            env_remove: vec!["CLAUDECODE".to_string()],
            stdin_lines: vec![user_line(first)],
            close_stdin: false,
        })
    }

    fn env_passthrough(&self) -> &'static [&'static str] {
        CLAUDE_ENV
    }

    fn parse_line(&self, line: &str) -> Vec<AgentEvent> {
        let value: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => return vec![unparsed(line, format!("not JSON: {e}"))],
        };
        if !value.is_object() {
            return vec![unparsed(line, "not a JSON object".to_string())];
        }
        let mut out = Vec::new();
        match str_field(&value, "type") {
            Some("system") => system(&value, &mut out),
            Some("assistant") => self.assistant(&value, &mut out),
            Some("user") => tool_results(&value, &mut out),
            Some("result") => out.push(turn_result(&value)),
            Some("control_request") => permission_request(&value, &mut out),
            Some("control_cancel_request") => {
                if let Some(id) = str_field(&value, "request_id") {
                    out.push(AgentEvent::PermissionCancelled {
                        request_id: id.to_string(),
                    });
                }
            }
            _ => {}
        }
        out
    }

    fn user_message(&self, text: &str) -> Option<String> {
        Some(user_line(text))
    }

    fn permission_answer(
        &self,
        request_id: &str,
        allow: bool,
        input: &Value,
        message: Option<&str>,
    ) -> Option<String> {
        let decision = if allow && input.is_object() {
            json!({"behavior": "allow", "updatedInput": input})
        } else if allow {
            // No input known whole (a request stored cut down): Claude Code keeps its own.
            json!({"behavior": "allow"})
        } else {
            let message = message.unwrap_or("Permission denied by drover.");
            json!({"behavior": "deny", "message": message})
        };
        let line = json!({
            "type": "control_response",
            "response": {"subtype": "success", "request_id": request_id, "response": decision},
        });
        Some(line.to_string())
    }

    fn interrupt(&self) -> Option<String> {
        let n = self.interrupts.fetch_add(1, Ordering::Relaxed) + 1;
        let line = json!({
            "type": "control_request",
            "request_id": format!("drover_interrupt_{n}"),
            "request": {"subtype": "interrupt"},
        });
        Some(line.to_string())
    }

    fn multi_turn(&self) -> bool {
        true
    }
}

/// A stream-json user message (the shape the Python SDK writes).
fn user_line(text: &str) -> String {
    json!({
        "type": "user",
        "message": {"role": "user", "content": text},
        "parent_tool_use_id": null,
        "session_id": "",
    })
    .to_string()
}

fn unparsed(line: &str, reason: String) -> AgentEvent {
    AgentEvent::Unparsed {
        excerpt: excerpt(line, Limit::Bytes(EXCERPT_BYTES)),
        reason,
    }
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn u64_field(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// The elements of a content array (nothing if it is absent or not an array).
fn blocks(content: Option<&Value>) -> &[Value] {
    content.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn map_usage(u: &Value) -> Usage {
    Usage {
        input_tokens: u64_field(u, "input_tokens"),
        output_tokens: u64_field(u, "output_tokens"),
        cache_read_tokens: u64_field(u, "cache_read_input_tokens"),
        cache_write_tokens: u64_field(u, "cache_creation_input_tokens"),
    }
}

fn system(v: &Value, out: &mut Vec<AgentEvent>) {
    match str_field(v, "subtype") {
        Some("init") => {
            if let Some(session_id) = str_field(v, "session_id") {
                out.push(AgentEvent::Session {
                    session_id: session_id.to_string(),
                    model: str_field(v, "model").map(str::to_string),
                });
            }
        }
        Some("api_retry") => {
            let error = v.get("error").map_or_else(String::new, text_of);
            let status = v.get("error_status").filter(|s| !s.is_null()).map(text_of);
            let mut message = format!(
                "API retry {}/{}",
                u64_field(v, "attempt"),
                u64_field(v, "max_retries")
            );
            if !error.is_empty() {
                message.push_str(&format!(": {error}"));
            }
            if let Some(status) = status {
                message.push_str(&format!(" (status {status})"));
            }
            if let Some(delay) = v.get("retry_delay_ms").and_then(Value::as_u64) {
                message.push_str(&format!(", retrying in {delay} ms"));
            }
            out.push(AgentEvent::Error {
                message,
                data: v.clone(),
            });
        }
        Some("api_error") => {
            let error = v.get("error");
            let detail = error
                .and_then(|e| str_field(e, "message").or_else(|| str_field(e, "formatted")))
                .map(str::to_string)
                .or_else(|| error.filter(|e| !e.is_null()).map(text_of))
                .unwrap_or_else(|| "unknown".to_string());
            out.push(AgentEvent::Error {
                message: format!("API error: {detail}"),
                data: v.clone(),
            });
        }
        _ => {}
    }
}

/// A string value as itself, anything else as its JSON text.
fn text_of(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

fn tool_results(v: &Value, out: &mut Vec<AgentEvent>) {
    for block in blocks(v.get("message").and_then(|m| m.get("content"))) {
        if str_field(block, "type") != Some("tool_result") {
            continue;
        }
        out.push(AgentEvent::ToolResult {
            id: str_field(block, "tool_use_id")
                .unwrap_or_default()
                .to_string(),
            content: block.get("content").cloned().unwrap_or(Value::Null),
            is_error: block
                .get("is_error")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        });
    }
}

fn turn_result(v: &Value) -> AgentEvent {
    let string = |key: &str| str_field(v, key).map(str::to_string);
    let errors = v
        .get("errors")
        .and_then(Value::as_array)
        .map(|errs| errs.iter().map(text_of).collect())
        .unwrap_or_default();
    AgentEvent::TurnResult {
        result: string("result"),
        is_error: v.get("is_error").and_then(Value::as_bool).unwrap_or(false),
        subtype: string("subtype"),
        stop_reason: string("stop_reason"),
        cost_usd: v.get("total_cost_usd").and_then(Value::as_f64),
        usage: v.get("usage").filter(|u| u.is_object()).map(map_usage),
        errors,
        session_id: string("session_id"),
    }
}

fn permission_request(v: &Value, out: &mut Vec<AgentEvent>) {
    let Some(request) = v.get("request").filter(|r| r.is_object()) else {
        return;
    };
    if str_field(request, "subtype") != Some("can_use_tool") {
        return;
    }
    let Some(request_id) = str_field(v, "request_id") else {
        return;
    };
    out.push(AgentEvent::PermissionRequest {
        request_id: request_id.to_string(),
        tool: str_field(request, "tool_name")
            .unwrap_or_default()
            .to_string(),
        input: request.get("input").cloned().unwrap_or(Value::Null),
    });
}

/// Whether Claude Code has a transcript for `session_id` under its config directory
/// `config_dir` (`$CLAUDE_CONFIG_DIR` or `~/.claude`, resolved by the daemon's config; `None`:
/// unknown), in `projects/*/`. A session killed before it wrote one cannot be resumed; it is
/// started afresh under the same id instead.
pub fn transcript_exists(config_dir: Option<&std::path::Path>, session_id: &str) -> bool {
    let Some(root) = config_dir else {
        return false;
    };
    let Ok(projects) = std::fs::read_dir(root.join("projects")) else {
        return false;
    };
    let file = format!("{session_id}.jsonl");
    projects.flatten().any(|p| p.path().join(&file).is_file())
}
