//! A task row as the daemon sees it, and typed partial updates of it.

use drover_types::clock::StopStep;
use drover_types::{
    Budget, GateStatus, Isolation, Limits, MeteredBy, Outcome, PermissionPolicy, SandboxKind,
    StopReason, Task, TaskState, Usage,
};

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
    pub permissions: PermissionPolicy,
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
    pub tags: drover_types::Tags,
    pub sandbox: Option<String>,
    pub sandbox_kind: Option<SandboxKind>,
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
    /// The gates' result for the current turn; `None` until they ran.
    pub gate_status: Option<GateStatus>,
    pub judge_model: Option<String>,
    /// Why a stop was requested.
    pub stop_reason: Option<StopReason>,
    /// Where `usage` and `cost_usd` come from.
    pub metered_by: MeteredBy,
    pub agent_cost_usd: Option<f64>,
    pub agent_usage: Option<Usage>,
    /// Clocks (seconds; `None`: no limit), fixed at creation (docs/design.md §11).
    pub timeout_secs: Option<i64>,
    pub stall_timeout_secs: Option<i64>,
    /// The last agent output or event: the stall clock's base.
    pub activity_at: Option<String>,
    /// Since when `pending_input` waits for an answer.
    pub pending_since: Option<String>,
    /// When a stop was asked for; the last escalation step taken and when.
    pub stop_requested_at: Option<String>,
    pub stop_step: Option<StopStep>,
    pub stop_step_at: Option<String>,
    /// Protected globs (JSON list in the row).
    pub protect: Vec<String>,
    /// The task's cgroup limits, fixed at creation (docs/design.md §11).
    pub limits: Limits,
    /// How the agent was confined, set when it starts.
    pub isolation: Option<Isolation>,
    /// What the agent's group used, read when it is gone.
    pub peak_memory_bytes: Option<i64>,
    pub cpu_seconds: Option<f64>,
    /// The worker holding (or that last held) the task; its `attempt` is the claim's fencing
    /// token (docs/design.md §8).
    pub worker: Option<String>,
    /// The only worker that may claim the task (it sees the task's local-path repo).
    pub runs_on: Option<String>,
    /// Until when the holder's lease runs (RFC 3339); renewed by its heartbeat.
    pub lease_until: Option<String>,
    /// A multi-repo task's repositories (JSON in the row; empty: one repository).
    pub repos: Vec<drover_types::TaskRepo>,
    /// Pull requests opened or found (JSON in the row).
    pub prs: Vec<drover_types::PrInfo>,
    /// `--pr` options (JSON in the row; `None`: no PR).
    pub pr: Option<drover_types::PrOptions>,
    pub batch: Option<String>,
}

impl TaskRecord {
    /// When the wall clock runs out: `timeout_secs` after the task first started running.
    pub fn timeout_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let started = parse_ts(self.started_at.as_deref()?)?;
        Some(started + chrono::Duration::seconds(self.timeout_secs?))
    }

    /// The task's repositories: `repos` of a multi-repo task, else one made of `repo`,
    /// `base_ref`, `branch`, `commit` and `base_commit` (publishing walks this list).
    pub fn repo_list(&self) -> Vec<drover_types::TaskRepo> {
        if !self.repos.is_empty() {
            return self.repos.clone();
        }
        vec![drover_types::TaskRepo {
            repo: self.repo.clone(),
            base_ref: self.base_ref.clone(),
            branch: self.branch.clone(),
            commit: self.commit.clone(),
            base_commit: self.base_commit.clone(),
            dir: None,
        }]
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
            tags: self.tags.clone(),
            base_commit: self.base_commit.clone(),
            cmd: self.cmd.clone(),
            verify: self.verify.clone(),
            queue_position,
            sandbox: self.sandbox.clone(),
            sandbox_kind: self.sandbox_kind,
            pending_input: self.pending_input.clone(),
            pid: self.pid,
            pgid: self.pgid,
            attempt: self.attempt.max(0) as u32,
            locks: None,
            metered_by: self.metered_by,
            agent_cost_usd: self.agent_cost_usd,
            agent_usage: self.agent_usage,
            timeout_secs: self.timeout_secs.map(|v| v.max(0) as u64),
            stall_timeout_secs: self.stall_timeout_secs.map(|v| v.max(0) as u64),
            timeout_at: self
                .timeout_at()
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            stop_requested_at: self.stop_requested_at.clone(),
            stop_step: self.stop_step,
            protect: self.protect.clone(),
            warnings: vec![],
            limits: self.limits,
            isolation: self.isolation,
            peak_memory_bytes: self.peak_memory_bytes.map(|v| v.max(0) as u64),
            cpu_seconds: self.cpu_seconds,
            worker: self.worker.clone(),
            runs_on: self.runs_on.clone(),
            repos: self.repos.clone(),
            prs: self.prs.clone(),
            pr: self.pr.clone(),
            batch: self.batch.clone(),
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
    pub permissions: PermissionPolicy,
    pub budget: Budget,
    pub session_id: Option<String>,
    pub pool: Option<String>,
    pub team: Option<String>,
    pub created_by: Option<String>,
    pub tags: drover_types::Tags,
    pub verify_rounds: i64,
    pub judge_model: Option<String>,
    pub protect: Vec<String>,
    pub timeout_secs: Option<i64>,
    pub stall_timeout_secs: Option<i64>,
    pub limits: Limits,
    /// See [`TaskRecord::runs_on`].
    pub runs_on: Option<String>,
    pub repos: Vec<drover_types::TaskRepo>,
    pub pr: Option<drover_types::PrOptions>,
    pub batch: Option<String>,
}

