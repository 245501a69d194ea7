#![allow(clippy::unwrap_used)]

use super::*;
use std::path::PathBuf;

/// A real `codex exec --json` run (0.169.0 against the fake provider), with drover's marker.
const RUN: &str = r#"{"type":"drover.codex","model":"gpt-5.5"}
{"type":"thread.started","thread_id":"01a1fdda-d371-7762-9f62-78d958f468a6"}
{"type":"turn.started"}
{"type":"item.started","item":{"id":"item_0","type":"command_execution","command":"/bin/bash -lc \"printf 'hello' > HELLO.txt\"","aggregated_output":"","exit_code":null,"status":"in_progress"}}
{"type":"item.completed","item":{"id":"item_0","type":"command_execution","command":"/bin/bash -lc \"printf 'hello' > HELLO.txt\"","aggregated_output":"","exit_code":0,"status":"completed"}}
{"type":"item.completed","item":{"id":"item_1","type":"agent_message","text":"Wrote HELLO.txt."}}
{"type":"turn.completed","usage":{"input_tokens":3200,"cached_input_tokens":1100,"cache_write_input_tokens":0,"output_tokens":80,"reasoning_output_tokens":0}}"#;

fn ctx(resume: bool) -> LaunchContext {
    LaunchContext {
        task_id: "t-1".into(),
        prompt: "fix it".into(),
        model: None,
        cmd: None,
        cwd: PathBuf::from("/tmp/sb"),
        session_id: "thread-1".into(),
        resume,
        binary: Some("/opt/codex/bin/codex".into()),
        permission_prompts: true,
    }
}

#[test]
fn a_run_parses_to_events_with_usage() {
    let codex = Codex::new();
    let events: Vec<AgentEvent> = RUN.lines().flat_map(|l| codex.parse_line(l)).collect();
    assert_eq!(
        events[0],
        AgentEvent::Session {
            session_id: "01a1fdda-d371-7762-9f62-78d958f468a6".into(),
            model: Some("gpt-5.5".into())
        }
    );
    assert!(matches!(&events[1], AgentEvent::ToolCall { id, name, .. }
        if id == "item_0" && name == "command_execution"));
    assert!(matches!(
        &events[2],
        AgentEvent::ToolResult {
            is_error: false,
            ..
        }
    ));
    assert_eq!(
        events[3],
        AgentEvent::Text {
            text: "Wrote HELLO.txt.".into()
        }
    );
    match &events[4] {
        AgentEvent::TurnResult {
            result,
            is_error,
            cost_usd,
            usage,
            session_id,
            ..
        } => {
            assert_eq!(result.as_deref(), Some("Wrote HELLO.txt."));
            assert!(!is_error);
            let u = usage.unwrap();
            assert_eq!(
                (u.input_tokens, u.cache_read_tokens, u.output_tokens),
                (2100, 1100, 80)
            );
            // Codex reports no cost; the gateway prices the wire's tokens.
            assert_eq!(*cost_usd, None);
            assert!(session_id.is_some());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(events.len(), 5);
}

#[test]
fn usage_is_a_running_total_across_turns() {
    let codex = Codex::new();
    codex.parse_line(r#"{"type":"drover.codex","model":"gpt-5.5"}"#);
    let turn = |input, cached, output| {
        let line = json!({"type": "turn.completed", "usage": {"input_tokens": input,
            "cached_input_tokens": cached, "output_tokens": output}});
        match codex.parse_line(&line.to_string()).pop().unwrap() {
            AgentEvent::TurnResult { usage, .. } => usage.unwrap(),
            other => panic!("{other:?}"),
        }
    };
    let first = turn(3200, 1100, 80);
    let second = turn(3300, 1100, 100);
    assert_eq!(
        (
            second.input_tokens,
            second.cache_read_tokens,
            second.output_tokens
        ),
        (100, 0, 20)
    );
    assert_eq!(first.input_tokens + second.input_tokens, 2200);
}

#[test]
fn failures_and_errors() {
    let codex = Codex::new();
    let failed = r#"{"type":"turn.failed","error":{"message":"You've hit your usage limit"}}"#;
    match &codex.parse_line(failed)[..] {
        [AgentEvent::TurnResult {
            is_error: true,
            errors,
            usage: None,
            cost_usd: None,
            ..
        }] => {
            assert_eq!(errors, &vec!["You've hit your usage limit".to_string()]);
        }
        other => panic!("{other:?}"),
    }
    let retry = r#"{"type":"error","message":"Reconnecting... 1/5"}"#;
    assert!(matches!(
        &codex.parse_line(retry)[..],
        [AgentEvent::Error { .. }]
    ));
    let declined = r#"{"type":"item.completed","item":{"id":"i","type":"command_execution","command":"rm -rf /","exit_code":null,"status":"declined"}}"#;
    assert!(matches!(
        &codex.parse_line(declined)[..],
        [AgentEvent::ToolResult { is_error: true, .. }]
    ));
    for line in [
        "",
        "nope",
        "[1]",
        r#"{"type":"item.completed"}"#,
        r#"{"type":"turn.completed","usage":5}"#,
    ] {
        let _ = codex.parse_line(line);
    }
    assert!(matches!(
        &codex.parse_line("nope")[..],
        [AgentEvent::Unparsed { .. }]
    ));
}

#[test]
fn launch_runs_codex_exec_in_a_loop() {
    let spec = Codex::new().launch(&ctx(false)).unwrap();
    assert_eq!(spec.program, "/bin/sh");
    assert_eq!(spec.args[0], "-c");
    assert_eq!(
        spec.args[3], "/opt/codex/bin/codex",
        "the configured binary"
    );
    assert_eq!(spec.args[4], "fix it");
    let flags = spec.args[6..].join(" ");
    assert!(
        flags.starts_with("--json --sandbox workspace-write"),
        "{flags}"
    );
    assert!(flags.contains(&format!("-m {DEFAULT_MODEL}")));
    assert!(!spec.env.iter().any(|(k, _)| k == "DROVER_CODEX_RESUME"));
    let spec = Codex::new().launch(&ctx(true)).unwrap();
    assert!(spec
        .env
        .contains(&("DROVER_CODEX_RESUME".into(), "thread-1".into())));
    assert!(spec.args[1].contains(r#"model_providers.drover.wire_api="responses""#));
    assert!(spec.args[1].contains("OPENAI_BASE_URL"));
}

#[test]
fn follow_ups_are_one_base64_line() {
    let codex = Codex::new();
    assert_eq!(codex.user_message("a\nb").unwrap(), "YQpi");
    assert_eq!(codex.user_message("hello").unwrap(), "aGVsbG8=");
    assert_eq!(codex.user_message("hi").unwrap(), "aGk=");
    assert_eq!(codex.interrupt(), None);
    assert_eq!(crate::adapter("codex").unwrap().name(), "codex");
}

#[test]
fn confined_codex_leaves_the_sandbox_to_drovers_jail() {
    let mut args = exec_flags("gpt-5.5");
    Codex::new().confine_args(&mut args);
    let i = args.iter().position(|a| a == "--sandbox").unwrap();
    assert_eq!(args[i + 1], "danger-full-access");
}
