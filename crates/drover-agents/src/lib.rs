//! Agent adapters. One trait, [`Adapter`]; one module per agent.
//!
//! An adapter knows three things about its agent: how to start it ([`Adapter::launch`]), how to read
//! its output lines ([`Adapter::parse_line`] → [`AgentEvent`]), and how to talk to it on stdin
//! (follow-up messages, permission answers, interrupts). It never spawns or waits on processes: the
//! shim does that, and the daemon's engine decides what each event means for the task. What differs
//! between agent kinds beyond that (resuming, who picks the session id, `--cmd`, the hint for a
//! missing program) is asked of [`Adapter::capabilities`], never decided by the agent's name.

pub mod claude;
pub mod claude_bg;
pub mod codex;
pub mod command;

use drover_types::Usage;
use serde_json::Value;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("unknown agent {0:?} (known: claude, claude-bg, codex, command)")]
    UnknownAgent(String),
    #[error("the command agent needs --cmd")]
    MissingCmd,
    #[error("{0}")]
    Invalid(String),
}

/// What the engine knows about the task when it starts (or restarts) the agent.
#[derive(Debug, Clone)]
pub struct LaunchContext {
    pub task_id: String,
    pub prompt: String,
    pub model: Option<String>,
    /// `--cmd` for the command agent.
    pub cmd: Option<String>,
    /// The sandbox checkout the agent runs in.
    pub cwd: PathBuf,
    /// Pre-assigned session id (Claude: `--session-id`), or the one to resume.
    pub session_id: String,
    /// Continue an interrupted session instead of starting fresh (Claude: `--resume <session_id>`).
    pub resume: bool,
    /// Binary override (the daemon's `claude_bin`/`codex_bin`, e.g. from `DROVER_CLAUDE_BIN`);
    /// `None` means look up the default name on PATH. Adapters read no environment.
    pub binary: Option<String>,
    /// Ask the host about permissions (Claude: `--permission-prompt-tool stdio`).
    pub permission_prompts: bool,
}

/// How to start the agent. The shim spawns `program args…` in `cwd` in its own process group.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchSpec {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub env_remove: Vec<String>,
    /// Lines (without trailing newline) written to stdin right after the spawn.
    pub stdin_lines: Vec<String>,
    /// Close stdin after `stdin_lines` (agents that read their prompt to EOF).
    pub close_stdin: bool,
}

/// One thing an agent said, normalized.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentEvent {
    /// The agent announced its session (Claude: `system/init`).
    Session {
        session_id: String,
        model: Option<String>,
    },
    Text {
        text: String,
    },
    ToolCall {
        id: String,
        name: String,
        input: Value,
    },
    ToolResult {
        id: String,
        content: Value,
        is_error: bool,
    },
    /// Tokens of one model response (Claude: counted once per `message.id`).
    Usage {
        usage: Usage,
        model: Option<String>,
    },
    /// The agent asks the host whether it may use a tool.
    PermissionRequest {
        request_id: String,
        tool: String,
        input: Value,
    },
    /// The agent withdrew a permission request.
    PermissionCancelled {
        request_id: String,
    },
    /// A turn ended (Claude: the `result` line). `cost_usd` is cumulative for the process.
    TurnResult {
        result: Option<String>,
        is_error: bool,
        subtype: Option<String>,
        stop_reason: Option<String>,
        cost_usd: Option<f64>,
        usage: Option<Usage>,
        errors: Vec<String>,
        session_id: Option<String>,
    },
    /// The agent reported an error that is not a turn result (e.g. an API retry notice).
    Error {
        message: String,
        data: Value,
    },
    /// A line the adapter could not read. `excerpt` is bounded; the raw line stays in the raw log.
    Unparsed {
        excerpt: String,
        reason: String,
    },
}

/// The longest output line a JSON-speaking adapter reads whole (8 MiB). Longer lines are not
/// parsed: ingest stores an error event with an excerpt and the line's place in the raw log.
pub const MAX_JSON_LINE: usize = 8 << 20;

/// How much of each output line an adapter needs to see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineNeed {
    /// A bounded excerpt is enough (plain-text agents: every line is a text event).
    Excerpt,
    /// The whole line, up to `max` bytes (JSON lines must be parsed whole).
    Whole { max: usize },
}

/// The agent a task gets when it names none.
pub const DEFAULT_AGENT: &str = "claude";

/// What the engine and the API may ask of an agent kind, so that they never decide by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// An interrupted run can continue its session: with `on_interrupt = "resume"` the engine
    /// requeues the task, and the next attempt starts with [`LaunchContext::resume`] when
    /// [`Adapter::can_resume`] finds the session.
    pub resumable: bool,
    /// The daemon picks the session id when the task is created and passes it in
    /// [`LaunchContext::session_id`] (Claude: `--session-id`); others report theirs.
    pub session_id_up_front: bool,
    /// The task must give a command (`--cmd`); the prompt alone is not enough.
    pub needs_cmd: bool,
    /// Appended to a spawn error (the agent's program was not found or would not start).
    pub missing_binary_hint: Option<&'static str>,
    /// The daemon's setting that overrides this agent's program; `None`: it has none (the
    /// `command` agent runs the task's own command).
    pub binary: Option<BinarySetting>,
    /// The prompt goes to the agent as one command-line argument (Codex): at most this many
    /// bytes (`drover_types::validate::ARG_PROMPT_MAX`); `None`: any size the API takes.
    pub prompt_arg_max: Option<usize>,
}

/// A configured agent program (config.toml / `DROVER_*_BIN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinarySetting {
    /// `claude_bin`: Claude Code, for `claude` and `claude-bg`.
    Claude,
    /// `codex_bin`: the Codex CLI.
    Codex,
}

