//! Rows as the SQL stores return them (`sqlx::FromRow`, generic over the database: SQLite and
//! PostgreSQL declare the same column types — TEXT, BIGINT/INTEGER, REAL/DOUBLE PRECISION), and
//! their conversion into the public records.
//! Text columns become record fields through `FromStr`, so a field may be a `String` or a typed
//! enum without this file changing.

use crate::error::{Result, StoreError};
use crate::pools::{PoolEvent, PoolRecord};
use crate::record::TaskRecord;
use drover_types::clock::StopStep;
use drover_types::{Budget, ErrorKind, Event, Limits, Outcome, Usage, Verdict};
use std::fmt::Display;
use std::str::FromStr;

/// A text column parsed into a record field.
pub(crate) fn parse<T: FromStr>(col: &str, s: String) -> Result<T>
where
    T::Err: Display,
{
    s.parse()
        .map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

/// A nullable text column parsed into an optional record field.
pub(crate) fn parse_opt<T: FromStr>(col: &str, s: Option<String>) -> Result<Option<T>>
where
    T::Err: Display,
{
    s.map(|s| parse(col, s)).transpose()
}

/// A JSON list of strings in a TEXT column.
pub(crate) fn json_list(col: &str, text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

/// A nullable JSON column.
pub(crate) fn json_opt<T: serde::de::DeserializeOwned>(
    col: &str,
    text: Option<String>,
) -> Result<Option<T>> {
    text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("{col}: {e}"))))
        .transpose()
}

/// A value stored as JSON text.
pub(crate) fn to_json<T: serde::Serialize + ?Sized>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn non_negative(v: i64) -> u64 {
    v.max(0) as u64
}

#[derive(sqlx::FromRow)]
pub(crate) struct TaskRow {
    pub(crate) id: String,
    queue_seq: i64,
    name: Option<String>,
    state: String,
    agent: String,
    model: Option<String>,
    repo: String,
    repo_dir: Option<String>,
    base_ref: String,
    base_commit: Option<String>,
    branch: String,
    prompt: String,
    cmd: Option<String>,
    verify: String,
    permissions: String,
    created_at: String,
    started_at: Option<String>,
    finished_at: Option<String>,
    result: Option<String>,
    verdict: Option<String>,
    reason: Option<String>,
    error_kind: Option<String>,
    input_tokens: i64,
    output_tokens: i64,
    cache_read_tokens: i64,
    cache_write_tokens: i64,
    cost_usd: Option<f64>,
    max_usd: Option<f64>,
    max_tokens: Option<i64>,
    session_id: Option<String>,
    commit_sha: Option<String>,
    pool: Option<String>,
    team: Option<String>,
    created_by: Option<String>,
    tags: String,
    sandbox: Option<String>,
    sandbox_kind: Option<String>,
    pending_input: Option<String>,
    shim_pid: Option<i64>,
    shim_start: Option<i64>,
    pid: Option<i64>,
    pgid: Option<i64>,
    agent_start: Option<i64>,
    stdout_offset: i64,
    stderr_offset: i64,
    turns_sent: i64,
    turns_done: i64,
    attempt: i64,
    stop_requested: i64,
    next_seq: i64,
    verify_rounds: i64,
    gate_rounds: i64,
    gate_status: Option<String>,
    judge_model: Option<String>,
    stop_reason: Option<String>,
    metered_by: String,
    agent_cost_usd: Option<f64>,
    agent_usage: Option<String>,
    timeout_secs: Option<i64>,
    stall_timeout_secs: Option<i64>,
    activity_at: Option<String>,
    pending_since: Option<String>,
    stop_requested_at: Option<String>,
    stop_step: i64,
    stop_step_at: Option<String>,
    protect: String,
    memory_bytes: Option<i64>,
    cpus: Option<f64>,
    pids: Option<i64>,
    isolation: Option<String>,
    peak_memory_bytes: Option<i64>,
    cpu_seconds: Option<f64>,
    worker: Option<String>,
    runs_on: Option<String>,
    lease_until: Option<String>,
    repos: Option<String>,
    prs: Option<String>,
    pr: Option<String>,
    batch: Option<String>,
}

