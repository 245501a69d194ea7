//! Agent output → events, exactly once.
//!
//! The shim appends the agent's stdout and stderr to files; this module reads them from the
//! offsets stored in the task row, turns complete lines into events through the adapter, and
//! stores events, offsets and derived task fields in one transaction. A crash before the commit
//! re-reads the same bytes; after it, never again.

use super::Engine;
use drover_agents::{Adapter, AgentEvent, LineNeed};
use drover_store::{StoreError, TaskPatch, TaskRecord};
use drover_types::text::{excerpt, Limit};
use drover_types::{EventKind, MeteredBy, NewEvent, PermissionPolicy, TaskState, Usage};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

/// Bytes of complete lines handled per step and file (one longer line is still handled whole:
/// it is scanned, never held in memory beyond what is kept of it).
const CHUNK: u64 = 1 << 20;
/// An event holds at most this much of an output line's text; the whole line stays in the raw
/// log and the event's `raw: {stream, offset, len}` says where.
pub const LINE_EXCERPT: usize = 16 << 10;
/// An event's JSON is cut down past this size (e.g. a huge tool call input).
const EVENT_MAX: usize = 64 << 10;
/// A pending permission request is stored in at most about this many bytes.
const PENDING_MAX: usize = 8 << 10;
/// Long string values of a pending request's input are cut to this many bytes.
const PENDING_EXCERPT: usize = 1024;
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
        // Two stat calls: bounded, fine on the async worker (the reads go to spawn_blocking).
        let len = |p: std::path::PathBuf| std::fs::metadata(p).map(|m| m.len() as i64).unwrap_or(0);
        if len(files.stdout()) <= task.stdout_offset && len(files.stderr()) <= task.stderr_offset {
            return Ok((task, false));
        }
    }
    let task = engine.store.get_task(id).await?;
    let need = adapter.line_need();
    let keep = match need {
        LineNeed::Excerpt => LINE_EXCERPT,
        LineNeed::Whole { max } => max.max(LINE_EXCERPT),
    };
    let (out_path, err_path) = (files.stdout(), files.stderr());
    let (so, se) = (task.stdout_offset, task.stderr_offset);
    // Scanning a long line is blocking file I/O: keep it off the async workers.
    let read = tokio::task::spawn_blocking(move || {
        (
            read_lines(&out_path, so, keep, at_exit),
            read_lines(&err_path, se, EXCERPT, at_exit),
        )
    })
    .await;
    let Ok(((out, out_end), (err, err_end))) = read else {
        return Ok((task, false));
    };
    if out_end == task.stdout_offset && err_end == task.stderr_offset {
        return partial_output(engine, &files, task).await;
    }
    let mut acc = Acc::new(&task);
    for line in &out {
        line_events(&mut acc, adapter, need, line);
    }
    for line in &err {
        let text = match line.text() {
            Some(text) => json!({ "line": excerpt(&text, Limit::Bytes(EXCERPT)) }),
            None => binary(line, "line"),
        };
        acc.events
            .push(NewEvent::new(EventKind::Stderr, line.mark(text, EXCERPT)));
    }
    let patch = acc
        .patch(&task)
        .activity_at(Some(drover_store::now()))
        .stdout_offset(Some(out_end))
        .stderr_offset(Some(err_end));
    let (task, _) = engine.update(id, None, patch, acc.events).await?;
    Ok((task, true))
}

/// Output with no newline yet (a progress bar, a long line being written) is activity too: the
/// stall clock must not end a task that is printing. Stamps `activity_at` from the logs' last
/// write, at most once a second.
async fn partial_output(
    engine: &Engine,
    files: &drover_shim::TaskFiles,
    task: TaskRecord,
) -> Result<(TaskRecord, bool), StoreError> {
    // Two stat calls: bounded, fine on the async worker.
    let written = [files.stdout(), files.stderr()]
        .into_iter()
        .filter_map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .max()
        .map(chrono::DateTime::<chrono::Utc>::from);
    let seen = task
        .activity_at
        .as_deref()
        .and_then(drover_store::record::parse_ts);
    let stale = match (written, seen) {
        (Some(w), Some(s)) => w - s > chrono::Duration::seconds(1),
        (Some(_), None) => true,
        (None, _) => false,
    };
    if !stale || !task.state.is_active() {
        return Ok((task, false));
    }
    let patch = drover_store::TaskPatch::new().activity_at(Some(drover_store::now()));
    let (task, _) = engine.update(&task.id, None, patch, vec![]).await?;
    Ok((task, false))
}

