//! A task row as the daemon sees it, and typed partial updates of it.

use drover_types::{Budget, ErrorKind, Outcome, Task, TaskState, Usage, Verdict};

/// A task with the daemon's bookkeeping (process ids, ingest offsets, turn counters).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    pub id: String,
    pub queue_seq: i64,
    pub name: Option<String>,
    pub state: TaskState,
    pub agent: String,
    pub model: Option<String>,
    pub repo: String,
    pub repo_dir: Option<String>,
    pub base_ref: String,
    pub base_commit: Option<String>,
    pub branch: String,
    pub prompt: String,
    pub cmd: Option<String>,
    pub verify: Vec<String>,
    pub permissions: String,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub result: Option<String>,
    pub outcome: Option<Outcome>,
    pub usage: Usage,
    pub cost_usd: Option<f64>,
    pub budget: Budget,
    pub session_id: Option<String>,
    pub commit: Option<String>,
    pub pool: Option<String>,
    pub team: Option<String>,
    pub created_by: Option<String>,
    pub sandbox: Option<String>,
    pub sandbox_kind: Option<String>,
    pub pending_input: Option<serde_json::Value>,
    pub shim_pid: Option<i64>,
    pub shim_start: Option<i64>,
    pub pid: Option<i64>,
    pub pgid: Option<i64>,
    pub agent_start: Option<i64>,
    pub stdout_offset: i64,
    pub stderr_offset: i64,
    pub turns_sent: i64,
    pub turns_done: i64,
    pub attempt: i64,
    pub stop_requested: bool,
    pub next_seq: i64,
    /// Gate feedback rounds allowed (`--verify-rounds`) and used.
    pub verify_rounds: i64,
    pub gate_rounds: i64,
    /// `passed` / `failed` for the current turn; `None` until the gates ran.
    pub gate_status: Option<String>,
    pub judge_model: Option<String>,
    /// Why a stop was requested: `user` or `budget_exceeded`.
    pub stop_reason: Option<String>,
    /// `gateway` or `agent`: where `usage` and `cost_usd` come from.
    pub metered_by: String,
    pub agent_cost_usd: Option<f64>,
    pub agent_usage: Option<Usage>,
    /// Clocks (seconds; `None`: no limit), fixed at creation (docs/design.md §11).
    pub timeout_secs: Option<i64>,
    pub stall_timeout_secs: Option<i64>,
    /// The last agent output or event: the stall clock's base.
    pub activity_at: Option<String>,
    /// Since when `pending_input` waits for an answer.
    pub pending_since: Option<String>,
    /// When a stop was asked for; the last escalation step taken (see `StopStep`) and when.
    pub stop_requested_at: Option<String>,
    pub stop_step: i64,
    pub stop_step_at: Option<String>,
    /// Protected globs (JSON list in the row).
    pub protect: Vec<String>,
}

impl TaskRecord {
    /// When the wall clock runs out: `timeout_secs` after the task first started running.
    pub fn timeout_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let started = parse_ts(self.started_at.as_deref()?)?;
        Some(started + chrono::Duration::seconds(self.timeout_secs?))
    }

    /// The public view (docs/design.md §3). `queue_position` is filled by the caller, who knows the queue.
    pub fn to_task(&self, queue_position: Option<u64>) -> Task {
        Task {
            id: self.id.clone(),
            name: self.name.clone(),
            state: self.state,
            agent: self.agent.clone(),
            model: self.model.clone(),
            repo: self.repo.clone(),
            base_ref: self.base_ref.clone(),
            branch: self.branch.clone(),
            prompt: self.prompt.clone(),
            created_at: self.created_at.clone(),
            started_at: self.started_at.clone(),
            finished_at: self.finished_at.clone(),
            result: self.result.clone(),
            outcome: self.outcome.clone(),
            usage: self.usage,
            cost_usd: self.cost_usd,
            budget: self.budget,
            session_id: self.session_id.clone(),
            commit: self.commit.clone(),
            pool: self.pool.clone(),
            team: self.team.clone(),
            created_by: self.created_by.clone(),
            base_commit: self.base_commit.clone(),
            cmd: self.cmd.clone(),
            verify: self.verify.clone(),
            queue_position,
            sandbox: self.sandbox.clone(),
            sandbox_kind: self.sandbox_kind.clone(),
            pending_input: self.pending_input.clone(),
            pid: self.pid,
            pgid: self.pgid,
            attempt: self.attempt.max(0) as u32,
            locks: None,
            metered_by: self.metered_by.clone(),
            agent_cost_usd: self.agent_cost_usd,
            agent_usage: self.agent_usage,
            timeout_secs: self.timeout_secs.map(|v| v.max(0) as u64),
            stall_timeout_secs: self.stall_timeout_secs.map(|v| v.max(0) as u64),
            timeout_at: self
                .timeout_at()
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            stop_requested_at: self.stop_requested_at.clone(),
            stop_step: drover_types::clock::StopStep::from_index(self.stop_step)
                .map(|s| s.as_str().to_string()),
            protect: self.protect.clone(),
            warnings: vec![],
        }
    }
}

