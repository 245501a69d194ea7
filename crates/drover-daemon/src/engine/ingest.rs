//! Agent output → events, exactly once.
//!
//! The shim appends the agent's stdout and stderr to files; this module reads them from the
//! offsets stored in the task row, turns complete lines into events through the adapter, and
//! stores events, offsets and derived task fields in one transaction. A crash before the commit
//! re-reads the same bytes; after it, never again.

use super::Engine;
use drover_agents::{excerpt, Adapter, AgentEvent};
use drover_store::{StoreError, TaskPatch, TaskRecord};
use drover_types::{EventKind, NewEvent, TaskState, Usage};
use serde_json::json;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Bytes read per step and file.
const CHUNK: usize = 1 << 20;
/// Lines longer than this are not parsed (they stay in the raw log); an error event says so.
const MAX_LINE: usize = 64 << 20;
/// stderr lines and tool results are cut to this many bytes in events.
const EXCERPT: usize = 4096;

/// Reads what is new; returns the task as stored afterwards and whether anything was new.
///
/// `known` is the task as the caller last saw it; when the log files have not grown past its
/// offsets, it is returned as is, without touching the store (the supervisor polls often).
pub async fn step(
    engine: &Engine,
    id: &str,
    adapter: &dyn Adapter,
    known: Option<TaskRecord>,
) -> Result<(TaskRecord, bool), StoreError> {
    step_inner(engine, id, adapter, known, false).await
}

/// [`step`] once the agent has exited: a last line without a newline is a line too.
pub async fn drain(engine: &Engine, id: &str, adapter: &dyn Adapter) -> Result<bool, StoreError> {
    Ok(step_inner(engine, id, adapter, None, true).await?.1)
}

async fn step_inner(
    engine: &Engine,
    id: &str,
    adapter: &dyn Adapter,
    known: Option<TaskRecord>,
    at_exit: bool,
) -> Result<(TaskRecord, bool), StoreError> {
    let files = engine.home.task(id);
    if let Some(task) = known {
        let len = |p: std::path::PathBuf| std::fs::metadata(p).map(|m| m.len() as i64).unwrap_or(0);
        if len(files.stdout()) <= task.stdout_offset && len(files.stderr()) <= task.stderr_offset {
            return Ok((task, false));
        }
    }
    let task = engine.store.get_task(id).await?;
    let (out, out_end) = read_lines(&files.stdout(), task.stdout_offset, at_exit);
    let (err, err_end) = read_lines(&files.stderr(), task.stderr_offset, at_exit);
    if out_end == task.stdout_offset && err_end == task.stderr_offset {
        return Ok((task, false));
    }
    let mut acc = Acc::new(&task);
    for line in &out {
        match line {
            Line::Text(l) => {
                for ev in adapter.parse_line(l) {
                    acc.add(ev);
                }
            }
            Line::Oversized(n) => acc.events.push(NewEvent::new(
                EventKind::Error,
                json!({ "message": format!("agent output line of {n} bytes not parsed; it is kept in the raw log") }),
            )),
        }
    }
    for line in &err {
        if let Line::Text(l) = line {
            acc.events.push(NewEvent::new(
                EventKind::Stderr,
                json!({ "line": excerpt(l, EXCERPT) }),
            ));
        }
    }
    let patch = acc
        .patch(&task)
        .activity_at(Some(drover_store::now()))
        .stdout_offset(Some(out_end))
        .stderr_offset(Some(err_end));
    let (task, _) = engine.update(id, None, patch, acc.events).await?;
    Ok((task, true))
}

enum Line {
    Text(String),
    Oversized(usize),
}

