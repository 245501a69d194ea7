//! The OpenAI side of the fake: `POST /v1/chat/completions` and `POST /v1/responses`.
//!
//! Scripted turns map onto OpenAI shapes: a `text` block becomes assistant message text, a
//! `tool_use` block a function call (`tool_calls` in Chat Completions, a `function_call` output
//! item in the Responses API). Usage is sent as OpenAI reports it: `prompt_tokens` /
//! `input_tokens` = scripted input + cache read, of which `cached_tokens` = cache read;
//! `completion_tokens` / `output_tokens` = scripted output. OpenAI has no cache-write count, so
//! `cache_creation` is not sent (the log records it as 0). Chat streams carry the final usage
//! chunk (`choices: []`) only when the request asks for it with `stream_options.include_usage`.

use bytes::Bytes;
use serde_json::{json, Value};

use crate::request::{content_text, RequestInfo};
use crate::response::{error_json, new_id, Rendered, SseEvent};

/// Which wire format a request came in (and is answered) in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Anthropic,
    Chat,
    Responses,
}

/// Largest text or arguments piece per delta.
const CHUNK: usize = 24;

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Parses an OpenAI request body. The turn index counts assistant turns: assistant messages
/// (Chat), or runs of consecutive assistant/function_call/reasoning items (Responses).
pub fn parse_request(api: Api, body: &Value) -> RequestInfo {
    let tools = body
        .get("tools")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let (first_user_text, assistant_messages) = match api {
        Api::Anthropic => return RequestInfo::parse(body),
        Api::Chat => {
            let msgs = body
                .get("messages")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let first = msgs
                .iter()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
                .map(|m| content_text(m.get("content")))
                .unwrap_or_default();
            let assistants = msgs
                .iter()
                .filter(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))
                .count();
            (first, assistants)
        }
        Api::Responses => match body.get("input") {
            Some(Value::String(s)) => (s.clone(), 0),
            Some(Value::Array(items)) => responses_input(items),
            _ => (String::new(), 0),
        },
    };
    RequestInfo {
        model: body
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_string),
        stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
        first_user_text,
        assistant_messages,
        tools,
        has_tools: tools > 0,
        max_tokens: ["max_tokens", "max_completion_tokens", "max_output_tokens"]
            .iter()
            .find_map(|k| body.get(*k).and_then(Value::as_u64)),
        thinking_budget: None,
    }
}

fn responses_input(items: &[Value]) -> (String, usize) {
    let role = |i: &Value| i.get("role").and_then(Value::as_str).map(str::to_string);
    fn kind(i: &Value) -> &str {
        i.get("type").and_then(Value::as_str).unwrap_or("message")
    }
    let first = items
        .iter()
        .find(|i| kind(i) == "message" && role(i).as_deref() == Some("user"))
        .map(|i| content_text(i.get("content")))
        .unwrap_or_default();
    let mut turns = 0;
    let mut in_run = false;
    for item in items {
        let assistant = match kind(item) {
            "message" => role(item).as_deref() == Some("assistant"),
            "function_call" | "reasoning" => true,
            _ => false,
        };
        if assistant && !in_run {
            turns += 1;
        }
        in_run = assistant;
    }
    (first, turns)
}

/// Whether a Chat request asks for the final usage chunk.
pub fn include_usage(body: &Value) -> bool {
    body.pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// The error body of `api`.
pub fn error_body(api: Api, error_type: &str, message: &str, request_id: &str) -> Value {
    match api {
        Api::Anthropic => error_json(error_type, message, request_id),
        Api::Chat | Api::Responses => {
            json!({"error": {"message": message, "type": error_type, "param": null, "code": error_type}})
        }
    }
}

fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "tool_use" => "tool_calls",
        "max_tokens" => "length",
        _ => "stop",
    }
}