/// The events of one stdout line.
fn line_events(acc: &mut Acc, adapter: &dyn Adapter, need: LineNeed, line: &Line) {
    let Some(text) = line.text() else {
        let (kind, key) = match need {
            LineNeed::Excerpt => (EventKind::Text, "text"),
            LineNeed::Whole { .. } => (EventKind::Error, "message"),
        };
        acc.events.push(NewEvent::new(kind, binary(line, key)));
        return;
    };
    if !line.whole() {
        if let LineNeed::Whole { max } = need {
            let message = format!(
                "agent output line of {} bytes is over the {} MiB limit for one line; not parsed (kept in the raw log)",
                line.len,
                max >> 20
            );
            let data = json!({ "message": message, "excerpt": excerpt(&text, Limit::Bytes(1024)) });
            acc.events
                .push(NewEvent::new(EventKind::Error, line.mark(data, 1024)));
            return;
        }
    }
    // A plain-text agent's long line: its excerpt, marked as cut.
    let text = if line.whole() { text } else { text + "…" };
    for ev in adapter.parse_line(&text) {
        acc.add(ev, Some(line));
    }
}

/// What an event says about a line that is not text (NUL bytes or invalid UTF-8): its size and
/// where it is (under `key`, the field the event kind shows), never the bytes.
fn binary(line: &Line, key: &str) -> Value {
    let mut data = json!({ "binary": true, "raw": line.raw() });
    if let Some(o) = data.as_object_mut() {
        o.insert(
            key.to_string(),
            Value::String(format!(
                "[binary output: {} bytes, kept in the raw log]",
                line.len
            )),
        );
    }
    data
}

/// Which raw log a line is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

/// One line of a raw log: where it is, how long it is, and what ingest kept of it.
struct Line {
    stream: Stream,
    /// Byte offset of the line's first byte in its log.
    offset: u64,
    /// Its length in bytes, without the newline.
    len: u64,
    /// The whole line when it fits the keep limit, else its first bytes.
    head: Vec<u8>,
    /// A NUL byte anywhere in the line.
    nul: bool,
    /// `head` is full (or was cut down to an excerpt): later bytes are only counted.
    capped: bool,
}

impl Line {
    fn at(stream: Stream, offset: u64) -> Line {
        Line {
            stream,
            offset,
            len: 0,
            head: Vec::new(),
            nul: false,
            capped: false,
        }
    }

    fn take(&mut self, part: &[u8], keep: usize) {
        self.len += part.len() as u64;
        if !self.capped {
            let room = keep.saturating_sub(self.head.len()).min(part.len());
            self.head.extend_from_slice(&part[..room]);
            self.capped = self.head.len() >= keep;
        }
        self.nul = self.nul || memchr::memchr(0, part).is_some();
    }

    fn whole(&self) -> bool {
        self.head.len() as u64 == self.len
    }

    /// The kept text, or `None` for binary output (a NUL byte, or bytes that are not UTF-8 —
    /// other than a character cut in half at the end of a kept excerpt).
    fn text(&self) -> Option<String> {
        if self.nul {
            return None;
        }
        match std::str::from_utf8(&self.head) {
            Ok(s) => Some(s.to_string()),
            Err(e) if e.error_len().is_none() && !self.whole() => {
                Some(String::from_utf8_lossy(&self.head[..e.valid_up_to()]).into_owned())
            }
            Err(_) => None,
        }
    }

    fn raw(&self) -> Value {
        let stream = match self.stream {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        };
        json!({ "stream": stream, "offset": self.offset, "len": self.len })
    }

    /// Adds `raw` (and `truncated` when the event does not hold the whole line) to an event of
    /// a line longer than `shown`.
    fn mark(&self, mut data: Value, shown: usize) -> Value {
        if self.len as usize > shown {
            if let Some(o) = data.as_object_mut() {
                o.entry("raw").or_insert_with(|| self.raw());
                o.insert("truncated".into(), Value::Bool(true));
            }
        }
        data
    }
}

/// A line still being written, longer than what ingest keeps of it: where its scan stopped, so
/// the next step goes on from there instead of re-reading it (an endless line costs each step
/// only its new bytes). Keyed by log path; an entry is dropped when its line ends.
struct Partial {
    scanned: u64,
    line: Line,
}

static PARTIAL: LazyLock<Mutex<HashMap<PathBuf, Partial>>> = LazyLock::new(Default::default);

