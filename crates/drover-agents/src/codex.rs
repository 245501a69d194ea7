//! OpenAI Codex CLI: `codex exec --json`, one process per turn.
//!
//! The agent process is a small `/bin/sh` loop: it runs `codex exec --json … -- PROMPT`, then for
//! each follow-up line on stdin (base64 of the message, so any text fits on one line) `codex exec
//! --json … resume --last -- MESSAGE` (`--last` is filtered by cwd, and the sandbox is this task's
//! own). Before each run it prints `{"type":"drover.codex","model":…}` so the adapter knows the
//! model even after a daemon restart. Reference: agent-cli-interfaces.md §6.
//!
//! Codex reports `turn.completed.usage` as the thread's running total with `input_tokens`
//! including `cached_input_tokens`; turn results carry the difference to the previous total. Codex
//! has no cost field, so the adapter reports none: dollars come from the gateway's metering (one
//! price table, in `drover-gateway`).

use crate::{
    Adapter, AgentError, AgentEvent, BinarySetting, Capabilities, LaunchContext, LaunchSpec,
};
use drover_types::text::{excerpt, Limit};
use drover_types::Usage;
use serde_json::{json, Value};
use std::sync::Mutex;

/// Used when the task names no model: Codex's own default is unknown to custom providers (it then
/// sends requests without tools).
pub const DEFAULT_MODEL: &str = "gpt-5.5";

const SCRIPT: &str = r#"codex=$1; first=$2; marker=$3; shift 3
url=${DROVER_CODEX_BASE_URL:-${OPENAI_BASE_URL:-}}
if [ -n "$url" ]; then
  url=${url%/}
  case "$url" in */v1) ;; *) url="$url/v1" ;; esac
  set -- "$@" -c 'model_provider="drover"' -c 'model_providers.drover.name="drover"' \
    -c "model_providers.drover.base_url=\"$url\"" \
    -c 'model_providers.drover.env_key="OPENAI_API_KEY"' \
    -c 'model_providers.drover.wire_api="responses"'
fi
printf '%s\n' "$marker"
if [ -n "${DROVER_CODEX_RESUME:-}" ]; then
  "$codex" exec "$@" resume "$DROVER_CODEX_RESUME" -- "$first" </dev/null
else
  "$codex" exec "$@" -- "$first" </dev/null
fi
status=$?
while [ "$status" -eq 0 ] && IFS= read -r line; do
  msg=$(printf '%s' "$line" | base64 -d 2>/dev/null) || continue
  [ -n "$msg" ] || continue
  printf '%s\n' "$marker"
  "$codex" exec "$@" resume --last -- "$msg" </dev/null
  status=$?
done
exit "$status""#;

const RESUME_MESSAGE: &str = "Your previous run was interrupted before it finished (the host \
stopped). Continue the task where you left off and finish it.";

#[derive(Debug, Default)]
struct State {
    model: Option<String>,
    /// The last running total seen: input (without cached), cached, output.
    total: [u64; 3],
    last_message: Option<String>,
    thread: Option<String>,
}

/// The Codex adapter. One instance per agent process (it keeps the running usage total).
#[derive(Debug, Default)]
pub struct Codex {
    state: Mutex<State>,
}

impl Codex {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s)
    }
}