/// One agent kind.
pub trait Adapter: Send + Sync {
    /// `claude`, `command`, …
    fn name(&self) -> &'static str;
    /// What this agent kind can do (see [`Capabilities`]).
    fn capabilities(&self) -> Capabilities;
    /// Whether `session_id` can be resumed now (Claude: its transcript is on disk under
    /// `config_dir`, the agent's config directory as the daemon's config resolved it). A session
    /// that cannot is started afresh under the same id instead.
    fn can_resume(&self, _config_dir: Option<&std::path::Path>, _session_id: &str) -> bool {
        false
    }
    /// The command line and environment for this task.
    fn launch(&self, ctx: &LaunchContext) -> Result<LaunchSpec, AgentError>;
    /// Reads one output line (no trailing newline; may be huge or not UTF-8-clean: never panics).
    /// With [`LineNeed::Excerpt`] it gets a bounded excerpt of a long line.
    fn parse_line(&self, line: &str) -> Vec<AgentEvent>;
    /// How much of a line [`Adapter::parse_line`] needs.
    fn line_need(&self) -> LineNeed {
        LineNeed::Whole { max: MAX_JSON_LINE }
    }
    /// The stdin line that sends a follow-up user message; `None` if the agent takes no input.
    fn user_message(&self, text: &str) -> Option<String>;
    /// The stdin line that answers a permission request.
    fn permission_answer(
        &self,
        request_id: &str,
        allow: bool,
        input: &Value,
        message: Option<&str>,
    ) -> Option<String>;
    /// The stdin line that politely interrupts the current turn.
    fn interrupt(&self) -> Option<String>;
    /// Whether the agent keeps reading stdin across turns (then the engine closes stdin once the
    /// last turn ended and nothing more is to be said).
    fn multi_turn(&self) -> bool;
    /// Whether the agent starts a service meant to outlive it and shared beyond this task
    /// (Claude's background supervisor). The shim then ends only the agent's process group when
    /// the agent exits, instead of every process it started.
    fn starts_shared_service(&self) -> bool {
        false
    }
    /// Variables of the daemon's environment this agent needs as they are (its config dirs,
    /// its own switches), on top of the base list every agent gets. The agent's environment is
    /// built from an allow-list: what is not named anywhere is not passed.
    fn env_passthrough(&self) -> &'static [&'static str] {
        &[]
    }
    /// Adjusts a launch's arguments for an agent that drover runs in its own jail
    /// (docs/design.md §11): an agent CLI whose own sandbox cannot be built inside one
    /// (nested namespaces) leaves the confining to drover's. Default: unchanged.
    fn confine_args(&self, _args: &mut Vec<String>) {}
}

/// The adapter for an agent name.
pub fn adapter(name: &str) -> Result<Box<dyn Adapter>, AgentError> {
    match name {
        "claude" => Ok(Box::new(claude::Claude::new())),
        "claude-bg" => Ok(Box::new(claude_bg::ClaudeBg::new())),
        "codex" => Ok(Box::new(codex::Codex::new())),
        "command" => Ok(Box::new(command::Command)),
        other => Err(AgentError::UnknownAgent(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(name: &str) -> Capabilities {
        match adapter(name) {
            Ok(a) => {
                assert_eq!(a.name(), name);
                a.capabilities()
            }
            Err(e) => panic!("{name}: {e}"),
        }
    }

    #[test]
    fn claude_resumes_and_gets_its_session_id_up_front() {
        let c = caps("claude");
        assert!(c.resumable);
        assert!(c.session_id_up_front);
        assert!(!c.needs_cmd);
        let hint = c.missing_binary_hint.unwrap_or_default();
        assert!(hint.contains("DROVER_CLAUDE_BIN"), "{hint}");
    }

    #[test]
    fn only_codex_takes_its_prompt_as_an_argument() {
        let max = Some(drover_types::validate::ARG_PROMPT_MAX);
        assert_eq!(caps("codex").prompt_arg_max, max);
        for name in ["claude", "claude-bg", "command"] {
            assert_eq!(caps(name).prompt_arg_max, None, "{name}");
        }
    }

    #[test]
    fn each_agent_names_its_own_binary_setting() {
        assert_eq!(caps("claude").binary, Some(BinarySetting::Claude));
        assert_eq!(caps("claude-bg").binary, Some(BinarySetting::Claude));
        assert_eq!(caps("codex").binary, Some(BinarySetting::Codex));
        assert_eq!(caps("command").binary, None);
    }

    #[test]
    fn claude_bg_resumes_but_reports_its_own_session() {
        let c = caps("claude-bg");
        assert!(c.resumable);
        assert!(!c.session_id_up_front);
        assert!(!c.needs_cmd);
        assert_eq!(c.missing_binary_hint, None);
    }

    #[test]
    fn codex_and_command_do_not_resume() {
        let codex = caps("codex");
        assert!(!codex.resumable && !codex.session_id_up_front && !codex.needs_cmd);
        assert_eq!(codex.missing_binary_hint, None);
        let command = caps("command");
        assert!(!command.resumable && !command.session_id_up_front);
        assert!(command.needs_cmd);
        assert_eq!(command.missing_binary_hint, None);
    }

    #[test]
    fn a_session_resumes_only_where_claude_has_its_transcript() {
        // A session id that has no transcript anywhere.
        let id = "00000000-0000-4000-8000-drover-test-none";
        for name in ["claude", "claude-bg", "codex", "command"] {
            let Ok(a) = adapter(name) else {
                panic!("{name}: no adapter")
            };
            assert!(!a.can_resume(None, id), "{name}");
            assert!(!a.can_resume(None, ""), "{name}");
        }
    }

    #[test]
    fn the_default_agent_exists() {
        assert!(adapter(DEFAULT_AGENT).is_ok());
    }
}