/// A stored RFC 3339 time.
pub fn parse_ts(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// A typed partial update of a task row. Each setter names one field of [`TaskRecord`]; unset
/// fields stay. Setting a field twice keeps the last value; an increment (`inc_*`) of a field
/// also set in the same patch wins over the set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskPatch {
    pub(crate) state: Option<TaskState>,
    pub(crate) state_data: Option<serde_json::Value>,
    pub(crate) fields: PatchFields,
    pub(crate) inc: Increments,
    /// Written only if the task is still held by this claim (see [`Fence`]).
    pub(crate) fence: Option<Fence>,
}

/// A claim on a task: the worker and the attempt it claimed (the fencing token). A patch
/// carrying one is applied only while the task's `worker` and `attempt` are still these;
/// otherwise the update fails with [`StoreError::Fenced`](crate::StoreError::Fenced) and
/// changes nothing — a worker cut off long enough to lose its lease can never overwrite the
/// task's new holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub worker: String,
    pub attempt: i64,
    /// Also only while that claim's lease has lapsed (by the database's clock): the fence of a
    /// take-over, so a worker that renewed its lease meanwhile keeps its task.
    pub lapsed: bool,
}

impl Fence {
    pub fn new(worker: &str, attempt: i64) -> Self {
        Fence {
            worker: worker.to_string(),
            attempt,
            lapsed: false,
        }
    }
}

/// The fields a [`TaskPatch`] sets: `None` leaves the field alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct PatchFields {
    pub outcome: Option<Option<Outcome>>,
    pub usage: Option<Usage>,
    /// The request and since when it waits.
    pub pending_input: Option<Option<(serde_json::Value, String)>>,
    pub stop_requested: Option<bool>,
    pub started_at: Option<Option<String>>,
    pub finished_at: Option<Option<String>>,
    pub result: Option<Option<String>>,
    pub cost_usd: Option<Option<f64>>,
    pub session_id: Option<Option<String>>,
    pub commit: Option<Option<String>>,
    pub repo_dir: Option<Option<String>>,
    pub base_commit: Option<Option<String>>,
    pub sandbox: Option<Option<String>>,
    pub sandbox_kind: Option<Option<SandboxKind>>,
    pub shim_pid: Option<Option<i64>>,
    pub shim_start: Option<Option<i64>>,
    pub pid: Option<Option<i64>>,
    pub pgid: Option<Option<i64>>,
    pub agent_start: Option<Option<i64>>,
    pub stdout_offset: Option<Option<i64>>,
    pub stderr_offset: Option<Option<i64>>,
    pub turns_done: Option<Option<i64>>,
    pub turns_sent: Option<Option<i64>>,
    pub gate_status: Option<Option<GateStatus>>,
    pub stop_reason: Option<Option<StopReason>>,
    pub metered_by: Option<Option<MeteredBy>>,
    pub agent_cost_usd: Option<Option<f64>>,
    pub activity_at: Option<Option<String>>,
    pub stop_requested_at: Option<Option<String>>,
    pub stop_step_at: Option<Option<String>>,
    pub stop_step: Option<StopStep>,
    pub agent_usage: Option<Usage>,
    pub isolation: Option<Option<Isolation>>,
    pub peak_memory_bytes: Option<Option<i64>>,
    pub cpu_seconds: Option<Option<f64>>,
    pub worker: Option<Option<String>>,
    pub lease_until: Option<Option<String>>,
    pub repos: Option<Vec<drover_types::TaskRepo>>,
    pub prs: Option<Vec<drover_types::PrInfo>>,
}