/// The `codex exec` flags (before `resume`, as Codex wants them). The script adds the provider
/// flags at run time from the agent's own environment: `DROVER_CODEX_BASE_URL`, else
/// `OPENAI_BASE_URL` (the gateway's when it is on), with the key from `OPENAI_API_KEY`; with
/// neither, Codex uses its own provider and login.
pub fn exec_flags(model: &str) -> Vec<String> {
    [
        "--json",
        "--sandbox",
        "workspace-write",
        "--skip-git-repo-check",
        "-m",
        model,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

impl Adapter for Codex {
    fn name(&self) -> &'static str {
        "codex"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            resumable: false,
            session_id_up_front: false,
            needs_cmd: false,
            missing_binary_hint: None,
            binary: Some(BinarySetting::Codex),
            prompt_arg_max: Some(drover_types::validate::ARG_PROMPT_MAX),
        }
    }

    fn launch(&self, ctx: &LaunchContext) -> Result<LaunchSpec, AgentError> {
        let codex = ctx
            .binary
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "codex".to_string());
        let model = ctx
            .model
            .clone()
            .unwrap_or_else(|| DEFAULT_MODEL.to_string());
        let marker = json!({"type": "drover.codex", "model": model}).to_string();
        let first = if ctx.resume {
            RESUME_MESSAGE
        } else {
            ctx.prompt.as_str()
        };
        let mut args = vec![
            "-c".to_string(),
            SCRIPT.to_string(),
            "drover-codex".to_string(),
            codex,
            first.to_string(),
            marker,
        ];
        args.extend(exec_flags(&model));
        let mut env = vec![("DROVER_TASK_ID".to_string(), ctx.task_id.clone())];
        if ctx.resume && !ctx.session_id.is_empty() {
            env.push(("DROVER_CODEX_RESUME".to_string(), ctx.session_id.clone()));
        }
        Ok(LaunchSpec {
            program: "/bin/sh".to_string(),
            args,
            env,
            env_remove: Vec::new(),
            stdin_lines: Vec::new(),
            close_stdin: false,
        })
    }

    /// Codex keeps its configuration and sessions under `CODEX_HOME` (default `~/.codex`).
    fn env_passthrough(&self) -> &'static [&'static str] {
        &["CODEX_HOME"]
    }

    /// Codex's `workspace-write` sandbox is a bubblewrap of its own, which cannot map ids in a
    /// user namespace of drover's jail: confined, the jail is the sandbox.
    fn confine_args(&self, args: &mut Vec<String>) {
        for i in 1..args.len() {
            if args[i - 1] == "--sandbox" {
                args[i] = "danger-full-access".to_string();
            }
        }
    }

    fn parse_line(&self, line: &str) -> Vec<AgentEvent> {
        let v: Value = match serde_json::from_str(line) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return vec![AgentEvent::Unparsed {
                    excerpt: excerpt(line, Limit::Bytes(2048)),
                    reason: "not a JSON object".to_string(),
                }]
            }
        };
        let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        match s(&v, "type").as_deref() {
            Some("drover.codex") => {
                self.with(|st| st.model = s(&v, "model"));
                vec![]
            }
            Some("thread.started") => {
                let Some(id) = s(&v, "thread_id") else {
                    return vec![];
                };
                let model = self.with(|st| {
                    st.thread = Some(id.clone());
                    st.model.clone()
                });
                vec![AgentEvent::Session {
                    session_id: id,
                    model,
                }]
            }
            Some(kind @ ("item.started" | "item.completed")) => {
                let item = v.get("item").cloned().unwrap_or(Value::Null);
                self.item(&item, kind == "item.completed")
            }
            Some("turn.completed") => vec![self.turn(v.get("usage"), None)],
            Some("turn.failed") => {
                let msg = v
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("turn failed");
                vec![self.turn(None, Some(msg.to_string()))]
            }
            Some("error") => vec![AgentEvent::Error {
                message: s(&v, "message").unwrap_or_else(|| "codex error".into()),
                data: v.clone(),
            }],
            _ => vec![],
        }
    }

    fn user_message(&self, text: &str) -> Option<String> {
        Some(base64(text.as_bytes()))
    }

    fn permission_answer(&self, _: &str, _: bool, _: &Value, _: Option<&str>) -> Option<String> {
        None
    }

    fn interrupt(&self) -> Option<String> {
        None
    }

    fn multi_turn(&self) -> bool {
        true
    }
}

impl Codex {
    fn item(&self, item: &Value, completed: bool) -> Vec<AgentEvent> {
        let id = item
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let kind = item.get("type").and_then(Value::as_str).unwrap_or_default();
        let status = item.get("status").and_then(Value::as_str);
        match (kind, completed) {
            ("agent_message", true) => {
                let text = item.get("text").and_then(Value::as_str).unwrap_or_default();
                self.with(|st| st.last_message = Some(text.to_string()));
                vec![AgentEvent::Text {
                    text: text.to_string(),
                }]
            }
            ("command_execution", false) => vec![AgentEvent::ToolCall {
                id,
                name: "command_execution".into(),
                input: json!({ "command": item.get("command") }),
            }],
            ("command_execution", true) => vec![AgentEvent::ToolResult {
                id,
                content: json!({ "output": item.get("aggregated_output"),
                                 "exit_code": item.get("exit_code") }),
                is_error: status != Some("completed")
                    || item.get("exit_code").and_then(Value::as_i64) != Some(0),
            }],
            ("file_change" | "mcp_tool_call" | "web_search", true) => vec![
                AgentEvent::ToolCall {
                    id: id.clone(),
                    name: kind.to_string(),
                    input: item.clone(),
                },
                AgentEvent::ToolResult {
                    id,
                    content: item.get("result").cloned().unwrap_or(Value::Null),
                    is_error: matches!(status, Some("failed") | Some("declined")),
                },
            ],
            ("error", true) => vec![AgentEvent::Error {
                message: item
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("codex error")
                    .to_string(),
                data: item.clone(),
            }],
            _ => vec![],
        }
    }

    fn turn(&self, usage: Option<&Value>, failure: Option<String>) -> AgentEvent {
        let n = |k: &str| usage.and_then(|u| u.get(k)).and_then(Value::as_u64);
        self.with(|st| {
            let mut delta = None;
            if let (Some(input), Some(output)) = (n("input_tokens"), n("output_tokens")) {
                let cached = n("cached_input_tokens").unwrap_or(0).min(input);
                let total = [input - cached, cached, output];
                let d: Vec<u64> = (0..3)
                    .map(|i| total[i].saturating_sub(st.total[i]))
                    .collect();
                st.total = total;
                delta = Some(Usage {
                    input_tokens: d[0],
                    cache_read_tokens: d[1],
                    output_tokens: d[2],
                    cache_write_tokens: 0,
                });
            }
            let failed = failure.is_some();
            AgentEvent::TurnResult {
                result: if failed {
                    failure.clone()
                } else {
                    st.last_message.take()
                },
                is_error: failed,
                subtype: Some(if failed { "error" } else { "success" }.to_string()),
                stop_reason: None,
                // Codex reports no cost; the gateway meters it from the wire.
                cost_usd: None,
                usage: delta,
                errors: failure.into_iter().collect(),
                session_id: st.thread.clone(),
            }
        })
    }
}

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
