#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;

use crate::request::RequestInfo;
use crate::response::Rendered;
use crate::scenario::{DropKind, Failure, ScenarioSet};

const SET: &str = r#"{
  "scenarios": [
    {"name": "hello", "match": "HELLO", "turns": [
      {"content": [{"type": "tool_use", "name": "Write", "input": {"file_path": "HELLO.txt", "content": "hi"}}]},
      {"content": [{"type": "text", "text": "all done"}], "stop_reason": "max_tokens"}
    ]},
    {"name": "loop", "match": "FOREVER", "turns": [
      {"content": [{"type": "text", "text": "first"}]},
      {"content": [{"type": "tool_use", "name": "Bash", "input": {"command": "true"}}], "repeat": true}
    ]},
    {"name": "after", "match": "AFTER", "turns": [], "after_last": {"content": [{"type": "text", "text": "bye"}]}},
    {"name": "default", "turns": [{"content": [{"type": "text", "text": "default reply"}]}]}
  ]
}"#;

fn req(first: serde_json::Value, assistants: usize) -> RequestInfo {
    let mut messages = vec![json!({"role": "user", "content": first})];
    for _ in 0..assistants {
        messages.push(json!({"role": "assistant", "content": [{"type": "text", "text": "x"}]}));
        messages.push(json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]}));
    }
    RequestInfo::parse(
        &json!({"model": "m", "stream": true, "messages": messages, "tools": [{"name": "Write"}]}),
    )
}

fn first_text(set: &ScenarioSet, r: &RequestInfo) -> String {
    let plan = set.plan(r);
    let turn = plan.turn.unwrap();
    match &turn.content[0] {
        crate::Block::Text { text } => text.clone(),
        crate::Block::ToolUse { name, .. } => format!("tool:{name}"),
    }
}

#[test]
fn selects_by_first_user_message_and_falls_back_to_default() {
    let set = ScenarioSet::from_json(SET).unwrap();
    assert_eq!(set.select("please say HELLO").unwrap().name, "hello");
    assert_eq!(set.select("nothing").unwrap().name, "default");
    // Text blocks of the first user message are searched, later messages are not.
    let r = req(
        json!([{"type": "text", "text": "<reminder>"}, {"type": "text", "text": "do FOREVER"}]),
        0,
    );
    assert_eq!(set.plan(&r).scenario.unwrap().name, "loop");
    let mut r2 = req(json!("plain"), 0);
    r2.first_user_text = "plain".into();
    assert_eq!(set.plan(&r2).scenario.unwrap().name, "default");
}

#[test]
fn turn_index_is_number_of_assistant_messages() {
    let set = ScenarioSet::from_json(SET).unwrap();
    assert_eq!(first_text(&set, &req(json!("HELLO"), 0)), "tool:Write");
    assert_eq!(first_text(&set, &req(json!("HELLO"), 1)), "all done");
    assert_eq!(first_text(&set, &req(json!("HELLO"), 2)), "done");
    assert_eq!(first_text(&set, &req(json!("AFTER"), 0)), "bye");
    assert_eq!(first_text(&set, &req(json!("FOREVER"), 0)), "first");
    for n in 1..5 {
        assert_eq!(first_text(&set, &req(json!("FOREVER"), n)), "tool:Bash");
    }
}

#[test]
fn stop_reason_defaults_and_overrides() {
    let set = ScenarioSet::from_json(SET).unwrap();
    let t0 = set.plan(&req(json!("HELLO"), 0)).turn.unwrap();
    assert_eq!(t0.effective_stop_reason(), "tool_use");
    let t1 = set.plan(&req(json!("HELLO"), 1)).turn.unwrap();
    assert_eq!(t1.effective_stop_reason(), "max_tokens");
    let t2 = set.plan(&req(json!("HELLO"), 2)).turn.unwrap();
    assert_eq!(t2.effective_stop_reason(), "end_turn");
}

