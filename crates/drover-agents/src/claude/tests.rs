#![allow(clippy::unwrap_used)]

use super::*;
use std::path::PathBuf;

const SAMPLE: &str = include_str!("../../testdata/sample-claude-stream.jsonl");
const SESSION: &str = "2cd44965-da0f-44a0-a8ac-c18204fa2f2d";

fn parse_all(claude: &Claude, text: &str) -> Vec<AgentEvent> {
    text.lines().flat_map(|l| claude.parse_line(l)).collect()
}

fn ctx(resume: bool) -> LaunchContext {
    LaunchContext {
        task_id: "t-1".into(),
        prompt: "fix \"the\" bug\nnow".into(),
        model: Some("claude-opus-5-5".into()),
        cmd: None,
        cwd: PathBuf::from("/tmp/sandbox"),
        session_id: "sess-1".into(),
        resume,
        binary: None,
        permission_prompts: true,
    }
}

#[test]
fn sample_stream_parses_to_expected_events() {
    let events = parse_all(&Claude::new(), SAMPLE);
    let expected = vec![
        AgentEvent::Session { session_id: SESSION.into(), model: Some("claude-opus-5-5".into()) },
        AgentEvent::ToolCall {
            id: "toolu_01".into(),
            name: "Write".into(),
            input: json!({"file_path": "HELLO.txt", "content": "hello from mock\n"}),
        },
        AgentEvent::Usage {
            usage: Usage { input_tokens: 100, ..Usage::default() },
            model: Some("claude-opus-5-5".into()),
        },
        AgentEvent::ToolResult {
            id: "toolu_01".into(),
            content: json!(
                "File created successfully at: HELLO.txt (file state is current in your context — no need to Read it back)"
            ),
            is_error: false,
        },
        AgentEvent::Text { text: "SUCCESS done.".into() },
        AgentEvent::TurnResult {
            result: Some("SUCCESS done.".into()),
            is_error: false,
            subtype: Some("success".into()),
            stop_reason: Some("end_turn".into()),
            cost_usd: Some(0.0016),
            usage: Some(Usage { input_tokens: 200, output_tokens: 40, ..Usage::default() }),
            errors: vec![],
            session_id: Some(SESSION.into()),
        },
    ];
    assert_eq!(events, expected);
}

#[test]
fn usage_counted_once_per_message_id() {
    let claude = Claude::new();
    let line = |id: &str| {
        json!({"type": "assistant", "message": {"id": id, "model": "m", "content": [],
            "usage": {"input_tokens": 4, "cache_creation_input_tokens": 2150,
                      "cache_read_input_tokens": 14020, "output_tokens": 1}}})
        .to_string()
    };
    let usages = |events: Vec<AgentEvent>| {
        events
            .into_iter()
            .filter(|e| matches!(e, AgentEvent::Usage { .. }))
            .collect::<Vec<_>>()
    };
    let first = usages(claude.parse_line(&line("msg_a")));
    assert_eq!(
        first,
        vec![AgentEvent::Usage {
            usage: Usage {
                input_tokens: 4,
                output_tokens: 0,
                cache_read_tokens: 14020,
                cache_write_tokens: 2150
            },
            model: Some("m".into()),
        }]
    );
    assert!(usages(claude.parse_line(&line("msg_a"))).is_empty());
    assert_eq!(usages(claude.parse_line(&line("msg_b"))).len(), 1);
    assert!(usages(claude.parse_line(&line("msg_b"))).is_empty());
    // A separate adapter (another process) counts on its own.
    assert_eq!(usages(Claude::new().parse_line(&line("msg_a"))).len(), 1);
}

#[test]
fn seen_ids_stay_bounded() {
    let claude = Claude::new();
    for i in 0..(SEEN_IDS * 3) {
        let line = json!({"type": "assistant", "message": {"id": format!("m{i}"), "usage": {}}});
        assert_eq!(claude.parse_line(&line.to_string()).len(), 1);
    }
    let seen = claude.seen.lock().unwrap();
    assert_eq!(seen.set.len(), SEEN_IDS);
    assert_eq!(seen.order.len(), SEEN_IDS);
}

#[test]
fn can_use_tool_and_cancel() {
    let claude = Claude::new();
    let line = r#"{"type":"control_request","request_id":"req-7","request":{"subtype":"can_use_tool","tool_name":"Bash","input":{"command":"rm -rf target"},"tool_use_id":"toolu_9","permission_suggestions":[],"blocked_path":null}}"#;
    assert_eq!(
        claude.parse_line(line),
        vec![AgentEvent::PermissionRequest {
            request_id: "req-7".into(),
            tool: "Bash".into(),
            input: json!({"command": "rm -rf target"}),
        }]
    );
    let cancel = r#"{"type":"control_cancel_request","request_id":"req-7"}"#;
    assert_eq!(
        claude.parse_line(cancel),
        vec![AgentEvent::PermissionCancelled {
            request_id: "req-7".into()
        }]
    );
    let other =
        r#"{"type":"control_request","request_id":"r","request":{"subtype":"hook_callback"}}"#;
    assert!(claude.parse_line(other).is_empty());
}