impl TryFrom<TaskRow> for TaskRecord {
    type Error = StoreError;

    fn try_from(r: TaskRow) -> Result<TaskRecord> {
        Ok(TaskRecord {
            id: r.id,
            queue_seq: r.queue_seq,
            name: r.name,
            state: parse("state", r.state)?,
            agent: parse("agent", r.agent)?,
            model: r.model,
            repo: r.repo,
            repo_dir: r.repo_dir,
            base_ref: r.base_ref,
            base_commit: r.base_commit,
            branch: r.branch,
            prompt: r.prompt,
            cmd: r.cmd,
            verify: json_list("verify", &r.verify)?,
            permissions: parse("permissions", r.permissions)?,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            result: r.result,
            outcome: outcome(r.verdict, r.reason, r.error_kind)?,
            usage: Usage {
                input_tokens: non_negative(r.input_tokens),
                output_tokens: non_negative(r.output_tokens),
                cache_read_tokens: non_negative(r.cache_read_tokens),
                cache_write_tokens: non_negative(r.cache_write_tokens),
            },
            cost_usd: r.cost_usd,
            budget: Budget {
                max_usd: r.max_usd,
                max_tokens: r.max_tokens.map(non_negative),
            },
            session_id: r.session_id,
            commit: r.commit_sha,
            pool: r.pool,
            team: r.team,
            created_by: r.created_by,
            tags: serde_json::from_str(&r.tags)
                .map_err(|e| StoreError::Corrupt(format!("tags: {e}")))?,
            sandbox: r.sandbox,
            sandbox_kind: parse_opt("sandbox_kind", r.sandbox_kind)?,
            pending_input: r.pending_input.and_then(|p| serde_json::from_str(&p).ok()),
            shim_pid: r.shim_pid,
            shim_start: r.shim_start,
            pid: r.pid,
            pgid: r.pgid,
            agent_start: r.agent_start,
            stdout_offset: r.stdout_offset,
            stderr_offset: r.stderr_offset,
            turns_sent: r.turns_sent,
            turns_done: r.turns_done,
            attempt: r.attempt,
            stop_requested: r.stop_requested != 0,
            next_seq: r.next_seq,
            verify_rounds: r.verify_rounds,
            gate_rounds: r.gate_rounds,
            gate_status: parse_opt("gate_status", r.gate_status)?,
            judge_model: r.judge_model,
            stop_reason: parse_opt("stop_reason", r.stop_reason)?,
            metered_by: parse("metered_by", r.metered_by)?,
            agent_cost_usd: r.agent_cost_usd,
            agent_usage: r.agent_usage.and_then(|s| serde_json::from_str(&s).ok()),
            timeout_secs: r.timeout_secs,
            stall_timeout_secs: r.stall_timeout_secs,
            activity_at: r.activity_at,
            pending_since: r.pending_since,
            stop_requested_at: r.stop_requested_at,
            stop_step: StopStep::from_index(r.stop_step),
            stop_step_at: r.stop_step_at,
            protect: json_list("protect", &r.protect)?,
            limits: limits(r.memory_bytes, r.cpus, r.pids),
            isolation: parse_opt("isolation", r.isolation)?,
            peak_memory_bytes: r.peak_memory_bytes,
            cpu_seconds: r.cpu_seconds,
            worker: r.worker,
            runs_on: r.runs_on,
            lease_until: r.lease_until,
            repos: json_opt("repos", r.repos)?.unwrap_or_default(),
            prs: json_opt("prs", r.prs)?.unwrap_or_default(),
            pr: json_opt("pr", r.pr)?,
            batch: r.batch,
        })
    }
}