fn chunks(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in s.chars() {
        if !cur.is_empty() && cur.len() + c.len_utf8() > CHUNK {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn data_line(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

fn chat_usage(r: &Rendered) -> Value {
    let u = &r.usage;
    let prompt = u.input_tokens + u.cache_read_input_tokens;
    json!({"prompt_tokens": prompt, "completion_tokens": u.output_tokens,
           "total_tokens": prompt + u.output_tokens,
           "prompt_tokens_details": {"cached_tokens": u.cache_read_input_tokens},
           "completion_tokens_details": {"reasoning_tokens": 0}})
}

fn responses_usage(r: &Rendered) -> Value {
    let u = &r.usage;
    let input = u.input_tokens + u.cache_read_input_tokens;
    json!({"input_tokens": input, "input_tokens_details": {"cached_tokens": u.cache_read_input_tokens},
           "output_tokens": u.output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
           "total_tokens": input + u.output_tokens})
}

/// The streamed pieces of a response and the index just past the first content delta.
pub fn stream_pieces(api: Api, r: &Rendered, include_usage: bool) -> (Vec<Bytes>, usize) {
    match api {
        Api::Anthropic => {
            let (events, cut) = r.sse_events();
            (events.iter().map(SseEvent::to_bytes).collect(), cut)
        }
        Api::Chat => chat_stream(r, include_usage),
        Api::Responses => responses_stream(r),
    }
}

fn chat_stream(r: &Rendered, include_usage: bool) -> (Vec<Bytes>, usize) {
    let created = unix_now();
    let id = r.id.replace("msg_", "chatcmpl-");
    let chunk = |choices: Value, usage: Value| {
        data_line(
            &json!({"id": id, "object": "chat.completion.chunk", "created": created,
                          "model": r.model, "choices": choices, "usage": usage}),
        )
    };
    let delta = |d: Value| json!([{"index": 0, "delta": d, "finish_reason": null}]);
    let mut out = vec![chunk(
        delta(json!({"role": "assistant", "content": ""})),
        Value::Null,
    )];
    let mut cut = 0;
    let mut tool_index = 0;
    for block in &r.content {
        if block["type"] == "tool_use" {
            let head = json!({"tool_calls": [{"index": tool_index, "id": block["id"], "type": "function",
                "function": {"name": block["name"], "arguments": ""}}]});
            out.push(chunk(delta(head), Value::Null));
            for piece in chunks(&block["input"].to_string()) {
                let d = json!({"tool_calls": [{"index": tool_index, "function": {"arguments": piece}}]});
                out.push(chunk(delta(d), Value::Null));
                cut = if cut == 0 { out.len() } else { cut };
            }
            tool_index += 1;
        } else {
            for piece in chunks(block["text"].as_str().unwrap_or_default()) {
                out.push(chunk(delta(json!({"content": piece})), Value::Null));
                cut = if cut == 0 { out.len() } else { cut };
            }
        }
    }
    let fin = json!([{"index": 0, "delta": {}, "finish_reason": finish_reason(&r.stop_reason)}]);
    out.push(chunk(fin, Value::Null));
    if include_usage {
        out.push(chunk(json!([]), chat_usage(r)));
    }
    out.push(Bytes::from_static(b"data: [DONE]\n\n"));
    (out, if cut == 0 { 1 } else { cut })
}

/// A Responses API output item for a content block (final form).
fn output_item(block: &Value) -> Value {
    if block["type"] == "tool_use" {
        let id = block["id"].as_str().unwrap_or_default();
        json!({"id": id.replace("toolu_", "fc_"), "type": "function_call", "status": "completed",
               "call_id": id, "name": block["name"], "arguments": block["input"].to_string()})
    } else {
        json!({"id": new_id("msg"), "type": "message", "status": "completed", "role": "assistant",
               "content": [{"type": "output_text", "text": block["text"], "annotations": []}]})
    }
}

/// The Responses API `response` object.
fn response_object(r: &Rendered, status: &str, output: &[Value], usage: Value) -> Value {
    let incomplete = (status == "incomplete").then(|| json!({"reason": "max_output_tokens"}));
    json!({"id": r.id.replace("msg_", "resp_"), "object": "response", "created_at": unix_now(),
           "status": status, "model": r.model, "output": output, "usage": usage,
           "incomplete_details": incomplete, "error": null})
}

fn responses_stream(r: &Rendered) -> (Vec<Bytes>, usize) {
    let mut out = Vec::new();
    let mut seq = 0u64;
    let mut push = |out: &mut Vec<Bytes>, name: &'static str, mut data: Value| {
        data["type"] = json!(name);
        data["sequence_number"] = json!(seq);
        seq += 1;
        out.push(SseEvent::new(name, data).to_bytes());
    };
    let items: Vec<Value> = r.content.iter().map(output_item).collect();
    push(
        &mut out,
        "response.created",
        json!({"response": response_object(r, "in_progress", &[], Value::Null)}),
    );
    let mut cut = 0;
    for (i, (block, item)) in r.content.iter().zip(&items).enumerate() {
        let item_id = item["id"].clone();
        let mut started = item.clone();
        started["status"] = json!("in_progress");
        if block["type"] == "tool_use" {
            started["arguments"] = json!("");
            push(
                &mut out,
                "response.output_item.added",
                json!({"output_index": i, "item": started}),
            );
            for piece in chunks(&block["input"].to_string()) {
                let d = json!({"item_id": item_id, "output_index": i, "delta": piece});
                push(&mut out, "response.function_call_arguments.delta", d);
                cut = if cut == 0 { out.len() } else { cut };
            }
            let d = json!({"item_id": item_id, "output_index": i, "arguments": item["arguments"]});
            push(&mut out, "response.function_call_arguments.done", d);
        } else {
            started["content"] = json!([]);
            push(
                &mut out,
                "response.output_item.added",
                json!({"output_index": i, "item": started}),
            );
            let part = json!({"item_id": item_id, "output_index": i, "content_index": 0,
                              "part": {"type": "output_text", "text": "", "annotations": []}});
            push(&mut out, "response.content_part.added", part);
            let text = block["text"].as_str().unwrap_or_default();
            for piece in chunks(text) {
                let d = json!({"item_id": item_id, "output_index": i, "content_index": 0, "delta": piece});
                push(&mut out, "response.output_text.delta", d);
                cut = if cut == 0 { out.len() } else { cut };
            }
            let d =
                json!({"item_id": item_id, "output_index": i, "content_index": 0, "text": text});
            push(&mut out, "response.output_text.done", d);
        }
        push(
            &mut out,
            "response.output_item.done",
            json!({"output_index": i, "item": item}),
        );
    }
    let (name, status) = if r.stop_reason == "max_tokens" {
        ("response.incomplete", "incomplete")
    } else {
        ("response.completed", "completed")
    };
    let done = response_object(r, status, &items, responses_usage(r));
    push(&mut out, name, json!({ "response": done }));
    (out, if cut == 0 { 1 } else { cut })
}

/// The event that ends a 200 stream with an error.
pub fn stream_error_piece(api: Api, r: &Rendered, error_type: &str) -> Bytes {
    let msg = "stream error (fake provider)";
    match api {
        Api::Anthropic => {
            SseEvent::new("error", error_json(error_type, msg, &new_id("req"))).to_bytes()
        }
        Api::Chat => data_line(&error_body(api, error_type, msg, "")),
        Api::Responses => {
            let mut resp = response_object(r, "failed", &[], Value::Null);
            resp["error"] = json!({"code": error_type, "message": msg});
            SseEvent::new(
                "response.failed",
                json!({"type": "response.failed", "response": resp}),
            )
            .to_bytes()
        }
    }
}

/// The non-streaming body of `api`.
pub fn json_body(api: Api, r: &Rendered) -> String {
    match api {
        Api::Anthropic => r.message_json().to_string(),
        Api::Chat => {
            let text: String = r
                .content
                .iter()
                .filter_map(|b| b["text"].as_str())
                .collect();
            let calls: Vec<Value> = r
                .content
                .iter()
                .filter(|b| b["type"] == "tool_use")
                .map(|b| {
                    json!({"id": b["id"], "type": "function",
                    "function": {"name": b["name"], "arguments": b["input"].to_string()}})
                })
                .collect();
            let mut message = json!({"role": "assistant",
                "content": if text.is_empty() { Value::Null } else { json!(text) }});
            if !calls.is_empty() {
                message["tool_calls"] = json!(calls);
            }
            json!({"id": r.id.replace("msg_", "chatcmpl-"), "object": "chat.completion",
                   "created": unix_now(), "model": r.model,
                   "choices": [{"index": 0, "message": message,
                                "finish_reason": finish_reason(&r.stop_reason)}],
                   "usage": chat_usage(r)})
            .to_string()
        }
        Api::Responses => {
            let items: Vec<Value> = r.content.iter().map(output_item).collect();
            let status = if r.stop_reason == "max_tokens" {
                "incomplete"
            } else {
                "completed"
            };
            response_object(r, status, &items, responses_usage(r)).to_string()
        }
    }
}