/// Complete lines from `offset`, and the offset just past the last one.
fn read_lines(path: &Path, offset: i64, at_exit: bool) -> (Vec<Line>, i64) {
    let Ok(mut f) = std::fs::File::open(path) else {
        return (vec![], offset);
    };
    if f.seek(SeekFrom::Start(offset.max(0) as u64)).is_err() {
        return (vec![], offset);
    }
    let mut buf = Vec::with_capacity(8192);
    if (&mut f).take(CHUNK as u64).read_to_end(&mut buf).is_err() {
        return (vec![], offset);
    }
    let mut lines = Vec::new();
    let mut consumed = 0usize;
    match buf.iter().rposition(|&b| b == b'\n') {
        Some(last) => {
            for raw in buf[..last].split(|&b| b == b'\n') {
                lines.push(Line::Text(String::from_utf8_lossy(raw).into_owned()));
            }
            consumed = last + 1;
        }
        None if buf.len() == CHUNK => {
            // One line longer than a chunk: read on to its end (or give up past MAX_LINE).
            let mut more = Vec::new();
            if (&mut f)
                .take((MAX_LINE - CHUNK) as u64)
                .read_to_end(&mut more)
                .is_ok()
            {
                buf.extend_from_slice(&more);
                if let Some(end) = buf.iter().position(|&b| b == b'\n') {
                    lines.push(Line::Text(
                        String::from_utf8_lossy(&buf[..end]).into_owned(),
                    ));
                    consumed = end + 1;
                } else if buf.len() >= MAX_LINE {
                    let skip = skip_to_newline(&mut f).map(|n| buf.len() + n);
                    if let Some(total) = skip {
                        lines.push(Line::Oversized(total));
                        consumed = total + 1;
                    }
                }
            }
        }
        None => {}
    }
    // After the agent exited nothing more comes: an unterminated last line is complete.
    if at_exit && consumed < buf.len() && buf.len() < CHUNK {
        lines.push(Line::Text(
            String::from_utf8_lossy(&buf[consumed..]).into_owned(),
        ));
        consumed = buf.len();
    }
    (lines, offset + consumed as i64)
}

/// Bytes up to (not including) the next newline, or `None` if the line is not complete yet.
fn skip_to_newline(f: &mut std::fs::File) -> Option<usize> {
    let mut n = 0;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let got = f.read(&mut buf).ok()?;
        if got == 0 {
            return None;
        }
        if let Some(p) = buf[..got].iter().position(|&b| b == b'\n') {
            return Some(n + p);
        }
        n += got;
    }
}

/// What one step learned, folded into events and a patch.
struct Acc {
    events: Vec<NewEvent>,
    session_id: Option<String>,
    pending: Option<serde_json::Value>,
    pending_changed: bool,
    result: Option<String>,
    cost: Option<f64>,
    usage: Usage,
    turns_done: i64,
}

impl Acc {
    fn new(task: &TaskRecord) -> Self {
        Acc {
            events: vec![],
            session_id: None,
            pending: task.pending_input.clone(),
            pending_changed: false,
            result: None,
            cost: None,
            usage: if task.metered_by == "gateway" {
                task.agent_usage.unwrap_or_default()
            } else {
                task.usage
            },
            turns_done: 0,
        }
    }