/// What `create_task` needs.
#[derive(Debug, Clone, Default)]
pub struct NewTask {
    pub id: String,
    pub name: Option<String>,
    pub agent: String,
    pub model: Option<String>,
    pub repo: String,
    pub repo_dir: Option<String>,
    pub base_ref: String,
    pub base_commit: Option<String>,
    pub prompt: String,
    pub cmd: Option<String>,
    pub verify: Vec<String>,
    pub permissions: String,
    pub budget: Budget,
    pub session_id: Option<String>,
    pub pool: Option<String>,
    pub team: Option<String>,
    pub created_by: Option<String>,
    pub verify_rounds: i64,
    pub judge_model: Option<String>,
    pub protect: Vec<String>,
    pub timeout_secs: Option<i64>,
    pub stall_timeout_secs: Option<i64>,
}

/// A stored RFC 3339 time.
pub fn parse_ts(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// A SQL value, for [`TaskPatch`].
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

impl From<Option<String>> for Val {
    fn from(v: Option<String>) -> Self {
        v.map(Val::Text).unwrap_or(Val::Null)
    }
}
impl From<Option<i64>> for Val {
    fn from(v: Option<i64>) -> Self {
        v.map(Val::Int).unwrap_or(Val::Null)
    }
}
impl From<Option<f64>> for Val {
    fn from(v: Option<f64>) -> Self {
        v.map(Val::Real).unwrap_or(Val::Null)
    }
}

/// A typed partial update of a task row. Each setter names one field; unset fields stay.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskPatch {
    pub(crate) state: Option<TaskState>,
    pub(crate) state_data: Option<serde_json::Value>,
    pub(crate) sets: Vec<(&'static str, Val)>,
    pub(crate) increments: Vec<&'static str>,
}

macro_rules! setter {
    ($fn:ident, $col:literal, $ty:ty) => {
        pub fn $fn(mut self, v: $ty) -> Self {
            self.sets.push(($col, v.into()));
            self
        }
    };
}

impl TaskPatch {
    pub fn new() -> Self {
        Self::default()
    }
    /// Changes the state; `data` is merged into the `state` event (e.g. a reason).
    pub fn state(mut self, s: TaskState, data: serde_json::Value) -> Self {
        self.state = Some(s);
        self.state_data = Some(data);
        self
    }
    pub fn new_state(&self) -> Option<TaskState> {
        self.state
    }
    pub fn outcome(mut self, o: Option<&Outcome>) -> Self {
        self.sets
            .push(("verdict", o.map(|o| o.verdict.as_str().to_string()).into()));
        self.sets
            .push(("reason", o.map(|o| o.reason.clone()).into()));
        let kind = o.and_then(|o| o.error_kind).map(|k| k.as_str().to_string());
        self.sets.push(("error_kind", kind.into()));
        self
    }
    pub fn usage(mut self, u: Usage) -> Self {
        self.sets
            .push(("input_tokens", Val::Int(u.input_tokens as i64)));
        self.sets
            .push(("output_tokens", Val::Int(u.output_tokens as i64)));
        self.sets
            .push(("cache_read_tokens", Val::Int(u.cache_read_tokens as i64)));
        self.sets
            .push(("cache_write_tokens", Val::Int(u.cache_write_tokens as i64)));
        self
    }
    /// Also starts (or clears) the request's needs_input clock.
    pub fn pending_input(mut self, v: Option<&serde_json::Value>) -> Self {
        self.sets
            .push(("pending_input", v.map(|v| v.to_string()).into()));
        self.sets
            .push(("pending_since", v.map(|_| crate::now()).into()));
        self
    }
    pub fn stop_requested(mut self, v: bool) -> Self {
        self.sets.push(("stop_requested", Val::Int(v as i64)));
        self
    }
    pub fn inc_turns_sent(mut self) -> Self {
        self.increments.push("turns_sent");
        self
    }
    pub fn inc_turns_done(mut self) -> Self {
        self.increments.push("turns_done");
        self
    }
    pub fn inc_gate_rounds(mut self) -> Self {
        self.increments.push("gate_rounds");
        self
    }
    pub fn inc_attempt(mut self) -> Self {
        self.increments.push("attempt");
        self
    }
    /// Moves the task to the back of the FIFO queue.
    pub fn requeue(mut self) -> Self {
        self.increments.push("queue_seq_requeue");
        self
    }
    setter!(started_at, "started_at", Option<String>);
    setter!(finished_at, "finished_at", Option<String>);
    setter!(result, "result", Option<String>);
    setter!(cost_usd, "cost_usd", Option<f64>);
    setter!(session_id, "session_id", Option<String>);
    setter!(commit, "commit_sha", Option<String>);
    setter!(repo_dir, "repo_dir", Option<String>);
    setter!(base_commit, "base_commit", Option<String>);
    setter!(sandbox, "sandbox", Option<String>);
    setter!(sandbox_kind, "sandbox_kind", Option<String>);
    setter!(shim_pid, "shim_pid", Option<i64>);
    setter!(shim_start, "shim_start", Option<i64>);
    setter!(pid, "pid", Option<i64>);
    setter!(pgid, "pgid", Option<i64>);
    setter!(agent_start, "agent_start", Option<i64>);
    setter!(stdout_offset, "stdout_offset", Option<i64>);
    setter!(stderr_offset, "stderr_offset", Option<i64>);
    setter!(turns_done, "turns_done", Option<i64>);
    setter!(turns_sent, "turns_sent", Option<i64>);
    setter!(gate_status, "gate_status", Option<String>);
    setter!(stop_reason, "stop_reason", Option<String>);
    setter!(metered_by, "metered_by", Option<String>);
    setter!(agent_cost_usd, "agent_cost_usd", Option<f64>);
    setter!(activity_at, "activity_at", Option<String>);
    setter!(stop_requested_at, "stop_requested_at", Option<String>);
    setter!(stop_step_at, "stop_step_at", Option<String>);
    pub fn stop_step(mut self, v: i64) -> Self {
        self.sets.push(("stop_step", Val::Int(v)));
        self
    }
    pub fn agent_usage(mut self, u: Usage) -> Self {
        self.sets.push((
            "agent_usage",
            Val::Text(serde_json::to_string(&u).unwrap_or_default()),
        ));
        self
    }
}

pub(crate) fn parse_outcome(
    verdict: Option<String>,
    reason: Option<String>,
    kind: Option<String>,
) -> Result<Option<Outcome>, String> {
    let Some(v) = verdict else { return Ok(None) };
    let verdict: Verdict = v.parse()?;
    let error_kind = match kind {
        Some(k) => Some(k.parse::<ErrorKind>()?),
        None => None,
    };
    Ok(Some(Outcome {
        verdict,
        reason: reason.unwrap_or_default(),
        error_kind,
    }))
}