#[test]
fn request_parsing() {
    let r = RequestInfo::parse(
        &json!({"model": "claude-x", "max_tokens": 32000, "messages": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "a"}]}),
    );
    assert_eq!(r.model.as_deref(), Some("claude-x"));
    assert!(!r.stream && !r.has_tools);
    assert_eq!(r.assistant_messages, 1);
    assert_eq!(r.max_tokens, Some(32000));
    assert_eq!(
        r.conversation_hash(),
        req(json!("hi"), 3).conversation_hash()
    );
}

#[test]
fn failures_validate() {
    let ok = r#"{"scenarios":[{"name":"a","turns":[{"fail_first":[
        {"status":429,"retry_after":2},{"drop":"before_headers"},{"drop":"mid_stream"},{"stream_error":"overloaded_error"}]}]}]}"#;
    let set = ScenarioSet::from_json(ok).unwrap();
    let f: Vec<Failure> = set.scenarios[0].turns[0]
        .fail_first
        .iter()
        .map(|f| f.to_failure().unwrap())
        .collect();
    assert!(
        matches!(&f[0], Failure::Status { status: 429, retry_after: Some(2), error_type, .. } if error_type == "rate_limit_error")
    );
    assert_eq!(f[1], Failure::Drop(DropKind::BeforeHeaders));
    assert_eq!(f[2], Failure::Drop(DropKind::MidStream));
    let bad = r#"{"scenarios":[{"name":"a","turns":[{"fail_first":[{"status":429,"drop":"mid_stream"}]}]}]}"#;
    assert!(ScenarioSet::from_json(bad).is_err());
    let dup = r#"{"scenarios":[{"name":"a"},{"name":"a"}]}"#;
    assert!(ScenarioSet::from_json(dup).is_err());
    let unknown = r#"{"scenarios":[{"name":"a","turns":[{"contnt":[]}]}]}"#;
    assert!(ScenarioSet::from_json(unknown).is_err());
}

#[test]
fn sse_sequence_and_cut_point() {
    let set = ScenarioSet::from_json(SET).unwrap();
    let turn = set.plan(&req(json!("HELLO"), 0)).turn.unwrap();
    let r = Rendered::new(&turn, "claude-sonnet-4-5");
    let (events, cut) = r.sse_events();
    let names: Vec<_> = events.iter().map(|e| e.event).collect();
    assert_eq!(names[..3], ["message_start", "ping", "content_block_start"]);
    assert_eq!(names[names.len() - 2..], ["message_delta", "message_stop"]);
    assert_eq!(names[cut - 1], "content_block_delta");
    assert_eq!(cut, 4);
    // The input_json deltas reassemble to the scripted input.
    let json: String = events
        .iter()
        .filter_map(|e| e.data["delta"]["partial_json"].as_str())
        .collect();
    let input: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(input["file_path"], "HELLO.txt");
    let delta = &events[events.len() - 2].data;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(delta["usage"]["output_tokens"], 20);
    let msg = r.message_json();
    assert!(msg["content"][0]["id"]
        .as_str()
        .unwrap()
        .starts_with("toolu_"));
}

#[test]
fn resume_placeholder_does_not_count_as_a_turn() {
    let r = RequestInfo::parse(&json!({"tools": [{"name": "Write"}], "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "Write", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]},
        {"role": "assistant", "content": [{"type": "text", "text": crate::request::RESUME_PLACEHOLDER}]},
        {"role": "user", "content": "go on"}]}));
    assert_eq!(r.assistant_messages, 1);
}

#[test]
fn readme_example_is_valid() {
    let readme = include_str!("../README.md");
    let start = readme.find("## Scenario file").unwrap();
    let block = &readme[start..];
    let json_start = block.find("```json\n").unwrap() + "```json\n".len();
    let json_end = block[json_start..].find("```").unwrap();
    let set = ScenarioSet::from_json(&block[json_start..json_start + json_end]).unwrap();
    assert_eq!(set.scenarios.len(), 4);
}