fn partials() -> std::sync::MutexGuard<'static, HashMap<PathBuf, Partial>> {
    PARTIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Complete lines from `offset` (at most about [`CHUNK`] bytes of them, but always one whole
/// line however long), and the offset just past the last one. Reads in 64 KiB blocks; of each
/// line only its first `keep` bytes are held.
fn read_lines(path: &Path, offset: i64, keep: usize, at_exit: bool) -> (Vec<Line>, i64) {
    let stream = if path.file_name().and_then(|n| n.to_str()) == Some("stderr.log") {
        Stream::Stderr
    } else {
        Stream::Stdout
    };
    let start = offset.max(0) as u64;
    let Ok(mut f) = std::fs::File::open(path) else {
        return (vec![], offset);
    };
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    let (mut cur, from) = match partials().remove(path) {
        Some(p) if p.line.offset == start && p.scanned <= size => (p.line, p.scanned),
        _ => (Line::at(stream, start), start),
    };
    if f.seek(SeekFrom::Start(from)).is_err() {
        return (vec![], offset);
    }
    let mut r = BufReader::with_capacity(64 << 10, f);
    let mut lines = Vec::new();
    let mut end = start;
    loop {
        let (used, done) = match r.fill_buf() {
            Ok([]) => {
                // After the agent exited nothing more comes: an unterminated last line is
                // complete.
                if at_exit && cur.len > 0 {
                    end = cur.offset + cur.len;
                    lines.push(std::mem::replace(&mut cur, Line::at(stream, end)));
                }
                break;
            }
            Ok(buf) => match memchr::memchr(b'\n', buf) {
                Some(i) => {
                    cur.take(&buf[..i], keep);
                    (i + 1, true)
                }
                None => {
                    cur.take(buf, keep);
                    (buf.len(), false)
                }
            },
            Err(_) => break,
        };
        r.consume(used);
        if done {
            end = cur.offset + cur.len + 1;
            lines.push(std::mem::replace(&mut cur, Line::at(stream, end)));
            if end - start >= CHUNK {
                break;
            }
        }
    }
    if cur.len as usize > keep.max(CHUNK as usize) {
        // Only an excerpt of it will be used: keep no more than that while it grows.
        cur.head.truncate(LINE_EXCERPT);
        cur.capped = true;
        let scanned = cur.offset + cur.len;
        partials().insert(path.to_path_buf(), Partial { scanned, line: cur });
    }
    (lines, end as i64)
}

/// Cuts an event's JSON down to about [`EVENT_MAX`] bytes: long strings first, then the whole.
/// Returns whether anything was cut.
fn bound(data: &mut Value) -> bool {
    if data.to_string().len() <= EVENT_MAX {
        return false;
    }
    cut_strings(data, EXCERPT);
    let s = data.to_string();
    if s.len() > EVENT_MAX {
        *data = json!({ "excerpt": excerpt(&s, Limit::Bytes(EXCERPT)) });
    }
    true
}

fn cut_strings(v: &mut Value, max: usize) {
    match v {
        Value::String(s) if s.len() > max => *s = excerpt(s, Limit::Bytes(max)),
        Value::Array(a) => {
            a.truncate(64);
            a.iter_mut().for_each(|x| cut_strings(x, max));
        }
        Value::Object(o) => o.values_mut().for_each(|x| cut_strings(x, max)),
        _ => {}
    }
}

/// What is stored of a permission request in `pending_input` (and shown in every task read):
/// at most about [`PENDING_MAX`] bytes. Longer string values of `input` are cut to excerpts,
/// and `truncated: true` says the input is not whole (an answer then never sends it back).
fn pending_form(req: &Value) -> Value {
    let mut p = req.clone();
    if p.to_string().len() <= PENDING_MAX {
        return p;
    }
    if let Some(o) = p.as_object_mut() {
        if let Some(input) = o.get_mut("input") {
            cut_strings(input, PENDING_EXCERPT);
            let s = input.to_string();
            if s.len() > PENDING_MAX {
                *input = json!({ "excerpt": excerpt(&s, Limit::Bytes(PENDING_EXCERPT)) });
            }
        }
        for k in ["request_id", "tool"] {
            if let Some(Value::String(s)) = o.get_mut(k) {
                if s.len() > 256 {
                    *s = excerpt(s, Limit::Bytes(256));
                }
            }
        }
        o.insert("truncated".into(), Value::Bool(true));
    }
    p
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
            usage: if task.metered_by == MeteredBy::Gateway {
                task.agent_usage.unwrap_or_default()
            } else {
                task.usage
            },
            turns_done: 0,
        }
    }

    /// Folds one agent event in; `line` is the output line it came from (events of a line
    /// longer than [`LINE_EXCERPT`] are bounded and point at the line in the raw log).
    fn add(&mut self, ev: AgentEvent, line: Option<&Line>) {
        let Some((kind, mut data)) = self.fold(ev) else {
            return;
        };
        if let (EventKind::NeedsInput, Some(line)) = (kind, line) {
            // A cut request points at its whole line in the raw log.
            if let Some(o) = self.pending.as_mut().and_then(|p| p.as_object_mut()) {
                if o.contains_key("truncated") || !line.whole() {
                    o.insert("raw".into(), line.raw());
                    o.insert("truncated".into(), Value::Bool(true));
                }
            }
        }
        if let Some(line) = line.filter(|l| l.len as usize > LINE_EXCERPT) {
            let cut = bound(&mut data) || !line.whole();
            if let Some(o) = data.as_object_mut() {
                o.insert("raw".into(), line.raw());
                if cut {
                    o.insert("truncated".into(), Value::Bool(true));
                }
            }
        }
        self.events.push(NewEvent::new(kind, data));
    }

    fn fold(&mut self, ev: AgentEvent) -> Option<(EventKind, Value)> {
        let folded = match ev {
            AgentEvent::Session { session_id, .. } => {
                self.session_id = Some(session_id);
                return None;
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
                    serde_json::Value::String(s) => {
                        serde_json::Value::String(excerpt(&s, Limit::Bytes(EXCERPT)))
                    }
                    other => {
                        let s = other.to_string();
                        if s.len() > EXCERPT {
                            serde_json::Value::String(excerpt(&s, Limit::Bytes(EXCERPT)))
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
                self.pending = Some(pending_form(&req));
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
        Some(folded)
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
            let wants = if self.pending.is_some() && task.permissions == PermissionPolicy::Ask {
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
        let metered = task.metered_by == MeteredBy::Gateway;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn log(bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stdout.log");
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    #[test]
    fn a_huge_permission_request_is_kept_small_and_marked() {
        let small = json!({"request_id": "r1", "tool": "Bash", "input": {"command": "ls"}});
        assert_eq!(pending_form(&small), small, "a small request is kept whole");
        let big = json!({"request_id": "r2", "tool": "Bash",
            "input": {"command": "x".repeat(1 << 20), "many": vec!["y".repeat(900); 500]}});
        let p = pending_form(&big);
        assert!(
            p.to_string().len() <= PENDING_MAX + 256,
            "{} bytes",
            p.to_string().len()
        );
        assert_eq!(p["truncated"], true);
        assert_eq!(p["request_id"], "r2");
        assert_eq!(p["tool"], "Bash");
    }

    #[test]
    fn long_line_is_kept_as_excerpt_and_range() {
        let mut bytes = b"a\n".to_vec();
        bytes.extend(std::iter::repeat_n(b'x', 3 << 20));
        bytes.extend(b"\nb\n");
        let (_d, path) = log(&bytes);
        let (lines, end) = read_lines(&path, 0, LINE_EXCERPT, false);
        assert_eq!(
            lines.len(),
            2,
            "the chunk budget ends the step after the long line"
        );
        assert_eq!(lines[0].head, b"a");
        let big = &lines[1];
        assert_eq!((big.offset, big.len), (2, 3 << 20));
        assert_eq!(big.head.len(), LINE_EXCERPT);
        assert!(!big.whole());
        assert_eq!(end as u64, 2 + (3 << 20) + 1);
        assert_eq!(
            big.raw(),
            json!({"stream": "stdout", "offset": 2, "len": 3 << 20})
        );
        let (rest, end2) = read_lines(&path, end, LINE_EXCERPT, false);
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].head, b"b");
        assert_eq!(end2 as usize, bytes.len());
    }

    #[test]
    fn a_line_still_being_written_is_scanned_once() {
        let (_d, path) = log(b"");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        use std::io::Write;
        f.write_all(b"a\n").unwrap();
        f.write_all(&vec![b'x'; 2 << 20]).unwrap();
        let (lines, end) = read_lines(&path, 0, LINE_EXCERPT, false);
        assert_eq!((lines.len(), end), (1, 2));
        // Rewrite the scanned part: a resumed scan does not read it again.
        let mut w = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        w.seek(SeekFrom::Start(2)).unwrap();
        w.write_all(b"yyyy").unwrap();
        f.write_all(&vec![b'x'; 1 << 20]).unwrap();
        f.write_all(b"\nb\n").unwrap();
        let (lines, end) = read_lines(&path, 2, LINE_EXCERPT, false);
        assert_eq!(
            lines.len(),
            1,
            "the chunk budget ends the step after the long line"
        );
        assert_eq!(lines[0].len, 3 << 20);
        assert!(lines[0].head.starts_with(b"xxxx"), "scanned twice");
        assert_eq!(end as u64, 2 + (3 << 20) + 1);
        assert!(
            !partials().contains_key(&path),
            "a finished line leaves no state"
        );
    }

    #[test]
    fn unterminated_line_counts_only_at_exit() {
        let mut bytes = b"done\n".to_vec();
        bytes.extend(vec![0u8; 100_000]);
        let (_d, path) = log(&bytes);
        let (lines, end) = read_lines(&path, 0, LINE_EXCERPT, false);
        assert_eq!((lines.len(), end), (1, 5));
        let (lines, end) = read_lines(&path, end, LINE_EXCERPT, true);
        assert_eq!(lines.len(), 1);
        assert_eq!(end as usize, bytes.len());
        let nul = &lines[0];
        assert!(nul.nul);
        assert_eq!(nul.text(), None, "NUL bytes are binary");
        let data = binary(nul, "text");
        assert!(data.to_string().len() < 200, "{data}");
        assert_eq!(data["raw"]["len"], 100_000);
        assert_eq!(data["raw"]["offset"], 5);
    }

    #[test]
    fn invalid_utf8_is_binary_but_a_cut_character_is_not() {
        let (_d, path) = log(b"ok \xff\xfe bad\n");
        let (lines, _) = read_lines(&path, 0, LINE_EXCERPT, false);
        assert_eq!(lines[0].text(), None);
        // "é" is two bytes; keeping 2 bytes of "aé…" cuts it in half: still text.
        let (_d, path) = log("aé and more\n".as_bytes());
        let (lines, _) = read_lines(&path, 0, 2, false);
        assert_eq!(lines[0].text().as_deref(), Some("a"));
    }

    fn acc() -> Acc {
        Acc {
            events: vec![],
            session_id: None,
            pending: None,
            pending_changed: false,
            result: None,
            cost: None,
            usage: Usage::default(),
            turns_done: 0,
        }
    }

    #[test]
    fn json_lines_are_parsed_whole_up_to_the_limit_and_refused_above_it() {
        let claude = drover_agents::adapter("claude").unwrap();
        let text = "z".repeat(200 << 10);
        let line = json!({"type": "assistant", "message": {"id": "m1", "role": "assistant",
            "content": [{"type": "text", "text": text}]}})
        .to_string();
        let (_d, path) = log(format!("{line}\n{line}\n").as_bytes());
        // The first line fits the limit: parsed, its event bounded and pointing at the line.
        let (lines, _) = read_lines(&path, 0, line.len(), false);
        let mut a = acc();
        let need = LineNeed::Whole { max: line.len() };
        line_events(&mut a, claude.as_ref(), need, &lines[0]);
        let ev = a.events.iter().find(|e| e.kind == EventKind::Text).unwrap();
        assert!(
            ev.data.to_string().len() <= EVENT_MAX,
            "{}",
            ev.data.to_string().len()
        );
        assert_eq!(ev.data["truncated"], true);
        assert_eq!(
            ev.data["raw"],
            json!({"stream": "stdout", "offset": 0, "len": line.len()})
        );
        // Over the limit: one error event with an excerpt and the range, nothing parsed.
        let (lines, _) = read_lines(&path, 0, 4096, false);
        let mut a = acc();
        line_events(
            &mut a,
            claude.as_ref(),
            LineNeed::Whole { max: 4096 },
            &lines[1],
        );
        assert_eq!(a.events.len(), 1);
        let ev = &a.events[0];
        assert_eq!(ev.kind, EventKind::Error);
        assert!(ev.data["message"].as_str().unwrap().contains("not parsed"));
        assert_eq!(ev.data["raw"]["offset"], line.len() + 1);
        assert!(ev.data.to_string().len() < 2048);
    }

    #[test]
    fn big_events_are_bounded() {
        let mut data = json!({ "id": "t", "input": { "content": "y".repeat(1 << 20) } });
        assert!(bound(&mut data));
        assert!(data.to_string().len() <= EVENT_MAX);
        assert_eq!(data["id"], "t");
        let mut small = json!({ "text": "hi" });
        assert!(!bound(&mut small));
    }
}