#[test]
fn tool_results_with_array_content_and_errors() {
    let line = json!({"type": "user", "message": {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "a", "content": [{"type": "text", "text": "out"}]},
        {"type": "tool_result", "tool_use_id": "b", "content": "boom", "is_error": true},
        {"type": "text", "text": "ignored"}
    ]}});
    assert_eq!(
        Claude::new().parse_line(&line.to_string()),
        vec![
            AgentEvent::ToolResult {
                id: "a".into(),
                content: json!([{"type": "text", "text": "out"}]),
                is_error: false,
            },
            AgentEvent::ToolResult {
                id: "b".into(),
                content: json!("boom"),
                is_error: true
            },
        ]
    );
    // A plain user message (string content) yields nothing.
    let echo = r#"{"type":"user","message":{"role":"user","content":"hi"}}"#;
    assert!(Claude::new().parse_line(echo).is_empty());
}

#[test]
fn error_result_and_api_errors() {
    let claude = Claude::new();
    let result = r#"{"type":"result","subtype":"error_max_turns","is_error":true,"num_turns":3,"errors":["Reached maximum number of turns (3)"],"stop_reason":"tool_use","total_cost_usd":0.05,"usage":{"input_tokens":1},"session_id":"s"}"#;
    match &claude.parse_line(result)[..] {
        [AgentEvent::TurnResult {
            result,
            is_error,
            subtype,
            errors,
            usage,
            ..
        }] => {
            assert_eq!(*result, None);
            assert!(*is_error);
            assert_eq!(subtype.as_deref(), Some("error_max_turns"));
            assert_eq!(
                errors,
                &vec!["Reached maximum number of turns (3)".to_string()]
            );
            assert_eq!(usage.unwrap().input_tokens, 1);
        }
        other => panic!("unexpected {other:?}"),
    }
    let retry = r#"{"type":"system","subtype":"api_retry","attempt":2,"max_retries":10,"retry_delay_ms":1200,"error_status":529,"error":"overloaded"}"#;
    match &claude.parse_line(retry)[..] {
        [AgentEvent::Error { message, data }] => {
            assert_eq!(
                message,
                "API retry 2/10: overloaded (status 529), retrying in 1200 ms"
            );
            assert_eq!(data["attempt"], 2);
        }
        other => panic!("unexpected {other:?}"),
    }
    let api_error = r#"{"type":"system","subtype":"api_error","error":{"message":"Connection reset","connection":true},"retry_in_ms":500}"#;
    assert!(matches!(&claude.parse_line(api_error)[..],
        [AgentEvent::Error { message, .. }] if message == "API error: Connection reset"));
    let assistant_error = r#"{"type":"assistant","error":"rate_limit","message":{"id":"x","content":[{"type":"text","text":"API Error: rate limited"}]}}"#;
    let events = claude.parse_line(assistant_error);
    assert!(
        matches!(&events[..], [AgentEvent::Error { message, .. }, AgentEvent::Text { text }]
        if message == "assistant error: rate_limit" && text == "API Error: rate limited")
    );
}

#[test]
fn unknown_types_are_ignored() {
    let claude = Claude::new();
    for line in [
        r#"{"type":"rate_limit_event","rate_limit_info":{"status":"allowed"}}"#,
        r#"{"type":"system","subtype":"compact_boundary"}"#,
        r#"{"type":"stream_event","event":{}}"#,
        r#"{"type":"control_response","response":{"subtype":"success","request_id":"x"}}"#,
        r#"{"no_type":true}"#,
        r#"{"type":42}"#,
    ] {
        assert!(claude.parse_line(line).is_empty(), "{line}");
    }
}

#[test]
fn malformed_lines_never_panic() {
    let claude = Claude::new();
    let huge = format!("{{\"type\":\"assistant\",\"x\":\"{}", "é".repeat(1_000_000));
    let deep = "[".repeat(100_000);
    for line in [
        "", "   ", "not json", "[1,2]", "42", "\"str\"", "null", "{", &huge, &deep,
    ] {
        match &claude.parse_line(line)[..] {
            [AgentEvent::Unparsed { excerpt, reason }] => {
                assert!(excerpt.len() <= EXCERPT_BYTES + 3, "excerpt too long");
                assert!(!reason.is_empty());
            }
            other => panic!(
                "{:?} gave {other:?}",
                drover_types::text::excerpt(line, drover_types::text::Limit::Bytes(40))
            ),
        }
    }
    // Valid JSON with wrong types in every field: no panic, no garbage.
    let odd = [
        r#"{"type":"system","subtype":"init","session_id":7,"model":[]}"#,
        r#"{"type":"system","subtype":"api_retry","attempt":"x","error":null,"error_status":null}"#,
        r#"{"type":"system","subtype":"api_error","error":5}"#,
        r#"{"type":"assistant","message":"nope"}"#,
        r#"{"type":"assistant","message":{"id":5,"content":{"a":1},"usage":[1]}}"#,
        r#"{"type":"assistant","message":{"content":[1,null,{"type":"tool_use"},{"type":"text","text":3}],"usage":{"input_tokens":-5}}}"#,
        r#"{"type":"assistant","error":{"k":1},"message":null}"#,
        r#"{"type":"user","message":{"content":[{"type":"tool_result","is_error":"yes"}]}}"#,
        r#"{"type":"result","is_error":"no","total_cost_usd":"1","usage":5,"errors":[1,{"a":2}]}"#,
        r#"{"type":"control_request","request":"x"}"#,
        r#"{"type":"control_request","request_id":1,"request":{"subtype":"can_use_tool"}}"#,
        r#"{"type":"control_cancel_request","request_id":{}}"#,
    ];
    for line in odd {
        for event in claude.parse_line(line) {
            assert!(!matches!(event, AgentEvent::Unparsed { .. }), "{line}");
        }
    }
}

