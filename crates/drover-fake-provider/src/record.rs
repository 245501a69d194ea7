//! The record of what the fake provider served, and the per-conversation attempt counters.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::scenario::Usage;

/// How a request was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerKind {
    /// A complete answer (stream or JSON).
    Ok,
    /// An HTTP error answer (scripted failure, 401, 400, 404).
    Error,
    /// The connection was closed before any response header.
    DropBeforeHeaders,
    /// The stream was cut after `message_start` and part of a block.
    DropMidStream,
    /// A 200 stream that ended with `event: error`.
    StreamError,
    /// The client went away before the answer was sent (e.g. during `delay_ms`); status 0.
    ClientClosed,
}

/// One served request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// 1-based order of arrival.
    pub seq: u64,
    /// Milliseconds since the Unix epoch when the request arrived.
    pub at_ms: u64,
    pub method: String,
    /// Path and query, e.g. `/v1/messages?beta=true`.
    pub path: String,
    pub scenario: Option<String>,
    pub turn: Option<usize>,
    /// 1-based attempt at this (scenario, turn, conversation).
    pub attempt: Option<u32>,
    pub model: Option<String>,
    pub stream: bool,
    /// A request without `tools` (title/summary side calls): does not advance the script.
    pub side: bool,
    /// Number of tools the request offered.
    pub tools: usize,
    pub max_tokens: Option<u64>,
    /// The request's `thinking.budget_tokens` (Anthropic), if it had one.
    #[serde(default)]
    pub thinking_budget: Option<u64>,
    /// HTTP status sent; 0 when the connection was dropped before headers.
    pub status: u16,
    pub outcome: AnswerKind,
    pub stop_reason: Option<String>,
    /// Usage sent to the client (zero when no message was sent).
    pub usage: Usage,
    /// Names of the tool_use blocks sent.
    pub tool_uses: Vec<String>,
    /// The key the request carried (`x-api-key`, else the `Authorization: Bearer` token), so
    /// a test can check which key reached the provider. A fake provider only ever sees test keys.
    pub api_key: Option<String>,
}

impl RequestRecord {
    pub fn new(method: &str, path: &str) -> Self {
        RequestRecord {
            seq: 0,
            at_ms: now_ms(),
            method: method.to_string(),
            path: path.to_string(),
            scenario: None,
            turn: None,
            attempt: None,
            model: None,
            stream: false,
            side: false,
            tools: 0,
            max_tokens: None,
            thinking_budget: None,
            status: 200,
            outcome: AnswerKind::Ok,
            stop_reason: None,
            usage: Usage::default(),
            tool_uses: Vec::new(),
            api_key: None,
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Shared, append-only request log plus attempt counters. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Log {
    inner: Arc<Mutex<LogInner>>,
}

#[derive(Debug, Default)]
struct LogInner {
    records: Vec<RequestRecord>,
    attempts: HashMap<(String, usize, u64), u32>,
}

impl Log {
    fn lock(&self) -> std::sync::MutexGuard<'_, LogInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends a record, assigning its `seq`.
    pub fn push(&self, mut record: RequestRecord) {
        let mut inner = self.lock();
        record.seq = inner.records.len() as u64 + 1;
        inner.records.push(record);
    }

    /// A copy of all records so far.
    pub fn records(&self) -> Vec<RequestRecord> {
        self.lock().records.clone()
    }

    /// Counts one more attempt at (scenario, turn, conversation) and returns it (1-based).
    pub fn next_attempt(&self, scenario: &str, turn: usize, conversation: u64) -> u32 {
        let mut inner = self.lock();
        let n = inner
            .attempts
            .entry((scenario.to_string(), turn, conversation))
            .or_insert(0);
        *n += 1;
        *n
    }

    /// Forgets records and attempt counters.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.records.clear();
        inner.attempts.clear();
    }
}

/// Logs a request as [`AnswerKind::ClientClosed`] if dropped before [`AbortGuard::disarm`]: hyper
/// drops the handler when the client closes the connection during a scripted delay.
#[derive(Debug)]
pub struct AbortGuard {
    log: Log,
    rec: Option<RequestRecord>,
}

impl AbortGuard {
    pub fn new(log: &Log, rec: &RequestRecord) -> Self {
        AbortGuard {
            log: log.clone(),
            rec: Some(rec.clone()),
        }
    }

    pub fn disarm(mut self) {
        self.rec = None;
    }
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if let Some(mut rec) = self.rec.take() {
            rec.status = 0;
            rec.outcome = AnswerKind::ClientClosed;
            self.log.push(rec);
        }
    }
}