fn limits(memory_bytes: Option<i64>, cpus: Option<f64>, pids: Option<i64>) -> Limits {
    Limits {
        memory_bytes: memory_bytes.map(non_negative),
        cpus,
        pids: pids.map(non_negative),
    }
}

fn outcome(
    verdict: Option<String>,
    reason: Option<String>,
    kind: Option<String>,
) -> Result<Option<Outcome>> {
    let Some(verdict) = verdict else {
        return Ok(None);
    };
    Ok(Some(Outcome {
        verdict: parse::<Verdict>("verdict", verdict)?,
        reason: reason.unwrap_or_default(),
        error_kind: parse_opt::<ErrorKind>("error_kind", kind)?,
    }))
}

#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    seq: i64,
    ts: String,
    kind: String,
    data: String,
}

impl EventRow {
    /// Bytes of stored data (for a page's byte bound).
    pub(crate) fn data_len(&self) -> usize {
        self.data.len()
    }

    pub(crate) fn into_event(self, task_id: &str) -> Result<Event> {
        Ok(Event {
            task_id: task_id.to_string(),
            seq: self.seq,
            ts: self.ts,
            kind: parse("kind", self.kind)?,
            data: serde_json::from_str(&self.data)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        })
    }
}

impl TryFrom<EventRow> for PoolEvent {
    type Error = StoreError;

    fn try_from(r: EventRow) -> Result<PoolEvent> {
        Ok(PoolEvent {
            seq: r.seq,
            ts: r.ts,
            kind: parse("kind", r.kind)?,
            data: serde_json::from_str(&r.data).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct PoolRow {
    name: String,
    state: String,
    slots: i64,
    prompt: String,
    repo: String,
    base_ref: String,
    agent: String,
    cmd: Option<String>,
    model: Option<String>,
    judge_model: Option<String>,
    permissions: String,
    count_total: Option<i64>,
    max_failures: i64,
    notify: Option<String>,
    verify: String,
    verify_rounds: i64,
    max_usd: Option<f64>,
    created_at: String,
    launched: i64,
    streak_since: String,
    notified: i64,
    stop_reason: Option<String>,
    allowed_models: Option<String>,
    failure_policy: String,
    timeout_secs: Option<i64>,
    stall_timeout_secs: Option<i64>,
    protect: String,
    memory_bytes: Option<i64>,
    cpus: Option<f64>,
    pids: Option<i64>,
    team: Option<String>,
    pr: Option<String>,
}

impl TryFrom<PoolRow> for PoolRecord {
    type Error = StoreError;

    fn try_from(r: PoolRow) -> Result<PoolRecord> {
        Ok(PoolRecord {
            name: r.name,
            state: parse("pools.state", r.state)?,
            slots: r.slots,
            prompt: r.prompt,
            repo: r.repo,
            base_ref: r.base_ref,
            agent: parse("pools.agent", r.agent)?,
            cmd: r.cmd,
            model: r.model,
            judge_model: r.judge_model,
            permissions: parse("pools.permissions", r.permissions)?,
            count_total: r.count_total,
            max_failures: r.max_failures,
            notify: r.notify,
            verify: json_list("pools.verify", &r.verify)?,
            verify_rounds: r.verify_rounds,
            max_usd: r.max_usd,
            created_at: r.created_at,
            launched: r.launched,
            streak_since: r.streak_since,
            notified: r.notified != 0,
            stop_reason: r.stop_reason,
            allowed_models: r.allowed_models.and_then(|s| serde_json::from_str(&s).ok()),
            failure_policy: parse("pools.failure_policy", r.failure_policy)?,
            timeout_secs: r.timeout_secs,
            stall_timeout_secs: r.stall_timeout_secs,
            protect: json_list("pools.protect", &r.protect)?,
            limits: limits(r.memory_bytes, r.cpus, r.pids),
            team: r.team,
            pr: json_opt("pools.pr", r.pr)?,
        })
    }
}
