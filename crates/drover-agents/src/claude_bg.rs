//! Claude Code background sessions (`claude --bg`), through Claude's own supervisor.
//!
//! `claude --bg` returns at once, so the agent process drover supervises is a small drover-owned
//! follower, `drover claude-bg-follow` (hidden command; its runtime is [`follow`]). It
//! dispatches the session, follows `~/.claude/jobs/<short>/state.json` and the session transcript,
//! and prints lines this adapter reads:
//!
//! - transcript lines (`assistant`, `user`) unchanged: the `claude` adapter's parsing applies;
//! - `{"type":"system","subtype":"init","session_id":…}` once the session id is known;
//! - `{"type":"result",…}` in the stream-json shape when the turn has ended: the session is
//!   idle and its transcript holds the final assistant message (or Claude's classifier says
//!   `state ∈ {done, failed, stopped}` with `tempo != "active"`);
//! - `{"type":"drover_bg","event":"needs"|"unblocked"|"error",…}` for `tempo == "blocked"` and
//!   follower-side problems.
//!
//! On stdin it takes one JSON object per line: `{"type":"user","text":…}` (the first one is the
//! prompt), `{"type":"answer",…}` and `{"type":"interrupt"}`. Reference: agent-cli-interfaces.md §2.

pub mod follow;

use crate::claude::Claude;
use crate::{
    Adapter, AgentError, AgentEvent, BinarySetting, Capabilities, LaunchContext, LaunchSpec,
};
use serde_json::{json, Value};

/// The hidden drover subcommand that follows one background session.
pub const FOLLOW_COMMAND: &str = "claude-bg-follow";

/// Sent instead of the prompt when an interrupted task is resumed and its session is gone.
pub const RESUME_MESSAGE: &str = "Your previous run was interrupted before it finished (the host \
stopped). Continue the task where you left off and finish it.";

/// The `claude-bg` adapter. Parsing of transcript lines is the `claude` adapter's.
#[derive(Debug, Default)]
pub struct ClaudeBg {
    inner: Claude,
}

impl ClaudeBg {
    pub fn new() -> Self {
        Self::default()
    }
}

/// The session name drover gives a task's background session (and finds it by).
pub fn session_name(task_id: &str) -> String {
    format!("drover-{task_id}")
}

/// The drover binary that runs the follower: this very program (the daemon is `drover`).
fn drover_exe() -> String {
    std::env::current_exe()
        .ok()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "drover".to_string())
}

impl Adapter for ClaudeBg {
    fn name(&self) -> &'static str {
        "claude-bg"
    }

    fn capabilities(&self) -> Capabilities {
        // Its follower learns the session id from Claude's own supervisor.
        Capabilities {
            resumable: true,
            session_id_up_front: false,
            needs_cmd: false,
            missing_binary_hint: None,
            binary: Some(BinarySetting::Claude),
            prompt_arg_max: None,
        }
    }

    fn can_resume(&self, config_dir: Option<&std::path::Path>, session_id: &str) -> bool {
        crate::claude::transcript_exists(config_dir, session_id)
    }

    fn launch(&self, ctx: &LaunchContext) -> Result<LaunchSpec, AgentError> {
        let claude = ctx.binary.clone().unwrap_or_else(|| "claude".to_string());
        let mut args = vec![
            FOLLOW_COMMAND.to_string(),
            "--task".to_string(),
            ctx.task_id.clone(),
            "--claude".to_string(),
            claude,
        ];
        if let Some(model) = &ctx.model {
            args.extend(["--model".to_string(), model.clone()]);
        }
        if ctx.resume && !ctx.session_id.is_empty() {
            args.extend(["--resume".to_string(), ctx.session_id.clone()]);
        }
        let stdin_lines = if ctx.resume {
            // The follower re-attaches to the live session, or continues it with RESUME_MESSAGE.
            Vec::new()
        } else {
            vec![user_line(&ctx.prompt)]
        };
        Ok(LaunchSpec {
            program: drover_exe(),
            args,
            env: vec![
                ("DISABLE_AUTOUPDATER".to_string(), "1".to_string()),
                // drover's sandbox is the isolation: Claude treats a sandboxed cwd as trusted
                // (no trust dialog, which a background dispatch cannot show).
                ("CLAUDE_CODE_SANDBOXED".to_string(), "1".to_string()),
            ],
            env_remove: vec!["CLAUDECODE".to_string()],
            stdin_lines,
            close_stdin: false,
        })
    }

    /// `claude --bg` starts Claude's supervisor when none runs; it serves every background
    /// session of this user (not only drover's) and must not end with the task.
    fn starts_shared_service(&self) -> bool {
        true
    }

    fn env_passthrough(&self) -> &'static [&'static str] {
        crate::claude::CLAUDE_ENV
    }

    fn parse_line(&self, line: &str) -> Vec<AgentEvent> {
        let Ok(value) = serde_json::from_str::<Value>(line) else {
            return self.inner.parse_line(line);
        };
        if value.get("type").and_then(Value::as_str) != Some("drover_bg") {
            return self.inner.parse_line(line);
        }
        let text = |k: &str| {
            value
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        match value.get("event").and_then(Value::as_str) {
            Some("needs") => vec![AgentEvent::PermissionRequest {
                request_id: text("request_id"),
                tool: "claude-bg".to_string(),
                input: json!({ "needs": text("needs"), "detail": text("detail"),
                               "short": text("short") }),
            }],
            Some("unblocked") => vec![AgentEvent::PermissionCancelled {
                request_id: text("request_id"),
            }],
            Some("error") => vec![AgentEvent::Error {
                message: format!("claude-bg: {}", text("message")),
                data: value.clone(),
            }],
            _ => Vec::new(),
        }
    }

    fn user_message(&self, text: &str) -> Option<String> {
        Some(user_line(text))
    }

    fn permission_answer(
        &self,
        request_id: &str,
        allow: bool,
        _input: &Value,
        message: Option<&str>,
    ) -> Option<String> {
        let line = json!({
            "type": "answer", "request_id": request_id, "allow": allow, "message": message,
        });
        Some(line.to_string())
    }

    fn interrupt(&self) -> Option<String> {
        Some(json!({ "type": "interrupt" }).to_string())
    }

    fn multi_turn(&self) -> bool {
        true
    }
}