    fn add(&mut self, ev: AgentEvent) {
        let (kind, data) = match ev {
            AgentEvent::Session { session_id, model } => {
                self.session_id = Some(session_id.clone());
                let _ = model;
                return;
            }
            AgentEvent::Text { text } => (EventKind::Text, json!({ "text": text })),
            AgentEvent::ToolCall { id, name, input } => (
                EventKind::ToolCall,
                json!({ "id": id, "name": name, "input": input }),
            ),
            AgentEvent::ToolResult {
                id,
                content,
                is_error,
            } => {
                let content = match content {
                    serde_json::Value::String(s) => serde_json::Value::String(excerpt(&s, EXCERPT)),
                    other => {
                        let s = other.to_string();
                        if s.len() > EXCERPT {
                            serde_json::Value::String(excerpt(&s, EXCERPT))
                        } else {
                            other
                        }
                    }
                };
                (
                    EventKind::ToolResult,
                    json!({ "id": id, "content": content, "is_error": is_error }),
                )
            }
            AgentEvent::Usage { usage, model } => (
                EventKind::Usage,
                json!({
                    "source": "agent",
                    "model": model,
                    "input_tokens": usage.input_tokens,
                    "output_tokens": usage.output_tokens,
                    "cache_read_tokens": usage.cache_read_tokens,
                    "cache_write_tokens": usage.cache_write_tokens,
                }),
            ),
            AgentEvent::PermissionRequest {
                request_id,
                tool,
                input,
            } => {
                let req = json!({ "request_id": request_id, "tool": tool, "input": input });
                self.pending = Some(req.clone());
                self.pending_changed = true;
                (EventKind::NeedsInput, req)
            }
            AgentEvent::PermissionCancelled { request_id } => {
                if self
                    .pending
                    .as_ref()
                    .and_then(|p| p.get("request_id"))
                    .and_then(|v| v.as_str())
                    == Some(request_id.as_str())
                {
                    self.pending = None;
                    self.pending_changed = true;
                }
                (
                    EventKind::Input,
                    json!({ "request_id": request_id, "cancelled": true, "by": "agent" }),
                )
            }
            AgentEvent::TurnResult {
                result,
                is_error,
                subtype,
                stop_reason,
                cost_usd,
                usage,
                errors,
                session_id,
            } => {
                self.turns_done += 1;
                if result.is_some() {
                    self.result = result.clone();
                }
                if cost_usd.is_some() {
                    // Cumulative for the agent process: the latest one wins, never a sum.
                    self.cost = cost_usd;
                }
                if let Some(u) = usage {
                    // Per turn in streaming-input mode: these add up.
                    self.usage.input_tokens += u.input_tokens;
                    self.usage.output_tokens += u.output_tokens;
                    self.usage.cache_read_tokens += u.cache_read_tokens;
                    self.usage.cache_write_tokens += u.cache_write_tokens;
                }
                if let Some(s) = session_id {
                    self.session_id = Some(s);
                }
                (
                    EventKind::Result,
                    json!({
                        "result": result, "is_error": is_error, "subtype": subtype,
                        "stop_reason": stop_reason, "cost_usd": cost_usd, "errors": errors,
                        "usage": usage,
                    }),
                )
            }
            AgentEvent::Error { message, data } => (
                EventKind::Error,
                json!({ "message": message, "data": data }),
            ),
            AgentEvent::Unparsed { excerpt, reason } => (
                EventKind::Error,
                json!({ "message": "unreadable agent output line (kept in the raw log)", "reason": reason, "excerpt": excerpt }),
            ),
        };
        self.events.push(NewEvent::new(kind, data));
    }

    fn patch(&self, task: &TaskRecord) -> TaskPatch {
        let mut p = TaskPatch::new();
        if let Some(s) = &self.session_id {
            if task.session_id.as_deref() != Some(s) {
                p = p.session_id(Some(s.clone()));
            }
        }
        if self.pending_changed {
            p = p.pending_input(self.pending.as_ref());
            let wants = if self.pending.is_some() && task.permissions == "ask" {
                TaskState::NeedsInput
            } else {
                TaskState::Running
            };
            if matches!(task.state, TaskState::Running | TaskState::NeedsInput)
                && task.state != wants
            {
                p = p.state(wants, json!({}));
            }
        }
        if self.result.is_some() {
            p = p.result(self.result.clone());
        }
        // With the gateway, usage and cost come from the wire (see `gateway`); the agent's own
        // figures are kept beside them as a cross-check.
        let metered = task.metered_by == "gateway";
        if self.cost.is_some() {
            p = if metered {
                p.agent_cost_usd(self.cost)
            } else {
                p.cost_usd(self.cost)
            };
        }
        if self.turns_done > 0 {
            p = p.turns_done(Some(task.turns_done + self.turns_done));
            p = if metered {
                p.agent_usage(self.usage)
            } else {
                p.usage(self.usage)
            };
        }
        p
    }
}
