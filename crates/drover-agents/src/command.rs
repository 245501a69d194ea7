//! Any program as an agent: `/bin/sh -c <cmd>`, the prompt on stdin (then EOF) and in
//! `DROVER_PROMPT` (only up to [`ENV_PROMPT_MAX`] bytes: one environment string may not exceed
//! 128 KiB, so a longer prompt is on stdin alone), every stdout line a text event. Single turn:
//! it takes no follow-up input.

use crate::{Adapter, AgentError, AgentEvent, Capabilities, LaunchContext, LaunchSpec, LineNeed};
use serde_json::Value;

/// The longest prompt also given in `DROVER_PROMPT` (the kernel refuses to start a program
/// with an environment string over 128 KiB).
pub const ENV_PROMPT_MAX: usize = 100 * 1024;

#[derive(Debug, Default, Clone, Copy)]
pub struct Command;

impl Adapter for Command {
    fn name(&self) -> &'static str {
        "command"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            resumable: false,
            session_id_up_front: false,
            needs_cmd: true,
            missing_binary_hint: None,
            binary: None,
            prompt_arg_max: None,
        }
    }

    fn launch(&self, ctx: &LaunchContext) -> Result<LaunchSpec, AgentError> {
        let cmd = ctx
            .cmd
            .as_deref()
            .filter(|c| !c.trim().is_empty())
            .ok_or(AgentError::MissingCmd)?;
        let mut env = vec![("DROVER_TASK_ID".to_string(), ctx.task_id.clone())];
        if ctx.prompt.len() <= ENV_PROMPT_MAX {
            env.push(("DROVER_PROMPT".to_string(), ctx.prompt.clone()));
        }
        Ok(LaunchSpec {
            program: "/bin/sh".to_string(),
            args: vec!["-c".to_string(), cmd.to_string()],
            env,
            env_remove: Vec::new(),
            stdin_lines: vec![ctx.prompt.clone()],
            close_stdin: true,
        })
    }

    fn parse_line(&self, line: &str) -> Vec<AgentEvent> {
        vec![AgentEvent::Text {
            text: line.to_string(),
        }]
    }

    fn line_need(&self) -> LineNeed {
        LineNeed::Excerpt
    }

    fn user_message(&self, _text: &str) -> Option<String> {
        None
    }

    fn permission_answer(
        &self,
        _request_id: &str,
        _allow: bool,
        _input: &Value,
        _message: Option<&str>,
    ) -> Option<String> {
        None
    }

    fn interrupt(&self) -> Option<String> {
        None
    }

    fn multi_turn(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::path::PathBuf;

    fn ctx(cmd: Option<&str>) -> LaunchContext {
        LaunchContext {
            task_id: "t-1".into(),
            prompt: "do the thing\nplease".into(),
            model: None,
            cmd: cmd.map(str::to_string),
            cwd: PathBuf::from("/tmp"),
            session_id: "s".into(),
            resume: false,
            binary: None,
            permission_prompts: false,
        }
    }

    #[test]
    fn launch_runs_through_sh() {
        let spec = Command.launch(&ctx(Some("echo hi; cat"))).unwrap();
        assert_eq!(spec.program, "/bin/sh");
        assert_eq!(spec.args, vec!["-c", "echo hi; cat"]);
        assert!(spec
            .env
            .contains(&("DROVER_PROMPT".into(), "do the thing\nplease".into())));
        assert!(spec.env.contains(&("DROVER_TASK_ID".into(), "t-1".into())));
        assert_eq!(spec.stdin_lines, vec!["do the thing\nplease"]);
        assert!(spec.close_stdin);
        assert!(!Command.multi_turn());
    }

    #[test]
    fn a_prompt_too_long_for_the_environment_is_on_stdin_only() {
        let mut c = ctx(Some("wc -c"));
        c.prompt = "x".repeat(ENV_PROMPT_MAX + 1);
        let spec = Command.launch(&c).unwrap();
        assert!(!spec.env.iter().any(|(k, _)| k == "DROVER_PROMPT"));
        assert_eq!(spec.stdin_lines, vec![c.prompt]);
    }

    #[test]
    fn launch_needs_cmd() {
        assert!(matches!(
            Command.launch(&ctx(None)),
            Err(AgentError::MissingCmd)
        ));
        assert!(matches!(
            Command.launch(&ctx(Some("  "))),
            Err(AgentError::MissingCmd)
        ));
    }

    #[test]
    fn every_line_is_text() {
        for line in ["", "plain", "{\"type\":\"result\"}", "ünïcödé …"] {
            assert_eq!(
                Command.parse_line(line),
                vec![AgentEvent::Text {
                    text: line.to_string()
                }]
            );
        }
    }

    #[test]
    fn takes_no_input() {
        assert_eq!(Command.user_message("more"), None);
        assert_eq!(
            Command.permission_answer("r", true, &Value::Null, None),
            None
        );
        assert_eq!(Command.interrupt(), None);
        assert_eq!(crate::adapter("command").unwrap().name(), "command");
    }
}