fn user_line(text: &str) -> String {
    json!({ "type": "user", "text": text }).to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::path::PathBuf;

    fn ctx(resume: bool) -> LaunchContext {
        LaunchContext {
            task_id: "t-1".into(),
            prompt: "fix it\nnow".into(),
            model: Some("claude-sonnet-5".into()),
            cmd: None,
            cwd: PathBuf::from("/tmp/sb"),
            session_id: "sess-1".into(),
            resume,
            binary: Some("/opt/claude".into()),
            permission_prompts: true,
        }
    }

    #[test]
    fn launch_runs_the_follower() {
        let spec = ClaudeBg::new().launch(&ctx(false)).unwrap();
        assert_eq!(
            spec.args.join(" "),
            "claude-bg-follow --task t-1 --claude /opt/claude --model claude-sonnet-5"
        );
        let first: Value = serde_json::from_str(&spec.stdin_lines[0]).unwrap();
        assert_eq!(first, json!({"type": "user", "text": "fix it\nnow"}));
        assert!(spec
            .env
            .contains(&("CLAUDE_CODE_SANDBOXED".into(), "1".into())));
        assert!(!spec.close_stdin);
        let spec = ClaudeBg::new().launch(&ctx(true)).unwrap();
        assert!(spec.args.ends_with(&["--resume".into(), "sess-1".into()]));
        assert!(spec.stdin_lines.is_empty());
    }

    #[test]
    fn follower_lines_become_events() {
        let bg = ClaudeBg::new();
        let needs = r#"{"type":"drover_bg","event":"needs","request_id":"needs-1","needs":"approve Bash","short":"abcd1234"}"#;
        match &bg.parse_line(needs)[..] {
            [AgentEvent::PermissionRequest {
                request_id,
                tool,
                input,
            }] => {
                assert_eq!(request_id, "needs-1");
                assert_eq!(tool, "claude-bg");
                assert_eq!(input["needs"], "approve Bash");
            }
            other => panic!("{other:?}"),
        }
        let unblocked = r#"{"type":"drover_bg","event":"unblocked","request_id":"needs-1"}"#;
        assert_eq!(
            bg.parse_line(unblocked),
            vec![AgentEvent::PermissionCancelled {
                request_id: "needs-1".into()
            }]
        );
        let init = r#"{"type":"system","subtype":"init","session_id":"s-1","model":null}"#;
        assert_eq!(
            bg.parse_line(init),
            vec![AgentEvent::Session {
                session_id: "s-1".into(),
                model: None
            }]
        );
        let result = r#"{"type":"result","subtype":"success","is_error":false,"result":"ok","total_cost_usd":0.5,"session_id":"s-1"}"#;
        assert!(matches!(&bg.parse_line(result)[..],
            [AgentEvent::TurnResult { result: Some(r), cost_usd: Some(c), .. }] if r == "ok" && *c == 0.5));
        assert!(bg
            .parse_line(r#"{"type":"drover_bg","event":"other"}"#)
            .is_empty());
        assert!(matches!(
            &bg.parse_line("not json")[..],
            [AgentEvent::Unparsed { .. }]
        ));
    }

    #[test]
    fn stdin_lines() {
        let bg = ClaudeBg::new();
        let answer: Value = serde_json::from_str(
            &bg.permission_answer("needs-1", false, &Value::Null, Some("no"))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            answer,
            json!({"type": "answer", "request_id": "needs-1", "allow": false, "message": "no"})
        );
        assert_eq!(bg.interrupt().unwrap(), r#"{"type":"interrupt"}"#);
        assert!(bg.multi_turn());
        assert_eq!(crate::adapter("claude-bg").unwrap().name(), "claude-bg");
    }
}