#[test]
fn stdin_lines_have_the_right_shape() {
    let claude = Claude::new();
    let msg: Value =
        serde_json::from_str(&claude.user_message("say \"hi\"\nthen stop").unwrap()).unwrap();
    assert_eq!(
        msg,
        json!({"type": "user", "message": {"role": "user", "content": "say \"hi\"\nthen stop"},
               "parent_tool_use_id": null, "session_id": ""})
    );
    let input = json!({"command": "ls"});
    let allow: Value =
        serde_json::from_str(&claude.permission_answer("r1", true, &input, None).unwrap()).unwrap();
    assert_eq!(
        allow,
        json!({"type": "control_response", "response": {"subtype": "success", "request_id": "r1",
               "response": {"behavior": "allow", "updatedInput": {"command": "ls"}}}})
    );
    let deny: Value = serde_json::from_str(
        &claude
            .permission_answer("r2", false, &input, Some("not in CI"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(deny["response"]["request_id"], "r2");
    assert_eq!(
        deny["response"]["response"],
        json!({"behavior": "deny", "message": "not in CI"})
    );
    let deny: Value =
        serde_json::from_str(&claude.permission_answer("r3", false, &input, None).unwrap())
            .unwrap();
    assert_eq!(deny["response"]["response"]["behavior"], "deny");
    assert!(deny["response"]["response"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    let first: Value = serde_json::from_str(&claude.interrupt().unwrap()).unwrap();
    let second: Value = serde_json::from_str(&claude.interrupt().unwrap()).unwrap();
    assert_eq!(
        first,
        json!({"type": "control_request", "request_id": "drover_interrupt_1",
               "request": {"subtype": "interrupt"}})
    );
    assert_eq!(second["request_id"], "drover_interrupt_2");
    // Every line is one line.
    for line in [
        claude.user_message("a\nb").unwrap(),
        claude.interrupt().unwrap(),
    ] {
        assert!(!line.contains('\n'));
    }
}

#[test]
fn launch_fresh() {
    let spec = Claude::new().launch(&ctx(false)).unwrap();
    assert_eq!(spec.program, "claude");
    let expected = "-p --input-format stream-json --output-format stream-json --verbose \
        --session-id sess-1 --model claude-opus-5-5 --permission-mode acceptEdits \
        --permission-prompt-tool stdio";
    assert_eq!(spec.args.join(" "), expected);
    assert_eq!(spec.env_remove, vec!["CLAUDECODE"]);
    assert!(spec
        .env
        .contains(&("CLAUDE_CODE_ENTRYPOINT".into(), "drover".into())));
    assert!(spec
        .env
        .contains(&("DISABLE_AUTOUPDATER".into(), "1".into())));
    assert!(!spec.close_stdin);
    assert_eq!(spec.stdin_lines.len(), 1);
    let first: Value = serde_json::from_str(&spec.stdin_lines[0]).unwrap();
    assert_eq!(first["type"], "user");
    assert_eq!(first["message"]["content"], "fix \"the\" bug\nnow");
    assert!(Claude::new().multi_turn());
}

#[test]
fn launch_resume() {
    let mut c = ctx(true);
    c.model = None;
    c.permission_prompts = false;
    c.binary = Some("/opt/claude/bin/claude".into());
    let spec = Claude::new().launch(&c).unwrap();
    assert_eq!(spec.program, "/opt/claude/bin/claude");
    let expected = "-p --input-format stream-json --output-format stream-json --verbose \
        --resume sess-1 --permission-mode acceptEdits";
    assert_eq!(spec.args.join(" "), expected);
    assert!(!spec
        .args
        .iter()
        .any(|a| a == "--session-id" || a == "--permission-prompt-tool"));
    let first: Value = serde_json::from_str(&spec.stdin_lines[0]).unwrap();
    let text = first["message"]["content"].as_str().unwrap();
    assert!(text.contains("interrupted") && text.contains("Continue"));
}

#[test]
fn adapter_lookup() {
    assert_eq!(crate::adapter("claude").unwrap().name(), "claude");
    assert!(matches!(
        crate::adapter("gemini"),
        Err(AgentError::UnknownAgent(_))
    ));
}