/// Counters a [`TaskPatch`] adds one to (read and written in the update's transaction).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Increments {
    pub turns_sent: bool,
    pub turns_done: bool,
    pub gate_rounds: bool,
    pub attempt: bool,
    /// Back of the FIFO queue.
    pub requeue: bool,
}

macro_rules! setter {
    ($($fn:ident: $ty:ty),* $(,)?) => {
        $(
            pub fn $fn(mut self, v: $ty) -> Self {
                self.fields.$fn = Some(v);
                self
            }
        )*
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
        self.fields.outcome = Some(o.cloned());
        self
    }
    pub fn usage(mut self, u: Usage) -> Self {
        self.fields.usage = Some(u);
        self
    }
    /// Also starts (or clears) the request's needs_input clock.
    pub fn pending_input(mut self, v: Option<&serde_json::Value>) -> Self {
        self.fields.pending_input = Some(v.map(|v| (v.clone(), crate::error::now())));
        self
    }
    pub fn stop_requested(mut self, v: bool) -> Self {
        self.fields.stop_requested = Some(v);
        self
    }
    pub fn inc_turns_sent(mut self) -> Self {
        self.inc.turns_sent = true;
        self
    }
    pub fn inc_turns_done(mut self) -> Self {
        self.inc.turns_done = true;
        self
    }
    pub fn inc_gate_rounds(mut self) -> Self {
        self.inc.gate_rounds = true;
        self
    }
    pub fn inc_attempt(mut self) -> Self {
        self.inc.attempt = true;
        self
    }
    /// Applies the patch only while `fence` still holds the task.
    pub fn fence(mut self, fence: Fence) -> Self {
        self.fence = Some(fence);
        self
    }
    pub fn fenced_by(&self) -> Option<&Fence> {
        self.fence.as_ref()
    }
    /// Moves the task to the back of the FIFO queue.
    pub fn requeue(mut self) -> Self {
        self.inc.requeue = true;
        self
    }
    setter!(
        started_at: Option<String>,
        finished_at: Option<String>,
        result: Option<String>,
        cost_usd: Option<f64>,
        session_id: Option<String>,
        commit: Option<String>,
        repo_dir: Option<String>,
        base_commit: Option<String>,
        sandbox: Option<String>,
        sandbox_kind: Option<SandboxKind>,
        shim_pid: Option<i64>,
        shim_start: Option<i64>,
        pid: Option<i64>,
        pgid: Option<i64>,
        agent_start: Option<i64>,
        stdout_offset: Option<i64>,
        stderr_offset: Option<i64>,
        turns_done: Option<i64>,
        turns_sent: Option<i64>,
        gate_status: Option<GateStatus>,
        stop_reason: Option<StopReason>,
        metered_by: Option<MeteredBy>,
        agent_cost_usd: Option<f64>,
        activity_at: Option<String>,
        stop_requested_at: Option<String>,
        stop_step_at: Option<String>,
        stop_step: StopStep,
        agent_usage: Usage,
        isolation: Option<Isolation>,
        peak_memory_bytes: Option<i64>,
        cpu_seconds: Option<f64>,
        worker: Option<String>,
        lease_until: Option<String>,
        repos: Vec<drover_types::TaskRepo>,
        prs: Vec<drover_types::PrInfo>,
    );
}
